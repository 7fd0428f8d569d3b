/* azure: a service principal as printed by `az ad sp create-for-rbac
 * --sdk-auth`, or (API.md §3 v2, since --sdk-auth is deprecated) as the
 * plain `az ad sp create-for-rbac` prints it ({"appId", "displayName",
 * "password", "tenant"}) with the subscription in the request's
 * azureSPInfo.subscriptionId. The whole JSON is the sealed payload, so
 * consumers get the endpoint URLs of sovereign clouds back unchanged; both
 * formats derive the same azureSPInfo. */
#include "prov_internal.h"

#include <stdio.h>
#include <string.h>

/* GUIDs are 36 characters; leave room for whatever Azure Stack prints. */
#define AZ_ID_MAX 256
#define AZ_SECRET_MAX 1024

struct az_key {
  const char *client_id, *client_secret, *tenant_id, *subscription_id;
};

/* The plain `az ad sp create-for-rbac` output: appId, password, tenant;
 * the subscription is @p sub (azureSPInfo.subscriptionId). */
static enum cs_err az_plain_fields(const cJSON *sk, const char *prefix, const char *sub,
                                   struct az_key *k, struct cs_prov_error *err)
{
  enum cs_err e;

  if ((e = cs_prov_req_member(sk, prefix, "appId", AZ_ID_MAX, &k->client_id, err)) ||
      (e = cs_prov_req_member(sk, prefix, "password", AZ_SECRET_MAX, &k->client_secret, err)) ||
      (e = cs_prov_req_member(sk, prefix, "tenant", AZ_ID_MAX, &k->tenant_id, err)))
    return e;
  if (!sub)
    return cs_prov_fail(err, CS_ERR_MISSING, "azureSPInfo.subscriptionId",
                        "azureSPInfo.subscriptionId is required with the plain az ad sp "
                        "create-for-rbac output (it names no subscription)");
  if (strlen(sub) > AZ_ID_MAX)
    return cs_prov_fail(err, CS_ERR_INVALID, "azureSPInfo.subscriptionId",
                        "azureSPInfo.subscriptionId is at most %d characters", AZ_ID_MAX);
  k->subscription_id = sub;
  return CS_OK;
}

/* Pull the four required members out of a parsed service key; @p prefix
 * is the field path the errors name ("secret.plain"). A key with appId and
 * no clientId is the plain format, whose subscription is @p sub. */
static enum cs_err az_fields(const cJSON *sk, const char *prefix, const char *sub, struct az_key *k,
                             struct cs_prov_error *err)
{
  enum cs_err e;

