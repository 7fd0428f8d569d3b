/*
 * etcd backend: writes (callbacks recorded on the local copy, packed into
 * as few Txns as fit, re-run on conflict; see etcd.h) and leases.
 */
#include "etcd.h"

#include <stdlib.h>
#include <string.h>

/* Each Txn of a write gets 3x the request timeout to commit and to show in
 * the copy; a conflicting one is retried until then, so a write fails
 * rather than livelocks. The deadline restarts once a Txn is visible: a
 * batch split into several Txns makes progress with each. */
#define CS_ETCD_DEADLINE_FACTOR 3

/* Ops [begin, end) of a batch, run once on the copy at revision rec.base. */
struct group {
  struct cs_etcd_rec rec;
  size_t end;
  struct cs_buf body;
  bool has_writes;
};

/* Cheap upper bound first; the exact plan only when the bound is over. */
static bool fits(const struct cs_etcd_rec *r)
{
  size_t reads = 0, writes = 0, bytes = 0;
  bool hw;

  for (size_t i = 0; i < r->n_items; i++) {
    const struct cs_rec_item *it = &r->items[i];

    reads += it->kind == CS_REC_READ;
    writes += it->kind != CS_REC_READ;
    bytes += CS_ETCD_KEY_MAX + it->vlen + 32;
  }
  if (reads + r->n_ranges + 2 * CS_TBL__COUNT <= CS_ETCD_REC_OPS &&
      writes + CS_TBL__COUNT <= CS_ETCD_REC_OPS &&
      bytes + r->n_ranges * 2 * CS_ETCD_KEY_MAX <= CS_ETCD_TXN_BYTES)
    return true;
  return cs_etcd_plan(r, NULL, &hw) == CS_OK;
}

/* Run one op in a nested txn of @p top. Its record is kept only if it
 * succeeded and the group still fits (*fit); else rolled back. */
static enum cs_err run_op(struct cs_txn *top, struct cs_store_op *op, bool *fit)
{
  struct cs_txn child = {.st = top->st, .write = true, .rec = top->rec};
  struct cs_rec_mark m = cs_etcd_rec_mark(top->rec);
  enum cs_err e;
  int rc = mdb_txn_begin(top->st->env, top->txn, 0, &child.txn);

  *fit = true;
  if (rc)
    return cs_lmdb_fail(rc, "nested txn begin");
  e = op->fn(&child, op->ctx);
  if (e == CS_OK && top->rec->err != CS_OK)
    e = top->rec->err;
  top->full = top->full || child.full;
  if (e == CS_OK && !child.full && !fits(top->rec))
    *fit = false;
  if (e != CS_OK || child.full || !*fit) {
    mdb_txn_abort(child.txn);
    cs_etcd_rec_rollback(top->rec, m);
    return e;
  }
  rc = mdb_txn_commit(child.txn);
  if (rc == MDB_MAP_FULL)
    top->full = true;
  return rc == MDB_MAP_FULL ? CS_ERR_STORE_FULL
         : rc               ? cs_lmdb_fail(rc, "nested txn commit")
                            : CS_OK;
}

/* Run ops from @p begin while they fit one Txn, on one write txn of the
 * copy that is then aborted. Requires write_mu. Sets *full if the copy's
 * map must grow first. */
static enum cs_err pack_once(struct cs_store *st, struct cs_store_op *ops, size_t begin, size_t n,
                             struct group *g, bool *full)
{
  struct cs_txn top = {.st = st, .write = true, .rec = &g->rec};
  size_t k, kept = 0;
  enum cs_err e;
  int rc = mdb_txn_begin(st->env, NULL, 0, &top.txn);

