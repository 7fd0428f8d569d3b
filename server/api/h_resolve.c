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

enum cs_err cs_h_resolve(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_resolve_req in = {0};
  const char *scopes[SCOPES_MAX + 1];
  struct cs_actor a = cs_actor_of(req);
  struct cs_net_error fail;
  cJSON *body = NULL, *m = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &in.cred_id)) || (e = cs_req_json(req, &body)))
    return e;
  if ((e = resolve_request(resp, body, &in, scopes)))
    goto out;
  e = cs_resolve(req->api->core, &a, &in, &m, &fail);
  if (e == CS_ERR_NOT_FOUND)
    e = cs_fail(resp, e, "no credential %s", in.cred_id);
  else if (e == CS_ERR_INVALID && fail.field[0])
    e = cs_fail_field(resp, e, fail.field, "%s",
                      strcmp(fail.field, "usageId") == 0
                          ? "usageId is not a usage of this credential"
                          : fail.message);
  else if (e == CS_ERR_INVALID || e == CS_ERR_TOKEN_ONLY)
    e = cs_fail(resp, e, "%s", fail.message);
  else if (e == CS_ERR_UPSTREAM) {
    cs_fail(resp, e, "%s", fail.message[0] ? fail.message : "upstream request failed");
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
