/* The audit trail (API.md §5): every change, resolve, key change and failed
 * authentication, hash-chained so a modified or removed entry is detected.
 *
 * Chains. A store holds one or more chains, each with its own head, so
 * nodes of a cluster never append to the same tail:
 *   - LMDB (one process): the chain "" — CS_TBL_AUDIT u64 BE seq → entry,
 *     META "audit_head". The entry's "seq" is its place in the chain.
 *   - etcd: one chain per node (chain id = --node-id; offline commands use
 *     "cli@<hostname>"), keyed "<chain>" 0x00 u64 BE chainSeq, META
 *     "audit_head/<chain>". Entries carry "node" and "chainSeq".
 * A store migrated from LMDB to etcd keeps its chain "" and grows node
 * chains beside it; migrated back, every chain is kept (re-keyed in feed
 * order, see cmd_migrate.c).
 *
 * Entry value: hash[32] | entry JSON
 * entry JSON:  {"seq" | "node","chainSeq", "at","actor","role","action",
 *               "target","result","remote","prevHash"}
 * hash:        keyed BLAKE2b-256(prevHash || entry JSON), keyed with the
 *              keyring's audit-chain key (cs_chain_hash): a store writer
 *              without the master key cannot recompute the chain.
 * Head:        u64 BE chainSeq | hash[32] of the chain's last entry, so
 *              removing the newest entries is detected too.
 * Each chain starts at chainSeq 1 with a zero prevHash; issue 17's
 * retention can start one at an anchor (a head-like record naming the
 * seq and hash of the first entry kept).
 *
 * The listing is one feed in commit order (cs_store_feed_each): its "seq"
 * is the feed position, on every node the same.
 *
 * Readers with a scope see only entries about credentials their scope
 * allows; entries about access keys, logins and the keyring are about no
 * credential and are hidden from them. */
#include "core_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEAD_KEY "audit_head"
#define HEAD_KEY_MAX (sizeof HEAD_KEY + CS_NODE_ID_MAX + 1)
#define HEAD_LEN (8 + CS_HASH_BYTES)
#define CHAIN_KEY_MAX (CS_NODE_ID_MAX + 1 + 8)
#define CHAINS_MAX 1024 /* distinct chains audit-verify follows */
/* Entries one listing examines at most, whatever its filter: a reader whose
 * scope matches little must not walk the whole trail per request. */
#define SCAN_MAX 10000
#define ENTRY_STACK 2048       /* bytes of an entry built on the stack */
#define ENTRY_MAX (64u << 10u) /* and on the heap: every member escaped is far less */

/* This process's chain in a shared store (one core per process). */
static char chain_id[CS_NODE_ID_MAX + 1];

void cs_audit_set_chain(const char *node)
{
  char host[CS_NODE_ID_MAX - 3] = "localhost";

  if (node && node[0]) {
    snprintf(chain_id, sizeof chain_id, "%s", node);
    return;
  }
  if (gethostname(host, sizeof host - 1) != 0)
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  snprintf(chain_id, sizeof chain_id, "cli@%s", host);
}

/* META key of @p chain's head. @return its length. */
static size_t head_key(const char *chain, char out[HEAD_KEY_MAX])
{
  if (!chain[0]) { /* LMDB's chain, every append: no printf */
    memcpy(out, HEAD_KEY, sizeof HEAD_KEY);
    return sizeof HEAD_KEY - 1;
  }
  return (size_t)snprintf(out, HEAD_KEY_MAX, HEAD_KEY "/%s", chain);
}

static enum cs_err read_head(struct cs_txn *txn, const char *chain, uint64_t *seq,
                             uint8_t hash[CS_HASH_BYTES])
{
  char hk[HEAD_KEY_MAX];
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, hk, head_key(chain, hk), &v);
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

