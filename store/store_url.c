/*
 * Store URLs and the calls whose behaviour depends on the backend: which
 * one a URL names, and the cluster hooks (health, change callback, leases),
 * trivial on LMDB.
 */
#include "etcd/etcd.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_ETCD_DEFAULT_PREFIX "/credstore/"
#define CS_ETCD_DEFAULT_PORT "2379"

static bool host_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
}

static bool prefix_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == '/';
}

/* One "host[:port]" of @p len chars into "scheme://host:port". */
static enum cs_err parse_endpoint(const char *s, size_t len, bool tls, char *out, size_t cap)
{
  const char *colon = NULL;
  uint64_t port = 0;
  char portbuf[8];
  int n;

  if (len == 0 || len > CS_ETCD_HOST_MAX)
    return CS_ERR_INVALID;
  for (size_t i = 0; i < len; i++) {
    if (!host_char(s[i]))
      return CS_ERR_INVALID;
    if (s[i] == ':' && (s[0] != '[' || (i > 0 && s[i - 1] == ']')))
      colon = s + i;
  }
  if (colon) {
    size_t plen = len - (size_t)(colon + 1 - s);

    if (plen == 0 || plen >= sizeof portbuf)
      return CS_ERR_INVALID;
    memcpy(portbuf, colon + 1, plen);
    portbuf[plen] = '\0';
    if (cs_parse_u64(portbuf, 65535, &port) != CS_OK || port == 0)
      return CS_ERR_INVALID;
    len = (size_t)(colon - s);
  }
  if (len == 0)
    return CS_ERR_INVALID;
  n = snprintf(out, cap, "%s://%.*s:%s", tls ? "https" : "http", (int)len, s,
               colon ? portbuf : CS_ETCD_DEFAULT_PORT);
  return n > 0 && (size_t)n < cap ? CS_OK : CS_ERR_INVALID;
}

/* "/p/a/t/h" (or nothing) into the key prefix, ending in '/'. */
static enum cs_err parse_prefix(const char *p, struct cs_store_url *out)
{
  size_t len = strlen(p);

  if (len <= 1) {
    memcpy(out->prefix, CS_ETCD_DEFAULT_PREFIX, sizeof CS_ETCD_DEFAULT_PREFIX);
    return CS_OK;
  }
  if (len + 1 > CS_ETCD_PREFIX_MAX || strstr(p, "//"))
    return CS_ERR_INVALID;
  for (size_t i = 0; i < len; i++)
    if (!prefix_char(p[i]))
      return CS_ERR_INVALID;
  memcpy(out->prefix, p, len);
  if (p[len - 1] != '/')
    out->prefix[len++] = '/';
  out->prefix[len] = '\0';
  return CS_OK;
}

static enum cs_err parse_etcd(const char *rest, struct cs_store_url *out)
{
  const char *slash = strchr(rest, '/');
  const char *end = slash ? slash : rest + strlen(rest);

  for (const char *p = rest; p < end;) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;

    if (out->n_ep == CS_ETCD_MAX_EP ||
        parse_endpoint(p, (size_t)(stop - p), out->tls, out->ep[out->n_ep], sizeof out->ep[0]) !=
            CS_OK)
      return CS_ERR_INVALID;
    out->n_ep++;
    p = comma ? comma + 1 : end;
    if (comma && p == end)
      return CS_ERR_INVALID; /* a trailing comma */
  }
  if (out->n_ep == 0)
    return CS_ERR_INVALID;
  return parse_prefix(slash ? slash : "", out);
}

enum cs_err cs_store_url_parse(const char *url, struct cs_store_url *out)
{
  enum cs_err e = CS_OK;

  memset(out, 0, sizeof *out);
  if (!url || !*url) {
    e = CS_ERR_INVALID;
  } else if (strncmp(url, "lmdb:", 5) == 0) {
    out->dir = url + 5;
    e = *out->dir ? CS_OK : CS_ERR_INVALID;
  } else if (strncmp(url, "etcd://", 7) == 0 || strncmp(url, "etcds://", 8) == 0) {
    out->etcd = true;
    out->tls = url[4] == 's';
    e = parse_etcd(url + (out->tls ? 8 : 7), out);
  } else if (strstr(url, "://")) {
    e = CS_ERR_INVALID; /* an unknown scheme, not a dir named so */
  } else {
    out->dir = url;
  }
  if (e != CS_OK)
    CS_LOG(CS_LOG_ERROR, "store: not a store URL (DIR, lmdb:DIR, etcd://H:P[,H:P...][/PREFIX])");
  return e;
}

/* ---------------------------------------------------------- open, exists */

enum cs_err cs_store_open_url(const char *url, const struct cs_store_opts *opts, unsigned flags,
                              struct cs_store **out)
{
  struct cs_store_url *u = malloc(sizeof *u);
  enum cs_err e;

