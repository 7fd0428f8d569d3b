/* Dispatch: a request's lifecycle under libmicrohttpd, from its headers
 * (route, framing, declared size, caller) through its body to the handler,
 * the answer and the access log. */
#include "auth.h"
#include "conn.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>
#include <malloc.h>
#include <netdb.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char rid_prefix[9];
static atomic_uint_fast64_t rid_counter;

void cs_dispatch_init(void) { cs_random_hex(rid_prefix, 4); }

static int64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A NUL byte inside the request line would cut the URL short in every
 * string MHD hands over ("…/victim\0junk" acting on "victim"). MHD shows the
 * raw URI to this callback, NUL-terminated where the HTTP version begins:
 * when the bytes after the first NUL are not that version, the URI itself
 * held a NUL. The marker becomes the request's context. */
static char raw_nul_marker;

void *cs_dispatch_uri_check(void *cls, const char *uri, struct MHD_Connection *c)
{
  const char *after = uri + strlen(uri) + 1;
  /* Routes match the path as sent: MHD's decoded one would turn a name's
   * "%2F" into a separator. Parameters are decoded once, after matching. */
  cs_conn_set_raw_path(cs_conn_tracker(c), uri);
  return strncmp(after, "HTTP/", 5) == 0 ? NULL : &raw_nul_marker;
}

static enum cs_method parse_method(const char *m)
{
  if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
    return CS_GET;
  if (!strcmp(m, "POST"))
    return CS_POST;
  if (!strcmp(m, "PUT"))
    return CS_PUT;
  if (!strcmp(m, "DELETE"))
    return CS_DELETE;
  return CS_METHOD_OTHER;
}

/* The client as the rate limiter, the access log and the audit trail all
 * see it: the peer, or behind a trusted proxy the X-Forwarded-For client.
 * The peer's text comes from its connection, formatted once there. */
static void client_addr(struct cs_req *req, const char *const *xff, size_t nxff)
{
  struct cs_addr peer;
  const char *text = NULL;
  req->remote[0] = '\0';
  if (cs_conn_peer(req->track, &peer, &text)) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || cs_addr_from_sockaddr(ci->client_addr, &peer))
      return;
  }
  req->client = cs_client_addr(req->api->trusted, &peer, xff, nxff);
  if (text && cs_addr_equal(&req->client, &peer))
    memcpy(req->remote, text, sizeof req->remote);
  else
    cs_addr_format(&req->client, req->remote);
}

#define XFF_HEADERS 8 /* the last ones count: the nearest proxy appends */

/* What the header block says about framing, and whether it is well formed. */
struct head_scan {
  int content_length;
  const char *content_length_value; /* of the one exactly spelled (others are refused) */
  int transfer_encoding;
  bool bad_name;     /* a field name that is not an RFC 9110 token */
  bool bad_encoding; /* a Transfer-Encoding other than "chunked" */
  const char *xff[XFF_HEADERS];
  size_t nxff;
};

static bool is_token(const char *s)
{
  static const char tchar[] = "!#$%&'*+-.^_`|~";
  if (!*s)
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || strchr(tchar, *s)))
      return false;
  return true;
}

/* Is @p key the framing header @p name, or a mangled spelling of it? Most
 * names differ at their first letter: told apart there, every request. */
static bool framing_name(const char *key, const char *name, bool *exact)
{
  size_t n = strlen(name);
  *exact = false;
  if ((key[0] | 0x20) != (name[0] | 0x20))
    return false;
  *exact = strcasecmp(key, name) == 0;
  return strncasecmp(key, name, n) == 0;
}

/* libmicrohttpd 0.9.75 keeps "Transfer-Encoding : chunked" as a header
 * named "Transfer-Encoding " (it looks for blanks before the colon only when
 * *less* strict), and glues a folded line ("Content-Length:\r\n 40") onto
 * the name ("Content-Length40"). Either way it frames the body as if the
 * header were absent, where a proxy may honour it. So a name must be a
 * token (RFC 9112 §5.1: refuse with 400), and a framing header counts
 * however it is spelled: anything else that starts with its name is
 * refused too. */
