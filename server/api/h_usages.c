/* /api/v1/credentials/{id}/usages: create, list, delete. */
#include "http.h"

#include <string.h>

#define DESCRIPTION_MAX 1024

enum cs_err cs_h_usages_create(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_usage_new in = {0};
  struct cs_actor a = cs_actor_of(req);
  cJSON *body = NULL, *out = NULL;
  const char *why = "", *material = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &in.cred_id)) || (e = cs_req_json(req, &body)))
    return e;
  if (cs_json_req_string(body, "type", CS_USAGE_TYPE_MAX, &in.type) || !in.type[0])
    e = cs_fail_field(resp, CS_ERR_INVALID, "type",
                      "type is required: free text such as \"Registry Scan\" (1-128 characters)");
  else if (cs_json_opt_string(body, "description", DESCRIPTION_MAX, &in.description))
    e = cs_fail_field(resp, CS_ERR_INVALID, "description",
                      "description must be a string of at most 1024 characters");
  else if (cs_json_opt_string(body, "callbackUrl", CS_URL_MAX, &in.callback_url))
    e = cs_fail_field(resp, CS_ERR_INVALID, "callbackUrl",
                      "callbackUrl must be an http:// or https:// URL of at most 2048 characters");
  else if (in.callback_url && cs_webhook_check_url(req->api->core, in.callback_url, &why))
    e = cs_fail_field(resp, CS_ERR_INVALID, "callbackUrl", "%s", why);
  else if (cs_json_opt_string(body, "material", 16, &material) ||
           (material && cs_usage_material_parse(material, &in.material)))
    e = cs_fail_field(resp, CS_ERR_INVALID, "material",
                      "material must be \"secret\" (the default) or \"token\" (only "
                      "short-lived material: tokens, STS or session credentials)");
  else if ((e = cs_usages_create(req->api->core, &a, &in, &out)) == CS_ERR_NOT_FOUND)
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
  if ((e = cs_usages_list(req->api->core, id, &arr)) == CS_ERR_NOT_FOUND)
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
  if ((e = cs_usages_delete(req->api->core, &a, id, req->params[1])) == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no usage %s of credential %s", req->params[1], id);
  if (e)
    return e;
  return cs_resp_empty(resp, 204);
}
