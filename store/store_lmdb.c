/*
 * LMDB backend of store.h: the environment, snapshots, writes and map growth.
 * Record, cursor and sequence operations live in store_lmdb_rec.c.
 *
 * Map pinning. mdb_env_set_mapsize() unmaps and remaps the data file, so no
 * transaction of this process may be open while it runs, and every borrowed
 * cs_val dies with the old mapping. Each read snapshot (and a backup) pins
 * the map (st->pins); a remap holds off new pins, waits for the count to
 * reach zero, and remaps. Writers never pin: st->write_mu serialises them in
 * this process, and every remap runs with write_mu held and no write txn
 * open. This is a mutex and condition variables rather than a
 * pthread_rwlock because MDB_NOTLS lets a snapshot end on another thread
 * than began it (undefined for rwlocks), because glibc's rwlock prefers
 * readers and a steady request load would starve the remap, and because the
 * same mutex guards the read txn pool: one lock per begin and one per end.
 *
 * Consequence for callers: never wait for a write (one's own or the group
 * committer's) while holding a read snapshot. A write that must grow the map
 * waits for that snapshot; the wait is bounded by CS_REMAP_WAIT_MS, past
 * which the write fails with CS_ERR_STORE_FULL rather than deadlocking.
 */
#include "store_lmdb_priv.h"
#include "etcd/etcd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CS_MAP_INITIAL ((size_t)64 << 20)
#define CS_MAP_MAX ((size_t)1 << 40)
#define CS_MAX_READERS 1024u
/* Remaps are rare and snapshots last one request, so a remap that still
 * waits after this long is blocked by a caller holding a snapshot. */
#define CS_REMAP_WAIT_MS 2000
/* Another process may grow the map again while we adopt its size. */
#define CS_RESIZED_RETRIES 4
/* A retaken snapshot is suspect again only if two more commits land. */
#define CS_SNAPSHOT_RETRIES 8

const char *const cs_store_table_names[CS_TBL__COUNT] = {
    [CS_TBL_META] = "meta",         [CS_TBL_CREDS] = "credentials",
    [CS_TBL_USAGES] = "usages",     [CS_TBL_USAGES_BY_CRED] = "usages_by_credential",
    [CS_TBL_KEYS] = "access_keys",  [CS_TBL_AUDIT] = "audit",
    [CS_TBL_EVENTS] = "events",     [CS_TBL_OUTBOX] = "outbox",
    [CS_TBL_DEAD] = "dead_letters",
};

static const char schema_key[] = "schema";

/* Log an unexpected LMDB failure and classify it: positive codes are errno
 * values from the OS, negative ones LMDB's own. */
enum cs_err cs_lmdb_fail(int rc, const char *what)
{
  CS_LOG(CS_LOG_ERROR, "store: %s failed: %s", what, mdb_strerror(rc));
  if (rc == ENOMEM)
    return CS_ERR_NOMEM;
  return rc > 0 ? CS_ERR_IO : CS_ERR_STORE;
}

/* ------------------------------------------------------------ map pinning */

/* Pin the map; with @p t also take an idle pooled wrapper (NULL if none). */
static void pin(struct cs_store *st, struct cs_txn **t)
{
  pthread_mutex_lock(&st->mu);
  while (st->remapping)
    pthread_cond_wait(&st->remapped, &st->mu);
  st->pins++;
  if (t) {
    *t = st->idle;
    if (*t)
      st->idle = (*t)->next;
  }
  pthread_mutex_unlock(&st->mu);
}

/* Unpin the map; with @p t also return a pooled wrapper to the idle list. */
static void unpin(struct cs_store *st, struct cs_txn *t)
{
  pthread_mutex_lock(&st->mu);
  if (t) {
    t->next = st->idle;
    st->idle = t;
  }
  if (--st->pins == 0 && st->remapping)
    pthread_cond_signal(&st->unpinned);
  pthread_mutex_unlock(&st->mu);
}

/* Remap to @p size (0: the size another process recorded). Requires
 * write_mu held and no write txn open. */
