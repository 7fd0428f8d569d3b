/*
 * Private to store/: the etcd v3 backend of store.h (cluster mode).
 *
 * Data flow.
 *   etcd ──range at R, then one watch from R+1──▶ local copy (LMDB env,
 *   no fsync, its files unlinked once open) ──snapshots, cursors, counts──▶ callers
 *   callers ──write callbacks run on the local copy, every read and write
 *   recorded, the LMDB txn aborted──▶ one Txn: compares (what was read is
 *   unchanged since R) + puts/deletes ──▶ etcd ──watch──▶ local copy
 *
 * Keys. A record (t, k) is the etcd key PREFIX + table name + "/" + k (k
 * binary; sequence tables use 8-byte big-endian keys, so byte order is
 * numeric order, as in LMDB). PREFIX + "_sys/" holds the backend's own
 * keys: "_sys/gen/<table>" (bumped by every Txn that deletes from the
 * table) and "_sys/node/<random id>", one per open store handle (deleted at
 * close). Values are the caller's bytes, unchanged: sealed above the
 * store, as in LMDB.
 *
 * Local copy. Each table is an LMDB table as in the LMDB backend (same
 * names), so every read path is LMDB's own; a side table "_rev/<table>"
 * maps each key to its 8-byte mod_revision. The watch thread applies each
 * watch response (whole revisions) in one LMDB txn, then publishes the
 * applied revision: a snapshot is always etcd's state at some revision.
 *
 * Writes (txn.c). Under st->write_mu the callbacks run in nested LMDB txns
 * of one write txn on the copy at its applied revision R, which is then
 * aborted. Recorded (rec.c): every key read → compare mod_revision == seen
 * (0: absent); every cursor step → a range piece; puts and deletes in
 * order. Planning per table, finest first, coarser while over etcd's
 * --max-txn-ops (128 compares, 128 success ops):
 *   level 0: a compare per key read, one "all mod_revision < R+1" compare
 *            per merged range (catches inserts and updates), keys inside a
 *            range that were absent are implied by it;
 *   level 1: ranges + the table's gen key "mod_revision < R+1" (catches
 *            deletes) instead of per-key compares for keys inside ranges;
 *   level 2: the whole table "< R+1" + gen: 2 compares.
 * Counting a table needs level >= 1 (a delete changes the count). Deletes
 * by lease expiry do not bump gen: see cs_txn_put_lease().
 * A batch packs ops while the plan fits (also ~1.25 MiB of keys and
 * values, under etcd's 1.5 MiB request limit) and commits them in one Txn;
 * the rest re-run afterwards on the state it left. After a commit at
 * revision C the write returns once the copy applied C (reads your writes);
 * a copy that does not show C in time fails the write although it
 * committed, as a lost reply would, rather than let it return unseen.
 *
 * Feeds (cs_store_feed_each). The feed tables (audit, events) are
 * append-only; "_ord/<table>" indexes each record by its create_revision
 * (8 bytes BE) followed by its key, built from the same watch replies and
 * range loads as the copy, so every node computes the same order. A
 * record's feed position is create_revision << CS_FEED_RANK_BITS | its rank
 * among the table's records created in that revision (by key; one Txn puts
 * at most 127). An index entry outlives its record (so ranks stay put)
 * until every record of its revision is gone, then the revision's entries
 * go together; the walk skips records that are gone.
 *
 * Exactly once. Every Txn also compares the handle's node key's
 * mod_revision with the copy's and puts the attempt's id into it, so of
 * several sends of one Txn (libcurl re-sends a POST whose reused connection
 * died; this backend re-sends one whose answer was lost) at most one
 * commits. The failure branch reads the node key, then puts it: if it holds
 * this attempt's id, an earlier send committed (success); else the copy was
 * stale, and once the watch applied the failure branch's revision the copy
 * holds whatever broke the compare: the same ops re-run. That put also
 * fences off any send of the old attempt still in flight.
 *
 * Failures. Connection refused or not sent → next endpoint (each once);
 * a request that timed out or failed after it was sent is re-sent only if
 * idempotent (reads; Txns, thanks to the node key), else
 * CS_ERR_STORE_UNAVAILABLE; a write that may have committed says so.
 * Each Txn of a write gets 3x the request timeout to commit and show in the
 * copy (a batch of several Txns: each). A writer waiting on a watch that
 * has been silent (no bytes, not applying) for 2 s or half the request
 * timeout, whichever is longer, moves it to the next endpoint; a slow one
 * is left to finish. Reads keep serving the
 * copy. The health thread makes one linearizable range a second, on the
 * watch's endpoint first; if another endpoint answers instead the watch
 * moves there; cs_store_healthy() = a recent success and a live watch. The
 * watch is opened with gRPC metadata "hasleader", so a member that loses
 * its leader ends it; a compacted resume reloads the copy.
 */