  if (!u)
    return CS_ERR_NOMEM;
  e = cs_store_url_parse(url, u);
  if (e == CS_OK)
    e = u->etcd ? cs_etcd_open(u, opts, flags, out) : cs_lmdb_open(u->dir, flags, out);
  free(u);
  return e;
}

enum cs_err cs_store_open(const char *dir, unsigned flags, struct cs_store **out)
{
  return cs_store_open_url(dir, NULL, flags, out);
}

enum cs_err cs_store_probe(const char *url, const struct cs_store_opts *opts, bool *exists)
{
  struct cs_store_url *u = malloc(sizeof *u);
  enum cs_err e;

  if (!u)
    return CS_ERR_NOMEM;
  e = cs_store_url_parse(url, u);
  if (e == CS_OK && u->etcd)
    e = cs_etcd_probe(u, opts, exists);
  else if (e == CS_OK)
    *exists = cs_lmdb_exists(u->dir);
  free(u);
  return e;
}

bool cs_store_exists(const char *dir)
{
  bool exists = false;

  return cs_store_probe(dir, NULL, &exists) == CS_OK && exists;
}

/* --------------------------------------------------------- cluster hooks */

bool cs_store_healthy(struct cs_store *st) { return !st->etcd || cs_etcd_healthy(st->etcd); }

void cs_store_on_change(struct cs_store *st, cs_store_change_fn fn, void *arg)
{
  if (st->etcd)
    cs_etcd_on_change(st->etcd, fn, arg);
}

/* LMDB leases: ids only, for a single process that never outlives them. */
static atomic_int_fast64_t lmdb_lease_ids;

enum cs_err cs_store_lease_grant(struct cs_store *st, unsigned ttl_s, int64_t *out)
{
  if (ttl_s == 0 || ttl_s > 86400)
    return CS_ERR_INVALID;
  if (st->readonly) {
    CS_LOG(CS_LOG_ERROR, "store: lease refused: the store is open read-only");
    return CS_ERR_STORE;
  }
  if (st->etcd)
    return cs_etcd_lease_grant(st->etcd, ttl_s, out);
  *out = atomic_fetch_add(&lmdb_lease_ids, 1) + 1;
  return CS_OK;
}

enum cs_err cs_store_lease_keepalive(struct cs_store *st, int64_t lease)
{
  if (lease <= 0)
    return CS_ERR_NOT_FOUND;
  return st->etcd ? cs_etcd_lease_keepalive(st->etcd, lease) : CS_OK;
}

enum cs_err cs_store_lease_revoke(struct cs_store *st, int64_t lease)
{
  if (lease <= 0)
    return CS_ERR_NOT_FOUND;
  return st->etcd ? cs_etcd_lease_revoke(st->etcd, lease) : CS_OK;
}

/* ------------------------------------------------------------------ feeds */

bool cs_store_shared(const struct cs_store *st) { return st->etcd != NULL; }

/* LMDB: the sequence keys are the positions. */
static enum cs_err lmdb_feed_each(struct cs_txn *txn, enum cs_table t, uint64_t after,
                                  cs_feed_fn fn, void *arg)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  uint8_t key[8];
  bool stop = false;
  enum cs_err e;

  if (after == UINT64_MAX)
    return CS_OK;
  if ((e = cs_cursor_open(txn, t, &c)))
    return e;
  cs_store_seq_key(after + 1, key);
  for (e = cs_cursor_seek(c, key, 8, &k, &v); e == CS_OK && !stop; e = cs_cursor_next(c, &k, &v))
    if ((e = fn(cs_store_seq_from_key(k.data, k.len), &k, &v, arg, &stop)))
      break;
  cs_cursor_close(c);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

enum cs_err cs_txn_feed_each(struct cs_txn *txn, enum cs_table t, uint64_t after, cs_feed_fn fn,
                             void *arg)
{
  if (cs_feed_index(t) < 0)
    return CS_ERR_INVALID;
  return txn->st->etcd ? cs_etcd_feed_each(txn->st->etcd, txn, t, after, fn, arg)
                       : lmdb_feed_each(txn, t, after, fn, arg);
}

enum cs_err cs_store_feed_each(struct cs_store *st, enum cs_table t, uint64_t after, cs_feed_fn fn,
                               void *arg)
{
  struct cs_txn *txn = NULL;
  enum cs_err e;

  if (cs_feed_index(t) < 0)
    return CS_ERR_INVALID;
  if ((e = cs_store_read_begin(st, &txn)))
    return e;
  e = cs_txn_feed_each(txn, t, after, fn, arg);
  cs_store_read_end(txn);
  return e;
}

bool cs_txn_shared(const struct cs_txn *txn) { return txn->st->etcd != NULL; }
