/* The resolver: request checks, the cache of temporary credentials, and
 * single-flight. One mutex guards the table; it is never held across an
 * upstream call. The first caller of a cold key inserts a pending entry
 * and does the call unlocked; later callers of that key wait on the
 * entry's condition variable and share its result, success or error.
 * Entries are reference-counted so an entry dropped while others still
 * wait on it (invalidated, evicted, failed) is freed by the last one out. */
#include "aws_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096 /* power of two */
#define KEY_MAX 8192
#define ENDPOINT_MAX 400
#define DEFAULT_DURATION CS_AWS_DEFAULT_DURATION
#define DEFAULT_SESSION_NAME "credstore"
#define GLOBAL_REGION "us-east-1"

enum entry_state { ENTRY_PENDING, ENTRY_READY };

struct cs_aws_entry {
  struct cs_aws_entry *hnext;         /* bucket chain */
  struct cs_aws_entry *lprev, *lnext; /* LRU list (entries in the table) */
  uint64_t hash;
  char *key;
  size_t key_len;
  char *cred_id; /* NULL for the instance identity */
  enum entry_state state;
  bool in_table;
  unsigned refs; /* callers using the entry: its owner and its waiters */
  pthread_cond_t done;
  enum cs_err rc;
  struct cs_aws_creds creds;
  struct cs_aws_error err;
  int64_t valid_until; /* wall clock */
};

/* What a cold key needs fetched. */
struct job {
  bool instance_only;               /* the instance role's own credentials */
  const struct cs_aws_request *req; /* else: base identity of req, then AssumeRole */
  struct cs_aws_assume assume;
};

void cs_aws_creds_wipe(struct cs_aws_creds *c)
{
  if (c)
    cs_memzero(c, sizeof *c);
}

/* ------------------------------------------------------------ the table */

