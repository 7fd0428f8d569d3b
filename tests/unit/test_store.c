/*
 * Unit tests for store/: one case per error path, plus data survival
 * (reopen, backup/restore) and concurrent use, on every backend (see
 * store_test.h for how one is chosen); LMDB's own cases (map growth, a
 * second process, the raw schema record); etcd's own are store_cluster.c.
 */
#include "store_test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define INITIAL_MAP (64 * MIB)

/* ---------------------------------------------------------------- helpers */

const char *store_etcd;
struct cs_store_opts store_opts = {.etcd_timeout_ms = 2000};
static int slowdown = 1; /* CS_TEST_SLOW */

int bound_ms(int ms) { return ms * slowdown; }

void make_dir(char out[64])
{
  snprintf(out, 64, "/tmp/cs-store-XXXXXX");
  assert_non_null(mkdtemp(out));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void rm_tree(const char *dir) { assert_int_equal(nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0); }

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
  assert_true(snprintf(out, n, "%s/%s", dir, name) < (int)n);
}

/* etcd: a prefix of its own per store, so cases never see each other. */
void fresh_url(char *out, size_t n)
{
  static unsigned serial;
  char dir[64];

  if (store_etcd) {
    assert_true(snprintf(out, n, "%s/cs-test-%ld-%u-%u/", store_etcd, (long)getpid(),
                         (unsigned)time(NULL), ++serial) < (int)n);
    return;
  }
  make_dir(dir);
  assert_true(snprintf(out, n, "%s/data", dir) < (int)n);
}

enum cs_err fx_open(const struct fx *f, unsigned flags, struct cs_store **st)
{
  return cs_store_open_url(f->url, &store_opts, flags, st);
}

/* An empty dir (LMDB: the store's) or a fresh prefix, no store. */
int dir_setup(void **state)
{
  struct fx *f = calloc(1, sizeof *f);

  assert_non_null(f);
  make_dir(f->dir);
  if (store_etcd)
    fresh_url(f->url, sizeof f->url);
  else
    memcpy(f->url, f->dir, sizeof f->dir);
  *state = f;
  return 0;
}

/* A fresh store in a fresh dir. */
int fx_setup(void **state)
{
  struct fx *f;
  enum cs_err e;

  dir_setup(state);
  f = *state;
  e = fx_open(f, CS_STORE_CREATE, &f->st);
  if (e != CS_OK) { /* cmocka runs no teardown after a failed setup */
    rm_tree(f->dir);
    free(f);
    *state = NULL;
  }
  assert_int_equal(e, CS_OK);
  return 0;
}

int fx_teardown(void **state)
{
  struct fx *f = *state;

  cs_store_close(f->st);
  rm_tree(f->dir);
  free(f);
  return 0;
}

enum cs_err put_cb(struct cs_txn *txn, void *ctx)
{
  struct kv *kv = ctx;
  enum cs_err e;

  kv->calls++;
  e = cs_txn_put(txn, kv->t, kv->k, kv->klen, kv->v, kv->vlen, kv->flags);
  return e != CS_OK ? e : kv->fail;
}

enum cs_err put(struct cs_store *st, enum cs_table t, const char *k, const void *v, size_t vlen)
{
  struct kv kv = {t, k, strlen(k), v, vlen, 0, 0, CS_OK};

  return cs_store_write(st, put_cb, &kv);
}

enum cs_err put_s(struct cs_store *st, enum cs_table t, const char *k, const char *v)
{
  return put(st, t, k, v, strlen(v));
}

/* Assert the record (t, k) holds exactly v[0..vlen). */
void assert_rec(struct cs_store *st, enum cs_table t, const void *k, size_t klen, const void *v,
                size_t vlen)
{
  struct cs_txn *txn;
  struct cs_val got;

  assert_int_equal(cs_store_read_begin(st, &txn), CS_OK);
  assert_int_equal(cs_txn_get(txn, t, k, klen, &got), CS_OK);
  assert_int_equal(got.len, vlen);
  assert_memory_equal(got.data, v, vlen);
  cs_store_read_end(txn);
}

void assert_absent(struct cs_store *st, enum cs_table t, const char *k)
{
  struct cs_txn *txn;
  struct cs_val got;

  assert_int_equal(cs_store_read_begin(st, &txn), CS_OK);
  assert_int_equal(cs_txn_get(txn, t, k, strlen(k), &got), CS_ERR_NOT_FOUND);
  cs_store_read_end(txn);
}

uint64_t count(struct cs_store *st, enum cs_table t)
{
  struct cs_txn *txn;
  uint64_t n = UINT64_MAX;

  assert_int_equal(cs_store_read_begin(st, &txn), CS_OK);
  assert_int_equal(cs_txn_count(txn, t, &n), CS_OK);
  cs_store_read_end(txn);
  return n;
}

struct cs_store_stat stat_of(struct cs_store *st)
{
  struct cs_store_stat s;

  assert_int_equal(cs_store_stat(st, &s), CS_OK);
  return s;
}