#ifndef CS_STORE_ETCD_H
#define CS_STORE_ETCD_H

#include "../store_lmdb_priv.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdatomic.h>

#define CS_ETCD_MAX_EP 16
#define CS_ETCD_HOST_MAX 255
#define CS_ETCD_PREFIX_MAX 256
#define CS_ETCD_KEY_MAX (CS_ETCD_PREFIX_MAX + 32 + CS_STORE_KEY_MAX)
#define CS_ETCD_TIMEOUT_MS 5000
#define CS_ETCD_HANDLES 8 /* idle curl handles kept for callers' threads */

/* etcd's defaults, which a production cluster keeps. */
#define CS_ETCD_MAX_OPS 128
/* Compares and success ops left for records: the node key takes one each. */
#define CS_ETCD_REC_OPS (CS_ETCD_MAX_OPS - 1)
#define CS_ETCD_TXN_BYTES ((size_t)1280 << 10)

/* Append a string literal to a cs_buf. */
#define CS_BUF_LIT(b, lit) cs_buf_append((b), (lit), sizeof(lit) - 1)

/* A parsed store URL (store_url.c). */
struct cs_store_url {
  bool etcd;
  bool tls;
  const char *dir; /* LMDB: points into the URL */
  size_t n_ep;
  char ep[CS_ETCD_MAX_EP][CS_ETCD_HOST_MAX + 16]; /* "http(s)://host:port" */
  char prefix[CS_ETCD_PREFIX_MAX + 1];            /* "/credstore/" */
};

/** @return CS_ERR_INVALID for a malformed URL. */
enum cs_err cs_store_url_parse(const char *url, struct cs_store_url *out) CS_WUR;

/* ------------------------------------------------------------ client.c */

struct cs_etcd_client {
  char *ep[CS_ETCD_MAX_EP];
  size_t n_ep;
  atomic_uint preferred; /* endpoint that answered last */
  char *cacert, *cert, *key, *user, *password;
  long timeout_ms;
  pthread_mutex_t mu;   /* token, pool */
  char *token;          /* etcd auth token, NULL without auth */
  atomic_bool auth_off; /* a user is configured but etcd has auth disabled */
  CURL *pool[CS_ETCD_HANDLES];
  size_t n_pool;
  atomic_uint_fast64_t n_fg, n_bg; /* round trips: callers', background */
};

struct cs_etcd_call {
  const char *path; /* "/v3/kv/txn" */
  const char *body;
  size_t len;
  bool idempotent;          /* may be re-sent after a send that failed midway */
  bool background;          /* counted as the watch/health threads' */
  int ep;                   /* endpoint to try first; -1: the preferred one */
  long timeout_ms;          /* 0: the client's */
  int64_t deadline_ms;      /* monotonic; no attempt starts or runs past it (0: none) */
  const atomic_bool *abort; /* set: give up at once (a store closing), or NULL */
  int ep_used;              /* out: endpoint that answered */
  int grpc_code;            /* out: etcd's error code (0: none) */
};

enum cs_err cs_etcd_client_init(struct cs_etcd_client *c, const struct cs_store_url *u,
                                const struct cs_store_opts *o) CS_WUR;
/** Wipes the password and token. NULL-safe on a zeroed client. */
void cs_etcd_client_free(struct cs_etcd_client *c);
/** A curl handle for one thread's use (NULL on OOM); give back with _put. */
CURL *cs_etcd_handle_get(struct cs_etcd_client *c);
void cs_etcd_handle_put(struct cs_etcd_client *c, CURL *h);
/** Common options (TLS files, timeouts, auth header list) for a request. */
enum cs_err cs_etcd_handle_setup(struct cs_etcd_client *c, CURL *h, struct curl_slist **hdrs,
                                 long timeout_ms) CS_WUR;

/**
 * POST one JSON request, failing over across endpoints. On CS_OK *out is
 * the parsed 200 body (cJSON_Delete it).
 * @return CS_ERR_STORE_UNAVAILABLE (no endpoint, no quorum, timed out),
 *         CS_ERR_NOT_FOUND (etcd NotFound, e.g. a lease), CS_ERR_PRECONDITION
 *         (etcd OutOfRange: a compacted revision), CS_ERR_STORE (refused:
 *         logged), CS_ERR_NOMEM.
 */
enum cs_err cs_etcd_post(struct cs_etcd_client *c, CURL *h, struct cs_etcd_call *r,
                         cJSON **out) CS_WUR;