static uint64_t fnv1a(const char *s, size_t n)
{
  uint64_t h = 1469598103934665603ULL;

  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static struct cs_aws_entry **bucket(struct cs_aws_resolver *r, uint64_t h)
{
  return &r->buckets[h & (r->nbuckets - 1)];
}

static struct cs_aws_entry *find(struct cs_aws_resolver *r, uint64_t h, const char *key, size_t len)
{
  for (struct cs_aws_entry *e = *bucket(r, h); e; e = e->hnext)
    if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
      return e;
  return NULL;
}

static void lru_unlink(struct cs_aws_resolver *r, struct cs_aws_entry *e)
{
  if (e->lprev)
    e->lprev->lnext = e->lnext;
  else
    r->lru_head = e->lnext;
  if (e->lnext)
    e->lnext->lprev = e->lprev;
  else
    r->lru_tail = e->lprev;
  e->lprev = e->lnext = NULL;
}

static void lru_push(struct cs_aws_resolver *r, struct cs_aws_entry *e)
{
  e->lprev = NULL;
  e->lnext = r->lru_head;
  if (r->lru_head)
    r->lru_head->lprev = e;
  r->lru_head = e;
  if (!r->lru_tail)
    r->lru_tail = e;
}

static void entry_destroy(struct cs_aws_entry *e)
{
  cs_aws_creds_wipe(&e->creds);
  pthread_cond_destroy(&e->done);
  free(e->key);
  free(e->cred_id);
  free(e);
}

/* Take @p e out of the table; it lives on while someone still uses it. */
static void unlink_entry(struct cs_aws_resolver *r, struct cs_aws_entry *e)
{
  struct cs_aws_entry **pp = bucket(r, e->hash);

  if (!e->in_table)
    return;
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  e->hnext = NULL;
  lru_unlink(r, e);
  e->in_table = false;
  r->count--;
}

static void release(struct cs_aws_entry *e)
{
  if (!e->in_table && e->refs == 0)
    entry_destroy(e);
}

static void drop(struct cs_aws_resolver *r, struct cs_aws_entry *e)
{
  unlink_entry(r, e);
  release(e);
}

/* Make room by dropping the least recently used finished entries; pending
 * ones stay (someone is fetching them). @return false when all are pending. */
static bool make_room(struct cs_aws_resolver *r)
{
  struct cs_aws_entry *e = r->lru_tail;

  while (r->count >= CS_AWS_CACHE_MAX && e) {
    struct cs_aws_entry *prev = e->lprev;
    if (e->state == ENTRY_READY)
      drop(r, e);
    e = prev;
  }
  return r->count < CS_AWS_CACHE_MAX;
}

static struct cs_aws_entry *entry_new(uint64_t h, const char *key, size_t len, const char *cred_id)
{
  struct cs_aws_entry *e = calloc(1, sizeof *e);

  if (!e)
    return NULL;
  e->key = malloc(len);
  e->cred_id = cred_id ? strdup(cred_id) : NULL;
  if (!e->key || (cred_id && !e->cred_id) || pthread_cond_init(&e->done, NULL) != 0) {
    free(e->key);
    free(e->cred_id);
    free(e);
    return NULL;
  }
  memcpy(e->key, key, len);
  e->key_len = len;
  e->hash = h;
  e->state = ENTRY_PENDING;
  return e;
}

/* ---------------------------------------------------------- fetching */

static enum cs_err lookup(struct cs_aws_resolver *r, const char *key, size_t key_len,
                          const char *cred_id, const struct job *job, bool count,
                          struct cs_aws_creds *out, struct cs_aws_error *err);

static const struct job instance_job = {.instance_only = true};
static const char instance_key[] = "I"; /* other keys start with "s\n" or "i\n" */

static enum cs_err run_job(struct cs_aws_resolver *r, const struct job *job,
                           struct cs_aws_creds *out, struct cs_aws_error *err)
{
  struct cs_aws_creds base = {0};
  enum cs_err e;

  if (job->instance_only)
    return cs_aws_imds_fetch(r, out, err);
  if (job->req->use_instance_role) {
    /* The instance identity is shared by every credential that uses it. */
    e = lookup(r, instance_key, sizeof instance_key - 1, NULL, &instance_job, false, &base, err);
    if (e != CS_OK)
      goto out;
  } else {
    snprintf(base.access_key_id, sizeof base.access_key_id, "%s", job->req->access_key_id);
    snprintf(base.secret_access_key, sizeof base.secret_access_key, "%s", job->req->secret_key);
  }
  e = cs_aws_sts_assume_role(r, &base, &job->assume, out, err);
out:
  cs_aws_creds_wipe(&base);
  return e;
}

/* Under r->lock: wait for @p e (found in the table) and copy its outcome. */
static enum cs_err join(struct cs_aws_resolver *r, struct cs_aws_entry *e, struct cs_aws_creds *out,
                        struct cs_aws_error *err)
{
  enum cs_err rc;

  e->refs++;
  while (e->state == ENTRY_PENDING)
    pthread_cond_wait(&e->done, &r->lock);
  rc = e->rc;
  if (rc == CS_OK) {
    *out = e->creds;
    if (e->in_table) {
      lru_unlink(r, e);
      lru_push(r, e);
    }
  } else if (err) {
    *err = e->err;
  }
  e->refs--;
  release(e);
  return rc;
}

/* Under r->lock: record the outcome of the fetch of @p e and wake its waiters. */
static void settle(struct cs_aws_resolver *r, struct cs_aws_entry *e, enum cs_err rc,
                   const struct cs_aws_creds *c, const struct cs_aws_error *ce,
                   struct cs_aws_creds *out, struct cs_aws_error *err)
{
  e->rc = rc;
  e->state = ENTRY_READY;
  if (rc == CS_OK) {
    e->creds = *c;
    e->valid_until = c->expiration - CS_AWS_EXPIRY_MARGIN;
    *out = *c;
    if (cs_now() >= e->valid_until)
      unlink_entry(r, e); /* already too close to expiry to serve again */
  } else {
    e->err = *ce;
    if (err)
      *err = *ce;
    unlink_entry(r, e); /* errors are shared with waiters, never cached */
  }
  pthread_cond_broadcast(&e->done);
  e->refs--;
  release(e);
}

/* Cached credentials for @p key, or fetch them once for all concurrent
 * callers. @p count: this lookup is a resolve (stats), not a nested one. */
static enum cs_err lookup(struct cs_aws_resolver *r, const char *key, size_t key_len,
                          const char *cred_id, const struct job *job, bool count,
                          struct cs_aws_creds *out, struct cs_aws_error *err)
{
  uint64_t h = fnv1a(key, key_len);
  struct cs_aws_creds c = {0};
  struct cs_aws_error ce = {0};
  struct cs_aws_entry *e;
  enum cs_err rc;

  pthread_mutex_lock(&r->lock);
  e = find(r, h, key, key_len);
  if (e && e->state == ENTRY_READY && cs_now() >= e->valid_until) {
    drop(r, e);
    e = NULL;
  }
  if (e) {
    if (count)
      atomic_fetch_add(&r->cache_hits, 1);
    rc = join(r, e, out, err);
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  if (count)
    atomic_fetch_add(&r->cache_misses, 1);
  if (!(e = entry_new(h, key, key_len, cred_id))) {
    pthread_mutex_unlock(&r->lock);
    return CS_ERR_NOMEM;
  }
  e->refs = 1;
  if (make_room(r)) { /* else: fetched for this caller only, not kept */
    e->hnext = *bucket(r, h);
    *bucket(r, h) = e;
    lru_push(r, e);
    e->in_table = true;
    r->count++;
  }
  pthread_mutex_unlock(&r->lock);
  rc = run_job(r, job, &c, &ce);
  pthread_mutex_lock(&r->lock);
  settle(r, e, rc, &c, &ce, out, err);
  pthread_mutex_unlock(&r->lock);
  cs_aws_creds_wipe(&c);
  return rc;
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

static enum cs_err invalid(struct cs_aws_error *err, const char *msg)
{
  return cs_aws_fail(err, CS_ERR_INVALID, "InvalidRequest", "%s", msg);
}

/* Check @p req and fill @p a with the normalised AssumeRole parameters. */
static enum cs_err check_request(const struct cs_aws_request *req, struct cs_aws_assume *a,
                                 struct cs_aws_error *err)
{
  const char *akid = opt(req->access_key_id), *secret = opt(req->secret_key);

  if (req->use_instance_role) {
    if (akid || secret)
      return invalid(err, "stored keys and the instance role are exclusive");
  } else {
    if (!akid || !printable(akid, sizeof((struct cs_aws_creds *)0)->access_key_id - 1))
      return invalid(err, "access key id missing or malformed");
    if (!secret || !printable(secret, sizeof((struct cs_aws_creds *)0)->secret_access_key - 1))
      return invalid(err, "secret access key missing or malformed");
  }
  /* The rest only matters to AssumeRole. */
  if (!(a->role_arn = opt(req->role_arn)))
    return CS_OK;
  if (!printable(a->role_arn, 2048))
    return invalid(err, "roleArn is malformed");
  a->external_id = opt(req->external_id);
  if (a->external_id && !chars_ok(a->external_id, 2, 1224, "_+=,.@:/-"))
    return invalid(err, "externalID must be 2-1224 characters of A-Z a-z 0-9 _+=,.@:/-");
  a->session_name = opt(req->session_name) ? req->session_name : DEFAULT_SESSION_NAME;
  if (!chars_ok(a->session_name, 2, 64, "_+=,.@-"))
    return invalid(err, "sessionName must be 2-64 characters of A-Z a-z 0-9 _+=,.@-");
  a->duration_seconds = req->duration_seconds ? req->duration_seconds : DEFAULT_DURATION;
  if (a->duration_seconds < 900 || a->duration_seconds > 43200)
    return invalid(err, "durationSeconds must be from 900 to 43200");
  a->regional = req->regional_endpoint;
  a->region = GLOBAL_REGION;
  if (a->regional) {
    if (!opt(req->region) || !cs_aws_region_valid(req->region))
      return invalid(err, "a valid region is required with useSTSRegionalEndpoint");
    a->region = req->region;
  }
  return CS_OK;
}

/* Every input that changes the answer, each length-prefixed so no two
 * requests share a key. The region counts only where it is signed for. */
static enum cs_err build_key(const struct cs_aws_request *req, const struct cs_aws_assume *a,
                             struct cs_buf *key)
{
  const char *cred_id = req->cred_id ? req->cred_id : "";
  const char *akid = req->use_instance_role ? "" : req->access_key_id;
  const char *ext = a->external_id ? a->external_id : "";

  return cs_buf_printf(
      key, "%c\n%zu:%s\n%" PRIu64 "\n%zu:%s\n%zu:%s\n%zu:%s\n%zu:%s\n%" PRId64 "\n%zu:%s\n%d",
      req->use_instance_role ? 'i' : 's', strlen(cred_id), cred_id, req->version, strlen(akid),
      akid, strlen(a->role_arn), a->role_arn, strlen(ext), ext, strlen(a->session_name),
      a->session_name, a->duration_seconds, strlen(a->region), a->region, a->regional ? 1 : 0);
}

/* ------------------------------------------------------------- the API */

enum cs_err cs_aws_resolve(struct cs_aws_resolver *r, const struct cs_aws_request *req,
                           struct cs_aws_creds *out, struct cs_aws_error *err)
{
  struct job job = {.req = req};
  struct cs_buf key;
  enum cs_err e;

  if (!r || !req || !out)
    return CS_ERR_INTERNAL;
  if ((e = check_request(req, &job.assume, err)) != CS_OK)
    return e;

  if (!job.assume.role_arn) {
    if (req->use_instance_role)
      return lookup(r, instance_key, sizeof instance_key - 1, NULL, &instance_job, true, out, err);
    /* Static keys: handed out as stored, nothing to fetch or cache. */
    memset(out, 0, sizeof *out);
    snprintf(out->access_key_id, sizeof out->access_key_id, "%s", req->access_key_id);
    snprintf(out->secret_access_key, sizeof out->secret_access_key, "%s", req->secret_key);
    return CS_OK;
  }

  cs_buf_init(&key, KEY_MAX);
  if ((e = build_key(req, &job.assume, &key)) != CS_OK) {
    if (e != CS_ERR_NOMEM)
      e = invalid(err, "request too long");
    goto out;
  }
  e = lookup(r, key.data, key.len, req->cred_id ? req->cred_id : "", &job, true, out, err);
out:
  cs_buf_free(&key);
  return e;
}

void cs_aws_invalidate(struct cs_aws_resolver *r, const char *cred_id)
{
  if (!r || !cred_id)
    return;
  pthread_mutex_lock(&r->lock);
  for (size_t b = 0; b < r->nbuckets; b++) {
    struct cs_aws_entry *e = r->buckets[b];
    while (e) {
      struct cs_aws_entry *next = e->hnext;
      if (e->cred_id && strcmp(e->cred_id, cred_id) == 0)
        drop(r, e); /* a pending fetch still answers its waiters, then is freed */
      e = next;
    }
  }
  pthread_mutex_unlock(&r->lock);
}

void cs_aws_get_stats(struct cs_aws_resolver *r, struct cs_aws_stats *out)
{
  memset(out, 0, sizeof *out);
  if (!r)
    return;
  out->sts_calls = atomic_load(&r->sts_calls);
  out->imds_calls = atomic_load(&r->imds_calls);
  out->cache_hits = atomic_load(&r->cache_hits);
  out->cache_misses = atomic_load(&r->cache_misses);
}

static char *dup_endpoint(const char *s)
{
  size_t n = strlen(s);
  char *d;

  while (n > 0 && s[n - 1] == '/')
    n--;
  if (!(d = malloc(n + 1)))
    return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* An http(s) URL short enough for the fixed URL buffers of the clients. */
static bool endpoint_ok(const char *s)
{
  return strlen(s) <= ENDPOINT_MAX &&
         (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

enum cs_err cs_aws_resolver_create(const struct cs_aws_config *cfg, struct cs_aws_resolver **out)
{
  struct cs_aws_resolver *r;
  const char *imds = cfg && cfg->imds_endpoint ? cfg->imds_endpoint : "http://169.254.169.254";

  if (!endpoint_ok(imds) || (cfg && cfg->sts_endpoint && !endpoint_ok(cfg->sts_endpoint)))
    return CS_ERR_INVALID;
  if (cs_aws_http_global_init() != CS_OK)
    return CS_ERR_INTERNAL;
  if (!(r = calloc(1, sizeof *r)))
    return CS_ERR_NOMEM;
  r->nbuckets = NBUCKETS;
  r->timeout_ms = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
  r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
  r->imds_endpoint = dup_endpoint(imds);
  /* The STS override is used as given: it is the whole URL. */
  r->sts_endpoint = cfg && cfg->sts_endpoint ? strdup(cfg->sts_endpoint) : NULL;
  if (!r->buckets || !r->imds_endpoint || (cfg && cfg->sts_endpoint && !r->sts_endpoint)) {
    free(r->buckets);
    free(r->imds_endpoint);
    free(r->sts_endpoint);
    free(r);
    return CS_ERR_NOMEM;
  }
  pthread_mutex_init(&r->lock, NULL);
  pthread_mutex_init(&r->imds_lock, NULL);
  atomic_init(&r->sts_calls, 0);
  atomic_init(&r->imds_calls, 0);
  atomic_init(&r->cache_hits, 0);
  atomic_init(&r->cache_misses, 0);
  *out = r;
  return CS_OK;
}

void cs_aws_resolver_free(struct cs_aws_resolver *r)
{
  if (!r)
    return;
  /* No resolve may run now, so every entry has no users left. */
  for (size_t b = 0; b < r->nbuckets; b++) {
    struct cs_aws_entry *e = r->buckets[b];
    while (e) {
      struct cs_aws_entry *next = e->hnext;
      entry_destroy(e);
      e = next;
    }
  }
  cs_memzero(r->imds_token, sizeof r->imds_token);
  pthread_mutex_destroy(&r->lock);
  pthread_mutex_destroy(&r->imds_lock);
  free(r->buckets);
  free(r->imds_endpoint);
  free(r->sts_endpoint);
  free(r);
}