static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  struct head_scan *f = cls;
  bool exact;
  if (!is_token(key)) {
    f->bad_name = true;
  } else if (framing_name(key, MHD_HTTP_HEADER_CONTENT_LENGTH, &exact)) {
    f->bad_name |= !exact;
    f->content_length++;
    if (exact)
      f->content_length_value = value;
  } else if (framing_name(key, MHD_HTTP_HEADER_TRANSFER_ENCODING, &exact)) {
    f->bad_name |= !exact;
    f->transfer_encoding++;
    /* MHD decodes exactly "chunked"; anything else it would read to EOF. */
    f->bad_encoding |= !value || strcasecmp(value, "chunked") != 0;
  } else if (!strcasecmp(key, "X-Forwarded-For") && value) {
    if (f->nxff == XFF_HEADERS)
      memmove(f->xff, f->xff + 1, --f->nxff * sizeof f->xff[0]);
    f->xff[f->nxff++] = value;
  }
  return MHD_YES;
}

/* A refusal of the framing: answered with Connection: close, so bytes after
 * the headers are never read as another request. */
static void refuse_framing(struct cs_req *req, const char *why)
{
  req->early_err = CS_ERR_INVALID;
  req->close = true;
  cs_fail(&req->early, CS_ERR_INVALID, "%s", why);
}

static void check_head(struct cs_req *req, const struct head_scan *f)
{
  if (req->raw_nul)
    refuse_framing(req, "NUL byte in the request line");
  else if (f->bad_name)
    refuse_framing(req, "malformed header field name (a blank or another character that is "
                        "not allowed in a field name, or a folded line)");
  else if (f->content_length > 1 || f->transfer_encoding > 1 ||
           (f->content_length && f->transfer_encoding))
    refuse_framing(req, "ambiguous message framing: several Content-Length headers, or "
                        "Content-Length with Transfer-Encoding");
  else if (f->bad_encoding)
    refuse_framing(req, "unsupported Transfer-Encoding; only chunked is accepted");
}

/* How many bytes of a refused body are read and dropped so that a client
 * still sending gets to read the answer instead of a reset. An
 * unauthenticated client gets little: it is answered at once instead. */
static size_t drain_max(const struct cs_req *req)
{
  return req->authenticated ? CS_DRAIN_MAX : CS_UNAUTH_DRAIN_MAX;
}

/* Body size, then who is calling, both from the headers alone: a body is
 * read only for a request that will be served. */
static void check_body_and_caller(struct cs_req *req, const struct head_scan *f)
{
  /* No route: 1 MiB decides 413 against 404/405, but nothing is read. */
  bool public_route = req->route && req->route->roles == CS_PUBLIC;
  size_t cap = public_route ? CS_PUBLIC_BODY_MAX : CS_BODY_MAX;
  const char *cl = f->content_length_value;
  uint64_t n = 0;

  cs_buf_init(&req->body, cap);
  if (cl && cs_parse_u64(cl, UINT64_MAX, &n))
    n = UINT64_MAX; /* MHD refuses such a request before it gets here */
  req->declared = f->transfer_encoding ? UINT64_MAX : n; /* chunked: not known */
  /* A declared oversize body is refused before routing errors too. */
  if (!req->close && !f->transfer_encoding && n > cap)
    req->early_err = CS_ERR_TOO_LARGE;
  /* Authentication and the roles column of the route table, in one place.
   * An oversize body to an authenticated route is still refused for its
   * size, but an authenticated sender has it drained, not cut off. */
  if ((!req->early_err || req->early_err == CS_ERR_TOO_LARGE) && req->route && !public_route) {
    enum cs_err e = cs_auth_request(req, &req->early);
    if (!req->early_err)
      req->early_err = e;
  }
}

/* The prefix, then the low 32 bits of the counter as 8 hex digits. */
static void request_id(char rid[static 24])
{
  uint64_t n = atomic_fetch_add(&rid_counter, 1);
  const unsigned char be[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                               (unsigned char)(n >> 8), (unsigned char)n};
  memcpy(rid, rid_prefix, 8);
  sodium_bin2hex(rid + 8, 9, be, sizeof be);
}

/* A request is zeroed except for its big buffers, each written before it
 * is read: path_buf by cs_route_match before params point into it, early's
 * header values up to nheaders, err_msg, whose first byte says whether it
 * is set. Zeroing all of it was a tenth of a GET. Everything between the
 * buffers is zeroed, whatever members are added there. */
