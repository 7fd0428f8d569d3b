/* Resolve (API.md §4): the material of a credential for one of its usages.
 * The snapshot read, opening and provider work happen outside any write;
 * the usage stats and the audit entry are committed (group commit) before
 * the material is returned, so every secret handed out is audited. */
#include "svc.h"

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

static enum cs_err refuse(struct cs_resolve_fail *f, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum cs_err refuse(struct cs_resolve_fail *f, const char *field, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->message, sizeof f->message, fmt, ap);
  va_end(ap);
  f->field = field;
  return CS_ERR_INVALID;
}

static enum cs_err take_snapshot(struct cs_app *app, const struct cs_resolve_req *in,
                                 struct snapshot *s, struct cs_resolve_fail *f)
{
  struct cs_txn *txn;
  struct cs_val v;
  struct cs_cred_view c;
  enum cs_err e = cs_store_read_begin(app->store, &txn);

  memset(s, 0, sizeof *s);
  if (e)
    return e;
  if ((e = cs_txn_get(txn, CS_TBL_CREDS, in->cred_id, strlen(in->cred_id), &v)) ||
      (e = cs_cred_decode(in->cred_id, &v, &c)))
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
  e = cs_cred_open_secret(app, &c, &s->plain, &s->plain_len);
out:
  cs_store_read_end(txn);
  if (e)
    snapshot_free(s);
  return e;
}

static const char *meta_str(const cJSON *m, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, name);
  return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static bool meta_bool(const cJSON *m, const char *name)
{
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, name));
}

/* A RoleSessionName within STS's pattern [\w+=,.@-]{2,64}, from the usage:
 * CloudTrail then names the usage that asked, and no caller can pose as
 * another. Usage ids are "u-" and 20 hex digits. */
static void session_name(const char *usage_id, char out[65])
{
  snprintf(out, 65, "credstore-%s", usage_id);
}

/* Request options may narrow what the credential allows, never widen it:
 * refused (400 naming the field) rather than clamped, so a caller never gets
 * other material than it asked for without being told. */
static enum cs_err check_opts(const struct cs_resolve_opts *o, const struct snapshot *s,
                              const char *sess, struct cs_resolve_fail *f)
{
  const cJSON *dur = cJSON_GetObjectItemCaseSensitive(s->meta, "durationSeconds");
  int64_t max = cJSON_IsNumber(dur) ? (int64_t)dur->valuedouble : CS_AWS_DEFAULT_DURATION;

  if (o->duration_seconds > max)
    return refuse(f, "durationSeconds",
                  "durationSeconds may be at most %lld, what this credential allows",
                  (long long)max);
  if (o->session_name && strcmp(o->session_name, sess) != 0)
    return refuse(f, "sessionName",
                  "sessionName is derived from the usage (%s) and cannot be chosen", sess);
  if (o->region && !cs_aws_region_valid(o->region))
    return refuse(f, "region", "region must be an AWS region name such as us-east-1");
  return CS_OK;
}

static enum cs_err resolve_aws(struct cs_app *app, const struct cs_resolve_req *in,
                               const struct snapshot *s, const char *sess, cJSON **out,
                               struct cs_aws_error *upstream)
{
  struct cs_aws_creds creds;
  const cJSON *dur = cJSON_GetObjectItemCaseSensitive(s->meta, "durationSeconds");
  struct cs_aws_request r = {
      .cred_id = in->cred_id,
      .version = s->version,
      .use_instance_role = meta_bool(s->meta, "useAWSRole"),
      .role_arn = meta_str(s->meta, "roleArn"),
      .external_id = meta_str(s->meta, "externalID"),
      .session_name = sess,
      .region = in->opts.region ? in->opts.region : meta_str(s->meta, "region"),
      .regional_endpoint = meta_bool(s->meta, "useSTSRegionalEndpoint"),
      .duration_seconds = in->opts.duration_seconds
                              ? in->opts.duration_seconds
                              : (cJSON_IsNumber(dur) ? (int64_t)dur->valuedouble : 0),
  };
  if (!r.use_instance_role) {
    r.access_key_id = meta_str(s->meta, "accountID");
    r.secret_key = (const char *)s->plain;
  }
  if (!app->aws)
    return CS_ERR_UNAVAILABLE;
  enum cs_err e = cs_aws_resolve(app->aws, &r, &creds, upstream);
  if (e)
    return e;
  cJSON *m = cJSON_CreateObject();
  char when[32];
  e = CS_ERR_NOMEM;
  if (!m || !cJSON_AddStringToObject(m, "type", "aws") ||
      !cJSON_AddStringToObject(m, "AccessKeyId", creds.access_key_id) ||
      !cJSON_AddStringToObject(m, "SecretAccessKey", creds.secret_access_key))
    goto out;
  if (creds.session_token[0] && !cJSON_AddStringToObject(m, "SessionToken", creds.session_token))
    goto out;
  if (creds.expiration) {
    cs_time_format(creds.expiration, when);
    if (!cJSON_AddStringToObject(m, "Expiration", when))
      goto out;
  }
  *out = m;
  m = NULL;
  e = CS_OK;
out:
  cs_aws_creds_wipe(&creds);
  cJSON_Delete(m);
  return e;
}

enum cs_err cs_resolve(struct cs_app *app, const struct cs_actor *a,
                       const struct cs_resolve_req *in, cJSON **material,
                       struct cs_resolve_fail *fail)
{
  struct snapshot s;
  cJSON *m = NULL;
  char sess[65];
  enum cs_err e;

  memset(fail, 0, sizeof *fail);
  if ((e = take_snapshot(app, in, &s, fail)))
    return e;
  session_name(in->usage_id, sess);
  /* Refused requests hand out nothing, so they record nothing either. */
  if ((e = check_opts(&in->opts, &s, sess, fail))) {
    snapshot_free(&s);
    return e;
  }
  bool aws_network = s.prov == cs_provider_find("aws") &&
                     (meta_str(s.meta, "roleArn") || meta_bool(s.meta, "useAWSRole"));
  if (aws_network)
    e = resolve_aws(app, in, &s, sess, &m, &fail->upstream);
  else
    e = s.prov->resolve(s.meta, (const char *)s.plain, s.plain_len, &in->opts, &m);
  if (e == CS_ERR_INVALID) /* stored fields the resolver will not use */
    refuse(fail, NULL, "%s", fail->upstream.message[0] ? fail->upstream.message
                                                       : "the stored credential is unusable");
  if (!e && !cJSON_AddNumberToObject(m, "version", (double)s.version))
    e = CS_ERR_NOMEM;
  enum cs_err rec = cs_usage_record_resolve(app, a, in->cred_id, in->usage_id, s.version,
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
