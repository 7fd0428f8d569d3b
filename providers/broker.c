/* The broker: what every network resolve and test shares, created once
 * per process. Endpoints are checked here, at start-up, so a bad option
 * fails the start with a message instead of every later call. */
#include "prov_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENDPOINT_MAX 400 /* the clients' fixed URL buffers hold this plus a path */

static const char *const kind_names[CS_KIND__COUNT] = {"sts", "imds", "azure",
                                                       "gcp", "ibm",  "kube"};

const char *cs_broker_kind_name(enum cs_broker_kind k)
{
  return k < CS_KIND__COUNT ? kind_names[k] : "unknown";
}

/* --------------------------------------------------------- errors, forms */

static void vfill(struct cs_net_error *err, const char *field, const char *code, const char *fmt,
                  va_list ap) __attribute__((format(printf, 4, 0)));
static void vfill(struct cs_net_error *err, const char *field, const char *code, const char *fmt,
                  va_list ap)
{
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  snprintf(err->code, sizeof err->code, "%s", code);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
}

enum cs_err cs_net_fail(struct cs_net_error *err, enum cs_err e, const char *code, const char *fmt,
                        ...)
{
  va_list ap;

  if (!err)
    return e;
  va_start(ap, fmt);
  vfill(err, NULL, code, fmt, ap);
  va_end(ap);
  return e;
}

enum cs_err cs_net_fail_field(struct cs_net_error *err, enum cs_err e, const char *field,
                              const char *fmt, ...)
{
  va_list ap;

  if (!err)
    return e;
  va_start(ap, fmt);
  vfill(err, field, "InvalidRequest", fmt, ap);
  va_end(ap);
  return e;
}

enum cs_err cs_net_fail_transport(struct cs_net_error *err, const char *what,
                                  const char *unreachable, const struct cs_http_resp *r)
{
  const char *code = unreachable;

  switch (r->fail) {
  case CS_HTTP_FAIL_TIMEOUT:
    code = "Timeout";
    break;
  case CS_HTTP_FAIL_TLS:
    code = "TLSVerificationFailed";
    break;
  case CS_HTTP_FAIL_TOO_LARGE:
    code = "ResponseTooLarge";
    break;
  case CS_HTTP_FAIL_REFUSED:
    code = "EndpointRefused";
    break;
  default:
    break;
  }
  return cs_net_fail(err, CS_ERR_UPSTREAM, code, "%s request failed: %s", what, r->error);
}

enum cs_err cs_form_escape(struct cs_buf *b, const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  enum cs_err e;

  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      e = cs_buf_append(b, s, 1);
    } else {
      char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
      e = cs_buf_append(b, enc, 3);
    }
    if (e)
      return e;
  }
  return CS_OK;
}

/* ------------------------------------------------------------- counting */

void cs_broker_count_call(struct cs_broker *b, enum cs_broker_kind kind)
{
  if (kind < CS_KIND__COUNT)
    atomic_fetch_add(&b->stats[kind].calls, 1);
}

void cs_broker_count_error(struct cs_broker *b, enum cs_broker_kind kind)
{
  if (kind < CS_KIND__COUNT)
    atomic_fetch_add(&b->stats[kind].errors, 1);
}

enum cs_err cs_broker_cached(struct cs_broker *b, enum cs_broker_kind kind,
                             const struct cs_cache_req *req, struct cs_cache_val *out,
                             struct cs_net_error *err)
{
  enum cs_cache_how how = CS_CACHE_MISS;
  enum cs_err e = cs_cache_get(b->cache, req, out, err, &how);

  if (kind >= CS_KIND__COUNT)
    return e;
  if (how == CS_CACHE_MISS)
    atomic_fetch_add(&b->stats[kind].misses, 1);
  else
    atomic_fetch_add(&b->stats[kind].hits, 1);
  if (how == CS_CACHE_FALLBACK)
    atomic_fetch_add(&b->stats[kind].fallbacks, 1);
  return e;
}

void cs_broker_get_stats(struct cs_broker *b, struct cs_broker_stats *out)
{
  memset(out, 0, sizeof *out);
  if (!b)
    return;
  for (int k = 0; k < CS_KIND__COUNT; k++) {
    out->kind[k].calls = atomic_load(&b->stats[k].calls);
    out->kind[k].cache_hits = atomic_load(&b->stats[k].hits);
    out->kind[k].cache_misses = atomic_load(&b->stats[k].misses);
    out->kind[k].errors = atomic_load(&b->stats[k].errors);
    out->kind[k].fallbacks = atomic_load(&b->stats[k].fallbacks);
  }
}

/* ---------------------------------------------------------------- tests */

void cs_test_start(struct cs_test_result *out, int64_t *t0)
{
  memset(out, 0, sizeof *out);
  *t0 = cs_mono_ms();
}

void cs_test_ok(struct cs_test_result *out, int64_t t0, const char *identity, const char *fmt, ...)
{
  va_list ap;

  out->ok = true;
  out->latency_ms = cs_mono_ms() - t0;
  out->code[0] = '\0';
  snprintf(out->identity, sizeof out->identity, "%s", identity ? identity : "");
  va_start(ap, fmt);
  vsnprintf(out->message, sizeof out->message, fmt, ap);
  va_end(ap);
}

