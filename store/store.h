/**
 * @file store.h
 * @brief Persistence behind a backend-neutral API. Records are opaque bytes
 *        in named tables; every multi-record rule runs as one transaction.
 *
 * No backend type appears here. Two backends implement it:
 *
 * - LMDB (store_lmdb.c, `DIR` or `lmdb:DIR`): one environment with one named
 *   database per table, durable commits, map growth on demand.
 * - etcd v3 (store/etcd/, `etcd://H:P[,H:P...][/PREFIX]`, `etcds://` for
 *   TLS): cluster mode. Records live under PREFIX (default `/credstore/`),
 *   one sub-prefix per table. Reads are served from a local copy of the
 *   keyspace fed by one watch stream (zero etcd round trips, consistent
 *   snapshots); a write runs its callbacks against that copy, records what
 *   they read, and commits one etcd Txn whose compares fail if any of it
 *   changed, then re-runs them (optimistic, serializable). Details in
 *   store/etcd/etcd.h.
 *
 * Threading: any thread may read or write. Reads are short snapshots
 * (begin, get/iterate, end). Writes go through cs_store_write*() which may
 * run the callback more than once (after growing a full map; on etcd after
 * a conflicting write by anyone), so a callback must not have effects
 * outside the transaction.
 */
#ifndef CS_STORE_H
#define CS_STORE_H

#include "common.h"

#include <stddef.h>
#include <stdint.h>

/**
 * Schema version this build writes and reads. 2: the audit chain is keyed
 * (crypto.h cs_chain_hash). Version 1 stores (pre-release, unkeyed chain)
 * are refused rather than migrated: any path that accepts an unkeyed chain
 * would let a store writer downgrade a store to "version 1", rewrite its
 * history unkeyed and have it accepted (or re-keyed) as genuine.
 */
#define CS_STORE_SCHEMA_VERSION 2u

enum cs_table {
  CS_TBL_META,           /* "schema", "keyring", "kdf", ... */
  CS_TBL_CREDS,          /* credential id → record */
  CS_TBL_USAGES,         /* usage id → record */
  CS_TBL_USAGES_BY_CRED, /* credential id '\0' usage id → material + stats (usage_rec.c) */
  CS_TBL_KEYS,           /* access key id → record */
  CS_TBL_AUDIT,          /* u64 BE seq → entry */
  CS_TBL_EVENTS,         /* u64 BE seq → event */
  CS_TBL_OUTBOX,         /* u64 BE seq → delivery */
  CS_TBL_DEAD,           /* u64 BE seq → delivery given up on (dead letter) */
  CS_TBL__COUNT
};

/** Open flags. */
#define CS_STORE_CREATE 0x1u   /* create the dir (0700) and a fresh store */
#define CS_STORE_READONLY 0x2u /* open read-only (audit-verify) */

/** Put flags. */
#define CS_PUT_NO_OVERWRITE 0x1u /* fail with CS_ERR_EXISTS if the key exists */
/* The key sorts after every key of its table (a sequence table's next seq):
 * LMDB appends without searching (MDB_APPEND; a key that does not sort
 * last fails with CS_ERR_EXISTS). Ignored by the etcd backend, whose keys
 * are not ordered so. */
#define CS_PUT_APPEND 0x2u

/**
 * Options for cs_store_open_url() and cs_store_probe(); every member may be
 * 0/NULL. Strings are copied; the caller keeps ownership of its own.
 */
struct cs_store_opts {
  const char *etcd_cacert;   /* etcds://: PEM CA bundle to verify etcd (NULL: system CAs) */
  const char *etcd_cert;     /* etcds://: client certificate (PEM), with etcd_key */
  const char *etcd_key;      /* etcds://: client private key (PEM) */
  const char *etcd_user;     /* etcd authentication (CREDSTORE_ETCD_USER), with password */
  const char *etcd_password; /* CREDSTORE_ETCD_PASSWORD; wiped from the copy at close */
  unsigned etcd_timeout_ms;  /* per etcd request; 0: 5000. A write gives up after 3x this */
  const char *cache_dir;     /* parent of the private local-copy dir; NULL: $TMPDIR or /tmp */
};

struct cs_store;
struct cs_txn;
struct cs_cursor;

/** A borrowed view of stored bytes, valid until its transaction ends. */
struct cs_val {
  const void *data;
  size_t len;
};