enum cs_err cs_audit_entry_print(struct cs_buf *b, const char *chain, uint64_t seq,
                                 const uint8_t prev[CS_HASH_BYTES], int64_t at,
                                 const struct cs_actor *a, const char *action, const char *target,
                                 const char *result)
{
  char prev_hex[2 * CS_HASH_BYTES + 1], when[32];
  enum cs_err e;

  cs_hex(prev, CS_HASH_BYTES, prev_hex);
  cs_time_format(at, when);
  if (chain[0]) {
    if ((e = cs_buf_append(b, "{\"node\":\"", 9)) ||
        (e = cs_buf_json_escape(b, chain, strlen(chain))) ||
        (e = cs_buf_append(b, "\",\"chainSeq\":", 13)))
      return e;
  } else if ((e = cs_buf_append(b, "{\"seq\":", 7))) {
    return e;
  }
  if ((e = cs_buf_json_u64(b, seq)) || (e = CS_BUF_JSON_STR(b, "at", when)) ||
      (e = CS_BUF_JSON_STR(b, "actor", a && a->key_id ? a->key_id : "")) ||
      (e = CS_BUF_JSON_STR(b, "role", a && a->role ? a->role : "")) ||
      (e = CS_BUF_JSON_STR(b, "action", action)) ||
      (e = CS_BUF_JSON_STR(b, "target", target ? target : "")) ||
      (e = CS_BUF_JSON_STR(b, "result", result)) ||
      (e = CS_BUF_JSON_STR(b, "remote", a && a->remote ? a->remote : "")) ||
      (e = CS_BUF_JSON_STR(b, "prevHash", prev_hex)))
    return e;
  return cs_buf_append(b, "}", 1);
}

/* Where link @p seq of @p chain is stored, into @p key / @p len. LMDB: at
 * the table's end (after a migration the chain's seq and the key may
 * differ). */
static enum cs_err entry_key(struct cs_txn *txn, const char *chain, uint64_t seq,
                             uint8_t key[CHAIN_KEY_MAX], size_t *len)
{
  size_t n = strlen(chain);
  uint64_t last;
  enum cs_err e;

  if (!chain[0]) {
    if ((e = cs_txn_last_seq(txn, CS_TBL_AUDIT, &last)))
      return e;
    cs_store_seq_key(last + 1, key);
    *len = 8;
    return CS_OK;
  }
  memcpy(key, chain, n);
  key[n] = 0;
  cs_store_seq_key(seq, key + n + 1);
  *len = n + 9;
  return CS_OK;
}

/* Entry value: hash | JSON, built in @p b; the hash is written last. */
static enum cs_err entry_build(struct cs_buf *b, const struct cs_keyring *kr, const char *chain,
                               uint64_t seq, const uint8_t prev[CS_HASH_BYTES],
                               const struct cs_actor *a, const char *action, const char *target,
                               const char *result)
{
  static const uint8_t none[CS_HASH_BYTES];
  enum cs_err e;

  if ((e = cs_buf_append(b, none, sizeof none)) ||
      (e = cs_audit_entry_print(b, chain, seq, prev, cs_now(), a, action, target, result)))
    return e;
  cs_chain_hash(kr, prev, b->data + CS_HASH_BYTES, b->len - CS_HASH_BYTES, (uint8_t *)b->data);
  return CS_OK;
}

