/* The event feed (API.md §4): every change appends an event in its own
 * transaction; GET /api/v1/events long-polls by parking the connection
 * (MHD suspend) so a waiting client holds no thread, and a notifier thread
 * resumes it when a commit lands or its wait runs out. A resumed poll that
 * finds only events outside its view (scope, ?credential=) parks again:
 * only an event the caller may see, or the end of the wait, answers it. */
#include "svc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_PAGE 1000
#define WAIT_MAX 60
/* Events one read examines at most: a caller whose view matches little
 * must not walk the whole feed per request (nor per wake-up). */
#define SCAN_MAX 10000

struct waiter {
  struct MHD_Connection *conn;
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
  struct waiter *list;
};

enum cs_err cs_event_append(struct cs_txn *txn, const char *type, const char *cred_id,
                            uint64_t version)
{
  uint64_t seq;
  uint8_t key[8];
  char when[32];
  char *text = NULL;
  cJSON *j;
  enum cs_err e;

  if ((e = cs_txn_last_seq(txn, CS_TBL_EVENTS, &seq)))
    return e;
  seq++;
  cs_time_format(cs_now(), when);
  j = cJSON_CreateObject();
  if (!j || !cJSON_AddNumberToObject(j, "seq", (double)seq) ||
      !cJSON_AddStringToObject(j, "type", type) ||
      !cJSON_AddStringToObject(j, "credentialId", cred_id) ||
      !cJSON_AddNumberToObject(j, "version", (double)version) ||
      !cJSON_AddStringToObject(j, "at", when) || !(text = cs_json_print(j))) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  cJSON_Delete(j);
  cs_store_seq_key(seq, key);
  e = cs_txn_put(txn, CS_TBL_EVENTS, key, 8, text, strlen(text), CS_PUT_NO_OVERWRITE);
  free(text);
  return e;
}

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
        MHD_resume_connection(w->conn);
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

enum cs_err cs_events_start(struct cs_app *app)
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
  app->events = ev;
  return CS_OK;
}

void cs_events_notify(struct cs_app *app)
{
  struct cs_events *ev = app->events;
  if (!ev)
    return;
  pthread_mutex_lock(&ev->mu);
  ev->gen++;
  pthread_cond_signal(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
}

void cs_events_stop(struct cs_app *app)
{
  struct cs_events *ev = app->events;
  if (!ev)
    return;
  pthread_mutex_lock(&ev->mu);
  ev->stop = true;
  pthread_cond_signal(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
  pthread_join(ev->thread, NULL);
}

void cs_events_free(struct cs_app *app)
{
  struct cs_events *ev = app->events;
  if (!ev)
    return;
  pthread_mutex_destroy(&ev->mu);
  pthread_cond_destroy(&ev->cv);
  free(ev);
  app->events = NULL;
}

struct event_page {
  const char *cred;   /* ?credential=, or NULL */
  const cJSON *scope; /* the caller's scope, NULL = everything */
  cJSON *arr;
  uint64_t next;    /* the last seq examined */
  uint64_t scanned; /* events examined; at SCAN_MAX more may follow */
};

static enum cs_err collect_event(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct event_page *p = arg;
  cJSON *j;

  p->next = seq;
  *stop = ++p->scanned >= SCAN_MAX;
  if (cs_json_parse(v->data, v->len, 4, &j))
    return CS_ERR_STORE;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "credentialId");
  if (!cJSON_IsString(id) || (p->cred && strcmp(id->valuestring, p->cred) != 0) ||
      !cs_scope_allows(p->scope, id->valuestring)) {
    cJSON_Delete(j);
    return CS_OK;
  }
  cJSON_AddItemToArray(p->arr, j);
  *stop = *stop || cJSON_GetArraySize(p->arr) >= EVENTS_PAGE;
  return CS_OK;
}

static enum cs_err answer(struct cs_resp *resp, cJSON *arr, uint64_t next)
{
  cJSON *o = cJSON_CreateObject();
  if (!o) {
    cJSON_Delete(arr);
    return CS_ERR_NOMEM;
  }
  cJSON_AddItemToObject(o, "events", arr);
  cJSON_AddNumberToObject(o, "next", (double)next);
  return cs_resp_json(resp, 200, o);
}

/* Park the request until the next commit or its deadline, unless a commit
 * landed since @p gen was read. @return false when it must read again. */
static bool park(struct cs_events *ev, struct cs_req *req, struct waiter *w, uint64_t gen)
{
  pthread_mutex_lock(&ev->mu);
  if (ev->gen != gen || ev->stop) {
    pthread_mutex_unlock(&ev->mu);
    return false;
  }
  w->conn = req->conn;
  w->deadline_ms = req->wait_deadline_ms;
  w->gen = gen;
  w->next = ev->list;
  ev->list = w;
  MHD_suspend_connection(req->conn);
  pthread_cond_signal(&ev->cv);
  pthread_mutex_unlock(&ev->mu);
  return true;
}

enum cs_err cs_h_events(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_events *ev = req->app->events;
  struct event_page p = {cs_req_query(req, "credential"), req->who.scope, NULL, 0, 0};
  const char *v;
  uint64_t since = 0, wait = 0;
  enum cs_err e;

  if ((v = cs_req_query(req, "since")) && cs_parse_u64(v, UINT64_MAX - 1, &since))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "since must be a sequence number");
  if ((v = cs_req_query(req, "wait")) && cs_parse_u64(v, WAIT_MAX, &wait))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "wait must be 0 to %d seconds", WAIT_MAX);
  if (p.cred && (!cs_id_valid(p.cred, strlen(p.cred)) || !cs_scope_allows(p.scope, p.cred)))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "credential must be a credential id in scope");
  if (!req->wait_deadline_ms)
    req->wait_deadline_ms = cs_mono_ms() + (int64_t)wait * 1000;
  /* A resumed poll goes on from where it read up to, past events it may not see. */
  if (req->wait_cursor < since)
    req->wait_cursor = since;

  for (;;) {
    if (!(p.arr = cJSON_CreateArray()))
      return CS_ERR_NOMEM;
    pthread_mutex_lock(&ev->mu);
    uint64_t gen = ev->gen;
    pthread_mutex_unlock(&ev->mu);
    p.next = req->wait_cursor;
    p.scanned = 0;
    if ((e = cs_seq_each(req->app->store, CS_TBL_EVENTS, p.next + 1, collect_event, &p))) {
      cJSON_Delete(p.arr);
      return e;
    }
    /* Answer with what the caller may see; an empty page only once the wait
     * is over, or when the scan budget ran out (the caller asks again at
     * once, from next). */
    if (cJSON_GetArraySize(p.arr) > 0 || p.scanned >= SCAN_MAX ||
        cs_mono_ms() >= req->wait_deadline_ms || !atomic_load(&req->app->ready))
      return answer(resp, p.arr, p.next);
    cJSON_Delete(p.arr);
    req->wait_cursor = p.next;
    struct waiter *w = malloc(sizeof *w);
    if (!w)
      return CS_ERR_NOMEM;
    if (park(ev, req, w, gen)) {
      resp->suspended = true;
      return CS_OK;
    }
    free(w);
  }
}
