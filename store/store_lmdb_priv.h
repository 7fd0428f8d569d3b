/*
 * Private to store/: the LMDB backend's structures, shared by store_lmdb.c
 * (environment, snapshots, writes) and store_lmdb_rec.c (records, cursors).
 * Nothing outside store/ may include this.
 */
#ifndef CS_STORE_LMDB_PRIV_H
#define CS_STORE_LMDB_PRIV_H

#include "store.h"

#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>

/* Idle read txns kept for reuse (each holds one of the 1024 reader slots). */
#define CS_READ_POOL 64

struct cs_etcd;
struct cs_etcd_rec;

struct cs_txn {
  struct cs_store *st;
  MDB_txn *txn;            /* pooled and idle: reset, or NULL if never begun */
  struct cs_txn *next;     /* idle list link */
  struct cs_etcd_rec *rec; /* etcd write: records reads and writes, else NULL */
  bool write;
  bool full;   /* a write hit MDB_MAP_FULL: only abort is left, then grow and rerun */
  bool pooled; /* lives in st->pool, else malloc'd for one snapshot */
};

/* Longest key LMDB takes with its default page size (mdb_env_get_maxkeysize). */
#define CS_STORE_KEY_MAX 511

struct cs_cursor {
  MDB_cursor *cur;
  struct cs_txn *txn;
  enum cs_table t;
  /* etcd recording only (txn->rec): the key last returned, and the range
   * piece this cursor is extending (index + 1, 0: none). */
  size_t pos_len;
  size_t piece;
  bool has_pos;
  uint8_t pos[CS_STORE_KEY_MAX];
};

struct cs_store {
  MDB_env *env;
  struct cs_etcd *etcd; /* cluster mode: env is etcd's local copy; else NULL */
  MDB_dbi dbi[CS_TBL__COUNT];
  /* Read-only opens only: a table the store predates (added by a later
   * build, created by its first writable open) reads as empty. */
  bool absent[CS_TBL__COUNT];
  size_t max_key;
  bool readonly;
  pthread_mutex_t write_mu; /* one writer of env in this process, across any remap
                             * (etcd: callbacks being recorded, or the watch applying) */
  pthread_mutex_t mu;       /* guards pins, remapping, idle */
  pthread_cond_t unpinned;  /* pins fell to 0 */
  pthread_cond_t remapped;  /* remapping cleared */
  unsigned pins;            /* snapshots and backups using the mapping */
  bool remapping;           /* a remap waits: new pins hold off */
  struct cs_txn *idle;
  struct cs_txn pool[CS_READ_POOL];
};

extern const char *const cs_store_table_names[CS_TBL__COUNT];

/* Shared with the etcd backend (store/etcd/), which keeps its local copy in
 * an LMDB environment of its own. */

/* How tables_open treats the schema record. */
enum cs_lmdb_schema { CS_SCHEMA_WRITE, CS_SCHEMA_CHECK, CS_SCHEMA_NONE };

/** Log an unexpected LMDB failure; @return its class (CS_ERR_IO, _NOMEM, _STORE). */
enum cs_err cs_lmdb_fail(int rc, const char *what);
/** A zeroed store with its locks and read pool. */
enum cs_err cs_lmdb_alloc(bool readonly, struct cs_store **out);
/** Open @p dir's env; @p cache: etcd's local copy (no fsync, more tables). */
enum cs_err cs_lmdb_env_open(struct cs_store *st, const char *dir, bool create, bool cache);
/** Open (creating if writable) every table, then treat the schema per @p how. */
enum cs_err cs_lmdb_tables_open(struct cs_store *st, enum cs_lmdb_schema how);
/** Refuse a missing, garbled or newer schema record. */
enum cs_err cs_lmdb_schema_check(struct cs_store *st, MDB_txn *txn);
/** The LMDB backend's cs_store_open() and cs_store_exists() on a plain dir. */
enum cs_err cs_lmdb_open(const char *dir, unsigned flags, struct cs_store **out);
bool cs_lmdb_exists(const char *dir);
/** Double the map. Requires write_mu held and no write txn open. */
enum cs_err cs_lmdb_grow_locked(struct cs_store *st);

#endif /* CS_STORE_LMDB_PRIV_H */
