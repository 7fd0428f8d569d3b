/*
 * etcd backend: recording what a write attempt's callbacks read and wrote
 * (see etcd.h). Called from store_lmdb_rec.c while txn->rec is set; a
 * recording failure is kept in rec->err and fails the op.
 */
#include "etcd.h"

#include <stdlib.h>
#include <string.h>

void cs_etcd_rec_init(struct cs_etcd_rec *r, struct cs_etcd *e, int64_t base)
{
  memset(r, 0, sizeof *r);
  r->e = e;
  r->base = base;
}

void cs_etcd_rec_free(struct cs_etcd_rec *r)
{
  if (!r)
    return;
  free(r->arena);
  free(r->items);
  free(r->ranges);
  memset(r, 0, sizeof *r);
}

struct cs_rec_mark cs_etcd_rec_mark(const struct cs_etcd_rec *r)
{
  return (struct cs_rec_mark){r->alen, r->n_items, r->n_ranges};
}

void cs_etcd_rec_rollback(struct cs_etcd_rec *r, struct cs_rec_mark m)
{
  r->alen = m.alen;
  r->n_items = m.n_items;
  r->n_ranges = m.n_ranges;
  r->err = CS_OK;
}

/* Grow *p (of *cap elements of @p size) to hold one more than @p n. */
static bool grow(void **p, size_t *cap, size_t n, size_t size)
{
  size_t want = *cap ? *cap * 2 : 16;
  void *q;

  if (n < *cap)
    return true;
  if (want > UINT32_MAX / size)
    return false;
  q = realloc(*p, want * size);
  if (!q)
    return false;
  *p = q;
  *cap = want;
  return true;
}

static bool arena_put(struct cs_etcd_rec *r, const void *data, size_t len, uint32_t *off)
{
  if (r->alen + len > UINT32_MAX)
    return false;
  if (r->alen + len > r->acap) {
    size_t want = r->acap ? r->acap : 4096;
    uint8_t *q;

    while (want < r->alen + len)
      want *= 2;
    q = realloc(r->arena, want);
    if (!q)
      return false;
    r->arena = q;
    r->acap = want;
  }
  if (len)
    memcpy(r->arena + r->alen, data, len);
  *off = (uint32_t)r->alen;
  r->alen += len;
  return true;
}

static struct cs_rec_item *item_new(struct cs_etcd_rec *r)
{
  if (!grow((void **)&r->items, &r->cap_items, r->n_items, sizeof *r->items)) {
    r->err = CS_ERR_NOMEM;
    return NULL;
  }
  return memset(&r->items[r->n_items++], 0, sizeof *r->items);
}

/* mod_revision of (t, key) in the copy at R; -1 if the side table is bad. */
static int64_t base_mod(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen)
{
  MDB_val k = {klen, (void *)key}, v;
  const uint8_t *p;
  int rc = mdb_get(txn->txn, txn->rec->e->rev[t], &k, &v);

  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc || v.mv_size != 8) {
    CS_LOG(CS_LOG_ERROR, "store: the local copy's revision of a %s record is unreadable",
           cs_store_table_names[t]);
    return -1;
  }
  p = v.mv_data;
  return (int64_t)cs_store_seq_from_key(p, 8);
}

void cs_etcd_rec_read(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen)
{
  struct cs_etcd_rec *r = txn->rec;
  int64_t mod = base_mod(txn, t, key, klen);
  struct cs_rec_item *it;

  if (mod < 0) {
    r->err = CS_ERR_STORE;
    return;
  }
  it = item_new(r);
  if (!it)
    return;
  it->t = (uint8_t)t;
  it->kind = CS_REC_READ;
  it->mod = mod;
  it->klen = (uint32_t)klen;
  if (!arena_put(r, key, klen, &it->koff))
    r->err = CS_ERR_NOMEM;
}

void cs_etcd_rec_write(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                       const void *val, size_t vlen, bool del, int64_t lease)
{
  struct cs_etcd_rec *r = txn->rec;
  struct cs_rec_item *it = item_new(r);

  if (!it)
    return;
  it->t = (uint8_t)t;
  it->kind = del ? CS_REC_DEL : CS_REC_PUT;
  it->lease = lease;
  it->klen = (uint32_t)klen;
  it->vlen = (uint32_t)vlen;
  if (vlen > UINT32_MAX || !arena_put(r, key, klen, &it->koff) ||
      !arena_put(r, val, del ? 0 : vlen, &it->voff))
    r->err = CS_ERR_NOMEM;
}

/* ---------------------------------------------------------------- ranges */

/* LMDB's default order, which is also etcd's: bytes, then length. */
static int keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
  int c = memcmp(a, b, alen < blen ? alen : blen);

  return c ? c : (alen > blen) - (alen < blen);
}