/**
 * Open the store in directory @p dir (or any URL cs_store_open_url()
 * takes, with default options).
 * With CS_STORE_CREATE: the dir must not hold a store yet; it is created
 * (mode 0700) and the schema version recorded.
 * @return CS_ERR_NOT_INITIALIZED (no store in dir, without CREATE),
 *         CS_ERR_ALREADY_INITIALIZED (store exists, with CREATE),
 *         CS_ERR_SCHEMA_NEWER (written by a newer build: refused, logged
 *         with both versions), CS_ERR_SCHEMA_OLD (an older schema this
 *         build has no migration for: refused, logged), CS_ERR_IO,
 *         CS_ERR_STORE, CS_ERR_NOMEM.
 *         Caller closes *out with cs_store_close().
 */
enum cs_err cs_store_open(const char *dir, unsigned flags, struct cs_store **out) CS_WUR;

/**
 * Open the store a URL names: `DIR` or `lmdb:DIR` (LMDB, as cs_store_open),
 * `etcd://H:P[,H:P...][/PREFIX]` or `etcds://...` (TLS). Endpoints are tried
 * in turn (connection refused or timed out → the next, each once per
 * request). PREFIX defaults to `/credstore/`; a trailing `/` is added.
 * Opening an etcd store loads the whole prefix into a local copy (an LMDB
 * environment without fsync in a private 0700 dir under opts->cache_dir,
 * whose files are unlinked as soon as they are open, so nothing stays on
 * disk after close or a crash) and starts its watch and health threads. With CS_STORE_CREATE the
 * prefix must hold no key at all.
 * @return as cs_store_open, plus CS_ERR_INVALID (malformed URL or options),
 *         CS_ERR_STORE_UNAVAILABLE (no endpoint answered, or no quorum).
 *         Caller closes *out with cs_store_close().
 */
enum cs_err cs_store_open_url(const char *url, const struct cs_store_opts *opts, unsigned flags,
                              struct cs_store **out) CS_WUR;

/** Close the store. All transactions must have ended. NULL ok. */
void cs_store_close(struct cs_store *st);

/**
 * @return true if @p dir (or a store URL, then probed with no options)
 *         already holds a store: the data file is present, or the etcd
 *         prefix holds a schema record. False also when etcd is unreachable;
 *         use cs_store_probe() to tell the two apart.
 */
bool cs_store_exists(const char *dir);

/**
 * Whether the store @p url names is initialised, without opening it.
 * @return CS_ERR_INVALID (malformed URL), CS_ERR_STORE_UNAVAILABLE, CS_ERR_IO.
 */
enum cs_err cs_store_probe(const char *url, const struct cs_store_opts *opts, bool *exists) CS_WUR;

/**
 * Whether the store can commit writes now. LMDB: always true. etcd: the
 * last periodic linearizable request (one a second, on the watch's
 * endpoint first) succeeded within the last 3 s and the watch stream is
 * established; false without a quorum. Reads keep serving the local copy
 * either way; it turns true again by itself when the quorum returns.
 * Lock-free, cheap enough for every request.
 */
bool cs_store_healthy(struct cs_store *st);

/* --------------------------------------------------------------- reading */

/**
 * Begin a read-only snapshot. Keep it short: one request.
 * @return CS_ERR_STORE. End with cs_store_read_end().
 */
enum cs_err cs_store_read_begin(struct cs_store *st, struct cs_txn **out) CS_WUR;

/** End a read snapshot. NULL ok. */
void cs_store_read_end(struct cs_txn *txn);

/* --------------------------------------------------------------- writing */

/** A write callback: make changes through @p txn; return non-CS_OK to roll back. */
typedef enum cs_err (*cs_store_write_fn)(struct cs_txn *txn, void *ctx);

/** One operation of a batch. */
struct cs_store_op {
  cs_store_write_fn fn;
  void *ctx;
  enum cs_err result; /* out: the op's own result, or the commit's failure */
};

/**
 * Run @p fn in a write transaction and commit durably (etcd: to a quorum).
 * When it returns, reads through this handle see the write. etcd: a write
 * whose callback changes nothing commits nothing (no round trip; its result
 * is as of the local copy, like a read); writes through one handle run one
 * at a time (the group committer batches them).
 * @return fn's error (nothing written), CS_ERR_STORE_FULL (the map could
 *         not grow further, or a read snapshot held for over 2 s blocked
 *         the growth — never hold one while waiting for a write),
 *         CS_ERR_STORE, CS_ERR_IO; etcd also CS_ERR_STORE_UNAVAILABLE (no
 *         quorum or endpoint answered within 3x the request timeout; if a
 *         request went out it may still commit, exactly once),
 *         CS_ERR_TOO_LARGE (the change needs more than one etcd Txn holds:
 *         127 puts and deletes, fewer when it deletes from several tables,
 *         and ~1.25 MiB of keys and values).
 */
