/*
 * etcd backend: opening a store (the local copy's private LMDB env, the
 * schema, the initial load), closing it, and the key layout. The watch and
 * health threads live in watch.c.
 */
#include "etcd.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CS_ETCD_PAGE "100" /* records per range page */

/* ------------------------------------------------------------------ keys */

enum cs_err cs_etcd_key_b64(struct cs_buf *b, const struct cs_etcd *e, int table, const void *key,
                            size_t klen)
{
  uint8_t raw[CS_ETCD_KEY_MAX + 64];
  const char *pre = table >= 0 ? e->tpre[table] : e->prefix;
  size_t plen = table >= 0 ? e->tpre_len[table] : e->prefix_len;

  if (plen + klen > sizeof raw)
    return CS_ERR_INVALID;
  memcpy(raw, pre, plen);
  if (klen)
    memcpy(raw + plen, key, klen);
  return cs_etcd_b64(b, raw, plen + klen);
}

int cs_etcd_split_key(const struct cs_etcd *e, const uint8_t *key, size_t len, const uint8_t **rk,
                      size_t *rlen)
{
  if (len <= e->prefix_len || memcmp(key, e->prefix, e->prefix_len) != 0)
    return -1;
  for (int t = 0; t < CS_TBL__COUNT; t++) {
    size_t n = e->tpre_len[t];

    if (len > n && memcmp(key, e->tpre[t], n) == 0) {
      *rk = key + n;
      *rlen = len - n;
      return t;
    }
  }
  return -1; /* _sys/, or a table this build does not know */
}

/* "key": @p from (NULL: PREFIX), "range_end": the end of PREFIX (its last
 * '/' as '0'): the members of a range over the store, or its rest. */
enum cs_err cs_etcd_store_range(struct cs_buf *b, const struct cs_etcd *e, const uint8_t *from,
                                size_t flen)
{
  char end[CS_ETCD_PREFIX_MAX + 1];
  enum cs_err r;

  memcpy(end, e->prefix, e->prefix_len + 1);
  end[e->prefix_len - 1] = '0';
  r = CS_BUF_LIT(b, "\"key\":\"");
  if (r == CS_OK)
    r = from ? cs_etcd_b64(b, from, flen) : cs_etcd_b64(b, e->prefix, e->prefix_len);
  if (r == CS_OK)
    r = CS_BUF_LIT(b, "\",\"range_end\":\"");
  if (r == CS_OK)
    r = cs_etcd_b64(b, end, e->prefix_len);
  return r == CS_OK ? CS_BUF_LIT(b, "\"") : r;
}

/* POST @p body with a handle of the pool; @p bg: for the background counter. */
static enum cs_err post(struct cs_etcd *e, const char *path, struct cs_buf *body, bool idempotent,
                        bool bg, cJSON **out)
{
  struct cs_etcd_call r = {
      .path = path, .idempotent = idempotent, .background = bg, .ep = -1, .abort = &e->stop};
  CURL *h = cs_etcd_handle_get(&e->cli);
  enum cs_err err;

  if (!h)
    return CS_ERR_NOMEM;
  r.body = body->data;
  r.len = body->len;
  err = cs_etcd_post(&e->cli, h, &r, out);
  cs_etcd_handle_put(&e->cli, h);
  return err;
}

/* ------------------------------------------------------------------ load */

/* Index a feed record by its create revision (etcd.h "Feeds"). */
static int index_feed(struct cs_etcd *e, MDB_txn *txn, int t, int64_t created, const uint8_t *key,
                      size_t klen)
{
  uint8_t ik[8 + CS_STORE_KEY_MAX];
  MDB_val k = {8 + klen, ik}, v = {0, ""};

  if (created <= 0 || klen > CS_STORE_KEY_MAX)
    return -1;
  cs_store_seq_key((uint64_t)created, ik);
  memcpy(ik + 8, key, klen);
  return mdb_put(txn, e->ord[cs_feed_index((enum cs_table)t)], &k, &v, 0);
}

/* Whether any record indexed under revision @p be (8 bytes BE) of feed
 * table @p t is still in the copy; with @p drop and none left, remove the
 * revision's index entries. A revision's entries go all at once or not at
 * all: the ranks, hence the feed positions, of the records that remain stay
 * as they were, and an index no longer grows with every record ever written
 * (retention and audit-prune remove whole commits, etcd.h "Feeds"). */
