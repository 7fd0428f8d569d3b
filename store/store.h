/**
 * @file store.h
 * @brief Persistence behind a backend-neutral API. Records are opaque bytes
 *        in named tables; every multi-record rule runs as one transaction.
 *
 * No backend type appears here, so a distributed backend can replace LMDB
 * without touching the layers above. The LMDB backend (store_lmdb.c) keeps
 * one environment with one named database per table, commits durably, and
 * grows the map on demand.
 *
 * Threading: any thread may read or write. Reads are short snapshots
 * (begin, get/iterate, end). Writes go through cs_store_write*() which may
 * run the callback more than once (after growing a full map), so a callback
 * must not have effects outside the transaction.
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
  CS_TBL_USAGES_BY_CRED, /* credential id '\0' usage id → empty */
  CS_TBL_KEYS,           /* access key id → record */
  CS_TBL_AUDIT,          /* u64 BE seq → entry */
  CS_TBL_EVENTS,         /* u64 BE seq → event */
  CS_TBL_OUTBOX,         /* u64 BE seq → delivery */
  CS_TBL__COUNT
};

/** Open flags. */
#define CS_STORE_CREATE 0x1u   /* create the dir (0700) and a fresh store */
#define CS_STORE_READONLY 0x2u /* open read-only (audit-verify) */

/** Put flags. */
#define CS_PUT_NO_OVERWRITE 0x1u /* fail with CS_ERR_EXISTS if the key exists */

struct cs_store;
struct cs_txn;
struct cs_cursor;

/** A borrowed view of stored bytes, valid until its transaction ends. */
struct cs_val {
  const void *data;
  size_t len;
};

/**
 * Open the store in directory @p dir.
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

/** Close the store. All transactions must have ended. NULL ok. */
void cs_store_close(struct cs_store *st);

/** @return true if @p dir already holds a store (data file present). */
bool cs_store_exists(const char *dir);

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
 * Run @p fn in a write transaction and commit durably.
 * @return fn's error (nothing written), CS_ERR_STORE_FULL (the map could
 *         not grow further, or a read snapshot held for over 2 s blocked
 *         the growth — never hold one while waiting for a write),
 *         CS_ERR_STORE, CS_ERR_IO.
 */
enum cs_err cs_store_write(struct cs_store *st, cs_store_write_fn fn, void *ctx) CS_WUR;

/**
 * Group commit: run every op in one durable transaction, each in a nested
 * transaction so a failing op rolls back alone. Sets each op's result.
 * @return CS_OK if the commit succeeded (individual ops may still have
 *         failed), else the commit's error, which is also every op's result.
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
  uint64_t map_size;   /* bytes reserved */
  uint64_t used_bytes; /* pages in use * page size */
  uint64_t records[CS_TBL__COUNT];
};

/** @return CS_ERR_STORE. */
enum cs_err cs_store_stat(struct cs_store *st, struct cs_store_stat *out) CS_WUR;

/**
 * Write a consistent, compacted copy of the store to the file @p path
 * (created 0600, must not exist), safe while others read and write.
 * @return CS_ERR_EXISTS, CS_ERR_IO, CS_ERR_STORE.
 */
enum cs_err cs_store_backup(struct cs_store *st, const char *path) CS_WUR;

#endif /* CS_STORE_H */
