/* The AWS resolver: request checks, cache keys, the refresh window, and
 * "Test connection". Caching and single-flight are the broker's cache
 * (providers/cache.c); what is fetched for a key is a `struct job`. */
#include "aws_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 8192
#define DEFAULT_SESSION_NAME "credstore"
#define TEST_SESSION_NAME "credstore-test"
#define GLOBAL_REGION "us-east-1"

/* What a cold or due key needs fetched. */
struct job {
  struct cs_broker *b;
  bool instance_only;               /* the instance role's own credentials */
  const struct cs_aws_request *req; /* else: base identity of req, then the STS action */
  enum cs_sts_action action;        /* AssumeRole or GetSessionToken */
  struct cs_sts_params params;
};

void cs_aws_creds_wipe(struct cs_aws_creds *c)
{
  if (c)
    cs_memzero(c, sizeof *c);
}

int64_t cs_aws_serve_until(int64_t expiration, int64_t duration, int64_t now)
{
  int64_t d = duration > 0 ? duration : expiration - now;

  return expiration - (d > CS_AWS_REFRESH_WINDOW ? CS_AWS_REFRESH_WINDOW : CS_AWS_SHORT_MARGIN);
}

/* ----------------------------------------------------------- fetching */

static enum cs_err lookup(struct cs_broker *b, enum cs_broker_kind kind, const char *key,
                          size_t key_len, const char *cred_id, struct job *job,
                          struct cs_aws_creds *out, struct cs_net_error *err);

static const char instance_key[] = "I"; /* other keys start with "s\n", "i\n" or "g\n" */

/* The instance identity, shared by every credential that uses it; a nested
 * lookup (inside another fetch) is not counted as a resolve. */
static enum cs_err instance_creds(struct cs_broker *b, bool count, struct cs_aws_creds *out,
                                  struct cs_net_error *err)
{
  struct job job = {.b = b, .instance_only = true};

  return lookup(b, count ? CS_KIND_IMDS : CS_KIND__COUNT, instance_key, sizeof instance_key - 1,
                NULL, &job, out, err);
}

/* The identity that signs: stored keys, or the instance role's credentials. */
static enum cs_err base_identity(struct cs_broker *b, const struct cs_aws_request *req,
                                 struct cs_aws_creds *base, struct cs_net_error *err)
{
  memset(base, 0, sizeof *base);
  if (req->use_instance_role)
    return instance_creds(b, false, base, err);
  snprintf(base->access_key_id, sizeof base->access_key_id, "%s", req->access_key_id);
  snprintf(base->secret_access_key, sizeof base->secret_access_key, "%s", req->secret_key);
  return CS_OK;
}

static enum cs_err run_job(void *arg, struct cs_cache_val *out, struct cs_net_error *err)
{
  struct job *job = arg;
  struct cs_aws_creds base;
  struct cs_sts_result r = {0};
  struct cs_aws_creds *c;
  int64_t duration = 0;
  enum cs_err e;

  if (!(c = calloc(1, sizeof *c)))
    return CS_ERR_NOMEM;
  if (job->instance_only) {
    e = cs_aws_imds_fetch(job->b, c, err);
  } else if ((e = base_identity(job->b, job->req, &base, err)) == CS_OK) {
    e = cs_aws_sts_call(job->b, job->action, &base, &job->params, &r, err);
    *c = r.creds;
    duration = job->params.duration_seconds;
  }
  cs_aws_creds_wipe(&base);
  cs_sts_result_wipe(&r);
  if (e != CS_OK) {
    cs_aws_creds_wipe(c);
    free(c);
    return e;
  }
  *out = (struct cs_cache_val){c, sizeof *c, c->expiration,
                               cs_aws_serve_until(c->expiration, duration, cs_now())};
  return CS_OK;
}

/* Cached credentials for @p key, or fetch them once for all concurrent callers. */
static enum cs_err lookup(struct cs_broker *b, enum cs_broker_kind kind, const char *key,
                          size_t key_len, const char *cred_id, struct job *job,
                          struct cs_aws_creds *out, struct cs_net_error *err)
{
  struct cs_cache_req cr = {key, key_len, cred_id, run_job, job, sizeof *out};
  struct cs_cache_val v = {0};
  enum cs_err e = cs_broker_cached(b, kind, &cr, &v, err);

  if (e == CS_OK) {
    if (v.len == sizeof *out)
      memcpy(out, v.data, sizeof *out);
    else
      e = CS_ERR_INTERNAL;
  }
  cs_cache_val_wipe(&v);
  return e;
}

/* ------------------------------------------------------ request checks */

static const char *opt(const char *s) { return s && s[0] ? s : NULL; }

