/* The one outbound HTTP client (DESIGN "Providers and brokering"): every
 * call credstore makes (STS, IMDS, Entra, Google, IBM IAM, Kubernetes API
 * servers, webhooks, credential-process) is set up here, the same way: http
 * and https only, no redirects, TLS verified against the system store plus
 * --outbound-ca-file, bounded response bodies read into one allocation,
 * header lines wiped, and a rule for where each kind of call may connect
 * that is checked on the address libcurl is about to connect to.
 *
 * One easy handle per exchange: a fresh handle never carries state
 * (credentials, cookies, a half-read connection) from one identity's call
 * into another's, and these calls are rare (caches answer most resolves). */
#include "prov_internal.h"

#include "crypto.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYSTEM_BUNDLE_MAX ((size_t)8 << 20)
#define EXTRA_CA_MAX ((size_t)1 << 20)
#define DEFAULT_TIMEOUT_MS 5000L

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;

static void curl_init_once(void) { curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static enum cs_err global_init(void)
{
  pthread_once(&curl_once, curl_init_once);
  return curl_rc == CURLE_OK ? CS_OK : CS_ERR_INTERNAL;
}

/* ------------------------------------------------------------ the client */

struct cs_http_client {
  long timeout_ms;
  char *ca_blob; /* system bundle + extra CA file; NULL: libcurl's defaults */
  size_t ca_len;
};

static enum cs_err read_file(const char *path, size_t max, char **out, size_t *len)
{
  struct cs_buf b;
  char chunk[16384];
  size_t n;
  FILE *f = fopen(path, "rb");
  enum cs_err e = CS_OK;

  if (!f)
    return CS_ERR_IO;
  cs_buf_init(&b, max);
  while (!e && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
    e = cs_buf_append(&b, chunk, n);
  if (!e && ferror(f))
    e = CS_ERR_IO;
  fclose(f);
  if (e) {
    cs_buf_free(&b);
    return e;
  }
  *out = b.data ? b.data : strdup("");
  *len = b.len;
  return *out ? CS_OK : CS_ERR_NOMEM;
}

/* libcurl's CURLOPT_CAINFO_BLOB replaces the default bundle, so the extra
 * CAs are appended to a copy of it: the system's trust stays, plus these. */
static enum cs_err build_ca_blob(struct cs_http_client *c, const char *extra_path, char *err,
                                 size_t errlen)
{
  char *sys = NULL, *extra = NULL, *sys_path = NULL;
  size_t sys_len = 0, extra_len = 0, count = 0;
  const char *why = "";
  CURL *h = curl_easy_init();
  enum cs_err e;

  if (!h)
    return CS_ERR_INTERNAL;
  e = read_file(extra_path, EXTRA_CA_MAX, &extra, &extra_len);
  if (e == CS_OK && (e = cs_pem_certs_count(extra, extra_len, EXTRA_CA_MAX, &count, &why)))
    why = why[0] ? why : "not PEM certificates";
  if (e) {
    snprintf(err, errlen, "--outbound-ca-file %s: %s", extra_path,
             e == CS_ERR_IO          ? strerror(errno)
             : e == CS_ERR_TOO_LARGE ? "larger than 1 MiB"
                                     : why);
    e = e == CS_ERR_NOMEM ? e : CS_ERR_INVALID;
    goto out;
  }
  if (curl_easy_getinfo(h, CURLINFO_CAINFO, &sys_path) != CURLE_OK || !sys_path ||
      read_file(sys_path, SYSTEM_BUNDLE_MAX, &sys, &sys_len) != CS_OK)
    CS_LOG(CS_LOG_WARN,
           "outbound TLS: no readable system CA bundle; trusting only the %zu "
           "certificate(s) of --outbound-ca-file",
           count);
  e = CS_ERR_NOMEM;
  if (!(c->ca_blob = malloc(sys_len + extra_len + 2)))
    goto out;
  memcpy(c->ca_blob, sys ? sys : "", sys_len);
  c->ca_blob[sys_len] = '\n';
  memcpy(c->ca_blob + sys_len + 1, extra, extra_len);
  c->ca_len = sys_len + 1 + extra_len;
  c->ca_blob[c->ca_len] = '\0';
  CS_LOG(CS_LOG_INFO, "outbound TLS: trusting the system CAs and %zu from %s", count, extra_path);
  e = CS_OK;
out:
  free(sys);
  free(extra);
  curl_easy_cleanup(h);
  return e;
}

enum cs_err cs_http_client_create(const struct cs_http_client_config *cfg,
                                  struct cs_http_client **out, char *err, size_t errlen)
{
  struct cs_http_client *c;
  enum cs_err e;

  if (errlen)
    err[0] = '\0';
  if (global_init() != CS_OK)
    return CS_ERR_INTERNAL;
  if (!(c = calloc(1, sizeof *c)))
    return CS_ERR_NOMEM;
  c->timeout_ms = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
  if (cfg && cfg->extra_ca_file && cfg->extra_ca_file[0] &&
      (e = build_ca_blob(c, cfg->extra_ca_file, err, errlen)) != CS_OK) {
    cs_http_client_free(c);
    return e;
  }
  *out = c;
  return CS_OK;
}

void cs_http_client_free(struct cs_http_client *c)
{
  if (!c)
    return;
  free(c->ca_blob);
  free(c);
}

/* --------------------------------------------------- where calls may go */

static bool addr_loopback(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family != AF_INET6)
    return false;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Where instance metadata lives: link-local, or AWS's IPv6 address. */
static bool addr_metadata(const struct sockaddr *sa)
{
  static const uint8_t aws6[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x54};
  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
    return (a >> 16) == ((169u << 8) | 254u);
  }
  if (sa->sa_family != AF_INET6)
    return false;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
  return IN6_IS_ADDR_LINKLOCAL(a) || memcmp(a->s6_addr, aws6, 16) == 0 ||
         (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 169 && a->s6_addr[13] == 254);
}

bool cs_http_host_is_loopback(const char *host)
{
  struct in_addr a4;
  struct in6_addr a6;

  if (strcmp(host, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
  return false;
}

/* ------------------------------------------------------------ transfers */

struct transfer {
  CURL *easy;
  struct curl_slist *headers;
  struct curl_slist *connect_to;
  enum cs_http_reach reach;
  const struct cs_http_policy *policy; /* judged at connect time; NULL: none */
  bool loopback_only;                  /* plain http (or unverified TLS) on an API call */
  char host[CS_HTTP_HOST_MAX + 1];     /* the URL's, normalised, for the policy's name rules */
  unsigned tried;                      /* addresses let through */
  char refused[INET6_ADDRSTRLEN];      /* the last address refused, or "" */
  char errbuf[CURL_ERROR_SIZE];
  bool discard;
  char *body; /* one allocation of max + 1, made on the first byte */
  size_t len, max;
  bool too_big;
  void *tag;
  struct transfer *next; /* in its batch */
};

/* The body goes into one allocation of the full cap, never realloc'd, so
 * no copy of a secret is left behind in freed memory. */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
  struct transfer *t = arg;
  size_t total = size * n;

  if (t->discard)
    return total;
  if (total > t->max - t->len) {
    t->too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (!t->body && !(t->body = malloc(t->max + 1)))
    return 0;
  memcpy(t->body + t->len, p, total);
  t->len += total;
  t->body[t->len] = '\0';
  return total;
}

static bool addr_allowed(const struct transfer *t, const struct sockaddr *sa)
{
  if (t->reach == CS_HTTP_METADATA)
    return addr_metadata(sa) || addr_loopback(sa);
  if (t->loopback_only && !addr_loopback(sa))
    return false;
  return !t->policy || cs_http_policy_allows_addr(t->policy, t->host, sa);
}

/* Runs after libcurl's own resolution, for each address it tries, so
 * literal spellings, names and DNS rebinding all meet the rule at the
 * destination itself. */
static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
  struct transfer *t = arg;
  (void)purpose;
  if (!addr_allowed(t, &a->addr)) {
    const void *raw = a->family == AF_INET6
                          ? (const void *)&((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr
                          : (const void *)&((struct sockaddr_in *)(void *)&a->addr)->sin_addr;
    if (!inet_ntop(a->family, raw, t->refused, sizeof t->refused))
      snprintf(t->refused, sizeof t->refused, "?");
    return CURL_SOCKET_BAD;
  }
  t->tried++;
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void transfer_free(struct transfer *t)
{
  if (!t)
    return;
  if (t->easy)
    curl_easy_cleanup(t->easy);
  /* Header lines carry tokens, access keys and IMDS tokens. */
  for (struct curl_slist *i = t->headers; i; i = i->next)
    cs_memzero(i->data, strlen(i->data));
  curl_slist_free_all(t->headers);
  curl_slist_free_all(t->connect_to);
  if (t->body) {
    cs_memzero(t->body, t->len);
    free(t->body);
  }
  free(t);
}

static enum cs_err add_header(struct transfer *t, const char *line)
{
  struct curl_slist *l = curl_slist_append(t->headers, line);
  if (!l)
    return CS_ERR_NOMEM;
  t->headers = l;
  return CS_OK;
}

#define SETOPT(opt, val)                                                                           \
  do {                                                                                             \
    if (curl_easy_setopt(c, (opt), (val)) != CURLE_OK)                                             \
      return CS_ERR_INTERNAL;                                                                      \
  } while (0)

static enum cs_err set_method(CURL *c, const struct cs_http_req *req)
{
  if (strcmp(req->method, "GET") == 0)
    return CS_OK;
  /* Copied: a batch outlives the caller's body; the copy is libcurl's. */
  SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  SETOPT(req->copy_body ? CURLOPT_COPYPOSTFIELDS : CURLOPT_POSTFIELDS, req->body ? req->body : "");
  if (strcmp(req->method, "POST") != 0)
    SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
  return CS_OK;
}

/* Trust and client identity. A call's own CA (a kubeconfig's) replaces
 * every other trust, as kubectl does; otherwise the client's bundle. */
static enum cs_err set_tls(CURL *c, const struct cs_http_client *client,
                           const struct cs_http_req *req, bool loopback_host)
{
  struct curl_blob ca = {0}, cert, key;

  if (req->ca_pem) {
    ca = (struct curl_blob){(void *)(uintptr_t)req->ca_pem, req->ca_pem_len, CURL_BLOB_COPY};
  } else if (client && client->ca_blob) {
    ca = (struct curl_blob){client->ca_blob, client->ca_len, CURL_BLOB_NOCOPY};
  }
  if (ca.data) {
    SETOPT(CURLOPT_CAINFO_BLOB, &ca);
    SETOPT(CURLOPT_CAPATH, (char *)NULL); /* exactly the blob, not also /etc/ssl/certs */
  }
  if (req->cert_pem && req->key_pem) {
    cert = (struct curl_blob){(void *)(uintptr_t)req->cert_pem, req->cert_pem_len, CURL_BLOB_COPY};
    /* Not copied: libcurl would free its copy of the key unwiped. */
    key = (struct curl_blob){(void *)(uintptr_t)req->key_pem, req->key_pem_len, CURL_BLOB_NOCOPY};
    SETOPT(CURLOPT_SSLCERT_BLOB, &cert);
    SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
    SETOPT(CURLOPT_SSLKEY_BLOB, &key);
    SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (req->insecure_loopback && loopback_host) {
    SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return CS_OK;
}

static enum cs_err configure(struct transfer *t, const struct cs_http_client *client,
                             const struct cs_http_req *req, bool https, bool loopback_host)
{
  CURL *c = t->easy;
  long timeout = req->timeout_ms > 0 ? req->timeout_ms
                 : client            ? client->timeout_ms
                                     : DEFAULT_TIMEOUT_MS;
  enum cs_err e;

  SETOPT(CURLOPT_URL, req->url);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_TIMEOUT_MS, timeout);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, timeout);
  SETOPT(CURLOPT_USERAGENT, "credstore");
  SETOPT(CURLOPT_WRITEFUNCTION, on_data);
  SETOPT(CURLOPT_WRITEDATA, t);
  SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
  SETOPT(CURLOPT_PRIVATE, t);
  if (t->headers)
    SETOPT(CURLOPT_HTTPHEADER, t->headers);
  if (req->connect_to) {
    if (!(t->connect_to = curl_slist_append(NULL, req->connect_to)))
      return CS_ERR_NOMEM;
    SETOPT(CURLOPT_CONNECT_TO, t->connect_to);
  }
  if ((e = set_method(c, req)) || (e = set_tls(c, client, req, loopback_host)))
    return e;
  if (req->sigv4) {
    SETOPT(CURLOPT_AWS_SIGV4, req->sigv4);
    SETOPT(CURLOPT_USERNAME, req->user);
    SETOPT(CURLOPT_PASSWORD, req->password);
  } else if (req->user) {
    SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    SETOPT(CURLOPT_USERNAME, req->user);
    SETOPT(CURLOPT_PASSWORD, req->password ? req->password : "");
  }
  /* A proxy would be the address connected to, and would reach the target
   * for us: only API calls over verified https, and credential-process, may
   * use the environment's proxy. */
  if (!(req->reach == CS_HTTP_ANY ||
        (req->reach == CS_HTTP_API && https && !t->policy && !t->loopback_only)))
    SETOPT(CURLOPT_PROXY, "");
  if (req->reach != CS_HTTP_ANY) {
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_checked);
    SETOPT(CURLOPT_OPENSOCKETDATA, t);
  }
  return CS_OK;
}
#undef SETOPT

/* The URL-level half of the reach rules; the address-level half is
 * open_checked. */
static enum cs_err check_reach(struct transfer *t, const struct cs_http_req *req, bool *https,
                               bool *loopback_host, const char **why)
{
  char target[CS_HTTP_TARGET_MAX];
  const struct cs_http_policy *p = req->reach == CS_HTTP_WEBHOOK ? req->policy : NULL;
  enum cs_err e = cs_http_check_url_host(p, req->url, target, t->host, why);

  if (e == CS_ERR_INVALID && req->reach != CS_HTTP_WEBHOOK)
    *why = "not an http:// or https:// URL with a host and without a user name or password";
  if (e)
    return e;
  *https = strncmp(target, "https:", 6) == 0;
  *loopback_host = cs_http_host_is_loopback(t->host);
  if (req->reach == CS_HTTP_API) {
    if (!*https && !*loopback_host) {
      *why = "plain http is accepted only to loopback addresses; use https";
      return CS_ERR_FORBIDDEN;
    }
    t->loopback_only = !*https || (req->insecure_loopback && *loopback_host);
  }
  return CS_OK;
}

static enum cs_err transfer_new(const struct cs_http_client *client, const struct cs_http_req *req,
                                struct transfer **out, const char **why)
{
  struct transfer *t = NULL;
  bool https = false, loopback_host = false;
  enum cs_err e;

  *why = "";
  if (global_init() != CS_OK)
    return CS_ERR_INTERNAL;
  if (!req->url || !req->method || (req->reach == CS_HTTP_WEBHOOK && !req->policy))
    return CS_ERR_INTERNAL;
  if (!(t = calloc(1, sizeof *t)))
    return CS_ERR_NOMEM;
  t->reach = req->reach;
  t->policy = req->policy;
  t->discard = req->discard;
  t->max = req->max_response ? req->max_response : CS_HTTP_BODY_MAX;
  if ((e = check_reach(t, req, &https, &loopback_host, why)))
    goto out;
  for (size_t i = 0; req->headers && req->headers[i]; i++)
    if ((e = add_header(t, req->headers[i])))
      goto out;
  e = CS_ERR_INTERNAL;
  if (!(t->easy = curl_easy_init()) || (e = configure(t, client, req, https, loopback_host)))
    goto out;
  *out = t;
  t = NULL;
out:
  transfer_free(t);
  return e;
}

static enum cs_http_fail classify(CURLcode cc)
{
  switch (cc) {
  case CURLE_OPERATION_TIMEDOUT:
    return CS_HTTP_FAIL_TIMEOUT;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CONNECT_ERROR:
    return CS_HTTP_FAIL_TLS;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
    return CS_HTTP_FAIL_CONNECT;
  default:
    return CS_HTTP_FAIL_OTHER;
  }
}

static void result_of(struct transfer *t, CURLcode cc, struct cs_http_resp *r)
{
  memset(r, 0, sizeof *r);
  if (cc == CURLE_OK) {
    r->e = CS_OK;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->status);
    return;
  }
  r->e = CS_ERR_UPSTREAM;
  r->fail = classify(cc);
  if (t->refused[0] && !t->tried) {
    r->e = CS_ERR_FORBIDDEN;
    r->fail = CS_HTTP_FAIL_REFUSED;
    snprintf(r->error, sizeof r->error, "refused: %s is not a permitted %s", t->refused,
             t->reach == CS_HTTP_WEBHOOK    ? "webhook target"
             : t->reach == CS_HTTP_METADATA ? "metadata address (link-local or loopback only)"
                                            : "address for this call (plain http and "
                                              "unverified TLS go to loopback only)");
  } else if (t->too_big) {
    r->fail = CS_HTTP_FAIL_TOO_LARGE;
    snprintf(r->error, sizeof r->error, "response body larger than %zu bytes", t->max);
  } else {
    snprintf(r->error, sizeof r->error, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(cc));
  }
  /* Retrying cannot fix a refusal, a certificate or a URL. */
  r->permanent = r->fail == CS_HTTP_FAIL_REFUSED || r->fail == CS_HTTP_FAIL_TLS ||
                 cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL;
}

enum cs_err cs_http_do(const struct cs_http_client *c, const struct cs_http_req *req,
                       struct cs_http_resp *resp)
{
  struct transfer *t;
  const char *why;
  enum cs_err e;

  memset(resp, 0, sizeof *resp);
  if ((e = transfer_new(c, req, &t, &why))) {
    resp->e = e;
    resp->fail = e == CS_ERR_FORBIDDEN ? CS_HTTP_FAIL_REFUSED : CS_HTTP_FAIL_OTHER;
    resp->permanent = true;
    snprintf(resp->error, sizeof resp->error, "%s", why[0] ? why : cs_err_message(e));
    return e;
  }
  result_of(t, curl_easy_perform(t->easy), resp);
  if (resp->e == CS_OK) {
    resp->body = t->body ? t->body : strdup("");
    resp->len = t->len;
    t->body = NULL;
    if (!resp->body)
      resp->e = CS_ERR_NOMEM;
  }
  transfer_free(t);
  return resp->e;
}

void cs_http_resp_wipe(struct cs_http_resp *r)
{
  if (!r)
    return;
  if (r->body) {
    cs_memzero(r->body, r->len);
    free(r->body);
  }
  r->body = NULL;
  r->len = 0;
}

enum cs_err cs_http_server_name_url(const char *url, const char *name, char *out, size_t cap,
                                    char *connect_to, size_t ct_cap)
{
  char target[CS_HTTP_TARGET_MAX], host[CS_HTTP_HOST_MAX + 1];
  const char *why, *authority;
  char *rewritten = NULL;
  CURLU *u = NULL;
  enum cs_err e = CS_ERR_INVALID;

  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '.'))
      return CS_ERR_INVALID;
  if (!name[0] || strlen(name) > CS_HTTP_HOST_MAX ||
      cs_http_check_url_host(NULL, url, target, host, &why) != CS_OK)
    return CS_ERR_INVALID;
  authority = strstr(target, "://") + 3; /* host:port, IPv6 in brackets */
  if (!(u = curl_url()))
    return CS_ERR_NOMEM;
  if (curl_url_set(u, CURLUPART_URL, url, 0) || curl_url_set(u, CURLUPART_HOST, name, 0) ||
      curl_url_get(u, CURLUPART_URL, &rewritten, 0))
    goto out;
  e = CS_ERR_TOO_LARGE;
  if ((size_t)snprintf(out, cap, "%s", rewritten) >= cap ||
      (size_t)snprintf(connect_to, ct_cap, "%s:%s:%s", name, strrchr(authority, ':') + 1,
                       authority) >= ct_cap)
    goto out;
  e = CS_OK;
out:
  curl_free(rewritten);
  curl_url_cleanup(u);
  return e;
}

enum cs_err cs_http_post_json(const char *url, const char *const *headers, const char *body,
                              size_t len, long timeout_ms, long *status, struct cs_buf *resp)
{
  const char *lines[34] = {"Content-Type: application/json"};
  struct cs_http_req req = {.method = "POST",
                            .url = url,
                            .reach = CS_HTTP_ANY,
                            .headers = lines,
                            .body = body,
                            .body_len = len,
                            .timeout_ms = timeout_ms,
                            .discard = !resp,
                            .max_response = resp ? resp->max : 0};
  struct cs_http_resp r;
  size_t n = 1;
  enum cs_err e;

  for (; headers && headers[n - 1]; n++)
    if (n == sizeof lines / sizeof lines[0] - 1)
      return CS_ERR_INVALID;
    else
      lines[n] = headers[n - 1];
  lines[n] = NULL;
  if ((e = cs_http_do(NULL, &req, &r)) == CS_OK && resp && r.len)
    e = cs_buf_append(resp, r.body, r.len);
  if (e == CS_OK)
    *status = r.status;
  cs_http_resp_wipe(&r);
  return e;
}

/* ------------------------------------------------------------------ batch */

struct cs_http_batch {
  CURLM *multi;
  const struct cs_http_client *client;
  const struct cs_http_policy *policy;
  struct transfer *list; /* in flight */
};

enum cs_err cs_http_batch_open(const struct cs_http_client *client,
                               const struct cs_http_policy *policy, struct cs_http_batch **out)
{
  struct cs_http_batch *b;

  if (global_init() != CS_OK)
    return CS_ERR_INTERNAL;
  if (!(b = calloc(1, sizeof *b)))
    return CS_ERR_NOMEM;
  if (!(b->multi = curl_multi_init())) {
    free(b);
    return CS_ERR_INTERNAL;
  }
  b->client = client;
  b->policy = policy;
  *out = b;
  return CS_OK;
}

enum cs_err cs_http_batch_create(const struct cs_http_policy *policy, struct cs_http_batch **out)
{
  return cs_http_batch_open(NULL, policy, out);
}

enum cs_err cs_http_batch_add(struct cs_http_batch *b, const struct cs_http_post *post, void *tag,
                              const char **why)
{
  const char *lines[34] = {"Content-Type: application/json"};
  struct cs_http_req req = {.method = "POST",
                            .url = post->url,
                            .reach = CS_HTTP_WEBHOOK,
                            .policy = b->policy,
                            .headers = lines,
                            .body = post->body,
                            .body_len = post->len,
                            .copy_body = true,
                            .timeout_ms = post->timeout_ms,
                            .discard = true};
  struct transfer *t;
  size_t n = 1;
  enum cs_err e;

  *why = "";
  for (; post->headers && post->headers[n - 1]; n++)
    if (n == sizeof lines / sizeof lines[0] - 1)
      return CS_ERR_INTERNAL;
    else
      lines[n] = post->headers[n - 1];
  lines[n] = NULL;
  if ((e = transfer_new(b->client, &req, &t, why)))
    return e;
  if (curl_multi_add_handle(b->multi, t->easy) != CURLM_OK) {
    transfer_free(t);
    return CS_ERR_INTERNAL;
  }
  t->tag = tag;
  t->next = b->list;
  b->list = t;
  return CS_OK;
}

static void unlink_transfer(struct cs_http_batch *b, struct transfer *t)
{
  for (struct transfer **p = &b->list; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  curl_multi_remove_handle(b->multi, t->easy);
}

enum cs_err cs_http_batch_run(struct cs_http_batch *b, long wait_ms, cs_http_done_fn done,
                              void *arg)
{
  struct cs_http_resp full;
  struct cs_http_result r;
  CURLMsg *m;
  int running, left;

  if (curl_multi_perform(b->multi, &running) != CURLM_OK ||
      curl_multi_poll(b->multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK ||
      curl_multi_perform(b->multi, &running) != CURLM_OK)
    return CS_ERR_INTERNAL;
  while ((m = curl_multi_info_read(b->multi, &left))) {
    struct transfer *t = NULL;
    if (m->msg != CURLMSG_DONE ||
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t) != CURLE_OK || !t)
      continue;
    result_of(t, m->data.result, &full); /* m is invalid once the handle is removed */
    r.e = full.e;
    r.status = full.status;
    memcpy(r.error, full.error, sizeof r.error);
    unlink_transfer(b, t);
    done(t->tag, &r, arg);
    transfer_free(t);
  }
  return CS_OK;
}

void cs_http_batch_wakeup(struct cs_http_batch *b)
{
  if (b)
    curl_multi_wakeup(b->multi);
}

void cs_http_batch_free(struct cs_http_batch *b)
{
  if (!b)
    return;
  while (b->list) {
    struct transfer *t = b->list;
    unlink_transfer(b, t);
    transfer_free(t);
  }
  curl_multi_cleanup(b->multi);
  free(b);
}
