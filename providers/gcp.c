/* gcp: a service-account key JSON in secret.plain, or an API key in
 * apiToken.plain. The meta records which (authType), since resolve gets
 * only the meta and the opened payload. */
#include "prov_internal.h"

#include "crypto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GCP_TOKEN_MAX 512
#define GCP_FIELD_MAX 1024
#define GCP_PEM_MAX 16384

static const char *const pem_labels[] = {"PRIVATE KEY", "RSA PRIVATE KEY", NULL};

static bool is_b64(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

/* Base64 body of a PEM block: lines of [A-Za-z0-9+/], '=' padding only at
 * the end, a multiple of 4 in all. An encrypted legacy key carries
 * Proc-Type headers and fails here, which is right: there is no passphrase. */
static bool pem_body_ok(const char *p, size_t n)
{
  size_t chars = 0, pad = 0;

  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '\n' || c == '\r')
      continue;
    if (c == '=') {
      pad++;
    } else if (!is_b64(c) || pad) {
      return false;
    }
    /* DER starts with SEQUENCE (0x30), which base64 spells as 'M'. */
    if (chars == 0 && c != 'M')
      return false;
    chars++;
  }
  return chars >= 64 && chars % 4 == 0 && pad <= 2;
}

/* "-----BEGIN <label>-----\n<base64>\n-----END <label>-----", with the same
 * label at both ends and only whitespace around the block. */
static bool pem_private_key_ok(const char *s)
{
  size_t n = strlen(s);
  const char *end = s + n;

  while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
    s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
    end--;
  if ((size_t)(end - s) > GCP_PEM_MAX)
    return false;

  for (int i = 0; pem_labels[i]; i++) {
    const char *label = pem_labels[i];
    size_t ll = strlen(label);
    const char *body, *tail;

    if (strncmp(s, "-----BEGIN ", 11) != 0 || (size_t)(end - s) < 11 + ll + 5 ||
        strncmp(s + 11, label, ll) != 0 || strncmp(s + 11 + ll, "-----", 5) != 0)
      continue;
    body = s + 11 + ll + 5;
    /* tail = "-----END " label "-----" at the very end */
    if ((size_t)(end - body) < 9 + ll + 5)
      return false;
    tail = end - (9 + ll + 5);
    if (strncmp(tail, "-----END ", 9) != 0 || strncmp(tail + 9, label, ll) != 0 ||
        strncmp(tail + 9 + ll, "-----", 5) != 0)
      return false;
    if (body >= tail || (*body != '\n' && *body != '\r') || (tail[-1] != '\n'))
      return false;
    return pem_body_ok(body, (size_t)(tail - body));
  }
  return false;
}

struct gcp_sa {
  const char *project_id, *private_key_id, *private_key, *client_email;
};

static enum cs_err sa_fields(const cJSON *sa, const char *prefix, struct gcp_sa *k,
                             struct cs_prov_error *err)
{
  char field[CS_FIELD_MAX];
  const char *type = NULL, *at;
  enum cs_err e;

  if (!cJSON_IsObject(sa))
    return cs_prov_fail(err, CS_ERR_INVALID, prefix, "%s must be a service-account key JSON object",
                        prefix);
  if ((e = cs_prov_req_member(sa, prefix, "type", GCP_FIELD_MAX, &type, err)) != CS_OK)
    return e;
  if (strcmp(type, "service_account") != 0) {
    snprintf(field, sizeof field, "%s.type", prefix);
    return cs_prov_fail(err, CS_ERR_INVALID, field, "%s must be \"service_account\"", field);
  }
  if ((e = cs_prov_req_member(sa, prefix, "project_id", GCP_FIELD_MAX, &k->project_id, err)) ||
      (e = cs_prov_req_member(sa, prefix, "private_key_id", GCP_FIELD_MAX, &k->private_key_id,
                              err)) ||
      (e = cs_prov_req_member(sa, prefix, "private_key", GCP_PEM_MAX, &k->private_key, err)))
    return e;
  if (!pem_private_key_ok(k->private_key)) {
    snprintf(field, sizeof field, "%s.private_key", prefix);
    return cs_prov_fail(err, CS_ERR_INVALID, field,
                        "%s must be a PEM private key (-----BEGIN PRIVATE KEY----- ...)", field);
  }
  if ((e = cs_prov_req_member(sa, prefix, "client_email", GCP_FIELD_MAX, &k->client_email, err)))
    return e;
  at = strchr(k->client_email, '@');
  if (!at || at == k->client_email || !at[1] || strchr(at + 1, '@')) {
    snprintf(field, sizeof field, "%s.client_email", prefix);
    return cs_prov_fail(err, CS_ERR_INVALID, field, "%s must be an email address", field);
  }
  return CS_OK;
}