/* Write meta "schema" behind the store's back (NULL: delete it). */
static void raw_schema(const char *dir, const void *val, size_t vlen)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k = {6, (void *)"schema"}, v = {vlen, (void *)val};

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
  assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
  assert_int_equal(val ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void copy_file(const char *from, const char *to)
{
  char buf[65536];
  int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ssize_t n;

  assert_true(in >= 0 && out >= 0);
  while ((n = read(in, buf, sizeof buf)) > 0)
    assert_int_equal(write(out, buf, (size_t)n), n);
  assert_int_equal(n, 0);
  close(in);
  assert_int_equal(close(out), 0);
}

/* -------------------------------------------------------- open and schema */

static void test_open_not_initialized(void **state)
{
  struct fx *f = *state;
  struct cs_store *st = NULL;
  char sub[128], data[128];

  bool exists = true;

  assert_false(cs_store_exists(f->url));
  assert_int_equal(fx_open(f, 0, &st), CS_ERR_NOT_INITIALIZED);
  assert_int_equal(fx_open(f, CS_STORE_READONLY, &st), CS_ERR_NOT_INITIALIZED);
  assert_null(st);
  if (!store_etcd) {
    path_in(sub, sizeof sub, f->dir, "missing");
    assert_int_equal(cs_store_open(sub, 0, &st), CS_ERR_NOT_INITIALIZED);
    /* Refusing must not leave anything behind. */
    path_in(data, sizeof data, f->dir, "data.mdb");
    assert_int_equal(access(data, F_OK), -1);
  }
  assert_false(cs_store_exists(f->url));
  assert_int_equal(cs_store_probe(f->url, &store_opts, &exists), CS_OK);
  assert_false(exists);
  assert_int_equal(fx_open(f, CS_STORE_CREATE | CS_STORE_READONLY, &st), CS_ERR_INTERNAL);
  assert_null(st);
}

static void test_create_twice(void **state)
{
  struct fx *f = *state;
  struct cs_store *st = NULL;
  char sub[128];
  struct stat sb;

  if (store_etcd)
    assert_true(snprintf(sub, sizeof sub, "%sdata", f->url) < (int)sizeof sub);
  else
    path_in(sub, sizeof sub, f->dir, "data");
  assert_int_equal(cs_store_open_url(sub, &store_opts, CS_STORE_CREATE, &st), CS_OK);
  if (!store_etcd) {
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
  }
  assert_true(cs_store_exists(sub));
  cs_store_close(st);
  st = NULL;
  assert_int_equal(cs_store_open_url(sub, &store_opts, CS_STORE_CREATE, &st),
                   CS_ERR_ALREADY_INITIALIZED);
  assert_null(st);
  /* The refused CREATE left the existing store alone. */
  assert_int_equal(cs_store_open_url(sub, &store_opts, 0, &st), CS_OK);
  assert_int_equal(count(st, CS_TBL_META), 1);
  cs_store_close(st);
  /* etcd: a prefix holding any key at all (here a store under it) is taken. */
  if (store_etcd) {
    st = NULL;
    assert_int_equal(fx_open(f, CS_STORE_CREATE, &st), CS_ERR_ALREADY_INITIALIZED);
    assert_null(st);
  }
}

/* Open @p dir with stderr captured into @p log. */
static enum cs_err open_logged(const char *dir, struct cs_store **st, char *log, size_t n)
{
  FILE *tmp = tmpfile();
  int saved = dup(2);
  enum cs_err e;
  size_t got;

  assert_non_null(tmp);
  fflush(stderr);
  assert_true(dup2(fileno(tmp), 2) >= 0);
  cs_log_min_level = CS_LOG_ERROR;
  e = cs_store_open(dir, 0, st);
  cs_log_min_level = CS_LOG_OFF;
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  got = fread(log, 1, n - 1, tmp);
  log[got] = '\0';
  fclose(tmp);
  return e;
}

static void test_schema_newer(void **state)
{
  struct fx *f = *state;
  const uint8_t newer[4] = {0, 0, 0, CS_STORE_SCHEMA_VERSION + 1};
  struct cs_store *st = NULL;
  char log[4096], want[64];

  cs_store_close(f->st);
  f->st = NULL;
  raw_schema(f->dir, newer, sizeof newer);
  assert_int_equal(open_logged(f->dir, &st, log, sizeof log), CS_ERR_SCHEMA_NEWER);
  assert_null(st);
  assert_non_null(strstr(log, "\"level\":\"error\""));
  snprintf(want, sizeof want, "schema version %u", CS_STORE_SCHEMA_VERSION + 1);
  assert_non_null(strstr(log, want));
  snprintf(want, sizeof want, "version %u this build supports", CS_STORE_SCHEMA_VERSION);
  assert_non_null(strstr(log, want));
}

/* A version 1 store (unkeyed audit chain) is refused, read-only too. */
static void test_schema_older(void **state)
{
  struct fx *f = *state;
  const uint8_t v1[4] = {0, 0, 0, 1};
  struct cs_store *st = NULL;
  char log[4096];

  assert_int_equal(CS_STORE_SCHEMA_VERSION, 2);
  cs_store_close(f->st);
  f->st = NULL;
  raw_schema(f->dir, v1, sizeof v1);
  assert_int_equal(open_logged(f->dir, &st, log, sizeof log), CS_ERR_SCHEMA_OLD);
  assert_null(st);
  assert_non_null(strstr(log, "\"level\":\"error\""));
  assert_non_null(strstr(log, "schema version 1"));
  assert_non_null(strstr(log, "unkeyed audit chain"));
  assert_int_equal(cs_store_open(f->dir, CS_STORE_READONLY, &st), CS_ERR_SCHEMA_OLD);
  assert_null(st);
  assert_true(cs_store_exists(f->dir));
}

static void test_schema_garbled(void **state)
{
  struct fx *f = *state;
  const uint8_t short_val[3] = {0, 0, 1}, zero[4] = {0};
  struct cs_store *st = NULL;

  cs_store_close(f->st);
  f->st = NULL;
  raw_schema(f->dir, short_val, sizeof short_val);
  assert_int_equal(cs_store_open(f->dir, 0, &st), CS_ERR_STORE);
  raw_schema(f->dir, zero, sizeof zero);
  assert_int_equal(cs_store_open(f->dir, 0, &st), CS_ERR_STORE);
  raw_schema(f->dir, NULL, 0);
  assert_int_equal(cs_store_open(f->dir, CS_STORE_READONLY, &st), CS_ERR_STORE);
  assert_null(st);
  /* A refused open leaves the (damaged) store in place for inspection. */
  assert_true(cs_store_exists(f->dir));
}

/* ---------------------------------------------------------- record errors */

static void test_get_missing(void **state)
{
  struct fx *f = *state;
  struct cs_txn *txn;
  struct cs_val v = {"sentinel", 8};

  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "present", "x"), CS_OK);
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_txn_get(txn, CS_TBL_CREDS, "absent", 6, &v), CS_ERR_NOT_FOUND);
  /* Same key, other table: tables are separate. */
  assert_int_equal(cs_txn_get(txn, CS_TBL_USAGES, "present", 7, &v), CS_ERR_NOT_FOUND);
  assert_string_equal(v.data, "sentinel"); /* out-param untouched on error */
  assert_int_equal(v.len, 8);
  cs_store_read_end(txn);
}

static void test_put_no_overwrite_twice(void **state)
{
  struct fx *f = *state;
  struct kv kv = {CS_TBL_KEYS, "ak1", 3, "first", 5, CS_PUT_NO_OVERWRITE, 0, CS_OK};

  assert_int_equal(cs_store_write(f->st, put_cb, &kv), CS_OK);
  kv.v = "second";
  kv.vlen = 6;
  assert_int_equal(cs_store_write(f->st, put_cb, &kv), CS_ERR_EXISTS);
  assert_rec(f->st, CS_TBL_KEYS, "ak1", 3, "first", 5);
  /* Without the flag the put overwrites. */
  kv.flags = 0;
  assert_int_equal(cs_store_write(f->st, put_cb, &kv), CS_OK);
  assert_rec(f->st, CS_TBL_KEYS, "ak1", 3, "second", 6);
}

static enum cs_err del_cb(struct cs_txn *txn, void *ctx)
{
  return cs_txn_del(txn, CS_TBL_CREDS, ctx, strlen(ctx));
}

static void test_del_missing(void **state)
{
  struct fx *f = *state;

  assert_int_equal(cs_store_write(f->st, del_cb, "nope"), CS_ERR_NOT_FOUND);
  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c1", "v"), CS_OK);
  assert_int_equal(cs_store_write(f->st, del_cb, "c1"), CS_OK);
  assert_absent(f->st, CS_TBL_CREDS, "c1");
  assert_int_equal(cs_store_write(f->st, del_cb, "c1"), CS_ERR_NOT_FOUND);
}

struct keycase {
  size_t klen;
  enum cs_err put, get, del;
};

static enum cs_err keycase_cb(struct cs_txn *txn, void *ctx)
{
  static char key[600];
  struct keycase *kc = ctx;
  struct cs_val v;

  memset(key, 'k', sizeof key);
  kc->put = cs_txn_put(txn, CS_TBL_CREDS, key, kc->klen, "v", 1, 0);
  kc->get = cs_txn_get(txn, CS_TBL_CREDS, key, kc->klen, &v);
  kc->del = cs_txn_del(txn, CS_TBL_CREDS, key, kc->klen);
  return CS_OK;
}

static void test_bad_keys(void **state)
{
  struct fx *f = *state;
  struct keycase empty = {.klen = 0}, big = {.klen = 512}, max = {.klen = 511};
  struct cs_txn *txn;
  struct cs_cursor *c;
  struct cs_val k;
  char key[600];

  assert_int_equal(cs_store_write(f->st, keycase_cb, &empty), CS_OK);
  assert_int_equal(empty.put, CS_ERR_INVALID);
  assert_int_equal(empty.get, CS_ERR_INVALID);
  assert_int_equal(empty.del, CS_ERR_INVALID);
  assert_int_equal(cs_store_write(f->st, keycase_cb, &big), CS_OK);
  assert_int_equal(big.put, CS_ERR_INVALID);
  assert_int_equal(big.get, CS_ERR_INVALID);
  assert_int_equal(big.del, CS_ERR_INVALID);
  /* 511 bytes is the limit, and fine. */
  assert_int_equal(cs_store_write(f->st, keycase_cb, &max), CS_OK);
  assert_int_equal(max.put, CS_OK);
  assert_int_equal(max.get, CS_OK);
  assert_int_equal(max.del, CS_OK);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 0);
  memset(key, 'k', sizeof key);
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_cursor_open(txn, CS_TBL_CREDS, &c), CS_OK);
  assert_int_equal(cs_cursor_seek(c, key, 512, &k, NULL), CS_ERR_INVALID);
  cs_cursor_close(c);
  cs_store_read_end(txn);
}