struct bound {
  const void *k; /* NULL: the table's start (lo) or end (hi) */
  size_t len;
};

/* Record [lo, hi] as a new piece; @return its index + 1, 0 on failure. */
static size_t piece_add(struct cs_etcd_rec *r, enum cs_table t, struct bound lo, struct bound hi,
                        bool need_gen)
{
  struct cs_rec_range *g;

  if (lo.k && hi.k && keycmp(lo.k, lo.len, hi.k, hi.len) > 0) {
    struct bound x = lo; /* a step that went backwards: cover both */
    lo = hi;
    hi = x;
  }
  if (!grow((void **)&r->ranges, &r->cap_ranges, r->n_ranges, sizeof *r->ranges)) {
    r->err = CS_ERR_NOMEM;
    return 0;
  }
  g = memset(&r->ranges[r->n_ranges], 0, sizeof *g);
  g->t = (uint8_t)t;
  g->need_gen = need_gen;
  g->lo_start = !lo.k;
  g->hi_end = !hi.k;
  g->llen = (uint32_t)lo.len;
  g->hlen = (uint32_t)hi.len;
  if ((lo.k && !arena_put(r, lo.k, lo.len, &g->loff)) ||
      (hi.k && !arena_put(r, hi.k, hi.len, &g->hoff))) {
    r->err = CS_ERR_NOMEM;
    return 0;
  }
  return ++r->n_ranges;
}

void cs_etcd_rec_table(struct cs_txn *txn, enum cs_table t)
{
  piece_add(txn->rec, t, (struct bound){0}, (struct bound){0}, true);
}

/* A step forward from the cursor's position to @p hi extends the piece the
 * cursor is walking when that piece ends at the position (a scan stays one
 * piece); else it starts one. Backward steps likewise at the piece's start. */
static void step_from_pos(struct cs_cursor *c, bool forward, struct bound to)
{
  struct cs_etcd_rec *r = c->txn->rec;
  struct bound pos = {c->pos, c->pos_len};
  struct cs_rec_range *g = c->piece ? &r->ranges[c->piece - 1] : NULL;

  if (g && forward && !g->hi_end && keycmp(r->arena + g->hoff, g->hlen, pos.k, pos.len) == 0) {
    g->hi_end = !to.k;
    g->hlen = (uint32_t)to.len;
    if (to.k && !arena_put(r, to.k, to.len, &g->hoff))
      r->err = CS_ERR_NOMEM;
    return;
  }
  if (g && !forward && !g->lo_start && keycmp(r->arena + g->loff, g->llen, pos.k, pos.len) == 0) {
    g->lo_start = !to.k;
    g->llen = (uint32_t)to.len;
    if (to.k && !arena_put(r, to.k, to.len, &g->loff))
      r->err = CS_ERR_NOMEM;
    return;
  }
  c->piece = forward ? piece_add(r, c->t, pos, to, false) : piece_add(r, c->t, to, pos, false);
}

void cs_etcd_rec_cursor(struct cs_cursor *c, enum cs_cursor_step step, const void *seek,
                        size_t slen, enum cs_err result, const MDB_val *k)
{
  struct cs_etcd_rec *r = c->txn->rec;
  struct bound found = {0}, from = {seek, slen};
  bool ok = result == CS_OK;

  if (!ok && result != CS_ERR_NOT_FOUND)
    return;
  if (ok)
    found = (struct bound){k->mv_data, k->mv_size};
  /* An unpositioned cursor steps to the first (next) or last (prev) key. */
  if (step == CS_STEP_NEXT && !c->has_pos)
    step = CS_STEP_SEEK;
  if (step == CS_STEP_PREV && !c->has_pos)
    step = CS_STEP_LAST;
  switch (step) {
  case CS_STEP_SEEK:
    c->piece = piece_add(r, c->t, from, found, false);
    break;
  case CS_STEP_LAST:
    c->piece = piece_add(r, c->t, found, (struct bound){0}, false);
    break;
  case CS_STEP_NEXT:
  case CS_STEP_PREV:
    step_from_pos(c, step == CS_STEP_NEXT, found);
    break;
  }
  if (!ok)
    return;
  cs_etcd_rec_read(c->txn, c->t, k->mv_data, k->mv_size);
  memcpy(c->pos, k->mv_data, k->mv_size);
  c->pos_len = k->mv_size;
  c->has_pos = true;
}

void cs_etcd_rec_cursor_del(struct cs_cursor *c)
{
  if (c->has_pos)
    cs_etcd_rec_write(c->txn, c->t, c->pos, c->pos_len, NULL, 0, true, 0);
}
