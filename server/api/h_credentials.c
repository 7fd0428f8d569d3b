/* /api/v1/credentials: list, get, upsert (POST), update (PUT), delete. */
#include "http.h"

#include <string.h>

#define LIMIT_DEFAULT 50
#define SEARCH_MAX 128

/* The sort names of ?sort=. */
static enum cs_err parse_sort(const char *v, enum cs_cred_sort *out)
{
  static const struct {
    const char *name;
    enum cs_cred_sort sort;
  } sorts[] = {{"_id", CS_SORT_ID},
               {"id", CS_SORT_ID},
               {"type", CS_SORT_TYPE},
               {"created", CS_SORT_CREATED},
               {"lastModified", CS_SORT_MODIFIED}};
  for (size_t i = 0; i < sizeof sorts / sizeof sorts[0]; i++) {
    if (strcmp(v, sorts[i].name) == 0) {
      *out = sorts[i].sort;
      return CS_OK;
    }
  }
  return CS_ERR_INVALID;
}

/* Add the names of @p v (split on commas when @p split) to @p ids. */
static enum cs_err add_ids(cJSON *ids, const char *v, bool split, struct cs_resp *resp)
{
  char name[CS_NAME_MAX + 1];
  while (*v) {
    size_t n = split ? strcspn(v, ",") : strlen(v);
    if (n > 0) {
      if (n > CS_NAME_MAX || !cs_name_valid(v, n))
        return cs_fail(resp, CS_ERR_BAD_QUERY, "ids must be credential names: " CS_NAME_RULE);
      if (cJSON_GetArraySize(ids) >= CS_IDS_MAX)
        return cs_fail(resp, CS_ERR_BAD_QUERY, "ids names at most %d credentials", CS_IDS_MAX);
      memcpy(name, v, n);
      name[n] = '\0';
      if (!cJSON_AddItemToArray(ids, cJSON_CreateString(name)))
        return CS_ERR_NOMEM;
    }
    v += n;
    if (*v == ',')
      v++;
  }
  return CS_OK;
}

/* ?ids=: repeated values are whole names, a single value is split on commas. */
static enum cs_err parse_ids(const struct cs_params *p, cJSON **out, struct cs_resp *resp)
{
  const char *vals[CS_IDS_MAX + 1];
  size_t n;
  cJSON *ids;
  enum cs_err e = CS_OK;

  if (p->get_all) {
    n = p->get_all(p->arg, "ids", vals, CS_IDS_MAX + 1);
  } else {
    vals[0] = p->get(p->arg, "ids");
    n = vals[0] != NULL;
  }
  if (n == 0)
    return CS_OK;
  if (n > CS_IDS_MAX)
    return cs_fail(resp, CS_ERR_BAD_QUERY, "ids names at most %d credentials", CS_IDS_MAX);
  if (!(ids = cJSON_CreateArray()))
    return CS_ERR_NOMEM;
  for (size_t i = 0; i < n && !e; i++)
    e = add_ids(ids, vals[i], n == 1, resp);
  /* Only empty values ("ids=") filter nothing, like a parameter left out. */
  if (e || !cJSON_GetArraySize(ids))
    cJSON_Delete(ids);
  else
    *out = ids;
  return e;
}

static enum cs_err parse_query(const struct cs_params *p, struct cs_cred_query *q,
                               struct cs_resp *resp)
{
  const char *v;
  uint64_t n;

  memset(q, 0, sizeof *q);
  q->limit = LIMIT_DEFAULT;
  if ((v = p->get(p->arg, "offset"))) {
    if (cs_parse_u64(v, CS_LIST_OFFSET_MAX, &n))
      return cs_fail(resp, CS_ERR_BAD_QUERY, "offset must be a non-negative integer");
    q->offset = n;
  }
  if ((v = p->get(p->arg, "limit"))) {
    if (cs_parse_u64(v, CS_LIST_LIMIT_MAX, &n) || n == 0)
      return cs_fail(resp, CS_ERR_BAD_QUERY, "limit must be an integer from 1 to %d",
                     CS_LIST_LIMIT_MAX);
    q->limit = n;
  }
  if ((v = p->get(p->arg, "type")) && v[0]) {
    if (!(q->type = cs_provider_find(v)))
      return cs_fail(resp, CS_ERR_BAD_QUERY,
                     "type must be one of aws, azure, gcp, ibmCloud, kubeconfig, basic, apiToken, "
                     "certificate");
  }
  if ((v = p->get(p->arg, "search"))) {
    if (strlen(v) > SEARCH_MAX)
      return cs_fail(resp, CS_ERR_BAD_QUERY, "search is limited to %d characters", SEARCH_MAX);
    q->search = v;
  }
  if ((v = p->get(p->arg, "sort")) && v[0] && parse_sort(v, &q->sort))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "sort must be one of _id, type, created, lastModified");
  if ((v = p->get(p->arg, "reverse"))) {
    if (!strcmp(v, "true") || !strcmp(v, "1"))
      q->reverse = true;
    else if (strcmp(v, "false") && strcmp(v, "0") && v[0])
      return cs_fail(resp, CS_ERR_BAD_QUERY, "reverse must be true or false");
  }
  return CS_OK;
}