static int unindex_feed_rev(struct cs_etcd *e, MDB_txn *txn, int t, const uint8_t be[8])
{
  MDB_dbi ord = e->ord[cs_feed_index((enum cs_table)t)];
  MDB_cursor *c;
  MDB_val k = {8, (void *)be}, v;
  bool live = false;
  int rc = mdb_cursor_open(txn, ord, &c);

  if (rc)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
       !rc && !live && k.mv_size >= 8 && memcmp(k.mv_data, be, 8) == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    MDB_val rk = {k.mv_size - 8, (uint8_t *)k.mv_data + 8}, rv;
    int g = mdb_get(txn, e->st->dbi[t], &rk, &rv);

    if (g && g != MDB_NOTFOUND) {
      rc = g;
      break;
    }
    live = g == 0;
  }
  rc = rc == MDB_NOTFOUND ? 0 : rc;
  while (!rc && !live) { /* each pass seeks afresh: no cursor state after a delete */
    k = (MDB_val){8, (void *)be};
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc || k.mv_size < 8 || memcmp(k.mv_data, be, 8) != 0)
      break;
    rc = mdb_cursor_del(c, 0);
  }
  rc = rc == MDB_NOTFOUND ? 0 : rc;
  mdb_cursor_close(c);
  return rc;
}

/* Delete record @p k of table @p t from the copy, and for a feed table
 * the index entries of its revision once it was the last of them (feed
 * records are written once: their revision in "_rev" is the create
 * revision the index is keyed by). */
static int delete_kv(struct cs_etcd *e, MDB_txn *txn, int t, MDB_val *k)
{
  uint8_t be[8];
  bool feed = false;
  MDB_val r;
  int rc;

  if (cs_feed_index((enum cs_table)t) >= 0 && mdb_get(txn, e->rev[t], k, &r) == 0 &&
      r.mv_size == 8) {
    memcpy(be, r.mv_data, 8);
    feed = true;
  }
  rc = mdb_del(txn, e->st->dbi[t], k, NULL);
  if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND)
    rc = mdb_del(txn, e->rev[t], k, NULL);
  rc = rc == MDB_NOTFOUND ? 0 : rc;
  if (!rc && feed)
    rc = unindex_feed_rev(e, txn, t, be);
  return rc;
}

/* Put one kv of a range or watch reply into the copy. @return an LMDB rc
 * (MDB_MAP_FULL: grow and redo), or -1 for a malformed kv. */
static int apply_kv(struct cs_etcd *e, MDB_txn *txn, const cJSON *kv, bool del)
{
  uint8_t *key = NULL, *val = NULL, be[8];
  size_t klen, vlen = 0, rlen;
  const uint8_t *rk;
  int64_t mod = cs_etcd_int(kv, "mod_revision");
  MDB_val k, v, r = {8, be};
  int t, rc = -1;

  if (mod <= 0 || cs_etcd_unb64(cJSON_GetObjectItemCaseSensitive(kv, "key"), &key, &klen))
    goto out;
  if (klen == e->prefix_len + e->node_len && memcmp(key, e->prefix, e->prefix_len) == 0 &&
      memcmp(key + e->prefix_len, e->node, e->node_len) == 0)
    e->node_mod = del ? 0 : mod; /* write_mu: the appliers hold it */
  t = cs_etcd_split_key(e, key, klen, &rk, &rlen);
  if (t < 0 || rlen > e->st->max_key) {
    rc = 0; /* not a record: the backend's own keys, or another build's */
    goto out;
  }
  if (!del && cs_etcd_unb64(cJSON_GetObjectItemCaseSensitive(kv, "value"), &val, &vlen))
    goto out;
  k = (MDB_val){rlen, (void *)rk};
  v = (MDB_val){vlen, val};
  if (del) {
    rc = delete_kv(e, txn, t, &k);
    goto out;
  }
  cs_store_seq_key((uint64_t)mod, be);
  rc = mdb_put(txn, e->st->dbi[t], &k, &v, 0);
  if (rc == MDB_SUCCESS)
    rc = mdb_put(txn, e->rev[t], &k, &r, 0);
  if (rc == MDB_SUCCESS && cs_feed_index(t) >= 0)
    rc = index_feed(e, txn, t, cs_etcd_int(kv, "create_revision"), rk, rlen);
out:
  if (rc < 0)
    CS_LOG(CS_LOG_ERROR, "store: etcd sent a malformed record");
  free(key);
  free(val);
  return rc;
}

