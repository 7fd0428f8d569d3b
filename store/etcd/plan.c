/*
 * etcd backend: turning one write attempt's record into a Txn — compares
 * that fail if anything read changed since R, the deduplicated puts and
 * deletes, the node key's compare, put and failure branch — within etcd's
 * limits. The levels of compare per table are described in etcd.h.
 */
#include "etcd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Merged key ranges of one table, [lo, hi] inclusive. */
struct span {
  uint8_t t;
  bool lo_start, hi_end, need_gen;
  const uint8_t *lo, *hi;
  size_t llen, hlen;
};

struct plan {
  const struct cs_etcd_rec *r;
  size_t *w, nw;   /* final writes: item indexes, one per key */
  size_t *rd, nrd; /* distinct reads */
  bool *rd_in;     /* per read: inside a span of its table */
  struct span *sp;
  size_t nsp;
  int level[CS_TBL__COUNT];
  bool gen_bump[CS_TBL__COUNT]; /* a write deletes from the table */
  size_t ncmp, nops, bytes;
};

static int keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
  int c = memcmp(a, b, alen < blen ? alen : blen);

  return c ? c : (alen > blen) - (alen < blen);
}

/* Items by (table, key, order recorded). */
static int item_order(const void *pa, const void *pb, void *arg)
{
  const struct cs_etcd_rec *r = arg;
  size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
  const struct cs_rec_item *a = &r->items[ia], *b = &r->items[ib];
  int c;

  if (a->t != b->t)
    return a->t < b->t ? -1 : 1;
  c = keycmp(r->arena + a->koff, a->klen, r->arena + b->koff, b->klen);
  return c ? c : (ia > ib) - (ia < ib);
}

static bool same_key(const struct cs_etcd_rec *r, size_t ia, size_t ib)
{
  const struct cs_rec_item *a = &r->items[ia], *b = &r->items[ib];

  return a->t == b->t && keycmp(r->arena + a->koff, a->klen, r->arena + b->koff, b->klen) == 0;
}

/* Sorted unique keys of the items of one kind class: the last write per
 * key, or one read per key (all reads of a key saw the same revision R). */
static size_t collect(const struct cs_etcd_rec *r, bool writes, size_t *out)
{
  size_t n = 0, m = 0;

  for (size_t i = 0; i < r->n_items; i++)
    if ((r->items[i].kind != CS_REC_READ) == writes)
      out[n++] = i;
  qsort_r(out, n, sizeof *out, item_order, (void *)r);
  for (size_t i = 0; i < n; i++) {
    if (m && same_key(r, out[m - 1], out[i]))
      out[m - 1] = out[i]; /* later wins */
    else
      out[m++] = out[i];
  }
  return m;
}

static int span_order(const void *pa, const void *pb)
{
  const struct span *a = pa, *b = pb;

  if (a->t != b->t)
    return a->t < b->t ? -1 : 1;
  if (a->lo_start || b->lo_start)
    return b->lo_start - a->lo_start;
  return keycmp(a->lo, a->llen, b->lo, b->llen);
}

/* Does @p a (sorted before @p b) reach b's start? Then they merge. */
static bool span_reaches(const struct span *a, const struct span *b)
{
  return a->t == b->t && (a->hi_end || b->lo_start || keycmp(b->lo, b->llen, a->hi, a->hlen) <= 0);
}

static size_t merge_spans(const struct cs_etcd_rec *r, struct span *sp)
{
  size_t n = 0;

  for (size_t i = 0; i < r->n_ranges; i++) {
    const struct cs_rec_range *g = &r->ranges[i];

    sp[i] = (struct span){
        g->t,    g->lo_start, g->hi_end, g->need_gen, r->arena + g->loff, r->arena + g->hoff,
        g->llen, g->hlen};
  }
  qsort(sp, r->n_ranges, sizeof *sp, span_order);
  for (size_t i = 0; i < r->n_ranges; i++) {
    struct span *cur = n ? &sp[n - 1] : NULL;

    if (!cur || !span_reaches(cur, &sp[i])) {
      sp[n++] = sp[i];
      continue;
    }
    cur->need_gen |= sp[i].need_gen;
    if (sp[i].hi_end)
      cur->hi_end = true;
    else if (!cur->hi_end && keycmp(sp[i].hi, sp[i].hlen, cur->hi, cur->hlen) > 0) {
      cur->hi = sp[i].hi;
      cur->hlen = sp[i].hlen;
    }
  }
  return n;
}