static void test_write_in_read_txn(void **state)
{
  struct fx *f = *state;
  struct cs_txn *txn;
  struct cs_cursor *c;

  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c1", "v1"), CS_OK);
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_txn_put(txn, CS_TBL_CREDS, "c2", 2, "v2", 2, 0), CS_ERR_INTERNAL);
  assert_int_equal(cs_txn_del(txn, CS_TBL_CREDS, "c1", 2), CS_ERR_INTERNAL);
  assert_int_equal(cs_cursor_open(txn, CS_TBL_CREDS, &c), CS_OK);
  assert_int_equal(cs_cursor_seek(c, NULL, 0, NULL, NULL), CS_OK);
  assert_int_equal(cs_cursor_del(c), CS_ERR_INTERNAL);
  cs_cursor_close(c);
  cs_store_read_end(txn);
  assert_rec(f->st, CS_TBL_CREDS, "c1", 2, "v1", 2);
  assert_absent(f->st, CS_TBL_CREDS, "c2");
}

/* -------------------------------------------------------------- rollback */

static enum cs_err two_then_fail_cb(struct cs_txn *txn, void *ctx)
{
  int *calls = ctx;
  enum cs_err e;

  ++*calls;
  e = cs_txn_put(txn, CS_TBL_CREDS, "c1", 2, "v1", 2, 0);
  if (e == CS_OK)
    e = cs_txn_put(txn, CS_TBL_EVENTS, "e1", 2, "v1", 2, 0);
  return e != CS_OK ? e : CS_ERR_IN_USE;
}

static void test_callback_error_rolls_back(void **state)
{
  struct fx *f = *state;
  int calls = 0;

  assert_int_equal(cs_store_write(f->st, two_then_fail_cb, &calls), CS_ERR_IN_USE);
  assert_int_equal(calls, 1);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 0);
  assert_int_equal(count(f->st, CS_TBL_EVENTS), 0);
}

static void test_batch_partial(void **state)
{
  struct fx *f = *state;
  struct kv a = {CS_TBL_CREDS, "a", 1, "va", 2, 0, 0, CS_OK};
  struct kv b = {CS_TBL_CREDS, "b", 1, "vb", 2, 0, 0, CS_ERR_PRECONDITION};
  struct kv c = {CS_TBL_USAGES, "c", 1, "vc", 2, 0, 0, CS_OK};
  struct cs_store_op ops[3] = {
      {put_cb, &a, CS_ERR_IO}, {put_cb, &b, CS_ERR_IO}, {put_cb, &c, CS_ERR_IO}};

  assert_int_equal(cs_store_write_batch(f->st, ops, 3), CS_OK);
  assert_int_equal(ops[0].result, CS_OK);
  assert_int_equal(ops[1].result, CS_ERR_PRECONDITION);
  assert_int_equal(ops[2].result, CS_OK);
  assert_rec(f->st, CS_TBL_CREDS, "a", 1, "va", 2);
  assert_absent(f->st, CS_TBL_CREDS, "b"); /* b's own put rolled back */
  assert_rec(f->st, CS_TBL_USAGES, "c", 1, "vc", 2);
  /* A duplicate fails alone; the op after it still commits. */
  a.flags = CS_PUT_NO_OVERWRITE;
  c.k = "d";
  ops[0] = (struct cs_store_op){put_cb, &a, CS_OK};
  ops[1] = (struct cs_store_op){put_cb, &c, CS_OK};
  assert_int_equal(cs_store_write_batch(f->st, ops, 2), CS_OK);
  assert_int_equal(ops[0].result, CS_ERR_EXISTS);
  assert_int_equal(ops[1].result, CS_OK);
  assert_rec(f->st, CS_TBL_USAGES, "d", 1, "vc", 2);
  assert_int_equal(cs_store_write_batch(f->st, NULL, 0), CS_OK);
}

static void test_batch_all_fail(void **state)
{
  struct fx *f = *state;
  struct kv a = {CS_TBL_CREDS, "a", 1, "va", 2, 0, 0, CS_ERR_INVALID};
  struct kv b = {CS_TBL_CREDS, "", 0, "vb", 2, 0, 0, CS_OK};
  struct cs_store_op ops[2] = {{put_cb, &a, CS_OK}, {put_cb, &b, CS_OK}};

  assert_int_equal(cs_store_write_batch(f->st, ops, 2), CS_OK);
  assert_int_equal(ops[0].result, CS_ERR_INVALID);
  assert_int_equal(ops[1].result, CS_ERR_INVALID);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 0);
}

/* ------------------------------------------------------------ durability */

static void test_reopen_keeps_data(void **state)
{
  struct fx *f = *state;
  const uint8_t bin_key[] = {0x00, 0xff, 0x00, 0x01}, bin_val[] = {0x00, 0x00, 0x7f, 0x80, 0xff};
  uint8_t *big = malloc(100000);
  struct kv kv = {CS_TBL_USAGES, bin_key, sizeof bin_key, bin_val, sizeof bin_val, 0, 0, CS_OK};

  assert_non_null(big);
  for (size_t i = 0; i < 100000; i++)
    big[i] = (uint8_t)(i * 7 + 3);
  assert_int_equal(cs_store_write(f->st, put_cb, &kv), CS_OK);
  assert_int_equal(put(f->st, CS_TBL_CREDS, "big", big, 100000), CS_OK);
  assert_int_equal(put(f->st, CS_TBL_USAGES_BY_CRED, "cred\0use", NULL, 0), CS_OK);
  cs_store_close(f->st);
  f->st = NULL;
  assert_int_equal(fx_open(f, 0, &f->st), CS_OK);
  assert_rec(f->st, CS_TBL_USAGES, bin_key, sizeof bin_key, bin_val, sizeof bin_val);
  assert_rec(f->st, CS_TBL_CREDS, "big", 3, big, 100000);
  assert_rec(f->st, CS_TBL_USAGES_BY_CRED, "cred", 4, "", 0);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 1);
  free(big);
}

/* ------------------------------------------------------------ map growth */

struct big_put {
  char key[16];
  uint8_t *val;
  size_t len;
  int calls;
};

static enum cs_err big_put_cb(struct cs_txn *txn, void *ctx)
{
  struct big_put *bp = ctx;

  bp->calls++;
  return cs_txn_put(txn, CS_TBL_CREDS, bp->key, strlen(bp->key), bp->val, bp->len, 0);
}

static void test_map_growth(void **state)
{
  struct fx *f = *state;
  struct big_put bp = {.len = MIB};
  struct cs_store_stat s;
  int i;

  bp.val = malloc(MIB);
  assert_non_null(bp.val);
  for (i = 0; i < 100; i++) {
    snprintf(bp.key, sizeof bp.key, "big-%03d", i);
    memset(bp.val, i, MIB);
    assert_int_equal(cs_store_write(f->st, big_put_cb, &bp), CS_OK);
  }
  assert_true(bp.calls > 100); /* at least one callback ran again after growing */
  s = stat_of(f->st);
  assert_true(s.map_size > INITIAL_MAP);
  assert_true(s.used_bytes >= 100 * MIB && s.used_bytes <= s.map_size);
  assert_int_equal(s.records[CS_TBL_CREDS], 100);
  for (i = 0; i < 100; i++) {
    snprintf(bp.key, sizeof bp.key, "big-%03d", i);
    memset(bp.val, i, MIB);
    assert_rec(f->st, CS_TBL_CREDS, bp.key, strlen(bp.key), bp.val, MIB);
  }
  /* The grown size is recorded: a reopen does not shrink back to 64 MiB. */
  cs_store_close(f->st);
  assert_int_equal(cs_store_open(f->dir, 0, &f->st), CS_OK);
  assert_true(stat_of(f->st).map_size >= s.map_size);
  free(bp.val);
}

static void test_batch_grows(void **state)
{
  struct fx *f = *state;
  struct big_put bp[3] = {
      {"b0", NULL, 30 * MIB, 0}, {"b1", NULL, 30 * MIB, 0}, {"b2", NULL, 30 * MIB, 0}};
  struct cs_store_op ops[3];

  for (int i = 0; i < 3; i++) {
    bp[i].val = malloc(bp[i].len);
    assert_non_null(bp[i].val);
    memset(bp[i].val, 'A' + i, bp[i].len);
    ops[i] = (struct cs_store_op){big_put_cb, &bp[i], CS_ERR_IO};
  }
  assert_int_equal(cs_store_write_batch(f->st, ops, 3), CS_OK);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ops[i].result, CS_OK);
    assert_true(bp[i].calls >= 1);
    assert_rec(f->st, CS_TBL_CREDS, bp[i].key, 2, bp[i].val, bp[i].len);
    free(bp[i].val);
  }
  assert_true(bp[0].calls >= 2); /* the whole batch was rerun */
  assert_true(stat_of(f->st).map_size > INITIAL_MAP);
}

