/* The usage record and its index (layout in core_internal.h): the codec,
 * the associated data of the sealed callback secret ("usage:<id>"), and
 * the walk over a credential's usages. The only file that knows them. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_JSON_DEPTH 8
#define SEALED_KEY "callbackSecretSealed"
#define MATERIAL_KEY "material"
#define SEALED_MAX 4096 /* bytes of a sealed callback secret (64 hex chars sealed: ~108) */

/* The associated data of a usage's sealed callback secret. */
static void record_id(const char *usage_id, char out[CS_ID_MAX + 8])
{
  snprintf(out, CS_ID_MAX + 8, "usage:%s", usage_id);
}

/* A usage index key: credential name, NUL, usage id. Its value is empty
 * for a "secret" usage and INDEX_TOKEN for a "token" one, so the resolve
 * path learns both "whose usage" and its material from one lookup. */
#define INDEX_KEY_MAX (CS_NAME_MAX + 1 + CS_ID_MAX + 1)
#define INDEX_TOKEN 't'

static size_t index_key(const char *cred_id, const char *usage_id, char *out, size_t cap)
{
  size_t a = strlen(cred_id), b = strlen(usage_id);
  if (a + 1 + b > cap)
    return 0;
  memcpy(out, cred_id, a);
  out[a] = '\0';
  memcpy(out + a + 1, usage_id, b);
  return a + 1 + b;
}

enum cs_err cs_usage_load(struct cs_txn *txn, const char *id, cJSON **out)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_USAGES, id, strlen(id), &v);
  if (e)
    return e;
  if (cs_json_parse(v.data, v.len, USAGE_JSON_DEPTH, out))
    return CS_ERR_STORE;
  return CS_OK;
}

enum cs_err cs_usage_save(struct cs_txn *txn, const cJSON *rec, unsigned flags)
{
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
  char *text = cs_json_print(rec);
  if (!text || !cJSON_IsString(id)) {
    free(text);
    return CS_ERR_NOMEM;
  }
  enum cs_err e = cs_txn_put(txn, CS_TBL_USAGES, id->valuestring, strlen(id->valuestring), text,
                             strlen(text), flags);
  free(text);
  return e;
}

enum cs_err cs_usage_index(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                           const cJSON *rec)
{
  char ikey[INDEX_KEY_MAX];
  static const char token[1] = {INDEX_TOKEN};
  size_t klen = index_key(cred_id, usage_id, ikey, sizeof ikey);
  bool tok = rec && cs_usage_material(rec) == CS_MATERIAL_TOKEN;

  if (!klen)
    return CS_ERR_INVALID;
  return rec ? cs_txn_put(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, tok ? token : "", tok ? 1 : 0, 0)
             : cs_txn_del(txn, CS_TBL_USAGES_BY_CRED, ikey, klen);
}

enum cs_err cs_usage_indexed(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                             enum cs_usage_material *material)
{
  char ikey[INDEX_KEY_MAX];
  size_t klen = index_key(cred_id, usage_id, ikey, sizeof ikey);
  struct cs_val v;
  enum cs_err e = klen ? cs_txn_get(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, &v) : CS_ERR_NOT_FOUND;

  if (!e && material)
    *material = v.len == 1 && ((const char *)v.data)[0] == INDEX_TOKEN ? CS_MATERIAL_TOKEN
                                                                       : CS_MATERIAL_SECRET;
  return e;
}

const char *cs_usage_material_name(enum cs_usage_material m)
{
  return m == CS_MATERIAL_TOKEN ? "token" : "secret";
}

enum cs_err cs_usage_material_parse(const char *s, enum cs_usage_material *out)
{
  if (strcmp(s, "secret") == 0)
    *out = CS_MATERIAL_SECRET;
  else if (strcmp(s, "token") == 0)
    *out = CS_MATERIAL_TOKEN;
  else
    return CS_ERR_INVALID;
  return CS_OK;
}

enum cs_err cs_usage_set_material(cJSON *rec, enum cs_usage_material m)
{
  cJSON_DeleteItemFromObjectCaseSensitive(rec, MATERIAL_KEY);
  if (m == CS_MATERIAL_SECRET)
    return CS_OK;
  return cJSON_AddStringToObject(rec, MATERIAL_KEY, "token") ? CS_OK : CS_ERR_NOMEM;
}

enum cs_usage_material cs_usage_material(const cJSON *rec)
{
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, MATERIAL_KEY);
  /* Anything but "token" is read as the default; only this file writes it. */
  return cJSON_IsString(m) && strcmp(m->valuestring, "token") == 0 ? CS_MATERIAL_TOKEN
                                                                   : CS_MATERIAL_SECRET;
}

