/* The event feed (API.md §4): every change appends an event in its own
 * transaction. Long-polls wait without holding a thread: the api parks a
 * waiter (suspends its connection) through the callbacks it registered,
 * and a notifier thread wakes it (the api resumes it) when a commit lands,
 * its deadline passes, or serving stops. A woken poll reads again; one that
 * finds only events outside its view parks again, so only an event the
 * caller may see, or the end of the wait, answers it. */
#include "core_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_PAGE 1000
/* Events one read examines at most: a caller whose view matches little
 * must not walk the whole feed per request (nor per wake-up). */
#define SCAN_MAX 10000

struct waiter {
  void *tag; /* the api's (its connection) */
  int64_t deadline_ms;
  uint64_t gen;
  struct waiter *next;
};

struct cs_events {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  uint64_t gen; /* bumped after every commit */
  bool stop;
  bool joined;
  struct waiter *list;
  void (*park)(void *waiter); /* the api's callbacks */
  void (*wake)(void *waiter);
};

enum cs_err cs_event_print(struct cs_buf *b, bool with_seq, uint64_t seq, const char *type,
                           const char *cred_id, uint64_t version, int64_t at)
{
  char when[32];
  enum cs_err e;

  cs_time_format(at, when);
  if (with_seq) {
    if ((e = cs_buf_append(b, "{\"seq\":", 7)) || (e = cs_buf_json_u64(b, seq)) ||
        (e = CS_BUF_JSON_STR(b, "type", type)))
      return e;
  } else if ((e = cs_buf_json_str(b, "{\"type\":\"", 9, type))) {
    return e;
  }
  if ((e = CS_BUF_JSON_STR(b, "credentialId", cred_id)) ||
      (e = cs_buf_append(b, ",\"version\":", 11)) || (e = cs_buf_json_u64(b, version)) ||
      (e = CS_BUF_JSON_STR(b, "at", when)))
    return e;
  return cs_buf_append(b, "}", 1);
}

/* The next event's key in @p txn, into @p key. */
static enum cs_err event_key(struct cs_txn *txn, uint8_t key[8])
{
  enum cs_err e = cs_seq_new_key(txn, CS_TBL_EVENTS, key);

  /* LMDB emptied by retention: go on after the last trimmed, never
   * restart at 1 (a shared store's positions come from etcd's revision,
   * which only grows). */
  if (!e && !cs_txn_shared(txn)) {
    uint64_t floor;
    if ((e = cs_events_floor(txn, &floor)))
      return e;
    if (cs_store_seq_from_key(key, 8) <= floor)
      cs_store_seq_key(floor + 1, key);
  }
  return e;
}

enum cs_err cs_event_append(struct cs_txn *txn, const char *type, const char *cred_id,
                            uint64_t version)
{
  uint8_t key[8];
  /* A name escapes to at most 6 bytes each (CS_NAME_MAX): the stack holds
   * every event. */
  char mem[6 * CS_NAME_MAX + 256];
  struct cs_buf b = cs_buf_fixed(mem, sizeof mem);
  enum cs_err e;

  if ((e = event_key(txn, key)))
    return e;
  /* LMDB stores the seq (its key); a shared store's comes from the commit
   * and is set when read (cs_json_set_seq). */
  if ((e = cs_event_print(&b, !cs_txn_shared(txn), cs_store_seq_from_key(key, 8), type, cred_id,
                          version, cs_now())))
    return e;
  return cs_txn_put(txn, CS_TBL_EVENTS, key, 8, b.data, b.len, CS_PUT_NO_OVERWRITE);
}

/* ------------------------------------------------------------------ read */

struct event_page {
  const struct cs_view *v;
  cJSON *arr;
  uint64_t next;    /* the last seq examined */
  uint64_t scanned; /* events examined; at SCAN_MAX more may follow */
};

static enum cs_err collect_event(uint64_t seq, const struct cs_val *k, const struct cs_val *v,
                                 void *arg, bool *stop)
{
  struct event_page *p = arg;
  cJSON *j;

  p->next = seq;
  *stop = ++p->scanned >= SCAN_MAX;
  if (cs_json_parse(v->data, v->len, 4, &j))
    return CS_ERR_STORE;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "credentialId");
  if (!cJSON_IsString(id) || (p->v->cred && strcmp(id->valuestring, p->v->cred) != 0) ||
      !cs_scope_allows(p->v->scope, id->valuestring)) {
    cJSON_Delete(j);
    return CS_OK;
  }
  (void)k;
  if (cs_json_set_seq(j, seq)) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  cJSON_AddItemToArray(p->arr, j);
  *stop = *stop || cJSON_GetArraySize(p->arr) >= EVENTS_PAGE;
  return CS_OK;
}