static enum cs_err fill_cb(struct cs_txn *txn, void *ctx)
{
  struct big_put *bp = ctx;
  enum cs_err e = CS_OK;

  bp->calls++;
  for (int i = 0; i < 70 && e == CS_OK; i++) {
    snprintf(bp->key, sizeof bp->key, "fill-%02d", i);
    e = cs_txn_put(txn, CS_TBL_CREDS, bp->key, strlen(bp->key), bp->val, bp->len, 0);
  }
  return e;
}

/* Growing must wait for snapshots; one held across the write makes it give
 * up (bounded) with STORE_FULL instead of deadlocking. */
static void test_grow_blocked_by_snapshot(void **state)
{
  struct fx *f = *state;
  struct big_put bp = {.len = MIB};
  struct cs_txn *held;
  struct timespec t0, t1;

  bp.val = calloc(1, MIB);
  assert_non_null(bp.val);
  assert_int_equal(cs_store_read_begin(f->st, &held), CS_OK);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(cs_store_write(f->st, fill_cb, &bp), CS_ERR_STORE_FULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(t1.tv_sec - t0.tv_sec >= 1);
  assert_int_equal(stat_of(f->st).map_size, INITIAL_MAP); /* the held snapshot still reads */
  cs_store_read_end(held);
  assert_int_equal(cs_store_write(f->st, fill_cb, &bp), CS_OK);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 70);
  free(bp.val);
}

/* ---------------------------------------------------------------- cursors */

static void assert_kv(enum cs_err e, const struct cs_val *k, const struct cs_val *v,
                      const char *key)
{
  assert_int_equal(e, CS_OK);
  assert_int_equal(k->len, strlen(key));
  assert_memory_equal(k->data, key, k->len);
  assert_int_equal(v->len, 2);
  assert_memory_equal(v->data, "v", 1);
  assert_int_equal(((const char *)v->data)[1], key[0]);
}

static enum cs_err cursor_del_cb(struct cs_txn *txn, void *ctx)
{
  struct cs_cursor *c;
  struct cs_val k, v;
  enum cs_err e;

  (void)ctx;
  e = cs_cursor_open(txn, CS_TBL_CREDS, &c);
  if (e != CS_OK)
    return e;
  e = cs_cursor_seek(c, "c", 1, &k, &v);
  if (e == CS_OK)
    e = cs_cursor_del(c);
  /* After a delete, next moves to the record that followed. */
  if (e == CS_OK)
    e = cs_cursor_next(c, &k, &v);
  if (e == CS_OK && (k.len != 1 || memcmp(k.data, "e", 1) != 0))
    e = CS_ERR_INTERNAL;
  cs_cursor_close(c);
  return e;
}

static void test_cursor(void **state)
{
  struct fx *f = *state;
  const char *keys[] = {"e", "a", "g", "c"};
  struct cs_txn *txn;
  struct cs_cursor *c;
  struct cs_val k, v;

  for (int i = 0; i < 4; i++) {
    char val[3] = {'v', keys[i][0], 0};
    assert_int_equal(put_s(f->st, CS_TBL_CREDS, keys[i], val), CS_OK);
  }
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_cursor_open(txn, CS_TBL_CREDS, &c), CS_OK);
  assert_kv(cs_cursor_seek(c, NULL, 0, &k, &v), &k, &v, "a");
  assert_kv(cs_cursor_next(c, &k, &v), &k, &v, "c");
  assert_kv(cs_cursor_next(c, &k, &v), &k, &v, "e");
  assert_kv(cs_cursor_prev(c, &k, &v), &k, &v, "c");
  assert_kv(cs_cursor_seek(c, "d", 1, &k, &v), &k, &v, "e");
  assert_kv(cs_cursor_seek(c, "c", 1, &k, &v), &k, &v, "c");
  assert_kv(cs_cursor_seek(c, "", 0, &k, &v), &k, &v, "a");
  assert_int_equal(cs_cursor_prev(c, &k, &v), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_cursor_seek(c, "h", 1, &k, &v), CS_ERR_NOT_FOUND);
  assert_kv(cs_cursor_last(c, &k, &v), &k, &v, "g");
  assert_int_equal(cs_cursor_next(c, &k, &v), CS_ERR_NOT_FOUND);
  cs_cursor_close(c);
  cs_cursor_close(NULL);
  cs_store_read_end(txn);
  cs_store_read_end(NULL);

  assert_int_equal(cs_store_write(f->st, cursor_del_cb, NULL), CS_OK);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 3);
  assert_absent(f->st, CS_TBL_CREDS, "c");
}

static void test_cursor_empty(void **state)
{
  struct fx *f = *state;
  struct cs_txn *txn;
  struct cs_cursor *c;
  struct cs_val k = {"x", 1};

  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_cursor_open(txn, CS_TBL_OUTBOX, &c), CS_OK);
  assert_int_equal(cs_cursor_seek(c, NULL, 0, &k, NULL), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_cursor_last(c, &k, NULL), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_cursor_next(c, &k, NULL), CS_ERR_NOT_FOUND);
  assert_memory_equal(k.data, "x", 1);
  cs_cursor_close(c);
  cs_store_read_end(txn);
}

/* ------------------------------------------------------------- sequences */

static enum cs_err append_cb(struct cs_txn *txn, void *ctx)
{
  enum cs_table t = *(enum cs_table *)ctx;
  uint8_t key[8];
  uint64_t last;
  enum cs_err e = cs_txn_last_seq(txn, t, &last);

  if (e != CS_OK)
    return e;
  cs_store_seq_key(last + 1, key);
  return cs_txn_put(txn, t, key, sizeof key, "entry", 5, CS_PUT_NO_OVERWRITE);
}

static uint64_t last_seq(struct cs_store *st, enum cs_table t, enum cs_err *e)
{
  struct cs_txn *txn;
  uint64_t n = UINT64_MAX;

  assert_int_equal(cs_store_read_begin(st, &txn), CS_OK);
  *e = cs_txn_last_seq(txn, t, &n);
  cs_store_read_end(txn);
  return n;
}

static void test_last_seq(void **state)
{
  struct fx *f = *state;
  enum cs_table t = CS_TBL_AUDIT;
  const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint8_t key[8];
  enum cs_err e;

  cs_store_seq_key(0x0102030405060708u, key);
  assert_memory_equal(key, want, 8);
  assert_int_equal(cs_store_seq_from_key(key, 8), 0x0102030405060708u);
  assert_int_equal(cs_store_seq_from_key(key, 7), 0);
  assert_int_equal(last_seq(f->st, t, &e), 0);
  assert_int_equal(e, CS_OK);
  for (int i = 0; i < 300; i++) /* past 255: the key order must be numeric */
    assert_int_equal(cs_store_write(f->st, append_cb, &t), CS_OK);
  assert_int_equal(last_seq(f->st, t, &e), 300);
  assert_int_equal(e, CS_OK);
  assert_int_equal(count(f->st, t), 300);
  /* A table whose last key is not a sequence number is damaged, not empty. */
  assert_int_equal(put_s(f->st, CS_TBL_EVENTS, "zzz", "x"), CS_OK);
  last_seq(f->st, CS_TBL_EVENTS, &e);
  assert_int_equal(e, CS_ERR_STORE);
}

static void test_count_and_stat(void **state)
{
  struct fx *f = *state;
  struct cs_store_stat s;

  for (int i = 0; i < 3; i++) {
    char k[8];
    snprintf(k, sizeof k, "c%d", i);
    assert_int_equal(put_s(f->st, CS_TBL_CREDS, k, "v"), CS_OK);
  }
  assert_int_equal(put_s(f->st, CS_TBL_USAGES, "u1", "v"), CS_OK);
  assert_int_equal(put_s(f->st, CS_TBL_USAGES, "u2", "v"), CS_OK);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 3);
  assert_int_equal(count(f->st, CS_TBL_USAGES), 2);
  assert_int_equal(count(f->st, CS_TBL_KEYS), 0);
  s = stat_of(f->st);
  assert_int_equal(s.map_size, INITIAL_MAP);
  assert_true(s.used_bytes > 0 && s.used_bytes < s.map_size);
  assert_int_equal(s.records[CS_TBL_META], 1); /* the schema record */
  assert_int_equal(s.records[CS_TBL_CREDS], 3);
  assert_int_equal(s.records[CS_TBL_USAGES], 2);
  assert_int_equal(s.records[CS_TBL_OUTBOX], 0);
}