/** Append @p len bytes base64-encoded. @return CS_ERR_NOMEM, CS_ERR_TOO_LARGE. */
enum cs_err cs_etcd_b64(struct cs_buf *b, const void *data, size_t len) CS_WUR;
/** Decode a base64 JSON string (absent: empty) into malloc'd *out (NUL-terminated).
 *  @return CS_ERR_STORE (not base64), CS_ERR_NOMEM. */
enum cs_err cs_etcd_unb64(const cJSON *s, uint8_t **out, size_t *len) CS_WUR;
/** An int64 member (etcd sends them as strings); absent: 0; malformed: -1. */
int64_t cs_etcd_int(const cJSON *obj, const char *name);

/* ------------------------------------------------------------- cache.c */

struct cs_etcd {
  struct cs_store *st;
  struct cs_etcd_client cli;
  char prefix[CS_ETCD_PREFIX_MAX + 1];
  size_t prefix_len;
  char *tpre[CS_TBL__COUNT]; /* PREFIX + name + "/" */
  size_t tpre_len[CS_TBL__COUNT];
  char dir[PATH_MAX]; /* the local copy's private dir, "" once removed */
  MDB_dbi rev[CS_TBL__COUNT];
  MDB_dbi ord[CS_FEED_TABLES]; /* "_ord/<table>" of the feed tables: create rev | key → "" */

  pthread_mutex_t mu; /* applied, the callback */
  pthread_cond_t cv;  /* applied advanced; or stop */
  int64_t applied;    /* revision the copy holds (mu), mirrored below */
  atomic_int_fast64_t applied_pub;

  pthread_t watch_thr, health_thr;
  bool threads;
  atomic_bool stop, reconnect, watch_ok;
  atomic_int watch_ep;
  atomic_bool watch_busy;             /* in the stream's data callback (parsing, applying) */
  atomic_int_fast64_t watch_heard_ms; /* the stream last connected or sent a byte, monotonic */
  atomic_int_fast64_t last_ok_ms;     /* last linearizable success, monotonic */
  CURLM *multi;                       /* the watch's, woken by stop */

  pthread_mutex_t cb_mu; /* held while the change callback runs */
  cs_store_change_fn cb;
  void *cb_arg;

  char node[48]; /* "_sys/node/<16 hex>" under PREFIX: this handle's key */
  size_t node_len;
  int64_t node_mod;       /* its mod_revision in the copy (write_mu) */
  bool node_live;         /* put at open: delete at close */
  pthread_mutex_t txn_mu; /* one write at a time through this handle */
  uint64_t attempts;      /* txn_mu */

  atomic_uint_fast64_t txns, conflicts, reloads;
};

/** Open or create the etcd store @p u names. */
enum cs_err cs_etcd_open(const struct cs_store_url *u, const struct cs_store_opts *o,
                         unsigned flags, struct cs_store **out) CS_WUR;
/** The store with its empty local copy, before any request (cs_etcd_open's
 *  first half; fuzz_etcd feeds replies to it). Close with cs_store_close(). */
enum cs_err cs_etcd_open_local(const struct cs_store_url *u, const struct cs_store_opts *o,
                               struct cs_store **out) CS_WUR;
/** Start the watch and health threads. */
enum cs_err cs_etcd_start(struct cs_etcd *e) CS_WUR;
/** Stop the threads (NULL-safe: st->etcd may be NULL). */
void cs_etcd_stop(struct cs_store *st);
/** Delete the handle's node key from etcd (a store being closed). */
void cs_etcd_retire(struct cs_etcd *e);
/** Free the backend and remove the local copy's dir. NULL ok. */
void cs_etcd_free(struct cs_etcd *e);
enum cs_err cs_etcd_probe(const struct cs_store_url *u, const struct cs_store_opts *o,
                          bool *exists) CS_WUR;
void cs_etcd_stat(struct cs_store *st, MDB_txn *txn, struct cs_store_stat *s);
bool cs_etcd_healthy(struct cs_etcd *e);
void cs_etcd_on_change(struct cs_etcd *e, cs_store_change_fn fn, void *arg);
/** Wait until the copy applied @p rev, up to @p deadline (monotonic ms).
 *  @return CS_ERR_STORE_UNAVAILABLE on timeout (the watch is asked to reconnect). */
enum cs_err cs_etcd_wait_applied(struct cs_etcd *e, int64_t rev, int64_t deadline) CS_WUR;
/** Revision the copy holds. Stable while st->write_mu is held. */
int64_t cs_etcd_applied(struct cs_etcd *e);
/** Load the whole store into the copy (takes write_mu) and publish its revision. */
enum cs_err cs_etcd_load(struct cs_etcd *e) CS_WUR;
/** Apply a range reply's kvs (@p events false) or a watch reply's events to
 *  @p txn; raise *max_rev to the highest mod_revision seen.
 *  @return CS_ERR_STORE_FULL (grow the map, redo), CS_ERR_STORE. */
