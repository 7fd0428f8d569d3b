/* Resolve (API.md §4, §8): the material of a credential for one of its
 * usages, made by its provider (providers.h: the core names no type). The
 * snapshot read, opening and provider work happen outside any write, on
 * the request's thread (cs_resolve_start); the usage stats and the audit
 * entry are queued for the group commit while the request is parked, and
 * the material is handed out (cs_resolve_finish) only once they are
 * durable, so every secret handed out is audited. A request
 * refused for its own fault (not a usage, another type, an option beyond
 * the credential, a format the type has not, a "token" usage asking for the
 * stored secret) records nothing. */
#include "core_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum cs_err refuse(struct cs_net_error *f, enum cs_err e, const char *field, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

static enum cs_err refuse(struct cs_net_error *f, enum cs_err e, const char *field, const char *fmt,
                          ...)
{
  char msg[sizeof f->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  memcpy(f->message, msg, sizeof msg);
  snprintf(f->field, sizeof f->field, "%s", field ? field : "");
  return e;
}

static enum cs_err take_snapshot(struct cs_core *core, const struct cs_resolve_req *in,
                                 struct cs_cred_snapshot *s, enum cs_usage_material *material,
                                 struct cs_net_error *f)
{
  struct cs_txn *txn;
  struct cs_cred_view c;
  enum cs_err e = cs_store_read_begin(core->store, &txn);

  memset(s, 0, sizeof *s);
  if (e)
    return e;
  if ((e = cs_cred_load(txn, in->cred_id, &c)))
    goto out;
  if (in->require_type && strcmp(c.prov->type, in->require_type) != 0) {
    e = refuse(f, CS_ERR_INVALID, NULL, "credential %s is of type %s, not %s", in->cred_id,
               c.prov->type, in->require_type);
    goto out;
  }
  if (cs_usage_check(txn, in->cred_id, in->usage_id, material)) {
    e = refuse(f, CS_ERR_INVALID, "usageId", "not a usage of this credential");
    goto out;
  }
  e = cs_cred_snapshot(cs_core_keyring_for(core, cs_sealed_version(c.sealed, c.sealed_len)), &c, s);
out:
  cs_store_read_end(txn);
  return e;
}

/* A RoleSessionName within STS's pattern [\w+=,.@-]{2,64}, from the usage:
 * CloudTrail then names the usage that asked, and no caller can pose as
 * another. Usage ids are "u-" and 20 hex digits. */
static void session_name(const char *usage_id, char out[65])
{
  snprintf(out, 65, "credstore-%s", usage_id);
}

/* The provider's resolve. An INVALID naming a request field (format,
 * scope, scopes...) is the request's fault: *refused says so. One naming a
 * stored field, or none, is a stored credential the provider will not use. */
static enum cs_err provide(const struct cs_prov_ctx *ctx, const struct cs_provider *prov, cJSON **m,
                           bool *refused, struct cs_net_error *fail)
{
  enum cs_err e = prov->resolve(ctx, m, fail);

  *refused = false;
  if (e != CS_ERR_INVALID)
    return e;
  if (fail->field[0] && strncmp(fail->field, "secret", 6) != 0) {
    *refused = true;
    return e;
  }
  return refuse(fail, e, NULL, "%s",
                fail->message[0] ? fail->message : "the stored credential is unusable");
}

/* A resolve whose record is queued: the material (or the provider's
 * failure) waits here until the record is durable. */
struct resolve_job {
  struct cs_core_job base;
  struct cs_usage_seen seen;
  char *cred_id, *usage_id;
  cJSON *material;      /* wiped and freed unless handed out */
  enum cs_err provided; /* the provider's error: audited as a failure */
  struct cs_net_error fail;
};

static void resolve_job_free(struct cs_core_job *b)
{
  struct resolve_job *j = (struct resolve_job *)b;

  cs_json_wipe_delete(j->material);
  free(j->cred_id);
  free(j->usage_id);
  free(j);
}

/* Queue the record of a resolve attempted (@p provided: the provider's
 * outcome, @p m its material, taken) as a job. */
static enum cs_err queue_record(struct cs_core *core, const struct cs_actor *a,
                                const struct cs_resolve_req *in, uint64_t version, void *waiter,
                                enum cs_err provided, cJSON **m, const struct cs_net_error *fail,
                                struct cs_core_job **out)
{
  struct resolve_job *j = calloc(1, sizeof *j);
  enum cs_err e;

  if (!j)
    return CS_ERR_NOMEM;
  if ((e = cs_core_job_init(&j->base, core, waiter, a, resolve_job_free)) ||
      !(j->cred_id = strdup(in->cred_id)) || !(j->usage_id = strdup(in->usage_id))) {
    cs_core_job_free(&j->base);
    return e ? e : CS_ERR_NOMEM;
  }
  j->provided = provided;
  j->fail = *fail;
  j->material = *m;
  *m = NULL;
  cs_usage_seen_init(&j->seen, core, &j->base.actor, j->cred_id, j->usage_id, version,
                     provided ? "failure" : "success");
  cs_core_job_write(&j->base, cs_usage_seen_txn, &j->seen);
  *out = &j->base;
  return CS_OK;
}

enum cs_err cs_resolve_start(struct cs_core *core, const struct cs_actor *a,
                             const struct cs_resolve_req *in, void *waiter,
                             struct cs_core_job **job, struct cs_net_error *fail)
{
  struct cs_cred_snapshot s;
  enum cs_usage_material mat = CS_MATERIAL_SECRET;
  struct cs_resolve_opts opts = in->opts;
  cJSON *m = NULL;
  bool refused = false;
  char sess[65];
  enum cs_err e;

  memset(fail, 0, sizeof *fail);
  /* No quorum, no durable audit entry, no secret: and no STS call either. */
  if (!cs_store_healthy(core->store))
    return CS_ERR_STORE_UNAVAILABLE;
  if ((e = take_snapshot(core, in, &s, &mat, fail)))
    return e;
  session_name(in->usage_id, sess);
  opts.session_name = sess;
  struct cs_prov_ctx ctx = {core->broker,          in->cred_id, s.version, s.meta,
                            (const char *)s.plain, s.plain_len, &opts};
  /* Refused requests hand out nothing, so they record nothing either. */
  if ((e = cs_resolve_opts_check(s.meta, &in->opts, sess, fail)))
    goto out;
  if (mat == CS_MATERIAL_TOKEN && !s.prov->short_lived(&ctx)) {
    e = refuse(fail, CS_ERR_TOKEN_ONLY, "format",
               "usage %s may resolve only short-lived material (format token, session or "
               "STS credentials), not the stored secret",
               in->usage_id);
    goto out;
  }
  e = provide(&ctx, s.prov, &m, &refused, fail);
  if (refused)
    goto out;
  if (!e && !cJSON_AddNumberToObject(m, "version", (double)s.version))
    e = CS_ERR_NOMEM;
  e = queue_record(core, a, in, s.version, waiter, e, &m, fail, job);
out:
  cs_cred_snapshot_free(&s);
  cs_json_wipe_delete(m);
  return e;
}

enum cs_err cs_resolve_finish(struct cs_core_job *job, cJSON **material, struct cs_net_error *fail)
{
  struct resolve_job *j = (struct resolve_job *)job;
  /* Not durably audited: the material is not handed out. */
  enum cs_err e = j->provided ? j->provided : j->base.result;

  *fail = j->fail;
  if (e)
    return e;
  *material = j->material;
  j->material = NULL;
  return CS_OK;
}

enum cs_err cs_resolve(struct cs_core *core, const struct cs_actor *a,
                       const struct cs_resolve_req *in, cJSON **material, struct cs_net_error *fail)
{
  struct cs_core_job *job = NULL;
  enum cs_err e = cs_resolve_start(core, a, in, NULL, &job, fail);

  if (!e)
    e = cs_resolve_finish(job, material, fail);
  cs_core_job_free(job);
  return e;
}
