/* libmicrohttpd glue: request lifecycle, body cap, dispatch, the one error
 * renderer, the access log. */
#include "auth.h"
#include "conn.h"
#include "ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>
#include <malloc.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char rid_prefix[9];
static atomic_uint_fast64_t rid_counter;

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

static void *uri_check(void *cls, const char *uri, struct MHD_Connection *c)
{
  const char *after = uri + strlen(uri) + 1;
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

/* ----------------------------------------------------------- rendering */

/* The one place an error body is made: {"err","code"} plus context members. */
static enum cs_err render_error(enum cs_err e, struct cs_resp *resp)
{
  struct cs_buf b;
  const char *msg = resp->err_msg[0] ? resp->err_msg : cs_err_message(e);
  enum cs_err r;

  cs_buf_init(&b, 64 * 1024);
  r = cs_buf_append(&b, "{\"err\":\"", 8);
  if (!r)
    r = cs_buf_json_escape(&b, msg, strlen(msg));
  if (!r)
    r = cs_buf_printf(&b, "\",\"code\":\"%s\"", cs_err_code(e));
  if (!r && resp->err_extra) {
    cJSON_DeleteItemFromObjectCaseSensitive(resp->err_extra, "err");
    cJSON_DeleteItemFromObjectCaseSensitive(resp->err_extra, "code");
    char *extra = cs_json_print(resp->err_extra);
    if (!extra)
      r = CS_ERR_NOMEM;
    else if (strlen(extra) > 2) /* skip "{}" */
      r = cs_buf_printf(&b, ",%.*s", (int)(strlen(extra) - 2), extra + 1);
    free(extra);
  }
  if (!r)
    r = cs_buf_append(&b, "}", 1);
  cJSON_Delete(resp->err_extra);
  resp->err_extra = NULL;
  if (r) {
    cs_buf_free(&b);
    return r;
  }
  free(resp->body);
  resp->body = b.data;
  resp->len = b.len;
  resp->status = cs_err_http_status(e);
  resp->content_type = "application/json";
  return CS_OK;
}

static enum cs_err resp_json(struct cs_resp *resp, int status, cJSON *j, bool secret)
{
  char *text = j ? cs_json_print(j) : NULL;
  if (secret)
    cs_json_wipe_delete(j);
  else
    cJSON_Delete(j);
  if (!text)
    return CS_ERR_NOMEM;
  free(resp->body);
  resp->body = text;
  resp->len = strlen(text);
  resp->status = status;
  resp->content_type = "application/json";
  resp->secret = secret;
  return CS_OK;
}

enum cs_err cs_resp_json_secret(struct cs_resp *resp, int status, cJSON *j)
{
  return resp_json(resp, status, j, true);
}

enum cs_err cs_resp_json(struct cs_resp *resp, int status, cJSON *j)
{
  return resp_json(resp, status, j, false);
}

enum cs_err cs_resp_empty(struct cs_resp *resp, int status)
{
  free(resp->body);
  resp->body = malloc(1);
  if (!resp->body)
    return CS_ERR_NOMEM;
  resp->len = 0;
  resp->status = status;
  resp->content_type = NULL;
  return CS_OK;
}

void cs_resp_header(struct cs_resp *resp, const char *name, const char *fmt, ...)
{
  va_list ap;
  if (resp->nheaders >= CS_MAX_HEADERS)
    return;
  resp->headers[resp->nheaders].name = name;
  va_start(ap, fmt);
  vsnprintf(resp->headers[resp->nheaders].value, sizeof resp->headers[0].value, fmt, ap);
  va_end(ap);
  resp->nheaders++;
}

enum cs_err cs_fail(struct cs_resp *resp, enum cs_err e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(resp->err_msg, sizeof resp->err_msg, fmt, ap);
  va_end(ap);
  return e;
}

/* ------------------------------------------------------------ requests */

const char *cs_req_query(struct cs_req *req, const char *name)
{
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
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

/* The client as the rate limiter, the access log and the audit trail all
 * see it: the peer, or behind a trusted proxy the X-Forwarded-For client. */
static void client_addr(struct cs_req *req, const char *const *xff, size_t nxff)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  struct cs_addr peer;
  req->remote[0] = '\0';
  if (!ci || cs_addr_from_sockaddr(ci->client_addr, &peer))
    return;
  req->client = cs_client_addr(req->app->trusted, &peer, xff, nxff);
  cs_addr_format(&req->client, req->remote);
}

#define XFF_HEADERS 8 /* the last ones count: the nearest proxy appends */

/* What the header block says about framing, and whether it is well formed. */
struct head_scan {
  int content_length;
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
          strchr(tchar, *s)))
      return false;
  return true;
}

