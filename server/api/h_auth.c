/* POST /api/v1/login, GET /api/v1/auth_token/extend. */
#include "auth.h"

#include <string.h>

enum cs_err cs_h_login(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_principal who = {0};
  enum cs_err e = cs_auth_login(req, resp, &who);
  if (!e)
    e = cs_auth_token_response(req, &who, resp);
  cs_principal_clear(&who);
  return e;
}

enum cs_err cs_auth_login(struct cs_req *req, struct cs_resp *resp, struct cs_principal *who)
{
  const char *user = NULL, *pass = NULL;
  cJSON *body = NULL;
  enum cs_err e;

  if ((e = cs_req_json(req, &body)))
    return e;
  /* Any string is an attempt, even empty or oversize (the body cap bounds
   * it): it fails, and counts, like any wrong credential. */
  if ((e = cs_json_req_string(body, "username", CS_PUBLIC_BODY_MAX, &user))) {
    e = cs_fail(resp, e, "username must be a string (the access key id)");
    goto out;
  }
  if ((e = cs_json_req_string(body, "password", CS_PUBLIC_BODY_MAX, &pass))) {
    e = cs_fail(resp, e, "password must be a string (the access key secret)");
    goto out;
  }
  e = cs_auth_key_secret(req, user, pass, who);
  if (!e)
    cs_auth_record(req, who->key_id, "success", true);
out:
  if (body) {
    /* The password lives inside the parsed tree: wipe it before freeing. */
    cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (cJSON_IsString(p) && p->valuestring)
      cs_memzero(p->valuestring, strlen(p->valuestring));
  }
  cJSON_Delete(body);
  return e;
}

enum cs_err cs_h_extend(struct cs_req *req, struct cs_resp *resp)
{
  return cs_auth_token_response(req, &req->who, resp);
}