static bool span_has(const struct span *s, const uint8_t *k, size_t klen)
{
  return (s->lo_start || keycmp(s->lo, s->llen, k, klen) <= 0) &&
         (s->hi_end || keycmp(k, klen, s->hi, s->hlen) <= 0);
}

/* Compares table @p t needs at @p level (see etcd.h). */
static size_t table_cost(const struct plan *p, int t, int level)
{
  size_t nsp = 0, in_present = 0, out = 0;

  for (size_t i = 0; i < p->nsp; i++)
    nsp += p->sp[i].t == t;
  for (size_t i = 0; i < p->nrd; i++) {
    const struct cs_rec_item *it = &p->r->items[p->rd[i]];

    if (it->t != t)
      continue;
    if (!p->rd_in[i])
      out++;
    else if (it->mod != 0)
      in_present++;
  }
  if (nsp == 0 && out == 0)
    return 0;
  if (level == 0)
    return nsp + out + in_present;
  return level == 1 ? nsp + 1 + out : 2;
}

static bool needs_gen(const struct plan *p, int t)
{
  for (size_t i = 0; i < p->nsp; i++)
    if (p->sp[i].t == t && p->sp[i].need_gen)
      return true;
  return false;
}

/* Finest level per table, then coarsen the table that saves most until the
 * compares fit. Level 2 costs 2 per table, so this always ends fitting. */
static void choose_levels(struct plan *p)
{
  size_t cost[CS_TBL__COUNT];

  p->ncmp = 0;
  for (int t = 0; t < CS_TBL__COUNT; t++) {
    p->level[t] = needs_gen(p, t) ? 1 : 0;
    cost[t] = table_cost(p, t, p->level[t]);
    p->ncmp += cost[t];
  }
  while (p->ncmp > CS_ETCD_REC_OPS) {
    int best = -1;
    size_t save = 0;

    for (int t = 0; t < CS_TBL__COUNT; t++) {
      size_t next = p->level[t] < 2 ? table_cost(p, t, p->level[t] + 1) : cost[t];

      if (next < cost[t] && cost[t] - next > save) {
        save = cost[t] - next;
        best = t;
      }
    }
    if (best < 0)
      break;
    p->level[best]++;
    p->ncmp -= save;
    cost[best] -= save;
  }
}

static void plan_free(struct plan *p)
{
  free(p->w);
  free(p->rd);
  free(p->rd_in);
  free(p->sp);
}

/* Size of the Txn in etcd's terms (ops per branch, bytes). */
static void plan_size(struct plan *p)
{
  const struct cs_etcd *e = p->r->e;

  p->nops = p->nw;
  p->bytes = 64 * p->ncmp + (size_t)CS_ETCD_KEY_MAX * 2 * p->nsp;
  for (size_t i = 0; i < p->nw; i++) {
    const struct cs_rec_item *it = &p->r->items[p->w[i]];

    p->bytes += e->tpre_len[it->t] + it->klen + it->vlen + 32;
    if (it->kind == CS_REC_DEL)
      p->gen_bump[it->t] = true;
  }
  for (size_t i = 0; i < p->nrd; i++)
    p->bytes += e->tpre_len[p->r->items[p->rd[i]].t] + p->r->items[p->rd[i]].klen;
  for (int t = 0; t < CS_TBL__COUNT; t++)
    p->nops += p->gen_bump[t];
}

static enum cs_err plan_build(const struct cs_etcd_rec *r, struct plan *p)
{
  size_t n = r->n_items ? r->n_items : 1;

  memset(p, 0, sizeof *p);
  p->r = r;
  p->w = malloc(n * sizeof *p->w);
  p->rd = malloc(n * sizeof *p->rd);
  p->rd_in = calloc(n, sizeof *p->rd_in);
  p->sp = malloc((r->n_ranges ? r->n_ranges : 1) * sizeof *p->sp);
  if (!p->w || !p->rd || !p->rd_in || !p->sp)
    return CS_ERR_NOMEM;
  p->nw = collect(r, true, p->w);
  p->nrd = collect(r, false, p->rd);
  p->nsp = merge_spans(r, p->sp);
  for (size_t i = 0; i < p->nrd; i++) {
    const struct cs_rec_item *it = &r->items[p->rd[i]];

    for (size_t s = 0; s < p->nsp && !p->rd_in[i]; s++)
      p->rd_in[i] = p->sp[s].t == it->t && span_has(&p->sp[s], r->arena + it->koff, it->klen);
  }
  choose_levels(p);
  plan_size(p);
  return CS_OK;
}