/* Is @p key the framing header @p name, or a mangled spelling of it? */
static bool framing_name(const char *key, const char *name, bool *exact)
{
  size_t n = strlen(name);
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
  const char *cl = cs_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
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

/* First callback of a request: the headers are in. Route it, check its
 * framing, its declared size and its caller. */
static struct cs_req *req_new(struct cs_app *app, struct MHD_Connection *conn, const char *url,
                              const char *method, bool raw_nul)
{
  struct cs_req *req = calloc(1, sizeof *req);
  struct head_scan f = {0};
  if (!req)
    return NULL;
  req->app = app;
  req->conn = conn;
  req->track = cs_conn_tracker(conn);
  req->t0_us = now_us();
  req->method = parse_method(method);
  req->raw_nul = raw_nul;
  snprintf(req->rid, sizeof req->rid, "%s%08llx", rid_prefix,
           (unsigned long long)(atomic_fetch_add(&rid_counter, 1) & 0xffffffffu));
  cs_log_set_request_id(req->rid);
  MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &f);
  client_addr(req, f.xff, f.nxff);
  req->early_err = raw_nul ? CS_ERR_INVALID : cs_route_match(req, url);
  check_head(req, &f);
  check_body_and_caller(req, &f);
  atomic_fetch_add(&app->in_flight, 1);
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

  r = resp->secret ? MHD_create_response_from_buffer_with_free_callback_cls(
                         resp->len, resp->body, wipe_free, resp->body)
                   : MHD_create_response_from_buffer(resp->len, resp->body,
                                                     MHD_RESPMEM_MUST_FREE);
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
      CS_LOG(CS_LOG_ERROR, "%s failed: %s", req->route ? req->route->name : "-",
             cs_err_code(e));
    if (e == CS_ERR_METHOD)
      cs_resp_header(resp, "Allow", "%s", req->allow);
    if (cs_err_http_status(e) == 401)
      cs_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"credstore\", Basic realm=\"credstore\"");
    if (render_error(e, resp)) {
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
  struct cs_req *req = *con_cls;
  enum MHD_Result ret = MHD_YES;

  if (!req || req == (void *)&raw_nul_marker) {
    req = req_new(cls, conn, url, method, req != NULL);
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct cs_app *app = cls;
  struct cs_req *req = *con_cls;

  if (!req || req == (void *)&raw_nul_marker)
    return;
  *con_cls = NULL;
  int64_t us = now_us() - req->t0_us;
  cs_metrics_observe(req->route, req->status, us);
  if (cs_log_min_level <= CS_LOG_INFO) {
    char fields[256];
    cs_log_set_request_id(req->rid);
    snprintf(fields, sizeof fields,
             "\"route\":\"%s\",\"status\":%d,\"us\":%lld,\"remote\":\"%s\"%s",
             req->route ? req->route->name : "-", req->status, (long long)us, req->remote,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : ",\"aborted\":true");
    cs_log_fields(CS_LOG_INFO, fields, "request");
    cs_log_set_request_id(NULL);
  }
  cs_conn_request_done(req->track);
  cs_buf_wipe(&req->body); /* bodies may carry secrets */
  cJSON_Delete(req->who.scope);
  free(req);
  atomic_fetch_sub(&app->in_flight, 1);
}


/* -------------------------------------------------------------- daemon */

static int hexval(char c)
{
  return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Percent-decoding of paths and query values, in place. "%00" stays as it
 * is: decoded, it would end the C string early, and "victim%00junk" would
 * act on "victim". Left encoded, it fails id validation instead. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
  char *w = s;
  for (const char *r = s; *r; r++) {
    int hi, lo;
    if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo)) {
      *w++ = (char)(hi << 4 | lo);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  CS_LOG(CS_LOG_WARN, "libmicrohttpd: %s", msg);
}

/* PEM buffers handed to GnuTLS; kept until the daemon stops, then wiped. */
static char *tls_cert_pem, *tls_key_pem;

static void tls_free(void)
{
  cs_free_secret_str(tls_key_pem);
  free(tls_cert_pem);
  tls_key_pem = tls_cert_pem = NULL;
}

static enum cs_err read_pem(const char *path, char **out)
{
  struct cs_buf b;
  char chunk[4096];
  size_t n;
  FILE *f = fopen(path, "rb");

  if (!f) {
    fprintf(stderr, "credstore: cannot read %s\n", path);
    return CS_ERR_IO;
  }
  cs_buf_init(&b, 1024 * 1024);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (cs_buf_append(&b, chunk, n)) {
      fprintf(stderr, "credstore: %s is too large for a PEM file\n", path);
      fclose(f);
      cs_memzero(chunk, sizeof chunk);
      cs_buf_wipe(&b);
      return CS_ERR_INVALID;
    }
  }
  fclose(f);
  cs_memzero(chunk, sizeof chunk);
  if (!b.data || !strstr(b.data, "-----BEGIN ")) {
    fprintf(stderr, "credstore: %s is not a PEM file\n", path);
    cs_buf_wipe(&b);
    return CS_ERR_INVALID;
  }
  *out = b.data;
  return CS_OK;
}

