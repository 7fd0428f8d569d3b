/* libmicrohttpd glue: request lifecycle, body cap, dispatch, the one error
 * renderer, the access log. */
#include "auth.h"

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

/* Slowloris: MHD's --conn-timeout counts idle time, so a client trickling
 * one header byte at a time never times out. Each connection is tracked
 * from the moment it waits for a request's headers; a reaper thread shuts
 * down connections that have not delivered them within the timeout. */
struct conn_track {
  int fd;
  atomic_int_fast64_t waiting_since_ms; /* 0 while a request is being served */
  bool shut;
  struct conn_track *prev, *next;
};

static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn_track track_list = {-1, 0, false, &track_list, &track_list};
static pthread_t reaper;
static atomic_bool reaper_stop;
static int64_t header_timeout_ms;
static atomic_uint_fast64_t rid_counter;

static int64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  struct conn_track *t = *socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || !(t = calloc(1, sizeof *t)))
      return;
    t->fd = ci->connect_fd;
    atomic_store(&t->waiting_since_ms, cs_mono_ms());
    pthread_mutex_lock(&track_mu);
    t->next = &track_list;
    t->prev = track_list.prev;
    track_list.prev->next = t;
    track_list.prev = t;
    pthread_mutex_unlock(&track_mu);
    *socket_context = t;
  } else if (t) {
    pthread_mutex_lock(&track_mu);
    t->prev->next = t->next;
    t->next->prev = t->prev;
    pthread_mutex_unlock(&track_mu);
    free(t);
    *socket_context = NULL;
  }
}

static void *reaper_main(void *arg)
{
  while (!atomic_load(&reaper_stop)) {
    usleep(200 * 1000);
    int64_t now = cs_mono_ms();
    pthread_mutex_lock(&track_mu);
    for (struct conn_track *t = track_list.next; t != &track_list; t = t->next) {
      int64_t since = atomic_load(&t->waiting_since_ms);
      if (since && !t->shut && now - since > header_timeout_ms) {
        shutdown(t->fd, SHUT_RDWR); /* MHD sees the end and closes it */
        t->shut = true;
      }
    }
    pthread_mutex_unlock(&track_mu);
  }
  return NULL;
}

/* The connection's tracker, stopped for the request that now runs. */
static struct conn_track *track_request_start(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct conn_track *t = ci ? ci->socket_context : NULL;
  if (t)
    atomic_store(&t->waiting_since_ms, 0);
  return t;
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

static void remote_addr(struct cs_req *req)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  req->remote[0] = '\0';
  if (!ci || !ci->client_addr)
    return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, req->remote,
              sizeof req->remote);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
              req->remote, sizeof req->remote);
}

struct framing {
  int content_length;
  int transfer_encoding;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
  struct framing *f = cls;
  if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
    f->content_length++;
  else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
    f->transfer_encoding++;
  return MHD_YES;
}

/* First callback of a request: route it and check the declared size. MHD
 * gets MHD_YES here; the response is queued on a later call, which keeps
 * the connection alive (DESIGN.md, performance rules). */
static struct cs_req *req_new(struct cs_app *app, struct MHD_Connection *conn, const char *url,
                              const char *method)
{
  struct cs_req *req = calloc(1, sizeof *req);
  if (!req)
    return NULL;
  req->app = app;
  req->conn = conn;
  req->track = track_request_start(conn);
  req->t0_us = now_us();
  req->method = parse_method(method);
  cs_buf_init(&req->body, CS_BODY_MAX);
  snprintf(req->rid, sizeof req->rid, "%s%08llx", rid_prefix,
           (unsigned long long)(atomic_fetch_add(&rid_counter, 1) & 0xffffffffu));
  req->early_err = cs_route_match(req, url);

  /* Two Content-Lengths, or one with Transfer-Encoding, frame the body
   * ambiguously (request smuggling): refuse, and close the connection so
   * bytes after it are never read as another request. */
  struct framing f = {0, 0};
  MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
  if (f.content_length > 1 || f.transfer_encoding > 1 ||
      (f.content_length && f.transfer_encoding)) {
    req->early_err = CS_ERR_INVALID;
    req->close = true;
    return req;
  }
  /* A declared oversize body is refused before anything else is decided. */
  const char *cl = cs_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
  uint64_t n;
  if (cl && cs_parse_u64(cl, CS_BODY_MAX, &n)) {
    req->early_err = CS_ERR_TOO_LARGE;
    if (cs_parse_u64(cl, CS_DRAIN_MAX, &n))
      req->dropped = CS_DRAIN_MAX; /* too big to drain: answer at once */
  }
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

  remote_addr(req);
  /* Authentication and the roles column of the route table, in one place. */
  if (!e && req->route->roles != CS_PUBLIC)
    e = cs_auth_request(req, resp);
  if (!e)
    e = req->route->fn(req, resp);
  if (e == CS_OK && resp->suspended)
    return;
  if (e == CS_OK && !resp->body)
    e = CS_ERR_INTERNAL;
  if (req->raw_nul)
    cs_fail(resp, e, "NUL byte in the request line");
  else if (e == CS_ERR_INVALID && req->close && !resp->err_msg[0])
    cs_fail(resp, e, "ambiguous message framing: several Content-Length headers, or "
                     "Content-Length with Transfer-Encoding");
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
  struct cs_app *app = cls;
  struct cs_req *req = *con_cls;
  struct cs_resp resp = {0};
  enum MHD_Result ret;

  if (!req || req == (void *)&raw_nul_marker) {
    bool raw_nul = req != NULL;
    req = req_new(app, conn, url, method);
    if (!req)
      return MHD_NO;
    if (raw_nul) {
      req->early_err = CS_ERR_INVALID;
      req->route = NULL;
      req->close = true;
      req->raw_nul = true;
    }
    *con_cls = req;
    return MHD_YES;
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
    /* A refused body is read and dropped, so the client, still sending,
     * gets to read the answer instead of a reset; past a bound we answer at
     * once and MHD closes the connection. */
    req->dropped += n;
    if (req->early_err != CS_ERR_TOO_LARGE || req->dropped < CS_DRAIN_MAX)
      return MHD_YES;
  }
  if (req->status)
    return MHD_YES;
  dispatch(req, &resp);
  if (resp.suspended) {
    cs_log_set_request_id(NULL);
    return MHD_YES; /* parked; MHD calls again once resumed */
  }
  ret = queue(req, &resp);
  cJSON_Delete(resp.err_extra);
  free(resp.body);
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
  if (req->track) /* waiting for the next request's headers from now on */
    atomic_store(&((struct conn_track *)req->track)->waiting_since_ms, cs_mono_ms());
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
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, app, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(cfg->max_connections ? cfg->max_connections : 1024),
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->conn_timeout ? cfg->conn_timeout : 30),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)1024, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
      MHD_OPTION_URI_LOG_CALLBACK, uri_check, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
      MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "credstore: cannot listen on %s (address in use, not permitted, or a "
                    "bad TLS certificate/key)\n", listen);
    tls_free();
    return CS_ERR_IO;
  }
  /* One second of grace past MHD's own idle timeout, which still closes
   * silent connections: the reaper only has to catch the trickling ones. */
  header_timeout_ms = 1000 * ((cfg->conn_timeout ? cfg->conn_timeout : 30) + 1);
  atomic_store(&reaper_stop, false);
  if (pthread_create(&reaper, NULL, reaper_main, NULL)) {
    MHD_stop_daemon(d);
    tls_free();
    return CS_ERR_INTERNAL;
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
  atomic_store(&reaper_stop, true);
  pthread_join(reaper, NULL);
  tls_free();
}
