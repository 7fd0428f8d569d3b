/* `credstore migrate --from STORE --to STORE [--master-key-file F |
 * --passphrase-env VAR]` (API.md §9): copy a whole store, e.g. an LMDB dir
 * into an etcd prefix or back. Records are copied as stored (sealed bytes,
 * the wrapped keyring, the audit chain and its head), so the target opens
 * with the same master key. The target must hold no store. Afterwards the
 * record counts of both and the target's audit chain are checked (that
 * needs the master key) and printed.
 *
 * Run it with the source's servers stopped: a change made during the copy
 * may be missing from the target (the copy is one read snapshot). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One write of the target: few enough records and bytes for one etcd Txn
 * (127 puts, ~1.25 MiB), so a copy never meets CS_ERR_TOO_LARGE for a
 * record that fits a store at all. */
#define CHUNK_RECORDS 100
#define CHUNK_BYTES ((size_t)1 << 20)

static const char *const table_names[CS_TBL__COUNT] = {
    "meta",  "credentials", "usages", "usagesByCredential", "accessKeys",
    "audit", "events",      "outbox", "deadLetters",
};

struct rec {
  uint8_t *key, *val;
  size_t klen, vlen;
};

struct chunk {
  enum cs_table t;
  struct rec r[CHUNK_RECORDS];
  size_t n, bytes;
};

static void chunk_clear(struct chunk *c)
{
  for (size_t i = 0; i < c->n; i++) {
    free(c->r[i].key);
    free(c->r[i].val);
  }
  c->n = 0;
  c->bytes = 0;
}

static enum cs_err put_chunk(struct cs_txn *txn, void *arg)
{
  const struct chunk *c = arg;
  /* META: the target's own "schema" record is already there (same value). */
  unsigned flags = c->t == CS_TBL_META ? 0 : CS_PUT_NO_OVERWRITE;
  enum cs_err e = CS_OK;

  for (size_t i = 0; i < c->n && !e; i++)
    e = cs_txn_put(txn, c->t, c->r[i].key, c->r[i].klen, c->r[i].val, c->r[i].vlen, flags);
  return e;
}

static enum cs_err flush_chunk(struct cs_store *to, struct chunk *c)
{
  enum cs_err e = c->n ? cs_store_write(to, put_chunk, c) : CS_OK;
  chunk_clear(c);
  return e;
}

/* Copy the record (k, v) into the chunk, flushing it first when full. */
static enum cs_err add_record(struct cs_store *to, struct chunk *c, const struct cs_val *k,
                              const struct cs_val *v)
{
  enum cs_err e;

  if ((c->n == CHUNK_RECORDS || c->bytes + k->len + v->len > CHUNK_BYTES) &&
      (e = flush_chunk(to, c)))
    return e;
  struct rec *r = &c->r[c->n];
  r->key = malloc(k->len);
  r->val = malloc(v->len ? v->len : 1);
  if (!r->key || !r->val) {
    free(r->key);
    free(r->val);
    return CS_ERR_NOMEM;
  }
  memcpy(r->key, k->data, k->len);
  memcpy(r->val, v->data, v->len);
  r->klen = k->len;
  r->vlen = v->len;
  c->n++;
  c->bytes += k->len + v->len;
  return CS_OK;
}

/* Copy table @p t of the snapshot @p src into @p to. */
static enum cs_err copy_table(struct cs_txn *src, enum cs_table t, struct cs_store *to,
                              struct chunk *c)
{
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  enum cs_err e;

  c->t = t;
  if ((e = cs_cursor_open(src, t, &cur)))
    return e;
  for (e = cs_cursor_seek(cur, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(cur, &k, &v))
    if ((e = add_record(to, c, &k, &v)))
      break;
  cs_cursor_close(cur);
  if (e != CS_ERR_NOT_FOUND)
    return e;
  return flush_chunk(to, c);
}

struct rekey {
  struct cs_store *to;
  struct chunk *c;
  uint64_t seq;
};

static enum cs_err rekey_one(uint64_t pos, const struct cs_val *k, const struct cs_val *v,
                             void *arg, bool *stop)
{
  struct rekey *r = arg;
  uint8_t key[8];
  struct cs_val nk = {key, 8};

  (void)pos, (void)k, (void)stop;
  cs_store_seq_key(++r->seq, key);
  return add_record(r->to, r->c, &nk, v);
}

/* Into LMDB from a shared store, a feed table (audit, events) is re-keyed
 * 1, 2, ... in feed order: LMDB's feed order is its key order. */
static enum cs_err copy_feed_rekeyed(struct cs_store *from, enum cs_table t, struct cs_store *to,
                                     struct chunk *c)
{
  struct rekey r = {to, c, 0};
  enum cs_err e;

  c->t = t;
  if ((e = cs_store_feed_each(from, t, 0, rekey_one, &r)))
    return e;
  return flush_chunk(to, c);
}

static enum cs_err copy_all(struct cs_store *from, struct cs_store *to)
{
  bool rekey = cs_store_shared(from) && !cs_store_shared(to);
  struct chunk *c = calloc(1, sizeof *c);
  struct cs_txn *src = NULL;
  enum cs_err e = c ? cs_store_read_begin(from, &src) : CS_ERR_NOMEM;

