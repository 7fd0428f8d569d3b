/* A data dir's meta records (CS_TBL_META), the one owner of their formats:
 *   "keyring" → the wrapped keyring (crypto.h cs_keyring_export)
 *   "kdf"     → salt | u64 BE opslimit | u64 BE memlimit, when the master
 *               key comes from a passphrase (Argon2id)
 *   "audit_head" is audit.c's. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_KEYRING "keyring"
#define META_KDF "kdf"
#define KDF_RECORD_LEN (CS_SALT_BYTES + 16)

static void put_u64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static void kdf_encode(const struct cs_kdf_params *p, uint8_t out[KDF_RECORD_LEN])
{
  memcpy(out, p->salt, CS_SALT_BYTES);
  put_u64(out + CS_SALT_BYTES, p->opslimit);
  put_u64(out + CS_SALT_BYTES + 8, p->memlimit);
}

static void kdf_decode(const uint8_t in[KDF_RECORD_LEN], struct cs_kdf_params *p)
{
  memcpy(p->salt, in, CS_SALT_BYTES);
  p->opslimit = get_u64(in + CS_SALT_BYTES);
  p->memlimit = get_u64(in + CS_SALT_BYTES + 8);
}

enum cs_err cs_meta_read_keyring(struct cs_store *st, struct cs_stored_keyring *out)
{
  struct cs_stored_keyring k = {0};
  struct cs_txn *txn;
  struct cs_val v;
  enum cs_err e = cs_store_read_begin(st, &txn);

  if (e)
    return e;
  e = cs_txn_get(txn, CS_TBL_META, META_KDF, strlen(META_KDF), &v);
  if (e == CS_OK && v.len == KDF_RECORD_LEN) {
    kdf_decode(v.data, &k.kdf);
    k.has_kdf = true;
  } else if (e != CS_ERR_NOT_FOUND) {
    e = e ? e : CS_ERR_STORE;
    goto out;
  }
  if ((e = cs_txn_get(txn, CS_TBL_META, META_KEYRING, strlen(META_KEYRING), &v)))
    goto out;
  if (!(k.blob = malloc(v.len ? v.len : 1))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  memcpy(k.blob, v.data, v.len);
  k.len = v.len;
  *out = k;
out:
  cs_store_read_end(txn);
  return e;
}

void cs_stored_keyring_free(struct cs_stored_keyring *k)
{
  if (!k)
    return;
  free(k->blob);
  k->blob = NULL;
  k->len = 0;
}

struct init_ctx {
  const struct cs_keyring *kr;
  const uint8_t *blob;
  size_t len;
  const struct cs_kdf_params *kdf;
  struct cs_new_key key;
};

static enum cs_err init_write(struct cs_txn *txn, void *arg)
{
  struct init_ctx *c = arg;
  enum cs_err e;

  e = cs_txn_put(txn, CS_TBL_META, META_KEYRING, strlen(META_KEYRING), c->blob, c->len,
                 CS_PUT_NO_OVERWRITE);
  if (!e && c->kdf) {
    uint8_t rec[KDF_RECORD_LEN];
    kdf_encode(c->kdf, rec);
    e = cs_txn_put(txn, CS_TBL_META, META_KDF, strlen(META_KDF), rec, sizeof rec,
                   CS_PUT_NO_OVERWRITE);
  }
  if (!e) {
    struct cs_key_spec spec = {.name = "bootstrap-admin", .role = CS_ROLE_ADMIN};
    e = cs_keys_create_txn(txn, c->kr, &spec, &c->key);
  }
  return e;
}

enum cs_err cs_meta_init(struct cs_store *st, const struct cs_keyring *kr,
                         const struct cs_kdf_params *kdf, struct cs_new_key *admin)
{
  struct init_ctx c = {.kr = kr, .kdf = kdf};
  uint8_t *blob = NULL;
  enum cs_err e;

  if ((e = cs_keyring_export(kr, &blob, &c.len)))
    return e;
  c.blob = blob;
  if (!(e = cs_store_write(st, init_write, &c)))
    *admin = c.key;
  cs_memzero(&c.key, sizeof c.key);
  free(blob);
  return e;
}

/* ------------------------------------------------------------ rotation */

struct keyring_write {
  const uint8_t *old; /* the stored blob the rotated keyring was loaded from */
  size_t old_len;
  const uint8_t *blob; /* the rotated keyring */
  size_t len;
  char target[32];
  const struct cs_keyring *kr; /* keys the audit entry (the chain key survives rotation) */
  const struct cs_actor *a;
};

static enum cs_err keyring_write_txn(struct cs_txn *txn, void *arg)
{
  struct keyring_write *k = arg;
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, META_KEYRING, strlen(META_KEYRING), &v);

  if (e)
    return e;
  /* Compare-and-swap: never overwrite a keyring someone else changed. */
  if (v.len != k->old_len || memcmp(v.data, k->old, v.len) != 0)
    return CS_ERR_PRECONDITION;
  if ((e = cs_txn_put(txn, CS_TBL_META, META_KEYRING, strlen(META_KEYRING), k->blob, k->len, 0)))
    return e;
  return cs_audit_append(txn, k->kr, k->a, "keyring_rotate", k->target, "success");
}

enum cs_err cs_keyring_rotate_commit(struct cs_core *c, const struct cs_actor *a)
{
  struct cs_stored_keyring old = {0};
  struct keyring_write k = {.kr = c->keyring, .a = a};
  uint8_t *blob = NULL;
  enum cs_err e;

  if ((e = cs_meta_read_keyring(c->store, &old)) || (e = cs_keyring_rotate(c->keyring)) ||
      (e = cs_keyring_export(c->keyring, &blob, &k.len)))
    goto out;
  k.old = old.blob;
  k.old_len = old.len;
  k.blob = blob;
  snprintf(k.target, sizeof k.target, "data key v%u",
           (unsigned)cs_keyring_current_version(c->keyring));
  e = cs_core_write(c, keyring_write_txn, &k);
out:
  cs_stored_keyring_free(&old);
  free(blob);
  return e;
}
