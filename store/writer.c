/* Group commit (store.h): one writer thread takes every queued change,
 * commits them with cs_store_write_batch() (one failing change rolls back
 * alone), then wakes the batch's submitters, each on its own condition
 * variable: a broadcast woke every waiter after every batch, and all of
 * them re-took the mutex only to wait again. */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>

#define BATCH_MAX 256

struct wr_op {
  struct cs_store_op op;
  bool done;
  pthread_cond_t cv; /* its submitter waits here */
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

static void *writer_main(void *arg)
{
  struct cs_writer *w = arg;
  struct wr_op *batch[BATCH_MAX];
  struct cs_store_op ops[BATCH_MAX + 1]; /* + the flush */

  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stopping)
      pthread_cond_wait(&w->work, &w->mu);
    if (!w->head && w->stopping)
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

    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++) {
      batch[i]->op.result = ops[i].result;
      batch[i]->done = true;
      pthread_cond_signal(&batch[i]->cv);
    }
  }
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

enum cs_err cs_writer_submit(struct cs_writer *w, cs_store_write_fn fn, void *ctx)
{
  struct wr_op op = {.op = {.fn = fn, .ctx = ctx}};

  pthread_mutex_lock(&w->mu);
  if (w->stopping) {
    pthread_mutex_unlock(&w->mu);
    return CS_ERR_UNAVAILABLE;
  }
  pthread_cond_init(&op.cv, NULL);
  if (w->tail)
    w->tail->next = &op;
  else
    w->head = &op;
  w->tail = &op;
  pthread_cond_signal(&w->work);
  while (!op.done)
    pthread_cond_wait(&op.cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  pthread_cond_destroy(&op.cv);
  return op.op.result;
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
