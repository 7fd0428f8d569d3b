/* Resolve (API.md §4): the material of a credential for one of its usages,
 * made by its provider (providers.h: the core names no type). The snapshot
 * read, opening and provider work happen outside any write;
 * the usage stats and the audit entry are committed (group commit) before
 * the material is returned, so every secret handed out is audited. */
#include "core_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What resolve needs from the record, copied out of its snapshot. */
struct snapshot {
  const struct cs_provider *prov;
  uint64_t version;
  cJSON *meta;
  uint8_t *plain;
  size_t plain_len;
};

static void snapshot_free(struct snapshot *s)
{
  cJSON_Delete(s->meta);
  cs_open_free(s->plain, s->plain_len);
  memset(s, 0, sizeof *s);
}

static enum cs_err refuse(struct cs_net_error *f, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum cs_err refuse(struct cs_net_error *f, const char *field, const char *fmt, ...)
{
  char msg[sizeof f->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  memcpy(f->message, msg, sizeof msg);
  snprintf(f->field, sizeof f->field, "%s", field ? field : "");
  return CS_ERR_INVALID;
}

static enum cs_err take_snapshot(struct cs_core *core, const struct cs_resolve_req *in,
                                 struct snapshot *s, struct cs_net_error *f)
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
    e = refuse(f, NULL, "credential %s is of type %s, not %s", in->cred_id, c.prov->type,
               in->require_type);
    goto out;
  }
  if (cs_usage_check(txn, in->cred_id, in->usage_id)) {
    e = refuse(f, "usageId", "not a usage of this credential");
    goto out;
  }
  s->prov = c.prov;
  s->version = c.version;
  if (cs_json_parse(c.meta, c.meta_len, CS_JSON_MAX_DEPTH, &s->meta)) {
    e = CS_ERR_STORE;
    goto out;
  }
  e = cs_cred_open_secret(cs_core_keyring_for(core, cs_sealed_version(c.sealed, c.sealed_len)), &c,
                          &s->plain, &s->plain_len);
out:
  cs_store_read_end(txn);
  if (e)
    snapshot_free(s);
  return e;
}

/* A RoleSessionName within STS's pattern [\w+=,.@-]{2,64}, from the usage:
 * CloudTrail then names the usage that asked, and no caller can pose as
 * another. Usage ids are "u-" and 20 hex digits. */
static void session_name(const char *usage_id, char out[65])
{
  snprintf(out, 65, "credstore-%s", usage_id);
}

enum cs_err cs_resolve(struct cs_core *core, const struct cs_actor *a,
                       const struct cs_resolve_req *in, cJSON **material, struct cs_net_error *fail)
{
  struct snapshot s;
  struct cs_resolve_opts opts = in->opts;
  cJSON *m = NULL;
  char sess[65];
  enum cs_err e;

  memset(fail, 0, sizeof *fail);
  /* No quorum, no durable audit entry, no secret: and no STS call either. */
  if (!cs_store_healthy(core->store))
    return CS_ERR_STORE_UNAVAILABLE;
  if ((e = take_snapshot(core, in, &s, fail)))
    return e;
  session_name(in->usage_id, sess);
  /* Refused requests hand out nothing, so they record nothing either. */
  if ((e = cs_resolve_opts_check(s.meta, &in->opts, sess, fail))) {
    snapshot_free(&s);
    return e;
  }
  opts.session_name = sess;
  struct cs_prov_ctx ctx = {core->broker,          in->cred_id, s.version, s.meta,
                            (const char *)s.plain, s.plain_len, &opts};
  e = s.prov->resolve(&ctx, &m, fail);
  if (e == CS_ERR_INVALID) /* stored fields the resolver will not use */
    refuse(fail, NULL, "%s",
           fail->message[0] ? fail->message : "the stored credential is unusable");
  if (!e && !cJSON_AddNumberToObject(m, "version", (double)s.version))
    e = CS_ERR_NOMEM;
  enum cs_err rec = cs_usage_record_resolve(core, a, in->cred_id, in->usage_id, s.version,
                                            e ? "failure" : "success");
  if (!e && rec)
    e = rec; /* not durably audited: the material is not handed out */
  snapshot_free(&s);
  if (e) {
    cs_json_wipe_delete(m);
    return e;
  }
  *material = m;
  return CS_OK;
}