/* Parse HOST:PORT or [V6]:PORT into @p ss. */
static enum cs_err parse_listen(const char *listen, struct sockaddr_storage *ss,
                                socklen_t *sslen, bool *loopback)
{
  char host[256];
  const char *colon, *port;
  struct addrinfo hints = {0}, *ai = NULL;

  if (listen[0] == '[') {
    const char *end = strchr(listen, ']');
    if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof host)
      return CS_ERR_INVALID;
    memcpy(host, listen + 1, (size_t)(end - listen - 1));
    host[end - listen - 1] = '\0';
    port = end + 2;
  } else {
    colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
      return CS_ERR_INVALID;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
  }
  uint64_t p;
  if (cs_parse_u64(port, 65535, &p))
    return CS_ERR_INVALID;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host[0] ? host : NULL, port, &hints, &ai) || !ai)
    return CS_ERR_INVALID;
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *sslen = ai->ai_addrlen;
  freeaddrinfo(ai);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)ss;
    *loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
  } else {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ss;
    *loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
  }
  return CS_OK;
}

/* What stands between clients and the handlers: trusted proxies, the
 * brute-force table, connection tracking. Prints a clear message. */
static enum cs_err guards_start(struct cs_app *app)
{
  const struct cs_config *cfg = &app->cfg;
  int64_t max_conns = cfg->max_connections ? cfg->max_connections : CS_DEFAULT_MAX_CONNECTIONS;
  int64_t per_address = cfg->max_conns_per_address;
  enum cs_err e;

  if (!per_address) /* no one address takes every slot, unless there are few */
    per_address = max_conns < CS_DEFAULT_CONNS_PER_ADDRESS ? max_conns
                                                           : CS_DEFAULT_CONNS_PER_ADDRESS;
  if (cfg->trusted_proxies && (e = cs_cidr_list_parse(cfg->trusted_proxies, &app->trusted))) {
    fprintf(stderr, "credstore: --trusted-proxies %s: expected IP addresses or CIDRs "
                    "separated by commas (e.g. 10.0.0.0/8,192.0.2.7,fd00::/8)\n",
            cfg->trusted_proxies);
    return e;
  }
  if ((e = cs_rl_create(CS_RL_CAPACITY, cfg->auth_max_failures, cfg->auth_cooloff, &app->rl)) ||
      (e = cs_conn_start(cfg->conn_timeout ? cfg->conn_timeout : CS_DEFAULT_CONN_TIMEOUT,
                         max_conns, per_address, app->trusted))) {
    fprintf(stderr, "credstore: cannot set up connection tracking: %s\n", cs_err_message(e));
    cs_rl_destroy(app->rl);
    cs_cidr_list_free(app->trusted);
    app->rl = NULL;
    app->trusted = NULL;
    return e;
  }
  return CS_OK;
}