static enum cs_err remap_locked(struct cs_store *st, size_t size)
{
  struct timespec deadline;
  unsigned blocked;
  int rc = 0;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += CS_REMAP_WAIT_MS / 1000;
  deadline.tv_nsec += (long)(CS_REMAP_WAIT_MS % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&st->mu);
  st->remapping = true;
  while (st->pins > 0 && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&st->unpinned, &st->mu, &deadline);
  blocked = st->pins;
  rc = blocked ? 0 : mdb_env_set_mapsize(st->env, size);
  st->remapping = false;
  pthread_cond_broadcast(&st->remapped);
  pthread_mutex_unlock(&st->mu);
  if (blocked) {
    CS_LOG(CS_LOG_ERROR,
           "store: map resize gave up after %d ms waiting for %u read snapshot(s); "
           "is a snapshot held across a write?",
           CS_REMAP_WAIT_MS, blocked);
    return CS_ERR_STORE_FULL;
  }
  return rc ? cs_lmdb_fail(rc, "map resize") : CS_OK;
}

/* Adopt the larger map another process recorded (MDB_MAP_RESIZED). */
static enum cs_err adopt_mapsize(struct cs_store *st)
{
  enum cs_err e;

  pthread_mutex_lock(&st->write_mu);
  e = remap_locked(st, 0);
  pthread_mutex_unlock(&st->write_mu);
  return e;
}

enum cs_err cs_lmdb_grow_locked(struct cs_store *st)
{
  MDB_envinfo info;
  size_t next;

  mdb_env_info(st->env, &info);
  if (info.me_mapsize >= CS_MAP_MAX) {
    CS_LOG(CS_LOG_ERROR, "store: map is full at its %zu GiB cap", CS_MAP_MAX >> 30);
    return CS_ERR_STORE_FULL;
  }
  next = info.me_mapsize > CS_MAP_MAX / 2 ? CS_MAP_MAX : info.me_mapsize * 2;
  CS_LOG(CS_LOG_INFO, "store: growing the map from %zu to %zu MiB", info.me_mapsize >> 20,
         next >> 20);
  return remap_locked(st, next);
}

/* ---------------------------------------------------------- open / close */

static enum cs_err data_path(const char *dir, char out[PATH_MAX])
{
  int n = snprintf(out, PATH_MAX, "%s/data.mdb", dir);

  if (n < 0 || n >= PATH_MAX) {
    CS_LOG(CS_LOG_ERROR, "store: data dir path is too long");
    return CS_ERR_IO;
  }
  return CS_OK;
}

/* @return CS_OK if @p data exists, CS_ERR_NOT_FOUND if not, else CS_ERR_IO. */
static enum cs_err data_file_state(const char *data)
{
  struct stat sb;

  if (stat(data, &sb) == 0)
    return CS_OK;
  if (errno == ENOENT || errno == ENOTDIR)
    return CS_ERR_NOT_FOUND;
  CS_LOG(CS_LOG_ERROR, "store: cannot stat %s: %s", data, strerror(errno));
  return CS_ERR_IO;
}

/* CREATE: make the dir (an existing one is fine) and refuse an existing store. */
static enum cs_err prepare_dir(const char *dir, const char *data)
{
  enum cs_err e;

  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    CS_LOG(CS_LOG_ERROR, "store: cannot create %s: %s", dir, strerror(errno));
    return CS_ERR_IO;
  }
  e = data_file_state(data);
  if (e == CS_OK)
    return CS_ERR_ALREADY_INITIALIZED;
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

enum cs_err cs_lmdb_alloc(bool readonly, struct cs_store **out)
{
  struct cs_store *st = calloc(1, sizeof *st);
  pthread_condattr_t ca;
  int rc;

  if (!st)
    return CS_ERR_NOMEM;
  /* With these arguments glibc's initialisers cannot fail; a failure means
   * something is badly wrong, and there is nothing partial worth undoing. */
  rc = pthread_condattr_init(&ca);
  if (!rc)
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  if (!rc)
    rc = pthread_cond_init(&st->unpinned, &ca) || pthread_cond_init(&st->remapped, &ca) ||
         pthread_mutex_init(&st->mu, NULL) || pthread_mutex_init(&st->write_mu, NULL);
  pthread_condattr_destroy(&ca);
  if (rc) {
    free(st);
    return CS_ERR_INTERNAL;
  }
  st->readonly = readonly;
  for (size_t i = 0; i < CS_READ_POOL; i++) {
    st->pool[i].st = st;
    st->pool[i].pooled = true;
    st->pool[i].next = i + 1 < CS_READ_POOL ? &st->pool[i + 1] : NULL;
  }
  st->idle = &st->pool[0];
  *out = st;
  return CS_OK;
}

