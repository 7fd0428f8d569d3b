/*
 * etcd backend: the HTTP/1.1 client of etcd's JSON gateway (libcurl), with
 * endpoint failover, TLS, etcd authentication and the gateway's encodings
 * (base64 bytes, int64 as strings).
 */
#include "etcd.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* A reply bigger than this is refused rather than buffered (a range page
 * holds at most 100 records of at most ~1.5 MiB each, base64-encoded). */
#define CS_ETCD_REPLY_MAX ((size_t)256 << 20)

/* gRPC status codes etcd puts in an error body's "code". */
enum {
  GRPC_DEADLINE = 4,
  GRPC_NOT_FOUND = 5,
  GRPC_EXHAUSTED = 8,
  GRPC_FAILED_PRECONDITION = 9,
  GRPC_OUT_OF_RANGE = 11,
  GRPC_UNAVAILABLE = 14,
  GRPC_UNAUTHENTICATED = 16,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *dup_opt(const char *s, bool *oom)
{
  char *d;

  if (!s)
    return NULL;
  d = strdup(s);
  if (!d)
    *oom = true;
  return d;
}

enum cs_err cs_etcd_client_init(struct cs_etcd_client *c, const struct cs_store_url *u,
                                const struct cs_store_opts *o)
{
  static const struct cs_store_opts none = {0};
  bool oom = false;

  if (!o)
    o = &none;
  pthread_once(&curl_once, curl_init_once);
  if (!o->etcd_user != !o->etcd_password) {
    CS_LOG(CS_LOG_ERROR, "store: etcd user and password go together");
    return CS_ERR_INVALID;
  }
  if (!o->etcd_cert != !o->etcd_key) {
    CS_LOG(CS_LOG_ERROR, "store: an etcd client certificate needs its key, and the reverse");
    return CS_ERR_INVALID;
  }
  if (pthread_mutex_init(&c->mu, NULL))
    return CS_ERR_INTERNAL;
  for (size_t i = 0; i < u->n_ep; i++)
    c->ep[i] = dup_opt(u->ep[i], &oom);
  c->n_ep = u->n_ep;
  c->cacert = dup_opt(o->etcd_cacert, &oom);
  c->cert = dup_opt(o->etcd_cert, &oom);
  c->key = dup_opt(o->etcd_key, &oom);
  c->user = dup_opt(o->etcd_user, &oom);
  c->password = dup_opt(o->etcd_password, &oom);
  c->timeout_ms = o->etcd_timeout_ms ? (long)o->etcd_timeout_ms : CS_ETCD_TIMEOUT_MS;
  return oom ? CS_ERR_NOMEM : CS_OK;
}

void cs_etcd_client_free(struct cs_etcd_client *c)
{
  for (size_t i = 0; i < c->n_ep; i++)
    free(c->ep[i]);
  for (size_t i = 0; i < c->n_pool; i++)
    curl_easy_cleanup(c->pool[i]);
  free(c->cacert);
  free(c->cert);
  free(c->key);
  free(c->user);
  cs_free_secret_str(c->password);
  cs_free_secret_str(c->token);
  if (c->n_ep)
    pthread_mutex_destroy(&c->mu);
  memset(c, 0, sizeof *c);
}

CURL *cs_etcd_handle_get(struct cs_etcd_client *c)
{
  CURL *h = NULL;

  pthread_mutex_lock(&c->mu);
  if (c->n_pool)
    h = c->pool[--c->n_pool];
  pthread_mutex_unlock(&c->mu);
  return h ? h : curl_easy_init();
}

void cs_etcd_handle_put(struct cs_etcd_client *c, CURL *h)
{
  if (!h)
    return;
  pthread_mutex_lock(&c->mu);
  if (c->n_pool < CS_ETCD_HANDLES) {
    c->pool[c->n_pool++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&c->mu);
  curl_easy_cleanup(h);
}

/* libcurl calls this at least once a second during a transfer. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  return atomic_load((const atomic_bool *)arg) ? 1 : 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
  return cs_buf_append(arg, p, size * n) == CS_OK ? size * n : 0;
}

/* The token is copied into the header list, which the caller frees. */
enum cs_err cs_etcd_handle_setup(struct cs_etcd_client *c, CURL *h, struct curl_slist **hdrs,
                                 long timeout_ms)
{
  struct curl_slist *l = NULL, *n;
  struct cs_buf auth;
  bool ok = true;

  curl_easy_reset(h); /* keeps the connection cache */
  n = curl_slist_append(l, "Content-Type: application/json");
  ok = n != NULL;
  l = n ? n : l;
  if (ok && (n = curl_slist_append(l, "Expect:")) == NULL) /* no 100-continue round trip */
    ok = false;
  l = n ? n : l;
  pthread_mutex_lock(&c->mu);
  if (ok && c->token) {
    cs_buf_init(&auth, 4096);
    ok = cs_buf_printf(&auth, "Authorization: %s", c->token) == CS_OK &&
         (n = curl_slist_append(l, auth.data)) != NULL;
    l = ok ? n : l;
    cs_buf_wipe(&auth);
  }
  pthread_mutex_unlock(&c->mu);
  if (!ok) {
    curl_slist_free_all(l);
    return CS_ERR_NOMEM;
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  /* Half the request's time to connect (TLS handshake included): a host
   * that drops packets leaves time for the next endpoint. */
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   timeout_ms ? (timeout_ms > 400 ? timeout_ms / 2 : timeout_ms)
                              : c->timeout_ms / 2);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
  if (c->cacert)
    curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
  if (c->cert) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
  }
  *hdrs = l;
  return CS_OK;
}

/* Outcome of one attempt on one endpoint. */
struct attempt {
  long http;
  bool sent; /* the request may have reached etcd */
  CURLcode rc;
  struct cs_buf body;
};

static void post_once(struct cs_etcd_client *c, CURL *h, const struct cs_etcd_call *r, size_t i,
                      struct attempt *a)
{
  long timeout = r->timeout_ms ? r->timeout_ms : c->timeout_ms;
  struct curl_slist *hdrs = NULL;
  struct cs_buf url;
  curl_off_t pre = 0;

