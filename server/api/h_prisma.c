/* The /prisma mount (API.md §7): Prisma Cloud's own clients (the Terraform
 * provider prismacloudcompute, the Python SDK prismacloud-api, the CSPM Go
 * SDK, scripts from Prisma's docs) unchanged. The same core rules as the
 * native API — the route table's roles, scopes, the 409 in-use rule, audit —
 * with Prisma's wire behaviour: 200 with an empty body on writes, no
 * Total-Count unless the client pages, {"err"} error bodies, longer tokens.
 * Only the request and response shapes live here; every rule is the one the
 * native handlers and the core apply. */
#include "auth.h"

#include <string.h>

/* "1", "32.00", "34.03": the {ver} of /prisma/api/v{ver}/. */
static bool version_ok(const char *v)
{
  size_t n = strlen(v);
  if (n == 0 || n > 16 || v[0] < '0' || v[0] > '9')
    return false;
  return strspn(v, "0123456789.") == n;
}

/* Check the version segment and drop it, so that params[0] is the
 * credential name as the shared helpers expect. An unknown version is an
 * unknown route. */
static enum cs_err enter(struct cs_req *req)
{
  if (!req->params[0] || !version_ok(req->params[0]))
    return CS_ERR_NO_ROUTE;
  memmove(req->params, req->params + 1, sizeof req->params - sizeof req->params[0]);
  req->params[CS_MAX_PARAMS - 1] = NULL;
  return CS_OK;
}

/* ------------------------------------------------------------------ auth */

/* POST /api/v{ver}/authenticate. Public: an Authorization header sent with
 * it (Terraform's empty "Bearer") is never looked at. */
enum cs_err cs_h_prisma_authenticate(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_principal who = {0};
  cJSON *j = NULL;
  enum cs_err e = enter(req);

  if (!e && !(e = cs_auth_login(req, resp, &who)) &&
      !(e = cs_auth_token_object(req, &who, req->api->core->opts.prisma_token_ttl, &j)))
    e = cs_resp_json_secret(resp, 200, j);
  cs_principal_clear(&who);
  return e;
}

/* GET /api/v{ver}/authenticate/renew: a fresh token for the same key. */
enum cs_err cs_h_prisma_renew(struct cs_req *req, struct cs_resp *resp)
{
  cJSON *j = NULL;
  enum cs_err e = enter(req);
  if (!e && !(e = cs_auth_token_object(req, &req->who, req->api->core->opts.prisma_token_ttl, &j)))
    e = cs_resp_json_secret(resp, 200, j);
  return e;
}

/* The CSPM login answer: {"token","message","customerNames":[{…}]}. */
static enum cs_err cspm_answer(struct cs_req *req, const struct cs_principal *who,
                               struct cs_resp *resp)
{
  const struct cs_api_opts *o = &req->api->opts;
  char store_id[33];
  cJSON *j = NULL, *names, *one;
  enum cs_err e = cs_auth_token_object(req, who, req->api->core->opts.prisma_token_ttl, &j);

