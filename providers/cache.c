/* The cache of short-lived material (STS and IMDS credentials, Entra,
 * Google and IBM tokens): one table for every kind, keyed by bytes the
 * caller builds (kind, credential id, version, parameters), with
 * single-flight and renewal before the material reaches its window.
 *
 * One mutex guards the table; it is never held across an upstream call.
 * The first caller of a cold or due key puts a pending entry in the table
 * and fetches unlocked; later callers of that key wait on the entry's
 * condition variable and share its result, success or error. Entries are
 * reference-counted so one dropped while others still wait on it
 * (invalidated, evicted, failed) is freed by the last one out.
 *
 * A due entry (past serve_until) is renewed before it is handed out. Its
 * old value rides along with the renewal as a fallback: if the upstream
 * call fails while the old material still has more than
 * CS_CACHE_FALLBACK_MIN seconds to live, the old value is served (and
 * renewal retried after CS_CACHE_RETRY_S), as the AWS SDKs keep their
 * credentials when an advisory refresh fails. Values are secret: every
 * copy is wiped before it is freed. */
#include "prov_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096 /* power of two */

enum state { PENDING, READY };

struct entry {
  struct entry *hnext;         /* bucket chain */
  struct entry *lprev, *lnext; /* LRU list (entries in the table) */
  uint64_t hash;
  char *key;
  size_t key_len;
  char *cred_id; /* NULL: belongs to no credential (the instance identity) */
  enum state state;
  bool in_table;
  unsigned refs; /* callers using the entry: its fetcher and its waiters */
  pthread_cond_t done;
  enum cs_err rc;
  bool fell_back;
  struct cs_net_error err;
  struct cs_cache_val val;      /* READY and rc == CS_OK */
  struct cs_cache_val fallback; /* PENDING renewal: the value it replaces, if usable */
};

struct cs_cache {
  pthread_mutex_t lock;
  struct entry *buckets[NBUCKETS];
  size_t count, bytes, max_count, max_bytes;
  struct entry *lru_head, *lru_tail; /* most recently used first */
};

void cs_cache_val_wipe(struct cs_cache_val *v)
{
  if (!v)
    return;
  if (v->data) {
    cs_memzero(v->data, v->len);
    free(v->data);
  }
  memset(v, 0, sizeof *v);
}