static bool chars_ok(const char *s, size_t min, size_t max, const char *extra)
{
  size_t n = strlen(s);

  if (n < min || n > max)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          (c != '\0' && strchr(extra, c))))
      return false;
  }
  return true;
}

static bool printable(const char *s, size_t max)
{
  size_t n = strlen(s);

  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e)
      return false;
  return true;
}

static enum cs_err invalid(struct cs_net_error *err, const char *field, const char *msg)
{
  return cs_net_fail_field(err, CS_ERR_INVALID, field, "%s", msg);
}

static enum cs_err check_identity(const struct cs_aws_request *req, struct cs_net_error *err)
{
  const char *akid = opt(req->access_key_id), *secret = opt(req->secret_key);

  if (req->use_instance_role)
    return akid || secret
               ? invalid(err, "useAWSRole", "stored keys and the instance role are exclusive")
               : CS_OK;
  if (!akid || !printable(akid, sizeof((struct cs_aws_creds *)0)->access_key_id - 1))
    return invalid(err, "accountID", "access key id missing or malformed");
  if (!secret || !printable(secret, sizeof((struct cs_aws_creds *)0)->secret_access_key - 1))
    return invalid(err, "secret", "secret access key missing or malformed");
  return CS_OK;
}

/* Duration, endpoint and signing region: what every STS call needs. */
static enum cs_err check_sts_params(const struct cs_aws_request *req, struct cs_sts_params *p,
                                    struct cs_net_error *err)
{
  p->duration_seconds = req->duration_seconds ? req->duration_seconds : CS_AWS_DEFAULT_DURATION;
  if (p->duration_seconds < 900 || p->duration_seconds > 43200)
    return invalid(err, "durationSeconds", "durationSeconds must be from 900 to 43200");
  p->regional = req->regional_endpoint;
  p->region = GLOBAL_REGION;
  if (p->regional) {
    if (!opt(req->region) || !cs_aws_region_valid(req->region))
      return invalid(err, "region", "a valid region is required with useSTSRegionalEndpoint");
    p->region = req->region;
  }
  return CS_OK;
}

/* Check @p req and fill @p job with the normalised STS parameters. */
static enum cs_err check_request(const struct cs_aws_request *req, struct job *job,
                                 struct cs_net_error *err)
{
  struct cs_sts_params *p = &job->params;
  enum cs_err e;

  if ((e = check_identity(req, err)) != CS_OK)
    return e;
  p->role_arn = opt(req->role_arn);
  if (req->session) {
    if (p->role_arn || req->use_instance_role)
      return invalid(err, "format",
                     "format \"session\" (GetSessionToken) is for static access "
                     "keys without a role");
    job->action = CS_STS_GET_SESSION_TOKEN;
    return check_sts_params(req, p, err);
  }
  if (!p->role_arn) /* the rest only matters to AssumeRole */
    return CS_OK;
  job->action = CS_STS_ASSUME_ROLE;
  if (!printable(p->role_arn, 2048))
    return invalid(err, "roleArn", "roleArn is malformed");
  p->external_id = opt(req->external_id);
  if (p->external_id && !chars_ok(p->external_id, 2, 1224, "_+=,.@:/-"))
    return invalid(err, "externalID",
                   "externalID must be 2-1224 characters of A-Z a-z 0-9 _+=,.@:/-");
  p->session_name = opt(req->session_name) ? req->session_name : DEFAULT_SESSION_NAME;
  if (!chars_ok(p->session_name, 2, 64, "_+=,.@-"))
    return invalid(err, "sessionName",
                   "sessionName must be 2-64 characters of A-Z a-z 0-9 "
                   "_+=,.@-");
  return check_sts_params(req, p, err);
}

/* Append "<length>:<s>\n". */
static enum cs_err key_str(struct cs_buf *key, const char *s)
{
  size_t n = strlen(s);
  enum cs_err e;

  if ((e = cs_buf_u64(key, n)) || (e = cs_buf_append(key, ":", 1)) ||
      (e = cs_buf_append(key, s, n)))
    return e;
  return cs_buf_append(key, "\n", 1);
}

/* Every input that changes the answer, each length-prefixed so no two
 * requests share a key. The region counts only where it is signed for.
 * Built on every resolve of a cached role, so without printf: kind, the
 * credential id and version, the access key, role, external id, session
 * name, duration, region, regional flag, one per line. */
