#include "prov_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct cs_provider *const cs_providers[] = {
    &cs_provider_aws,      &cs_provider_azure,       &cs_provider_gcp,
    &cs_provider_ibmcloud, &cs_provider_kubeconfig,  &cs_provider_basic,
    &cs_provider_apitoken, &cs_provider_certificate, NULL,
};

const struct cs_provider *cs_provider_find(const char *type)
{
  if (!type)
    return NULL;
  for (size_t i = 0; cs_providers[i]; i++)
    if (strcmp(cs_providers[i]->type, type) == 0)
      return cs_providers[i];
  return NULL;
}

/* ------------------------------------------------------------- network */

__attribute__((format(printf, 3, 4))) static enum cs_err
opts_refuse(struct cs_net_error *err, const char *field, const char *fmt, ...)
{
  va_list ap;
  memset(err, 0, sizeof *err);
  snprintf(err->field, sizeof err->field, "%s", field);
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return CS_ERR_INVALID;
}

/* Refused (400 naming the field) rather than clamped, so a caller never
 * gets other material than it asked for without being told. */
enum cs_err cs_resolve_opts_check(const cJSON *meta, const struct cs_resolve_opts *o,
                                  const char *session_name, struct cs_net_error *err)
{
  const cJSON *dur = cJSON_GetObjectItemCaseSensitive(meta, "durationSeconds");
  int64_t max = cJSON_IsNumber(dur) ? (int64_t)dur->valuedouble : CS_AWS_DEFAULT_DURATION;

  if (o->duration_seconds > max)
    return opts_refuse(err, "durationSeconds",
                       "durationSeconds may be at most %lld, what this credential allows",
                       (long long)max);
  if (o->session_name && strcmp(o->session_name, session_name) != 0)
    return opts_refuse(err, "sessionName",
                       "sessionName is derived from the usage (%s) and cannot be chosen",
                       session_name);
  if (o->region && !cs_aws_region_valid(o->region))
    return opts_refuse(err, "region", "region must be an AWS region name such as us-east-1");
  return CS_OK;
}

/* -------------------------------------------------------------- results */

void cs_prov_result_free(struct cs_prov_result *r)
{
  if (!r)
    return;
  if (r->secret) {
    cs_memzero(r->secret, r->secret_len);
    free(r->secret);
  }
  cJSON_Delete(r->meta);
  r->secret = NULL;
  r->secret_len = 0;
  r->meta = NULL;
}

enum cs_err cs_prov_fail(struct cs_prov_error *err, enum cs_err e, const char *field,
                         const char *fmt, ...)
{
  va_list ap;

  if (!err)
    return e;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return e;
}

enum cs_err cs_prov_plain(const cJSON *body, const char *holder, const char **out,
                          struct cs_prov_error *err)
{
  char field[CS_FIELD_MAX];
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(body, holder);
  const cJSON *p;

  snprintf(field, sizeof field, "%s.plain", holder);
  if (!h || cJSON_IsNull(h)) {
    *out = NULL;
    return CS_OK;
  }
  if (!cJSON_IsObject(h))
    return cs_prov_fail(err, CS_ERR_INVALID, holder,
                        "%s must be an object like {\"plain\": \"...\"}", holder);
  p = cJSON_GetObjectItemCaseSensitive(h, "plain");
  if (!p || cJSON_IsNull(p)) {
    *out = NULL;
    return CS_OK;
  }
  if (!cJSON_IsString(p) || !p->valuestring)
    return cs_prov_fail(err, CS_ERR_INVALID, field, "%s must be a string", field);
  if (strlen(p->valuestring) > CS_PROV_PLAIN_MAX)
    return cs_prov_fail(err, CS_ERR_INVALID, field, "%s is too long", field);
  *out = p->valuestring[0] ? p->valuestring : NULL;
  return CS_OK;
}

enum cs_err cs_prov_opt_str(const cJSON *obj, const char *name, size_t max_len, const char **out,
                            struct cs_prov_error *err)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

  if (!v || cJSON_IsNull(v)) {
    *out = NULL;
    return CS_OK;
  }
  if (!cJSON_IsString(v) || !v->valuestring)
    return cs_prov_fail(err, CS_ERR_INVALID, name, "%s must be a string", name);
  if (strlen(v->valuestring) > max_len)
    return cs_prov_fail(err, CS_ERR_INVALID, name, "%s is longer than %zu characters", name,
                        max_len);
  *out = v->valuestring[0] ? v->valuestring : NULL;
  return CS_OK;
}

enum cs_err cs_prov_req_member(const cJSON *obj, const char *prefix, const char *name,
                               size_t max_len, const char **out, struct cs_prov_error *err)
{
  char field[CS_FIELD_MAX];
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

  snprintf(field, sizeof field, "%s.%s", prefix, name);
  if (!v || cJSON_IsNull(v))
    return cs_prov_fail(err, CS_ERR_MISSING, field, "%s is required", field);
  if (!cJSON_IsString(v) || !v->valuestring || !v->valuestring[0])
    return cs_prov_fail(err, CS_ERR_INVALID, field, "%s must be a non-empty string", field);
  if (strlen(v->valuestring) > max_len)
    return cs_prov_fail(err, CS_ERR_INVALID, field, "%s is longer than %zu characters", field,
                        max_len);
  *out = v->valuestring;
  return CS_OK;
}

bool cs_prov_token_ok(const char *s, size_t min, size_t max)
{
  size_t n = 0;

  if (!s)
    return false;
  for (; s[n]; n++) {
    if (n >= max || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
      return false;
  }
  return n >= min;
}

enum cs_err cs_prov_dup_secret(const char *s, size_t len, char **out)
{
  char *p = malloc(len + 1);

  if (!p)
    return CS_ERR_NOMEM;
  if (len)
    memcpy(p, s, len);
  p[len] = '\0';
  *out = p;
  return CS_OK;
}

enum cs_err cs_prov_payload_ok(const char *secret, size_t len)
{
  /* Only len bytes are ours to read: no reliance on a terminating NUL. */
  if (!secret || len > CS_PROV_PLAIN_MAX || memchr(secret, '\0', len))
    return CS_ERR_CRYPTO;
  return CS_OK;
}

enum cs_err cs_prov_add_secret(cJSON *obj, const char *name, const char *secret, size_t len)
{
  char *tmp = NULL;
  enum cs_err e;

  if ((e = cs_prov_dup_secret(secret, len, &tmp)) != CS_OK)
    return e;
  e = cs_prov_add_str(obj, name, tmp);
  cs_memzero(tmp, len);
  free(tmp);
  return e;
}

enum cs_err cs_prov_add_str(cJSON *obj, const char *name, const char *val)
{
  return cJSON_AddStringToObject(obj, name, val) ? CS_OK : CS_ERR_NOMEM;
}

enum cs_err cs_prov_add_item(cJSON *obj, const char *name, cJSON *item)
{
  if (!item)
    return CS_ERR_NOMEM;
  if (!cJSON_AddItemToObject(obj, name, item)) {
    cs_json_wipe_delete(item);
    return CS_ERR_NOMEM;
  }
  return CS_OK;
}
