/* Requests: query parameters, headers, the JSON body, the path's
 * credential id, and the percent-decoding MHD applies to paths and query
 * values. */
#include "http.h"

#include <string.h>

static int hexval(char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

size_t cs_http_unescape(char *s)
{
  /* Most paths and values have no escape: skipped to the first one. */
  char *w = strchr(s, '%');
  if (!w)
    return strlen(s);
  for (const char *r = w; *r; r++) {
    int hi, lo;
    if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
      *w++ = (hi | lo) ? (char)(hi << 4 | lo) : (char)0xff;
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

size_t cs_http_unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
  return cs_http_unescape(s);
}

const char *cs_req_query(struct cs_req *req, const char *name)
{
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static const char *query_get(void *arg, const char *name) { return cs_req_query(arg, name); }

struct query_all {
  const char *name;
  const char **out;
  size_t max, n;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
  struct query_all *q = cls;
  if (key && value && strcmp(key, q->name) == 0) {
    if (q->n < q->max)
      q->out[q->n] = value;
    q->n++;
  }
  return MHD_YES;
}

static size_t query_get_all(void *arg, const char *name, const char **out, size_t max)
{
  struct cs_req *req = arg;
  struct query_all q = {name, out, max, 0};
  MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect, &q);
  return q.n;
}

struct cs_params cs_req_params(struct cs_req *req)
{
  return (struct cs_params){query_get, req, query_get_all};
}

const char *cs_req_header(struct cs_req *req, const char *name)
{
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

enum cs_err cs_req_json(struct cs_req *req, cJSON **out)
{
  cJSON *j;
  enum cs_err e = cs_json_parse(req->body.data, req->body.len, CS_JSON_MAX_DEPTH, &j);
  if (e)
    return e;
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return CS_ERR_BAD_JSON;
  }
  *out = j;
  return CS_OK;
}

enum cs_err cs_req_cred_id(struct cs_req *req, struct cs_resp *resp, const char **out)
{
  const char *id = req->params[0];
  if (!cs_name_valid(id, strlen(id)))
    return cs_fail(resp, CS_ERR_BAD_ID, "a credential name is " CS_NAME_RULE);
  if (!cs_scope_allows(req->who.scope, id))
    return cs_fail(resp, CS_ERR_NOT_FOUND, "no credential %s", id);
  *out = id;
  return CS_OK;
}

struct cs_actor cs_actor_of(const struct cs_req *req)
{
  struct cs_actor a = {req->who.key_id, req->authenticated ? cs_role_name(req->who.role) : "",
                       req->remote};
  return a;
}

/* Parked on the request's own thread, before its write is queued; woken on
 * the writer thread once the write is durable or failed. */
static void park_conn(void *waiter) { MHD_suspend_connection(waiter); }

static void wake_conn(void *waiter) { MHD_resume_connection(waiter); }

void cs_req_writes_init(struct cs_core *core)
{
  cs_core_set_write_waker(core, park_conn, wake_conn);
}

bool cs_req_await(struct cs_req *req, struct cs_resp *resp, struct cs_core_job *job)
{
  req->job = job;
  resp->suspended = cs_core_job_parked(job);
  return resp->suspended;
}

void cs_req_job_done(struct cs_req *req)
{
  cs_core_job_free(req->job);
  req->job = NULL;
}

enum cs_err cs_parse_if_match(const char *v, uint64_t *out)
{
  char buf[32];
  size_t n = strlen(v);
  if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
    if (n - 2 >= sizeof buf)
      return CS_ERR_INVALID;
    memcpy(buf, v + 1, n - 2);
    buf[n - 2] = '\0';
    v = buf;
  }
  return cs_parse_u64(v, UINT64_MAX, out);
}
