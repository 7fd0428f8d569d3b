/* Events retention (API.md §11): events are kept for opts.events_retention
 * seconds and at most opts.events_max of them. A background thread trims
 * the oldest in transactions of CS_TRIM_BATCH (never one giant one, which
 * would hold the group commit and, on etcd, exceed a Txn), oldest first in
 * feed order (LMDB: seq order; etcd: commit order), and records the feed
 * position of the last one removed as the floor (META "events_floor", u64
 * BE) that cs_events_read() answers 410 below, on every node alike, and
 * that LMDB's cs_event_append() numbers on from when the table is empty.
 * Every node of a cluster runs the thread; see trim_ctx for why at most one
 * commits each batch. */
#include "core_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define META_EVENTS_FLOOR "events_floor"
#define TICK_MS 1000 /* how often retention looks; also how soon it sees a stop */

struct cs_retention {
  struct cs_core *core;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  _Atomic uint64_t trimmed; /* since start, for /metrics */
};

/* ------------------------------------------------------------- the floor */

void cs_events_floor_encode(uint64_t floor, uint8_t out[8]) { cs_store_seq_key(floor, out); }

enum cs_err cs_events_floor_decode(const struct cs_val *v, uint64_t *out)
{
  if (v->len != 8)
    return CS_ERR_STORE;
  *out = cs_store_seq_from_key(v->data, v->len);
  return CS_OK;
}

enum cs_err cs_events_floor(struct cs_txn *txn, uint64_t *out)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, META_EVENTS_FLOOR, strlen(META_EVENTS_FLOOR), &v);

  if (e == CS_ERR_NOT_FOUND) {
    *out = 0;
    return CS_OK;
  }
  if (e)
    return e;
  if ((e = cs_events_floor_decode(&v, out)))
    CS_LOG(CS_LOG_ERROR, "the events floor record is corrupt (%zu bytes)", v.len);
  return e;
}

/* -------------------------------------------------------------- trimming */

/* One batch, picked in a read snapshot and committed in a write that first
 * checks the floor is still the one the snapshot saw. The floor only moves
 * by a trim, so of the nodes of a cluster trimming at once, one commits
 * each batch and the others find the floor moved and pick again from it
 * (on etcd the floor read is a compare of the Txn: a trim from a stale
 * copy fails and re-runs, then finds the floor moved). Nothing else
 * deletes events, and appends only add: a count taken in the snapshot is
 * at most the count at commit, so a batch never trims below the cap. */
struct trim_ctx {
  int64_t cutoff; /* events at or before this epoch second are too old */
  uint64_t over;  /* how many are over the count cap */
  uint64_t floor; /* the floor the snapshot saw */
  uint64_t pos[CS_TRIM_BATCH];
  uint8_t keys[CS_TRIM_BATCH][8];
  uint64_t n;       /* picked */
  bool shared;      /* cs_feed_commit() */
  uint64_t gstart;  /* the first pick of the last picked commit */
  uint64_t trimmed; /* out: removed by the write (0 when another trim won) */
};

/* Is this event older than the cutoff? One that does not parse is removed
 * too: no reader could be served it. */
static bool too_old(const struct cs_val *v, int64_t cutoff)
{
  cJSON *j = NULL;
  int64_t at = 0;
  bool old = true;

  if (!cs_json_parse(v->data, v->len, 4, &j)) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "at");
    old = !cJSON_IsString(a) || cs_time_parse(a->valuestring, &at) || at <= cutoff;
  }
  cJSON_Delete(j);
  return old;
}

/* Which of the oldest events go, in feed order: the walk stops at the
 * first one kept. */
static enum cs_err pick_trim(uint64_t pos, const struct cs_val *k, const struct cs_val *v,
                             void *arg, bool *stop)
{
  struct trim_ctx *t = arg;
  bool same = t->n && cs_feed_commit(t->shared, pos) == cs_feed_commit(t->shared, t->pos[t->n - 1]);

  if (t->n >= CS_TRIM_BATCH || k->len != 8 || (t->over == 0 && !too_old(v, t->cutoff))) {
    /* Not half a commit: its picks wait until the rest of it goes too,
     * unless it alone fills a batch (the next batch takes the rest). */
    if (same && (t->gstart || t->n < CS_TRIM_BATCH))
      t->n = t->gstart;
    *stop = true;
    return CS_OK;
  }
  if (!same)
    t->gstart = t->n;
  t->pos[t->n] = pos;
  memcpy(t->keys[t->n++], k->data, 8);
  if (t->over)
    t->over--; /* over the count cap: goes whatever its age */
  return CS_OK;
}

