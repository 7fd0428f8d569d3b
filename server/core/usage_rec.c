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

/* A usage index key: credential name, NUL, usage id. Its value carries the
 * usage's material and resolve stats (CS_USAGE_IDX_LEN bytes, see
 * core_internal.h), so the resolve path learns "whose usage" and its
 * material from one lookup, and a resolve's stats update rewrites those few
 * bytes instead of parsing and printing the JSON record. Entries written
 * before the stats moved here are "" ("secret") or "t" ("token"), their
 * stats still in the record's JSON until the next stats write converts
 * them. */
#define INDEX_KEY_MAX (CS_NAME_MAX + 1 + CS_ID_MAX + 1)
#define INDEX_TOKEN 't'
#define INDEX_SECRET 's'
#define INDEX_MAGIC 'S'
#define INDEX_VERSION 1
#define STATS_KEYS 3
static const char *const stats_key[STATS_KEYS] = {"resolveCount", "seenVersion", "lastResolvedAt"};

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

void cs_usage_idx_encode(enum cs_usage_material m, const struct cs_usage_stats *s,
                         uint8_t out[CS_USAGE_IDX_LEN])
{
  out[0] = INDEX_MAGIC;
  out[1] = INDEX_VERSION;
  out[2] = m == CS_MATERIAL_TOKEN ? INDEX_TOKEN : INDEX_SECRET;
  cs_store_seq_key(s->count, out + 3);
  cs_store_seq_key(s->seen, out + 11);
  cs_store_seq_key((uint64_t)s->last, out + 19);
}

enum cs_err cs_usage_idx_decode(const void *val, size_t len, enum cs_usage_material *m,
                                struct cs_usage_stats *s, bool *has_stats)
{
  const uint8_t *p = val;
  struct cs_usage_stats st = {0, 0, 0};

  if (len == 0 || (len == 1 && p[0] == INDEX_TOKEN)) { /* the old format: material only */
    *m = len == 1 ? CS_MATERIAL_TOKEN : CS_MATERIAL_SECRET;
    *s = st;
    *has_stats = false;
    return CS_OK;
  }
  if (len != CS_USAGE_IDX_LEN || p[0] != INDEX_MAGIC || p[1] != INDEX_VERSION ||
      (p[2] != INDEX_TOKEN && p[2] != INDEX_SECRET))
    return CS_ERR_STORE;
  st.count = cs_store_seq_from_key(p + 3, 8);
  st.seen = cs_store_seq_from_key(p + 11, 8);
  st.last = (int64_t)cs_store_seq_from_key(p + 19, 8);
  if (st.last < 0)
    return CS_ERR_STORE;
  *m = p[2] == INDEX_TOKEN ? CS_MATERIAL_TOKEN : CS_MATERIAL_SECRET;
  *s = st;
  *has_stats = true;
  return CS_OK;
}

/* A stats member of a JSON record as a count or time (absent, null or
 * negative: 0). */
static uint64_t json_stat(const cJSON *rec, const char *name)
{
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(rec, name);
  return cJSON_IsNumber(n) && n->valuedouble > 0 ? (uint64_t)n->valuedouble : 0;
}

static void stats_of_json(const cJSON *rec, struct cs_usage_stats *s)
{
  s->count = json_stat(rec, "resolveCount");
  s->seen = json_stat(rec, "seenVersion");
  s->last = (int64_t)json_stat(rec, "lastResolvedAt");
}

/* Put @p s into @p rec's stats members (the logical record callers see). */
static enum cs_err stats_to_json(cJSON *rec, const struct cs_usage_stats *s)
{
  cJSON *v[STATS_KEYS] = {cJSON_CreateNumber((double)s->count), cJSON_CreateNumber((double)s->seen),
                          s->last > 0 ? cJSON_CreateNumber((double)s->last) : cJSON_CreateNull()};
  enum cs_err e = CS_OK;

  for (int i = 0; i < STATS_KEYS; i++) {
    cJSON_DeleteItemFromObjectCaseSensitive(rec, stats_key[i]);
    if (!v[i] || e) {
      cJSON_Delete(v[i]);
      e = CS_ERR_NOMEM;
    } else if (!cJSON_AddItemToObjectCS(rec, stats_key[i], v[i])) { /* static names */
      cJSON_Delete(v[i]);
      e = CS_ERR_NOMEM;
    }
  }
  return e;
}

/* Parse the JSON of usage @p id, with the stats of its index entry @p s
 * when that entry has them. */
static enum cs_err load_with(struct cs_txn *txn, const char *id, const struct cs_usage_stats *s,
                             cJSON **out)
{
  struct cs_val v;
  cJSON *rec = NULL;
  enum cs_err e = cs_txn_get(txn, CS_TBL_USAGES, id, strlen(id), &v);
  if (e)
    return e;
  if (cs_json_parse(v.data, v.len, USAGE_JSON_DEPTH, &rec))
    return CS_ERR_STORE;
  if (s && (e = stats_to_json(rec, s))) {
    cJSON_Delete(rec);
    return e;
  }
  *out = rec;
  return CS_OK;
}

/* The decoded index entry of @p usage_id of @p cred_id. */
static enum cs_err index_get(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                             enum cs_usage_material *m, struct cs_usage_stats *s, bool *has)
{
  char ikey[INDEX_KEY_MAX];
  size_t klen = index_key(cred_id, usage_id, ikey, sizeof ikey);
  struct cs_val v;
  enum cs_err e = klen ? cs_txn_get(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, &v) : CS_ERR_NOT_FOUND;

  return e ? e : cs_usage_idx_decode(v.data, v.len, m, s, has);
}

