/* "Test connection" of the types that only keep a secret (API.md §8:
 * basic, apiToken, certificate): nothing to prove without a url; with one,
 * an authenticated GET of it. Each such type's test builds a struct
 * cs_url_auth from its opened secret and calls cs_prov_test_url. */
#include "prov_internal.h"

#include <string.h>

#define HEADER_MAX (CS_PROV_PLAIN_MAX + 64)

static const char *status_code(long status)
{
  switch (status) {
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "NotFound";
  default:
    return "UnexpectedStatus";
  }
}

/* The GET itself; @p target ("https://host:port", no path or query, which
 * may hold secrets) is what messages name. */
static enum cs_err get_url(const struct cs_prov_ctx *ctx, const char *url, const char *target,
                           const struct cs_url_auth *auth, struct cs_test_result *out, int64_t t0)
{
  struct cs_broker *b = ctx->broker;
  const char *headers[3] = {"Accept: */*", NULL, NULL};
  struct cs_http_req req = {.method = "GET",
                            .url = url,
                            .reach = CS_HTTP_API,
                            .policy = b->named_urls,
                            .headers = headers,
                            .timeout_ms = b->timeout_ms,
                            .discard = true,
                            .user = auth->user,
                            .password = auth->password,
                            .cert_pem = auth->cert_pem,
                            .cert_pem_len = auth->cert_pem_len,
                            .key_pem = auth->key_pem,
                            .key_pem_len = auth->key_pem_len};
  struct cs_http_resp r = {0};
  struct cs_net_error err = {0};
  struct cs_buf bearer;
  enum cs_err e = CS_OK;

  cs_buf_init_secret(&bearer, HEADER_MAX);
  if (auth->bearer && (e = cs_buf_printf(&bearer, "Authorization: Bearer %s", auth->bearer)))
    goto out;
  headers[1] = auth->bearer ? bearer.data : NULL;
  e = cs_http_do(b->http, &req, &r);
  if (e == CS_OK && r.status >= 200 && r.status < 300) {
    cs_test_ok(out, t0, NULL, "GET %s answered HTTP %ld", target, r.status);
  } else if (e == CS_OK) {
    cs_net_fail(&err, CS_ERR_UPSTREAM, status_code(r.status), "GET %s answered HTTP %ld", target,
                r.status);
    cs_test_failed(out, t0, &err);
  } else if (e == CS_ERR_UPSTREAM || e == CS_ERR_FORBIDDEN || e == CS_ERR_INVALID) {
    cs_net_fail_transport(&err, target, "Unreachable", &r);
    cs_test_failed(out, t0, &err);
    e = CS_OK;
  }
out:
  cs_http_resp_wipe(&r);
  cs_buf_wipe(&bearer);
  return e;
}

enum cs_err cs_prov_test_url(const struct cs_prov_ctx *ctx, const struct cs_url_auth *auth,
                             struct cs_test_result *out)
{
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(ctx->meta, "url");
  char target[CS_HTTP_TARGET_MAX];
  const char *why = "";
  struct cs_net_error err = {0};
  int64_t t0;

  cs_test_start(out, &t0);
  if (!cJSON_IsString(u) || !u->valuestring[0]) {
    cs_test_ok(out, t0, NULL, "stored; nothing to test");
    return CS_OK;
  }
  if (!ctx->broker)
    return CS_ERR_UNAVAILABLE;
  if (cs_http_check_url(ctx->broker->named_urls, u->valuestring, target, &why) != CS_OK) {
    cs_net_fail(&err, CS_ERR_INVALID, "InvalidURL", "url: %s", why);
    cs_test_failed(out, t0, &err);
    return CS_OK;
  }
  return get_url(ctx, u->valuestring, target, auth, out, t0);
}
