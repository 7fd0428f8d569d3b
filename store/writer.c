/* Group commit (store.h): one writer thread takes every queued change,
 * commits them with cs_store_write_batch() (one failing change rolls back
 * alone), then completes each: its submitter's done callback, called
 * outside the lock. A request waiting for its write holds no thread (the
 * api parks its connection), so a batch holds whatever is queued, up to
 * BATCH_MAX, not one change per pool thread. The blocking submit is the
 * same queue with a callback that signals the submitter's own condition
 * variable. */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>

#define BATCH_MAX 256

struct wr_op {
  struct cs_store_op op;
  cs_writer_done_fn done;
  void *arg;
  struct wr_op *next;
};

struct cs_writer {
  struct cs_store *store;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t work; /* the writer waits for ops */
  struct wr_op *head, *tail;
  bool stopping;
  void (*after_commit)(void *);
  void *after_arg;
  cs_store_write_fn flush; /* cs_writer_set_flush */
  void (*drop)(void *);
  void *flush_arg;
  bool flushing; /* writer thread only: the running batch ends with flush */
};

/* Complete the ops of @p batch (n of them, results in @p ops) outside the lock. */
static void complete(struct wr_op **batch, const struct cs_store_op *ops, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    cs_writer_done_fn done = batch[i]->done;
    void *arg = batch[i]->arg;
    enum cs_err result = ops[i].result;
    free(batch[i]);
    done(arg, result);
  }
}

/* Stopping: what is still queued is answered CS_ERR_UNAVAILABLE, not committed. */
static void refuse_queued(struct cs_writer *w)
{
  while (w->head) {
    struct wr_op *o = w->head;
    w->head = o->next;
    pthread_mutex_unlock(&w->mu);
    o->done(o->arg, CS_ERR_UNAVAILABLE);
    free(o);
    pthread_mutex_lock(&w->mu);
  }
  w->tail = NULL;
}

/* Commit ops[0..n) as one batch (with the flush when there is more than one). */
static void commit_batch(struct cs_writer *w, struct cs_store_op *ops, size_t n,
                         cs_store_write_fn flush, void (*drop)(void *), void *flush_arg)
{
  /* A lone change has nothing to coalesce with (and runs without a nested txn). */
  w->flushing = flush && n > 1;
  if (w->flushing)
    ops[n] = (struct cs_store_op){.fn = flush, .ctx = flush_arg};
  enum cs_err e = cs_store_write_batch(w->store, ops, n + w->flushing);
  if (e)
    CS_LOG(CS_LOG_ERROR, "group commit of %zu changes failed: %s", n, cs_err_code(e));
  else if (w->flushing && ops[n].result && ops[n].result != CS_ERR_NOT_FOUND)
    CS_LOG(CS_LOG_ERROR, "group commit: the batch's coalesced updates failed: %s",
           cs_err_code(ops[n].result));
  w->flushing = false;
  if (drop)
    drop(flush_arg);
  if (w->after_commit)
    w->after_commit(w->after_arg);
}

static void *writer_main(void *arg)
{
  struct cs_writer *w = arg;
  struct wr_op *batch[BATCH_MAX];
  struct cs_store_op ops[BATCH_MAX + 1]; /* + the flush */

  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stopping)
      pthread_cond_wait(&w->work, &w->mu);
    if (w->stopping)
      break;
    size_t n = 0;
    while (w->head && n < BATCH_MAX) {
      batch[n] = w->head;
      ops[n] = w->head->op;
      w->head = w->head->next;
      n++;
    }
    if (!w->head)
      w->tail = NULL;
    cs_store_write_fn flush = w->flush; /* set under mu by cs_writer_set_flush */
    void (*drop)(void *) = w->drop;
    void *flush_arg = w->flush_arg;
    pthread_mutex_unlock(&w->mu);
    commit_batch(w, ops, n, flush, drop, flush_arg);
    complete(batch, ops, n);
    pthread_mutex_lock(&w->mu);
  }
  refuse_queued(w);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

enum cs_err cs_writer_start(struct cs_store *st, void (*after_commit)(void *), void *arg,
                            struct cs_writer **out)
{
  struct cs_writer *w = calloc(1, sizeof *w);
  if (!w)
    return CS_ERR_NOMEM;
  w->store = st;
  w->after_commit = after_commit;
  w->after_arg = arg;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->work, NULL);
  if (pthread_create(&w->thread, NULL, writer_main, w)) {
    free(w);
    return CS_ERR_INTERNAL;
  }
  *out = w;
  return CS_OK;
}

enum cs_err cs_writer_submit_async(struct cs_writer *w, cs_store_write_fn fn, void *ctx,
                                   cs_writer_done_fn done, void *arg)
{
  struct wr_op *op = malloc(sizeof *op);

  if (!op)
    return CS_ERR_NOMEM;
  *op = (struct wr_op){.op = {.fn = fn, .ctx = ctx}, .done = done, .arg = arg};
  pthread_mutex_lock(&w->mu);
  if (w->stopping) {
    pthread_mutex_unlock(&w->mu);
    free(op);
    return CS_ERR_UNAVAILABLE;
  }
  if (w->tail)
    w->tail->next = op;
  else
    w->head = op;
  w->tail = op;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->mu);
  return CS_OK;
}

/* A blocking submitter waits on its own condition variable. */
struct wait_op {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  enum cs_err result;
};

static void wait_done(void *arg, enum cs_err result)
{
  struct wait_op *o = arg;
  pthread_mutex_lock(&o->mu);
  o->result = result;
  o->done = true;
  pthread_cond_signal(&o->cv);
  pthread_mutex_unlock(&o->mu);
}

enum cs_err cs_writer_submit(struct cs_writer *w, cs_store_write_fn fn, void *ctx)
{
  struct wait_op o = {.done = false};
  enum cs_err e;

  pthread_mutex_init(&o.mu, NULL);
  pthread_cond_init(&o.cv, NULL);
  if (!(e = cs_writer_submit_async(w, fn, ctx, wait_done, &o))) {
    pthread_mutex_lock(&o.mu);
    while (!o.done)
      pthread_cond_wait(&o.cv, &o.mu);
    pthread_mutex_unlock(&o.mu);
    e = o.result;
  }
  pthread_cond_destroy(&o.cv);
  pthread_mutex_destroy(&o.mu);
  return e;
}

void cs_writer_set_flush(struct cs_writer *w, cs_store_write_fn flush, void (*drop)(void *),
                         void *arg)
{
  pthread_mutex_lock(&w->mu);
  w->flush = flush;
  w->drop = drop;
  w->flush_arg = arg;
  pthread_mutex_unlock(&w->mu);
}

bool cs_writer_flushing(const struct cs_writer *w)
{
  return w && pthread_equal(pthread_self(), w->thread) && w->flushing;
}

void cs_writer_stop(struct cs_writer *w)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->work);
  free(w);
}