static enum cs_err sa_meta(const struct gcp_sa *k, cJSON **out)
{
  cJSON *m = cJSON_CreateObject();
  enum cs_err e = CS_ERR_NOMEM;

  if (!m)
    goto out;
  if ((e = cs_prov_add_str(m, "authType", "serviceAccount")) != CS_OK ||
      (e = cs_prov_add_str(m, "accountID", k->client_email)) != CS_OK ||
      (e = cs_prov_add_str(m, "projectID", k->project_id)) != CS_OK)
    goto out;
  *out = m;
  m = NULL;
out:
  cJSON_Delete(m);
  return e;
}

static enum cs_err validate_sa(const char *plain, cJSON **meta, struct cs_prov_error *err)
{
  cJSON *sa = NULL;
  struct gcp_sa k = {0};
  enum cs_err e;

  e = cs_json_parse(plain, strlen(plain), CS_JSON_MAX_DEPTH, &sa);
  if (e == CS_ERR_NOMEM)
    goto out;
  if (e != CS_OK) {
    e = cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                     "secret.plain is not valid JSON; expected a service-account key file");
    goto out;
  }
  if ((e = sa_fields(sa, "secret.plain", &k, err)) != CS_OK)
    goto out;
  e = sa_meta(&k, meta);
out:
  cs_json_wipe_delete(sa);
  return e;
}

static enum cs_err gcp_validate(const cJSON *body, struct cs_prov_result *out,
                                struct cs_prov_error *err)
{
  const char *plain = NULL, *token = NULL, *payload;
  cJSON *meta = NULL;
  char *secret = NULL;
  size_t len;
  enum cs_err e;

  if ((e = cs_prov_plain(body, "secret", &plain, err)) != CS_OK)
    goto out;
  if ((e = cs_prov_plain(body, "apiToken", &token, err)) != CS_OK)
    goto out;

  /* Only a non-empty plain counts as given: clients echo back an empty
   * apiToken object for service-account credentials. */
  if (token) {
    if (plain) {
      e = cs_prov_fail(err, CS_ERR_INVALID, "apiToken",
                       "give either a service-account key in secret.plain or an API key in "
                       "apiToken.plain, not both");
      goto out;
    }
    if (!cs_prov_token_ok(token, 1, GCP_TOKEN_MAX)) {
      e = cs_prov_fail(err, CS_ERR_INVALID, "apiToken.plain",
                       "apiToken.plain must be 1-512 printable characters without whitespace");
      goto out;
    }
    e = CS_ERR_NOMEM;
    if (!(meta = cJSON_CreateObject()) || cs_prov_add_str(meta, "authType", "apiToken") != CS_OK)
      goto out;
    payload = token;
  } else {
    if (!plain) {
      e = cs_prov_fail(err, CS_ERR_MISSING, "secret.plain",
                       "secret.plain (a service-account key JSON) or apiToken.plain (an API "
                       "key) is required");
      goto out;
    }
    if ((e = validate_sa(plain, &meta, err)) != CS_OK)
      goto out;
    payload = plain;
  }
  len = strlen(payload);
  if ((e = cs_prov_dup_secret(payload, len, &secret)) != CS_OK)
    goto out;
  out->meta = meta;
  out->secret = secret;
  out->secret_len = len;
  meta = NULL;
  e = CS_OK;
out:
  cJSON_Delete(meta);
  return e;
}

