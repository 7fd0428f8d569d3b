/* GET /api/v1/deliveries?state&offset&limit and POST
 * /api/v1/deliveries/{id}/retry (API.md §11): webhook deliveries still
 * tried (pending) and given up on (dead letters), and a dead letter
 * requeued. Admin only (routes.c); a key with a scope sees the deliveries
 * of its credentials only, and others are not found. */
#include "http.h"

#include <string.h>

#define LIMIT_DEFAULT 50

enum cs_err cs_parse_deliveries_query(const struct cs_params *p, struct cs_delivery_query *q,
                                      struct cs_resp *resp)
{
  static const char *const states[] = {
      [CS_DELIVERY_PENDING] = "pending", [CS_DELIVERY_DEAD] = "dead", [CS_DELIVERY_ALL] = "all"};
  const char *v;
  size_t i;

  memset(q, 0, sizeof *q);
  q->state = CS_DELIVERY_ALL;
  q->limit = LIMIT_DEFAULT;
  if ((v = p->get(p->arg, "state"))) {
    for (i = 0; i < sizeof states / sizeof states[0] && strcmp(v, states[i]) != 0; i++)
      ;
    if (i == sizeof states / sizeof states[0])
      return cs_fail(resp, CS_ERR_BAD_QUERY, "state must be one of pending, dead, all");
    q->state = (enum cs_delivery_state)i;
  }
  if ((v = p->get(p->arg, "offset")) && cs_parse_u64(v, CS_LIST_OFFSET_MAX, &q->offset))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "offset must be a non-negative integer");
  if ((v = p->get(p->arg, "limit")) &&
      (cs_parse_u64(v, CS_LIST_LIMIT_MAX, &q->limit) || q->limit == 0))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "limit must be an integer from 1 to %d",
                   CS_LIST_LIMIT_MAX);
  return CS_OK;
}

enum cs_err cs_h_deliveries_list(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_params params = cs_req_params(req);
  struct cs_delivery_query q;
  cJSON *page = NULL;
  uint64_t total = 0;
  enum cs_err e;

  if ((e = cs_parse_deliveries_query(&params, &q, resp)))
    return e;
  q.scope = req->who.scope;
  if ((e = cs_deliveries_list(req->api->core, &q, &page, &total)))
    return e;
  cs_resp_header(resp, "Total-Count", "%llu", (unsigned long long)total);
  return cs_resp_json(resp, 200, page);
}

enum cs_err cs_h_delivery_retry(struct cs_req *req, struct cs_resp *resp)
{
  const char *p = req->params[0];
  uint64_t id = 0;
  enum cs_err e;

  /* Ids are what the list shows: decimal sequence numbers from 1. */
  if (cs_parse_u64(p, UINT64_MAX - 1, &id) || id == 0)
    return cs_fail(resp, CS_ERR_NOT_FOUND, "no delivery %.40s", p);
  struct cs_actor a = cs_actor_of(req);
  e = cs_delivery_retry(req->api->core, &a, req->who.scope, id);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no delivery %llu", (unsigned long long)id);
  if (e == CS_ERR_NOT_DEAD)
    return cs_fail(resp, e, "delivery %llu is still being tried; only a dead letter is requeued",
                   (unsigned long long)id);
  if (e)
    return e;
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) ||
      !cJSON_AddStringToObject(o, "state", "pending")) {
    cJSON_Delete(o);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json(resp, 202, o); /* requeued; delivered when the worker gets to it */
}
