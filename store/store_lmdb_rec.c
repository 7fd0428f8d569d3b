/*
 * LMDB backend of store.h: records, cursors and sequence keys, valid in any
 * transaction the environment side (store_lmdb.c) hands out. They also
 * serve the etcd backend, whose local copy is an LMDB environment: in its
 * write attempts (txn->rec set) each call also records what it read or
 * wrote (store/etcd/rec.c).
 */
#include "store_lmdb_priv.h"
#include "etcd/etcd.h"

#include <stdlib.h>

/* LMDB wants a non-NULL pointer even for empty values. */
static const uint8_t empty_val[1];

static bool table_ok(enum cs_table t) { return (unsigned)t < CS_TBL__COUNT; }

static enum cs_err bad_table(enum cs_table t)
{
  CS_LOG(CS_LOG_ERROR, "store: no table %d", (int)t);
  return CS_ERR_INTERNAL;
}

/* Calls that modify need a write txn; using a snapshot is a bug upstream. */
static enum cs_err need_write(const struct cs_txn *txn, const char *what)
{
  if (txn->write)
    return CS_OK;
  CS_LOG(CS_LOG_ERROR, "store: %s in a read-only txn", what);
  return CS_ERR_INTERNAL;
}

static enum cs_err check_key(const struct cs_txn *txn, const void *key, size_t klen)
{
  return key && klen > 0 && klen <= txn->st->max_key ? CS_OK : CS_ERR_INVALID;
}

/* Map a record operation's LMDB result. A full map leaves the write txn
 * good only for an abort, so it is flagged for cs_store_write* to grow and
 * rerun, whatever the callback does with the error. Never log contents. */
static enum cs_err rec_result(struct cs_txn *txn, int rc, const char *what, enum cs_table t)
{
  switch (rc) {
  case MDB_SUCCESS:
    return CS_OK;
  case MDB_NOTFOUND:
    return CS_ERR_NOT_FOUND;
  case MDB_KEYEXIST:
    return CS_ERR_EXISTS;
  case MDB_MAP_FULL:
    txn->full = true;
    return CS_ERR_STORE_FULL;
  default:
    CS_LOG(CS_LOG_ERROR, "store: %s on %s failed: %s", what, cs_store_table_names[t],
           mdb_strerror(rc));
    return CS_ERR_STORE;
  }
}

static void val_out(const MDB_val *m, struct cs_val *out)
{
  if (out) {
    out->data = m->mv_data;
    out->len = m->mv_size;
  }
}

enum cs_err cs_txn_get(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                       struct cs_val *out)
{
  MDB_val k = {klen, (void *)key}, v;
  enum cs_err e;

  if (!table_ok(t))
    return bad_table(t);
  e = check_key(txn, key, klen);
  if (e != CS_OK)
    return e;
  if (txn->st->absent[t])
    return CS_ERR_NOT_FOUND;
  e = rec_result(txn, mdb_get(txn->txn, txn->st->dbi[t], &k, &v), "get", t);
  if (e == CS_OK)
    val_out(&v, out);
  if (txn->rec && (e == CS_OK || e == CS_ERR_NOT_FOUND))
    cs_etcd_rec_read(txn, t, key, klen);
  return e;
}

enum cs_err cs_txn_put_lease(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                             const void *val, size_t vlen, unsigned flags, int64_t lease)
{
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)(val ? val : empty_val)};
  bool once = flags & CS_PUT_NO_OVERWRITE;
  enum cs_err e;

  if (!table_ok(t))
    return bad_table(t);
  e = need_write(txn, "put");
  if (e == CS_OK)
    e = check_key(txn, key, klen);
  if (e != CS_OK)
    return e;
  /* etcd's local copy (txn->rec) orders keys its own way: no append there. */
  unsigned mf =
      (once ? MDB_NOOVERWRITE : 0) | (flags & CS_PUT_APPEND && !txn->rec ? MDB_APPEND : 0);
  e = rec_result(txn, mdb_put(txn->txn, txn->st->dbi[t], &k, &v, mf), "put", t);
  if (!txn->rec)
    return e;
  /* A no-overwrite put learns whether the key exists: a read. */
  if (once && (e == CS_OK || e == CS_ERR_EXISTS))
    cs_etcd_rec_read(txn, t, key, klen);
  if (e == CS_OK)
    cs_etcd_rec_write(txn, t, key, klen, v.mv_data, vlen, false, lease);
  return e;
}

enum cs_err cs_txn_put(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                       const void *val, size_t vlen, unsigned flags)
{
  return cs_txn_put_lease(txn, t, key, klen, val, vlen, flags, 0);
}

enum cs_err cs_txn_del(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen)
{
  MDB_val k = {klen, (void *)key};
  enum cs_err e;

  if (!table_ok(t))
    return bad_table(t);
  e = need_write(txn, "del");
  if (e == CS_OK)
    e = check_key(txn, key, klen);
  if (e != CS_OK)
    return e;
  e = rec_result(txn, mdb_del(txn->txn, txn->st->dbi[t], &k, NULL), "del", t);
  /* Success or not, the caller learns whether the key existed. */
  if (txn->rec && (e == CS_OK || e == CS_ERR_NOT_FOUND))
    cs_etcd_rec_read(txn, t, key, klen);
  if (txn->rec && e == CS_OK)
    cs_etcd_rec_write(txn, t, key, klen, NULL, 0, true, 0);
  return e;
}

enum cs_err cs_txn_count(struct cs_txn *txn, enum cs_table t, uint64_t *out)
{
  MDB_stat ms;
  enum cs_err e;

