/* One libcurl easy handle per exchange: STS and IMDS calls are rare (the
 * cache answers almost every resolve), so a pool would buy little and a
 * fresh handle never carries state (credentials, cookies, a half-read
 * connection) from one identity's call into another's. */
#include "aws_internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

enum cs_err cs_aws_http_global_init(void)
{
  pthread_once(&global_once, global_init);
  return global_rc == CURLE_OK ? CS_OK : CS_ERR_INTERNAL;
}

/* The body is read into one allocation of the full cap, never realloc'd,
 * so no copy of a secret is left behind in freed memory. */
struct sink {
  char *data;
  size_t len;
  bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
  struct sink *s = ud;
  size_t total = size * n;

  if (total > CS_AWS_BODY_MAX - s->len) {
    s->too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  memcpy(s->data + s->len, p, total);
  s->len += total;
  s->data[s->len] = '\0';
  return total;
}

/* Header lines can hold a session token or an IMDS token: wipe them. */
static void slist_free_wiped(struct curl_slist *l)
{
  for (struct curl_slist *i = l; i; i = i->next)
    cs_memzero(i->data, strlen(i->data));
  curl_slist_free_all(l);
}

static void fail_transport(struct cs_aws_http_resp *resp, const char *what, const char *detail)
{
  snprintf(resp->error, sizeof resp->error, "%s%s%s", what, detail[0] ? ": " : "", detail);
}

#define SETOPT(h, opt, val)                                                                        \
  do {                                                                                             \
    if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK)                                           \
      goto setopt_failed;                                                                          \
  } while (0)

/* Every option of @p req on @p h. @return CS_ERR_INTERNAL (libcurl refused one). */
static enum cs_err set_options(CURL *h, const struct cs_aws_http_req *req,
                               struct curl_slist *headers, struct sink *sink, char *errbuf)
{
  long timeout = req->timeout_ms > 0 ? req->timeout_ms : 5000;

  SETOPT(h, CURLOPT_URL, req->url);
  SETOPT(h, CURLOPT_NOSIGNAL, 1L);
  SETOPT(h, CURLOPT_TIMEOUT_MS, timeout);
  SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
  SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
  SETOPT(h, CURLOPT_USERAGENT, "credstore");
  SETOPT(h, CURLOPT_WRITEFUNCTION, on_data);
  SETOPT(h, CURLOPT_WRITEDATA, sink);
  if (req->direct)
    SETOPT(h, CURLOPT_PROXY, "");
  if (headers)
    SETOPT(h, CURLOPT_HTTPHEADER, headers);
  if (strcmp(req->method, "GET") != 0) {
    SETOPT(h, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    SETOPT(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    if (strcmp(req->method, "POST") != 0)
      SETOPT(h, CURLOPT_CUSTOMREQUEST, req->method);
  }
  if (req->sigv4) {
    SETOPT(h, CURLOPT_AWS_SIGV4, req->sigv4);
    SETOPT(h, CURLOPT_USERNAME, req->user);
    SETOPT(h, CURLOPT_PASSWORD, req->password);
  }
  return CS_OK;
setopt_failed:
  return CS_ERR_INTERNAL;
}

/* A failed transfer: what went wrong, and whether retrying could help. */
static void transfer_failed(struct cs_aws_http_resp *resp, CURLcode cc, const struct sink *sink,
                            const char *errbuf)
{
  if (sink->too_big)
    fail_transport(resp, "response body larger than 64 KiB", "");
  else
    fail_transport(resp, errbuf[0] ? errbuf : curl_easy_strerror(cc), "");
  resp->permanent = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                    cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ||
                    cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CONNECT_ERROR;
}

enum cs_err cs_aws_http(const struct cs_aws_http_req *req, struct cs_aws_http_resp *resp)
{
  char errbuf[CURL_ERROR_SIZE] = "";
  struct sink sink = {0};
  struct curl_slist *headers = NULL, *tmp;
  CURL *h = NULL;
  CURLcode cc;
  enum cs_err e = CS_ERR_NOMEM;

  memset(resp, 0, sizeof *resp);
  if (!(sink.data = malloc(CS_AWS_BODY_MAX + 1)))
    goto out;
  sink.data[0] = '\0';
  for (const char *const *hl = req->headers; hl && *hl; hl++) {
    if (!(tmp = curl_slist_append(headers, *hl)))
      goto out;
    headers = tmp;
  }
  e = CS_ERR_INTERNAL;
  if (!(h = curl_easy_init()))
    goto out;
  if (set_options(h, req, headers, &sink, errbuf)) {
    fail_transport(resp, "libcurl refused an option", "");
    goto out;
  }
  if ((cc = curl_easy_perform(h)) != CURLE_OK) {
    transfer_failed(resp, cc, &sink, errbuf);
    e = CS_ERR_UPSTREAM;
    goto out;
  }
  if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status) != CURLE_OK)
    goto out;
  resp->body = sink.data;
  resp->len = sink.len;
  sink.data = NULL;
  e = CS_OK;
out:
  if (sink.data) {
    cs_memzero(sink.data, sink.len);
    free(sink.data);
  }
  if (h)
    curl_easy_cleanup(h);
  slist_free_wiped(headers);
  return e;
}

void cs_aws_http_resp_wipe(struct cs_aws_http_resp *resp)
{
  if (!resp)
    return;
  if (resp->body) {
    cs_memzero(resp->body, resp->len);
    free(resp->body);
  }
  resp->body = NULL;
  resp->len = 0;
}
