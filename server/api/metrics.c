/* The api's counters for GET /metrics (h_metrics.c): lock-free atomics
 * bumped once per completed request, access-key attempt or refused
 * connection, and their Prometheus text. */
#include "http.h"

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
static const char *const auth_results[] = {"success", "failure", "rate_limited"};
#define NAUTH (sizeof auth_results / sizeof auth_results[0])
static atomic_uint_fast64_t auth_attempts[NAUTH], conns_refused;

/* The route table, named once before serving (it is data: no call back up). */
static const struct cs_route *routes;
static size_t nroutes;

void cs_metrics_init(const struct cs_route *table, size_t n)
{
  routes = table;
  nroutes = n;
}

static size_t route_slot(const struct cs_route *r)
{
  size_t i = r && routes ? (size_t)(r - routes) : MAX_ROUTES;
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
    e = cs_buf_printf(b,
                      "# HELP credstore_connections_refused_total Connections refused by "
                      "--max-connections-per-address.\n"
                      "# TYPE credstore_connections_refused_total counter\n"
                      "credstore_connections_refused_total %llu\n",
                      (unsigned long long)atomic_load(&conns_refused));
  return e;
}

static const char *route_name(size_t r) { return r < nroutes ? routes[r].name : "none"; }

static enum cs_err render_requests(struct cs_buf *b)
{
  enum cs_err e = cs_buf_printf(b, "# HELP credstore_http_requests_total HTTP requests by route "
                                   "and status.\n# TYPE credstore_http_requests_total counter\n");
  for (size_t r = 0; r <= MAX_ROUTES && !e; r++) {
    if (r >= nroutes && r != MAX_ROUTES)
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
    if (r >= nroutes && r != MAX_ROUTES)
      continue;
    uint64_t cum = 0;
    for (size_t i = 0; i <= NBUCKET && !e; i++) {
      cum += atomic_load_explicit(&hist[r][i], memory_order_relaxed);
      if (i < NBUCKET)
        e = cs_buf_printf(b,
                          "credstore_http_request_duration_seconds_bucket{route=\"%s\","
                          "le=\"%g\"} %llu\n",
                          route_name(r), buckets[i], (unsigned long long)cum);
      else
        e = cs_buf_printf(b,
                          "credstore_http_request_duration_seconds_bucket{route=\"%s\","
                          "le=\"+Inf\"} %llu\n",
                          route_name(r), (unsigned long long)cum);
    }
    if (!e)
      e = cs_buf_printf(b,
                        "credstore_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                        "credstore_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        route_name(r),
                        (double)atomic_load_explicit(&lat_sum_us[r], memory_order_relaxed) / 1e6,
                        route_name(r), (unsigned long long)cum);
  }
  return e;
}

enum cs_err cs_metrics_render(struct cs_buf *b)
{
  enum cs_err e = render_requests(b);
  return e ? e : render_guards(b);
}
