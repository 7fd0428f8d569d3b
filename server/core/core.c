/* The core's lifecycle (core.h): options, the workers a serving process
 * starts, and the counters /metrics shows. */
#include "core_internal.h"

#include <string.h>

void cs_core_init(struct cs_core *c, struct cs_store *st, struct cs_keyring *kr,
                  const struct cs_core_opts *opts)
{
  memset(c, 0, sizeof *c);
  if (opts)
    c->opts = *opts;
  if (!c->opts.token_ttl)
    c->opts.token_ttl = CS_DEFAULT_TOKEN_TTL;
  if (!c->opts.prisma_token_ttl)
    c->opts.prisma_token_ttl = CS_DEFAULT_PRISMA_TOKEN_TTL;
  if (!c->opts.webhook_retry_ms)
    c->opts.webhook_retry_ms = CS_DEFAULT_WEBHOOK_RETRY_MS;
  if (!c->opts.webhook_max_age)
    c->opts.webhook_max_age = CS_DEFAULT_WEBHOOK_MAX_AGE;
  if (!c->opts.events_retention)
    c->opts.events_retention = CS_DEFAULT_EVENTS_RETENTION;
  if (!c->opts.events_max)
    c->opts.events_max = CS_DEFAULT_EVENTS_MAX;
  c->store = st;
  c->keyring = kr;
  c->keyring_given = kr;
  c->started_at = cs_now();
  if (cs_store_shared(st))
    cs_audit_set_chain(c->opts.node_id);
}

/* After each group commit: wake long-polls and the webhook worker. */
static void after_commit(void *arg)
{
  struct cs_core *c = arg;
  cs_events_notify(c);
  cs_outbox_kick(c);
}

enum cs_err cs_core_start(struct cs_core *c, char *err, size_t errlen)
{
  enum cs_err e;

  err[0] = '\0';
  c->started_at = cs_now();
  if ((e = cs_broker_create(&c->opts.broker, &c->broker, err, errlen)) ||
      (e = cs_events_start(c)) || (e = cs_writer_start(c->store, after_commit, c, &c->writer)) ||
      (e = cs_retention_start(c)) || (e = cs_outbox_start(c, err, errlen))) {
    cs_core_stop(c);
    return e;
  }
  cs_usage_coalesce(c);
  cs_cluster_start(c);
  return CS_OK;
}

void cs_core_stop(struct cs_core *c)
{
  cs_cluster_stop(c);
  cs_events_stop(c);
  /* Whatever still commits (the trimmer, webhook settles, queued changes)
   * wakes the notifier from the writer thread after each batch: the
   * notifier's state is freed only once the writer has stopped. */
  cs_retention_stop(c);
  cs_outbox_stop(c);
  cs_writer_stop(c->writer);
  c->writer = NULL;
  cs_events_free(c);
  cs_broker_free(c->broker);
  c->broker = NULL;
}

enum cs_err cs_core_stats(struct cs_core *c, struct cs_core_stats *out)
{
  enum cs_err e;

  memset(out, 0, sizeof *out);
  if ((e = cs_store_stat(c->store, &out->store)))
    return e;
  cs_broker_get_stats(c->broker, &out->broker);
  cs_outbox_counts(c, &out->webhook_deliveries, &out->webhook_failures, &out->webhook_dead);
  out->events_trimmed = cs_retention_trimmed(c);
  out->started_at = c->started_at;
  return CS_OK;
}

void cs_core_cred_changed(struct cs_core *c, const char *id)
{
  cs_broker_invalidate(c->broker, id);
}

void cs_principal_clear(struct cs_principal *p)
{
  if (!p)
    return;
  cJSON_Delete(p->scope);
  memset(p, 0, sizeof *p);
}