enum cs_err cs_events_read(struct cs_core *c, const struct cs_view *v, uint64_t after,
                           cJSON **events, uint64_t *next, bool *more, uint64_t *oldest)
{
  struct event_page p = {v, cJSON_CreateArray(), after, 0};
  struct cs_txn *txn = NULL;
  uint64_t floor = 0;
  enum cs_err e;

  if (!p.arr)
    return CS_ERR_NOMEM;
  /* The floor and the walk in one snapshot: a trim cannot slip between. */
  if ((e = cs_store_read_begin(c->store, &txn)) || (e = cs_events_floor(txn, &floor)))
    goto out;
  if (after > 0 && after < floor) {
    *oldest = floor + 1; /* events after `after` up to floor are gone */
    e = CS_ERR_EVENTS_EXPIRED;
    goto out;
  }
  e = cs_txn_feed_each(txn, CS_TBL_EVENTS, after, collect_event, &p);
out:
  cs_store_read_end(txn);
  if (e) {
    cJSON_Delete(p.arr);
    return e;
  }
  *events = p.arr;
  *next = p.next;
  *more = p.scanned >= SCAN_MAX;
  return CS_OK;
}

/* -------------------------------------------------------------- notifier */

static void *notifier_main(void *arg)
{
  struct cs_events *ev = arg;

  pthread_mutex_lock(&ev->mu);
  for (;;) {
    int64_t now = cs_mono_ms(), next = now + 1000;
    struct waiter **pp = &ev->list;
    while (*pp) {
      struct waiter *w = *pp;
      if (ev->stop || w->gen != ev->gen || w->deadline_ms <= now) {
        *pp = w->next;
        ev->wake(w->tag);
        free(w);
        continue;
      }
      if (w->deadline_ms < next)
        next = w->deadline_ms;
      pp = &w->next;
    }
    if (ev->stop)
      break;
    struct timespec ts;
    cs_deadline_in_ms(next - now, &ts);
    pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
  }
  pthread_mutex_unlock(&ev->mu);
  return NULL;
}

void cs_events_set_waker(struct cs_core *c, void (*park)(void *waiter), void (*wake)(void *waiter))
{
  struct cs_events *ev = c->events;
  if (!ev)
    return;
  pthread_mutex_lock(&ev->mu);
  ev->park = park;
  ev->wake = wake;
  pthread_mutex_unlock(&ev->mu);
}

enum cs_err cs_events_start(struct cs_core *c)
{
  struct cs_events *ev = calloc(1, sizeof *ev);
  if (!ev)
    return CS_ERR_NOMEM;
  pthread_mutex_init(&ev->mu, NULL);
  pthread_cond_init(&ev->cv, NULL);
  if (pthread_create(&ev->thread, NULL, notifier_main, ev)) {
    free(ev);
    return CS_ERR_INTERNAL;
  }
  c->events = ev;
  return CS_OK;
}

void cs_events_notify(struct cs_core *c)
{
  struct cs_events *ev = c->events;
  if (!ev)
    return;
  pthread_mutex_lock(&ev->mu);
  ev->gen++;
  pthread_cond_signal(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
}

uint64_t cs_events_generation(struct cs_core *c)
{
  struct cs_events *ev = c->events;
  uint64_t gen;
  if (!ev)
    return 0;
  pthread_mutex_lock(&ev->mu);
  gen = ev->gen;
  pthread_mutex_unlock(&ev->mu);
  return gen;
}

enum cs_err cs_events_park(struct cs_core *c, void *waiter, int64_t deadline_ms, uint64_t gen,
                           bool *parked)
{
  struct cs_events *ev = c->events;
  struct waiter *w;
  enum cs_err e = CS_OK;

  if (!ev)
    return CS_ERR_UNAVAILABLE;
  if (!(w = malloc(sizeof *w)))
    return CS_ERR_NOMEM;
  pthread_mutex_lock(&ev->mu);
  *parked = ev->gen == gen && !ev->stop;
  if (!ev->park || !ev->wake) {
    e = CS_ERR_UNAVAILABLE;
    *parked = false;
  } else if (*parked) {
    *w = (struct waiter){waiter, deadline_ms, gen, ev->list};
    ev->list = w;
    ev->park(waiter); /* under the lock: the notifier cannot wake it first */
    pthread_cond_signal(&ev->cv);
  }
  pthread_mutex_unlock(&ev->mu);
  if (!*parked)
    free(w);
  return e;
}

void cs_events_stop(struct cs_core *c)
{
  struct cs_events *ev = c->events;
  if (!ev || ev->joined)
    return;
  pthread_mutex_lock(&ev->mu);
  ev->stop = true;
  pthread_cond_signal(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
  pthread_join(ev->thread, NULL);
  ev->joined = true;
}

void cs_events_free(struct cs_core *c)
{
  struct cs_events *ev = c->events;
  if (!ev)
    return;
  pthread_mutex_destroy(&ev->mu);
  pthread_cond_destroy(&ev->cv);
  free(ev);
  c->events = NULL;
}