enum cs_err cs_usage_load(struct cs_txn *txn, const char *id, cJSON **out)
{
  cJSON *rec = NULL;
  enum cs_usage_material m;
  struct cs_usage_stats s;
  bool has = false;
  enum cs_err e = load_with(txn, id, NULL, &rec);

  if (e)
    return e;
  const cJSON *cred = cJSON_GetObjectItemCaseSensitive(rec, "credentialId");
  if (!cJSON_IsString(cred))
    e = CS_ERR_STORE;
  else if ((e = index_get(txn, cred->valuestring, id, &m, &s, &has)) == CS_ERR_NOT_FOUND)
    e = CS_OK; /* no index entry (mid-removal): the record as stored */
  else if (!e && has)
    e = stats_to_json(rec, &s);
  if (e) {
    cJSON_Delete(rec);
    return e;
  }
  *out = rec;
  return CS_OK;
}

/* Print @p rec without its stats members, which live in the index entry. */
static char *print_without_stats(cJSON *rec)
{
  cJSON *held[STATS_KEYS];
  char *text;

  for (int i = 0; i < STATS_KEYS; i++)
    held[i] = cJSON_DetachItemFromObjectCaseSensitive(rec, stats_key[i]);
  text = cs_json_print(rec);
  for (int i = 0; i < STATS_KEYS; i++)
    if (held[i])
      cJSON_AddItemToObjectCS(rec, stats_key[i], held[i]); /* a static name: no allocation */
  return text;
}

enum cs_err cs_usage_save(struct cs_txn *txn, cJSON *rec, unsigned flags)
{
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
  const cJSON *cred = cJSON_GetObjectItemCaseSensitive(rec, "credentialId");
  char *text = NULL;
  enum cs_err e = CS_ERR_INVALID;

  if (!cJSON_IsString(id) || !cJSON_IsString(cred))
    goto out;
  e = CS_ERR_NOMEM;
  if (!(text = print_without_stats(rec)))
    goto out;
  if (!(e = cs_txn_put(txn, CS_TBL_USAGES, id->valuestring, strlen(id->valuestring), text,
                       strlen(text), flags)))
    e = cs_usage_index(txn, cred->valuestring, id->valuestring, rec);
out:
  free(text);
  return e;
}

enum cs_err cs_usage_index(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                           const cJSON *rec)
{
  char ikey[INDEX_KEY_MAX];
  uint8_t val[CS_USAGE_IDX_LEN];
  size_t klen = index_key(cred_id, usage_id, ikey, sizeof ikey);
  struct cs_usage_stats s;

  if (!klen)
    return CS_ERR_INVALID;
  if (!rec)
    return cs_txn_del(txn, CS_TBL_USAGES_BY_CRED, ikey, klen);
  stats_of_json(rec, &s);
  cs_usage_idx_encode(cs_usage_material(rec), &s, val);
  return cs_txn_put(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, val, sizeof val, 0);
}

enum cs_err cs_usage_indexed(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                             enum cs_usage_material *material)
{
  enum cs_usage_material m;
  struct cs_usage_stats s;
  bool has;
  enum cs_err e = index_get(txn, cred_id, usage_id, &m, &s, &has);

  if (!e && material)
    *material = m;
  return e;
}

/* resolveCount + @p n, seenVersion raised to @p version, lastResolvedAt @p now. */
static void bump(struct cs_usage_stats *s, unsigned n, uint64_t version, int64_t now)
{
  s->count += n;
  s->seen = version > s->seen ? version : s->seen;
  s->last = now > 0 ? now : 0;
}

/* An entry in the old format: its stats are in the JSON record, which is
 * rewritten once without them as its index entry takes them over. */
static enum cs_err bump_converting(struct cs_txn *txn, const char *usage_id, unsigned n,
                                   uint64_t version, int64_t now)
{
  cJSON *rec = NULL;
  struct cs_usage_stats s;
  enum cs_err e = load_with(txn, usage_id, NULL, &rec);

  if (e)
    return e;
  stats_of_json(rec, &s);
  bump(&s, n, version, now);
  if (!(e = stats_to_json(rec, &s)))
    e = cs_usage_save(txn, rec, 0);
  cJSON_Delete(rec);
  return e;
}

enum cs_err cs_usage_bump(struct cs_txn *txn, const char *cred_id, const char *usage_id, unsigned n,
                          uint64_t version, int64_t now)
{
  char ikey[INDEX_KEY_MAX];
  uint8_t val[CS_USAGE_IDX_LEN];
  size_t klen = index_key(cred_id, usage_id, ikey, sizeof ikey);
  enum cs_usage_material m;
  struct cs_usage_stats s;
  struct cs_val v;
  bool has;
  enum cs_err e = klen ? cs_txn_get(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, &v) : CS_ERR_NOT_FOUND;

  if (e || (e = cs_usage_idx_decode(v.data, v.len, &m, &s, &has)))
    return e;
  if (!has)
    return bump_converting(txn, usage_id, n, version, now);
  bump(&s, n, version, now);
  cs_usage_idx_encode(m, &s, val);
  return cs_txn_put(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, val, sizeof val, 0);
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
    enum cs_usage_material m;
    struct cs_usage_stats s;
    bool has;
    if (k.len <= plen || memcmp(k.data, cred_id, plen) != 0)
      break;
    if (k.len - plen > CS_ID_MAX) {
      e = CS_ERR_STORE;
      break;
    }
    memcpy(uid, (const char *)k.data + plen, k.len - plen);
    uid[k.len - plen] = '\0';
    /* The entry in hand has the stats: no second lookup per usage. */
    if ((e = cs_usage_idx_decode(v.data, v.len, &m, &s, &has)) ||
        (e = load_with(txn, uid, has ? &s : NULL, &rec)))
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
