/* Audit export and prune (API.md §11): the trail is never silently cut.
 * audit-export writes every entry (with its hash) for safekeeping and
 * records how far it got; audit-prune removes only exported entries, and
 * moves the chain's anchor to the last one it removed, so audit-verify
 * checks what remains from there. The anchor is keyed with the audit-chain
 * key: a store writer without the master key cannot prune and re-anchor.
 * Records (core_internal.h): META "audit_exported" here, the anchor in
 * audit_anchor.c. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORTED_KEY "audit_exported"

static enum cs_err u64_meta(struct cs_txn *txn, const char *key, uint64_t *out)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, key, strlen(key), &v);

  *out = 0;
  if (e == CS_ERR_NOT_FOUND)
    return CS_OK;
  if (!e && v.len != 8)
    e = CS_ERR_STORE;
  if (!e)
    *out = cs_store_seq_from_key(v.data, v.len);
  return e;
}

/* ---------------------------------------------------------------- export */

struct export_ctx {
  enum cs_err (*line)(void *arg, const char *json, size_t len);
  void *arg;
  uint64_t count, last;
};

static enum cs_err export_one(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct export_ctx *x = arg;
  cJSON *j = NULL;
  char *text = NULL;
  enum cs_err e;

  (void)stop;
  if ((e = cs_audit_render(v, &j)))
    return e;
  if (!(text = cs_json_print(j)))
    e = CS_ERR_NOMEM;
  else if (!(e = x->line(x->arg, text, strlen(text)))) {
    x->count++;
    x->last = seq;
  }
  free(text);
  cJSON_Delete(j);
  return e;
}

static enum cs_err exported_txn(struct cs_txn *txn, void *arg)
{
  uint64_t last = *(const uint64_t *)arg, had = 0;
  uint8_t rec[8];
  enum cs_err e = u64_meta(txn, EXPORTED_KEY, &had);

  if (e || last <= had)
    return e;
  cs_store_seq_key(last, rec);
  return cs_txn_put(txn, CS_TBL_META, EXPORTED_KEY, strlen(EXPORTED_KEY), rec, 8, 0);
}

enum cs_err cs_audit_export(struct cs_core *c,
                            enum cs_err (*line)(void *arg, const char *json, size_t len), void *arg,
                            uint64_t *count, uint64_t *last)
{
  struct export_ctx x = {line, arg, 0, 0};
  enum cs_err e = cs_seq_each(c->store, CS_TBL_AUDIT, 0, export_one, &x);

  *count = x.count;
  *last = x.last;
  return e;
}

enum cs_err cs_audit_mark_exported(struct cs_core *c, uint64_t last)
{
  return last ? cs_core_write(c, exported_txn, &last) : CS_OK;
}

/* ----------------------------------------------------------------- prune */

struct prune_ctx {
  const struct cs_keyring *kr;
  uint64_t before;
  uint64_t limit;                /* out: the highest `before` allowed */
  uint64_t n;                    /* out: entries removed by this batch */
  struct cs_audit_anchor anchor; /* out: the anchor after it */
};

/* The highest `before` allowed: every entry below it exported, the newest kept. */
static enum cs_err prune_limit(struct cs_txn *txn, uint64_t *limit)
{
  uint64_t exported = 0, head = 0;
  enum cs_err e;

  if ((e = u64_meta(txn, EXPORTED_KEY, &exported)) ||
      (e = cs_txn_last_seq(txn, CS_TBL_AUDIT, &head)))
    return e;
  *limit = (exported < head ? exported : (head ? head - 1 : 0)) + 1;
  return CS_OK;
}

static enum cs_err prune_txn(struct cs_txn *txn, void *arg)
{
  struct prune_ctx *p = arg;
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  uint8_t key[8], rec[CS_AUDIT_ANCHOR_LEN];
  enum cs_err e;

  p->n = 0;
  if ((e = cs_audit_anchor_load(txn, p->kr, &p->anchor)) || (e = prune_limit(txn, &p->limit)))
    return e;
  if (p->before > p->limit)
    return CS_ERR_PRECONDITION;
  if ((e = cs_cursor_open(txn, CS_TBL_AUDIT, &c)))
    return e;
  cs_store_seq_key(p->anchor.seq + 1, key);
  for (e = cs_cursor_seek(c, key, 8, &k, &v); !e && p->n < CS_TRIM_BATCH;) {
    uint64_t seq = cs_store_seq_from_key(k.data, k.len);
    if (seq >= p->before || v.len < CS_HASH_BYTES)
      break;
    p->anchor.seq = seq;
    memcpy(p->anchor.hash, v.data, CS_HASH_BYTES);
    if (!(e = cs_cursor_del(c)))
      p->n++;
    if (!e)
      e = cs_cursor_seek(c, key, 8, &k, &v); /* the next one is now the first above */
  }
  cs_cursor_close(c);
  if (e && e != CS_ERR_NOT_FOUND)
    return e;
  if (!p->n)
    return CS_OK;
  cs_audit_anchor_encode(p->kr, "", &p->anchor, rec);
  return cs_txn_put(txn, CS_TBL_META, CS_AUDIT_ANCHOR_KEY, strlen(CS_AUDIT_ANCHOR_KEY), rec,
                    sizeof rec, 0);
}

enum cs_err cs_audit_prune(struct cs_core *c, const struct cs_actor *a, uint64_t before,
                           uint64_t *removed, uint64_t *limit, struct cs_audit_anchor *anchor)
{
  struct prune_ctx p = {.kr = c->keyring, .before = before, .n = CS_TRIM_BATCH};
  char target[48];
  enum cs_err e = CS_OK;

  *removed = 0;
  while (!e && p.n == CS_TRIM_BATCH) {
    if (!(e = cs_core_write(c, prune_txn, &p)))
      *removed += p.n;
  }
  *limit = p.limit;
  *anchor = p.anchor;
  if (e)
    return e;
  snprintf(target, sizeof target, "before %llu", (unsigned long long)before);
  return cs_audit_record(c, a, "audit_prune", target, "success");
}
