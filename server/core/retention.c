/* Events retention (API.md §11): events are kept for opts.events_retention
 * seconds and at most opts.events_max of them. A background thread trims
 * the oldest in transactions of CS_TRIM_BATCH (never one giant one, which
 * would hold the group commit and, on etcd, exceed a Txn), and records the
 * highest seq removed as the floor (META "events_floor", u64 BE) that
 * cs_events_read() answers 410 below and cs_event_append() numbers on from
 * when the table is empty. */
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

struct trim_ctx {
  int64_t cutoff; /* events at or before this epoch second are too old */
  uint64_t max;
  uint64_t seqs[CS_TRIM_BATCH];
  uint64_t n; /* out */
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

/* Which of the oldest events go: the walk stops at the first one kept. */
static enum cs_err pick_trim(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct trim_ctx *t = arg;

  if (t->n >= CS_TRIM_BATCH || (t->max == 0 && !too_old(v, t->cutoff))) {
    *stop = true;
    return CS_OK;
  }
  t->seqs[t->n++] = seq;
  if (t->max)
    t->max--; /* over the count cap: goes whatever its age */
  return CS_OK;
}

static enum cs_err trim_txn(struct cs_txn *txn, void *arg)
{
  struct trim_ctx *t = arg;
  struct trim_ctx pick = *t;
  uint64_t count = 0;
  uint8_t key[8];
  enum cs_err e;

  if ((e = cs_txn_count(txn, CS_TBL_EVENTS, &count)))
    return e;
  pick.n = 0;
  pick.max = count > t->max ? count - t->max : 0; /* how many are over the cap */
  if ((e = cs_seq_each_txn(txn, CS_TBL_EVENTS, 0, pick_trim, &pick)))
    return e;
  for (uint64_t i = 0; i < pick.n && !e; i++) {
    cs_store_seq_key(pick.seqs[i], key);
    e = cs_txn_del(txn, CS_TBL_EVENTS, key, 8);
  }
  if (!e && pick.n) {
    cs_events_floor_encode(pick.seqs[pick.n - 1], key);
    e = cs_txn_put(txn, CS_TBL_META, META_EVENTS_FLOOR, strlen(META_EVENTS_FLOOR), key, 8, 0);
  }
  t->n = e ? 0 : pick.n;
  return e;
}

enum cs_err cs_events_trim_batch(struct cs_core *c, int64_t now, uint64_t *trimmed)
{
  int64_t keep = c->opts.events_retention ? c->opts.events_retention : CS_DEFAULT_EVENTS_RETENTION;
  struct trim_ctx *t = calloc(1, sizeof *t);
  enum cs_err e;

  if (!t)
    return CS_ERR_NOMEM;
  t->cutoff = now - keep;
  t->max = c->opts.events_max ? (uint64_t)c->opts.events_max : CS_DEFAULT_EVENTS_MAX;
  if (!(e = cs_core_write(c, trim_txn, t)))
    *trimmed = t->n;
  free(t);
  return e;
}

/* ---------------------------------------------------------------- thread */

/* One pass: full batches follow one another until one is not full. */
static void trim_pass(struct cs_retention *r)
{
  uint64_t n = CS_TRIM_BATCH;

  while (n == CS_TRIM_BATCH) {
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
  struct cs_retention *r = calloc(1, sizeof *r);

  if (!r)
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
