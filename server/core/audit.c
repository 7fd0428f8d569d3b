/* The audit trail (API.md §5): every change, resolve, key change and failed
 * authentication, hash-chained so a modified or removed entry is detected.
 *
 * CS_TBL_AUDIT: u64 BE seq → hash[32] | entry JSON
 * entry JSON:   {"seq","at","actor","role","action","target","result",
 *                "remote","prevHash"}
 * hash:         keyed BLAKE2b-256(prevHash || entry JSON), keyed with the
 *               keyring's audit-chain key (cs_chain_hash): a store writer
 *               without the master key cannot recompute the chain.
 * META "audit_head": u64 BE seq | hash[32] of the last entry, so removing
 * the newest entries is detected too.
 *
 * Readers with a scope see only entries about credentials their scope
 * allows; entries about access keys, logins and the keyring are about no
 * credential and are hidden from them. */
#include "core_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_KEY "audit_head"
#define HEAD_LEN (8 + CS_HASH_BYTES)
/* Entries one listing examines at most, whatever its filter: a reader whose
 * scope matches little must not walk the whole trail per request. */
#define SCAN_MAX 10000

static enum cs_err read_head(struct cs_txn *txn, uint64_t *seq, uint8_t hash[CS_HASH_BYTES])
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, HEAD_KEY, strlen(HEAD_KEY), &v);
  if (e == CS_ERR_NOT_FOUND) {
    *seq = 0;
    memset(hash, 0, CS_HASH_BYTES);
    return CS_OK;
  }
  if (e)
    return e;
  if (v.len != HEAD_LEN)
    return CS_ERR_STORE;
  *seq = cs_store_seq_from_key(v.data, 8);
  memcpy(hash, (const uint8_t *)v.data + 8, CS_HASH_BYTES);
  return CS_OK;
}

enum cs_err cs_audit_append(struct cs_txn *txn, const struct cs_keyring *kr,
                            const struct cs_actor *a, const char *action, const char *target,
                            const char *result)
{
  uint8_t prev[CS_HASH_BYTES], hash[CS_HASH_BYTES], key[8], head[HEAD_LEN];
  char prev_hex[2 * CS_HASH_BYTES + 1], when[32];
  uint64_t seq;
  cJSON *j = NULL;
  char *text = NULL;
  uint8_t *val = NULL;
  enum cs_err e;

  if ((e = read_head(txn, &seq, prev)))
    return e;
  seq++;
  cs_hex(prev, sizeof prev, prev_hex);
  cs_time_format(cs_now(), when);
  e = CS_ERR_NOMEM;
  j = cJSON_CreateObject();
  if (!j || !cJSON_AddNumberToObject(j, "seq", (double)seq) ||
      !cJSON_AddStringToObject(j, "at", when) ||
      !cJSON_AddStringToObject(j, "actor", a && a->key_id ? a->key_id : "") ||
      !cJSON_AddStringToObject(j, "role", a && a->role ? a->role : "") ||
      !cJSON_AddStringToObject(j, "action", action) ||
      !cJSON_AddStringToObject(j, "target", target ? target : "") ||
      !cJSON_AddStringToObject(j, "result", result) ||
      !cJSON_AddStringToObject(j, "remote", a && a->remote ? a->remote : "") ||
      !cJSON_AddStringToObject(j, "prevHash", prev_hex) || !(text = cs_json_print(j)))
    goto out;
  size_t len = strlen(text);
  cs_chain_hash(kr, prev, text, len, hash);
  if (!(val = malloc(CS_HASH_BYTES + len)))
    goto out;
  memcpy(val, hash, CS_HASH_BYTES);
  memcpy(val + CS_HASH_BYTES, text, len);
  cs_store_seq_key(seq, key);
  if ((e = cs_txn_put(txn, CS_TBL_AUDIT, key, 8, val, CS_HASH_BYTES + len, CS_PUT_NO_OVERWRITE)))
    goto out;
  memcpy(head, key, 8);
  memcpy(head + 8, hash, CS_HASH_BYTES);
  e = cs_txn_put(txn, CS_TBL_META, HEAD_KEY, strlen(HEAD_KEY), head, sizeof head, 0);
out:
  cJSON_Delete(j);
  free(text);
  free(val);
  return e;
}

struct record_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *action, *target, *result;
};

static enum cs_err record_txn(struct cs_txn *txn, void *arg)
{
  struct record_ctx *c = arg;
  return cs_audit_append(txn, c->kr, c->a, c->action, c->target, c->result);
}

enum cs_err cs_audit_record(struct cs_core *core, const struct cs_actor *a, const char *action,
                            const char *target, const char *result)
{
  struct record_ctx c = {core->keyring, a, action, target, result};
  return cs_core_write(core, record_txn, &c);
}

/* Decode one stored entry: its hash and JSON. */
static enum cs_err entry_parts(const struct cs_val *v, const uint8_t **hash, const char **json,
                               size_t *len)
{
  if (v->len <= CS_HASH_BYTES)
    return CS_ERR_CRYPTO;
  *hash = v->data;
  *json = (const char *)v->data + CS_HASH_BYTES;
  *len = v->len - CS_HASH_BYTES;
  return CS_OK;
}

