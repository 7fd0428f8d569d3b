/* The access-key record (layout in core_internal.h): the codec and the role
 * names it stores, the one place that knows its JSON members. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

#define KEY_JSON_DEPTH 8

static const char *const role_names[CS_ROLE__COUNT] = {"admin", "operator", "auditor", "ci"};

const char *cs_role_name(enum cs_role r)
{
  return (unsigned)r < CS_ROLE__COUNT ? role_names[r] : "none";
}

enum cs_err cs_role_parse(const char *s, enum cs_role *out)
{
  for (int i = 0; i < CS_ROLE__COUNT; i++) {
    if (strcmp(s, role_names[i]) == 0) {
      *out = (enum cs_role)i;
      return CS_OK;
    }
  }
  return CS_ERR_INVALID;
}

enum cs_err cs_key_encode(const char *id, const struct cs_key_spec *spec, int64_t created_at,
                          const uint8_t hash[CS_HASH_BYTES], char **out)
{
  char hash_hex[2 * CS_HASH_BYTES + 1];
  cJSON *rec = cJSON_CreateObject(), *scope = NULL;
  char *text = NULL;

  cs_hex(hash, CS_HASH_BYTES, hash_hex);
  if (!rec || !cJSON_AddStringToObject(rec, "id", id) ||
      !cJSON_AddStringToObject(rec, "name", spec->name) ||
      !cJSON_AddStringToObject(rec, "role", cs_role_name(spec->role)) ||
      !cJSON_AddNumberToObject(rec, "createdAt", (double)created_at))
    goto out;
  if (spec->scope) {
    if (!(scope = cJSON_Duplicate(spec->scope, true)))
      goto out;
    cJSON_AddItemToObject(rec, "scope", scope);
  }
  if (spec->expires_at && !cJSON_AddNumberToObject(rec, "expiresAt", (double)spec->expires_at))
    goto out;
  if (spec->owner && !cJSON_AddStringToObject(rec, "owner", spec->owner))
    goto out;
  if (cJSON_AddStringToObject(rec, "hash", hash_hex))
    text = cs_json_print(rec);
out:
  cJSON_Delete(rec);
  if (!text)
    return CS_ERR_NOMEM;
  *out = text;
  return CS_OK;
}

enum cs_err cs_key_parse(const struct cs_val *v, cJSON **out)
{
  cJSON *j;
  if (cs_json_parse(v->data, v->len, KEY_JSON_DEPTH, &j))
    return CS_ERR_STORE;
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return CS_ERR_STORE;
  }
  *out = j;
  return CS_OK;
}

/* Exactly 2 * CS_HASH_BYTES lowercase hex digits, as cs_hex() writes them. */
static bool hash_ok(const char *hex)
{
  return hex && strlen(hex) == 2 * CS_HASH_BYTES &&
         strspn(hex, "0123456789abcdef") == 2 * CS_HASH_BYTES;
}

enum cs_err cs_key_decode(const cJSON *j, struct cs_key_rec *k)
{
  const char *role = NULL, *hash = NULL;
  int64_t created = 0, expires = 0;
  cJSON *scope = cJSON_GetObjectItemCaseSensitive(j, "scope");

  if (cs_json_opt_string(j, "role", 16, &role) || !role || cs_role_parse(role, &k->role) ||
      cs_json_opt_string(j, "hash", 64, &hash) || !hash_ok(hash) ||
      cs_json_opt_int(j, "createdAt", 0, INT64_MAX / 2, &created) ||
      cs_json_opt_int(j, "expiresAt", 0, INT64_MAX / 2, &expires) ||
      (scope && !cJSON_IsArray(scope)))
    return CS_ERR_STORE;
  k->created_at = created;
  k->expires_at = expires;
  memcpy(k->hash_hex, hash, sizeof k->hash_hex);
  k->scope = scope;
  return CS_OK;
}

/* Every authenticated request reads its key's record, so that deletion and
 * expiry revoke at once (also from the watch-fed copy in cluster mode); the
 * cJSON parse of it was ~14,000 instructions a request. Each thread keeps
 * the last few records it decoded, keyed by the id and the exact stored
 * bytes: a record that differs in any byte is decoded afresh. A scope is
 * kept as its compact JSON and parsed alone on a hit (the caller owns the
 * tree); records too large for a slot are not kept. */