enum cs_err cs_store_write(struct cs_store *st, cs_store_write_fn fn, void *ctx) CS_WUR;

/**
 * Group commit: run every op in one durable transaction, each in a nested
 * transaction so a failing op rolls back alone. Sets each op's result.
 * etcd: one Txn when the ops fit etcd's limits, else as few as fit (never
 * splitting one op); a later Txn re-runs its ops on the state the earlier
 * one left.
 * @return CS_OK if the commit succeeded (individual ops may still have
 *         failed), else the commit's error, which is also every op's result
 *         (etcd: of every op not already committed by an earlier Txn of the
 *         same batch; those keep their own results).
 */
enum cs_err cs_store_write_batch(struct cs_store *st, struct cs_store_op *ops, size_t n) CS_WUR;

/* ------------------------------------------------- records (any txn kind) */

/** @return CS_ERR_NOT_FOUND, CS_ERR_INVALID (empty or oversize key),
 *  CS_ERR_STORE. *out borrowed until txn end. */
enum cs_err cs_txn_get(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                       struct cs_val *out) CS_WUR;

/** Write access only. @return CS_ERR_EXISTS (with CS_PUT_NO_OVERWRITE),
 *  CS_ERR_INVALID (empty or >511-byte key), CS_ERR_STORE_FULL (handled by
 *  cs_store_write*), CS_ERR_STORE. */
enum cs_err cs_txn_put(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                       const void *val, size_t vlen, unsigned flags) CS_WUR;

/**
 * cs_txn_put() bound to lease @p lease (from cs_store_lease_grant()): etcd
 * deletes the record when the lease expires or is revoked, and every node
 * sees the delete through its watch. Such deletes bypass the per-table
 * delete marker cursors rely on (see store/etcd/etcd.h): a callback whose
 * decision depends on a lease-bound record existing must cs_txn_get() it.
 * LMDB: a plain put (leases are not tracked; see cs_store_lease_grant()).
 * @return as cs_txn_put().
 */
enum cs_err cs_txn_put_lease(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen,
                             const void *val, size_t vlen, unsigned flags, int64_t lease) CS_WUR;

/** Write access only. @return CS_ERR_NOT_FOUND, CS_ERR_INVALID (key),
 *  CS_ERR_INTERNAL (read txn), CS_ERR_STORE. */
enum cs_err cs_txn_del(struct cs_txn *txn, enum cs_table t, const void *key, size_t klen) CS_WUR;

/** Number of records in @p t. @return CS_ERR_STORE. */
enum cs_err cs_txn_count(struct cs_txn *txn, enum cs_table t, uint64_t *out) CS_WUR;

/**
 * For tables keyed by 8-byte big-endian sequence numbers: the last used
 * sequence number (0 when empty). @return CS_ERR_STORE.
 */
enum cs_err cs_txn_last_seq(struct cs_txn *txn, enum cs_table t, uint64_t *out) CS_WUR;

/** Encode @p seq as an 8-byte big-endian key. */
void cs_store_seq_key(uint64_t seq, uint8_t out[8]);
/** Decode an 8-byte big-endian key (0 if @p len != 8). */
uint64_t cs_store_seq_from_key(const void *key, size_t len);

/* ------------------------------------------------------------------ feeds */

/*
 * The feed tables (CS_TBL_AUDIT, CS_TBL_EVENTS) are append-only and read in
 * commit order: one order on every node, positions that only grow, so a
 * reader's `since` works on any node. LMDB: the position is the record's
 * 8-byte sequence key (the writer appends at cs_txn_last_seq() + 1). etcd:
 * keys are chosen without a shared counter (no cluster-wide tail to
 * conflict on), and the position is the commit's revision << 7 | the
 * record's rank among the table's records of that commit (see
 * store/etcd/etcd.h). Retention (deleting the oldest records) keeps the
 * positions of the rest.
 */
#define CS_FEED_TABLES 2
#define CS_FEED_RANK_BITS 7

/** Visit one feed record at position @p pos; set *stop to end the walk. */
typedef enum cs_err (*cs_feed_fn)(uint64_t pos, const struct cs_val *key, const struct cs_val *val,
                                  void *arg, bool *stop);

/**
 * Walk feed table @p t from the first position after @p after, in commit
 * order, in one read snapshot.
 * @return fn's error, CS_ERR_INVALID (not a feed table), CS_ERR_STORE.
 */