static enum cs_err pick_batch(struct cs_core *c, uint64_t max, struct trim_ctx *t)
{
  struct cs_txn *txn = NULL;
  uint64_t count = 0;
  enum cs_err e;

  if (!(e = cs_store_read_begin(c->store, &txn)) && !(e = cs_events_floor(txn, &t->floor)) &&
      !(e = cs_txn_count(txn, CS_TBL_EVENTS, &count))) {
    t->over = count > max ? count - max : 0;
    t->shared = cs_txn_shared(txn);
    e = cs_txn_feed_each(txn, CS_TBL_EVENTS, t->floor, pick_trim, t);
  }
  cs_store_read_end(txn);
  return e;
}

static enum cs_err trim_txn(struct cs_txn *txn, void *arg)
{
  struct trim_ctx *t = arg;
  uint64_t floor = 0;
  uint8_t key[8];
  enum cs_err e;

  t->trimmed = 0; /* a write may run more than once (etcd re-runs a conflict) */
  if ((e = cs_events_floor(txn, &floor)) || floor != t->floor)
    return e; /* another trim moved it: this batch is stale */
  for (uint64_t i = 0; i < t->n && !e; i++)
    if ((e = cs_txn_del(txn, CS_TBL_EVENTS, t->keys[i], 8)) == CS_ERR_NOT_FOUND)
      e = CS_OK;
  if (e)
    return e;
  cs_events_floor_encode(t->pos[t->n - 1], key);
  if (!(e = cs_txn_put(txn, CS_TBL_META, META_EVENTS_FLOOR, strlen(META_EVENTS_FLOOR), key, 8, 0)))
    t->trimmed = t->n;
  return e;
}

enum cs_err cs_events_trim_batch(struct cs_core *c, int64_t now, uint64_t *trimmed)
{
  int64_t keep = c->opts.events_retention ? c->opts.events_retention : CS_DEFAULT_EVENTS_RETENTION;
  uint64_t max = c->opts.events_max ? (uint64_t)c->opts.events_max : CS_DEFAULT_EVENTS_MAX;
  struct trim_ctx *t = calloc(1, sizeof *t);
  enum cs_err e;

  if (!t)
    return CS_ERR_NOMEM;
  t->cutoff = now - keep;
  if (!(e = pick_batch(c, max, t)) && t->n)
    e = cs_core_write(c, trim_txn, t);
  if (!e)
    *trimmed = t->trimmed;
  free(t);
  return e;
}

/* ---------------------------------------------------------------- thread */

/* One pass: batches follow one another until one removes nothing (a batch
 * may stop short of CS_TRIM_BATCH at a commit's edge, and on etcd removes
 * nothing when another node's trim won). */
static void trim_pass(struct cs_retention *r)
{
  uint64_t n = CS_TRIM_BATCH;

  while (n) {
    pthread_mutex_lock(&r->mu);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (stop)
      return;
    enum cs_err e = cs_events_trim_batch(r->core, cs_now(), &n);
    if (e) {
      CS_LOG(CS_LOG_ERROR, "events retention: %s", cs_err_code(e));
      return;
    }
    r->trimmed += n;
  }
}

static void *retention_main(void *arg)
{
  struct cs_retention *r = arg;

  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    pthread_mutex_unlock(&r->mu);
    trim_pass(r);
    pthread_mutex_lock(&r->mu);
    struct timespec ts;
    cs_deadline_in_ms(TICK_MS, &ts);
    if (!r->stop)
      pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

enum cs_err cs_retention_start(struct cs_core *c)
{
  struct cs_retention *r;

  if (!(r = calloc(1, sizeof *r)))
    return CS_ERR_NOMEM;
  r->core = c;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  if (pthread_create(&r->thread, NULL, retention_main, r)) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    return CS_ERR_INTERNAL;
  }
  c->retention = r;
  return CS_OK;
}

uint64_t cs_retention_trimmed(struct cs_core *c)
{
  return c->retention ? c->retention->trimmed : 0;
}

void cs_retention_stop(struct cs_core *c)
{
  struct cs_retention *r = c->retention;

  if (!r)
    return;
  pthread_mutex_lock(&r->mu);
  r->stop = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
  c->retention = NULL;
}