/* -------------------------------------------------------- backup/restore */

static void test_backup_restore(void **state)
{
  struct fx *f = *state;
  char bak[128], fresh[64], data[128];
  struct cs_store *st;
  struct stat sb;

  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c1", "secret-sealed-bytes"), CS_OK);
  assert_int_equal(put_s(f->st, CS_TBL_KEYS, "k1", "hash"), CS_OK);
  assert_int_equal(cs_store_write(f->st, del_cb, "c1"), CS_OK);
  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c2", "v2"), CS_OK);
  path_in(bak, sizeof bak, f->dir, "backup.mdb");
  assert_int_equal(cs_store_backup(f->st, bak), CS_OK);
  assert_int_equal(stat(bak, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_true(sb.st_size > 0);
  assert_int_equal(cs_store_backup(f->st, bak), CS_ERR_EXISTS);
  path_in(data, sizeof data, f->dir, "no-such-dir/backup.mdb");
  assert_int_equal(cs_store_backup(f->st, data), CS_ERR_IO);
  assert_int_equal(stat(bak, &sb), 0); /* the refused backup left it alone */

  make_dir(fresh);
  path_in(data, sizeof data, fresh, "data.mdb");
  copy_file(bak, data);
  assert_int_equal(cs_store_open(fresh, 0, &st), CS_OK);
  assert_rec(st, CS_TBL_CREDS, "c2", 2, "v2", 2);
  assert_rec(st, CS_TBL_KEYS, "k1", 2, "hash", 4);
  assert_absent(st, CS_TBL_CREDS, "c1");
  assert_int_equal(stat_of(st).records[CS_TBL_CREDS], 1);
  assert_int_equal(put_s(st, CS_TBL_CREDS, "c3", "after restore"), CS_OK);
  cs_store_close(st);
  rm_tree(fresh);
}

static void test_readonly(void **state)
{
  struct fx *f = *state;
  struct kv kv = {CS_TBL_CREDS, "c2", 2, "v2", 2, 0, 0, CS_OK};
  struct cs_store_op ops[2] = {{put_cb, &kv, CS_OK}, {put_cb, &kv, CS_OK}};
  struct cs_store *ro;
  struct cs_txn *txn;

  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c1", "v1"), CS_OK);
  cs_store_close(f->st);
  f->st = NULL;
  assert_int_equal(fx_open(f, CS_STORE_READONLY, &ro), CS_OK);
  assert_rec(ro, CS_TBL_CREDS, "c1", 2, "v1", 2);
  assert_int_equal(cs_store_write(ro, put_cb, &kv), CS_ERR_STORE);
  assert_int_equal(cs_store_write_batch(ro, ops, 2), CS_ERR_STORE);
  assert_int_equal(ops[0].result, CS_ERR_STORE);
  assert_int_equal(ops[1].result, CS_ERR_STORE);
  assert_int_equal(kv.calls, 0);
  assert_int_equal(cs_store_read_begin(ro, &txn), CS_OK);
  assert_int_equal(cs_txn_put(txn, CS_TBL_CREDS, "c2", 2, "v2", 2, 0), CS_ERR_INTERNAL);
  cs_store_read_end(txn);
  assert_int_equal(stat_of(ro).records[CS_TBL_CREDS], 1);
  cs_store_close(ro);
  /* Nothing was written behind the refusals. */
  assert_int_equal(fx_open(f, 0, &f->st), CS_OK);
  assert_absent(f->st, CS_TBL_CREDS, "c2");
}

/* More simultaneous snapshots than the txn pool holds. */
static void test_read_pool_overflow(void **state)
{
  struct fx *f = *state;
  struct cs_txn *txns[100];
  struct cs_val v;

  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c1", "v1"), CS_OK);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 100; i++)
      assert_int_equal(cs_store_read_begin(f->st, &txns[i]), CS_OK);
    for (int i = 0; i < 100; i++) {
      assert_int_equal(cs_txn_get(txns[i], CS_TBL_CREDS, "c1", 2, &v), CS_OK);
      assert_memory_equal(v.data, "v1", 2);
    }
    for (int i = 99; i >= 0; i--)
      cs_store_read_end(txns[i]);
  }
  /* Snapshots are isolated: one begun before a write does not see it. */
  assert_int_equal(cs_store_read_begin(f->st, &txns[0]), CS_OK);
  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "c2", "v2"), CS_OK);
  assert_int_equal(cs_txn_get(txns[0], CS_TBL_CREDS, "c2", 2, &v), CS_ERR_NOT_FOUND);
  cs_store_read_end(txns[0]);
  assert_rec(f->st, CS_TBL_CREDS, "c2", 2, "v2", 2);
}

/* ----------------------------------------------------------- concurrency */

#define CC_READERS 4
#define CC_BATCH 4
/* LMDB: enough 40 KiB records to outgrow the 64 MiB map under the readers.
 * etcd: each batch is a Raft commit on three members; fewer, smaller. */
static uint64_t cc_ops = 2000;
static size_t cc_val = 40 * 1024;

struct cc {
  struct cs_store *st;
  atomic_bool done;
  atomic_int errors;
  atomic_int reads;
};

struct cc_op {
  uint64_t seq;
  uint8_t *buf;
};

static void cc_fill(uint64_t seq, uint8_t *buf)
{
  memset(buf, (int)(seq & 0xff), cc_val);
  cs_store_seq_key(seq, buf);
}

static enum cs_err cc_put_cb(struct cs_txn *txn, void *ctx)
{
  struct cc_op *op = ctx;
  uint8_t key[8];

  cs_store_seq_key(op->seq, key);
  cc_fill(op->seq, op->buf);
  return cs_txn_put(txn, CS_TBL_OUTBOX, key, 8, op->buf, cc_val, CS_PUT_NO_OVERWRITE);
}

static void *cc_writer(void *arg)
{
  struct cc *cc = arg;
  struct cc_op ops[CC_BATCH];
  struct cs_store_op batch[CC_BATCH];

  for (int i = 0; i < CC_BATCH; i++) {
    ops[i].buf = malloc(cc_val);
    if (!ops[i].buf)
      atomic_fetch_add(&cc->errors, 1);
  }
  for (uint64_t seq = 1; seq <= cc_ops && atomic_load(&cc->errors) == 0; seq += CC_BATCH) {
    for (int i = 0; i < CC_BATCH; i++) {
      ops[i].seq = seq + (uint64_t)i;
      batch[i] = (struct cs_store_op){cc_put_cb, &ops[i], CS_ERR_IO};
    }
    if (cs_store_write_batch(cc->st, batch, CC_BATCH) != CS_OK)
      atomic_fetch_add(&cc->errors, 1);
    for (int i = 0; i < CC_BATCH; i++)
      if (batch[i].result != CS_OK)
        atomic_fetch_add(&cc->errors, 1);
  }
  for (int i = 0; i < CC_BATCH; i++)
    free(ops[i].buf);
  atomic_store(&cc->done, true);
  return NULL;
}

/* One snapshot: the newest record must be whole, and never go backwards. */
static bool cc_read_once(struct cc *cc, uint8_t *want, uint64_t *seen)
{
  struct cs_txn *txn;
  struct cs_val v;
  uint8_t key[8];
  uint64_t last;
  bool ok;

  if (cs_store_read_begin(cc->st, &txn) != CS_OK)
    return false;
  ok = cs_txn_last_seq(txn, CS_TBL_OUTBOX, &last) == CS_OK && last >= *seen;
  if (ok && last > 0) {
    cs_store_seq_key(last, key);
    cc_fill(last, want);
    ok = cs_txn_get(txn, CS_TBL_OUTBOX, key, 8, &v) == CS_OK && v.len == cc_val &&
         memcmp(v.data, want, cc_val) == 0;
  }
  cs_store_read_end(txn);
  *seen = last;
  return ok;
}

