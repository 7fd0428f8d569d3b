#include "prov_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct cs_provider *const cs_providers[] = {
    &cs_provider_aws,       &cs_provider_azure,      &cs_provider_gcp,
    &cs_provider_ibmcloud,  &cs_provider_kubeconfig, NULL,
};

static const struct cs_provider_net *const nets[] = {
    &cs_net_aws, &cs_net_azure, &cs_net_gcp, &cs_net_ibmcloud, &cs_net_kubeconfig, NULL,
};

const struct cs_provider_net *cs_provider_net_find(const char *type)
{
  if (!type)
    return NULL;
  for (size_t i = 0; nets[i]; i++)
    if (strcmp(nets[i]->type, type) == 0)
      return nets[i];
  return NULL;
}

const struct cs_provider *cs_provider_find(const char *type)
{
  if (!type)
    return NULL;
  for (size_t i = 0; cs_providers[i]; i++)
    if (strcmp(cs_providers[i]->type, type) == 0)
      return cs_providers[i];
  return NULL;
}

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
    return cs_prov_fail(err, CS_ERR_INVALID, holder, "%s must be an object like {\"plain\": \"...\"}",
                        holder);
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

enum cs_err cs_prov_opt_str(const cJSON *obj, const char *name, size_t max_len,
                            const char **out, struct cs_prov_error *err)
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

static void wipe_one(cJSON *j);

static void wipe_list(cJSON *first)
{
  for (cJSON *c = first; c; c = c->next)
    wipe_one(c);
}

/* cJSON_Delete frees without clearing, so secrets parsed out of a payload
 * (clientSecret, private_key, tokens) would linger in freed heap. Recursion
 * depth is the tree's, which every parser here caps. */
static void wipe_one(cJSON *j)
{
  if (j->type & cJSON_IsReference)
    return;
  if (j->valuestring)
    cs_memzero(j->valuestring, strlen(j->valuestring));
  if (j->string && !(j->type & cJSON_StringIsConst))
    cs_memzero(j->string, strlen(j->string));
  wipe_list(j->child);
}

void cs_prov_json_wipe(cJSON *j)
{
  if (j)
    wipe_one(j);
}

void cs_prov_json_free_secret(cJSON *j)
{
  cs_prov_json_wipe(j);
  cJSON_Delete(j);
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
    cs_prov_json_free_secret(item);
    return CS_ERR_NOMEM;
  }
  return CS_OK;
}