/* A data file shorter than its meta page says (a truncated copy or backup)
 * would fault (SIGBUS) on the first read of a missing page: refuse it. */
static enum cs_err check_complete(struct cs_store *st)
{
  MDB_envinfo info;
  MDB_stat ms;
  mdb_filehandle_t fd;
  struct stat sb;
  uint64_t need;

  if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &ms) || mdb_env_get_fd(st->env, &fd) ||
      fstat(fd, &sb) != 0)
    return CS_ERR_STORE;
  need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
  if ((uint64_t)sb.st_size < need) {
    CS_LOG(CS_LOG_ERROR, "store: data.mdb is truncated: %lld bytes, its pages need %llu",
           (long long)sb.st_size, (unsigned long long)need);
    return CS_ERR_STORE;
  }
  return CS_OK;
}

/* The local copy of an etcd store is rebuilt at every open, so its commits
 * need no fsync; it holds a revision side table per table besides. */
enum cs_err cs_lmdb_env_open(struct cs_store *st, const char *dir, bool create, bool cache)
{
  unsigned flags = MDB_NOTLS | (st->readonly ? MDB_RDONLY : 0) | (cache ? MDB_NOSYNC : 0);
  MDB_envinfo info;
  int dead, rc;

  rc = mdb_env_create(&st->env);
  if (rc) {
    st->env = NULL;
    return cs_lmdb_fail(rc, "env create");
  }
  rc = mdb_env_set_maxdbs(st->env,
                          (cache ? 2 : 1) * CS_TBL__COUNT + 1 + (cache ? CS_FEED_TABLES : 0));
  if (!rc)
    rc = mdb_env_set_maxreaders(st->env, CS_MAX_READERS);
  /* An existing store keeps the (possibly grown) size its meta page records. */
  if (!rc && create)
    rc = mdb_env_set_mapsize(st->env, CS_MAP_INITIAL);
  if (!rc)
    rc = mdb_env_open(st->env, dir, flags, 0600);
  if (!rc && !(flags & MDB_RDONLY)) {
    mdb_env_info(st->env, &info);
    if (info.me_mapsize < CS_MAP_INITIAL)
      rc = mdb_env_set_mapsize(st->env, CS_MAP_INITIAL);
  }
  /* Free reader slots left by crashed processes: a stale slot pins old
   * pages and would make the file grow instead of reusing them. */
  if (!rc)
    rc = mdb_reader_check(st->env, &dead);
  if (rc == ENOENT)
    return CS_ERR_NOT_INITIALIZED;
  if (rc)
    return cs_lmdb_fail(rc, "env open");
  st->max_key = (size_t)mdb_env_get_maxkeysize(st->env);
  return create ? CS_OK : check_complete(st);
}

static enum cs_err schema_write(struct cs_store *st, MDB_txn *txn)
{
  const uint32_t ver = CS_STORE_SCHEMA_VERSION;
  uint8_t be[4] = {(uint8_t)(ver >> 24), (uint8_t)(ver >> 16), (uint8_t)(ver >> 8), (uint8_t)ver};
  MDB_val k = {sizeof schema_key - 1, (void *)schema_key}, v = {sizeof be, be};
  int rc = mdb_put(txn, st->dbi[CS_TBL_META], &k, &v, MDB_NOOVERWRITE);

  /* Another process initialised the same dir between our check and now. */
  if (rc == MDB_KEYEXIST)
    return CS_ERR_ALREADY_INITIALIZED;
  return rc ? cs_lmdb_fail(rc, "schema write") : CS_OK;
}