static void *cc_reader(void *arg)
{
  struct cc *cc = arg;
  uint8_t *want = malloc(cc_val);
  uint64_t seen = 0;

  if (!want) {
    atomic_fetch_add(&cc->errors, 1);
    return NULL;
  }
  for (uint64_t n = 0; n < cc_ops || !atomic_load(&cc->done); n++) {
    if (!cc_read_once(cc, want, &seen))
      atomic_fetch_add(&cc->errors, 1);
    atomic_fetch_add(&cc->reads, 1);
  }
  free(want);
  return NULL;
}

static void test_concurrency(void **state)
{
  struct fx *f = *state;
  struct cc cc = {.st = f->st};
  pthread_t readers[CC_READERS], writer;
  enum cs_err e;

  assert_int_equal(pthread_create(&writer, NULL, cc_writer, &cc), 0);
  for (int i = 0; i < CC_READERS; i++)
    assert_int_equal(pthread_create(&readers[i], NULL, cc_reader, &cc), 0);
  assert_int_equal(pthread_join(writer, NULL), 0);
  for (int i = 0; i < CC_READERS; i++)
    assert_int_equal(pthread_join(readers[i], NULL), 0);
  assert_int_equal(atomic_load(&cc.errors), 0);
  assert_true((uint64_t)atomic_load(&cc.reads) >= CC_READERS * cc_ops);
  assert_int_equal(last_seq(f->st, CS_TBL_OUTBOX, &e), cc_ops);
  assert_int_equal(e, CS_OK);
  /* 2000 x 40 KiB does not fit 64 MiB: the readers ran across a resize. */
  if (!store_etcd)
    assert_true(stat_of(f->st).map_size > INITIAL_MAP);
}

static const char *self_path; /* argv[0], to re-execute */

/* Run as a separate process (the test binary re-executed): grow the map of
 * the store in @p dir past what the parent mapped. A fresh exec, because an
 * LMDB env must not be used, nor even closed, in a forked child. */
static int grow_child(const char *dir)
{
  static uint8_t mib[MIB];
  struct cs_store *st;
  char k[16];
  bool ok;

  cs_log_min_level = CS_LOG_OFF;
  ok = cs_store_open(dir, 0, &st) == CS_OK;
  for (int i = 0; ok && i < 80; i++) {
    snprintf(k, sizeof k, "child-%02d", i);
    ok = put(st, CS_TBL_CREDS, k, mib, sizeof mib) == CS_OK;
  }
  if (ok)
    cs_store_close(st);
  return ok ? 0 : 1;
}

/* Another process grows the map (MDB_MAP_RESIZED here): adopt and go on. */
static void test_other_process_grows_map(void **state)
{
  struct fx *f = *state;
  struct cs_txn *txn;
  struct cs_val v;
  int status;
  pid_t pid;

  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "parent", "p"), CS_OK);
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK); /* a pooled txn to renew */
  cs_store_read_end(txn);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execl(self_path, self_path, "--grow-child", f->dir, (char *)NULL);
    _exit(127);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_txn_get(txn, CS_TBL_CREDS, "child-79", 8, &v), CS_OK);
  assert_int_equal(v.len, MIB);
  cs_store_read_end(txn);
  assert_true(stat_of(f->st).map_size > INITIAL_MAP);
  assert_int_equal(put_s(f->st, CS_TBL_CREDS, "parent2", "p"), CS_OK);
  assert_int_equal(count(f->st, CS_TBL_CREDS), 82);
}

/* ------------------------------------------------------------- store URLs */

static void test_store_urls(void **state)
{
  static const char *const bad[] = {
      "",
      "etcd://",
      "etcds://",
      "etcd:///p",
      "etcd://h:0",
      "etcd://h:70000",
      "etcd://h:12x",
      "etcd://a,,b",
      "etcd://a,",
      "etcd://,a",
      "ftp://x/y",
      "etcd://h:1/bad prefix",
      "etcd://h:1/a//b",
      "etcd://h o:1",
      "etcd://h:1/p%2f",
      "lmdb:",
      "http://127.0.0.1:2379",
  };
  struct fx *f = *state;
  struct cs_store_opts half_auth = {.etcd_user = "root"}, half_tls = {.etcd_cert = "c.pem"};
  struct cs_store *st = NULL;
  char url[128];
  bool exists = true;
  int64_t t0;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(cs_store_open_url(bad[i], &store_opts, CS_STORE_CREATE, &st), CS_ERR_INVALID);
    assert_int_equal(cs_store_probe(bad[i], &store_opts, &exists), CS_ERR_INVALID);
    assert_false(cs_store_exists(bad[i]));
  }
  assert_null(st);
  assert_true(exists); /* untouched on error */
  assert_int_equal(cs_store_open_url("etcd://127.0.0.1:1", &half_auth, 0, &st), CS_ERR_INVALID);
  assert_int_equal(cs_store_open_url("etcd://127.0.0.1:1", &half_tls, 0, &st), CS_ERR_INVALID);
  /* Nothing listens: refused on every endpoint, quickly. */
  t0 = (int64_t)time(NULL);
  assert_int_equal(cs_store_open_url("etcd://127.0.0.1:1,[::1]:1/p", &store_opts, 0, &st),
                   CS_ERR_STORE_UNAVAILABLE);
  assert_int_equal(cs_store_probe("etcd://127.0.0.1:1", &store_opts, &exists),
                   CS_ERR_STORE_UNAVAILABLE);
  assert_false(cs_store_exists("etcd://127.0.0.1:1"));
  assert_true((int64_t)time(NULL) - t0 <= 3);
  assert_null(st);
  /* lmdb:DIR is DIR. */
  assert_true(snprintf(url, sizeof url, "lmdb:%s/x", f->dir) < (int)sizeof url);
  assert_int_equal(cs_store_open_url(url, &store_opts, CS_STORE_CREATE, &st), CS_OK);
  assert_int_equal(put_s(st, CS_TBL_CREDS, "c1", "v1"), CS_OK);
  cs_store_close(st);
  assert_true(cs_store_exists(url));
  assert_true(cs_store_exists(url + 5));
  assert_int_equal(cs_store_open(url + 5, 0, &st), CS_OK);
  assert_rec(st, CS_TBL_CREDS, "c1", 2, "v1", 2);
  cs_store_close(st);
}

static int changes_seen;

static void count_change(void *arg, enum cs_table t, const void *key, size_t klen)
{
  (void)arg;
  (void)t;
  (void)key;
  (void)klen;
  changes_seen++;
}

static enum cs_err lease_put_cb(struct cs_txn *txn, void *ctx)
{
  return cs_txn_put_lease(txn, CS_TBL_OUTBOX, "claim", 5, "me", 2, 0, *(int64_t *)ctx);
}

/* LMDB's cluster hooks are trivial, as documented: always healthy, no
 * change callbacks, leases that never expire and delete nothing. */
/* ------------------------------------------- writer: per-batch flush */

#define WF_THREADS 8
#define WF_OPS 40 /* per thread */

struct wf {
  struct cs_writer *w;
  struct cs_store *st;
  struct wf_op *queue[WF_THREADS * WF_OPS]; /* writer thread only */
  size_t queued;
  int flushes, drops, deferred, direct; /* writer thread only */
  atomic_bool slept;
  atomic_int errors;
};

struct wf_op {
  struct wf *wf;
  char key[24];
};

static enum cs_err wf_put(struct cs_txn *txn, const struct wf_op *op)
{
  return cs_txn_put(txn, CS_TBL_CREDS, op->key, strlen(op->key), "v", 1, 0);
}

/* Defers its put to the flush when the writer says one will run. */
static enum cs_err wf_op_cb(struct cs_txn *txn, void *ctx)
{
  struct wf_op *op = ctx;
  struct wf *wf = op->wf;

  /* The first change holds the writer, so the others queue into one batch. */
  if (!atomic_exchange(&wf->slept, true))
    usleep(200 * 1000);
  if (!cs_writer_flushing(wf->w)) {
    wf->direct++;
    return wf_put(txn, op);
  }
  wf->queue[wf->queued++] = op;
  wf->deferred++;
  return CS_OK;
}

