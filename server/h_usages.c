/* /api/v1/credentials/{id}/usages and /resolve. */
#include "svc.h"

#include <string.h>

#define DESCRIPTION_MAX 1024

static enum cs_err field_error(struct cs_resp *resp, enum cs_err e, const char *field,
                               const char *msg)
{
  cs_fail(resp, e, "%s", msg);
  if ((resp->err_extra = cJSON_CreateObject()))
    cJSON_AddStringToObject(resp->err_extra, "field", field);
  return e;
}

enum cs_err cs_h_usages_create(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_usage_new in = {0};
  struct cs_actor a = cs_actor_of(req);
  cJSON *body = NULL, *out = NULL;
  const char *why = "";
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &in.cred_id)) || (e = cs_req_json(req, &body)))
    return e;
  if (cs_json_req_string(body, "type", CS_USAGE_TYPE_MAX, &in.type) || !in.type[0])
    e = field_error(resp, CS_ERR_INVALID, "type",
                    "type is required: free text such as \"Registry Scan\" (1-128 characters)");
  else if (cs_json_opt_string(body, "description", DESCRIPTION_MAX, &in.description))
    e = field_error(resp, CS_ERR_INVALID, "description",
                    "description must be a string of at most 1024 characters");
  else if (cs_json_opt_string(body, "callbackUrl", CS_URL_MAX, &in.callback_url))
    e = field_error(resp, CS_ERR_INVALID, "callbackUrl",
                    "callbackUrl must be an http:// or https:// URL of at most 2048 characters");
  else if (in.callback_url && cs_outbox_check_url(req->app, in.callback_url, &why))
    e = field_error(resp, CS_ERR_INVALID, "callbackUrl", why);
  else if ((e = cs_usages_create(req->app, &a, &in, &out)) == CS_ERR_NOT_FOUND)
    e = cs_fail(resp, e, "no credential %s", in.cred_id);
  else if (!e)
    e = cs_resp_json_secret(resp, 201, out);
  cJSON_Delete(body);
  return e;
}

enum cs_err cs_h_usages_list(struct cs_req *req, struct cs_resp *resp)
{
  const char *id = NULL;
  cJSON *arr = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &id)))
    return e;
  if ((e = cs_usages_list(req->app, id, &arr)) == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", id);
  if (e)
    return e;
  return cs_resp_json(resp, 200, arr);
}

enum cs_err cs_h_usages_delete(struct cs_req *req, struct cs_resp *resp)
{
  const char *id = NULL;
  struct cs_actor a = cs_actor_of(req);
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &id)))
    return e;
  if ((e = cs_usages_delete(req->app, &a, id, req->params[1])) == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no usage %s of credential %s", req->params[1], id);
  if (e)
    return e;
  return cs_resp_empty(resp, 204);
}

/* Turn the body into a resolve request; the service checks the options
 * against the credential. */
static enum cs_err resolve_request(struct cs_resp *resp, const cJSON *body,
                                   struct cs_resolve_req *in)
{
  if (cs_json_req_string(body, "usageId", CS_ID_MAX, &in->usage_id))
    return field_error(resp, CS_ERR_MISSING, "usageId",
                       "usageId is required: the id of a usage of this credential");
  if (cs_json_opt_int(body, "durationSeconds", 900, 43200, &in->opts.duration_seconds))
    return field_error(resp, CS_ERR_INVALID, "durationSeconds",
                       "durationSeconds must be an integer from 900 to 43200");
  if (cs_json_opt_string(body, "region", 32, &in->opts.region))
    return field_error(resp, CS_ERR_INVALID, "region",
                       "region must be an AWS region name such as us-east-1");
  if (cs_json_opt_string(body, "sessionName", 64, &in->opts.session_name))
    return field_error(resp, CS_ERR_INVALID, "sessionName",
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
  e = cs_resolve(req->app, &a, &in, &m, &fail);
  if (e == CS_ERR_NOT_FOUND)
    e = cs_fail(resp, e, "no credential %s", in.cred_id);
  else if (e == CS_ERR_INVALID && fail.field[0])
    e = field_error(resp, e, fail.field,
                    strcmp(fail.field, "usageId") == 0
                        ? "usageId is not a usage of this credential"
                        : fail.message);
  else if (e == CS_ERR_INVALID)
    e = cs_fail(resp, e, "%s", fail.message);
  else if (e == CS_ERR_UPSTREAM) {
    cs_fail(resp, e, "%s", fail.message[0] ? fail.message
                                                    : "AWS STS request failed");
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
