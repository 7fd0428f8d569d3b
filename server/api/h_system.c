/* /healthz, /readyz, /api/v1/version. */
#include "http.h"

#ifndef CS_VERSION
#define CS_VERSION "0.0.0"
#endif

enum cs_err cs_h_healthz(struct cs_req *req, struct cs_resp *resp)
{
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "status", "ok")) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json(resp, 200, j);
}

enum cs_err cs_h_readyz(struct cs_req *req, struct cs_resp *resp)
{
  if (!atomic_load(&req->api->ready))
    return cs_fail(resp, CS_ERR_UNAVAILABLE, "the store is not open");
  if (!cs_store_healthy(req->api->core->store))
    return cs_fail(resp, CS_ERR_STORE_UNAVAILABLE,
                   "no etcd quorum: writes and resolves are "
                   "refused until it returns");
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "status", "ready")) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json(resp, 200, j);
}

enum cs_err cs_h_version(struct cs_req *req, struct cs_resp *resp)
{
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "version", CS_VERSION) ||
      !cJSON_AddNumberToObject(j, "schema", CS_STORE_SCHEMA_VERSION)) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json(resp, 200, j);
}
