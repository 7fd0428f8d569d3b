/*
 * Shared by the store unit tests: test_store.c (cases for every backend,
 * and LMDB's own) and store_cluster.c (etcd's own: several nodes, a real
 * 3-member cluster, members killed and restarted).
 *
 * Backend: LMDB temp dirs by default. CS_TEST_STORE_URL=etcd://... runs the
 * same cases against that etcd; CS_TEST_ETCD_CLUSTER=DIR (set by ctest) uses
 * the cluster tests/cluster/etcd_cluster.py started in DIR, which also
 * enables the cases that kill and restart members (CS_TEST_ETCD_HELPER
 * names the script). CS_TEST_ETCD_TLS=DIR runs the TLS and authentication
 * cases against the 1-member cluster started with --tls --auth in DIR.
 * CS_TEST_ETCD_TIMEOUT_MS overrides the etcd request timeout (2000 ms).
 * CS_TEST_SLOW=N says the run is about N times slower than a native one
 * (ctest sets 10 under valgrind): see bound_ms().
 */
#ifndef CS_STORE_TEST_H
#define CS_STORE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

struct fx {
  char dir[64];  /* scratch dir; LMDB: the store's */
  char url[600]; /* what the store is opened from */
  struct cs_store *st;
};

/* The etcd URL the cases run against (no prefix), or NULL for LMDB. */
extern const char *store_etcd;
/* Options every test store is opened with (short etcd timeouts). */
extern struct cs_store_opts store_opts;

int fx_setup(void **state);    /* a fresh store */
int dir_setup(void **state);   /* a fresh dir / prefix, no store */
int fx_teardown(void **state); /* close, remove the dir */
/** Open the fixture's store. */
enum cs_err fx_open(const struct fx *f, unsigned flags, struct cs_store **st);
/** A fresh etcd prefix URL (or LMDB dir) for a second store. */
void fresh_url(char *out, size_t n);

struct kv {
  enum cs_table t;
  const void *k;
  size_t klen;
  const void *v;
  size_t vlen;
  unsigned flags;
  int calls;
  enum cs_err fail; /* returned after the put when not CS_OK */
};

/** A bound on how long something may take to happen: @p ms as on a native
 *  run (the contract's own where it has one, e.g. "visible on every other
 *  node within 1 s"), times CS_TEST_SLOW. */
int bound_ms(int ms);

enum cs_err put_cb(struct cs_txn *txn, void *ctx);
enum cs_err put(struct cs_store *st, enum cs_table t, const char *k, const void *v, size_t vlen);
enum cs_err put_s(struct cs_store *st, enum cs_table t, const char *k, const char *v);
void assert_rec(struct cs_store *st, enum cs_table t, const void *k, size_t klen, const void *v,
                size_t vlen);
void assert_absent(struct cs_store *st, enum cs_table t, const char *k);
uint64_t count(struct cs_store *st, enum cs_table t);
struct cs_store_stat stat_of(struct cs_store *st);
void make_dir(char out[64]);
void rm_tree(const char *dir);

/* store_cluster.c: etcd's own cases; with CS_TEST_ETCD_TLS=DIR, the cases
 * of etcds:// with client certificates and etcd authentication. */
extern const struct CMUnitTest cluster_tests[];
extern const size_t n_cluster_tests;
extern const struct CMUnitTest tls_tests[];
extern const size_t n_tls_tests;
/** Options for the TLS cluster in @p dir (its certificates, user, password). */
void tls_opts(struct cs_store_opts *o, const char *dir);

#endif