enum cs_err cs_lmdb_schema_check(struct cs_store *st, MDB_txn *txn)
{
  MDB_val k = {sizeof schema_key - 1, (void *)schema_key}, v;
  uint32_t ver = 0;
  int rc = mdb_get(txn, st->dbi[CS_TBL_META], &k, &v);

  if (rc && rc != MDB_NOTFOUND)
    return cs_lmdb_fail(rc, "schema read");
  if (rc == MDB_SUCCESS && v.mv_size == 4) {
    const uint8_t *p = v.mv_data;

    ver = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  }
  if (ver == 0) {
    CS_LOG(CS_LOG_ERROR, "store: the schema record is missing or garbled");
    return CS_ERR_STORE;
  }
  if (ver > CS_STORE_SCHEMA_VERSION) {
    CS_LOG(CS_LOG_ERROR,
           "store: the data dir has schema version %" PRIu32
           ", newer than the version %u this build supports",
           ver, CS_STORE_SCHEMA_VERSION);
    return CS_ERR_SCHEMA_NEWER;
  }
  if (ver < CS_STORE_SCHEMA_VERSION) {
    CS_LOG(CS_LOG_ERROR,
           "store: the data dir has schema version %" PRIu32
           " (a pre-release build with an unkeyed audit chain); this build reads only "
           "version %u and has no migration for it: initialise a new data dir",
           ver, CS_STORE_SCHEMA_VERSION);
    return CS_ERR_SCHEMA_OLD;
  }
  return CS_OK;
}

/* Check or write the schema, then open every table once for the env's life.
 * The schema comes first so a newer store is refused before anything is
 * created in it. */
enum cs_err cs_lmdb_tables_open(struct cs_store *st, enum cs_lmdb_schema how)
{
  bool create = how != CS_SCHEMA_CHECK;
  unsigned dflags = st->readonly ? 0 : MDB_CREATE;
  MDB_txn *txn = NULL;
  enum cs_err e;
  int rc;

  rc = mdb_txn_begin(st->env, NULL, st->readonly ? MDB_RDONLY : 0, &txn);
  if (rc) {
    txn = NULL;
    e = cs_lmdb_fail(rc, "open txn");
    goto out;
  }
  for (int t = 0; t < CS_TBL__COUNT; t++) {
    /* Only META must already exist in a store: it is what identifies one. */
    unsigned f = t == CS_TBL_META && !create ? 0 : dflags;

    rc = mdb_dbi_open(txn, cs_store_table_names[t], f, &st->dbi[t]);
    if (rc == MDB_NOTFOUND && st->readonly && t != CS_TBL_META) {
      st->absent[t] = true; /* an older store, not yet opened by this build to write */
      continue;
    }
    if (rc == MDB_NOTFOUND) {
      CS_LOG(CS_LOG_ERROR, "store: table %s is missing: not a credstore data dir?",
             cs_store_table_names[t]);
      e = CS_ERR_STORE;
      goto out;
    }
    if (rc) {
      e = cs_lmdb_fail(rc, "table open");
      goto out;
    }
    if (t == CS_TBL_META && how != CS_SCHEMA_NONE) {
      e = create ? schema_write(st, txn) : cs_lmdb_schema_check(st, txn);
      if (e != CS_OK)
        goto out;
    }
  }
  /* Committing keeps the table handles, also for a read-only txn. */
  rc = mdb_txn_commit(txn);
  txn = NULL;
  e = rc ? cs_lmdb_fail(rc, "open commit") : CS_OK;
out:
  if (txn)
    mdb_txn_abort(txn);
  return e;
}

/* Undo a failed CREATE so the dir does not look initialised. */
static void remove_new_store(const char *dir)
{
  char p[PATH_MAX];

  if (snprintf(p, sizeof p, "%s/data.mdb", dir) < (int)sizeof p)
    unlink(p);
  if (snprintf(p, sizeof p, "%s/lock.mdb", dir) < (int)sizeof p)
    unlink(p);
}

enum cs_err cs_lmdb_open(const char *dir, unsigned flags, struct cs_store **out)
{
  bool create = flags & CS_STORE_CREATE, readonly = flags & CS_STORE_READONLY;
  struct cs_store *st = NULL;
  char data[PATH_MAX];
  enum cs_err e;