static enum cs_err build_key(const struct cs_aws_request *req, const struct job *job,
                             struct cs_buf *key)
{
  const struct cs_sts_params *p = &job->params;
  const char *cred_id = req->cred_id ? req->cred_id : "";
  const char *akid = req->use_instance_role ? "" : req->access_key_id;
  const char *role = p->role_arn ? p->role_arn : "", *ext = p->external_id ? p->external_id : "";
  const char *sess = p->session_name ? p->session_name : "";
  char head[2] = {req->session ? 'g' : req->use_instance_role ? 'i' : 's', '\n'};
  int64_t d = p->duration_seconds;
  enum cs_err e;

  if ((e = cs_buf_append(key, head, 2)) || (e = key_str(key, cred_id)) ||
      (e = cs_buf_u64(key, req->version)) || (e = cs_buf_append(key, "\n", 1)) ||
      (e = key_str(key, akid)) || (e = key_str(key, role)) || (e = key_str(key, ext)) ||
      (e = key_str(key, sess)) || (d < 0 && (e = cs_buf_append(key, "-", 1))) ||
      (e = cs_buf_u64(key, d < 0 ? 0 - (uint64_t)d : (uint64_t)d)) ||
      (e = cs_buf_append(key, "\n", 1)) || (e = key_str(key, p->region)))
    return e;
  return cs_buf_append(key, p->regional ? "1" : "0", 1);
}

/* ------------------------------------------------------------- the API */

enum cs_err cs_broker_aws(struct cs_broker *b, const struct cs_aws_request *req,
                          struct cs_aws_creds *out, struct cs_net_error *err)
{
  struct job job = {.b = b, .req = req};
  struct cs_buf key;
  enum cs_err e;

  if (!req || !out)
    return CS_ERR_INTERNAL;
  if (!b)
    return CS_ERR_UNAVAILABLE; /* offline commands and unit tests run without a broker */
  if ((e = check_request(req, &job, err)) != CS_OK)
    return e;

  if (!job.params.role_arn && !req->session) {
    if (req->use_instance_role)
      return instance_creds(b, true, out, err);
    /* Static keys: handed out as stored, nothing to fetch or cache. */
    memset(out, 0, sizeof *out);
    snprintf(out->access_key_id, sizeof out->access_key_id, "%s", req->access_key_id);
    snprintf(out->secret_access_key, sizeof out->secret_access_key, "%s", req->secret_key);
    return CS_OK;
  }

  cs_buf_init(&key, KEY_MAX);
  if ((e = build_key(req, &job, &key)) != CS_OK) {
    if (e != CS_ERR_NOMEM)
      e = invalid(err, NULL, "request too long");
    goto out;
  }
  e = lookup(b, CS_KIND_STS, key.data, key.len, req->cred_id ? req->cred_id : "", &job, out, err);
out:
  cs_buf_free(&key);
  return e;
}

/* ---------------------------------------------------- test connection */

enum cs_err cs_aws_test(struct cs_broker *b, const struct cs_aws_request *req,
                        struct cs_test_result *out)
{
  struct cs_aws_request r = *req;
  struct job job = {.b = b, .req = &r};
  struct cs_sts_result who = {0}, assumed = {0};
  struct cs_aws_creds base = {0};
  struct cs_net_error err = {0};
  int64_t t0;
  enum cs_err e;

  if (!b)
    return CS_ERR_UNAVAILABLE;
  cs_test_start(out, &t0);
  r.session = false;
  r.session_name = opt(req->session_name) ? req->session_name : TEST_SESSION_NAME;
  if ((e = check_request(&r, &job, &err)) != CS_OK ||
      (!job.params.role_arn && (e = check_sts_params(&r, &job.params, &err)) != CS_OK) ||
      (e = base_identity(b, &r, &base, &err)) != CS_OK ||
      (e = cs_aws_sts_call(b, CS_STS_GET_CALLER_IDENTITY, &base, &job.params, &who, &err)))
    goto out;
  if (!job.params.role_arn) {
    cs_test_ok(out, t0, who.arn, "STS GetCallerIdentity: %s (account %s)", who.arn, who.account);
    goto out;
  }
  if ((e = cs_aws_sts_call(b, CS_STS_ASSUME_ROLE, &base, &job.params, &assumed, &err)))
    goto out;
  cs_test_ok(out, t0, assumed.arn[0] ? assumed.arn : job.params.role_arn,
             "STS GetCallerIdentity: %s; AssumeRole %s: ok", who.arn, job.params.role_arn);
out:
  if (e == CS_ERR_NOMEM || e == CS_ERR_INTERNAL) {
    cs_test_failed(out, t0, &err);
  } else if (e != CS_OK) {
    cs_test_failed(out, t0, &err);
    e = CS_OK;
  }
  cs_aws_creds_wipe(&base);
  cs_sts_result_wipe(&who);
  cs_sts_result_wipe(&assumed);
  return e;
}