/** cs_store_feed_each() on the local copy (@p txn a read snapshot). */
enum cs_err cs_etcd_feed_each(struct cs_etcd *e, struct cs_txn *txn, enum cs_table t,
                              uint64_t after, cs_feed_fn fn, void *arg) CS_WUR;

enum cs_err cs_etcd_apply_all(struct cs_etcd *e, MDB_txn *txn, const cJSON *list, bool events,
                              int64_t *max_rev) CS_WUR;
/** Members "key" (@p from, NULL: PREFIX) and "range_end" (PREFIX's end). */
enum cs_err cs_etcd_store_range(struct cs_buf *b, const struct cs_etcd *e, const uint8_t *from,
                                size_t flen) CS_WUR;
/** Which table @p key (a full etcd key) belongs to, and its record key; -1: none. */
int cs_etcd_split_key(const struct cs_etcd *e, const uint8_t *key, size_t len, const uint8_t **rk,
                      size_t *rlen);
/** Append PREFIX + table name + "/" + @p key (table -1: PREFIX + @p key). */
enum cs_err cs_etcd_key_b64(struct cs_buf *b, const struct cs_etcd *e, int table, const void *key,
                            size_t klen) CS_WUR;

/* --------------------------------------------------------------- rec.c */

/* What one write attempt's callbacks read and wrote. Offsets into arena,
 * which moves as it grows. */
enum cs_rec_kind { CS_REC_READ, CS_REC_PUT, CS_REC_DEL };

struct cs_rec_item {
  uint8_t t, kind;
  uint32_t koff, klen, voff, vlen;
  int64_t mod;   /* READ: mod_revision at R (0: absent) */
  int64_t lease; /* PUT */
};

/* Keys [lo, hi] of one table (lo_start: from the table's first key,
 * hi_end: to its last) were examined; need_gen: deletes matter too. */
struct cs_rec_range {
  uint8_t t;
  bool lo_start, hi_end, need_gen;
  uint32_t loff, llen, hoff, hlen;
};

struct cs_etcd_rec {
  struct cs_etcd *e;
  int64_t base;     /* R */
  int64_t node_mod; /* the node key's mod_revision at R */
  uint64_t attempt; /* this attempt's id, put into the node key */
  uint8_t *arena;
  size_t alen, acap;
  struct cs_rec_item *items;
  size_t n_items, cap_items;
  struct cs_rec_range *ranges;
  size_t n_ranges, cap_ranges;
  enum cs_err err; /* a recording failure (NOMEM): the op fails with it */
};

/* A rollback point: what one op recorded is dropped if it fails. */
struct cs_rec_mark {
  size_t alen, n_items, n_ranges;
};

void cs_etcd_rec_init(struct cs_etcd_rec *r, struct cs_etcd *e, int64_t base);
void cs_etcd_rec_free(struct cs_etcd_rec *r);
struct cs_rec_mark cs_etcd_rec_mark(const struct cs_etcd_rec *r);
void cs_etcd_rec_rollback(struct cs_etcd_rec *r, struct cs_rec_mark m);

/* Hooks called by store_lmdb_rec.c when txn->rec is set. */
enum cs_cursor_step { CS_STEP_SEEK, CS_STEP_LAST, CS_STEP_NEXT, CS_STEP_PREV };

void cs_etcd_rec_read(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen);
void cs_etcd_rec_write(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                       const void *val, size_t vlen, bool del, int64_t lease);
void cs_etcd_rec_table(struct cs_txn *txn, enum cs_table t);
void cs_etcd_rec_cursor(struct cs_cursor *c, enum cs_cursor_step step, const void *seek,
                        size_t slen, enum cs_err result, const MDB_val *k);
void cs_etcd_rec_cursor_del(struct cs_cursor *c);

/* --------------------------------------------------------------- txn.c */

enum cs_err cs_etcd_write_batch(struct cs_store *st, struct cs_store_op *ops, size_t n) CS_WUR;
enum cs_err cs_etcd_lease_grant(struct cs_etcd *e, unsigned ttl_s, int64_t *out) CS_WUR;
enum cs_err cs_etcd_lease_keepalive(struct cs_etcd *e, int64_t lease) CS_WUR;
enum cs_err cs_etcd_lease_revoke(struct cs_etcd *e, int64_t lease) CS_WUR;
/** Build the compares and ops for @p r; @return CS_ERR_TOO_LARGE if it cannot fit. */
enum cs_err cs_etcd_plan(const struct cs_etcd_rec *r, struct cs_buf *body, bool *has_writes) CS_WUR;

#endif /* CS_STORE_ETCD_H */
