/* ibmCloud: an IAM API key, with the account it belongs to in accountGUID. */
#include "prov_internal.h"

#include <stdio.h>
#include <string.h>

#define IBM_KEY_MAX 256
#define IBM_GUID_MAX 64

static bool guid_ok(const char *s)
{
  size_t n = strlen(s);

  if (n == 0 || n > IBM_GUID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return false;
  return true;
}

static enum cs_err ibm_validate(const cJSON *body, struct cs_prov_result *out,
                                struct cs_prov_error *err)
{
  const char *guid = NULL, *plain = NULL;
  cJSON *meta = NULL;
  char *secret = NULL;
  size_t len;
  enum cs_err e;

  if ((e = cs_prov_opt_str(body, "accountGUID", CS_PROV_PLAIN_MAX, &guid, err)) != CS_OK)
    goto out;
  if (!guid) {
    e = cs_prov_fail(err, CS_ERR_MISSING, "accountGUID", "accountGUID is required");
    goto out;
  }
  if (!guid_ok(guid)) {
    e = cs_prov_fail(err, CS_ERR_INVALID, "accountGUID",
                     "accountGUID must be 1-64 characters of A-Z a-z 0-9 and -");
    goto out;
  }
  if ((e = cs_prov_plain(body, "secret", &plain, err)) != CS_OK)
    goto out;
  if (!plain) {
    e = cs_prov_fail(err, CS_ERR_MISSING, "secret.plain",
                     "secret.plain (the IBM Cloud API key) is required");
    goto out;
  }
  if (!cs_prov_token_ok(plain, 1, IBM_KEY_MAX)) {
    e = cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                     "secret.plain must be an API key: 1-256 printable characters without "
                     "whitespace");
    goto out;
  }
  e = CS_ERR_NOMEM;
  if (!(meta = cJSON_CreateObject()) || cs_prov_add_str(meta, "accountGUID", guid) != CS_OK)
    goto out;
  len = strlen(plain);
  if ((e = cs_prov_dup_secret(plain, len, &secret)) != CS_OK)
    goto out;
  out->meta = meta;
  out->secret = secret;
  out->secret_len = len;
  meta = NULL;
out:
  cJSON_Delete(meta);
  return e;
}

static enum cs_err ibm_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                struct cs_net_error *err)
{
  const cJSON *meta = ctx->meta;
  const char *secret = ctx->secret;
  size_t secret_len = ctx->secret_len;
  const cJSON *guid = cJSON_GetObjectItemCaseSensitive(meta, "accountGUID");
  cJSON *r = NULL;
  enum cs_err e;

  if (!cJSON_IsString(guid) || !guid->valuestring || !guid->valuestring[0])
    return CS_ERR_INTERNAL;
  if ((e = cs_prov_payload_ok(secret, secret_len)) != CS_OK)
    return e;
  if (secret_len == 0)
    return CS_ERR_CRYPTO;
  e = CS_ERR_NOMEM;
  if (!(r = cJSON_CreateObject()))
    goto out;
  if ((e = cs_prov_add_str(r, "type", "ibmCloud")) != CS_OK ||
      (e = cs_prov_add_str(r, "accountGUID", guid->valuestring)) != CS_OK ||
      (e = cs_prov_add_secret(r, "apiKey", secret, secret_len)) != CS_OK)
    goto out;
  *out = r;
  r = NULL;
out:
  cs_json_wipe_delete(r);
  return e;
}

/* ------------------------------------------------ tokens and tests (§8) */

static enum cs_err ibm_build(struct cs_broker *b, const struct cs_prov_ctx *ctx, const char *scope,
                             char *url, size_t url_cap, struct cs_buf *form, struct cs_buf *scrub,
                             struct cs_net_error *err)
{
  enum cs_err e;

  (void)scope;
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  if (ctx->secret_len == 0 || ctx->secret_len > IBM_KEY_MAX)
    return CS_ERR_CRYPTO;
  snprintf(url, url_cap, "%s/identity/token", b->ibm_iam);
  if ((e = cs_buf_printf(form, "grant_type=urn%%3Aibm%%3Aparams%%3Aoauth%%3Agrant-type%%3Aapikey"
                               "&apikey=")) ||
      (e = cs_form_escape(form, ctx->secret)) ||
      (e = cs_buf_append(scrub, ctx->secret, ctx->secret_len)))
    return e == CS_ERR_NOMEM
               ? e
               : cs_net_fail_field(err, CS_ERR_INVALID, "secret.plain", "the API key is too long");
  return CS_OK;
}

/* IAM's own error shape: {"errorCode":"BXNIM0415E","errorMessage":"..."}. */
static void ibm_error(const cJSON *j, struct cs_net_error *err)
{
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "errorCode");
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "errorMessage");

  if (cJSON_IsString(code) && code->valuestring && code->valuestring[0])
    cs_net_fail(err, CS_ERR_UPSTREAM, code->valuestring, "%s",
                cJSON_IsString(msg) && msg->valuestring ? msg->valuestring : code->valuestring);
  else
    cs_token_oauth_error(j, err);
}

static const struct cs_token_client ibm_tokens = {CS_KIND_IBM, "IBM IAM", ibm_build, ibm_error};

static enum cs_err ibm_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
{
  struct cs_token t = {0};
  cJSON *m = NULL;
  enum cs_err e;

  if (cs_prov_format(ctx) != CS_FORMAT_TOKEN)
    return cs_prov_plain_resolve(ibm_material, "ibmCloud", ctx, out, err);
  if ((e = cs_token_get(&ibm_tokens, ctx, "", false, &t, err)))
    return e;
  e = CS_ERR_NOMEM;
  if (!(m = cJSON_CreateObject()) || (e = cs_prov_add_str(m, "type", "ibmCloud")) ||
      (e = cs_token_render(m, &t, "expiresAt")))
    goto out;
  *out = m;
  m = NULL;
out:
  cs_token_wipe(&t);
  cs_json_wipe_delete(m);
  return e;
}

static enum cs_err ibm_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  const cJSON *guid = cJSON_GetObjectItemCaseSensitive(ctx->meta, "accountGUID");
  const char *who = cJSON_IsString(guid) && guid->valuestring ? guid->valuestring : "";
  struct cs_net_error err = {0};
  struct cs_token t = {0};
  int64_t t0;
  enum cs_err e;

  cs_test_start(out, &t0);
  e = cs_token_get(&ibm_tokens, ctx, "", true, &t, &err);
  if (e == CS_OK)
    cs_test_ok(out, t0, who, "IBM Cloud IAM issued a token for account %s", who);
  else if (e == CS_ERR_UPSTREAM || e == CS_ERR_INVALID)
    cs_test_failed(out, t0, &err);
  cs_token_wipe(&t);
  return e == CS_ERR_UPSTREAM || e == CS_ERR_INVALID ? CS_OK : e;
}

static bool ibm_short_lived(const struct cs_prov_ctx *ctx)
{
  return cs_prov_format(ctx) == CS_FORMAT_TOKEN;
}

const struct cs_provider cs_provider_ibmcloud = {
    .type = "ibmCloud",
    .validate = ibm_validate,
    .resolve = ibm_resolve,
    .test = ibm_test,
    .short_lived = ibm_short_lived,
};