/* ------------------------------------------------------------ rendering */

static enum cs_err key_b64(struct cs_buf *b, const struct plan *p, const char *member, int t,
                           const uint8_t *k, size_t klen)
{
  enum cs_err e = cs_buf_printf(b, "\"%s\":\"", member);

  if (e == CS_OK)
    e = cs_etcd_key_b64(b, p->r->e, t, k, klen);
  return e == CS_OK ? CS_BUF_LIT(b, "\"") : e;
}

/* {"key","range_end"} of a span; NULL @p s: the whole table @p t. */
static enum cs_err range_b64(struct cs_buf *b, const struct plan *p, int t, const struct span *s)
{
  char end[40];
  uint8_t after[CS_STORE_KEY_MAX + 1];
  enum cs_err e;

  snprintf(end, sizeof end, "%s0", cs_store_table_names[t]); /* '0' follows '/' */
  if (!s || s->lo_start)
    e = key_b64(b, p, "key", t, (const uint8_t *)"", 0);
  else
    e = key_b64(b, p, "key", t, s->lo, s->llen);
  if (e == CS_OK)
    e = CS_BUF_LIT(b, ",");
  if (e != CS_OK)
    return e;
  if (!s || s->hi_end)
    return key_b64(b, p, "range_end", -1, (const uint8_t *)end, strlen(end));
  /* The first key after hi, so that hi itself is in the range. */
  memcpy(after, s->hi, s->hlen);
  after[s->hlen] = 0;
  return key_b64(b, p, "range_end", t, after, s->hlen + 1);
}

static enum cs_err cmp_less(struct cs_buf *b, const struct plan *p, int t, const struct span *s,
                            bool gen)
{
  char g[48];
  enum cs_err e = CS_BUF_LIT(b, "{");

  snprintf(g, sizeof g, "_sys/gen/%s", cs_store_table_names[t]);
  if (e == CS_OK)
    e = gen ? key_b64(b, p, "key", -1, (const uint8_t *)g, strlen(g)) : range_b64(b, p, t, s);
  if (e == CS_OK)
    e = cs_buf_printf(b, ",\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":\"%lld\"},",
                      (long long)p->r->base + 1);
  return e;
}

static enum cs_err cmp_equal(struct cs_buf *b, const struct plan *p, const struct cs_rec_item *it)
{
  enum cs_err e = CS_BUF_LIT(b, "{");

  if (e == CS_OK)
    e = key_b64(b, p, "key", it->t, p->r->arena + it->koff, it->klen);
  if (e == CS_OK)
    e = cs_buf_printf(b, ",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%lld\"},",
                      (long long)it->mod);
  return e;
}

static enum cs_err emit_table(struct cs_buf *b, const struct plan *p, int t)
{
  enum cs_err e = CS_OK;
  bool any = false;

  for (size_t i = 0; i < p->nrd && !any; i++)
    any = p->r->items[p->rd[i]].t == t;
  for (size_t i = 0; i < p->nsp && !any; i++)
    any = p->sp[i].t == t;
  if (!any)
    return CS_OK;
  if (p->level[t] == 2) {
    e = cmp_less(b, p, t, NULL, false);
    return e == CS_OK ? cmp_less(b, p, t, NULL, true) : e;
  }
  for (size_t i = 0; i < p->nsp && e == CS_OK; i++)
    if (p->sp[i].t == t)
      e = cmp_less(b, p, t, &p->sp[i], false);
  if (e == CS_OK && p->level[t] == 1)
    e = cmp_less(b, p, t, NULL, true);
  for (size_t i = 0; i < p->nrd && e == CS_OK; i++) {
    const struct cs_rec_item *it = &p->r->items[p->rd[i]];

    /* Level 0 keeps present keys inside ranges (deletes); absent ones are
     * implied by the range. Level 1's gen compare covers both. */
    if (it->t == t && (!p->rd_in[i] || (p->level[t] == 0 && it->mod != 0)))
      e = cmp_equal(b, p, it);
  }
  return e;
}

static enum cs_err emit_write(struct cs_buf *b, const struct plan *p, const struct cs_rec_item *it)
{
  const uint8_t *k = p->r->arena + it->koff;
  enum cs_err e;