/* Apply a reply's "kvs" (or a watch reply's events: @p events) to @p txn.
 * @return CS_ERR_STORE_FULL (grow the map and redo), CS_ERR_STORE. */
enum cs_err cs_etcd_apply_all(struct cs_etcd *e, MDB_txn *txn, const cJSON *list, bool events,
                              int64_t *max_rev)
{
  const cJSON *it;

  cJSON_ArrayForEach(it, list)
  {
    const cJSON *kv = events ? cJSON_GetObjectItemCaseSensitive(it, "kv") : it;
    const cJSON *type = events ? cJSON_GetObjectItemCaseSensitive(it, "type") : NULL;
    bool del = cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0;
    int64_t mod = cs_etcd_int(kv, "mod_revision");
    int rc = apply_kv(e, txn, kv, del);

    if (rc == MDB_MAP_FULL)
      return CS_ERR_STORE_FULL;
    if (rc)
      return rc > 0 ? cs_lmdb_fail(rc, "local copy update") : CS_ERR_STORE;
    if (mod > *max_rev)
      *max_rev = mod;
  }
  return CS_OK;
}

/* One page of the load: records from @p *from (a full key; NULL: the
 * store's first) at revision @p *rev (0: now, and set it). Leaves in *from
 * the next page's start, or NULL after the last page. */
static enum cs_err load_page(struct cs_etcd *e, MDB_txn *txn, uint8_t **from, size_t *flen,
                             int64_t *rev)
{
  const cJSON *kvs, *last;
  int64_t unused = 0;
  struct cs_buf b;
  cJSON *j = NULL;
  enum cs_err r;

  cs_buf_init(&b, 8192);
  r = CS_BUF_LIT(&b, "{");
  if (r == CS_OK)
    r = cs_etcd_store_range(&b, e, *from, *flen);
  if (r == CS_OK)
    r = cs_buf_printf(&b, ",\"limit\":\"%s\",\"revision\":\"%lld\"}", CS_ETCD_PAGE,
                      (long long)*rev);
  if (r == CS_OK)
    r = post(e, "/v3/kv/range", &b, true, true, &j);
  cs_buf_free(&b);
  free(*from);
  *from = NULL;
  if (r != CS_OK)
    return r;
  if (*rev == 0)
    *rev = cs_etcd_int(cJSON_GetObjectItemCaseSensitive(j, "header"), "revision");
  kvs = cJSON_GetObjectItemCaseSensitive(j, "kvs");
  r = *rev > 0 ? cs_etcd_apply_all(e, txn, kvs, false, &unused) : CS_ERR_STORE;
  if (r == CS_OK && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "more"))) {
    last = cJSON_GetArrayItem(kvs, cJSON_GetArraySize(kvs) - 1);
    r = cs_etcd_unb64(cJSON_GetObjectItemCaseSensitive(last, "key"), from, flen);
    if (r == CS_OK)
      (*from)[(*flen)++] = 0; /* the first key after it (unb64 leaves room) */
  }
  cJSON_Delete(j);
  return r;
}

/* Empty the copy's tables. */
static int drop_all(struct cs_etcd *e, MDB_txn *txn)
{
  int rc = 0;

  for (int t = 0; t < CS_TBL__COUNT && !rc; t++) {
    rc = mdb_drop(txn, e->st->dbi[t], 0);
    if (!rc)
      rc = mdb_drop(txn, e->rev[t], 0);
  }
  for (int f = 0; f < CS_FEED_TABLES && !rc; f++)
    rc = mdb_drop(txn, e->ord[f], 0);
  return rc;
}

/* One attempt at (re)loading the whole store at one revision, in one LMDB
 * txn: readers see the old copy until the new one is whole. Requires
 * write_mu held. */
static enum cs_err load_once(struct cs_etcd *e, int64_t *rev)
{
  uint8_t *from = NULL;
  size_t flen = 0;
  MDB_txn *txn;
  enum cs_err r;
  int rc = mdb_txn_begin(e->st->env, NULL, 0, &txn);

