/* GET /metrics: Prometheus text exposition (API.md §5): the api's counters
 * (metrics.c) and the core's (store, network resolves, webhooks). */
#include "http.h"

#include <stddef.h>
#include <string.h>

#include <stdlib.h>
#include <string.h>

/* The broker's counters per upstream kind (sts, imds, azure, gcp, ibm, kube). */
static enum cs_err render_broker(const struct cs_broker_stats *st, struct cs_buf *b)
{
  static const struct {
    const char *name, *help;
    size_t off;
  } counters[] = {
      {"calls", "HTTP requests sent upstream, by kind.",
       offsetof(struct cs_broker_kind_stats, calls)},
      {"cache_hits", "Resolves answered from the cache or a shared fetch, by kind.",
       offsetof(struct cs_broker_kind_stats, cache_hits)},
      {"cache_misses", "Resolves that fetched (cold or renewing), by kind.",
       offsetof(struct cs_broker_kind_stats, cache_misses)},
      {"errors", "Upstream or transport failures, by kind.",
       offsetof(struct cs_broker_kind_stats, errors)},
      {"fallbacks", "Failed renewals answered with still-valid cached material, by kind.",
       offsetof(struct cs_broker_kind_stats, fallbacks)},
  };
  enum cs_err e = CS_OK;

  for (size_t i = 0; i < sizeof counters / sizeof counters[0] && !e; i++) {
    e = cs_buf_printf(
        b, "# HELP credstore_broker_%s_total %s\n# TYPE credstore_broker_%s_total counter\n",
        counters[i].name, counters[i].help, counters[i].name);
    for (int k = 0; k < CS_KIND__COUNT && !e; k++) {
      const char *base = (const char *)&st->kind[k];
      uint64_t v;
      memcpy(&v, base + counters[i].off, sizeof v);
      e = cs_buf_printf(b, "credstore_broker_%s_total{kind=\"%s\"} %llu\n", counters[i].name,
                        cs_broker_kind_name((enum cs_broker_kind)k), (unsigned long long)v);
    }
  }
  return e;
}

/* Cluster mode: which node this is, whether it has a quorum, and the etcd
 * round trips (the benchmark's "none per cached read, one Txn per group
 * commit"). */
static enum cs_err render_cluster(struct cs_core *core, const struct cs_store_stat *s,
                                  struct cs_buf *b)
{
  const char *node = core->opts.node_id ? core->opts.node_id : "";
  enum cs_err e = cs_buf_printf(b, "# HELP credstore_node_info This node (--node-id).\n"
                                   "# TYPE credstore_node_info gauge\n"
                                   "credstore_node_info{node=\"");

  if (!e)
    e = cs_buf_json_escape(b, node, strlen(node));
  if (!e)
    e = cs_buf_printf(
        b,
        "\"} 1\n"
        "# HELP credstore_store_healthy 1 when the store has a quorum.\n"
        "# TYPE credstore_store_healthy gauge\ncredstore_store_healthy %d\n"
        "# HELP credstore_etcd_revision etcd revision the local copy has applied.\n"
        "# TYPE credstore_etcd_revision gauge\ncredstore_etcd_revision %llu\n"
        "# HELP credstore_etcd_requests_total etcd round trips of requests (writes, leases).\n"
        "# TYPE credstore_etcd_requests_total counter\ncredstore_etcd_requests_total %llu\n"
        "# HELP credstore_etcd_txns_total etcd Txns.\n"
        "# TYPE credstore_etcd_txns_total counter\ncredstore_etcd_txns_total %llu\n"
        "# HELP credstore_etcd_conflicts_total Txns whose compares failed.\n"
        "# TYPE credstore_etcd_conflicts_total counter\ncredstore_etcd_conflicts_total %llu\n"
        "# HELP credstore_etcd_background_total Round trips of the watch and health threads.\n"
        "# TYPE credstore_etcd_background_total counter\ncredstore_etcd_background_total %llu\n"
        "# HELP credstore_etcd_feed_index_entries Entries of the local copy's feed indexes "
        "(audit, events): their records and what is left of partly removed commits.\n"
        "# TYPE credstore_etcd_feed_index_entries gauge\ncredstore_etcd_feed_index_entries %llu\n",
        cs_store_healthy(core->store) ? 1 : 0, (unsigned long long)s->revision,
        (unsigned long long)s->etcd_requests, (unsigned long long)s->etcd_txns,
        (unsigned long long)s->etcd_conflicts, (unsigned long long)s->etcd_background,
        (unsigned long long)s->etcd_feed_index);
  return e;
}

