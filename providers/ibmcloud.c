/* ibmCloud: an IAM API key, with the account it belongs to in accountGUID. */
#include "prov_internal.h"

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

static enum cs_err ibm_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
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

const struct cs_provider cs_provider_ibmcloud = {
    .type = "ibmCloud",
    .validate = ibm_validate,
    .resolve = ibm_resolve,
    .test = cs_prov_test_unimplemented,
};