  if (rc)
    return cs_lmdb_fail(rc, "local copy load begin");
  *rev = 0;
  rc = drop_all(e, txn);
  r = rc ? cs_lmdb_fail(rc, "local copy drop") : CS_OK;
  do {
    if (r == CS_OK)
      r = load_page(e, txn, &from, &flen, rev);
  } while (r == CS_OK && from);
  free(from);
  if (r != CS_OK) {
    mdb_txn_abort(txn);
    return r;
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_MAP_FULL ? CS_ERR_STORE_FULL : rc ? cs_lmdb_fail(rc, "local copy load") : CS_OK;
}

/* Load the whole store into the copy and publish its revision. A compacted
 * revision mid-load (CS_ERR_PRECONDITION) or a full map starts over. */
enum cs_err cs_etcd_load(struct cs_etcd *e)
{
  enum cs_err r;
  int64_t rev = 0;

  pthread_mutex_lock(&e->st->write_mu);
  for (int attempt = 0;; attempt++) {
    r = load_once(e, &rev);
    if (r == CS_ERR_STORE_FULL)
      r = cs_lmdb_grow_locked(e->st) == CS_OK ? CS_ERR_PRECONDITION : CS_ERR_STORE_FULL;
    if (r != CS_ERR_PRECONDITION || attempt == 8)
      break;
  }
  if (r == CS_OK) {
    pthread_mutex_lock(&e->mu);
    e->applied = rev;
    atomic_store(&e->applied_pub, rev);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&e->reloads, 1);
  }
  pthread_mutex_unlock(&e->st->write_mu);
  return r;
}

/* ------------------------------------------------------------ open/close */

/* CREATE: write the schema record if the prefix holds no key at all. */
static enum cs_err init_prefix(struct cs_etcd *e)
{
  const uint32_t ver = CS_STORE_SCHEMA_VERSION;
  const uint8_t be[4] = {(uint8_t)(ver >> 24), (uint8_t)(ver >> 16), (uint8_t)(ver >> 8),
                         (uint8_t)ver};
  struct cs_buf b;
  cJSON *j = NULL;
  enum cs_err r;

  cs_buf_init(&b, 8192);
  r = CS_BUF_LIT(&b, "{\"compare\":[{");
  if (r == CS_OK)
    r = cs_etcd_store_range(&b, e, NULL, 0);
  if (r == CS_OK)
    r = CS_BUF_LIT(&b, ",\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":\"1\"}],"
                       "\"success\":[{\"request_put\":{\"key\":\"");
  if (r == CS_OK)
    r = cs_etcd_key_b64(&b, e, CS_TBL_META, "schema", 6);
  if (r == CS_OK)
    r = CS_BUF_LIT(&b, "\",\"value\":\"");
  if (r == CS_OK)
    r = cs_etcd_b64(&b, be, sizeof be);
  if (r == CS_OK)
    r = CS_BUF_LIT(&b, "\"}}]}");
  if (r == CS_OK)
    r = post(e, "/v3/kv/txn", &b, false, false, &j);
  if (r == CS_OK && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "succeeded")))
    r = CS_ERR_ALREADY_INITIALIZED;
  cJSON_Delete(j);
  cs_buf_free(&b);
  return r;
}

/* A store's schema record must be in the loaded copy, and be one we read. */
static enum cs_err schema_check(struct cs_etcd *e)
{
  MDB_val k = {6, (void *)"schema"}, v;
  MDB_txn *txn;
  enum cs_err r;
  int rc = mdb_txn_begin(e->st->env, NULL, MDB_RDONLY, &txn);

  if (rc)
    return cs_lmdb_fail(rc, "schema read");
  rc = mdb_get(txn, e->st->dbi[CS_TBL_META], &k, &v);
  r = rc == MDB_NOTFOUND ? CS_ERR_NOT_INITIALIZED : cs_lmdb_schema_check(e->st, txn);
  mdb_txn_abort(txn);
  return r;
}

static enum cs_err copy_dir(struct cs_etcd *e, const struct cs_store_opts *o)
{
  const char *base = o && o->cache_dir ? o->cache_dir : getenv("TMPDIR");
  int n =
      snprintf(e->dir, sizeof e->dir, "%s/credstore-cache-XXXXXX", base && *base ? base : "/tmp");

