/* The JSON POST client: credential-process (one blocking call) and webhook
 * delivery (many at once in a multi handle). Both set a transfer up the
 * same way, here; a policy, when given, judges every address libcurl is
 * about to connect to. */
#include "prov_internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;

static void curl_init_once(void) { curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

struct transfer {
  CURL *easy;
  struct curl_slist *headers;
  const struct cs_http_policy *policy; /* NULL: any address, proxies as configured */
  char host[CS_HTTP_HOST_MAX + 1];     /* the URL's, for the policy's name rules */
  unsigned tried;                      /* addresses the policy let through */
  char refused[INET6_ADDRSTRLEN];      /* the last address it refused, or "" */
  char errbuf[CURL_ERROR_SIZE];
  struct cs_buf *resp; /* NULL: discard the body */
  void *tag;
  struct transfer *next; /* in its batch */
};

static size_t keep(char *p, size_t size, size_t n, void *arg)
{
  struct transfer *t = arg;
  if (t->resp && cs_buf_append(t->resp, p, size * n))
    return 0; /* over the bound: CURLE_WRITE_ERROR */
  return size * n;
}

/* Runs after libcurl's own resolution, for each address it tries, so
 * literal spellings, names and DNS rebinding all meet the policy at the
 * destination itself. */
static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
  struct transfer *t = arg;
  (void)purpose;
  if (!cs_http_policy_allows_addr(t->policy, t->host, &a->addr)) {
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

/* Header lines can carry an access key (credential-process): wipe them. */
static void transfer_free(struct transfer *t)
{
  if (!t)
    return;
  if (t->easy)
    curl_easy_cleanup(t->easy);
  for (struct curl_slist *i = t->headers; i; i = i->next)
    cs_memzero(i->data, strlen(i->data));
  curl_slist_free_all(t->headers);
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
      goto out;                                                                                    \
  } while (0)

static enum cs_err configure(struct transfer *t, const struct cs_http_post *req)
{
  CURL *c = t->easy;
  SETOPT(CURLOPT_URL, req->url);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
  SETOPT(CURLOPT_USERAGENT, "credstore");
  SETOPT(CURLOPT_HTTPHEADER, t->headers);
  SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
  SETOPT(CURLOPT_COPYPOSTFIELDS, req->body);
  SETOPT(CURLOPT_WRITEFUNCTION, keep);
  SETOPT(CURLOPT_WRITEDATA, t);
  SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
  SETOPT(CURLOPT_PRIVATE, t);
  if (t->policy) {
    /* A proxy would be the address connected to, and would reach the target for us. */
    SETOPT(CURLOPT_PROXY, "");
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_checked);
    SETOPT(CURLOPT_OPENSOCKETDATA, t);
  }
  return CS_OK;
out:
  return CS_ERR_INTERNAL;
}

static enum cs_err transfer_new(const struct cs_http_policy *policy, const struct cs_http_post *req,
                                struct cs_buf *resp, struct transfer **out, const char **why)
{
  struct transfer *t = NULL;
  enum cs_err e;

  pthread_once(&curl_once, curl_init_once);
  if (curl_rc != CURLE_OK)
    return CS_ERR_INTERNAL;
  if (!(t = calloc(1, sizeof *t)))
    return CS_ERR_NOMEM;
  t->policy = policy;
  t->resp = resp;
  if ((e = cs_http_check_url_host(policy, req->url, NULL, t->host, why)) ||
      (e = add_header(t, "Content-Type: application/json")))
    goto out;
  for (size_t i = 0; req->headers && req->headers[i]; i++)
    if ((e = add_header(t, req->headers[i])))
      goto out;
  e = CS_ERR_INTERNAL;
  if (!(t->easy = curl_easy_init()) || (e = configure(t, req)))
    goto out;
  *out = t;
  t = NULL;
out:
  transfer_free(t);
  return e;
}

static void result_of(struct transfer *t, CURLcode cc, struct cs_http_result *r)
{
  memset(r, 0, sizeof *r);
  if (cc == CURLE_OK) {
    r->e = CS_OK;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->status);
  } else if (t->refused[0] && !t->tried) {
    r->e = CS_ERR_FORBIDDEN;
    snprintf(r->error, sizeof r->error, "refused: %s is not a permitted webhook target",
             t->refused);
  } else {
    r->e = CS_ERR_UPSTREAM;
    snprintf(r->error, sizeof r->error, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(cc));
  }
}

enum cs_err cs_http_post_json(const char *url, const char *const *headers, const char *body,
                              size_t len, long timeout_ms, long *status, struct cs_buf *resp)
{
  struct cs_http_post req = {url, headers, body, len, timeout_ms};
  struct cs_http_result r;
  struct transfer *t;
  const char *why;
  enum cs_err e;

  if ((e = transfer_new(NULL, &req, resp, &t, &why)))
    return e;
  result_of(t, curl_easy_perform(t->easy), &r);
  transfer_free(t);
  if (r.e == CS_OK)
    *status = r.status;
  return r.e;
}

/* ------------------------------------------------------------------ batch */

struct cs_http_batch {
  CURLM *multi;
  const struct cs_http_policy *policy;
  struct transfer *list; /* in flight */
};

enum cs_err cs_http_batch_create(const struct cs_http_policy *policy, struct cs_http_batch **out)
{
  struct cs_http_batch *b;

  pthread_once(&curl_once, curl_init_once);
  if (curl_rc != CURLE_OK)
    return CS_ERR_INTERNAL;
  if (!(b = calloc(1, sizeof *b)))
    return CS_ERR_NOMEM;
  if (!(b->multi = curl_multi_init())) {
    free(b);
    return CS_ERR_INTERNAL;
  }
  b->policy = policy;
  *out = b;
  return CS_OK;
}

enum cs_err cs_http_batch_add(struct cs_http_batch *b, const struct cs_http_post *req, void *tag,
                              const char **why)
{
  struct transfer *t;
  enum cs_err e;

  *why = "";
  if ((e = transfer_new(b->policy, req, NULL, &t, why)))
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
    result_of(t, m->data.result, &r); /* m is invalid once the handle is removed */
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