void cs_test_failed(struct cs_test_result *out, int64_t t0, const struct cs_net_error *err)
{
  out->ok = false;
  out->latency_ms = cs_mono_ms() - t0;
  snprintf(out->code, sizeof out->code, "%s", err->code);
  snprintf(out->message, sizeof out->message, "%s", err->message);
}

/* ------------------------------------------------------------ lifecycle */

/* A copy of endpoint @p url (or @p dflt), without trailing slashes unless
 * @p keep_path: the STS override and the GCP token URL are whole URLs. */
static enum cs_err endpoint(const char *opt, const char *url, const char *dflt, bool any_http,
                            bool keep_path, char **out, char *err, size_t errlen)
{
  char host[CS_HTTP_HOST_MAX + 1], target[CS_HTTP_TARGET_MAX];
  const char *why = "";
  size_t n;

  *out = NULL;
  if (!url || !url[0]) {
    if (!dflt)
      return CS_OK;
    url = dflt;
  }
  n = strlen(url);
  if (n > ENDPOINT_MAX || cs_http_check_url_host(NULL, url, target, host, &why) != CS_OK) {
    snprintf(err, errlen,
             "%s must be an http:// or https:// URL of at most %d characters, "
             "without a user name or password",
             opt, ENDPOINT_MAX);
    return CS_ERR_INVALID;
  }
  if (!any_http && strncmp(target, "http:", 5) == 0 && !cs_http_host_is_loopback(host)) {
    snprintf(err, errlen,
             "%s: plain http is accepted only to a loopback address (127.0.0.0/8, "
             "[::1], localhost); use https",
             opt);
    return CS_ERR_INVALID;
  }
  while (!keep_path && n > 0 && url[n - 1] == '/')
    n--;
  if (!(*out = strndup(url, n)))
    return CS_ERR_NOMEM;
  return CS_OK;
}

static enum cs_err set_endpoints(struct cs_broker *b, const struct cs_broker_config *cfg, char *err,
                                 size_t errlen)
{
  enum cs_err e;

  if ((e = endpoint("--sts-endpoint", cfg->sts_endpoint, NULL, false, true, &b->sts_endpoint, err,
                    errlen)) ||
      (e = endpoint("--imds-endpoint", cfg->imds_endpoint, "http://169.254.169.254", true, false,
                    &b->imds_endpoint, err, errlen)) ||
      (e = endpoint("--azure-authority-host", cfg->azure_authority_host,
                    "https://login.microsoftonline.com", false, false, &b->azure_authority, err,
                    errlen)) ||
      (e = endpoint("--gcp-token-url", cfg->gcp_token_url, NULL, false, true, &b->gcp_token_url,
                    err, errlen)) ||
      (e = endpoint("--ibm-iam-endpoint", cfg->ibm_iam_endpoint, "https://iam.cloud.ibm.com", false,
                    false, &b->ibm_iam, err, errlen)))
    return e;
  return CS_OK;
}

enum cs_err cs_broker_create(const struct cs_broker_config *cfg, struct cs_broker **out, char *err,
                             size_t errlen)
{
  static const struct cs_broker_config none = {0};
  struct cs_http_client_config hc;
  struct cs_broker *b;
  char perr[256];
  enum cs_err e;

  cfg = cfg ? cfg : &none;
  if (errlen)
    err[0] = '\0';
  if (!(b = calloc(1, sizeof *b)))
    return CS_ERR_NOMEM;
  pthread_mutex_init(&b->imds_lock, NULL);
  for (int k = 0; k < CS_KIND__COUNT; k++) {
    atomic_init(&b->stats[k].calls, 0);
    atomic_init(&b->stats[k].hits, 0);
    atomic_init(&b->stats[k].misses, 0);
    atomic_init(&b->stats[k].errors, 0);
    atomic_init(&b->stats[k].fallbacks, 0);
  }
  b->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
  hc = (struct cs_http_client_config){cfg->outbound_ca_file, b->timeout_ms};
  if ((e = set_endpoints(b, cfg, err, errlen)) ||
      (e = cs_http_client_create(&hc, &b->http, err, errlen)) ||
      (e = cs_cache_create(cfg->cache_max_entries, 0, &b->cache)) ||
      (e = cs_http_policy_create(NULL, NULL, &b->named_urls, perr, sizeof perr))) {
    cs_broker_free(b);
    return e;
  }
  *out = b;
  return CS_OK;
}

void cs_broker_free(struct cs_broker *b)
{
  if (!b)
    return;
  cs_cache_free(b->cache);
  cs_http_client_free(b->http);
  cs_http_policy_free(b->named_urls);
  cs_memzero(b->imds_token, sizeof b->imds_token);
  pthread_mutex_destroy(&b->imds_lock);
  free(b->sts_endpoint);
  free(b->imds_endpoint);
  free(b->azure_authority);
  free(b->gcp_token_url);
  free(b->ibm_iam);
  free(b);
}

const struct cs_http_client *cs_broker_http(const struct cs_broker *b)
{
  return b ? b->http : NULL;
}

void cs_broker_invalidate(struct cs_broker *b, const char *cred_id)
{
  if (b)
    cs_cache_invalidate(b->cache, cred_id);
}
