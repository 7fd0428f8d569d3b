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

struct cs_txn {
  struct cs_store *st;
  MDB_txn *txn;        /* pooled and idle: reset, or NULL if never begun */
  struct cs_txn *next; /* idle list link */
  bool write;
  bool full;   /* a write hit MDB_MAP_FULL: only abort is left, then grow and rerun */
  bool pooled; /* lives in st->pool, else malloc'd for one snapshot */
};

struct cs_cursor {
  MDB_cursor *cur;
  struct cs_txn *txn;
  enum cs_table t;
};

struct cs_store {
  MDB_env *env;
  MDB_dbi dbi[CS_TBL__COUNT];
  size_t max_key;
  bool readonly;
  pthread_mutex_t write_mu; /* one writer in this process, across any remap */
  pthread_mutex_t mu;       /* guards pins, remapping, idle */
  pthread_cond_t unpinned;  /* pins fell to 0 */
  pthread_cond_t remapped;  /* remapping cleared */
  unsigned pins;            /* snapshots and backups using the mapping */
  bool remapping;           /* a remap waits: new pins hold off */
  struct cs_txn *idle;
  struct cs_txn pool[CS_READ_POOL];
};

extern const char *const cs_store_table_names[CS_TBL__COUNT];

#endif /* CS_STORE_LMDB_PRIV_H */