  if (!table_ok(t))
    return bad_table(t);
  if (txn->st->absent[t]) {
    *out = 0;
    return CS_OK;
  }
  e = rec_result(txn, mdb_stat(txn->txn, txn->st->dbi[t], &ms), "count", t);
  if (e == CS_OK)
    *out = ms.ms_entries;
  if (e == CS_OK && txn->rec)
    cs_etcd_rec_table(txn, t);
  return e;
}

enum cs_err cs_txn_last_seq(struct cs_txn *txn, enum cs_table t, uint64_t *out)
{
  struct cs_cursor *c;
  struct cs_val k;
  enum cs_err e;

  e = cs_cursor_open(txn, t, &c);
  if (e != CS_OK)
    return e;
  e = cs_cursor_last(c, &k, NULL);
  cs_cursor_close(c); /* k stays valid: it points into the txn's pages */
  if (e == CS_ERR_NOT_FOUND) {
    *out = 0;
    return CS_OK;
  }
  if (e != CS_OK)
    return e;
  /* Reporting 0 here would hand out sequence numbers already in use. */
  if (k.len != 8) {
    CS_LOG(CS_LOG_ERROR, "store: last key of %s is %zu bytes, not a sequence number",
           cs_store_table_names[t], k.len);
    return CS_ERR_STORE;
  }
  *out = cs_store_seq_from_key(k.data, k.len);
  return CS_OK;
}

void cs_store_seq_key(uint64_t seq, uint8_t out[8])
{
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)seq;
    seq >>= 8;
  }
}

uint64_t cs_store_seq_from_key(const void *key, size_t len)
{
  const uint8_t *p = key;
  uint64_t seq = 0;

  if (len != 8)
    return 0;
  for (int i = 0; i < 8; i++)
    seq = seq << 8 | p[i];
  return seq;
}

/* ---------------------------------------------------------------- cursors */

enum cs_err cs_cursor_open(struct cs_txn *txn, enum cs_table t, struct cs_cursor **out)
{
  struct cs_cursor *c;
  enum cs_err e;

  if (!table_ok(t))
    return bad_table(t);
  c = malloc(sizeof *c);
  if (!c)
    return CS_ERR_NOMEM;
  c->cur = NULL; /* an absent table's cursor finds nothing */
  e = txn->st->absent[t]
          ? CS_OK
          : rec_result(txn, mdb_cursor_open(txn->txn, txn->st->dbi[t], &c->cur), "cursor open", t);
  if (e != CS_OK) {
    free(c);
    return e;
  }
  c->txn = txn;
  c->t = t;
  c->has_pos = false;
  c->pos_len = 0;
  c->piece = 0;
  *out = c;
  return CS_OK;
}

/* @p seek: the key a seek started from (NULL: the first), for recording. */
static enum cs_err cursor_get(struct cs_cursor *c, MDB_val *k, MDB_cursor_op op,
                              enum cs_cursor_step step, const void *seek, size_t slen,
                              struct cs_val *kout, struct cs_val *vout)
{
  MDB_val v;
  enum cs_err e = !c->cur
                      ? CS_ERR_NOT_FOUND
                      : rec_result(c->txn, mdb_cursor_get(c->cur, k, &v, op), "cursor get", c->t);

  if (e == CS_OK) {
    val_out(k, kout);
    val_out(&v, vout);
  }
  if (c->txn->rec)
    cs_etcd_rec_cursor(c, step, seek, slen, e, k);
  return e;
}

enum cs_err cs_cursor_seek(struct cs_cursor *c, const void *key, size_t klen, struct cs_val *k,
                           struct cs_val *v)
{
  MDB_val mk = {klen, (void *)key};

  /* Every key is >= the empty key, so that seek is a seek to the first. */
  if (!key || klen == 0)
    return cursor_get(c, &mk, MDB_FIRST, CS_STEP_SEEK, NULL, 0, k, v);
  if (klen > c->txn->st->max_key)
    return CS_ERR_INVALID;
  return cursor_get(c, &mk, MDB_SET_RANGE, CS_STEP_SEEK, key, klen, k, v);
}

enum cs_err cs_cursor_last(struct cs_cursor *c, struct cs_val *k, struct cs_val *v)
{
  MDB_val mk;

  return cursor_get(c, &mk, MDB_LAST, CS_STEP_LAST, NULL, 0, k, v);
}

enum cs_err cs_cursor_next(struct cs_cursor *c, struct cs_val *k, struct cs_val *v)
{
  MDB_val mk;

  return cursor_get(c, &mk, MDB_NEXT, CS_STEP_NEXT, NULL, 0, k, v);
}

enum cs_err cs_cursor_prev(struct cs_cursor *c, struct cs_val *k, struct cs_val *v)
{
  MDB_val mk;

  return cursor_get(c, &mk, MDB_PREV, CS_STEP_PREV, NULL, 0, k, v);
}

enum cs_err cs_cursor_del(struct cs_cursor *c)
{
  enum cs_err e = need_write(c->txn, "cursor del");

  if (e != CS_OK)
    return e;
  e = rec_result(c->txn, mdb_cursor_del(c->cur, 0), "cursor del", c->t);
  if (e == CS_OK && c->txn->rec)
    cs_etcd_rec_cursor_del(c);
  return e;
}

void cs_cursor_close(struct cs_cursor *c)
{
  if (!c)
    return;
  if (c->cur)
    mdb_cursor_close(c->cur);
  free(c);
}