#define END(type, m) (offsetof(type, m) + sizeof((type *)0)->m)
#define EARLY(m) (offsetof(struct cs_req, early) + offsetof(struct cs_resp, m))
#define EARLY_END(m) (offsetof(struct cs_req, early) + END(struct cs_resp, m))
_Static_assert(END(struct cs_req, path_buf) <= EARLY(headers) &&
                   EARLY_END(headers) <= EARLY(err_msg),
               "the skipped buffers are in this order");

static struct cs_req *req_alloc(void)
{
  struct cs_req *req = malloc(sizeof *req);
  char *p = (char *)req;
  if (!req)
    return NULL;
  memset(p, 0, offsetof(struct cs_req, path_buf));
  memset(p + END(struct cs_req, path_buf), 0, EARLY(headers) - END(struct cs_req, path_buf));
  memset(p + EARLY_END(headers), 0, EARLY(err_msg) - EARLY_END(headers));
  req->early.err_msg[0] = '\0';
  memset(p + EARLY_END(err_msg), 0, sizeof *req - EARLY_END(err_msg));
  return req;
}

/* First callback of a request: the headers are in. Route it, check its
 * framing, its declared size and its caller. */
static struct cs_req *req_new(struct cs_api *api, struct MHD_Connection *conn, const char *method,
                              bool raw_nul)
{
  struct cs_req *req = req_alloc();
  struct head_scan f = {0};
  if (!req)
    return NULL;
  req->api = api;
  req->conn = conn;
  req->track = cs_conn_tracker(conn);
  req->t0_us = now_us();
  req->method = parse_method(method);
  req->raw_nul = raw_nul;
  request_id(req->rid);
  cs_log_set_request_id(req->rid);
  MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &f);
  client_addr(req, f.xff, f.nxff);
  const char *raw = cs_conn_raw_path(req->track);
  req->early_err = raw_nul ? CS_ERR_INVALID : raw ? cs_route_match(req, raw) : CS_ERR_NO_ROUTE;
  check_head(req, &f);
  check_body_and_caller(req, &f);
  atomic_fetch_add(&api->in_flight, 1);
  return req;
}

/* Bodies with resolved secrets are wiped before they are freed. */
static void wipe_free(void *p)
{
  if (p)
    cs_memzero(p, malloc_usable_size(p));
  free(p);
}

static enum MHD_Result queue(struct cs_req *req, struct cs_resp *resp)
{
  struct MHD_Response *r;
  enum MHD_Result ret;

  r = resp->secret ? MHD_create_response_from_buffer_with_free_callback_cls(resp->len, resp->body,
                                                                            wipe_free, resp->body)
                   : MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(resp->body);
    return MHD_NO;
  }
  resp->body = NULL;
  if (resp->content_type)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
  MHD_add_response_header(r, "X-Request-Id", req->rid);
  for (int i = 0; i < resp->nheaders; i++)
    MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
  if (req->close)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  req->status = resp->status;
  ret = MHD_queue_response(req->conn, (unsigned)resp->status, r);
  MHD_destroy_response(r);
  return ret;
}

static void dispatch(struct cs_req *req, struct cs_resp *resp)
{
  enum cs_err e = req->early_err;

  if (!e)
    e = req->route->fn(req, resp);
  if (e == CS_OK && resp->suspended)
    return;
  if (e == CS_OK && !resp->body)
    e = CS_ERR_INTERNAL;
  if (e) {
    if (!cs_err_is_client(e))
      CS_LOG(CS_LOG_ERROR, "%s failed: %s", req->route ? req->route->name : "-", cs_err_code(e));
    if (e == CS_ERR_METHOD)
      cs_resp_header(resp, "Allow", "%s", req->allow);
    if (cs_err_http_status(e) == 401)
      cs_resp_header(resp, "WWW-Authenticate",
                     "Bearer realm=\"credstore\", Basic realm=\"credstore\"");
    if (e == CS_ERR_RATE_LIMITED)
      cs_resp_header(resp, "Retry-After", "%lld", (long long)req->api->opts.auth_cooloff);
    unsigned flags = req->route ? req->route->flags : 0;
    if ((flags & CS_ROUTE_PRISMA) ? cs_resp_error_prisma(e, resp, flags == CS_ROUTE_REDLOCK)
                                  : cs_resp_error(e, resp)) {
      resp->body = strdup("{\"err\":\"out of memory\",\"code\":\"out_of_memory\"}");
      resp->len = resp->body ? strlen(resp->body) : 0;
      resp->status = 500;
    }
  }
}

