/* Access keys (API.md §2): creation, lookup, listing, deletion and the
 * secret check. The record (and its role names) is key_rec.c's; scopes and
 * what "broader" means between keys are scope.c's. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cs_err cs_keys_create_txn(struct cs_txn *txn, const struct cs_keyring *kr,
                               const struct cs_key_spec *spec, struct cs_new_key *out)
{
  struct cs_new_key k;
  uint8_t hash[CS_HASH_BYTES];
  char *text = NULL;
  enum cs_err e;

  memcpy(k.id, "ak-", 3);
  cs_random_hex(k.id + 3, CS_KEY_ID_HEX);
  cs_random_hex(k.secret, CS_KEY_SECRET_HEX);
  k.created_at = cs_now();
  cs_secret_hash(kr, k.secret, strlen(k.secret), hash);
  if (!(e = cs_key_encode(k.id, spec, k.created_at, hash, &text)))
    e = cs_txn_put(txn, CS_TBL_KEYS, k.id, strlen(k.id), text, strlen(text), CS_PUT_NO_OVERWRITE);
  if (!e)
    *out = k;
  cs_memzero(&k, sizeof k);
  free(text);
  return e;
}

struct key_add {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *action;
  const struct cs_key_spec *spec;
  struct cs_new_key key;
};

static enum cs_err add_txn(struct cs_txn *txn, void *arg)
{
  struct key_add *c = arg;
  enum cs_err e = cs_keys_create_txn(txn, c->kr, c->spec, &c->key);
  return e ? e : cs_audit_append(txn, c->kr, c->a, c->action, c->key.id, "success");
}

enum cs_err cs_keys_add(struct cs_core *c, const struct cs_actor *a, const char *action,
                        const struct cs_key_spec *spec, struct cs_new_key *out)
{
  struct key_add k = {c->keyring, a, action, spec, {"", "", 0}};
  enum cs_err e = cs_core_write(c, add_txn, &k);
  if (!e)
    *out = k.key;
  cs_memzero(&k.key, sizeof k.key);
  return e;
}

enum cs_err cs_keys_list(struct cs_core *core, const struct cs_key_bounds *by, cJSON **out)
{
  struct cs_txn *txn = NULL;
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  cJSON *arr = cJSON_CreateArray();
  enum cs_err e;

  if (!arr)
    return CS_ERR_NOMEM;
  if ((e = cs_store_read_begin(core->store, &txn)) || (e = cs_cursor_open(txn, CS_TBL_KEYS, &c)))
    goto out;
  for (e = cs_cursor_seek(c, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v)) {
    struct cs_key_rec kr = {0};
    cJSON *rec = NULL, *pub;
    if ((e = cs_key_parse(&v, &rec)))
      goto out;
    /* A record that does not decode has no bounds to trust: only an
     * unbounded caller sees it. */
    bool seen = cs_key_decode(rec, &kr) == CS_OK
                    ? cs_key_within(&(struct cs_key_bounds){kr.scope, kr.expires_at}, by)
                    : !by->scope && !by->expires_at;
    pub = seen ? cs_key_public_json(rec) : NULL;
    cJSON_Delete(rec);
    if (seen && !pub) {
      e = CS_ERR_NOMEM;
      goto out;
    }
    if (pub)
      cJSON_AddItemToArray(arr, pub);
  }
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK;
out:
  cs_cursor_close(c);
  cs_store_read_end(txn);
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
static enum cs_err other_full_admin(struct cs_txn *txn, const char *id, int64_t now, bool *found)
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
    if ((k.len == idlen && memcmp(k.data, id, idlen) == 0) || cs_key_parse(&v, &rec))
      continue;
    *found = cs_key_decode(rec, &kr) == CS_OK && full_admin(&kr, now);
    cJSON_Delete(rec);
  }
  cs_cursor_close(c);
  return e == CS_ERR_NOT_FOUND || e == CS_OK ? CS_OK : e;
}