static enum cs_err verify_chain(struct cs_txn *txn, const struct cs_keyring *kr, uint64_t *count,
                                uint64_t *bad_seq, struct cs_audit_anchor *anchor)
{
  uint8_t prev[CS_HASH_BYTES] = {0}, calc[CS_HASH_BYTES], head_hash[CS_HASH_BYTES];
  uint64_t expect = 1, head_seq;
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  enum cs_err e;

  *count = 0;
  *bad_seq = 0;
  /* After a prune the chain goes on from its anchor: the last removed entry. */
  if ((e = cs_audit_anchor_load(txn, kr, anchor)) == CS_ERR_CRYPTO)
    *bad_seq = 1;
  if (e || (e = read_head(txn, &head_seq, head_hash)) ||
      (e = cs_cursor_open(txn, CS_TBL_AUDIT, &c)))
    return e;
  memcpy(prev, anchor->hash, CS_HASH_BYTES);
  expect = anchor->seq + 1;
  for (e = cs_cursor_seek(c, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v)) {
    const uint8_t *hash;
    const char *json;
    size_t len;
    cJSON *j = NULL;
    char prev_hex[2 * CS_HASH_BYTES + 1];
    bool ok = cs_store_seq_from_key(k.data, k.len) == expect &&
              entry_parts(&v, &hash, &json, &len) == CS_OK;
    if (ok) {
      cs_chain_hash(kr, prev, json, len, calc);
      cs_hex(prev, sizeof prev, prev_hex);
      const cJSON *p, *s;
      ok = cs_hash_equal(calc, hash) && cs_json_parse(json, len, CS_JSON_MAX_DEPTH, &j) == CS_OK &&
           cJSON_IsString(p = cJSON_GetObjectItemCaseSensitive(j, "prevHash")) &&
           strcmp(p->valuestring, prev_hex) == 0 &&
           cJSON_IsNumber(s = cJSON_GetObjectItemCaseSensitive(j, "seq")) &&
           (uint64_t)s->valuedouble == expect;
      cJSON_Delete(j);
    }
    if (!ok) {
      *bad_seq = expect;
      cs_cursor_close(c);
      return CS_ERR_CRYPTO;
    }
    memcpy(prev, hash, CS_HASH_BYTES);
    expect++;
  }
  cs_cursor_close(c);
  if (e != CS_ERR_NOT_FOUND)
    return e;
  *count = expect - 1 - anchor->seq;
  /* The head names the newest entry: entries removed from the end show here. */
  if (head_seq != expect - 1 || !cs_hash_equal(head_hash, prev)) {
    *bad_seq = expect;
    return CS_ERR_CRYPTO;
  }
  return CS_OK;
}

/* Actions whose target is a credential id; anything else (access keys,
 * logins, the keyring, actions added later) is about no credential. */
static bool about_credential(const char *action)
{
  static const char *const actions[] = {"create",       "update",  "delete", "usage_create",
                                        "usage_delete", "resolve", "test"};
  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp(action, actions[i]) == 0)
      return true;
  return false;
}

struct audit_page {
  const struct cs_view *v;
  uint64_t limit;
  uint64_t scanned;
  uint64_t next; /* the last seq examined: where the next page starts */
  cJSON *arr;
};

static bool entry_visible(const struct audit_page *p, const cJSON *j)
{
  if (!p->v->cred && !p->v->scope)
    return true;
  const cJSON *action = cJSON_GetObjectItemCaseSensitive(j, "action");
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "target");
  if (!cJSON_IsString(action) || !cJSON_IsString(t) || !about_credential(action->valuestring))
    return false;
  if (p->v->cred && strcmp(t->valuestring, p->v->cred) != 0)
    return false;
  return cs_scope_allows(p->v->scope, t->valuestring);
}

enum cs_err cs_audit_render(const struct cs_val *v, cJSON **out)
{
  const uint8_t *hash;
  const char *json;
  size_t len;
  cJSON *j;
  char hex[2 * CS_HASH_BYTES + 1];

  if (entry_parts(v, &hash, &json, &len) || cs_json_parse(json, len, CS_JSON_MAX_DEPTH, &j))
    return CS_ERR_STORE;
  cs_hex(hash, CS_HASH_BYTES, hex);
  if (!cJSON_AddStringToObject(j, "hash", hex)) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  *out = j;
  return CS_OK;
}

static enum cs_err collect_entry(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct audit_page *p = arg;
  cJSON *j;
  enum cs_err e;

  p->next = seq;
  *stop = ++p->scanned >= SCAN_MAX;
  if ((e = cs_audit_render(v, &j)))
    return e;
  if (!entry_visible(p, j)) {
    cJSON_Delete(j);
    return CS_OK;
  }
  cJSON_AddItemToArray(p->arr, j);
  *stop = *stop || (uint64_t)cJSON_GetArraySize(p->arr) >= p->limit;
  return CS_OK;
}

enum cs_err cs_audit_read(struct cs_core *c, const struct cs_view *v, uint64_t since,
                          uint64_t limit, cJSON **entries, uint64_t *next)
{
  struct audit_page p = {v, limit, 0, since, NULL};
  enum cs_err e;

  if (!(p.arr = cJSON_CreateArray()))
    return CS_ERR_NOMEM;
  if ((e = cs_seq_each(c->store, CS_TBL_AUDIT, since + 1, collect_entry, &p))) {
    cJSON_Delete(p.arr);
    return e;
  }
  *entries = p.arr;
  *next = p.next;
  return CS_OK;
}

enum cs_err cs_audit_verify(struct cs_core *c, uint64_t *count, uint64_t *bad_seq,
                            struct cs_audit_anchor *anchor)
{
  struct cs_txn *txn = NULL;
  enum cs_err e = cs_store_read_begin(c->store, &txn);
  if (e)
    return e;
  e = verify_chain(txn, c->keyring, count, bad_seq, anchor);
  cs_store_read_end(txn);
  return e;
}
