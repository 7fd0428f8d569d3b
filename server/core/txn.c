/* The core's two store primitives: committing a change (through the group
 * committer when serving, on its own otherwise), and walking a table keyed
 * by 8-byte big-endian sequence numbers (audit, events, outbox) in one
 * short read snapshot. */
#include "core_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum cs_err cs_seq_each_txn(struct cs_txn *txn, enum cs_table t, uint64_t from, cs_seq_fn fn,
                            void *arg)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  uint8_t key[8];
  bool stop = false;
  enum cs_err e;

  if ((e = cs_cursor_open(txn, t, &c)))
    return e;
  cs_store_seq_key(from, key);
  for (e = cs_cursor_seek(c, key, 8, &k, &v); e == CS_OK && !stop; e = cs_cursor_next(c, &k, &v))
    if ((e = fn(cs_store_seq_from_key(k.data, k.len), &v, arg, &stop)))
      break;
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK;
  cs_cursor_close(c);
  return e;
}

enum cs_err cs_seq_each(struct cs_store *st, enum cs_table t, uint64_t from, cs_seq_fn fn,
                        void *arg)
{
  struct cs_txn *txn = NULL;
  enum cs_err e = cs_store_read_begin(st, &txn);

  if (!e)
    e = cs_seq_each_txn(txn, t, from, fn, arg);
  cs_store_read_end(txn);
  return e;
}

enum cs_err cs_core_write(struct cs_core *c, cs_store_write_fn fn, void *ctx)
{
  /* Cluster mode without a quorum: refuse at once rather than after the
   * store's 3x request timeout (LMDB is always healthy). */
  if (!cs_store_healthy(c->store))
    return CS_ERR_STORE_UNAVAILABLE;
  return c->writer ? cs_writer_submit(c->writer, fn, ctx) : cs_store_write(c->store, fn, ctx);
}

/* ------------------------------------------------- writes a request awaits */

void cs_core_set_write_waker(struct cs_core *c, void (*park)(void *waiter),
                             void (*wake)(void *waiter))
{
  c->write_park = park;
  c->write_wake = wake;
}

static char *dup_or_null(const char *s, bool *fail)
{
  char *d = s ? strdup(s) : NULL;
  *fail |= s && !d;
  return d;
}

enum cs_err cs_core_job_init(struct cs_core_job *j, struct cs_core *c, void *waiter,
                             const struct cs_actor *a, void (*free_kind)(struct cs_core_job *j))
{
  bool fail = false;

  j->core = c;
  j->waiter = waiter;
  atomic_init(&j->refs, 1);
  pthread_mutex_init(&j->mu, NULL);
  j->free_kind = free_kind;
  /* The request may be gone (a client that hung up) before the write runs. */
  j->key_id = dup_or_null(a->key_id, &fail);
  j->role = dup_or_null(a->role, &fail);
  j->remote = dup_or_null(a->remote, &fail);
  j->actor = (struct cs_actor){j->key_id, j->role, j->remote};
  return fail ? CS_ERR_NOMEM : CS_OK;
}

static void job_unref(struct cs_core_job *j)
{
  if (atomic_fetch_sub(&j->refs, 1) != 1)
    return;
  pthread_mutex_destroy(&j->mu);
  free(j->key_id);
  free(j->role);
  free(j->remote);
  j->free_kind(j);
}

void cs_core_job_free(struct cs_core_job *j)
{
  if (!j)
    return;
  /* A request that goes while its write is queued is not woken. */
  pthread_mutex_lock(&j->mu);
  j->gone = true;
  pthread_mutex_unlock(&j->mu);
  job_unref(j);
}

bool cs_core_job_parked(const struct cs_core_job *j) { return j->parked; }

/* On the writer thread: the outcome is in; wake the request, drop the writer's hold. */
static void job_done(void *arg, enum cs_err result)
{
  struct cs_core_job *j = arg;

  j->result = result;
  pthread_mutex_lock(&j->mu);
  if (!j->gone)
    j->core->write_wake(j->waiter);
  pthread_mutex_unlock(&j->mu);
  job_unref(j);
}

void cs_core_job_write(struct cs_core_job *j, cs_store_write_fn fn, void *ctx)
{
  struct cs_core *c = j->core;
  enum cs_err e;

  if (!c->writer || !c->write_park || !j->waiter || !cs_store_healthy(c->store)) {
    j->result = cs_core_write(c, fn, ctx);
    return;
  }
  /* Parked before it is queued, so the wake-up cannot overtake it. */
  atomic_fetch_add(&j->refs, 1);
  j->parked = true;
  c->write_park(j->waiter);
  if ((e = cs_writer_submit_async(c->writer, fn, ctx, job_done, j)))
    job_done(j, e);
}

enum cs_err cs_json_set_seq(cJSON *j, uint64_t pos)
{
  cJSON *n = cJSON_CreateNumber((double)pos);

  if (!n)
    return CS_ERR_NOMEM;
  if (cJSON_HasObjectItem(j, "seq"))
    return cJSON_ReplaceItemInObjectCaseSensitive(j, "seq", n) ? CS_OK : CS_ERR_NOMEM;
  if (!cJSON_AddItemToObject(j, "seq", n)) {
    cJSON_Delete(n);
    return CS_ERR_NOMEM;
  }
  return CS_OK;
}

enum cs_err cs_seq_new_key(struct cs_txn *txn, enum cs_table t, uint8_t key[8])
{
  uint64_t seq;
  enum cs_err e;

  if (cs_txn_shared(txn)) {
    cs_random_bytes(&seq, sizeof seq);
    seq |= (uint64_t)1 << 63;
  } else if ((e = cs_txn_last_seq(txn, t, &seq)) != CS_OK) {
    return e;
  } else {
    seq++;
  }
  cs_store_seq_key(seq, key);
  return CS_OK;
}
