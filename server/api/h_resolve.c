/* POST /api/v1/credentials/{id}/resolve: a credential's material for one
 * of its usages (the core resolves, audits and counts). */
#include "http.h"

#include <string.h>

#define SCOPE_MAX 1024      /* an Entra scope (the provider checks its form) */
#define SCOPES_MAX 32       /* Google scopes per request... */
#define SCOPES_ITEM_MAX 256 /* ...and characters per scope */

/* "format": absent or null is the type's default material. */
static enum cs_err parse_format(struct cs_resp *resp, const cJSON *body,
                                enum cs_resolve_format *out)
{
  const char *f = NULL;

  if (cs_json_opt_string(body, "format", 16, &f) ||
      (f && strcmp(f, "token") != 0 && strcmp(f, "session") != 0))
    return cs_fail_field(resp, CS_ERR_INVALID, "format",
                         "format must be \"token\" (azure, gcp service account, ibmCloud) or "
                         "\"session\" (aws static keys without a role)");
  *out = !f ? CS_FORMAT_DEFAULT : f[0] == 't' ? CS_FORMAT_TOKEN : CS_FORMAT_SESSION;
  return CS_OK;
}

/* "scopes": a non-empty array of strings into @p out (borrowed from @p body). */
static enum cs_err parse_scopes(struct cs_resp *resp, const cJSON *body,
                                const char *out[SCOPES_MAX + 1], const char *const **scopes)
{
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "scopes"), *it;
  int n = 0;

  if (!arr || cJSON_IsNull(arr))
    return CS_OK;
  if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 || cJSON_GetArraySize(arr) > SCOPES_MAX)
    return cs_fail_field(resp, CS_ERR_INVALID, "scopes",
                         "scopes must be an array of 1 to %d Google OAuth scopes", SCOPES_MAX);
  cJSON_ArrayForEach(it, arr)
  {
    if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > SCOPES_ITEM_MAX)
      return cs_fail_field(resp, CS_ERR_INVALID, "scopes",
                           "scopes[%d] must be a string of 1 to %d characters", n, SCOPES_ITEM_MAX);
    out[n++] = it->valuestring;
  }
  out[n] = NULL;
  *scopes = out;
  return CS_OK;
}

/* Turn the body into a resolve request; the service checks the options
 * against the credential, the provider the scopes' form. */
static enum cs_err resolve_request(struct cs_resp *resp, const cJSON *body,
                                   struct cs_resolve_req *in, const char *scopes[SCOPES_MAX + 1])
{
  enum cs_err e;

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
  if ((e = parse_format(resp, body, &in->opts.format)))
    return e;
  if (cs_json_opt_string(body, "scope", SCOPE_MAX, &in->opts.scope) ||
      (in->opts.scope && !in->opts.scope[0]))
    return cs_fail_field(resp, CS_ERR_INVALID, "scope",
                         "scope must be a string of 1 to %d characters", SCOPE_MAX);
  if ((e = parse_scopes(resp, body, scopes, &in->opts.scopes)))
    return e;
  if ((in->opts.scope || in->opts.scopes) && in->opts.format != CS_FORMAT_TOKEN)
    return cs_fail_field(resp, CS_ERR_INVALID, in->opts.scope ? "scope" : "scopes",
                         "%s applies only with \"format\": \"token\"",
                         in->opts.scope ? "scope" : "scopes");
  return CS_OK;
}

/* Render a resolve's outcome: the material, or why there is none. */
static enum cs_err render(struct cs_resp *resp, enum cs_err e, const char *cred_id, cJSON *m,
                          const struct cs_net_error *fail)
{
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", cred_id);
  if (e == CS_ERR_INVALID && fail->field[0])
    return cs_fail_field(resp, e, fail->field, "%s",
                         strcmp(fail->field, "usageId") == 0
                             ? "usageId is not a usage of this credential"
                             : fail->message);
  if (e == CS_ERR_INVALID || e == CS_ERR_TOKEN_ONLY)
    return cs_fail(resp, e, "%s", fail->message);
  if (e == CS_ERR_UPSTREAM) {
    cs_fail(resp, e, "%s", fail->message[0] ? fail->message : "upstream request failed");
    if ((resp->err_extra = cJSON_CreateObject()))
      cJSON_AddStringToObject(resp->err_extra, "upstreamCode",
                              fail->code[0] ? fail->code : "unknown");
    return e;
  }
  return e ? e : cs_resp_json_secret(resp, 200, m);
}

/* Parse the request and start the resolve: its record is then queued as
 * req->job (or the start failed, rendered). */
static enum cs_err start(struct cs_req *req, struct cs_resp *resp, const char *cred_id,
                         struct cs_core_job **job)
{
  struct cs_resolve_req in = {.cred_id = cred_id};
  const char *scopes[SCOPES_MAX + 1];
  struct cs_actor a = cs_actor_of(req);
  struct cs_net_error fail;
  cJSON *body = NULL;
  enum cs_err e;

  if ((e = cs_req_json(req, &body)))
    return e;
  if (!(e = resolve_request(resp, body, &in, scopes)) &&
      (e = cs_resolve_start(req->api->core, &a, &in, req->conn, job, &fail)))
    e = render(resp, e, cred_id, NULL, &fail);
  cJSON_Delete(body);
  return e;
}

/* Called again once the record is durable (the request was parked meanwhile). */
enum cs_err cs_h_resolve(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_core_job *job = NULL;
  struct cs_net_error fail;
  const char *cred_id;
  cJSON *m = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &cred_id)))
    return e;
  if (!req->job && ((e = start(req, resp, cred_id, &job)) || cs_req_await(req, resp, job)))
    return e;
  e = cs_resolve_finish(req->job, &m, &fail);
  cs_req_job_done(req);
  return render(resp, e, cred_id, m, &fail);
}