static enum cs_err delete_key(struct cs_txn *txn, const struct cs_key_bounds *by, const char *id)
{
  struct cs_key_rec victim;
  int64_t now = cs_now();
  bool within, guarded, other = false;
  enum cs_err e;

  if ((e = cs_key_load(txn, id, &victim)))
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

struct key_delete {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const struct cs_key_bounds *by;
  const char *id;
};

static enum cs_err delete_txn(struct cs_txn *txn, void *arg)
{
  struct key_delete *d = arg;
  enum cs_err e = delete_key(txn, d->by, d->id);
  return e ? e : cs_audit_append(txn, d->kr, d->a, "access_key_delete", d->id, "success");
}

enum cs_err cs_keys_delete(struct cs_core *c, const struct cs_actor *a,
                           const struct cs_key_bounds *by, const char *id)
{
  struct key_delete d = {c->keyring, a, by, id};
  return cs_core_write(c, delete_txn, &d);
}

/* ------------------------------------------------------- authentication */

static void fill_principal(struct cs_principal *who, struct cs_key_rec *k)
{
  cJSON_Delete(who->scope);
  snprintf(who->key_id, sizeof who->key_id, "%s", k->id);
  who->role = k->role;
  who->scope = k->scope;
  who->expires_at = k->expires_at;
  k->scope = NULL;
}

/* Load a key that must exist and not be expired. */
static enum cs_err load_live(struct cs_core *c, const char *id, struct cs_key_rec *out)
{
  struct cs_txn *txn;
  enum cs_err e = cs_store_read_begin(c->store, &txn);
  if (e)
    return e;
  e = cs_key_load(txn, id, out);
  cs_store_read_end(txn);
  if (e == CS_OK && out->expires_at && out->expires_at <= cs_now()) {
    cJSON_Delete(out->scope);
    out->scope = NULL;
    e = CS_ERR_NOT_FOUND;
  }
  return e;
}

enum cs_err cs_keys_load_live(struct cs_core *c, const char *id, struct cs_principal *who)
{
  struct cs_key_rec k = {0};
  enum cs_err e = load_live(c, id, &k);
  if (!e)
    fill_principal(who, &k);
  return e;
}

enum cs_err cs_keys_secret_hash(struct cs_core *c, const char *secret,
                                char hex[CS_KEY_HASH_HEX + 1])
{
  uint8_t h[CS_HASH_BYTES];
  size_t slen = strlen(secret);

  cs_secret_hash(c->keyring, secret, slen > CS_KEY_SECRET_MAX ? CS_KEY_SECRET_MAX : slen, h);
  cs_hex(h, sizeof h, hex);
  cs_memzero(h, sizeof h);
  return slen > CS_KEY_SECRET_MAX ? CS_ERR_BAD_CREDENTIALS : CS_OK;
}

enum cs_err cs_keys_check_hash(struct cs_core *c, const char *id, const char hex[CS_KEY_HASH_HEX],
                               struct cs_principal *who)
{
  size_t idlen = id ? strlen(id) : 0;
  struct cs_key_rec k = {0};
  enum cs_err e = CS_ERR_NOT_FOUND;

  if (idlen && idlen <= CS_KEY_ID_MAX)
    e = load_live(c, id, &k);
  if (e == CS_OK && !cs_bytes_equal(hex, k.hash_hex, CS_KEY_HASH_HEX)) {
    cJSON_Delete(k.scope);
    k.scope = NULL;
    e = CS_ERR_NOT_FOUND;
  }
  if (e)
    return e == CS_ERR_NOT_FOUND ? CS_ERR_BAD_CREDENTIALS : e;
  fill_principal(who, &k);
  return CS_OK;
}

enum cs_err cs_keys_check_secret(struct cs_core *c, const char *id, const char *secret,
                                 struct cs_principal *who)
{
  char hex[CS_KEY_HASH_HEX + 1];
  /* Hash even for unknown ids so timing does not tell which ids exist. */
  enum cs_err e = cs_keys_secret_hash(c, secret, hex);

  e = e ? e : cs_keys_check_hash(c, id, hex, who);
  cs_memzero(hex, sizeof hex);
  return e;
}
