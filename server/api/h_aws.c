/* GET /api/v1/aws/container-credentials/{id}?usage=UID (API.md §4, "AWS SDK
 * compatibility"): the ECS container-credentials format, so an AWS SDK or
 * the AWS CLI configured with AWS_CONTAINER_CREDENTIALS_FULL_URI and
 * AWS_CONTAINER_AUTHORIZATION_TOKEN (sent verbatim as Authorization, e.g.
 * "Basic …") picks the credentials up unchanged. */
#include "http.h"

#include <stdio.h>
#include <string.h>

/* Static keys never expire; SDKs still want an Expiration, after which they
 * ask again (and so see edits). */
#define STATIC_REFRESH 3600

/* Refusals and failures, in the words this route uses. */
static enum cs_err fail_resolve(struct cs_resp *resp, enum cs_err e, const char *cred_id,
                                const struct cs_net_error *fail)
{
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", cred_id);
  if (e == CS_ERR_INVALID && fail->field[0] && strcmp(fail->field, "usageId") == 0)
    return cs_fail(resp, e, "usage is not a usage of this credential");
  if (e == CS_ERR_INVALID || e == CS_ERR_TOKEN_ONLY)
    return cs_fail(resp, e, "%s", fail->message);
  if (e == CS_ERR_UPSTREAM)
    return cs_fail(resp, e, "%s: %s", fail->code[0] ? fail->code : "upstream",
                   fail->message[0] ? fail->message : "AWS STS request failed");
  return e;
}

/* The ECS container-credentials body of the material @p m (deleted). */
static enum cs_err render(struct cs_resp *resp, cJSON *m)
{
  const cJSON *ak = cJSON_GetObjectItemCaseSensitive(m, "AccessKeyId");
  const cJSON *sk = cJSON_GetObjectItemCaseSensitive(m, "SecretAccessKey");
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(m, "SessionToken");
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(m, "Expiration");
  cJSON *o = NULL;
  char when[32];
  enum cs_err e = CS_ERR_NOMEM;

  if (cJSON_IsString(exp))
    snprintf(when, sizeof when, "%s", exp->valuestring);
  else
    cs_time_format(cs_now() + STATIC_REFRESH, when);
  if ((o = cJSON_CreateObject()) && cJSON_IsString(ak) && cJSON_IsString(sk) &&
      cJSON_AddStringToObject(o, "AccessKeyId", ak->valuestring) &&
      cJSON_AddStringToObject(o, "SecretAccessKey", sk->valuestring) &&
      cJSON_AddStringToObject(o, "Token", cJSON_IsString(tok) ? tok->valuestring : "") &&
      cJSON_AddStringToObject(o, "Expiration", when)) {
    e = cs_resp_json_secret(resp, 200, o);
    o = NULL;
  }
  cs_json_wipe_delete(o);
  cs_json_wipe_delete(m);
  return e;
}

/* Called again once the resolve's record is durable (parked meanwhile). */
enum cs_err cs_h_aws_container(struct cs_req *req, struct cs_resp *resp)
{
  /* The type is checked before anything is resolved or recorded. */
  struct cs_resolve_req in = {.require_type = "aws"};
  struct cs_actor a = cs_actor_of(req);
  struct cs_core_job *job = NULL;
  struct cs_net_error fail;
  cJSON *m = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &in.cred_id)))
    return e;
  if (!req->job) {
    if (!(in.usage_id = cs_req_query(req, "usage")) || !in.usage_id[0])
      return cs_fail(resp, CS_ERR_MISSING, "the usage query parameter is required (?usage=UID)");
    if ((e = cs_resolve_start(req->api->core, &a, &in, req->conn, &job, &fail)))
      return fail_resolve(resp, e, in.cred_id, &fail);
    if (cs_req_await(req, resp, job))
      return CS_OK;
  }
  e = cs_resolve_finish(req->job, &m, &fail);
  cs_req_job_done(req);
  return e ? fail_resolve(resp, e, in.cred_id, &fail) : render(resp, m);
}