static enum cs_err wf_flush(struct cs_txn *txn, void *arg)
{
  struct wf *wf = arg;
  enum cs_err e = CS_OK;
  bool any = wf->queued > 0;

  for (size_t i = 0; i < wf->queued && !e; i++)
    e = wf_put(txn, wf->queue[i]);
  wf->queued = 0;
  wf->flushes++;
  return e ? e : any ? CS_OK : CS_ERR_NOT_FOUND;
}

static void wf_drop(void *arg)
{
  struct wf *wf = arg;
  wf->queued = 0;
  wf->drops++;
}

static void *wf_submitter(void *arg)
{
  struct wf_op *ops = arg;
  struct wf *wf = ops[0].wf;

  for (int i = 0; i < WF_OPS; i++) {
    struct cs_txn *txn;
    struct cs_val v;
    if (cs_writer_submit(wf->w, wf_op_cb, &ops[i]) != CS_OK)
      atomic_fetch_add(&wf->errors, 1);
    /* Durable with its batch: readable as soon as the submit returns. */
    if (cs_store_read_begin(wf->st, &txn) != CS_OK) {
      atomic_fetch_add(&wf->errors, 1);
      continue;
    }
    if (cs_txn_get(txn, CS_TBL_CREDS, ops[i].key, strlen(ops[i].key), &v) != CS_OK)
      atomic_fetch_add(&wf->errors, 1);
    cs_store_read_end(txn);
  }
  return NULL;
}

static void test_writer_flush(void **state)
{
  struct fx *f = *state;
  static struct wf wf;
  static struct wf_op ops[WF_THREADS][WF_OPS];
  pthread_t th[WF_THREADS];

  memset(&wf, 0, sizeof wf);
  wf.st = f->st;
  assert_int_equal(cs_writer_start(f->st, NULL, NULL, &wf.w), CS_OK);
  cs_writer_set_flush(wf.w, wf_flush, wf_drop, &wf);
  assert_false(cs_writer_flushing(wf.w)); /* not the writer thread */
  assert_false(cs_writer_flushing(NULL));
  for (int t = 0; t < WF_THREADS; t++)
    for (int i = 0; i < WF_OPS; i++) {
      ops[t][i].wf = &wf;
      snprintf(ops[t][i].key, sizeof ops[t][i].key, "wf-%d-%d", t, i);
    }
  for (int t = 0; t < WF_THREADS; t++)
    assert_int_equal(pthread_create(&th[t], NULL, wf_submitter, ops[t]), 0);
  for (int t = 0; t < WF_THREADS; t++)
    assert_int_equal(pthread_join(th[t], NULL), 0);
  cs_writer_stop(wf.w);
  assert_int_equal(atomic_load(&wf.errors), 0);
  /* Every change ran (once on LMDB; etcd may rerun one), directly or through
   * a flush; the changes queued behind the sleeping first one made at least
   * one batch with a flush. */
  if (store_etcd)
    assert_true(wf.direct + wf.deferred >= WF_THREADS * WF_OPS);
  else
    assert_int_equal(wf.direct + wf.deferred, WF_THREADS * WF_OPS);
  assert_true(wf.deferred >= 2);
  assert_true(wf.flushes >= 1);
  assert_true(wf.drops >= wf.flushes); /* after every batch */
  for (int t = 0; t < WF_THREADS; t++)
    for (int i = 0; i < WF_OPS; i++)
      assert_rec(f->st, CS_TBL_CREDS, ops[t][i].key, strlen(ops[t][i].key), "v", 1);
}

/* cs_writer_submit_async: more changes than one batch holds, queued behind
 * a change that holds the writer; each completes once, in order, with its
 * own result, in as few batches as BATCH_MAX (256) allows. */
#define WA_OPS 300

struct wa {
  atomic_bool gate_open, holding;
  atomic_int calls[WA_OPS + 2], order[WA_OPS + 2], next, commits;
  enum cs_err result[WA_OPS + 2];
  char key[WA_OPS + 2][16];
};

struct wa_op {
  struct wa *wa;
  int i;
};

/* Op 0 holds the writer until the gate opens; every 7th op fails. */
static enum cs_err wa_fn(struct cs_txn *txn, void *ctx)
{
  struct wa_op *op = ctx;
  struct wa *wa = op->wa;

  if (op->i == 0) {
    atomic_store(&wa->holding, true);
    while (!atomic_load(&wa->gate_open))
      usleep(1000);
  }
  if (op->i % 7 == 3)
    return CS_ERR_INVALID;
  return cs_txn_put(txn, CS_TBL_CREDS, wa->key[op->i], strlen(wa->key[op->i]), "v", 1, 0);
}

static void wa_done(void *arg, enum cs_err result)
{
  struct wa_op *op = arg;
  struct wa *wa = op->wa;

  atomic_fetch_add(&wa->calls[op->i], 1);
  wa->result[op->i] = result;
  atomic_store(&wa->order[op->i], atomic_fetch_add(&wa->next, 1));
}

static void wa_committed(void *arg) { atomic_fetch_add(&((struct wa *)arg)->commits, 1); }

static void wa_wait(atomic_bool *flag)
{
  for (int i = 0; i < bound_ms(10000) && !atomic_load(flag); i++)
    usleep(1000);
  assert_true(atomic_load(flag));
}

static void test_writer_async(void **state)
{
  struct fx *f = *state;
  static struct wa wa;
  static struct wa_op ops[WA_OPS + 1];
  struct cs_writer *w;

  memset(&wa, 0, sizeof wa);
  assert_int_equal(cs_writer_start(f->st, wa_committed, &wa, &w), CS_OK);
  for (int i = 0; i <= WA_OPS; i++) {
    ops[i] = (struct wa_op){&wa, i};
    snprintf(wa.key[i], sizeof wa.key[i], "wa-%d", i);
  }
  assert_int_equal(cs_writer_submit_async(w, wa_fn, &ops[0], wa_done, &ops[0]), CS_OK);
  wa_wait(&wa.holding);
  for (int i = 1; i <= WA_OPS; i++)
    assert_int_equal(cs_writer_submit_async(w, wa_fn, &ops[i], wa_done, &ops[i]), CS_OK);
  assert_int_equal(atomic_load(&wa.next), 0); /* nothing completed while held */
  atomic_store(&wa.gate_open, true);
  /* A blocking submit queues behind them all and returns once durable. */
  struct wa_op last = {&wa, WA_OPS + 1};
  snprintf(wa.key[WA_OPS + 1], sizeof wa.key[0], "wa-last");
  assert_int_equal(cs_writer_submit(w, wa_fn, &last), CS_OK);
  assert_int_equal(atomic_load(&wa.next), WA_OPS + 1);
  assert_rec(f->st, CS_TBL_CREDS, "wa-last", 7, "v", 1);
  cs_writer_stop(w);
  for (int i = 0; i <= WA_OPS; i++) {
    assert_int_equal(atomic_load(&wa.calls[i]), 1);
    assert_int_equal(atomic_load(&wa.order[i]), i); /* completed in submission order */
    assert_int_equal(wa.result[i], i % 7 == 3 ? CS_ERR_INVALID : CS_OK);
    if (i % 7 == 3)
      assert_absent(f->st, CS_TBL_CREDS, wa.key[i]);
    else
      assert_rec(f->st, CS_TBL_CREDS, wa.key[i], strlen(wa.key[i]), "v", 1);
  }
  /* Op 0 alone, then 256, then the other 44 (the blocking one with them or
   * after): queued requests share a commit whatever submitted them. */
  assert_in_range(atomic_load(&wa.commits), 3, 4);
}

/* Stopping with changes queued: the running batch commits, the queued ones
 * complete with CS_ERR_UNAVAILABLE without running, and a submit once
 * stopping is refused (its done never called). */
struct ws_stop {
  struct cs_writer *w;
};

static void *ws_stopper(void *arg)
{
  cs_writer_stop(((struct ws_stop *)arg)->w);
  return NULL;
}

