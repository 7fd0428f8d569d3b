/* basic (API.md §3 v2; registries, ServiceNow, SMTP): a username in
 * accountID and its password in secret.plain. */
#include "prov_internal.h"

#include <stdio.h>
#include <string.h>

#define BASIC_USER_MAX 256
#define BASIC_PASSWORD_MAX 4096

static enum cs_err basic_validate(const cJSON *body, struct cs_prov_result *out,
                                  struct cs_prov_error *err)
{
  const char *user = NULL, *pass = NULL;
  cJSON *meta = NULL;
  char *secret = NULL;
  enum cs_err e;

  if ((e = cs_prov_opt_str(body, "accountID", BASIC_USER_MAX, &user, err)) != CS_OK)
    return e;
  if (!user)
    return cs_prov_fail(err, CS_ERR_MISSING, "accountID", "accountID (the username) is required");
  if ((e = cs_prov_plain(body, "secret", &pass, err)) != CS_OK)
    return e;
  if (!pass)
    return cs_prov_fail(err, CS_ERR_MISSING, "secret.plain",
                        "secret.plain (the password) is required");
  if (strlen(pass) > BASIC_PASSWORD_MAX)
    return cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                        "secret.plain (the password) is at most %d bytes", BASIC_PASSWORD_MAX);
  e = CS_ERR_NOMEM;
  if (!(meta = cJSON_CreateObject()) || cs_prov_add_str(meta, "accountID", user) != CS_OK ||
      (e = cs_prov_dup_secret(pass, strlen(pass), &secret)) != CS_OK) {
    cJSON_Delete(meta);
    return e;
  }
  out->meta = meta;
  out->secret = secret;
  out->secret_len = strlen(pass);
  return CS_OK;
}

static enum cs_err basic_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                  struct cs_net_error *err)
{
  const cJSON *user = cJSON_GetObjectItemCaseSensitive(ctx->meta, "accountID");
  cJSON *r = NULL;
  enum cs_err e;

  (void)err;
  if (!cJSON_IsString(user))
    return CS_ERR_INTERNAL;
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  if (!(r = cJSON_CreateObject()) || (e = cs_prov_add_str(r, "type", "basic")) != CS_OK ||
      (e = cs_prov_add_str(r, "username", user->valuestring)) != CS_OK ||
      (e = cs_prov_add_secret(r, "password", ctx->secret, ctx->secret_len)) != CS_OK) {
    cs_json_wipe_delete(r);
    return r ? e : CS_ERR_NOMEM;
  }
  *out = r;
  return CS_OK;
}

static enum cs_err basic_resolve(const struct cs_prov_ctx *ctx, cJSON **out,
                                 struct cs_net_error *err)
{
  return cs_prov_plain_resolve(basic_material, "basic", ctx, out, err);
}

/* What is stored is what is handed out: never short-lived. */
bool cs_prov_never_short_lived(const struct cs_prov_ctx *ctx)
{
  (void)ctx;
  return false;
}

/* With a url: GET it with the username and password (HTTP Basic). */
static enum cs_err basic_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  const cJSON *user = cJSON_GetObjectItemCaseSensitive(ctx->meta, "accountID");
  struct cs_url_auth auth = {0};
  enum cs_err e;

  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  auth.user = cJSON_IsString(user) ? user->valuestring : NULL;
  auth.password = auth.user ? ctx->secret : NULL;
  return cs_prov_test_url(ctx, &auth, out);
}

const struct cs_provider cs_provider_basic = {
    .type = "basic",
    .validate = basic_validate,
    .resolve = basic_resolve,
    .test = basic_test,
    .short_lived = cs_prov_never_short_lived,
};
