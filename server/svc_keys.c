/* Access keys: roles, records, creation, lookup, deletion (API.md §2).
 * A record is JSON: {"id","name","role","scope"?,"createdAt","expiresAt"?,
 * "owner"?,"hash"}; only the keyed BLAKE2b hash of the secret is kept. */
#include "server.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

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

bool cs_scope_allows(const cJSON *scope, const char *id)
{
  const cJSON *p;
  if (!scope)
    return true;
  cJSON_ArrayForEach(p, scope)
  {
    if (cJSON_IsString(p) && fnmatch(p->valuestring, id, 0) == 0)
      return true;
  }
  return false;
}

/* fnmatch(3) metacharacters (without FNM_NOESCAPE). A stored pattern never
 * holds '\\' (the create handler's alphabet), but it is listed so an escape
 * is never mistaken for a plain character. */
#define GLOB_META "*?[\\"

bool cs_pattern_covers(const char *p, const char *q)
{
  size_t n = strlen(p);

  if (strcmp(p, q) == 0)
    return true;
  /* A literal q matches exactly itself, so fnmatch decides. */
  if (!strpbrk(q, GLOB_META))
    return fnmatch(p, q, 0) == 0;
  /* p = literal prefix + '*': q's first n-1 characters are that literal
   * prefix, so every id q matches starts with it, and p matches it. Any
   * other shape is refused: deciding glob inclusion in general is not
   * worth the risk of a wrong yes (fnmatch(p, q) is one: "a?" matches the
   * text "a*", yet "a*" matches "abc"). */
  if (n > 0 && p[n - 1] == '*' && strcspn(p, GLOB_META) == n - 1)
    return strncmp(p, q, n - 1) == 0;
  return false;
}

/* Is pattern @p q covered by some pattern of scope @p k (not NULL)? */
static bool scope_covers(const cJSON *k, const char *q)
{
  const cJSON *p;

  cJSON_ArrayForEach(p, k)
  {
    if (cJSON_IsString(p) && cs_pattern_covers(p->valuestring, q))
      return true;
  }
  return false;
}

bool cs_scope_within(const cJSON *j, const cJSON *k)
{
  const cJSON *q;

  if (!k)
    return true; /* every credential: even a record we cannot read is within */
  if (!j)
    return scope_covers(k, "*"); /* every credential, as the pattern "*" */
  cJSON_ArrayForEach(q, j)
  {
    /* A pattern we cannot read is never assumed narrow. */
    if (!cJSON_IsString(q) || !scope_covers(k, q->valuestring))
      return false;
  }
  return true;
}

bool cs_key_within(const struct cs_key_bounds *j, const struct cs_key_bounds *k)
{
  if (k->expires_at && (!j->expires_at || j->expires_at > k->expires_at))
    return false;
  return cs_scope_within(j->scope, k->scope);
}

enum cs_err cs_key_spec_bound(struct cs_key_spec *spec, const struct cs_key_bounds *by,
                              const char **field)
{
  if (!spec->scope)
    spec->scope = by->scope;
  if (!spec->expires_at)
    spec->expires_at = by->expires_at;
  if (cs_key_within(&(struct cs_key_bounds){spec->scope, spec->expires_at}, by))
    return CS_OK;
  *field = cs_scope_within(spec->scope, by->scope) ? "expiresAt" : "scope";
  return CS_ERR_FORBIDDEN;
}

enum cs_err cs_keys_create(struct cs_txn *txn, const struct cs_keyring *kr,
                           const struct cs_key_spec *spec, struct cs_new_key *out)
{
  struct cs_new_key k;
  uint8_t hash[CS_HASH_BYTES];
  char hash_hex[2 * CS_HASH_BYTES + 1];
  cJSON *rec = NULL, *scope = NULL;
  char *text = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  memcpy(k.id, "ak-", 3);
  cs_random_hex(k.id + 3, CS_KEY_ID_HEX);
  cs_random_hex(k.secret, CS_KEY_SECRET_HEX);
  k.created_at = cs_now();
  cs_secret_hash(kr, k.secret, strlen(k.secret), hash);
  cs_hex(hash, sizeof hash, hash_hex);

  rec = cJSON_CreateObject();
  if (!rec || !cJSON_AddStringToObject(rec, "id", k.id) ||
      !cJSON_AddStringToObject(rec, "name", spec->name) ||
      !cJSON_AddStringToObject(rec, "role", cs_role_name(spec->role)) ||
      !cJSON_AddNumberToObject(rec, "createdAt", (double)k.created_at))
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
  if (!cJSON_AddStringToObject(rec, "hash", hash_hex) || !(text = cs_json_print(rec)))
    goto out;
  e = cs_txn_put(txn, CS_TBL_KEYS, k.id, strlen(k.id), text, strlen(text), CS_PUT_NO_OVERWRITE);
  if (e)
    goto out;
  *out = k;
out:
  cs_memzero(&k, sizeof k);
  cJSON_Delete(rec);
  free(text);
  return e;
}

static enum cs_err parse_rec(const struct cs_val *v, cJSON **out)
{
  cJSON *j;
  if (cs_json_parse(v->data, v->len, 8, &j))
    return CS_ERR_STORE;
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return CS_ERR_STORE;
  }
  *out = j;
  return CS_OK;
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
  if (!s || strlen(s) != 2 * n)
    return false;
  for (size_t i = 0; i < n; i++) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
      char c = s[2 * i + k];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (d < 0)
        return false;
      v = v * 16 + d;
    }
    out[i] = (uint8_t)v;
  }
  return true;
}