  if (create && readonly)
    return CS_ERR_INTERNAL;
  e = data_path(dir, data);
  if (e != CS_OK)
    return e;
  if (create) {
    e = prepare_dir(dir, data);
  } else {
    e = data_file_state(data);
    if (e == CS_ERR_NOT_FOUND)
      e = CS_ERR_NOT_INITIALIZED;
  }
  if (e != CS_OK)
    return e;
  e = cs_lmdb_alloc(readonly, &st);
  if (e != CS_OK)
    return e;
  e = cs_lmdb_env_open(st, dir, create, false);
  if (e == CS_OK)
    e = cs_lmdb_tables_open(st, create ? CS_SCHEMA_WRITE : CS_SCHEMA_CHECK);
  if (e != CS_OK)
    goto out;
  *out = st;
  return CS_OK;
out:
  cs_store_close(st);
  if (create && e != CS_ERR_ALREADY_INITIALIZED)
    remove_new_store(dir);
  return e;
}

void cs_store_close(struct cs_store *st)
{
  if (!st)
    return;
  cs_etcd_stop(st); /* its threads use env */
  for (size_t i = 0; i < CS_READ_POOL; i++)
    if (st->pool[i].txn)
      mdb_txn_abort(st->pool[i].txn);
  if (st->env)
    mdb_env_close(st->env);
  pthread_cond_destroy(&st->unpinned);
  pthread_cond_destroy(&st->remapped);
  pthread_mutex_destroy(&st->mu);
  pthread_mutex_destroy(&st->write_mu);
  cs_etcd_free(st->etcd); /* removes the local copy's dir */
  free(st);
}

bool cs_lmdb_exists(const char *dir)
{
  char data[PATH_MAX];

  return data_path(dir, data) == CS_OK && data_file_state(data) == CS_OK;
}

/* --------------------------------------------------------------- reading */

/* Give back a snapshot's wrapper. A pooled one keeps its reset txn (or none)
 * for reuse; an overflow one is freed with its txn. */
static void read_release(struct cs_txn *t)
{
  struct cs_store *st = t->st;

  if (t->pooled) {
    unpin(st, t);
    return;
  }
  if (t->txn)
    mdb_txn_abort(t->txn);
  unpin(st, NULL);
  free(t);
}

/*
 * LMDB 0.9 publishes a reader's txnid, then copies that txn's meta page. A
 * reader preempted in between while two commits land copies a newer meta
 * from the reused slot, possibly one whose commit has not finished syncing,
 * and a later snapshot then seems to go back in time. The slot may have
 * been reused only if the newest meta is two or more txns ahead: then take
 * the snapshot again. (A copy torn by a meta write still in flight is not
 * caught, but needs that write to overlap a copy of a few nanoseconds.)
 */
static bool snapshot_suspect(struct cs_store *st, MDB_txn *txn)
{
  MDB_envinfo info;

  atomic_thread_fence(memory_order_acquire); /* check after the copy */
  mdb_env_info(st->env, &info);
  return info.me_last_txnid >= mdb_txn_id(txn) + 2;
}

/* Begin or renew @p t's snapshot, retaking a suspect one (bounded). */
static int snapshot_take(struct cs_store *st, struct cs_txn *t)
{
  int rc = t->txn ? mdb_txn_renew(t->txn) : mdb_txn_begin(st->env, NULL, MDB_RDONLY, &t->txn);

  for (int i = 0; rc == MDB_SUCCESS && i < CS_SNAPSHOT_RETRIES && snapshot_suspect(st, t->txn);
       i++) {
    mdb_txn_reset(t->txn);
    rc = mdb_txn_renew(t->txn);
  }
  return rc;
}