static enum cs_err val_copy(const struct cs_cache_val *v, struct cs_cache_val *out)
{
  *out = *v;
  if (!(out->data = malloc(v->len ? v->len : 1)))
    return CS_ERR_NOMEM;
  memcpy(out->data, v->data, v->len);
  return CS_OK;
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

static struct entry **bucket(struct cs_cache *c, uint64_t h)
{
  return &c->buckets[h & (NBUCKETS - 1)];
}

static struct entry *find(struct cs_cache *c, uint64_t h, const char *key, size_t len)
{
  for (struct entry *e = *bucket(c, h); e; e = e->hnext)
    if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
      return e;
  return NULL;
}

static void lru_unlink(struct cs_cache *c, struct entry *e)
{
  if (e->lprev)
    e->lprev->lnext = e->lnext;
  else
    c->lru_head = e->lnext;
  if (e->lnext)
    e->lnext->lprev = e->lprev;
  else
    c->lru_tail = e->lprev;
  e->lprev = e->lnext = NULL;
}

static void lru_push(struct cs_cache *c, struct entry *e)
{
  e->lprev = NULL;
  e->lnext = c->lru_head;
  if (c->lru_head)
    c->lru_head->lprev = e;
  c->lru_head = e;
  if (!c->lru_tail)
    c->lru_tail = e;
}

static size_t weight(const struct entry *e) { return e->key_len + e->val.len + e->fallback.len; }

static void entry_destroy(struct entry *e)
{
  cs_cache_val_wipe(&e->val);
  cs_cache_val_wipe(&e->fallback);
  pthread_cond_destroy(&e->done);
  free(e->key);
  free(e->cred_id);
  free(e);
}

/* Take @p e out of the table; it lives on while someone still uses it. */
static void unlink_entry(struct cs_cache *c, struct entry *e)
{
  struct entry **pp = bucket(c, e->hash);

  if (!e->in_table)
    return;
  while (*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  e->hnext = NULL;
  lru_unlink(c, e);
  e->in_table = false;
  c->count--;
  c->bytes -= weight(e);
}

static void release(struct entry *e)
{
  if (!e->in_table && e->refs == 0)
    entry_destroy(e);
}

static void drop(struct cs_cache *c, struct entry *e)
{
  unlink_entry(c, e);
  /* A renewal of a dropped (edited, deleted) credential must not fall back. */
  cs_cache_val_wipe(&e->fallback);
  release(e);
}

/* Make room for @p need more bytes by dropping the least recently used
 * finished entries; pending ones stay (someone is fetching them).
 * @return false when that is not enough. */
static bool make_room(struct cs_cache *c, size_t need)
{
  struct entry *e = c->lru_tail;

  while ((c->count >= c->max_count || c->bytes + need > c->max_bytes) && e) {
    struct entry *prev = e->lprev;
    if (e->state == READY)
      drop(c, e);
    e = prev;
  }
  return c->count < c->max_count && c->bytes + need <= c->max_bytes;
}

static void insert(struct cs_cache *c, struct entry *e)
{
  e->hnext = *bucket(c, e->hash);
  *bucket(c, e->hash) = e;
  lru_push(c, e);
  e->in_table = true;
  c->count++;
  c->bytes += weight(e);
}

static struct entry *entry_new(uint64_t h, const char *key, size_t len, const char *cred_id)
{
  struct entry *e = calloc(1, sizeof *e);

  if (!e)
    return NULL;
  e->key = malloc(len ? len : 1);
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
  e->state = PENDING;
  return e;
}

/* ------------------------------------------------------------- lookups */

/* Hand the finished entry's result to one caller. */
static enum cs_err result(const struct entry *e, struct cs_cache_val *out, struct cs_net_error *err)
{
  if (e->rc != CS_OK) {
    if (err)
      *err = e->err;
    return e->rc;
  }
  return val_copy(&e->val, out);
}

/* A due entry: its value becomes the renewal's fallback, if still worth it. */
static void retire_due(struct cs_cache *c, struct entry *e, struct cs_cache_val *fallback)
{
  c->bytes -= e->val.len;
  *fallback = e->val;
  memset(&e->val, 0, sizeof e->val);
  if (fallback->expires_at - cs_now() <= CS_CACHE_FALLBACK_MIN)
    cs_cache_val_wipe(fallback);
  drop(c, e);
}

/* Record the fetch's outcome in @p e (locked). */
static void settle(struct cs_cache *c, struct entry *e, enum cs_err rc, struct cs_cache_val *v,
                   const struct cs_net_error *err)
{
  int64_t now = cs_now();

  if (e->in_table)
    c->bytes -= weight(e);
  if (rc != CS_OK && e->fallback.data && e->fallback.expires_at - now > CS_CACHE_FALLBACK_MIN) {
    CS_LOG(CS_LOG_WARN, "renewal failed (%s: %s); serving the cached material, %lld s left",
           err->code, err->message, (long long)(e->fallback.expires_at - now));
    cs_cache_val_wipe(v);
    *v = e->fallback;
    memset(&e->fallback, 0, sizeof e->fallback);
    v->serve_until = now + CS_CACHE_RETRY_S;
    if (v->serve_until > v->expires_at - CS_CACHE_FALLBACK_MIN)
      v->serve_until = v->expires_at - CS_CACHE_FALLBACK_MIN;
    rc = CS_OK;
    e->fell_back = true;
  }
  cs_cache_val_wipe(&e->fallback);
  e->rc = rc;
  e->state = READY;
  if (rc == CS_OK) {
    e->val = *v;
    memset(v, 0, sizeof *v);
  } else {
    e->err = *err;
  }
  if (e->in_table)
    c->bytes += weight(e);
  /* Errors are shared with waiters, never cached; nor is what is already
   * too close to its end to serve even as a fallback. */
  if (rc != CS_OK || e->val.expires_at - now <= CS_CACHE_FALLBACK_MIN)
    unlink_entry(c, e);
}

enum cs_err cs_cache_get(struct cs_cache *c, const struct cs_cache_req *req,
                         struct cs_cache_val *out, struct cs_net_error *err, enum cs_cache_how *how)
{
  uint64_t h = fnv1a(req->key, req->key_len);
  struct cs_cache_val fallback = {0}, v = {0};
  struct cs_net_error fe = {0};
  struct entry *e;
  enum cs_err rc;

  *how = CS_CACHE_HIT;
  pthread_mutex_lock(&c->lock);
  e = find(c, h, req->key, req->key_len);
  if (e && e->state == READY && cs_now() >= e->val.serve_until) {
    retire_due(c, e, &fallback);
    e = NULL;
  }
  if (e) { /* fresh, or being fetched by someone else: share it */
    e->refs++;
    while (e->state == PENDING)
      pthread_cond_wait(&e->done, &c->lock);
    rc = result(e, out, err);
    if (e->fell_back)
      *how = CS_CACHE_FALLBACK;
    if (e->in_table) {
      lru_unlink(c, e);
      lru_push(c, e);
    }
    e->refs--;
    release(e);
    pthread_mutex_unlock(&c->lock);
    return rc;
  }

  *how = CS_CACHE_MISS;
  if (!(e = entry_new(h, req->key, req->key_len, req->cred_id))) {
    pthread_mutex_unlock(&c->lock);
    cs_cache_val_wipe(&fallback);
    return CS_ERR_NOMEM;
  }
  e->refs = 1;
  e->fallback = fallback;
  if (make_room(c, weight(e) + req->size_hint)) /* else: fetched for this caller only */
    insert(c, e);
  pthread_mutex_unlock(&c->lock);

  rc = req->fetch(req->arg, &v, &fe);
  if (rc == CS_OK && !v.data)
    rc = CS_ERR_INTERNAL;

  pthread_mutex_lock(&c->lock);
  settle(c, e, rc, &v, &fe);
  if (e->fell_back)
    *how = CS_CACHE_FALLBACK;
  rc = result(e, out, err);
  pthread_cond_broadcast(&e->done);
  e->refs--;
  release(e);
  pthread_mutex_unlock(&c->lock);
  cs_cache_val_wipe(&v);
  return rc;
}

void cs_cache_invalidate(struct cs_cache *c, const char *cred_id)
{
  if (!c || !cred_id)
    return;
  pthread_mutex_lock(&c->lock);
  for (size_t b = 0; b < NBUCKETS; b++) {
    struct entry *e = c->buckets[b];
    while (e) {
      struct entry *next = e->hnext;
      if (e->cred_id && strcmp(e->cred_id, cred_id) == 0)
        drop(c, e); /* a pending fetch still answers its waiters, then is freed */
      e = next;
    }
  }
  pthread_mutex_unlock(&c->lock);
}

enum cs_err cs_cache_create(size_t max_count, size_t max_bytes, struct cs_cache **out)
{
  struct cs_cache *c = calloc(1, sizeof *c);

  if (!c)
    return CS_ERR_NOMEM;
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return CS_ERR_INTERNAL;
  }
  c->max_count = max_count ? max_count : CS_CACHE_MAX_ENTRIES;
  c->max_bytes = max_bytes ? max_bytes : CS_CACHE_MAX_BYTES;
  *out = c;
  return CS_OK;
}

void cs_cache_free(struct cs_cache *c)
{
  if (!c)
    return;
  /* No lookup may run now, so every entry has no users left. */
  for (size_t b = 0; b < NBUCKETS; b++) {
    struct entry *e = c->buckets[b];
    while (e) {
      struct entry *next = e->hnext;
      entry_destroy(e);
      e = next;
    }
  }
  pthread_mutex_destroy(&c->lock);
  free(c);
}