static enum cs_err gcp_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                struct cs_net_error *err)
{
  const cJSON *meta = ctx->meta;
  const char *secret = ctx->secret;
  size_t secret_len = ctx->secret_len;
  const cJSON *auth = cJSON_GetObjectItemCaseSensitive(meta, "authType");
  bool is_token =
      cJSON_IsString(auth) && auth->valuestring && strcmp(auth->valuestring, "apiToken") == 0;
  cJSON *sa = NULL, *r = NULL;
  struct gcp_sa k = {0};
  enum cs_err e;

  if ((e = cs_prov_payload_ok(secret, secret_len)) != CS_OK)
    return e;
  if (!is_token) {
    e = cs_json_parse(secret, secret_len, CS_JSON_MAX_DEPTH, &sa);
    if (e == CS_ERR_NOMEM)
      goto out;
    if (e != CS_OK || sa_fields(sa, "secret", &k, NULL) != CS_OK) {
      e = CS_ERR_CRYPTO;
      goto out;
    }
  } else if (secret_len == 0) {
    return CS_ERR_CRYPTO;
  }
  e = CS_ERR_NOMEM;
  if (!(r = cJSON_CreateObject()) || cs_prov_add_str(r, "type", "gcp") != CS_OK)
    goto out;
  if (is_token) {
    e = cs_prov_add_secret(r, "apiToken", secret, secret_len);
  } else {
    e = cs_prov_add_item(r, "serviceAccount", sa);
    sa = NULL;
  }
  if (e != CS_OK)
    goto out;
  *out = r;
  r = NULL;
out:
  cs_json_wipe_delete(sa);
  cs_json_wipe_delete(r);
  return e;
}

/* ------------------------------------------------ tokens and tests (§8) */

#define GCP_DEFAULT_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define GCP_DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define GCP_SCOPES_MAX 32
#define GCP_SCOPE_MAX 256
#define GCP_ASSERTION_LIFETIME 3600 /* the most Google accepts */

static bool is_service_account(const struct cs_prov_ctx *ctx)
{
  const cJSON *auth = cJSON_GetObjectItemCaseSensitive(ctx->meta, "authType");
  return !(cJSON_IsString(auth) && auth->valuestring && strcmp(auth->valuestring, "apiToken") == 0);
}

/* A key's own token_uri, when it is https under googleapis.com; else NULL. */
static const char *google_token_uri(const cJSON *sa)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(sa, "token_uri");
  char target[CS_HTTP_TARGET_MAX], host[CS_HTTP_HOST_MAX + 1];
  const char *why;
  size_t n;

  if (!cJSON_IsString(v) || !v->valuestring ||
      cs_http_check_url_host(NULL, v->valuestring, target, host, &why) != CS_OK ||
      strncmp(target, "https:", 6) != 0)
    return NULL;
  n = strlen(host);
  return strcmp(host, "googleapis.com") == 0 ||
                 (n > 15 && strcmp(host + n - 15, ".googleapis.com") == 0)
             ? v->valuestring
             : NULL;
}

/* base64url(json) of a cJSON object; NULL on OOM. */
static char *b64_json(const cJSON *j)
{
  char *txt = cs_json_print(j), *b64;

  if (!txt)
    return NULL;
  b64 = cs_b64url_encode((const uint8_t *)txt, strlen(txt));
  free(txt);
  return b64;
}