  if (e)
    return e;
  if (!o->prisma_id)
    cs_core_store_id(req->api->core, store_id);
  if (!cJSON_AddStringToObject(j, "message", "login_successful") ||
      !(names = cJSON_AddArrayToObject(j, "customerNames")) ||
      !cJSON_AddItemToArray(names, one = cJSON_CreateObject()) ||
      !cJSON_AddStringToObject(one, "customerName",
                               o->customer_name ? o->customer_name : "credstore") ||
      !cJSON_AddStringToObject(one, "prismaId", o->prisma_id ? o->prisma_id : store_id) ||
      !cJSON_AddBoolToObject(one, "tosAccepted", true)) {
    cs_json_wipe_delete(j);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json_secret(resp, 200, j);
}

/* POST /prisma/login. customerName and prismaId are accepted whatever they
 * are: one store is one tenant. A stale x-redlock-auth (the Go SDK sends it
 * with its re-login) is never looked at. */
enum cs_err cs_h_prisma_login(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_principal who = {0};
  enum cs_err e = cs_auth_login(req, resp, &who);
  if (!e)
    e = cspm_answer(req, &who, resp);
  cs_principal_clear(&who);
  return e;
}

/* GET /prisma/auth_token/extend (x-redlock-auth). */
enum cs_err cs_h_prisma_extend(struct cs_req *req, struct cs_resp *resp)
{
  return cspm_answer(req, &req->who, resp);
}

/* ------------------------------------------------------------ credentials */

/* Only with ?limit or ?offset does the mount page and send Total-Count: the
 * Python SDK re-requests the same URL ceil(Total-Count/50) times. */
static bool pages(struct cs_req *req)
{
  return cs_req_query(req, "limit") || cs_req_query(req, "offset");
}

/* Fields Prisma's tools index without checking (prismacloud-cli reads
 * credential["useAWSRole"] of every credential of a matching type). */
static enum cs_err prisma_shape(cJSON *c)
{
  if (!cJSON_GetObjectItemCaseSensitive(c, "useAWSRole") &&
      !cJSON_AddBoolToObject(c, "useAWSRole", false))
    return CS_ERR_NOMEM;
  return CS_OK;
}

enum cs_err cs_h_prisma_creds_list(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_cred_query q;
  struct cs_params p = cs_req_params(req);
  cJSON *page = NULL, *c;
  uint64_t total = 0;
  enum cs_err e;

  if ((e = enter(req)) || (e = cs_parse_cred_query(&p, &q, resp)))
    return e;
  if (!pages(req))
    q.limit = UINT64_MAX; /* every visible credential, in one answer */
  q.scope = req->who.scope;
  e = cs_creds_list(req->api->core, &q, &page, &total);
  cJSON_Delete((cJSON *)q.ids);
  if (e)
    return e;
  cJSON_ArrayForEach(c, page)
  {
    if ((e = prisma_shape(c))) {
      cJSON_Delete(page);
      return e;
    }
  }
  if (pages(req))
    cs_resp_header(resp, "Total-Count", "%llu", (unsigned long long)total);
  return cs_resp_json(resp, 200, page);
}

enum cs_err cs_h_prisma_creds_upsert(struct cs_req *req, struct cs_resp *resp)
{
  /* A resumed call (its write done) has entered already. */
  enum cs_err e = req->job ? CS_OK : enter(req);
  return e ? e : cs_creds_upsert_request(req, resp, true);
}

enum cs_err cs_h_prisma_creds_delete(struct cs_req *req, struct cs_resp *resp)
{
  enum cs_err e = req->job ? CS_OK : enter(req);
  return e ? e : cs_creds_delete_request(req, resp, 200);
}

/* ----------------------------------------------------------------- usages */

/* Prisma's CredentialUsage: {"type", "description"}, nothing else. */
static enum cs_err usage_shape(const cJSON *u, cJSON *out)
{
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(u, "type");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, "description");
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddItemToArray(out, o) ||
      !cJSON_AddStringToObject(o, "type", cJSON_IsString(t) ? t->valuestring : "") ||
      !cJSON_AddStringToObject(o, "description", cJSON_IsString(d) ? d->valuestring : ""))
    return CS_ERR_NOMEM;
  return CS_OK;
}

enum cs_err cs_h_prisma_usages_list(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_cred_query q;
  struct cs_params p = cs_req_params(req);
  const char *id = NULL;
  cJSON *all = NULL, *out = NULL;
  const cJSON *u;
  uint64_t i = 0;
  enum cs_err e;

  if ((e = enter(req)) || (e = cs_parse_cred_query(&p, &q, resp)))
    return e;
  cJSON_Delete((cJSON *)q.ids); /* the paging parameters are all that apply here */
  if (!pages(req))
    q.limit = UINT64_MAX;
  if ((e = cs_req_cred_id(req, resp, &id)))
    return e;
  if ((e = cs_usages_list(req->api->core, id, &all)) == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", id);
  if (e)
    return e;
  if (!(out = cJSON_CreateArray()))
    e = CS_ERR_NOMEM;
  cJSON_ArrayForEach(u, all)
  {
    if (!e && i >= q.offset && (uint64_t)cJSON_GetArraySize(out) < q.limit)
      e = usage_shape(u, out);
    i++;
  }
  cJSON_Delete(all);
  if (e) {
    cJSON_Delete(out);
    return e;
  }
  if (pages(req))
    cs_resp_header(resp, "Total-Count", "%llu", (unsigned long long)i);
  return cs_resp_json(resp, 200, out);
}