enum cs_err cs_usage_each(struct cs_txn *txn, const char *cred_id,
                          enum cs_err (*fn)(cJSON *rec, void *arg), void *arg)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  size_t plen = strlen(cred_id) + 1;
  enum cs_err e;

  if ((e = cs_cursor_open(txn, CS_TBL_USAGES_BY_CRED, &c)))
    return e;
  for (e = cs_cursor_seek(c, cred_id, plen, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v)) {
    char uid[CS_ID_MAX + 1];
    cJSON *rec = NULL;
    if (k.len <= plen || memcmp(k.data, cred_id, plen) != 0)
      break;
    if (k.len - plen > CS_ID_MAX) {
      e = CS_ERR_STORE;
      break;
    }
    memcpy(uid, (const char *)k.data + plen, k.len - plen);
    uid[k.len - plen] = '\0';
    if ((e = cs_usage_load(txn, uid, &rec)))
      break;
    e = fn(rec, arg);
    cJSON_Delete(rec);
    if (e)
      break;
  }
  cs_cursor_close(c);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

/* Store @p sealed as hex under SEALED_KEY in @p rec (added or replaced). */
static enum cs_err put_sealed(cJSON *rec, const uint8_t *sealed, size_t len)
{
  char *hex = malloc(2 * len + 1);
  cJSON *item;

  if (!hex)
    return CS_ERR_NOMEM;
  cs_hex(sealed, len, hex);
  item = cJSON_CreateString(hex);
  free(hex);
  if (!item)
    return CS_ERR_NOMEM;
  if (cJSON_HasObjectItem(rec, SEALED_KEY)
          ? cJSON_ReplaceItemInObjectCaseSensitive(rec, SEALED_KEY, item)
          : cJSON_AddItemToObject(rec, SEALED_KEY, item))
    return CS_OK;
  cJSON_Delete(item);
  return CS_ERR_NOMEM;
}

/* The sealed callback secret of @p rec, decoded. Caller frees *out. */
static enum cs_err get_sealed(const cJSON *rec, uint8_t **out, size_t *len)
{
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, SEALED_KEY);
  uint8_t *buf;
  enum cs_err e;

  if (!cJSON_IsString(s))
    return CS_ERR_NOT_FOUND;
  if (!(buf = malloc(SEALED_MAX)))
    return CS_ERR_NOMEM;
  if ((e = cs_unhex(s->valuestring, strlen(s->valuestring), buf, SEALED_MAX, len))) {
    free(buf);
    return CS_ERR_STORE;
  }
  *out = buf;
  return CS_OK;
}

enum cs_err cs_usage_seal_callback(const struct cs_keyring *kr, const char *id, const char *secret,
                                   cJSON *rec)
{
  char rid[CS_ID_MAX + 8];
  uint8_t *sealed = NULL;
  size_t len = 0;
  enum cs_err e;

  record_id(id, rid);
  if ((e = cs_seal(kr, rid, (const uint8_t *)secret, strlen(secret), &sealed, &len)))
    return e;
  e = put_sealed(rec, sealed, len);
  free(sealed);
  return e;
}

enum cs_err cs_usage_open_callback(const struct cs_keyring *kr, const char *id, const cJSON *rec,
                                   char **secret)
{
  char rid[CS_ID_MAX + 8];
  uint8_t *sealed = NULL, *plain = NULL;
  size_t len = 0, plen = 0;
  enum cs_err e;

  if ((e = get_sealed(rec, &sealed, &len)))
    return e;
  record_id(id, rid);
  if (!(e = cs_open(kr, rid, sealed, len, &plain, &plen)))
    *secret = (char *)plain; /* NUL-terminated by cs_open */
  free(sealed);
  return e;
}

enum cs_err cs_usage_reseal(const struct cs_keyring *kr, const char *id, cJSON *rec)
{
  char rid[CS_ID_MAX + 8];
  uint8_t *old = NULL, *sealed = NULL;
  size_t len = 0, sealed_len = 0;
  enum cs_err e;

  if ((e = get_sealed(rec, &old, &len)))
    return e == CS_ERR_STORE ? CS_ERR_CRYPTO : e;
  record_id(id, rid);
  if (!(e = cs_reseal(kr, rid, old, len, &sealed, &sealed_len)))
    e = put_sealed(rec, sealed, sealed_len);
  free(sealed);
  free(old);
  return e;
}