  if (rc)
    return cs_lmdb_fail(rc, "write begin");
  cs_etcd_rec_init(&g->rec, st->etcd, cs_etcd_applied(st->etcd));
  g->rec.node_mod = st->etcd->node_mod;
  g->rec.attempt = ++st->etcd->attempts; /* txn_mu */
  for (k = begin; k < n && !top.full; k++) {
    bool fit;

    ops[k].result = run_op(&top, &ops[k], &fit);
    if (fit) {
      kept += ops[k].result == CS_OK;
      continue;
    }
    if (kept > 0)
      break; /* the next Txn takes it */
    CS_LOG(CS_LOG_ERROR,
           "store: one change needs more than one etcd Txn holds "
           "(%d puts and deletes, %zu KiB)",
           CS_ETCD_REC_OPS, CS_ETCD_TXN_BYTES >> 10);
    ops[k].result = CS_ERR_TOO_LARGE;
  }
  mdb_txn_abort(top.txn);
  g->end = k;
  *full = top.full;
  if (top.full)
    return CS_OK;
  cs_buf_init(&g->body, (size_t)4 << 20);
  e = cs_etcd_plan(&g->rec, &g->body, &g->has_writes);
  return e == CS_ERR_TOO_LARGE ? CS_ERR_INTERNAL : e; /* fits() said it does */
}

static void group_free(struct group *g)
{
  cs_etcd_rec_free(&g->rec);
  cs_buf_free(&g->body);
}

static enum cs_err pack(struct cs_store *st, struct cs_store_op *ops, size_t begin, size_t n,
                        struct group *g)
{
  enum cs_err e;

  pthread_mutex_lock(&st->write_mu);
  for (;;) {
    bool full = false;

    memset(g, 0, sizeof *g);
    e = pack_once(st, ops, begin, n, g, &full);
    if (e != CS_OK || !full)
      break;
    group_free(g);
    e = cs_lmdb_grow_locked(st);
    if (e != CS_OK)
      break;
  }
  pthread_mutex_unlock(&st->write_mu);
  return e;
}

/* Did an earlier send of this attempt commit? The failure branch read the
 * node key before fencing it: our id there means yes, at its mod_revision. */
static int64_t committed_before(const cJSON *reply, uint64_t attempt)
{
  const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(reply, "responses"), 0),
      "response_range");
  const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0);
  char want[32];
  uint8_t *v = NULL;
  size_t vlen = 0;
  int64_t rev = 0;

  snprintf(want, sizeof want, "a%llu", (unsigned long long)attempt);
  if (kv && cs_etcd_unb64(cJSON_GetObjectItemCaseSensitive(kv, "value"), &v, &vlen) == CS_OK &&
      vlen == strlen(want) && memcmp(v, want, vlen) == 0)
    rev = cs_etcd_int(kv, "mod_revision");
  free(v);
  return rev;
}

/* Send the group's Txn; re-sending it is safe (see etcd.h). Sets *ok (it
 * committed, by this send or an earlier one) and *rev: the commit's
 * revision, or the failure branch's. */
static enum cs_err commit(struct cs_etcd *e, CURL *h, struct group *g, int64_t deadline, bool *ok,
                          int64_t *rev)
{
  struct cs_etcd_call r = {.path = "/v3/kv/txn",
                           .body = g->body.data,
                           .len = g->body.len,
                           .idempotent = true,
                           .ep = -1,
                           .deadline_ms = deadline};
  cJSON *j = NULL;
  enum cs_err err;
  int64_t before;

  atomic_fetch_add(&e->txns, 1);
  err = cs_etcd_post(&e->cli, h, &r, &j);
  if (err == CS_OK) {
    *ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "succeeded"));
    *rev = cs_etcd_int(cJSON_GetObjectItemCaseSensitive(j, "header"), "revision");
    before = *ok ? 0 : committed_before(j, g->rec.attempt);
    if (before > 0) {
      *ok = true;
      *rev = before;
    }
    if (*rev <= 0)
      err = CS_ERR_STORE;
  }
  cJSON_Delete(j);
  return err;
}

static void fail_from(struct cs_store_op *ops, size_t begin, size_t n, enum cs_err e)
{
  for (size_t i = begin; i < n; i++)
    ops[i].result = e;
}

/* A Txn committed at @p rev: it is the write's result only once the copy
 * shows it, since the write promises its handle reads it. If the watch does
 * not deliver it by @p deadline the write fails, although it committed
 * (exactly once): as a write whose reply was lost would. */
static enum cs_err wait_committed(struct cs_etcd *e, int64_t rev, int64_t deadline)
{
  if (cs_etcd_wait_applied(e, rev, deadline) == CS_OK)
    return CS_OK;
  CS_LOG(CS_LOG_WARN,
         "store: committed at etcd revision %lld, but the local copy did not "
         "show it in time (it holds %lld): failing the write",
         (long long)rev, (long long)cs_etcd_applied(e));
  return CS_ERR_STORE_UNAVAILABLE;
}