  if (!cJSON_IsObject(sk))
    return cs_prov_fail(err, CS_ERR_INVALID, prefix,
                        "%s must be the JSON object printed by az ad sp create-for-rbac "
                        "(--sdk-auth or plain)",
                        prefix);
  if (!cJSON_GetObjectItemCaseSensitive(sk, "clientId") &&
      cJSON_GetObjectItemCaseSensitive(sk, "appId"))
    return az_plain_fields(sk, prefix, sub, k, err);
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

/* azureSPInfo.subscriptionId of @p obj (a request body or the stored meta). */
static enum cs_err az_sub_of(const cJSON *obj, const char **out, struct cs_prov_error *err)
{
  const cJSON *sp = cJSON_GetObjectItemCaseSensitive(obj, "azureSPInfo");
  *out = NULL;
  if (!sp || cJSON_IsNull(sp))
    return CS_OK;
  if (!cJSON_IsObject(sp))
    return cs_prov_fail(err, CS_ERR_INVALID, "azureSPInfo", "azureSPInfo must be an object");
  return cs_prov_opt_str(sp, "subscriptionId", AZ_ID_MAX, out, err) == CS_OK
             ? CS_OK
             : cs_prov_fail(err, CS_ERR_INVALID, "azureSPInfo.subscriptionId",
                            "azureSPInfo.subscriptionId must be a string of at most %d characters",
                            AZ_ID_MAX);
}

static enum cs_err az_validate(const cJSON *body, struct cs_prov_result *out,
                               struct cs_prov_error *err)
{
  const char *plain = NULL, *sub = NULL;
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
  if ((e = az_sub_of(body, &sub, err)) != CS_OK ||
      (e = az_fields(sk, "secret.plain", sub, &k, err)) != CS_OK)
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

static enum cs_err az_material(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
{
  const char *secret = ctx->secret;
  size_t secret_len = ctx->secret_len;
  cJSON *sk = NULL, *r = NULL;
  struct az_key k = {0};
  const char *sub = NULL;
  enum cs_err e;

  if ((e = cs_prov_payload_ok(secret, secret_len)) != CS_OK)
    return e;
  e = cs_json_parse(secret, secret_len, CS_JSON_MAX_DEPTH, &sk);
  if (e == CS_ERR_NOMEM)
    goto out;
  if (e != CS_OK || az_sub_of(ctx->meta, &sub, NULL) != CS_OK ||
      az_fields(sk, "secret", sub, &k, NULL) != CS_OK) {
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

/* ------------------------------------------------ tokens and tests (§8) */

#define AZ_DEFAULT_SCOPE "https://management.azure.com/.default"
#define AZ_SCOPE_MAX 1024

/* The sdk-auth names, or those of the plain `az ad sp create-for-rbac`. */
static const char *member_of(const cJSON *sk, const char *a, const char *b)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(sk, a);

  if (!cJSON_IsString(v) || !v->valuestring || !v->valuestring[0])
    v = cJSON_GetObjectItemCaseSensitive(sk, b);
  return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

/* A tenant id goes into the URL path: a GUID or a domain name, nothing else. */
static bool tenant_ok(const char *t)
{
  size_t n = strlen(t);

  if (n == 0 || n > AZ_ID_MAX || t[0] == '.' || t[0] == '-')
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
          (t[i] >= '0' && t[i] <= '9') || t[i] == '-' || t[i] == '.'))
      return false;
  return strstr(t, "..") == NULL;
}

static enum cs_err az_build(struct cs_broker *b, const struct cs_prov_ctx *ctx, const char *scope,
                            char *url, size_t url_cap, struct cs_buf *form, struct cs_buf *scrub,
                            struct cs_net_error *err)
{
  const char *id, *secret, *tenant;
  cJSON *sk = NULL;
  enum cs_err e;

  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  e = cs_json_parse(ctx->secret, ctx->secret_len, CS_JSON_MAX_DEPTH, &sk);
  if (e != CS_OK)
    return e == CS_ERR_NOMEM ? e : CS_ERR_CRYPTO;
  id = member_of(sk, "clientId", "appId");
  secret = member_of(sk, "clientSecret", "password");
  tenant = member_of(sk, "tenantId", "tenant");
  if (!id || !secret || !tenant) {
    e = CS_ERR_CRYPTO; /* validated on write: the payload is not ours */
    goto out;
  }
  if (!tenant_ok(tenant)) {
    e = cs_net_fail_field(err, CS_ERR_INVALID, "secret.plain.tenantId",
                          "tenantId must be a GUID or a domain name");
    goto out;
  }
  /* The authority is the operator's (--azure-authority-host), never the
   * key's activeDirectoryEndpointUrl: a stored key must not choose where
   * credstore sends its secret. */
  if ((size_t)snprintf(url, url_cap, "%s/%s/oauth2/v2.0/token", b->azure_authority, tenant) >=
      url_cap) {
    e = cs_net_fail_field(err, CS_ERR_INVALID, "secret.plain.tenantId", "tenantId is too long");
    goto out;
  }
  if ((e = cs_buf_printf(form, "client_id=")) || (e = cs_form_escape(form, id)) ||
      (e = cs_buf_printf(form, "&client_secret=")) || (e = cs_form_escape(form, secret)) ||
      (e = cs_buf_printf(form, "&scope=")) || (e = cs_form_escape(form, scope)) ||
      (e = cs_buf_printf(form, "&grant_type=client_credentials")) ||
      (e = cs_buf_append(scrub, secret, strlen(secret))))
    e = e == CS_ERR_NOMEM
            ? e
            : cs_net_fail_field(err, CS_ERR_INVALID, "secret.plain", "the service key is too long");
out:
  cs_json_wipe_delete(sk);
  return e;
}

static const struct cs_token_client az_tokens = {CS_KIND_AZURE, "Entra", az_build, NULL};

static enum cs_err az_scope(const struct cs_prov_ctx *ctx, const char **out,
                            struct cs_net_error *err)
{
  const char *s =
      ctx->opts && ctx->opts->scope && ctx->opts->scope[0] ? ctx->opts->scope : AZ_DEFAULT_SCOPE;

  if (!cs_prov_token_ok(s, 1, AZ_SCOPE_MAX))
    return cs_net_fail_field(
        err, CS_ERR_INVALID, "scope",
        "scope must be 1-1024 printable characters without spaces, such as " AZ_DEFAULT_SCOPE);
  *out = s;
  return CS_OK;
}

static enum cs_err az_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
{
  struct cs_token t = {0};
  const char *scope = NULL;
  cJSON *m = NULL;
  enum cs_err e;

  if (cs_prov_format(ctx) != CS_FORMAT_TOKEN)
    return cs_prov_plain_resolve(az_material, "azure", ctx, out, err);
  if ((e = az_scope(ctx, &scope, err)) ||
      (e = cs_token_get(&az_tokens, ctx, scope, false, &t, err)))
    return e;
  e = CS_ERR_NOMEM;
  if (!(m = cJSON_CreateObject()) || (e = cs_prov_add_str(m, "type", "azure")) ||
      (e = cs_token_render(m, &t, "expiresOn")) || (e = cs_prov_add_str(m, "scope", scope)))
    goto out;
  *out = m;
  m = NULL;
out:
  cs_token_wipe(&t);
  cs_json_wipe_delete(m);
  return e;
}

static enum cs_err az_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  const cJSON *sp = cJSON_GetObjectItemCaseSensitive(ctx->meta, "azureSPInfo");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(sp, "clientId");
  const char *who = cJSON_IsString(id) && id->valuestring ? id->valuestring : "";
  struct cs_net_error err = {0};
  struct cs_token t = {0};
  int64_t t0;
  enum cs_err e;

  cs_test_start(out, &t0);
  e = cs_token_get(&az_tokens, ctx, AZ_DEFAULT_SCOPE, true, &t, &err);
  if (e == CS_OK)
    cs_test_ok(out, t0, who, "Entra issued a token for client %s (scope %s)", who,
               AZ_DEFAULT_SCOPE);
  else if (e == CS_ERR_UPSTREAM || e == CS_ERR_INVALID)
    cs_test_failed(out, t0, &err);
  cs_token_wipe(&t);
  return e == CS_ERR_UPSTREAM || e == CS_ERR_INVALID ? CS_OK : e;
}

static bool token_format(const struct cs_prov_ctx *ctx)
{
  return cs_prov_format(ctx) == CS_FORMAT_TOKEN;
}

const struct cs_provider cs_provider_azure = {
    .type = "azure",
    .validate = az_validate,
    .resolve = az_resolve,
    .test = az_test,
    .short_lived = token_format,
};
