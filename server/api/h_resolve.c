/* POST /api/v1/credentials/{id}/resolve: a credential's material for one
 * of its usages (the core resolves, audits and counts). */
#include "http.h"

#include <string.h>

/* Turn the body into a resolve request; the service checks the options
 * against the credential. */
static enum cs_err resolve_request(struct cs_resp *resp, const cJSON *body,
                                   struct cs_resolve_req *in)
{
  if (cs_json_req_string(body, "usageId", CS_ID_MAX, &in->usage_id))
    return cs_fail_field(resp, CS_ERR_MISSING, "usageId",
                         "usageId is required: the id of a usage of this credential");
  if (cs_json_opt_int(body, "durationSeconds", 900, 43200, &in->opts.duration_seconds))
    return cs_fail_field(resp, CS_ERR_INVALID, "durationSeconds",
                         "durationSeconds must be an integer from 900 to 43200");
  if (cs_json_opt_string(body, "region", 32, &in->opts.region))
    return cs_fail_field(resp, CS_ERR_INVALID, "region",
                         "region must be an AWS region name such as us-east-1");
  if (cs_json_opt_string(body, "sessionName", 64, &in->opts.session_name))
    return cs_fail_field(resp, CS_ERR_INVALID, "sessionName",
                         "sessionName is derived from the usage and cannot be chosen");
  return CS_OK;
}

enum cs_err cs_h_resolve(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_resolve_req in = {0};
  struct cs_actor a = cs_actor_of(req);
  struct cs_net_error fail;
  cJSON *body = NULL, *m = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &in.cred_id)) || (e = cs_req_json(req, &body)))
    return e;
  if ((e = resolve_request(resp, body, &in)))
    goto out;
  e = cs_resolve(req->api->core, &a, &in, &m, &fail);
  if (e == CS_ERR_NOT_FOUND)
    e = cs_fail(resp, e, "no credential %s", in.cred_id);
  else if (e == CS_ERR_INVALID && fail.field[0])
    e = cs_fail_field(resp, e, fail.field, "%s",
                      strcmp(fail.field, "usageId") == 0
                          ? "usageId is not a usage of this credential"
                          : fail.message);
  else if (e == CS_ERR_INVALID)
    e = cs_fail(resp, e, "%s", fail.message);
  else if (e == CS_ERR_UPSTREAM) {
    cs_fail(resp, e, "%s", fail.message[0] ? fail.message : "AWS STS request failed");
    if ((resp->err_extra = cJSON_CreateObject()))
      cJSON_AddStringToObject(resp->err_extra, "upstreamCode",
                              fail.code[0] ? fail.code : "unknown");
  } else if (!e) {
    e = cs_resp_json_secret(resp, 200, m);
    m = NULL;
  }
out:
  cJSON_Delete(body);
  cs_json_wipe_delete(m);
  return e;
}
