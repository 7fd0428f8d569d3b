/* GET /api/v1/events?since&wait&credential (API.md §4): the feed, long-
 * polled. A waiting poll holds no thread: the core parks it and this file
 * suspends its MHD connection; when the core wakes it (a commit, its
 * deadline, or stopping) the connection resumes and MHD calls the handler
 * again, which reads on from where it had read up to. */
#include "http.h"

#include <string.h>

/* Under the core's notifier lock: suspended before any wake-up can come. */
static void park_conn(void *waiter) { MHD_suspend_connection(waiter); }

static void wake_conn(void *waiter) { MHD_resume_connection(waiter); }

void cs_h_events_init(struct cs_core *core) { cs_events_set_waker(core, park_conn, wake_conn); }

enum cs_err cs_parse_events_query(const struct cs_params *p, const cJSON *scope,
                                  struct cs_feed_query *q, struct cs_resp *resp)
{
  const char *v;

  memset(q, 0, sizeof *q);
  if ((v = p->get(p->arg, "since")) && cs_parse_u64(v, UINT64_MAX - 1, &q->since))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "since must be a sequence number");
  if ((v = p->get(p->arg, "wait")) && cs_parse_u64(v, CS_EVENTS_WAIT_MAX, &q->wait))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "wait must be 0 to %d seconds", CS_EVENTS_WAIT_MAX);
  q->cred = p->get(p->arg, "credential");
  if (q->cred && (!cs_name_valid(q->cred, strlen(q->cred)) || !cs_scope_allows(scope, q->cred)))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "credential must be a credential id in scope");
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

/* 410 {"err","code":"events_expired","oldest"}: the consumer resynchronises. */
static enum cs_err expired(struct cs_resp *resp, uint64_t since, uint64_t oldest)
{
  cs_fail(resp, CS_ERR_EVENTS_EXPIRED,
          "events after %llu are no longer kept; the oldest kept is %llu: resynchronise, "
          "then read on with since=%llu",
          (unsigned long long)since, (unsigned long long)oldest, (unsigned long long)(oldest - 1));
  cJSON_Delete(resp->err_extra);
  if (!(resp->err_extra = cJSON_CreateObject()) ||
      !cJSON_AddNumberToObject(resp->err_extra, "oldest", (double)oldest))
    return CS_ERR_NOMEM;
  return CS_ERR_EVENTS_EXPIRED;
}

enum cs_err cs_h_events(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_core *core = req->api->core;
  struct cs_params params = cs_req_params(req);
  struct cs_feed_query q;
  enum cs_err e;

  if ((e = cs_parse_events_query(&params, req->who.scope, &q, resp)))
    return e;
  struct cs_view view = {q.cred, req->who.scope};
  if (!req->wait_deadline_ms)
    req->wait_deadline_ms = cs_mono_ms() + (int64_t)q.wait * 1000;
  /* A resumed poll goes on from where it read up to, past events it may not see. */
  if (req->wait_cursor < q.since)
    req->wait_cursor = q.since;

  for (;;) {
    uint64_t gen = cs_events_generation(core), next, oldest = 0;
    bool more, parked;
    cJSON *arr;
    if ((e = cs_events_read(core, &view, req->wait_cursor, &arr, &next, &more, &oldest)))
      return e == CS_ERR_EVENTS_EXPIRED ? expired(resp, req->wait_cursor, oldest) : e;
    /* Answer with what the caller may see; an empty page only once the wait
     * is over, or when the scan budget ran out (the caller asks again at
     * once, from next). */
    if (cJSON_GetArraySize(arr) > 0 || more || cs_mono_ms() >= req->wait_deadline_ms ||
        !atomic_load(&req->api->ready))
      return answer(resp, arr, next);
    cJSON_Delete(arr);
    req->wait_cursor = next;
    if ((e = cs_events_park(core, req->conn, req->wait_deadline_ms, gen, &parked)))
      return e;
    if (parked) {
      resp->suspended = true;
      return CS_OK;
    }
  }
}