/* Decode a parsed record into @p k, exactly: the role by name, the hash,
 * the times and the scope (borrowed from @p j; NULL when absent). */
static enum cs_err rec_decode(const cJSON *j, struct cs_key_rec *k)
{
  const char *role = NULL, *hash = NULL;
  int64_t created = 0, expires = 0;
  cJSON *scope = cJSON_GetObjectItemCaseSensitive(j, "scope");

  if (cs_json_opt_string(j, "role", 16, &role) || !role || cs_role_parse(role, &k->role) ||
      cs_json_opt_string(j, "hash", 64, &hash) || !unhex(hash, k->hash, sizeof k->hash) ||
      cs_json_opt_int(j, "createdAt", 0, INT64_MAX / 2, &created) ||
      cs_json_opt_int(j, "expiresAt", 0, INT64_MAX / 2, &expires) ||
      (scope && !cJSON_IsArray(scope)))
    return CS_ERR_STORE;
  k->created_at = created;
  k->expires_at = expires;
  k->scope = scope;
  return CS_OK;
}

enum cs_err cs_keys_load(struct cs_txn *txn, const char *id, struct cs_key_rec *out)
{
  struct cs_val v;
  struct cs_key_rec k = {0};
  cJSON *j = NULL;
  enum cs_err e;

  if (strlen(id) > CS_KEY_ID_MAX)
    return CS_ERR_NOT_FOUND;
  if ((e = cs_txn_get(txn, CS_TBL_KEYS, id, strlen(id), &v)))
    return e;
  if ((e = parse_rec(&v, &j)))
    return e;
  if (!(e = rec_decode(j, &k))) {
    k.scope = cJSON_DetachItemFromObjectCaseSensitive(j, "scope");
    memcpy(k.id, id, strlen(id) + 1);
    *out = k;
  }
  cJSON_Delete(j);
  return e;
}

cJSON *cs_keys_public_json(const cJSON *rec)
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

enum cs_err cs_keys_list(struct cs_txn *txn, const struct cs_key_bounds *by, cJSON **out)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  cJSON *arr = cJSON_CreateArray();
  enum cs_err e;

  if (!arr)
    return CS_ERR_NOMEM;
  if ((e = cs_cursor_open(txn, CS_TBL_KEYS, &c)))
    goto out;
  for (e = cs_cursor_seek(c, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v)) {
    struct cs_key_rec kr = {0};
    cJSON *rec = NULL, *pub;
    if ((e = parse_rec(&v, &rec)))
      goto out;
    /* A record that does not decode has no bounds to trust: only an
     * unbounded caller sees it. */
    bool seen = rec_decode(rec, &kr) == CS_OK
                    ? cs_key_within(&(struct cs_key_bounds){kr.scope, kr.expires_at}, by)
                    : !by->scope && !by->expires_at;
    if (!seen) {
      cJSON_Delete(rec);
      continue;
    }
    pub = cs_keys_public_json(rec);
    cJSON_Delete(rec);
    if (!pub) {
      e = CS_ERR_NOMEM;
      goto out;
    }
    cJSON_AddItemToArray(arr, pub);
  }
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK;
out:
  cs_cursor_close(c);
  if (e) {
    cJSON_Delete(arr);
    return e;
  }
  *out = arr;
  return CS_OK;
}

/* A key that can recover everything: a live admin whose scope covers every
 * credential. Scoped admins cannot mint unscoped keys, so they do not count. */
static bool full_admin(const struct cs_key_rec *k, int64_t now)
{
  return k->role == CS_ROLE_ADMIN && (!k->expires_at || k->expires_at > now) &&
         cs_scope_within(NULL, k->scope);
}

/* Is there a full admin other than @p id? Unreadable records cannot log in,
 * so they do not count. */
static enum cs_err other_full_admin(struct cs_txn *txn, const char *id, int64_t now,
                                    bool *found)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  size_t idlen = strlen(id);
  enum cs_err e;

  *found = false;
  if ((e = cs_cursor_open(txn, CS_TBL_KEYS, &c)))
    return e;
  for (e = cs_cursor_seek(c, NULL, 0, &k, &v); e == CS_OK && !*found;
       e = cs_cursor_next(c, &k, &v)) {
    struct cs_key_rec kr = {0};
    cJSON *rec = NULL;
    if ((k.len == idlen && memcmp(k.data, id, idlen) == 0) || parse_rec(&v, &rec))
      continue;
    *found = rec_decode(rec, &kr) == CS_OK && full_admin(&kr, now);
    cJSON_Delete(rec);
  }
  cs_cursor_close(c);
  return e == CS_ERR_NOT_FOUND || e == CS_OK ? CS_OK : e;
}

enum cs_err cs_keys_delete(struct cs_txn *txn, const struct cs_key_bounds *by, const char *id)
{
  struct cs_key_rec victim;
  int64_t now = cs_now();
  bool within, guarded, other = false;
  enum cs_err e;

  if ((e = cs_keys_load(txn, id, &victim)))
    return e;
  within = cs_key_within(&(struct cs_key_bounds){victim.scope, victim.expires_at}, by);
  guarded = full_admin(&victim, now);
  cJSON_Delete(victim.scope);
  /* A key outside the caller's bounds answers like one that does not exist. */
  if (!within)
    return CS_ERR_NOT_FOUND;
  if (guarded && (e = other_full_admin(txn, id, now, &other)))
    return e;
  if (guarded && !other)
    return CS_ERR_LAST_ADMIN;
  return cs_txn_del(txn, CS_TBL_KEYS, id, strlen(id));
}