enum cs_err cs_parse_cred_query(const struct cs_params *p, struct cs_cred_query *q,
                                struct cs_resp *resp)
{
  cJSON *ids = NULL;
  enum cs_err e = parse_query(p, q, resp);
  if (!e && !(e = parse_ids(p, &ids, resp)))
    q->ids = ids;
  return e;
}

enum cs_err cs_h_creds_list(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_cred_query q;
  char *page = NULL;
  size_t len = 0;
  uint64_t total = 0;
  struct cs_params p = cs_req_params(req);
  enum cs_err e;

  if ((e = cs_parse_cred_query(&p, &q, resp)))
    return e;
  q.scope = req->who.scope;
  e = cs_creds_list(req->api->core, &q, &page, &len, &total);
  cJSON_Delete((cJSON *)q.ids);
  if (e)
    return e;
  cs_resp_header(resp, "Total-Count", "%llu", (unsigned long long)total);
  cs_resp_json_text(resp, 200, page, len);
  return CS_OK;
}

enum cs_err cs_h_creds_get(struct cs_req *req, struct cs_resp *resp)
{
  const char *id = NULL;
  char *c = NULL;
  size_t len = 0;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &id)))
    return e;
  e = cs_creds_get(req->api->core, id, &c, &len);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", id);
  if (e)
    return e;
  cs_resp_json_text(resp, 200, c, len);
  return CS_OK;
}

/* Render a create-or-update's outcome (@p prisma: 200, no body) or its
 * field error. */
static enum cs_err put_render(struct cs_resp *resp, enum cs_err e, struct cs_cred_put_result *r,
                              bool prisma)
{
  if (e == CS_ERR_INVALID || e == CS_ERR_MISSING || e == CS_ERR_BAD_ID) {
    const char *msg = r->perr.msg[0] ? r->perr.msg : cs_err_message(e);
    return r->perr.field[0] ? cs_fail_field(resp, e, r->perr.field, "%s", msg)
                            : cs_fail(resp, e, "%s", msg);
  }
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", r->id);
  if (e == CS_ERR_PRECONDITION)
    return cs_fail(resp, e, "If-Match does not name the current version of %s", r->id);
  if (e)
    return e;
  if (prisma)
    return cs_resp_empty(resp, 200);
  cs_resp_json_text(resp, r->created ? 201 : 200, r->json, r->json_len); /* takes r->json */
  return CS_OK;
}

/* Called again once the write is durable (the request was parked meanwhile). */
static enum cs_err put_finish(struct cs_req *req, struct cs_resp *resp, bool prisma)
{
  struct cs_cred_put_result r;
  enum cs_err e = cs_creds_put_finish(req->job, &r);

  e = put_render(resp, e, &r, prisma); /* r.id is the job's */
  cs_req_job_done(req);
  return e;
}

/* Start a create-or-update of *body: parked while its write is queued, or
 * rendered. Once started the job holds the tree (no copy): *body NULL. */
static enum cs_err put(struct cs_req *req, struct cs_resp *resp, struct cs_cred_put *in,
                       cJSON **body, bool prisma)
{
  struct cs_cred_put_result r;
  struct cs_core_job *job = NULL;
  enum cs_err e;

  in->given_body = *body;
  if ((e = cs_creds_put_start(req->api->core, in, req->conn, &job, &r))) {
    r.id = in->id;
    return put_render(resp, e, &r, prisma);
  }
  *body = NULL;
  return cs_req_await(req, resp, job) ? CS_OK : put_finish(req, resp, prisma);
}

enum cs_err cs_h_creds_upsert(struct cs_req *req, struct cs_resp *resp)
{
  return cs_creds_upsert_request(req, resp, false);
}

enum cs_err cs_creds_upsert_request(struct cs_req *req, struct cs_resp *resp, bool prisma)
{
  struct cs_actor a = cs_actor_of(req);
  struct cs_cred_put in = {
      .who = &req->who, .actor = &a, .skip_unchanged = prisma, .no_render = prisma};
  cJSON *body = NULL;
  enum cs_err e;