enum cs_err cs_etcd_write_batch(struct cs_store *st, struct cs_store_op *ops, size_t n)
{
  struct cs_etcd *e = st->etcd;
  const long budget = CS_ETCD_DEADLINE_FACTOR * e->cli.timeout_ms;
  int64_t deadline = cs_mono_ms() + budget;
  CURL *h = cs_etcd_handle_get(&e->cli);
  enum cs_err r = h ? CS_OK : CS_ERR_NOMEM;
  size_t begin = 0;

  pthread_mutex_lock(&e->txn_mu);
  while (r == CS_OK && begin < n) {
    struct group g;
    bool ok = false;
    int64_t rev = 0;

    r = pack(st, ops, begin, n, &g);
    if (r == CS_OK && g.has_writes)
      r = commit(e, h, &g, deadline, &ok, &rev);
    group_free(&g);
    if (r != CS_OK)
      break;
    if (!g.has_writes) { /* nothing to commit: results as of the copy */
      begin = g.end;
      continue;
    }
    if (ok) {
      r = wait_committed(e, rev, deadline);
      if (r == CS_OK) {
        begin = g.end;
        deadline = cs_mono_ms() + budget;
      }
      continue;
    }
    /* Something read changed: catch up, run the same ops again. */
    atomic_fetch_add(&e->conflicts, 1);
    r = cs_etcd_wait_applied(e, rev, deadline);
    if (r == CS_OK && cs_mono_ms() >= deadline) {
      CS_LOG(CS_LOG_WARN, "store: a write kept conflicting with others until its deadline");
      r = CS_ERR_STORE_UNAVAILABLE;
    }
  }
  pthread_mutex_unlock(&e->txn_mu);
  cs_etcd_handle_put(&e->cli, h);
  if (r != CS_OK)
    fail_from(ops, begin, n, r);
  return r;
}

/* --------------------------------------------------------------- leases */

static enum cs_err lease_call(struct cs_etcd *e, const char *path, const char *body, cJSON **out)
{
  struct cs_etcd_call r = {
      .path = path, .body = body, .len = strlen(body), .idempotent = true, .ep = -1};
  CURL *h = cs_etcd_handle_get(&e->cli);
  enum cs_err err;

  if (!h)
    return CS_ERR_NOMEM;
  err = cs_etcd_post(&e->cli, h, &r, out);
  cs_etcd_handle_put(&e->cli, h);
  return err;
}

enum cs_err cs_etcd_lease_grant(struct cs_etcd *e, unsigned ttl_s, int64_t *out)
{
  char body[64];
  cJSON *j = NULL;
  enum cs_err r;
  int64_t id;

  snprintf(body, sizeof body, "{\"TTL\":\"%u\"}", ttl_s);
  r = lease_call(e, "/v3/lease/grant", body, &j);
  id = r == CS_OK ? cs_etcd_int(j, "ID") : 0;
  cJSON_Delete(j);
  if (r == CS_OK && id <= 0) {
    CS_LOG(CS_LOG_ERROR, "store: etcd granted no lease id");
    r = CS_ERR_STORE;
  }
  if (r == CS_OK)
    *out = id;
  return r;
}

enum cs_err cs_etcd_lease_keepalive(struct cs_etcd *e, int64_t lease)
{
  char body[64];
  cJSON *j = NULL;
  enum cs_err r;

  snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", (long long)lease);
  r = lease_call(e, "/v3/lease/keepalive", body, &j);
  /* The reply is a stream of one {"result":{"ID","TTL"}}; no TTL: expired. */
  if (r == CS_OK && cs_etcd_int(cJSON_GetObjectItemCaseSensitive(j, "result"), "TTL") <= 0)
    r = CS_ERR_NOT_FOUND;
  cJSON_Delete(j);
  return r;
}

enum cs_err cs_etcd_lease_revoke(struct cs_etcd *e, int64_t lease)
{
  char body[64];
  cJSON *j = NULL;
  enum cs_err r;

  snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", (long long)lease);
  r = lease_call(e, "/v3/lease/revoke", body, &j);
  cJSON_Delete(j);
  return r;
}