enum cs_err cs_audit_append(struct cs_txn *txn, const struct cs_keyring *kr,
                            const struct cs_actor *a, const char *action, const char *target,
                            const char *result)
{
  const char *chain = cs_txn_shared(txn) ? chain_id : "";
  uint8_t prev[CS_HASH_BYTES], key[CHAIN_KEY_MAX], head[HEAD_LEN];
  char hk[HEAD_KEY_MAX], mem[ENTRY_STACK];
  struct cs_buf fixed = cs_buf_fixed(mem, sizeof mem), heap, *b = &fixed;
  uint64_t seq;
  size_t klen;
  enum cs_err e;

  cs_buf_init(&heap, ENTRY_MAX);
  if ((e = read_head(txn, chain, &seq, prev)))
    return e;
  seq++;
  /* Most entries fit the stack; a long escaped target takes the heap. */
  if ((e = entry_build(b, kr, chain, seq, prev, a, action, target, result)) == CS_ERR_TOO_LARGE) {
    b = &heap;
    e = entry_build(b, kr, chain, seq, prev, a, action, target, result);
  }
  /* LMDB's chain goes at the table's end (entry_key): appended without a
   * search down the tree. A node chain's key is not its table's last. */
  if (e || (e = entry_key(txn, chain, seq, key, &klen)) ||
      (e = cs_txn_put(txn, CS_TBL_AUDIT, key, klen, b->data, b->len,
                      CS_PUT_NO_OVERWRITE | (chain[0] ? 0 : CS_PUT_APPEND))))
    goto out;
  cs_store_seq_key(seq, head);
  memcpy(head + 8, b->data, CS_HASH_BYTES);
  e = cs_txn_put(txn, CS_TBL_META, hk, head_key(chain, hk), head, sizeof head, 0);
out:
  cs_buf_free(&heap);
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

/* One chain as audit-verify has followed it so far. */
struct chain_state {
  char id[CS_NODE_ID_MAX + 1];
  uint64_t seq;
  uint8_t prev[CS_HASH_BYTES];
};

struct verify {
  const struct cs_keyring *kr;
  struct chain_state *chains;
  size_t n;
  uint64_t count;
  struct cs_audit_break *bad;
  struct cs_audit_anchor *anchor; /* chain "" after audit-prune */
};

static struct chain_state *chain_of(struct verify *w, const char *id)
{
  for (size_t i = 0; i < w->n; i++)
    if (strcmp(w->chains[i].id, id) == 0)
      return &w->chains[i];
  if (w->n == CHAINS_MAX || strlen(id) > CS_NODE_ID_MAX)
    return NULL;
  struct chain_state *c = &w->chains[w->n++];
  memset(c, 0, sizeof *c);
  memcpy(c->id, id, strlen(id) + 1);
  return c;
}

static enum cs_err broken(struct verify *w, const char *chain, uint64_t seq)
{
  snprintf(w->bad->chain, sizeof w->bad->chain, "%s", chain);
  w->bad->seq = seq;
  return CS_ERR_CRYPTO;
}

/* Check one stored entry against its chain's last link, and advance it. */
static enum cs_err verify_entry(struct verify *w, const struct cs_val *v)
{
  const uint8_t *hash;
  const char *json;
  size_t len;
  cJSON *j = NULL;
  uint8_t calc[CS_HASH_BYTES];
  char prev_hex[2 * CS_HASH_BYTES + 1];

  if (entry_parts(v, &hash, &json, &len) || cs_json_parse(json, len, CS_JSON_MAX_DEPTH, &j))
    return broken(w, "?", w->count + 1);
  const cJSON *node = cJSON_GetObjectItemCaseSensitive(j, "node");
  const char *id = cJSON_IsString(node) ? node->valuestring : "";
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, id[0] ? "chainSeq" : "seq");
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prevHash");
  struct chain_state *c = chain_of(w, id);
  bool ok = c && cJSON_IsNumber(s) && cJSON_IsString(p);
  if (ok) {
    cs_chain_hash(w->kr, c->prev, json, len, calc);
    cs_hex(c->prev, sizeof c->prev, prev_hex);
    ok = (uint64_t)s->valuedouble == c->seq + 1 && strcmp(p->valuestring, prev_hex) == 0 &&
         cs_hash_equal(calc, hash);
  }
  enum cs_err e = ok ? CS_OK : broken(w, id, c ? c->seq + 1 : 0);
  cJSON_Delete(j);
  if (e)
    return e;
  c->seq++;
  memcpy(c->prev, hash, CS_HASH_BYTES);
  w->count++;
  return CS_OK;
}

static struct chain_state *chain_find(struct verify *w, const char *id, size_t len)
{
  for (size_t i = 0; i < w->n; i++)
    if (strlen(w->chains[i].id) == len && memcmp(w->chains[i].id, id, len) == 0)
      return &w->chains[i];
  return NULL;
}

/* Every head names its chain's newest entry (entries removed from the end
 * show here), and every head has its chain (a chain removed whole). */
static enum cs_err verify_heads(struct cs_txn *txn, struct verify *w)
{
  const size_t hl = strlen(HEAD_KEY);
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  uint8_t hash[CS_HASH_BYTES];
  char id[CS_NODE_ID_MAX + 1];
  uint64_t seq;
  enum cs_err e;

  for (size_t i = 0; i < w->n; i++) {
    if ((e = read_head(txn, w->chains[i].id, &seq, hash)))
      return e;
    if (seq != w->chains[i].seq || !cs_hash_equal(hash, w->chains[i].prev))
      return broken(w, w->chains[i].id, w->chains[i].seq + 1);
  }
  if ((e = cs_cursor_open(txn, CS_TBL_META, &cur)))
    return e;
  for (e = cs_cursor_seek(cur, HEAD_KEY, hl, &k, &v);
       e == CS_OK && k.len >= hl && memcmp(k.data, HEAD_KEY, hl) == 0;
       e = cs_cursor_next(cur, &k, &v)) {
    const char *name = (const char *)k.data + hl + 1;
    size_t len = k.len > hl ? k.len - hl - 1 : 0;
    if (k.len > hl && ((const char *)k.data)[hl] != '/')
      continue; /* another record that starts so */
    if (!chain_find(w, name, len)) {
      snprintf(id, sizeof id, "%.*s", (int)(len < CS_NODE_ID_MAX ? len : CS_NODE_ID_MAX), name);
      e = broken(w, id, 1); /* a head whose every entry is gone */
      break;
    }
  }
  cs_cursor_close(cur);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

/* Start a pruned chain at its anchor (cs_anchor_fn). */
static enum cs_err seed_chain(void *arg, const char *chain, const struct cs_audit_anchor *a)
{
  struct verify *w = arg;
  struct chain_state *c = chain_of(w, chain);

