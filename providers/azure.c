/* azure: a service principal as printed by `az ad sp create-for-rbac
 * --sdk-auth`. The whole JSON is the sealed payload, so consumers get the
 * endpoint URLs of sovereign clouds back unchanged. */
#include "prov_internal.h"

#include <string.h>

/* GUIDs are 36 characters; leave room for whatever Azure Stack prints. */
#define AZ_ID_MAX 256
#define AZ_SECRET_MAX 1024

struct az_key {
  const char *client_id, *client_secret, *tenant_id, *subscription_id;
};

/* Pull the four required members out of a parsed service key; @p prefix
 * is the field path the errors name ("secret.plain"). */
static enum cs_err az_fields(const cJSON *sk, const char *prefix, struct az_key *k,
                             struct cs_prov_error *err)
{
  enum cs_err e;

  if (!cJSON_IsObject(sk))
    return cs_prov_fail(err, CS_ERR_INVALID, prefix,
                        "%s must be the JSON object printed by az ad sp create-for-rbac "
                        "--sdk-auth",
                        prefix);
  if ((e = cs_prov_req_member(sk, prefix, "clientId", AZ_ID_MAX, &k->client_id, err)) ||
      (e = cs_prov_req_member(sk, prefix, "clientSecret", AZ_SECRET_MAX, &k->client_secret, err)) ||
      (e = cs_prov_req_member(sk, prefix, "tenantId", AZ_ID_MAX, &k->tenant_id, err)) ||
      (e = cs_prov_req_member(sk, prefix, "subscriptionId", AZ_ID_MAX, &k->subscription_id, err)))
    return e;
  return CS_OK;
}

static enum cs_err build_meta(const struct az_key *k, cJSON **out)
{
  cJSON *m = cJSON_CreateObject();
  cJSON *sp = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  if (!m)
    goto out;
  if ((e = cs_prov_add_str(m, "accountID", k->client_id)) != CS_OK)
    goto out;
  if ((e = cs_prov_add_item(m, "azureSPInfo", sp = cJSON_CreateObject())) != CS_OK)
    goto out;
  if ((e = cs_prov_add_str(sp, "clientId", k->client_id)) != CS_OK ||
      (e = cs_prov_add_str(sp, "tenantId", k->tenant_id)) != CS_OK ||
      (e = cs_prov_add_str(sp, "subscriptionId", k->subscription_id)) != CS_OK)
    goto out;
  *out = m;
  m = NULL;
out:
  cJSON_Delete(m);
  return e;
}

static enum cs_err az_validate(const cJSON *body, struct cs_prov_result *out,
                               struct cs_prov_error *err)
{
  const char *plain = NULL;
  cJSON *sk = NULL, *meta = NULL;
  char *secret = NULL;
  struct az_key k = {0};
  size_t len;
  enum cs_err e;

  if ((e = cs_prov_plain(body, "secret", &plain, err)) != CS_OK)
    goto out;
  if (!plain) {
    e = cs_prov_fail(err, CS_ERR_MISSING, "secret.plain",
                     "secret.plain (the JSON printed by az ad sp create-for-rbac --sdk-auth) "
                     "is required");
    goto out;
  }
  len = strlen(plain);
  e = cs_json_parse(plain, len, CS_JSON_MAX_DEPTH, &sk);
  if (e == CS_ERR_NOMEM)
    goto out;
  if (e != CS_OK) {
    e = cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                     "secret.plain is not valid JSON; expected the output of az ad sp "
                     "create-for-rbac --sdk-auth");
    goto out;
  }
  if ((e = az_fields(sk, "secret.plain", &k, err)) != CS_OK)
    goto out;
  if ((e = build_meta(&k, &meta)) != CS_OK)
    goto out;
  if ((e = cs_prov_dup_secret(plain, len, &secret)) != CS_OK)
    goto out;
  out->meta = meta;
  out->secret = secret;
  out->secret_len = len;
  meta = NULL;
out:
  cJSON_Delete(meta);
  cs_json_wipe_delete(sk);
  return e;
}

static enum cs_err az_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
{
  const char *secret = ctx->secret;
  size_t secret_len = ctx->secret_len;
  cJSON *sk = NULL, *r = NULL;
  struct az_key k = {0};
  enum cs_err e;

  if ((e = cs_prov_payload_ok(secret, secret_len)) != CS_OK)
    return e;
  e = cs_json_parse(secret, secret_len, CS_JSON_MAX_DEPTH, &sk);
  if (e == CS_ERR_NOMEM)
    goto out;
  if (e != CS_OK || az_fields(sk, "secret", &k, NULL) != CS_OK) {
    e = CS_ERR_CRYPTO; /* validated on write, so the payload is not ours */
    goto out;
  }
  e = CS_ERR_NOMEM;
  if (!(r = cJSON_CreateObject()))
    goto out;
  if ((e = cs_prov_add_str(r, "type", "azure")) != CS_OK ||
      (e = cs_prov_add_str(r, "clientId", k.client_id)) != CS_OK ||
      (e = cs_prov_add_str(r, "clientSecret", k.client_secret)) != CS_OK ||
      (e = cs_prov_add_str(r, "tenantId", k.tenant_id)) != CS_OK ||
      (e = cs_prov_add_str(r, "subscriptionId", k.subscription_id)) != CS_OK)
    goto out;
  /* The members above are copies, so the parsed key can move as a whole. */
  e = cs_prov_add_item(r, "serviceKey", sk);
  sk = NULL;
  if (e != CS_OK)
    goto out;
  *out = r;
  r = NULL;
out:
  cs_json_wipe_delete(sk);
  cs_json_wipe_delete(r);
  return e;
}

const struct cs_provider cs_provider_azure = {
    .type = "azure",
    .validate = az_validate,
    .resolve = az_resolve,
    .test = cs_prov_test_unimplemented,
};