enum cs_err cs_store_feed_each(struct cs_store *st, enum cs_table t, uint64_t after, cs_feed_fn fn,
                               void *arg) CS_WUR;
/** cs_store_feed_each() inside the read transaction @p txn. @return as it. */
enum cs_err cs_txn_feed_each(struct cs_txn *txn, enum cs_table t, uint64_t after, cs_feed_fn fn,
                             void *arg) CS_WUR;

/**
 * @return true when other processes write this store at the same time
 *         (etcd, cluster mode): appends must then not share a counter, and
 *         cs_store_on_change() reports their changes. LMDB: false.
 */
bool cs_store_shared(const struct cs_store *st);
/** cs_store_shared() of the store @p txn belongs to. */
bool cs_txn_shared(const struct cs_txn *txn);

/* ---------------------------------------------------------------- cursors */

/** @return CS_ERR_STORE, CS_ERR_NOMEM. Close before the txn ends. */
enum cs_err cs_cursor_open(struct cs_txn *txn, enum cs_table t, struct cs_cursor **out) CS_WUR;

/**
 * Position at the first key >= @p key (the first record when key is NULL)
 * and return it. @return CS_ERR_NOT_FOUND past the end, CS_ERR_INVALID (oversize
 *         key), CS_ERR_STORE.
 */
enum cs_err cs_cursor_seek(struct cs_cursor *c, const void *key, size_t klen, struct cs_val *k,
                           struct cs_val *v) CS_WUR;

/** Position at the last record. @return CS_ERR_NOT_FOUND when empty. */
enum cs_err cs_cursor_last(struct cs_cursor *c, struct cs_val *k, struct cs_val *v) CS_WUR;

/** Next / previous record. @return CS_ERR_NOT_FOUND at the end, CS_ERR_STORE. */
enum cs_err cs_cursor_next(struct cs_cursor *c, struct cs_val *k, struct cs_val *v) CS_WUR;
enum cs_err cs_cursor_prev(struct cs_cursor *c, struct cs_val *k, struct cs_val *v) CS_WUR;

/** Delete the record under the cursor. @return CS_ERR_INTERNAL (read txn), CS_ERR_STORE. */
enum cs_err cs_cursor_del(struct cs_cursor *c) CS_WUR;

/** NULL ok. */
void cs_cursor_close(struct cs_cursor *c);

/* ------------------------------------------------------------- operations */

struct cs_store_stat {
  uint64_t map_size;   /* bytes reserved (etcd: of the local copy) */
  uint64_t used_bytes; /* pages in use * page size */
  uint64_t records[CS_TBL__COUNT];
  uint64_t write_batches; /* cs_store_write_batch() calls with work (group commits) */
  /* etcd only (all 0 on LMDB). Counters count since open. */
  uint64_t revision;        /* etcd revision the local copy has applied */
  uint64_t etcd_requests;   /* round trips made by API calls (writes, leases) */
  uint64_t etcd_txns;       /* of which Txns */
  uint64_t etcd_conflicts;  /* Txns whose compares failed (callbacks re-ran) */
  uint64_t etcd_background; /* round trips of the watch and health threads */
  uint64_t etcd_reloads;    /* full loads of the local copy (open, compaction) */
  uint64_t etcd_feed_index; /* entries of the local copy's feed indexes (audit, events) */
};

/** @return CS_ERR_STORE. */
enum cs_err cs_store_stat(struct cs_store *st, struct cs_store_stat *out) CS_WUR;

/**
 * Write a consistent, compacted copy of the store to the file @p path
 * (created 0600, must not exist), safe while others read and write. The
 * file is an LMDB data.mdb on both backends (etcd: of the local copy at its
 * applied revision, with its revision side tables, which LMDB ignores), so
 * it restores into an LMDB dir either way.
 * @return CS_ERR_EXISTS, CS_ERR_IO, CS_ERR_STORE.
 */
enum cs_err cs_store_backup(struct cs_store *st, const char *path) CS_WUR;

/* ---------------------------------------------------------- group commit */

/*
 * One writer thread per store handle takes every queued change and commits
 * them together through cs_store_write_batch() (store/writer.c), so writes
 * stay durable before the caller is answered without costing one commit
 * each. Backend-neutral: a batch is whatever cs_store_write_batch() makes
 * of it (LMDB: one transaction with a nested one per change; etcd: as few
 * Txns as fit).
 */
struct cs_writer;