enum cs_err cs_store_read_begin(struct cs_store *st, struct cs_txn **out)
{
  for (int attempt = 0;; attempt++) {
    struct cs_txn *t;
    enum cs_err e;
    int rc;

    pin(st, &t);
    if (!t) {
      t = calloc(1, sizeof *t);
      if (!t) {
        unpin(st, NULL);
        return CS_ERR_NOMEM;
      }
      t->st = st;
    }
    rc = snapshot_take(st, t);
    if (rc == MDB_SUCCESS) {
      *out = t;
      return CS_OK;
    }
    /* Start the wrapper afresh next time rather than trust a failed txn. */
    if (t->txn && t->pooled) {
      mdb_txn_abort(t->txn);
      t->txn = NULL;
    }
    read_release(t);
    if (rc != MDB_MAP_RESIZED || attempt == CS_RESIZED_RETRIES)
      return cs_lmdb_fail(rc, "read begin");
    e = adopt_mapsize(st);
    if (e != CS_OK)
      return e;
  }
}

void cs_store_read_end(struct cs_txn *txn)
{
  if (!txn)
    return;
  if (txn->write) {
    CS_LOG(CS_LOG_ERROR, "store: cs_store_read_end() called on a write txn");
    return;
  }
  if (txn->pooled)
    mdb_txn_reset(txn->txn);
  read_release(txn);
}

/* --------------------------------------------------------------- writing */

static enum cs_err write_begin(struct cs_store *st, MDB_txn **out)
{
  for (int attempt = 0;; attempt++) {
    int rc = mdb_txn_begin(st->env, NULL, 0, out);
    enum cs_err e;

    if (rc == MDB_SUCCESS)
      return CS_OK;
    if (rc != MDB_MAP_RESIZED || attempt == CS_RESIZED_RETRIES)
      return cs_lmdb_fail(rc, "write begin");
    e = remap_locked(st, 0);
    if (e != CS_OK)
      return e;
  }
}

/* Run one op of a batch in its own nested txn so its failure rolls back alone. */
static enum cs_err run_nested(struct cs_txn *top, struct cs_store_op *op)
{
  struct cs_txn child = {.st = top->st, .write = true};
  enum cs_err e;
  int rc;

  rc = mdb_txn_begin(top->st->env, top->txn, 0, &child.txn);
  if (rc)
    return cs_lmdb_fail(rc, "nested txn begin");
  e = op->fn(&child, op->ctx);
  if (e != CS_OK || child.full) {
    mdb_txn_abort(child.txn);
    top->full = top->full || child.full;
    return e;
  }
  rc = mdb_txn_commit(child.txn);
  if (rc == MDB_MAP_FULL) {
    top->full = true;
    return CS_ERR_STORE_FULL;
  }
  return rc ? cs_lmdb_fail(rc, "nested txn commit") : CS_OK;
}

/* One attempt at a batch. Sets *full when the map must grow and the whole
 * batch be rerun: after MDB_MAP_FULL LMDB allows only an abort. */
static enum cs_err batch_once(struct cs_store *st, struct cs_store_op *ops, size_t n, bool *full)
{
  struct cs_txn top = {.st = st, .write = true};
  size_t ok = 0;
  enum cs_err e;
  int rc;

  e = write_begin(st, &top.txn);
  if (e != CS_OK)
    return e;
  for (size_t i = 0; i < n && !top.full; i++) {
    /* A lone op needs no nested txn: its failure aborts everything anyway. */
    ops[i].result = n == 1 ? ops[i].fn(&top, ops[i].ctx) : run_nested(&top, &ops[i]);
    ok += ops[i].result == CS_OK;
  }
  /* Nothing succeeded (or the map is full): skip the commit and its fsync. */
  if (top.full || ok == 0) {
    mdb_txn_abort(top.txn);
    *full = top.full;
    return top.full ? CS_ERR_STORE_FULL : CS_OK;
  }
  rc = mdb_txn_commit(top.txn);
  if (rc == MDB_MAP_FULL) {
    *full = true;
    return CS_ERR_STORE_FULL;
  }
  return rc ? cs_lmdb_fail(rc, "commit") : CS_OK;
}

enum cs_err cs_store_write_batch(struct cs_store *st, struct cs_store_op *ops, size_t n)
{
  enum cs_err e = CS_OK;

