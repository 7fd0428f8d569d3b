/* GET /api/v1/audit?since&limit&credential (API.md §5): up to limit entries
 * the caller may see. Next-Since names the last entry examined, so a caller
 * pages on with since=Next-Since until it stops moving. A credential outside
 * the caller's scope filters like one without entries: the same empty page,
 * no oracle. */
#include "http.h"

#include <inttypes.h>
#include <string.h>

#define LIMIT_DEFAULT 100

enum cs_err cs_parse_audit_query(const struct cs_params *p, struct cs_feed_query *q,
                                 struct cs_resp *resp)
{
  const char *v;

  memset(q, 0, sizeof *q);
  q->limit = LIMIT_DEFAULT;
  if ((v = p->get(p->arg, "since")) && cs_parse_u64(v, UINT64_MAX - 1, &q->since))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "since must be a sequence number");
  if ((v = p->get(p->arg, "limit")) &&
      (cs_parse_u64(v, CS_AUDIT_LIST_MAX, &q->limit) || q->limit == 0))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "limit must be an integer from 1 to %d",
                   CS_AUDIT_LIST_MAX);
  q->cred = p->get(p->arg, "credential");
  if (q->cred && !cs_name_valid(q->cred, strlen(q->cred)))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "credential must be a credential id");
  return CS_OK;
}

enum cs_err cs_h_audit(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_params params = cs_req_params(req);
  struct cs_feed_query q;
  cJSON *entries = NULL;
  uint64_t next = 0;
  enum cs_err e;

  if ((e = cs_parse_audit_query(&params, &q, resp)))
    return e;
  struct cs_view view = {q.cred, req->who.scope};
  if ((e = cs_audit_read(req->api->core, &view, q.since, q.limit, &entries, &next)))
    return e;
  cs_resp_header(resp, "Next-Since", "%" PRIu64, next);
  return cs_resp_json(resp, 200, entries);
}