static void test_writer_stop_queued(void **state)
{
  struct fx *f = *state;
  static struct wa wa;
  static struct wa_op ops[WA_OPS + 1];
  struct ws_stop stop;
  pthread_t th;
  int n = 1;

  memset(&wa, 0, sizeof wa);
  assert_int_equal(cs_writer_start(f->st, NULL, NULL, &stop.w), CS_OK);
  for (int i = 0; i <= WA_OPS; i++) {
    ops[i] = (struct wa_op){&wa, i};
    snprintf(wa.key[i], sizeof wa.key[i], "ws-%d", i);
  }
  assert_int_equal(cs_writer_submit_async(stop.w, wa_fn, &ops[0], wa_done, &ops[0]), CS_OK);
  wa_wait(&wa.holding);
  for (; n <= 10; n++)
    assert_int_equal(cs_writer_submit_async(stop.w, wa_fn, &ops[n], wa_done, &ops[n]), CS_OK);
  assert_int_equal(pthread_create(&th, NULL, ws_stopper, &stop), 0);
  /* Queued until the stop is seen: these complete unavailable too. */
  enum cs_err e = CS_OK;
  for (; n < WA_OPS && e == CS_OK; n++)
    if ((e = cs_writer_submit_async(stop.w, wa_fn, &ops[n], wa_done, &ops[n])) == CS_OK)
      usleep(1000);
  assert_int_equal(e, CS_ERR_UNAVAILABLE);
  n--; /* ops[n] was refused */
  atomic_store(&wa.gate_open, true);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(atomic_load(&wa.calls[0]), 1);
  assert_int_equal(wa.result[0], CS_OK);
  assert_rec(f->st, CS_TBL_CREDS, "ws-0", 4, "v", 1);
  for (int i = 1; i < n; i++) {
    assert_int_equal(atomic_load(&wa.calls[i]), 1);
    assert_int_equal(wa.result[i], CS_ERR_UNAVAILABLE);
    assert_int_equal(atomic_load(&wa.order[i]), i);
    assert_absent(f->st, CS_TBL_CREDS, wa.key[i]); /* never ran */
  }
  assert_int_equal(atomic_load(&wa.calls[n]), 0);
  assert_int_equal(atomic_load(&wa.next), n);
}

static void test_lmdb_cluster_hooks(void **state)
{
  struct fx *f = *state;
  int64_t a = 0, b = 0;

  assert_true(cs_store_healthy(f->st));
  cs_store_on_change(f->st, count_change, NULL);
  assert_int_equal(cs_store_lease_grant(f->st, 0, &a), CS_ERR_INVALID);
  assert_int_equal(cs_store_lease_grant(f->st, 86401, &a), CS_ERR_INVALID);
  assert_int_equal(cs_store_lease_grant(f->st, 10, &a), CS_OK);
  assert_int_equal(cs_store_lease_grant(f->st, 10, &b), CS_OK);
  assert_true(a > 0 && b > 0 && a != b);
  assert_int_equal(cs_store_write(f->st, lease_put_cb, &a), CS_OK);
  assert_rec(f->st, CS_TBL_OUTBOX, "claim", 5, "me", 2);
  assert_int_equal(cs_store_lease_keepalive(f->st, a), CS_OK);
  assert_int_equal(cs_store_lease_revoke(f->st, a), CS_OK);
  assert_int_equal(cs_store_lease_keepalive(f->st, 0), CS_ERR_NOT_FOUND);
  assert_rec(f->st, CS_TBL_OUTBOX, "claim", 5, "me", 2);
  assert_int_equal(changes_seen, 0);
  cs_store_on_change(f->st, NULL, NULL);
  assert_int_equal(cs_store_stat(f->st, &(struct cs_store_stat){0}), CS_OK);
  assert_int_equal(stat_of(f->st).etcd_requests, 0);
  assert_int_equal(stat_of(f->st).revision, 0);
}

/* Every backend. */
static const struct CMUnitTest common_tests[] = {
    cmocka_unit_test_setup_teardown(test_open_not_initialized, dir_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_create_twice, dir_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_get_missing, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_put_no_overwrite_twice, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_del_missing, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_bad_keys, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_write_in_read_txn, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_callback_error_rolls_back, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_batch_partial, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_batch_all_fail, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_reopen_keeps_data, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_cursor, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_cursor_empty, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_last_seq, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_count_and_stat, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_backup_restore, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_readonly, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_read_pool_overflow, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_concurrency, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_writer_flush, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_writer_async, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_writer_stop_queued, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_store_urls, dir_setup, fx_teardown),
};

/* LMDB's map, data file and schema record. */
static const struct CMUnitTest lmdb_tests[] = {
    cmocka_unit_test_setup_teardown(test_schema_newer, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_schema_older, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_schema_garbled, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_map_growth, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_batch_grows, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_grow_blocked_by_snapshot, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_other_process_grows_map, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_lmdb_cluster_hooks, fx_setup, fx_teardown),
};

/* CS_TEST_STORE_URL (an etcd URL), else CS_TEST_ETCD_CLUSTER/url, else NULL. */
static const char *etcd_from_env(char *buf, size_t n)
{
  const char *u = getenv("CS_TEST_STORE_URL"), *dir = getenv("CS_TEST_ETCD_CLUSTER");
  char path[512];
  FILE *fp;

  if (u && *u) {
    if (strncmp(u, "etcd://", 7) != 0 && strncmp(u, "etcds://", 8) != 0) {
      fprintf(stderr, "CS_TEST_STORE_URL must be an etcd URL (LMDB runs by default)\n");
      exit(2);
    }
    return u;
  }
  if (!dir || !*dir)
    return NULL;
  snprintf(path, sizeof path, "%s/url", dir);
  fp = fopen(path, "r");
  if (!fp || !fgets(buf, (int)n, fp)) {
    fprintf(stderr, "no etcd cluster in %s (tests/cluster/etcd_cluster.py start)\n", dir);
    exit(2);
  }
  fclose(fp);
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

int main(int argc, char **argv)
{
  static char url[512];
  int failed;

  self_path = argv[0];
  if (argc == 3 && strcmp(argv[1], "--grow-child") == 0)
    return grow_child(argv[2]);
  /* Error paths log by design; keep the output to results (CS_TEST_LOG=1: logs too). */
  cs_log_min_level = getenv("CS_TEST_LOG") ? CS_LOG_DEBUG : CS_LOG_OFF;
  if (getenv("CS_TEST_FILTER")) /* e.g. "test_cursor*" */
    cmocka_set_test_filter(getenv("CS_TEST_FILTER"));
  /* Slow runs (valgrind) give etcd requests longer. */
  if (getenv("CS_TEST_ETCD_TIMEOUT_MS"))
    store_opts.etcd_timeout_ms = (unsigned)strtoul(getenv("CS_TEST_ETCD_TIMEOUT_MS"), NULL, 10);
  if (getenv("CS_TEST_SLOW")) {
    unsigned long n = strtoul(getenv("CS_TEST_SLOW"), NULL, 10);

    slowdown = n >= 1 && n <= 100 ? (int)n : 1;
  }
  if (getenv("CS_TEST_ETCD_TLS")) {
    setenv("CS_TEST_ETCD_CLUSTER", getenv("CS_TEST_ETCD_TLS"), 1);
    store_etcd = etcd_from_env(url, sizeof url);
    tls_opts(&store_opts, getenv("CS_TEST_ETCD_TLS"));
    unsetenv("CS_TEST_ETCD_CLUSTER"); /* no member kills here */
    return _cmocka_run_group_tests("etcd tls+auth", tls_tests, n_tls_tests, NULL, NULL);
  }
  store_etcd = etcd_from_env(url, sizeof url);
  if (!store_etcd) {
    failed = cmocka_run_group_tests_name("store (lmdb)", common_tests, NULL, NULL);
    return failed + cmocka_run_group_tests_name("lmdb", lmdb_tests, NULL, NULL);
  }
  cc_ops = 200;
  cc_val = 4096;
  failed = cmocka_run_group_tests_name("store (etcd)", common_tests, NULL, NULL);
  return failed +
         _cmocka_run_group_tests("etcd cluster", cluster_tests, n_cluster_tests, NULL, NULL);
}