/* Records by table, the start time, group commits, and cluster mode's lines. */
static enum cs_err render_tail(struct cs_core *c, const struct cs_core_stats *cs, struct cs_buf *b)
{
  static const char *const tables[CS_TBL__COUNT] = {
      "meta",  "credentials", "usages", "usages_by_credential", "access_keys",
      "audit", "events",      "outbox", "dead_letters"};
  enum cs_err e = CS_OK;

  for (int t = 0; t < CS_TBL__COUNT && !e; t++)
    e = cs_buf_printf(b, "credstore_store_records{table=\"%s\"} %llu\n", tables[t],
                      (unsigned long long)cs->store.records[t]);
  if (!e)
    e = cs_buf_printf(b,
                      "# HELP credstore_start_time_seconds Start time.\n"
                      "# TYPE credstore_start_time_seconds gauge\n"
                      "credstore_start_time_seconds %lld\n"
                      "# HELP credstore_store_write_batches_total Group commits.\n"
                      "# TYPE credstore_store_write_batches_total counter\n"
                      "credstore_store_write_batches_total %llu\n",
                      (long long)cs->started_at, (unsigned long long)cs->store.write_batches);
  if (!e && cs_store_shared(c->store))
    e = render_cluster(c, &cs->store, b);
  return e;
}

static enum cs_err render_state(struct cs_core *c, struct cs_buf *b)
{
  struct cs_core_stats cs;
  const struct cs_broker_kind_stats *sts = &cs.broker.kind[CS_KIND_STS];
  const struct cs_broker_kind_stats *imds = &cs.broker.kind[CS_KIND_IMDS];
  enum cs_err e;

  if ((e = cs_core_stats(c, &cs)))
    return e;
  e = cs_buf_printf(
      b,
      "# HELP credstore_sts_calls_total AWS STS calls.\n"
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
      "# HELP credstore_webhook_dead_letters Webhook deliveries given up on, kept for retry.\n"
      "# TYPE credstore_webhook_dead_letters gauge\ncredstore_webhook_dead_letters %llu\n"
      "# HELP credstore_webhook_dead_letters_total Deliveries given up on since start.\n"
      "# TYPE credstore_webhook_dead_letters_total counter\n"
      "credstore_webhook_dead_letters_total %llu\n"
      "# HELP credstore_events_trimmed_total Events removed by retention since start.\n"
      "# TYPE credstore_events_trimmed_total counter\ncredstore_events_trimmed_total %llu\n"
      "# HELP credstore_store_map_bytes Bytes reserved for the store.\n"
      "# TYPE credstore_store_map_bytes gauge\ncredstore_store_map_bytes %llu\n"
      "# HELP credstore_store_used_bytes Bytes of the store in use.\n"
      "# TYPE credstore_store_used_bytes gauge\ncredstore_store_used_bytes %llu\n"
      "# HELP credstore_store_records Records by table.\n"
      "# TYPE credstore_store_records gauge\n",
      (unsigned long long)sts->calls, (unsigned long long)imds->calls,
      (unsigned long long)(sts->cache_hits + imds->cache_hits),
      (unsigned long long)(sts->cache_misses + imds->cache_misses),
      (unsigned long long)cs.store.records[CS_TBL_OUTBOX],
      (unsigned long long)cs.webhook_deliveries, (unsigned long long)cs.webhook_failures,
      (unsigned long long)cs.store.records[CS_TBL_DEAD], (unsigned long long)cs.webhook_dead,
      (unsigned long long)cs.events_trimmed, (unsigned long long)cs.store.map_size,
      (unsigned long long)cs.store.used_bytes);
  if (!e)
    e = render_broker(&cs.broker, b);
  if (!e)
    e = render_tail(c, &cs, b);
  return e;
}

enum cs_err cs_h_metrics(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_buf b;
  enum cs_err e;

  cs_buf_init(&b, 4 * 1024 * 1024);
  if ((e = cs_metrics_render(&b)) || (e = render_state(req->api->core, &b))) {
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