  if (n == 0)
    return CS_OK;
  atomic_fetch_add_explicit(&st->batches, 1, memory_order_relaxed);
  if (st->etcd && !st->readonly)
    return cs_etcd_write_batch(st, ops, n);
  if (st->readonly) {
    CS_LOG(CS_LOG_ERROR, "store: write refused: the store is open read-only");
    e = CS_ERR_STORE;
    goto out;
  }
  pthread_mutex_lock(&st->write_mu);
  for (;;) {
    bool full = false;

    e = batch_once(st, ops, n, &full);
    if (!full)
      break;
    e = cs_lmdb_grow_locked(st);
    if (e != CS_OK)
      break;
  }
  pthread_mutex_unlock(&st->write_mu);
out:
  if (e != CS_OK)
    for (size_t i = 0; i < n; i++)
      ops[i].result = e;
  return e;
}

enum cs_err cs_store_write(struct cs_store *st, cs_store_write_fn fn, void *ctx)
{
  struct cs_store_op op = {.fn = fn, .ctx = ctx, .result = CS_OK};
  enum cs_err e = cs_store_write_batch(st, &op, 1);

  return e != CS_OK ? e : op.result;
}

/* ------------------------------------------------------------- operations */

enum cs_err cs_store_stat(struct cs_store *st, struct cs_store_stat *out)
{
  struct cs_store_stat s = {0};
  struct cs_txn *txn;
  MDB_envinfo info;
  MDB_stat ms;
  enum cs_err e;
  int rc;

  /* The snapshot also pins the map that info and stat read the meta from. */
  e = cs_store_read_begin(st, &txn);
  if (e != CS_OK)
    return e;
  rc = mdb_env_info(st->env, &info);
  if (!rc)
    rc = mdb_env_stat(st->env, &ms);
  if (rc) {
    e = cs_lmdb_fail(rc, "env stat");
    goto out;
  }
  s.map_size = info.me_mapsize;
  s.used_bytes = (uint64_t)ms.ms_psize * ((uint64_t)info.me_last_pgno + 1);
  for (int t = 0; t < CS_TBL__COUNT; t++) {
    e = cs_txn_count(txn, (enum cs_table)t, &s.records[t]);
    if (e != CS_OK)
      goto out;
  }
  s.write_batches = atomic_load_explicit(&st->batches, memory_order_relaxed);
  cs_etcd_stat(st, txn->txn, &s);
  *out = s;
out:
  cs_store_read_end(txn);
  return e;
}

/* One compacted copy into @p fd; adopts a map another process grew. */
static int copy_to_fd(struct cs_store *st, int fd)
{
  for (int attempt = 0;; attempt++) {
    int rc;

    pin(st, NULL);
    rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT);
    unpin(st, NULL);
    if (rc != MDB_MAP_RESIZED || attempt == CS_RESIZED_RETRIES)
      return rc;
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
      return errno;
    if (adopt_mapsize(st) != CS_OK)
      return rc;
  }
}

/*
 * mdb_env_copy2() writes into a directory, but the API promises one file, so
 * copy into a descriptor instead. The file is a complete data.mdb: restore
 * by placing it as data.mdb in an empty directory and opening that (LMDB
 * recreates lock.mdb). The copy runs in its own snapshot, so others keep
 * reading and writing; it pins the map meanwhile, so a growth needed during
 * a long backup waits (bounded, see CS_REMAP_WAIT_MS).
 */
enum cs_err cs_store_backup(struct cs_store *st, const char *path)
{
  enum cs_err e;
  int fd, rc;

  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      return CS_ERR_EXISTS;
    CS_LOG(CS_LOG_ERROR, "store: cannot create backup %s: %s", path, strerror(errno));
    return CS_ERR_IO;
  }
  rc = copy_to_fd(st, fd);
  if (rc) {
    e = cs_lmdb_fail(rc, "backup copy");
    goto fail;
  }
  rc = fsync(fd) != 0 ? errno : 0;
  if (close(fd) != 0 && !rc)
    rc = errno;
  fd = -1;
  if (rc) {
    CS_LOG(CS_LOG_ERROR, "store: cannot flush backup %s: %s", path, strerror(rc));
    e = CS_ERR_IO;
    goto fail;
  }
  return CS_OK;
fail:
  if (fd >= 0)
    close(fd);
  unlink(path); /* a partial copy is no backup */
  return e;
}