  if (req->job)
    return put_finish(req, resp, prisma);
  if ((e = cs_req_json(req, &body)))
    return e;
  const cJSON *idj = cJSON_GetObjectItemCaseSensitive(body, "_id");
  if (idj && !cJSON_IsNull(idj) && !cJSON_IsString(idj))
    e = cs_fail_field(resp, CS_ERR_BAD_ID, "_id", "_id must be a string of " CS_NAME_RULE);
  else if (!cJSON_IsString(idj))
    e = cs_fail_field(resp, CS_ERR_MISSING, "_id", "_id is required: " CS_NAME_RULE);
  else if (!cs_name_valid(idj->valuestring, strlen(idj->valuestring)))
    e = cs_fail_field(resp, CS_ERR_BAD_ID, "_id", "_id must be " CS_NAME_RULE);
  else if (!cs_scope_allows(req->who.scope, (in.id = idj->valuestring))) {
    e = cs_fail(resp, CS_ERR_FORBIDDEN, "credential id %s is outside this access key's scope",
                in.id);
  } else {
    e = put(req, resp, &in, &body, prisma);
  }
  cs_json_wipe_delete(body); /* a secret's plain text, unless the job took it */
  return e;
}

enum cs_err cs_h_creds_update(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_actor a = cs_actor_of(req);
  struct cs_cred_put in = {.who = &req->who, .actor = &a, .must_exist = true};
  const char *body_id = NULL, *im;
  cJSON *body = NULL;
  enum cs_err e;

  if (req->job)
    return put_finish(req, resp, false);
  if ((e = cs_req_cred_id(req, resp, &in.id)))
    return e;
  if ((im = cs_req_header(req, "If-Match"))) {
    if (cs_parse_if_match(im, &in.if_match))
      return cs_fail(resp, CS_ERR_INVALID, "If-Match must be a credential version");
    in.has_if_match = true;
  }
  if ((e = cs_req_json(req, &body)))
    return e;
  if (cs_json_opt_string(body, "_id", CS_NAME_MAX + 1, &body_id) ||
      (body_id && strcmp(body_id, in.id))) {
    e = cs_fail_field(resp, CS_ERR_INVALID, "_id", "_id in the body must match the path");
  } else {
    e = put(req, resp, &in, &body, false);
  }
  cs_json_wipe_delete(body); /* a secret's plain text, unless the job took it */
  return e;
}

enum cs_err cs_h_creds_delete(struct cs_req *req, struct cs_resp *resp)
{
  return cs_creds_delete_request(req, resp, 204);
}

/* Called again once the delete is durable (the request was parked meanwhile). */
enum cs_err cs_creds_delete_request(struct cs_req *req, struct cs_resp *resp, int status)
{
  struct cs_core_job *job = NULL;
  const char *id = NULL;
  cJSON *usages = NULL;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &id)))
    return e;
  struct cs_actor a = cs_actor_of(req);
  if (!req->job && ((e = cs_creds_delete_start(req->api->core, &a, id, req->conn, &job)) ||
                    cs_req_await(req, resp, job)))
    return e;
  e = cs_creds_delete_finish(req->job, &usages);
  cs_req_job_done(req);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", id);
  if (e == CS_ERR_IN_USE) {
    cs_fail(resp, e, "credential %s is in use; remove its usages first", id);
    if ((resp->err_extra = cJSON_CreateObject()))
      cJSON_AddItemToObject(resp->err_extra, "usages", usages);
    else
      cJSON_Delete(usages);
    return e;
  }
  if (e)
    return e;
  return cs_resp_empty(resp, status);
}

/* POST /credentials/{id}/test (API.md §8): {"ok","message","latencyMs",
 * "identity"?, "code"? (what the upstream answered when not ok)}. The body,
 * if any, is not read: a test takes no options. */
enum cs_err cs_h_creds_test(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_actor a = cs_actor_of(req);
  struct cs_test_result r;
  const char *id = NULL;
  cJSON *o;
  enum cs_err e;

  if ((e = cs_req_cred_id(req, resp, &id)))
    return e;
  e = cs_creds_test(req->api->core, &a, id, &r);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no credential %s", id);
  if (e)
    return e;
  if (!(o = cJSON_CreateObject()) || !cJSON_AddBoolToObject(o, "ok", r.ok) ||
      !cJSON_AddStringToObject(o, "message", r.message) ||
      !cJSON_AddNumberToObject(o, "latencyMs", (double)r.latency_ms) ||
      (r.identity[0] && !cJSON_AddStringToObject(o, "identity", r.identity)) ||
      (!r.ok && !cJSON_AddStringToObject(o, "code", r.code[0] ? r.code : "unknown"))) {
    cJSON_Delete(o);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json(resp, 200, o);
}