  /* Within the caller's deadline: a write must not outlast it by one
   * request timeout per endpoint. */
  if (r->deadline_ms && r->deadline_ms - cs_mono_ms() < timeout)
    timeout = r->deadline_ms - cs_mono_ms() > 1 ? (long)(r->deadline_ms - cs_mono_ms()) : 1;
  cs_buf_init(&url, 1024);
  a->http = 0;
  a->sent = false;
  a->rc = CURLE_OUT_OF_MEMORY;
  cs_buf_init(&a->body, CS_ETCD_REPLY_MAX);
  if (cs_buf_printf(&url, "%s%s", c->ep[i], r->path) != CS_OK ||
      cs_etcd_handle_setup(c, h, &hdrs, timeout) != CS_OK)
    goto out;
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &a->body);
  if (r->abort) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)r->abort);
  }
  a->rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->http);
  curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pre);
  /* Refused, unresolvable, or timed out before the request went out: safe
   * to send elsewhere. Anything later may have reached etcd. */
  a->sent = !(a->rc == CURLE_COULDNT_CONNECT || a->rc == CURLE_COULDNT_RESOLVE_HOST ||
              a->rc == CURLE_SSL_CONNECT_ERROR || (a->rc == CURLE_OPERATION_TIMEDOUT && pre == 0));
  atomic_fetch_add(r->background ? &c->n_bg : &c->n_fg, 1);
out:
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdrs);
  cs_buf_free(&url);
}

static enum cs_err authenticate(struct cs_etcd_client *c, CURL *h);

static bool is_auth_call(const struct cs_etcd_call *r)
{
  return strcmp(r->path, "/v3/auth/authenticate") == 0;
}

/* A first call with a user configured authenticates first. */
static bool auth_needed(struct cs_etcd_client *c, const struct cs_etcd_call *r)
{
  bool need;

  if (!c->user || is_auth_call(r) || atomic_load(&c->auth_off))
    return false;
  pthread_mutex_lock(&c->mu);
  need = c->token == NULL;
  pthread_mutex_unlock(&c->mu);
  return need;
}

/* What to do with an error reply. */
enum verdict { V_FAIL, V_NEXT, V_REAUTH };

