/* GET /metrics: Prometheus text exposition (API.md §5). Counters are
 * lock-free atomics bumped once per completed request. */
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 201, 204, 400, 401, 403, 404, 405, 409,
                               412, 413, 415, 429, 500, 502, 503, 0};
#define NSTATUS (sizeof statuses / sizeof statuses[0]) /* last: any other */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKET (sizeof buckets / sizeof buckets[0])
#define MAX_ROUTES 64 /* + 1 slot for requests that matched no route */

static atomic_uint_fast64_t requests[MAX_ROUTES + 1][NSTATUS];
static atomic_uint_fast64_t hist[MAX_ROUTES + 1][NBUCKET + 1];
static atomic_uint_fast64_t lat_sum_us[MAX_ROUTES + 1];
static atomic_uint_fast64_t webhook_failures, webhook_deliveries;
static const char *const auth_results[] = {"success", "failure", "rate_limited"};
#define NAUTH (sizeof auth_results / sizeof auth_results[0])
static atomic_uint_fast64_t auth_attempts[NAUTH], conns_refused;

static size_t route_slot(const struct cs_route *r)
{
  size_t i = r ? (size_t)(r - cs_routes) : MAX_ROUTES;
  return i < MAX_ROUTES ? i : MAX_ROUTES;
}

