/* Audit export and prune (API.md §11): the trail is never silently cut.
 * audit-export writes every entry (with its hash) in feed order for
 * safekeeping and records how far it got; audit-prune removes only
 * exported entries, and moves each chain's anchor to the last one it
 * removed from that chain, so audit-verify checks what remains from there.
 * The anchor is keyed with the audit-chain key: a store writer without the
 * master key cannot prune and re-anchor.
 *
 * One code path for both stores: the feed (LMDB: key order; etcd: commit
 * order, one order on every node) and per-chain anchors (LMDB has the one
 * chain ""; a cluster one per node). How far export got is one feed
 * position, META "audit_exported": positions only grow and a later commit
 * always lands above every earlier one, so "every entry at or below it" is
 * exactly what was exported, of every chain alike.
 *
 * Prune batches: picked in a read snapshot (which entries, the anchors
 * they move), then written in a transaction that re-reads each anchor it
 * moves (on etcd a compare of the Txn) and gives up if another prune moved
 * one. A batch removes at most CS_TRIM_BATCH entries of at most
 * PRUNE_CHAINS chains: one etcd Txn, well under its 128 ops. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORTED_KEY CS_AUDIT_EXPORTED_KEY
#define CHAIN_KEY_LEN (CS_NODE_ID_MAX + 1 + 8) /* "<chain>" 0x00 u64 BE */
#define PRUNE_CHAINS 16 /* chains one prune batch moves the anchor of, at most */

static enum cs_err u64_meta(struct cs_txn *txn, const char *key, uint64_t *out)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, key, strlen(key), &v);

  *out = 0;
  if (e == CS_ERR_NOT_FOUND)
    return CS_OK;
  if (!e && v.len != 8)
    e = CS_ERR_STORE;
  if (!e)
    *out = cs_store_seq_from_key(v.data, v.len);
  return e;
}

/* ---------------------------------------------------------------- export */

struct export_ctx {
  enum cs_err (*line)(void *arg, const char *json, size_t len);
  void *arg;
  uint64_t count, last;
};

static enum cs_err export_one(uint64_t seq, const struct cs_val *k, const struct cs_val *v,
                              void *arg, bool *stop)
{
  struct export_ctx *x = arg;
  cJSON *j = NULL;
  char *text = NULL;
  enum cs_err e;

  (void)k;
  (void)stop;
  if ((e = cs_audit_render(seq, v, &j)))
    return e;
  if (!(text = cs_json_print(j)))
    e = CS_ERR_NOMEM;
  else if (!(e = x->line(x->arg, text, strlen(text)))) {
    x->count++;
    x->last = seq;
  }
  free(text);
  cJSON_Delete(j);
  return e;
}

static enum cs_err exported_txn(struct cs_txn *txn, void *arg)
{
  uint64_t last = *(const uint64_t *)arg, had = 0;
  uint8_t rec[8];
  enum cs_err e = u64_meta(txn, EXPORTED_KEY, &had);

  if (e || last <= had)
    return e;
  cs_store_seq_key(last, rec);
  return cs_txn_put(txn, CS_TBL_META, EXPORTED_KEY, strlen(EXPORTED_KEY), rec, 8, 0);
}

enum cs_err cs_audit_export(struct cs_core *c,
                            enum cs_err (*line)(void *arg, const char *json, size_t len), void *arg,
                            uint64_t *count, uint64_t *last)
{
  struct export_ctx x = {line, arg, 0, 0};
  enum cs_err e = cs_store_feed_each(c->store, CS_TBL_AUDIT, 0, export_one, &x);

  *count = x.count;
  *last = x.last;
  return e;
}

enum cs_err cs_audit_mark_exported(struct cs_core *c, uint64_t last)
{
  return last ? cs_core_write(c, exported_txn, &last) : CS_OK;
}

/* ----------------------------------------------------------------- prune */

/* One chain a batch prunes: its anchor before and after. */
struct prune_chain {
  char id[CS_NODE_ID_MAX + 1];
  struct cs_audit_anchor was, now;
  uint8_t head[CS_HASH_BYTES]; /* its newest entry's hash: that one stays */
};

/* One entry a batch removes. */
struct prune_pick {
  uint8_t key[CHAIN_KEY_LEN];
  size_t klen;
  uint64_t pos;
  size_t chain; /* in prune_ctx.chains */
  struct cs_audit_anchor link;
};

struct prune_ctx {
  const struct cs_keyring *kr;
  struct cs_txn *txn; /* the snapshot while picking */
  bool shared;        /* cs_feed_commit() */
  uint64_t before;
  uint64_t from;   /* feed position the next batch picks after */
  bool full;       /* the batch stopped at a bound: more may follow */
  enum cs_err err; /* a pick's failure */
  uint64_t n;      /* picked */
  uint64_t gstart; /* the first pick of the last picked commit */
  uint64_t kept;   /* commit of the last entry kept + 1 (0: none) */
  struct prune_pick picks[CS_TRIM_BATCH];
  struct prune_chain chains[PRUNE_CHAINS];
  size_t nchains;
  /* Chains with an entry kept: none of their later entries may go (the
   * anchor would pass it). For the whole run. */
  char blocked[PRUNE_CHAINS][CS_NODE_ID_MAX + 1];
  size_t nblocked;
};