  for (int t = 0; t < CS_TBL__COUNT && !e; t++)
    if ((e = rekey && (t == CS_TBL_AUDIT || t == CS_TBL_EVENTS)
                 ? copy_feed_rekeyed(from, (enum cs_table)t, to, c)
                 : copy_table(src, (enum cs_table)t, to, c)))
      fprintf(stderr, "credstore migrate: copying %s failed: %s\n", table_names[t],
              cs_err_message(e));
  cs_store_read_end(src);
  if (c)
    chunk_clear(c);
  free(c);
  return e;
}

/* The record counts of @p st, into @p out (an object by table name). */
static enum cs_err count_all(struct cs_store *st, uint64_t n[CS_TBL__COUNT])
{
  struct cs_txn *txn = NULL;
  enum cs_err e = cs_store_read_begin(st, &txn);

  for (int t = 0; t < CS_TBL__COUNT && !e; t++)
    e = cs_txn_count(txn, (enum cs_table)t, &n[t]);
  cs_store_read_end(txn);
  return e;
}

/* Counts equal on both sides? Prints the first difference. */
static bool counts_match(const uint64_t a[CS_TBL__COUNT], const uint64_t b[CS_TBL__COUNT])
{
  for (int t = 0; t < CS_TBL__COUNT; t++)
    if (a[t] != b[t]) {
      fprintf(stderr, "credstore migrate: %s: %llu records in the source, %llu in the target\n",
              table_names[t], (unsigned long long)a[t], (unsigned long long)b[t]);
      return false;
    }
  return true;
}

/* Verify the target's audit chain with the master key @p cfg gives (an
 * LMDB source's development DIR/master.key when none). */
static enum cs_err verify_target(const struct cs_config *cfg, const char *from_dir,
                                 uint64_t *entries)
{
  struct cs_config kcfg = *cfg;
  struct cs_data d = {0};
  struct cs_core core;
  struct cs_audit_anchor anchor;
  uint64_t bad = 0;
  enum cs_err e;

  kcfg.store = cfg->to;
  kcfg.data_dir = from_dir; /* only where cs_master_key_for looks for master.key */
  if ((e = cs_data_open(&kcfg, CS_STORE_READONLY, &d)))
    return e;
  cs_core_init(&core, d.store, d.keyring, NULL);
  e = cs_audit_verify(&core, entries, &bad, &anchor);
  cs_data_close(&d);
  if (e == CS_ERR_CRYPTO)
    fprintf(stderr, "credstore migrate: the target's audit chain is broken at entry %llu\n",
            (unsigned long long)bad);
  else if (e)
    fprintf(stderr, "credstore migrate: cannot verify the audit chain: %s\n", cs_err_message(e));
  return e;
}

static int print_result(const struct cs_config *cfg, const uint64_t n[CS_TBL__COUNT],
                        uint64_t entries)
{
  cJSON *o = cJSON_CreateObject(), *r = cJSON_CreateObject(), *a = cJSON_CreateObject();
  bool ok = o && r && a && cJSON_AddStringToObject(o, "from", cfg->from) &&
            cJSON_AddStringToObject(o, "to", cfg->to);

  for (int t = 0; t < CS_TBL__COUNT && ok; t++)
    ok = cJSON_AddNumberToObject(r, table_names[t], (double)n[t]) != NULL;
  ok = ok && cJSON_AddNumberToObject(a, "entries", (double)entries) &&
       cJSON_AddBoolToObject(a, "intact", 1);
  if (ok) {
    cJSON_AddItemToObject(o, "records", r);
    cJSON_AddItemToObject(o, "audit", a);
    return cs_print_json(o);
  }
  cJSON_Delete(r);
  cJSON_Delete(a);
  cJSON_Delete(o);
  return cs_print_json(NULL);
}

/* The LMDB dir a store URL names, or NULL for etcd. */
static const char *lmdb_dir(const char *url)
{
  if (strncmp(url, "etcd://", 7) == 0 || strncmp(url, "etcds://", 8) == 0)
    return NULL;
  return strncmp(url, "lmdb:", 5) == 0 ? url + 5 : url;
}

int cs_cmd_migrate(const struct cs_config *cfg)
{
  struct cs_store *from = NULL, *to = NULL;
  uint64_t nf[CS_TBL__COUNT] = {0}, nt[CS_TBL__COUNT] = {0}, entries = 0;
  int rc = 1;
  enum cs_err e;

  if (!cfg->from || !cfg->to || cfg->store) {
    fprintf(stderr, "credstore migrate: give --from STORE and --to STORE (and no --data or "
                    "--store)\n");
    return 2;
  }
  if (cs_cli_store_open(cfg, cfg->from, CS_STORE_READONLY, &from) ||
      cs_cli_store_open(cfg, cfg->to, CS_STORE_CREATE, &to))
    goto out;
  if ((e = copy_all(from, to)))
    goto out;
  if ((e = count_all(from, nf)) || (e = count_all(to, nt))) {
    fprintf(stderr, "credstore migrate: cannot count records: %s\n", cs_err_message(e));
    goto out;
  }
  if (!counts_match(nf, nt))
    goto out;
  cs_store_close(to);
  to = NULL;
  if (verify_target(cfg, lmdb_dir(cfg->from), &entries))
    goto out;
  rc = print_result(cfg, nt, entries);
out:
  cs_store_close(to);
  cs_store_close(from);
  return rc;
}