  if (!c)
    return broken(w, chain, a->seq + 1);
  c->seq = a->seq;
  memcpy(c->prev, a->hash, CS_HASH_BYTES);
  if (!chain[0])
    *w->anchor = *a; /* LMDB's chain: audit-verify reports it */
  return CS_OK;
}

static enum cs_err verify_chains(struct cs_txn *txn, struct verify *w)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  char bad[CS_NODE_ID_MAX + 1] = "";
  enum cs_err e;

  /* After a prune a chain goes on from its anchor: the last removed entry
   * (a forged anchor record breaks the chain at its first link). */
  if ((e = cs_audit_anchors_each(txn, w->kr, seed_chain, w, bad)) == CS_ERR_CRYPTO)
    return broken(w, bad, 1);
  if (e)
    return e;
  if ((e = cs_cursor_open(txn, CS_TBL_AUDIT, &c)))
    return e;
  for (e = cs_cursor_seek(c, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v))
    if ((e = verify_entry(w, &v)))
      break;
  cs_cursor_close(c);
  if (e != CS_ERR_NOT_FOUND)
    return e;
  return verify_heads(txn, w);
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

enum cs_err cs_audit_render(uint64_t seq, const struct cs_val *v, cJSON **out)
{
  const uint8_t *hash;
  const char *json;
  size_t len;
  cJSON *j;
  char hex[2 * CS_HASH_BYTES + 1];

  if (entry_parts(v, &hash, &json, &len) || cs_json_parse(json, len, CS_JSON_MAX_DEPTH, &j))
    return CS_ERR_STORE;
  cs_hex(hash, CS_HASH_BYTES, hex);
  if (cs_json_set_seq(j, seq) || !cJSON_AddStringToObject(j, "hash", hex)) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  *out = j;
  return CS_OK;
}

static enum cs_err collect_entry(uint64_t seq, const struct cs_val *k, const struct cs_val *v,
                                 void *arg, bool *stop)
{
  struct audit_page *p = arg;
  cJSON *j;
  enum cs_err e;

  (void)k;
  p->next = seq;
  *stop = ++p->scanned >= SCAN_MAX;
  if ((e = cs_audit_render(seq, v, &j)))
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
  if ((e = cs_store_feed_each(c->store, CS_TBL_AUDIT, since, collect_entry, &p))) {
    cJSON_Delete(p.arr);
    return e;
  }
  *entries = p.arr;
  *next = p.next;
  return CS_OK;
}

enum cs_err cs_audit_verify_chains(struct cs_core *c, uint64_t *count, size_t *chains,
                                   struct cs_audit_break *bad, struct cs_audit_anchor *anchor)
{
  struct verify w = {c->keyring, calloc(CHAINS_MAX, sizeof(struct chain_state)), 0, 0, bad, anchor};
  struct cs_txn *txn = NULL;
  enum cs_err e = w.chains ? cs_store_read_begin(c->store, &txn) : CS_ERR_NOMEM;

  memset(bad, 0, sizeof *bad);
  memset(anchor, 0, sizeof *anchor);
  *count = 0;
  if (!e)
    e = verify_chains(txn, &w);
  cs_store_read_end(txn);
  free(w.chains);
  if (!e) {
    *count = w.count;
    *chains = w.n;
  }
  return e;
}

enum cs_err cs_audit_verify(struct cs_core *c, uint64_t *count, uint64_t *bad_seq,
                            struct cs_audit_anchor *anchor)
{
  struct cs_audit_break bad;
  size_t chains;
  enum cs_err e = cs_audit_verify_chains(c, count, &chains, &bad, anchor);

  *bad_seq = bad.seq;
  return e;
}

enum cs_err cs_audit_head(struct cs_txn *txn, const char *chain, uint64_t *seq,
                          uint8_t hash[CS_HASH_BYTES])
{
  return read_head(txn, chain, seq, hash);
}