/* The highest `before` allowed (*limit): the position of the first entry
 * not exported, or of the newest (the last head stays checkable),
 * whichever is lower; 1 for an empty trail. */
struct limit_ctx {
  uint64_t exported, first_after, newest;
};

static enum cs_err limit_step(uint64_t pos, const struct cs_val *k, const struct cs_val *v,
                              void *arg, bool *stop)
{
  struct limit_ctx *l = arg;

  (void)k;
  (void)v;
  (void)stop;
  if (pos > l->exported && !l->first_after)
    l->first_after = pos;
  l->newest = pos;
  return CS_OK;
}

static enum cs_err prune_limit(struct cs_store *st, uint64_t *limit)
{
  struct limit_ctx l = {0, 0, 0};
  struct cs_txn *txn = NULL;
  enum cs_err e;

  if (!(e = cs_store_read_begin(st, &txn)) && !(e = u64_meta(txn, EXPORTED_KEY, &l.exported)))
    e = cs_txn_feed_each(txn, CS_TBL_AUDIT, l.exported ? l.exported - 1 : 0, limit_step, &l);
  cs_store_read_end(txn);
  if (e)
    return e;
  if (!l.newest)
    *limit = 1;
  else
    *limit = l.first_after && l.first_after < l.newest ? l.first_after : l.newest;
  return CS_OK;
}

/* The chain an entry belongs to and its link there, from its rendering:
 * a node's chain names itself ("node", "chainSeq"); LMDB's chain "" is
 * keyed by its seq. */
static enum cs_err entry_link(const struct cs_val *k, const struct cs_val *v,
                              char chain[CS_NODE_ID_MAX + 1], uint64_t *cseq,
                              uint8_t hash[CS_HASH_BYTES])
{
  cJSON *j = NULL;
  enum cs_err e = cs_audit_render(0, v, &j);

  if (e)
    return e;
  const cJSON *node = cJSON_GetObjectItemCaseSensitive(j, "node");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "chainSeq");
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "hash");
  size_t hl = 0;
  e = CS_ERR_STORE;
  if (cJSON_IsString(h) &&
      !cs_unhex(h->valuestring, strlen(h->valuestring), hash, CS_HASH_BYTES, &hl) &&
      hl == CS_HASH_BYTES) {
    if (!cJSON_IsString(node) && k->len == 8) {
      chain[0] = '\0';
      *cseq = cs_store_seq_from_key(k->data, 8);
      e = CS_OK;
    } else if (cJSON_IsString(node) && cJSON_IsNumber(s) && s->valuedouble >= 1 &&
               strlen(node->valuestring) <= CS_NODE_ID_MAX) {
      memcpy(chain, node->valuestring, strlen(node->valuestring) + 1);
      *cseq = (uint64_t)s->valuedouble;
      e = CS_OK;
    }
  }
  cJSON_Delete(j);
  return e;
}

/* The batch's entry for @p chain, loading its anchor and head from the
 * snapshot the first time. NULL: the batch has PRUNE_CHAINS already. */
static struct prune_chain *batch_chain(struct prune_ctx *p, const char *chain)
{
  uint64_t head_seq;
  struct prune_chain *c;

  for (size_t i = 0; i < p->nchains; i++)
    if (strcmp(p->chains[i].id, chain) == 0)
      return &p->chains[i];
  if (p->nchains == PRUNE_CHAINS)
    return NULL;
  c = &p->chains[p->nchains];
  memcpy(c->id, chain, strlen(chain) + 1);
  if ((p->err = cs_audit_anchor_load(p->txn, p->kr, chain, &c->was)) ||
      (p->err = cs_audit_head(p->txn, chain, &head_seq, c->head)))
    return NULL;
  c->now = c->was;
  p->nchains++;
  return c;
}

static bool is_blocked(const struct prune_ctx *p, const char *chain)
{
  for (size_t i = 0; i < p->nblocked; i++)
    if (strcmp(p->blocked[i], chain) == 0)
      return true;
  return false;
}

/* Keep @p chain's entries from here on. @return false when the set is full. */
static bool block(struct prune_ctx *p, const char *chain)
{
  if (is_blocked(p, chain))
    return true;
  if (p->nblocked == PRUNE_CHAINS)
    return false;
  memcpy(p->blocked[p->nblocked++], chain, strlen(chain) + 1);
  return true;
}

/* Give back the picks of the last picked commit (never half a commit):
 * @p keep blocks their chains (an entry of that commit stays), else the
 * next batch starts at the commit again. */
static bool drop_commit(struct prune_ctx *p, bool keep)
{
  bool ok = true;

  if (!keep)
    p->from = p->picks[p->gstart].pos - 1;
  for (uint64_t i = p->gstart; keep && i < p->n; i++)
    ok = ok && block(p, p->chains[p->picks[i].chain].id);
  p->n = p->gstart;
  return ok;
}