  if (it->kind == CS_REC_DEL) {
    e = CS_BUF_LIT(b, "{\"request_delete_range\":{");
    if (e == CS_OK)
      e = key_b64(b, p, "key", it->t, k, it->klen);
    return e == CS_OK ? CS_BUF_LIT(b, "}},") : e;
  }
  e = CS_BUF_LIT(b, "{\"request_put\":{");
  if (e == CS_OK)
    e = key_b64(b, p, "key", it->t, k, it->klen);
  if (e == CS_OK)
    e = CS_BUF_LIT(b, ",\"value\":\"");
  if (e == CS_OK)
    e = cs_etcd_b64(b, p->r->arena + it->voff, it->vlen);
  if (e == CS_OK && it->lease)
    e = cs_buf_printf(b, "\",\"lease\":\"%lld", (long long)it->lease);
  return e == CS_OK ? CS_BUF_LIT(b, "\"}},") : e;
}

/* Drop the trailing comma of a JSON list being closed. */
static enum cs_err close_list(struct cs_buf *b, const char *close)
{
  if (b->len && b->data[b->len - 1] == ',')
    b->data[--b->len] = '\0';
  return cs_buf_append(b, close, strlen(close));
}

/* The node key: put this attempt's id (success); read it, then fence it
 * (failure). Leaves the last object open. */
static enum cs_err node_ops(struct cs_buf *b, const struct plan *p)
{
  const struct cs_etcd *e = p->r->e;
  char id[32];
  enum cs_err r;

  snprintf(id, sizeof id, "a%llu", (unsigned long long)p->r->attempt);
  r = CS_BUF_LIT(b, "{\"request_put\":{");
  if (r == CS_OK)
    r = key_b64(b, p, "key", -1, (const uint8_t *)e->node, e->node_len);
  if (r == CS_OK)
    r = CS_BUF_LIT(b, ",\"value\":\"");
  if (r == CS_OK)
    r = cs_etcd_b64(b, id, strlen(id));
  if (r == CS_OK)
    r = CS_BUF_LIT(b, "\"}}],\"failure\":[{\"request_range\":{");
  if (r == CS_OK)
    r = key_b64(b, p, "key", -1, (const uint8_t *)e->node, e->node_len);
  if (r == CS_OK)
    r = CS_BUF_LIT(b, "}},{\"request_put\":{");
  return r == CS_OK ? key_b64(b, p, "key", -1, (const uint8_t *)e->node, e->node_len) : r;
}

static enum cs_err emit(struct cs_buf *b, const struct plan *p)
{
  const struct cs_etcd *ed = p->r->e;
  enum cs_err e = CS_BUF_LIT(b, "{\"compare\":[");

  for (int t = 0; t < CS_TBL__COUNT && e == CS_OK; t++)
    e = emit_table(b, p, t);
  if (e == CS_OK)
    e = CS_BUF_LIT(b, "{");
  if (e == CS_OK)
    e = key_b64(b, p, "key", -1, (const uint8_t *)ed->node, ed->node_len);
  if (e == CS_OK)
    e = cs_buf_printf(b, ",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%lld\"}",
                      (long long)p->r->node_mod);
  if (e == CS_OK)
    e = close_list(b, "],\"success\":[");
  for (size_t i = 0; i < p->nw && e == CS_OK; i++)
    e = emit_write(b, p, &p->r->items[p->w[i]]);
  for (int t = 0; t < CS_TBL__COUNT && e == CS_OK; t++) {
    char g[48];

    if (!p->gen_bump[t])
      continue;
    snprintf(g, sizeof g, "_sys/gen/%s", cs_store_table_names[t]);
    e = CS_BUF_LIT(b, "{\"request_put\":{");
    if (e == CS_OK)
      e = key_b64(b, p, "key", -1, (const uint8_t *)g, strlen(g));
    if (e == CS_OK)
      e = CS_BUF_LIT(b, "}},");
  }
  if (e == CS_OK)
    e = node_ops(b, p);
  return e == CS_OK ? CS_BUF_LIT(b, "}}]}") : e;
}

enum cs_err cs_etcd_plan(const struct cs_etcd_rec *r, struct cs_buf *body, bool *has_writes)
{
  struct plan p;
  enum cs_err e = plan_build(r, &p);

  if (e == CS_OK &&
      (p.ncmp > CS_ETCD_REC_OPS || p.nops > CS_ETCD_REC_OPS || p.bytes > CS_ETCD_TXN_BYTES))
    e = CS_ERR_TOO_LARGE;
  if (e == CS_OK)
    *has_writes = p.nw > 0;
  if (e == CS_OK && body && p.nw > 0)
    e = emit(body, &p);
  plan_free(&p);
  return e;
}