  if (n < 0 || (size_t)n >= sizeof e->dir || !mkdtemp(e->dir)) {
    CS_LOG(CS_LOG_ERROR, "store: cannot create the local copy's dir under %s: %s",
           base && *base ? base : "/tmp", strerror(errno));
    e->dir[0] = '\0';
    return CS_ERR_IO;
  }
  return CS_OK; /* mkdtemp made it 0700 */
}

/* The copy's files are unlinked as soon as LMDB holds them open: it never
 * opens them by name again, and a process that dies leaves nothing behind. */
static void remove_copy_dir(struct cs_etcd *e)
{
  char p[PATH_MAX + 16];

  if (!e->dir[0])
    return;
  if (snprintf(p, sizeof p, "%s/data.mdb", e->dir) < (int)sizeof p)
    unlink(p);
  if (snprintf(p, sizeof p, "%s/lock.mdb", e->dir) < (int)sizeof p)
    unlink(p);
  if (rmdir(e->dir) != 0)
    CS_LOG(CS_LOG_WARN, "store: cannot remove the local copy's dir %s: %s", e->dir,
           strerror(errno));
  e->dir[0] = '\0';
}

/* The copy: an LMDB env with the store's tables and the revision tables. */
static enum cs_err copy_open(struct cs_etcd *e)
{
  char name[64];
  MDB_txn *txn;
  enum cs_err r = cs_lmdb_env_open(e->st, e->dir, true, true);
  int rc = 0;

  if (r == CS_OK)
    r = cs_lmdb_tables_open(e->st, CS_SCHEMA_NONE);
  remove_copy_dir(e);
  if (r != CS_OK)
    return r;
  rc = mdb_txn_begin(e->st->env, NULL, 0, &txn);
  for (int t = 0; t < CS_TBL__COUNT && !rc; t++) {
    snprintf(name, sizeof name, "_rev/%s", cs_store_table_names[t]);
    rc = mdb_dbi_open(txn, name, MDB_CREATE, &e->rev[t]);
    if (!rc && cs_feed_index((enum cs_table)t) >= 0) {
      snprintf(name, sizeof name, "_ord/%s", cs_store_table_names[t]);
      rc = mdb_dbi_open(txn, name, MDB_CREATE, &e->ord[cs_feed_index((enum cs_table)t)]);
    }
  }
  if (!rc)
    return (rc = mdb_txn_commit(txn)) ? cs_lmdb_fail(rc, "local copy open") : CS_OK;
  mdb_txn_abort(txn);
  return cs_lmdb_fail(rc, "local copy open");
}

static enum cs_err etcd_alloc(struct cs_store *st, const struct cs_store_url *u,
                              const struct cs_store_opts *o)
{
  struct cs_etcd *e = calloc(1, sizeof *e);

  if (!e)
    return CS_ERR_NOMEM;
  st->etcd = e;
  e->st = st;
  if (pthread_mutex_init(&e->mu, NULL) || pthread_cond_init(&e->cv, NULL) ||
      pthread_mutex_init(&e->cb_mu, NULL) || pthread_mutex_init(&e->txn_mu, NULL) ||
      sodium_init() < 0)
    return CS_ERR_INTERNAL;
  e->prefix_len = strlen(u->prefix);
  memcpy(e->prefix, u->prefix, e->prefix_len + 1);
  for (int t = 0; t < CS_TBL__COUNT; t++) {
    size_t n = e->prefix_len + strlen(cs_store_table_names[t]) + 2;

    e->tpre[t] = malloc(n);
    if (!e->tpre[t])
      return CS_ERR_NOMEM;
    snprintf(e->tpre[t], n, "%s%s/", e->prefix, cs_store_table_names[t]);
    e->tpre_len[t] = n - 1;
  }
  return cs_etcd_client_init(&e->cli, u, o);
}

/* A writable handle's node key (see etcd.h), put before the load so the
 * copy knows its revision: never absent while the handle writes, so a
 * fenced Txn cannot pass its compare again after a delete. */
static enum cs_err node_init(struct cs_etcd *e)
{
  uint8_t id[8];
  char hex[17];
  struct cs_buf b;
  cJSON *j = NULL;
  enum cs_err r;

