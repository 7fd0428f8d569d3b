/* gcp: a service-account key JSON in secret.plain, or an API key in
 * apiToken.plain. The meta records which (authType), since resolve gets
 * only the meta and the opened payload. */
#include "prov_internal.h"

#include <stdio.h>
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

static enum cs_err gcp_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
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

const struct cs_provider cs_provider_gcp = {
    .type = "gcp",
    .validate = gcp_validate,
    .resolve = gcp_resolve,
    .test = cs_prov_test_unimplemented,
};