/**
 * Start the writer thread for @p st; @p after_commit (may be NULL) runs on
 * the writer thread after each batch commits, with @p arg.
 * @return CS_ERR_NOMEM, CS_ERR_INTERNAL. Stop with cs_writer_stop().
 */
enum cs_err cs_writer_start(struct cs_store *st, void (*after_commit)(void *), void *arg,
                            struct cs_writer **out) CS_WUR;
/** Completion of a queued change: @p result is fn's, or the commit's error. */
typedef void (*cs_writer_done_fn)(void *arg, enum cs_err result);
/**
 * Queue @p fn (with @p ctx) for the next group commit and return at once.
 * Once queued, @p done(@p arg, result) is called exactly once, on the
 * writer thread, after the batch is durable (result: fn's) or failed (the
 * commit's error), or when the writer stops before running it
 * (CS_ERR_UNAVAILABLE). @p ctx must live until then; like cs_store_write,
 * @p fn may run more than once. @p done must be quick and must not submit
 * and wait.
 * @return CS_OK (queued), CS_ERR_NOMEM, CS_ERR_UNAVAILABLE (stopping): then
 *         @p done is not called.
 */
enum cs_err cs_writer_submit_async(struct cs_writer *w, cs_store_write_fn fn, void *ctx,
                                   cs_writer_done_fn done, void *arg) CS_WUR;
/**
 * cs_writer_submit_async() and wait until @p fn is durable.
 * @return fn's result, or the commit's error; CS_ERR_UNAVAILABLE once
 *         stopping; CS_ERR_NOMEM.
 */
enum cs_err cs_writer_submit(struct cs_writer *w, cs_store_write_fn fn, void *ctx) CS_WUR;
/**
 * Stop: the batch being committed completes; changes still queued complete
 * with CS_ERR_UNAVAILABLE (never dropped). NULL ok.
 */
void cs_writer_stop(struct cs_writer *w);
/**
 * Coalescing: in every batch of more than one change, run @p flush (with
 * @p arg) after the batch's changes, as one more change of the same batch;
 * after every batch, committed or not, call @p drop(@p arg). Both run on
 * the writer thread; a change that defers work to @p flush must check
 * cs_writer_flushing() first. Call before submitting anything.
 */
void cs_writer_set_flush(struct cs_writer *w, cs_store_write_fn flush, void (*drop)(void *),
                         void *arg);
/** Inside a change run by @p w's writer thread: will the flush run after it in this batch? */
bool cs_writer_flushing(const struct cs_writer *w);

/* ------------------------------------------------------ cluster hooks */

/**
 * Change callback: @p key / @p klen name one record of table @p t that was
 * put or deleted; @p key NULL means any record of @p t may have changed (the
 * local copy was reloaded after a compaction). Keys are borrowed for the call.
 */
typedef void (*cs_store_change_fn)(void *arg, enum cs_table t, const void *key, size_t klen);

/**
 * Register @p fn (NULL: none), replacing any earlier one. etcd: called on
 * the watch thread after the local copy applied a change made by any node,
 * this one included, once per changed record, in revision order; it must
 * be quick and must not wait for a write (the write waits for this
 * thread), nor call cs_store_on_change(). Once this returns, the old
 * callback is not running nor called.
 * LMDB: never called (one process: the writer knows what it changed).
 */
void cs_store_on_change(struct cs_store *st, cs_store_change_fn fn, void *arg);

/**
 * Leases, for records that must vanish when their writer dies (outbox
 * claims): grant one with a TTL, keep it alive well within the TTL, bind
 * records to it with cs_txn_put_lease(), revoke it to delete them at once.
 * etcd: /v3/lease/grant, keepalive, revoke. LMDB (one process): ids are
 * handed out, nothing expires and revoke deletes nothing.
 * @return CS_ERR_INVALID (ttl 0 or over a day), CS_ERR_STORE_UNAVAILABLE,
 *         CS_ERR_STORE.
 */
enum cs_err cs_store_lease_grant(struct cs_store *st, unsigned ttl_s, int64_t *out) CS_WUR;
/** @return CS_ERR_NOT_FOUND (expired or revoked), CS_ERR_STORE_UNAVAILABLE, CS_ERR_STORE. */
enum cs_err cs_store_lease_keepalive(struct cs_store *st, int64_t lease) CS_WUR;
/** @return CS_ERR_NOT_FOUND, CS_ERR_STORE_UNAVAILABLE, CS_ERR_STORE. */
enum cs_err cs_store_lease_revoke(struct cs_store *st, int64_t lease) CS_WUR;

#endif /* CS_STORE_H */