/* header.claims, for signing. */
static enum cs_err jwt_input(const struct gcp_sa *k, const char *scope, const char *aud,
                             struct cs_buf *out)
{
  int64_t now = cs_now();
  cJSON *h = cJSON_CreateObject(), *c = cJSON_CreateObject();
  char *h64 = NULL, *c64 = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  if (!h || !c || !cJSON_AddStringToObject(h, "alg", "RS256") ||
      !cJSON_AddStringToObject(h, "typ", "JWT") ||
      !cJSON_AddStringToObject(h, "kid", k->private_key_id) ||
      !cJSON_AddStringToObject(c, "iss", k->client_email) ||
      !cJSON_AddStringToObject(c, "scope", scope) || !cJSON_AddStringToObject(c, "aud", aud) ||
      !cJSON_AddNumberToObject(c, "iat", (double)now) ||
      !cJSON_AddNumberToObject(c, "exp", (double)(now + GCP_ASSERTION_LIFETIME)) ||
      !(h64 = b64_json(h)) || !(c64 = b64_json(c)))
    goto out;
  e = cs_buf_printf(out, "%s.%s", h64, c64);
out:
  free(h64);
  free(c64);
  cJSON_Delete(h);
  cJSON_Delete(c);
  return e;
}

/* The RS256-signed assertion of RFC 7523, appended to @p form. */
static enum cs_err assertion(const struct gcp_sa *k, const char *scope, const char *aud,
                             struct cs_buf *form, struct cs_net_error *err)
{
  struct cs_buf in;
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  char *s64 = NULL;
  const char *why = "";
  enum cs_err e;

  cs_buf_init(&in, 16384);
  if ((e = jwt_input(k, scope, aud, &in)))
    goto out;
  e = cs_rs256_sign(k->private_key, strlen(k->private_key), in.data, in.len, &sig, &sig_len, &why);
  if (e == CS_ERR_INVALID) {
    e = cs_net_fail_field(err, e, "secret.plain.private_key", "%s", why);
    goto out;
  }
  if (e)
    goto out;
  e = CS_ERR_NOMEM;
  if (!(s64 = cs_b64url_encode(sig, sig_len)))
    goto out;
  /* A JWS is base64url and dots only: nothing in it needs form escaping. */
  e = cs_buf_printf(form,
                    "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                    "&assertion=%s.%s",
                    in.data, s64);
out:
  free(sig);
  free(s64);
  cs_buf_free(&in);
  return e;
}

static enum cs_err gcp_build(struct cs_broker *b, const struct cs_prov_ctx *ctx, const char *scope,
                             char *url, size_t url_cap, struct cs_buf *form, struct cs_buf *scrub,
                             struct cs_net_error *err)
{
  cJSON *sa = NULL;
  struct gcp_sa k = {0};
  const char *aud;
  enum cs_err e;

  (void)scrub; /* the key never travels; the assertion is signed, not secret text */
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  e = cs_json_parse(ctx->secret, ctx->secret_len, CS_JSON_MAX_DEPTH, &sa);
  if (e != CS_OK || (e = sa_fields(sa, "secret.plain", &k, NULL)) != CS_OK) {
    e = e == CS_ERR_NOMEM ? e : CS_ERR_CRYPTO;
    goto out;
  }
  /* --gcp-token-url wins; else the key's own, only if it is Google's. */
  aud = b->gcp_token_url ? b->gcp_token_url : google_token_uri(sa);
  aud = aud ? aud : GCP_DEFAULT_TOKEN_URL;
  if ((size_t)snprintf(url, url_cap, "%s", aud) >= url_cap) {
    e = cs_net_fail_field(err, CS_ERR_INVALID, "secret.plain.token_uri", "token_uri too long");
    goto out;
  }
  e = assertion(&k, scope, aud, form, err);
out:
  cs_json_wipe_delete(sa);
  return e;
}

static const struct cs_token_client gcp_tokens = {CS_KIND_GCP, "Google", gcp_build, NULL};

/* The requested scopes, joined with spaces (the claim's form and the cache key's). */
static enum cs_err gcp_scopes(const struct cs_prov_ctx *ctx, struct cs_buf *out,
                              struct cs_net_error *err)
{
  const char *const *list = ctx->opts ? ctx->opts->scopes : NULL;
  static const char *const dflt[] = {GCP_DEFAULT_SCOPE, NULL};
  size_t n = 0;
  enum cs_err e;