#define KEY_CACHE 4
#define KEY_CACHE_RAW 1024

struct key_slot {
  size_t id_len, raw_len, scope_len; /* raw_len 0: empty slot */
  char id[CS_KEY_ID_MAX];
  char raw[KEY_CACHE_RAW];
  char scope[KEY_CACHE_RAW];
  struct cs_key_rec rec; /* rec.scope unused */
};

static _Thread_local struct key_slot key_cache[KEY_CACHE];
static _Thread_local unsigned key_next;

static const struct key_slot *cache_find(const char *id, size_t id_len, const struct cs_val *v)
{
  for (unsigned i = 0; i < KEY_CACHE; i++) {
    const struct key_slot *s = &key_cache[i];
    if (s->raw_len && s->raw_len == v->len && s->id_len == id_len &&
        memcmp(s->id, id, id_len) == 0 && memcmp(s->raw, v->data, v->len) == 0)
      return s;
  }
  return NULL;
}

static void cache_put(const char *id, size_t id_len, const struct cs_val *v,
                      const struct cs_key_rec *k)
{
  struct key_slot *s = &key_cache[key_next++ % KEY_CACHE];
  char *scope = k->scope ? cs_json_print(k->scope) : NULL;
  size_t scope_len = scope ? strlen(scope) : 0;

  s->raw_len = 0;
  if (v->len <= sizeof s->raw && (!k->scope || (scope && scope_len <= sizeof s->scope))) {
    memcpy(s->id, id, id_len);
    s->id_len = id_len;
    memcpy(s->raw, v->data, v->len);
    if (scope_len)
      memcpy(s->scope, scope, scope_len);
    s->scope_len = scope_len;
    s->rec = *k;
    s->rec.scope = NULL;
    s->raw_len = v->len;
  }
  free(scope);
}

static enum cs_err key_from_slot(const struct key_slot *s, struct cs_key_rec *out)
{
  cJSON *scope = NULL;
  if (s->scope_len && cs_json_parse(s->scope, s->scope_len, KEY_JSON_DEPTH, &scope))
    return CS_ERR_NOMEM; /* our own print: only memory can fail it */
  *out = s->rec;
  out->scope = scope;
  return CS_OK;
}

static enum cs_err key_from_record(const struct cs_val *v, struct cs_key_rec *k)
{
  cJSON *j = NULL;
  enum cs_err e = cs_key_parse(v, &j);

  if (!e && !(e = cs_key_decode(j, k)))
    k->scope = cJSON_DetachItemFromObjectCaseSensitive(j, "scope");
  cJSON_Delete(j);
  return e;
}

enum cs_err cs_key_load(struct cs_txn *txn, const char *id, struct cs_key_rec *out)
{
  struct cs_val v;
  struct cs_key_rec k = {0};
  const struct key_slot *s;
  size_t id_len = strlen(id);
  enum cs_err e;

  if (id_len > CS_KEY_ID_MAX)
    return CS_ERR_NOT_FOUND;
  if ((e = cs_txn_get(txn, CS_TBL_KEYS, id, id_len, &v)))
    return e;
  if ((s = cache_find(id, id_len, &v)))
    e = key_from_slot(s, &k);
  else if (!(e = key_from_record(&v, &k)))
    cache_put(id, id_len, &v, &k);
  if (e)
    return e;
  memcpy(k.id, id, id_len + 1);
  *out = k;
  return CS_OK;
}

cJSON *cs_key_public_json(const cJSON *rec)
{
  cJSON *o = cJSON_Duplicate(rec, true);
  if (!o)
    return NULL;
  cJSON_DeleteItemFromObjectCaseSensitive(o, "hash");
  /* Times are stored as epoch seconds and shown as RFC 3339. */
  const char *names[] = {"createdAt", "expiresAt"};
  for (size_t i = 0; i < 2; i++) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(o, names[i]);
    if (t && cJSON_IsNumber(t)) {
      char buf[32];
      cs_time_format((int64_t)t->valuedouble, buf);
      cJSON *s = cJSON_CreateString(buf);
      if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(o, names[i], s)) {
        cJSON_Delete(s);
        cJSON_Delete(o);
        return NULL;
      }
    }
  }
  return o;
}