static void guards_stop(struct cs_app *app)
{
  cs_conn_stop();
  cs_rl_destroy(app->rl);
  cs_cidr_list_free(app->trusted);
  app->rl = NULL;
  app->trusted = NULL;
}

enum cs_err cs_http_start(struct cs_app *app, struct MHD_Daemon **out)
{
  const struct cs_config *cfg = &app->cfg;
  struct sockaddr_storage ss;
  socklen_t sslen;
  bool loopback;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  /* Writes wait for their group commit on the calling thread, so the pool
   * size bounds how many changes share one fsync: more threads than cores. */
  unsigned threads = CS_DEFAULT_THREADS;
  if (ncpu > CS_DEFAULT_THREADS / 8)
    threads = (unsigned)(ncpu * 8 > 256 ? 256 : ncpu * 8);
  if (cfg->threads)
    threads = (unsigned)cfg->threads;
  const char *listen = cfg->listen ? cfg->listen : CS_DEFAULT_LISTEN;

  cs_random_hex(rid_prefix, 4);
  if (parse_listen(listen, &ss, &sslen, &loopback)) {
    fprintf(stderr, "credstore: --listen %s: expected HOST:PORT or [V6ADDR]:PORT\n", listen);
    return CS_ERR_INVALID;
  }
  if (!loopback && !cfg->tls_cert && !cfg->insecure_http) {
    fprintf(stderr, "credstore: refusing to listen on non-loopback %s without TLS; "
                    "give --tls-cert/--tls-key, or --insecure-http if a proxy terminates TLS\n",
            listen);
    return CS_ERR_INVALID;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                   MHD_USE_ITC | MHD_USE_SUSPEND_RESUME;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
  if (cfg->tls_cert || cfg->tls_key) {
    if (!cfg->tls_cert || !cfg->tls_key) {
      fprintf(stderr, "credstore: --tls-cert and --tls-key go together\n");
      return CS_ERR_INVALID;
    }
    if (read_pem(cfg->tls_cert, &tls_cert_pem) || read_pem(cfg->tls_key, &tls_key_pem)) {
      tls_free();
      return CS_ERR_INVALID;
    }
    flags |= MHD_USE_TLS;
    tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert_pem};
    tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key_pem};
    /* Modern protocol versions only. */
    tls[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                     (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
  }
  if (guards_start(app)) {
    tls_free();
    return CS_ERR_INVALID;
  }
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, app, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(cfg->max_connections ? cfg->max_connections : CS_DEFAULT_MAX_CONNECTIONS),
      MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)(cfg->conn_timeout ? cfg->conn_timeout : CS_DEFAULT_CONN_TIMEOUT),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)1024, MHD_OPTION_NOTIFY_CONNECTION, cs_conn_notify, NULL,
      MHD_OPTION_URI_LOG_CALLBACK, uri_check, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
      MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "credstore: cannot listen on %s (address in use, not permitted, or a "
                    "bad TLS certificate/key)\n", listen);
    guards_stop(app);
    tls_free();
    return CS_ERR_IO;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  CS_LOG(CS_LOG_INFO, "listening on %s port %u with %u threads%s", listen,
         di ? (unsigned)di->port : 0u, threads, tls_key_pem ? " (TLS)" : "");
  *out = d;
  return CS_OK;
}

void cs_http_stop(struct cs_app *app, struct MHD_Daemon *d)
{
  if (!d)
    return;
  MHD_quiesce_daemon(d);
  /* Let in-flight requests finish, but not forever. */
  for (int i = 0; i < 1000 && atomic_load(&app->in_flight) > 0; i++)
    usleep(10 * 1000);
  MHD_stop_daemon(d);
  guards_stop(app);
  tls_free();
}
