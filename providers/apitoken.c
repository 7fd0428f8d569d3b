/* apiToken (API.md §3 v2; Slack, GitLab, GitHub, generic bearer tokens):
 * the token in apiToken.plain (Prisma's field) or secret.plain. The field
 * it came in is the field its encrypted value is returned under, so a
 * client that reads and sends back finds it where it put it. */
#include "prov_internal.h"

#include <string.h>

#define TOKEN_MAX 16384
#define ACCOUNT_MAX 256

static enum cs_err token_validate(const cJSON *body, struct cs_prov_result *out,
                                  struct cs_prov_error *err)
{
  const char *in_api = NULL, *in_secret = NULL, *account = NULL, *tok;
  cJSON *meta = NULL;
  char *secret = NULL;
  enum cs_err e;

  if ((e = cs_prov_plain(body, "apiToken", &in_api, err)) != CS_OK ||
      (e = cs_prov_plain(body, "secret", &in_secret, err)) != CS_OK ||
      (e = cs_prov_opt_str(body, "accountID", ACCOUNT_MAX, &account, err)) != CS_OK)
    return e;
  if (in_api && in_secret)
    return cs_prov_fail(err, CS_ERR_INVALID, "apiToken.plain",
                        "give the token once: in apiToken.plain or in secret.plain");
  if (!(tok = in_api ? in_api : in_secret))
    return cs_prov_fail(err, CS_ERR_MISSING, "apiToken.plain",
                        "apiToken.plain (or secret.plain) is required: the token");
  if (!cs_prov_token_ok(tok, 1, TOKEN_MAX))
    return cs_prov_fail(err, CS_ERR_INVALID, in_api ? "apiToken.plain" : "secret.plain",
                        "the token must be 1-%d printable characters without whitespace",
                        TOKEN_MAX);
  e = CS_ERR_NOMEM;
  if (!(meta = cJSON_CreateObject()) ||
      (account && cs_prov_add_str(meta, "accountID", account) != CS_OK) ||
      (in_api && cs_prov_add_str(meta, "authType", "apiToken") != CS_OK) ||
      (e = cs_prov_dup_secret(tok, strlen(tok), &secret)) != CS_OK) {
    cJSON_Delete(meta);
    return e;
  }
  out->meta = meta;
  out->secret = secret;
  out->secret_len = strlen(tok);
  return CS_OK;
}

static enum cs_err token_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                  struct cs_net_error *err)
{
  cJSON *r = NULL;
  enum cs_err e;

  (void)err;
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  if (ctx->secret_len == 0)
    return CS_ERR_CRYPTO;
  if (!(r = cJSON_CreateObject()) || (e = cs_prov_add_str(r, "type", "apiToken")) != CS_OK ||
      (e = cs_prov_add_secret(r, "token", ctx->secret, ctx->secret_len)) != CS_OK) {
    cs_json_wipe_delete(r);
    return r ? e : CS_ERR_NOMEM;
  }
  *out = r;
  return CS_OK;
}

static enum cs_err token_resolve(const struct cs_prov_ctx *ctx, cJSON **out,
                                 struct cs_net_error *err)
{
  return cs_prov_plain_resolve(token_material, "apiToken", ctx, out, err);
}

/* With a url: GET it with the token as a bearer token. */
static enum cs_err token_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  struct cs_url_auth auth = {0};
  enum cs_err e;

  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  auth.bearer = ctx->secret_len ? ctx->secret : NULL;
  return cs_prov_test_url(ctx, &auth, out);
}

const struct cs_provider cs_provider_apitoken = {
    .type = "apiToken",
    .validate = token_validate,
    .resolve = token_resolve,
    .test = token_test,
    .short_lived = cs_prov_never_short_lived,
};