/* Stop the batch at @p pos: at @p before, a full batch, or a chain too many. */
static enum cs_err stop_batch(struct prune_ctx *p, uint64_t pos, bool same, bool *stop)
{
  p->full = pos < p->before && !p->err;
  if (same && (p->gstart || !p->full))
    drop_commit(p, !p->full);
  *stop = true;
  return p->err;
}

static enum cs_err pick_prune(uint64_t pos, const struct cs_val *k, const struct cs_val *v,
                              void *arg, bool *stop)
{
  struct prune_ctx *p = arg;
  char chain[CS_NODE_ID_MAX + 1];
  struct cs_audit_anchor link;
  struct prune_chain *c;
  uint64_t g = cs_feed_commit(p->shared, pos);
  bool same = p->n && g == cs_feed_commit(p->shared, p->picks[p->n - 1].pos);
  enum cs_err e;

  if (pos >= p->before || p->n == CS_TRIM_BATCH)
    return stop_batch(p, pos, same, stop);
  if ((e = entry_link(k, v, chain, &link.seq, link.hash)))
    return e;
  if (!(c = batch_chain(p, chain)))
    return stop_batch(p, pos, same, stop);
  p->from = pos;
  /* Kept: its chain's newest (the head stays checkable), a chain with an
   * entry kept, or the rest of a commit with an entry kept. */
  if (cs_hash_equal(link.hash, c->head) || is_blocked(p, chain) || g + 1 == p->kept ||
      k->len > CHAIN_KEY_LEN) {
    p->kept = g + 1;
    if (!block(p, chain) || (same && !drop_commit(p, true)))
      *stop = true; /* too many chains held back: prune what was picked, then end */
    return CS_OK;
  }
  if (!same)
    p->gstart = p->n;
  struct prune_pick *pk = &p->picks[p->n++];
  memcpy(pk->key, k->data, k->len);
  pk->klen = k->len;
  pk->pos = pos;
  pk->chain = (size_t)(c - p->chains);
  pk->link = link;
  return CS_OK;
}

static enum cs_err pick_batch(struct cs_core *core, struct prune_ctx *p)
{
  enum cs_err e;

  p->n = p->nchains = p->gstart = 0;
  p->full = false;
  p->err = CS_OK;
  p->txn = NULL;
  if (!(e = cs_store_read_begin(core->store, &p->txn))) {
    p->shared = cs_txn_shared(p->txn);
    e = cs_txn_feed_each(p->txn, CS_TBL_AUDIT, p->from, pick_prune, p);
  }
  cs_store_read_end(p->txn);
  p->txn = NULL;
  /* Each chain's anchor: its highest removed (an entry re-put lands later
   * in the feed than its chain's next ones). */
  for (uint64_t i = 0; !e && i < p->n; i++) {
    struct prune_chain *c = &p->chains[p->picks[i].chain];
    if (p->picks[i].link.seq > c->now.seq)
      c->now = p->picks[i].link;
  }
  return e;
}

static enum cs_err prune_txn(struct cs_txn *txn, void *arg)
{
  struct prune_ctx *p = arg;
  struct cs_audit_anchor a;
  enum cs_err e;

  for (size_t i = 0; i < p->nchains; i++) {
    if ((e = cs_audit_anchor_load(txn, p->kr, p->chains[i].id, &a)))
      return e;
    if (a.seq != p->chains[i].was.seq)
      return CS_ERR_UNAVAILABLE; /* another audit-prune moved it since */
  }
  for (uint64_t i = 0; i < p->n; i++)
    if ((e = cs_txn_del(txn, CS_TBL_AUDIT, p->picks[i].key, p->picks[i].klen)) &&
        e != CS_ERR_NOT_FOUND)
      return e;
  for (size_t i = 0; i < p->nchains; i++)
    if (p->chains[i].now.seq != p->chains[i].was.seq &&
        (e = cs_audit_anchor_store(txn, p->kr, p->chains[i].id, &p->chains[i].now)))
      return e;
  return CS_OK;
}

enum cs_err cs_audit_prune(struct cs_core *c, const struct cs_actor *a, uint64_t before,
                           uint64_t *removed, uint64_t *limit, struct cs_audit_anchor *anchor)
{
  struct prune_ctx *p = calloc(1, sizeof *p);
  char target[48];
  enum cs_err e;

  *removed = 0;
  memset(anchor, 0, sizeof *anchor);
  if (!p)
    return CS_ERR_NOMEM;
  p->kr = c->keyring;
  p->before = before;
  if (!(e = prune_limit(c->store, limit)) && before > *limit)
    e = CS_ERR_PRECONDITION;
  for (bool more = !e; more && !e;) {
    if ((e = pick_batch(c, p)) || (!p->n && !p->full))
      break;
    more = p->full;
    if (p->n && !(e = cs_core_write(c, prune_txn, p)))
      *removed += p->n;
    for (size_t i = 0; !e && i < p->nchains; i++)
      if (p->chains[i].now.seq != p->chains[i].was.seq)
        *anchor = p->chains[i].now;
  }
  free(p);
  if (e)
    return e;
  snprintf(target, sizeof target, "before %llu", (unsigned long long)before);
  return cs_audit_record(c, a, "audit_prune", target, "success");
}
