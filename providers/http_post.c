/* A plain JSON POST: webhook deliveries and credential-process. */
#include "providers.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Keep the body when asked, within its bound; a body past it fails the call. */
static size_t keep(char *p, size_t size, size_t n, void *arg)
{
  struct cs_buf *b = arg;
  if (b && cs_buf_append(b, p, size * n))
    return 0;
  return size * n;
}

enum cs_err cs_http_post_json(const char *url, const char *const *headers, const char *body,
                              size_t len, long timeout_ms, long *status, struct cs_buf *resp)
{
  struct curl_slist *hl = NULL, *tmp;
  enum cs_err e = CS_ERR_UPSTREAM;
  CURL *c;

  if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
    return CS_ERR_INVALID;
  pthread_once(&curl_once, curl_init_once);
  if (!(c = curl_easy_init()))
    return CS_ERR_NOMEM;
  if (!(hl = curl_slist_append(NULL, "Content-Type: application/json")))
    goto out;
  for (size_t i = 0; headers && headers[i]; i++) {
    if (!(tmp = curl_slist_append(hl, headers[i])))
      goto out;
    hl = tmp;
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
  if (curl_easy_perform(c) == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    e = CS_OK;
  }
out:
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  return e;
}