  randombytes_buf(id, sizeof id);
  sodium_bin2hex(hex, sizeof hex, id, sizeof id);
  e->node_len = (size_t)snprintf(e->node, sizeof e->node, "_sys/node/%s", hex);
  cs_buf_init(&b, 4096);
  r = CS_BUF_LIT(&b, "{\"key\":\"");
  if (r == CS_OK)
    r = cs_etcd_key_b64(&b, e, -1, e->node, e->node_len);
  if (r == CS_OK)
    r = CS_BUF_LIT(&b, "\",\"value\":\"b3Blbg==\"}"); /* "open" */
  if (r == CS_OK)
    r = post(e, "/v3/kv/put", &b, true, false, &j);
  e->node_live = r == CS_OK;
  cJSON_Delete(j);
  cs_buf_free(&b);
  return r;
}

/* Delete the node key of a handle being closed (best effort, bounded). */
void cs_etcd_retire(struct cs_etcd *e)
{
  struct cs_etcd_call r = {
      .path = "/v3/kv/deleterange", .idempotent = true, .ep = -1, .timeout_ms = 1000};
  struct cs_buf b;
  cJSON *j = NULL;
  CURL *h;

  if (!e->node_live)
    return;
  e->node_live = false;
  h = cs_etcd_handle_get(&e->cli);
  cs_buf_init(&b, 4096);
  if (h && CS_BUF_LIT(&b, "{\"key\":\"") == CS_OK &&
      cs_etcd_key_b64(&b, e, -1, e->node, e->node_len) == CS_OK && CS_BUF_LIT(&b, "\"}") == CS_OK) {
    r.body = b.data;
    r.len = b.len;
    if (cs_etcd_post(&e->cli, h, &r, &j) != CS_OK)
      CS_LOG(CS_LOG_WARN, "store: could not delete this node's key %s%s from etcd", e->prefix,
             e->node);
  }
  cJSON_Delete(j);
  cs_buf_free(&b);
  cs_etcd_handle_put(&e->cli, h);
}

enum cs_err cs_etcd_open_local(const struct cs_store_url *u, const struct cs_store_opts *o,
                               struct cs_store **out)
{
  struct cs_store *st = NULL;
  enum cs_err r;

  /* The copy is written by the watch even when the store is read-only. */
  r = cs_lmdb_alloc(false, &st);
  if (r != CS_OK)
    return r;
  r = etcd_alloc(st, u, o);
  if (r == CS_OK)
    r = copy_dir(st->etcd, o);
  if (r == CS_OK)
    r = copy_open(st->etcd);
  if (r != CS_OK) {
    cs_store_close(st);
    return r;
  }
  *out = st;
  return CS_OK;
}

enum cs_err cs_etcd_open(const struct cs_store_url *u, const struct cs_store_opts *o,
                         unsigned flags, struct cs_store **out)
{
  bool create = flags & CS_STORE_CREATE, readonly = flags & CS_STORE_READONLY;
  struct cs_store *st = NULL;
  enum cs_err r;

  if (create && readonly)
    return CS_ERR_INTERNAL;
  r = cs_etcd_open_local(u, o, &st);
  if (r != CS_OK)
    return r;
  if (create)
    r = init_prefix(st->etcd);
  if (r == CS_OK && !readonly)
    r = node_init(st->etcd);
  if (r == CS_OK)
    r = cs_etcd_load(st->etcd);
  if (r == CS_OK)
    r = schema_check(st->etcd);
  if (r == CS_OK)
    r = cs_etcd_start(st->etcd);
  if (r != CS_OK) {
    cs_store_close(st);
    return r;
  }
  st->readonly = readonly;
  *out = st;
  return CS_OK;
}

void cs_etcd_free(struct cs_etcd *e)
{
  if (!e)
    return;
  cs_etcd_client_free(&e->cli);
  if (e->multi)
    curl_multi_cleanup(e->multi);
  for (int t = 0; t < CS_TBL__COUNT; t++)
    free(e->tpre[t]);
  remove_copy_dir(e);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  pthread_mutex_destroy(&e->cb_mu);
  pthread_mutex_destroy(&e->txn_mu);
  free(e);
}

enum cs_err cs_etcd_probe(const struct cs_store_url *u, const struct cs_store_opts *o, bool *exists)
{
  struct cs_store st = {0};
  struct cs_buf b;
  cJSON *j = NULL;
  enum cs_err r;