static enum verdict classify(struct cs_etcd_client *c, const struct cs_etcd_call *r,
                             const struct attempt *a, enum cs_err *e)
{
  switch (r->grpc_code) {
  case GRPC_UNAUTHENTICATED:
    *e = CS_ERR_STORE;
    return c->user && !is_auth_call(r) ? V_REAUTH : V_FAIL;
  case GRPC_UNAVAILABLE:
  case GRPC_DEADLINE:
  case GRPC_EXHAUSTED:
    /* No leader, leader changed, timed out: a write may still commit. */
    *e = CS_ERR_STORE_UNAVAILABLE;
    return r->idempotent ? V_NEXT : V_FAIL;
  case GRPC_NOT_FOUND:
    *e = CS_ERR_NOT_FOUND;
    return V_FAIL;
  case GRPC_OUT_OF_RANGE:
    *e = CS_ERR_PRECONDITION;
    return V_FAIL;
  default:
    CS_LOG(CS_LOG_ERROR, "store: etcd refused %s: HTTP %ld: %.300s", r->path, a->http,
           a->body.data ? a->body.data : "");
    *e = CS_ERR_STORE;
    return V_FAIL;
  }
}

/* An error reply is {"error","message","code"}; a bare 404 is an old etcd. */
static int grpc_code_of(const struct attempt *a)
{
  cJSON *j = NULL;
  int code = -1;

  if (a->body.len && cs_json_parse(a->body.data, a->body.len, 8, &j) == CS_OK) {
    int64_t v = cs_etcd_int(j, "code");
    code = v > 0 && v < 100 ? (int)v : -1;
  }
  cJSON_Delete(j);
  return code;
}

/* One endpoint's answer: CS_OK (parsed), or an error and what to do next. */
static enum cs_err judge(struct cs_etcd_client *c, CURL *h, struct cs_etcd_call *r,
                         struct attempt *a, bool *reauthed, enum verdict *then, cJSON **out)
{
  enum cs_err e;

  *then = V_FAIL;
  if (a->rc != CURLE_OK) {
    CS_LOG(CS_LOG_DEBUG, "store: etcd %s%s: %s", c->ep[r->ep_used], r->path,
           curl_easy_strerror(a->rc));
    if (!a->sent || r->idempotent)
      *then = V_NEXT;
    return a->rc == CURLE_OUT_OF_MEMORY ? CS_ERR_NOMEM : CS_ERR_STORE_UNAVAILABLE;
  }
  if (a->http == 200) {
    e = cs_json_parse(a->body.data, a->body.len, CS_JSON_MAX_DEPTH, out);
    if (e != CS_OK)
      CS_LOG(CS_LOG_ERROR, "store: etcd sent a reply that is not JSON for %s", r->path);
    return e == CS_OK ? CS_OK : e == CS_ERR_NOMEM ? e : CS_ERR_STORE;
  }
  r->grpc_code = grpc_code_of(a);
  *then = classify(c, r, a, &e);
  if (*then == V_REAUTH) {
    /* The token expired: once per call, get a new one and resend. */
    *then = !*reauthed && authenticate(c, h) == CS_OK ? V_REAUTH : V_FAIL;
    *reauthed = true;
  }
  return e;
}

enum cs_err cs_etcd_post(struct cs_etcd_client *c, CURL *h, struct cs_etcd_call *r, cJSON **out)
{
  size_t i = r->ep >= 0 ? (size_t)r->ep % c->n_ep : atomic_load(&c->preferred) % c->n_ep;
  enum cs_err e = CS_ERR_STORE_UNAVAILABLE;
  bool reauthed = false;
  enum verdict then;

  if (auth_needed(c, r)) {
    e = authenticate(c, h);
    if (e != CS_OK)
      return e;
  }
  /* Each endpoint once, in turn from the first, within the deadline. */
  for (size_t left = c->n_ep; left > 0;) {
    struct attempt a;

    if ((r->deadline_ms && cs_mono_ms() >= r->deadline_ms) || (r->abort && atomic_load(r->abort)))
      break;
    r->ep_used = (int)i;
    r->grpc_code = 0;
    post_once(c, h, r, i, &a);
    e = judge(c, h, r, &a, &reauthed, &then, out);
    cs_buf_free(&a.body);
    if (e == CS_OK)
      atomic_store(&c->preferred, (unsigned)i);
    if (e == CS_OK || e == CS_ERR_NOMEM || then == V_FAIL)
      return e;
    if (then == V_NEXT) {
      i = (i + 1) % c->n_ep;
      left--;
    }
  }
  if (!r->abort || !atomic_load(r->abort)) /* else the store is closing */
    CS_LOG(CS_LOG_WARN, "store: etcd %s failed on every endpoint (no quorum or unreachable)",
           r->path);
  return e;
}