  if (!list || !list[0])
    list = dflt;
  for (; list[n]; n++) {
    if (n == GCP_SCOPES_MAX)
      return cs_net_fail_field(err, CS_ERR_INVALID, "scopes", "at most %d scopes", GCP_SCOPES_MAX);
    if (!cs_prov_token_ok(list[n], 1, GCP_SCOPE_MAX))
      return cs_net_fail_field(err, CS_ERR_INVALID, "scopes",
                               "scopes[%zu] must be 1-256 printable characters without spaces", n);
    if ((e = cs_buf_printf(out, "%s%s", n ? " " : "", list[n])))
      return e;
  }
  return CS_OK;
}

static enum cs_err add_scopes(cJSON *m, const char *joined)
{
  cJSON *arr = cJSON_CreateArray();
  const char *p = joined;

  if (!arr)
    return CS_ERR_NOMEM;
  while (*p) {
    size_t n = strcspn(p, " ");
    char *v = strndup(p, n);
    cJSON *s = v ? cJSON_CreateString(v) : NULL;
    free(v);
    if (!s || !cJSON_AddItemToArray(arr, s)) {
      cJSON_Delete(s);
      cJSON_Delete(arr);
      return CS_ERR_NOMEM;
    }
    p += n + (p[n] == ' ');
  }
  return cs_prov_add_item(m, "scopes", arr);
}

static enum cs_err gcp_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
{
  struct cs_token t = {0};
  struct cs_buf scopes;
  cJSON *m = NULL;
  enum cs_err e;

  if (cs_prov_format(ctx) != CS_FORMAT_TOKEN)
    return cs_prov_plain_resolve(gcp_material, "gcp", ctx, out, err);
  if (!is_service_account(ctx))
    return cs_net_fail_field(err, CS_ERR_INVALID, "format",
                             "format \"token\" needs a service-account key; this credential "
                             "holds an API key");
  cs_buf_init(&scopes, GCP_SCOPES_MAX * (GCP_SCOPE_MAX + 1));
  if ((e = gcp_scopes(ctx, &scopes, err)) ||
      (e = cs_token_get(&gcp_tokens, ctx, scopes.data, false, &t, err)))
    goto out;
  e = CS_ERR_NOMEM;
  if (!(m = cJSON_CreateObject()) || (e = cs_prov_add_str(m, "type", "gcp")) ||
      (e = cs_token_render(m, &t, "expiresAt")) || (e = add_scopes(m, scopes.data)))
    goto out;
  *out = m;
  m = NULL;
out:
  cs_token_wipe(&t);
  cs_json_wipe_delete(m);
  cs_buf_free(&scopes);
  return e;
}

static enum cs_err gcp_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  const cJSON *email = cJSON_GetObjectItemCaseSensitive(ctx->meta, "accountID");
  const char *who = cJSON_IsString(email) && email->valuestring ? email->valuestring : "";
  struct cs_net_error err = {0};
  struct cs_token t = {0};
  int64_t t0;
  enum cs_err e;

  cs_test_start(out, &t0);
  if (!is_service_account(ctx)) {
    cs_test_ok(out, t0, NULL, "API key stored; nothing to test");
    return CS_OK;
  }
  e = cs_token_get(&gcp_tokens, ctx, GCP_DEFAULT_SCOPE, true, &t, &err);
  if (e == CS_OK)
    cs_test_ok(out, t0, who, "Google issued an access token for %s", who);
  else if (e == CS_ERR_UPSTREAM || e == CS_ERR_INVALID)
    cs_test_failed(out, t0, &err);
  cs_token_wipe(&t);
  return e == CS_ERR_UPSTREAM || e == CS_ERR_INVALID ? CS_OK : e;
}

static bool gcp_short_lived(const struct cs_prov_ctx *ctx)
{
  return cs_prov_format(ctx) == CS_FORMAT_TOKEN && is_service_account(ctx);
}

const struct cs_provider cs_provider_gcp = {
    .type = "gcp",
    .validate = gcp_validate,
    .resolve = gcp_resolve,
    .test = gcp_test,
    .short_lived = gcp_short_lived,
};