/* The whole request is in (or refused): stop its deadline, run it, queue
 * the answer. Queued on the first call, MHD reads none of the body and
 * closes the connection after the answer. */
static enum MHD_Result answer(struct cs_req *req)
{
  struct cs_resp resp = req->early; /* what authentication or a refusal set */
  enum MHD_Result ret;

  cs_conn_request_in(req->track);
  dispatch(req, &resp);
  if (resp.suspended)
    return MHD_YES; /* parked; MHD calls again once resumed */
  ret = queue(req, &resp);
  cJSON_Delete(resp.err_extra);
  free(resp.body);
  return ret;
}

/* A refused request with a body is answered before any of it is read,
 * unless it is small enough to drain (the connection then stays open). */
static bool answer_at_once(const struct cs_req *req)
{
  return req->early_err && (req->close || req->declared > drain_max(req));
}

enum MHD_Result cs_dispatch_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
  struct cs_req *req = *con_cls;
  enum MHD_Result ret = MHD_YES;

  if (!req || req == (void *)&raw_nul_marker) {
    req = req_new(cls, conn, method, req != NULL);
    if (!req)
      return MHD_NO;
    *con_cls = req;
    if (answer_at_once(req)) {
      req->close = true; /* MHD will not read the body: say so */
      ret = answer(req);
    }
    cs_log_set_request_id(NULL);
    return ret;
  }
  cs_log_set_request_id(req->rid);
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (!req->early_err) {
      enum cs_err e = cs_buf_append(&req->body, upload_data, n);
      if (e)
        req->early_err = e;
    }
    /* A refused body is read and dropped up to a bound; past it the
     * connection is closed (MHD takes no answer in the middle of a body). */
    req->dropped += n;
    if (req->early_err && req->dropped > drain_max(req))
      ret = MHD_NO;
  } else if (!req->status) {
    ret = answer(req);
  }
  cs_log_set_request_id(NULL);
  return ret;
}

/* One line a request: its members put together with appends, no printf
 * (route names are constants, remote an address; neither needs escaping). */
static void access_log(const struct cs_req *req, int64_t us, bool aborted)
{
  char fields[256];
  struct cs_buf b = cs_buf_fixed(fields, sizeof fields);
  const char *route = req->route ? req->route->name : "-";

  (void)!cs_buf_append(&b, "\"route\":\"", 9);
  (void)!cs_buf_append(&b, route, strlen(route));
  (void)!cs_buf_append(&b, "\",\"status\":", 11);
  (void)!cs_buf_append_int(&b, req->status);
  (void)!cs_buf_append(&b, ",\"us\":", 6);
  (void)!cs_buf_append_int(&b, us);
  (void)!cs_buf_append(&b, ",\"remote\":\"", 11);
  (void)!cs_buf_append(&b, req->remote, strlen(req->remote));
  (void)!cs_buf_append(&b, aborted ? "\",\"aborted\":true" : "\"", aborted ? 16 : 1);
  cs_log_set_request_id(req->rid);
  cs_log_fields(CS_LOG_INFO, fields, "request");
  cs_log_set_request_id(NULL);
}

void cs_dispatch_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
  struct cs_api *api = cls;
  struct cs_req *req = *con_cls;

  if (!req || req == (void *)&raw_nul_marker)
    return;
  *con_cls = NULL;
  int64_t us = now_us() - req->t0_us;
  cs_metrics_observe(req->route, req->status, us);
  if (cs_log_min_level <= CS_LOG_INFO)
    access_log(req, us, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
  cs_conn_request_done(req->track);
  cs_core_job_free(req->job); /* a client gone while its write was queued */
  cs_buf_wipe(&req->body);    /* bodies may carry secrets */
  cs_principal_clear(&req->who);
  free(req);
  atomic_fetch_sub(&api->in_flight, 1);
}