/* POST /v3/auth/authenticate and keep the token. */
static enum cs_err authenticate(struct cs_etcd_client *c, CURL *h)
{
  struct cs_etcd_call r = {.path = "/v3/auth/authenticate", .idempotent = true, .ep = -1};
  const cJSON *tok;
  struct cs_buf b;
  cJSON *j = NULL;
  enum cs_err e;

  cs_buf_init(&b, 4096);
  e = CS_BUF_LIT(&b, "{\"name\":\"");
  if (e == CS_OK)
    e = cs_buf_json_escape(&b, c->user, strlen(c->user));
  if (e == CS_OK)
    e = CS_BUF_LIT(&b, "\",\"password\":\"");
  if (e == CS_OK)
    e = cs_buf_json_escape(&b, c->password, strlen(c->password));
  if (e == CS_OK)
    e = CS_BUF_LIT(&b, "\"}");
  if (e != CS_OK)
    goto out;
  r.body = b.data;
  r.len = b.len;
  e = cs_etcd_post(c, h, &r, &j);
  if (e == CS_ERR_STORE && r.grpc_code == GRPC_FAILED_PRECONDITION) {
    CS_LOG(CS_LOG_WARN, "store: etcd authentication is not enabled; going on without");
    atomic_store(&c->auth_off, true);
    e = CS_OK;
    goto out;
  }
  if (e != CS_OK)
    goto out;
  tok = cJSON_GetObjectItemCaseSensitive(j, "token");
  if (!cJSON_IsString(tok) || !*tok->valuestring) {
    CS_LOG(CS_LOG_ERROR, "store: etcd authentication returned no token");
    e = CS_ERR_STORE;
    goto out;
  }
  pthread_mutex_lock(&c->mu);
  cs_free_secret_str(c->token);
  c->token = strdup(tok->valuestring);
  e = c->token ? CS_OK : CS_ERR_NOMEM;
  pthread_mutex_unlock(&c->mu);
out:
  if (e != CS_OK && e != CS_ERR_NOMEM && e != CS_ERR_STORE_UNAVAILABLE)
    CS_LOG(CS_LOG_ERROR, "store: etcd authentication as the configured user failed");
  cs_json_wipe_delete(j);
  cs_buf_wipe(&b);
  return e;
}

/* ------------------------------------------------------------ encodings */

enum cs_err cs_etcd_b64(struct cs_buf *b, const void *data, size_t len)
{
  const uint8_t *p = data;
  char chunk[4097];

  /* Whole 3-byte groups per chunk, so only the last one pads. */
  while (len > 0) {
    size_t n = len < 3072 ? len : 3072;
    enum cs_err e;

    sodium_bin2base64(chunk, sizeof chunk, p, n, sodium_base64_VARIANT_ORIGINAL);
    e = cs_buf_append(b, chunk, strlen(chunk));
    if (e != CS_OK)
      return e;
    p += n;
    len -= n;
  }
  return CS_OK;
}

enum cs_err cs_etcd_unb64(const cJSON *s, uint8_t **out, size_t *len)
{
  size_t in = 0, got = 0;
  uint8_t *buf;

  if (s && !cJSON_IsString(s))
    return CS_ERR_STORE;
  if (s)
    in = strlen(s->valuestring);
  buf = malloc(in / 4 * 3 + 3);
  if (!buf)
    return CS_ERR_NOMEM;
  if (in && sodium_base642bin(buf, in / 4 * 3 + 2, s->valuestring, in, NULL, &got, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
    free(buf);
    CS_LOG(CS_LOG_ERROR, "store: etcd sent bytes that are not base64");
    return CS_ERR_STORE;
  }
  buf[got] = 0;
  *out = buf;
  *len = got;
  return CS_OK;
}

int64_t cs_etcd_int(const cJSON *obj, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  char *end;
  long long n;

  if (!v)
    return 0;
  if (cJSON_IsNumber(v))
    return v->valuedouble >= 0 && v->valuedouble < 9e15 ? (int64_t)v->valuedouble : -1;
  if (!cJSON_IsString(v) || !*v->valuestring)
    return -1;
  errno = 0;
  n = strtoll(v->valuestring, &end, 10);
  return errno || *end || n < 0 ? -1 : (int64_t)n;
}