  cs_buf_init(&b, 4096);
  r = etcd_alloc(&st, u, o);
  if (r == CS_OK)
    r = CS_BUF_LIT(&b, "{\"key\":\"");
  if (r == CS_OK)
    r = cs_etcd_key_b64(&b, st.etcd, CS_TBL_META, "schema", 6);
  if (r == CS_OK)
    r = CS_BUF_LIT(&b, "\",\"count_only\":true}");
  if (r == CS_OK)
    r = post(st.etcd, "/v3/kv/range", &b, true, false, &j);
  if (r == CS_OK)
    *exists = cs_etcd_int(j, "count") > 0;
  cJSON_Delete(j);
  cs_buf_free(&b);
  cs_etcd_free(st.etcd);
  return r;
}

void cs_etcd_stat(struct cs_store *st, MDB_txn *txn, struct cs_store_stat *s)
{
  struct cs_etcd *e = st->etcd;
  MDB_stat ms;

  if (!e)
    return;
  for (int f = 0; f < CS_FEED_TABLES; f++)
    if (mdb_stat(txn, e->ord[f], &ms) == 0)
      s->etcd_feed_index += ms.ms_entries;
  s->revision = (uint64_t)atomic_load(&e->applied_pub);
  s->etcd_requests = atomic_load(&e->cli.n_fg);
  s->etcd_txns = atomic_load(&e->txns);
  s->etcd_conflicts = atomic_load(&e->conflicts);
  s->etcd_background = atomic_load(&e->cli.n_bg);
  s->etcd_reloads = atomic_load(&e->reloads);
}

/* ------------------------------------------------------------------ feeds */

/* The walk of one feed: the index cursor, and where in a revision it is. */
struct feed_walk {
  MDB_cursor *cur;
  MDB_dbi dbi;
  MDB_txn *txn;
  uint64_t rev;  /* revision of the last index entry */
  uint64_t rank; /* its rank within that revision */
};

/* Step to the next index entry (@p first: the one @p k was sought to). */
static int feed_step(struct feed_walk *w, MDB_val *k, MDB_cursor_op op, uint64_t *pos)
{
  MDB_val v;
  int rc = mdb_cursor_get(w->cur, k, &v, op);

  if (rc)
    return rc;
  if (k->mv_size < 8)
    return MDB_CORRUPTED;
  uint64_t rev = cs_store_seq_from_key(k->mv_data, 8);
  w->rank = rev == w->rev ? w->rank + 1 : 0;
  w->rev = rev;
  *pos = rev << CS_FEED_RANK_BITS | (w->rank & ((1u << CS_FEED_RANK_BITS) - 1));
  return 0;
}

enum cs_err cs_etcd_feed_each(struct cs_etcd *e, struct cs_txn *txn, enum cs_table t,
                              uint64_t after, cs_feed_fn fn, void *arg)
{
  uint64_t from_rev = after >> CS_FEED_RANK_BITS, pos;
  uint8_t seek[8];
  struct feed_walk w = {NULL, e->ord[cs_feed_index(t)], txn->txn, 0, 0};
  MDB_val k = {8, seek};
  bool stop = false;
  enum cs_err r = CS_OK;
  int rc;

  if ((rc = mdb_cursor_open(w.txn, w.dbi, &w.cur)))
    return cs_lmdb_fail(rc, "feed cursor");
  /* From the first entry of after's revision: ranks count from there. */
  cs_store_seq_key(from_rev, seek);
  w.rev = UINT64_MAX;
  for (rc = feed_step(&w, &k, MDB_SET_RANGE, &pos); !rc && !stop;
       rc = feed_step(&w, &k, MDB_NEXT, &pos)) {
    MDB_val rk = {k.mv_size - 8, (uint8_t *)k.mv_data + 8}, v;
    if (pos <= after)
      continue;
    int g = mdb_get(w.txn, e->st->dbi[t], &rk, &v);
    if (g == MDB_NOTFOUND)
      continue; /* deleted since: its rank stays taken */
    if (g) {
      rc = g;
      break;
    }
    struct cs_val ck = {rk.mv_data, rk.mv_size}, cv = {v.mv_data, v.mv_size};
    if ((r = fn(pos, &ck, &cv, arg, &stop)))
      break;
  }
  mdb_cursor_close(w.cur);
  if (r == CS_OK && rc && rc != MDB_NOTFOUND)
    r = cs_lmdb_fail(rc, "feed walk");
  return r;
}