void cs_metrics_observe(const struct cs_route *route, int status, int64_t us)
{
  size_t r = route_slot(route), s = NSTATUS - 1, b = NBUCKET;
  for (size_t i = 0; i + 1 < NSTATUS; i++)
    if (statuses[i] == status)
      s = i;
  for (size_t i = 0; i < NBUCKET; i++)
    if ((double)us / 1e6 <= buckets[i]) {
      b = i;
      break;
    }
  atomic_fetch_add_explicit(&requests[r][s], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&hist[r][b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&lat_sum_us[r], (uint64_t)(us > 0 ? us : 0), memory_order_relaxed);
}

void cs_metrics_webhook(bool ok)
{
  atomic_fetch_add_explicit(ok ? &webhook_deliveries : &webhook_failures, 1,
                            memory_order_relaxed);
}

void cs_metrics_auth(const char *result)
{
  for (size_t i = 0; i < NAUTH; i++)
    if (!strcmp(result, auth_results[i]))
      atomic_fetch_add_explicit(&auth_attempts[i], 1, memory_order_relaxed);
}

void cs_metrics_connection_refused(void)
{
  atomic_fetch_add_explicit(&conns_refused, 1, memory_order_relaxed);
}

/* Every access-key attempt is counted here, audited or not (the audit
 * trail keeps only the first refusal of each cool-off). */
static enum cs_err render_guards(struct cs_buf *b)
{
  enum cs_err e = cs_buf_printf(
      b, "# HELP credstore_auth_attempts_total Access-key attempts (login, Basic) by result.\n"
         "# TYPE credstore_auth_attempts_total counter\n");
  for (size_t i = 0; i < NAUTH && !e; i++)
    e = cs_buf_printf(b, "credstore_auth_attempts_total{result=\"%s\"} %llu\n", auth_results[i],
                      (unsigned long long)atomic_load(&auth_attempts[i]));
  if (!e)
    e = cs_buf_printf(b, "# HELP credstore_connections_refused_total Connections refused by "
                         "--max-connections-per-address.\n"
                         "# TYPE credstore_connections_refused_total counter\n"
                         "credstore_connections_refused_total %llu\n",
                      (unsigned long long)atomic_load(&conns_refused));
  return e;
}

static const char *route_name(size_t r)
{
  return r < cs_routes_count ? cs_routes[r].name : "none";
}

static enum cs_err render_requests(struct cs_buf *b)
{
  enum cs_err e = cs_buf_printf(b, "# HELP credstore_http_requests_total HTTP requests by route "
                                   "and status.\n# TYPE credstore_http_requests_total counter\n");
  for (size_t r = 0; r <= MAX_ROUTES && !e; r++) {
    if (r >= cs_routes_count && r != MAX_ROUTES)
      continue;
    for (size_t s = 0; s < NSTATUS && !e; s++) {
      uint64_t n = atomic_load_explicit(&requests[r][s], memory_order_relaxed);
      if (!n)
        continue;
      if (statuses[s])
        e = cs_buf_printf(b, "credstore_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                          route_name(r), statuses[s], (unsigned long long)n);
      else
        e = cs_buf_printf(b, "credstore_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                          route_name(r), (unsigned long long)n);
    }
  }
  if (!e)
    e = cs_buf_printf(b, "# HELP credstore_http_request_duration_seconds Request latency.\n"
                         "# TYPE credstore_http_request_duration_seconds histogram\n");
  for (size_t r = 0; r <= MAX_ROUTES && !e; r++) {
    if (r >= cs_routes_count && r != MAX_ROUTES)
      continue;
    uint64_t cum = 0;
    for (size_t i = 0; i <= NBUCKET && !e; i++) {
      cum += atomic_load_explicit(&hist[r][i], memory_order_relaxed);
      if (i < NBUCKET)
        e = cs_buf_printf(b, "credstore_http_request_duration_seconds_bucket{route=\"%s\","
                             "le=\"%g\"} %llu\n", route_name(r), buckets[i],
                          (unsigned long long)cum);
      else
        e = cs_buf_printf(b, "credstore_http_request_duration_seconds_bucket{route=\"%s\","
                             "le=\"+Inf\"} %llu\n", route_name(r), (unsigned long long)cum);
    }
    if (!e)
      e = cs_buf_printf(b, "credstore_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                           "credstore_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        route_name(r),
                        (double)atomic_load_explicit(&lat_sum_us[r], memory_order_relaxed) / 1e6,
                        route_name(r), (unsigned long long)cum);
  }
  return e;
}

static enum cs_err render_state(struct cs_app *app, struct cs_buf *b)
{
  struct cs_prov_net_stats aws;
  struct cs_store_stat st;
  static const char *const tables[CS_TBL__COUNT] = {
      "meta", "credentials", "usages", "usages_by_credential", "access_keys", "audit", "events",
      "outbox"};
  enum cs_err e;

  cs_prov_net_get_stats(app->net, &aws);
  if ((e = cs_store_stat(app->store, &st)))
    return e;
  e = cs_buf_printf(
      b,
      "# HELP credstore_sts_calls_total AWS STS AssumeRole calls.\n"
      "# TYPE credstore_sts_calls_total counter\ncredstore_sts_calls_total %llu\n"
      "# HELP credstore_imds_calls_total Instance metadata calls.\n"
      "# TYPE credstore_imds_calls_total counter\ncredstore_imds_calls_total %llu\n"
      "# HELP credstore_aws_cache_hits_total Temporary-credential cache hits.\n"
      "# TYPE credstore_aws_cache_hits_total counter\ncredstore_aws_cache_hits_total %llu\n"
      "# HELP credstore_aws_cache_misses_total Temporary-credential cache misses.\n"
      "# TYPE credstore_aws_cache_misses_total counter\ncredstore_aws_cache_misses_total %llu\n"
      "# HELP credstore_webhook_outbox_depth Webhook deliveries waiting.\n"
      "# TYPE credstore_webhook_outbox_depth gauge\ncredstore_webhook_outbox_depth %llu\n"
      "# HELP credstore_webhook_deliveries_total Webhook deliveries answered 2xx.\n"
      "# TYPE credstore_webhook_deliveries_total counter\n"
      "credstore_webhook_deliveries_total %llu\n"
      "# HELP credstore_webhook_failures_total Webhook attempts that failed.\n"
      "# TYPE credstore_webhook_failures_total counter\ncredstore_webhook_failures_total %llu\n"
      "# HELP credstore_store_map_bytes Bytes reserved for the store.\n"
      "# TYPE credstore_store_map_bytes gauge\ncredstore_store_map_bytes %llu\n"
      "# HELP credstore_store_used_bytes Bytes of the store in use.\n"
      "# TYPE credstore_store_used_bytes gauge\ncredstore_store_used_bytes %llu\n"
      "# HELP credstore_store_records Records by table.\n"
      "# TYPE credstore_store_records gauge\n",
      (unsigned long long)aws.sts_calls, (unsigned long long)aws.imds_calls,
      (unsigned long long)aws.cache_hits, (unsigned long long)aws.cache_misses,
      (unsigned long long)st.records[CS_TBL_OUTBOX],
      (unsigned long long)atomic_load(&webhook_deliveries),
      (unsigned long long)atomic_load(&webhook_failures), (unsigned long long)st.map_size,
      (unsigned long long)st.used_bytes);
  for (int t = 0; t < CS_TBL__COUNT && !e; t++)
    e = cs_buf_printf(b, "credstore_store_records{table=\"%s\"} %llu\n", tables[t],
                      (unsigned long long)st.records[t]);
  if (!e)
    e = cs_buf_printf(b, "# HELP credstore_start_time_seconds Start time.\n"
                         "# TYPE credstore_start_time_seconds gauge\n"
                         "credstore_start_time_seconds %lld\n", (long long)app->started_at);
  return e;
}

enum cs_err cs_h_metrics(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_buf b;
  enum cs_err e;

  cs_buf_init(&b, 4 * 1024 * 1024);
  if ((e = render_requests(&b)) || (e = render_guards(&b)) || (e = render_state(req->app, &b))) {
    cs_buf_free(&b);
    return e;
  }
  free(resp->body);
  resp->body = b.data;
  resp->len = b.len;
  resp->status = 200;
  resp->content_type = "text/plain; version=0.0.4";
  return CS_OK;
}
