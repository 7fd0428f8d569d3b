/* The audit chain's anchor (core_internal.h): where the chain starts after
 * audit-prune removed its oldest entries, the last removed entry's seq and
 * hash, keyed with the audit-chain key so only the master key's holder can
 * move it. One per chain: the record's key and its MAC name the chain
 * (LMDB's "" → "audit_anchor", a cluster node's → "audit_anchor/<node>"),
 * so an anchor cannot be copied onto another chain. Read by audit.c's
 * verify, written by audit_export.c's prune. */
#include "core_internal.h"

#include <stdio.h>
#include <string.h>

static void anchor_mac(const struct cs_keyring *kr, const char *chain,
                       const struct cs_audit_anchor *a, uint8_t mac[CS_HASH_BYTES])
{
  char text[192];
  int n = snprintf(text, sizeof text, "%s|%s|%llu", CS_AUDIT_ANCHOR_KEY, chain,
                   (unsigned long long)a->seq);
  cs_chain_hash(kr, a->hash, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1, mac);
}

void cs_audit_anchor_encode(const struct cs_keyring *kr, const char *chain,
                            const struct cs_audit_anchor *a, uint8_t out[CS_AUDIT_ANCHOR_LEN])
{
  cs_store_seq_key(a->seq, out);
  memcpy(out + 8, a->hash, CS_HASH_BYTES);
  anchor_mac(kr, chain, a, out + 8 + CS_HASH_BYTES);
}

enum cs_err cs_audit_anchor_decode(const struct cs_keyring *kr, const char *chain,
                                   const struct cs_val *v, struct cs_audit_anchor *out)
{
  struct cs_audit_anchor a;
  uint8_t mac[CS_HASH_BYTES];
  const uint8_t *p = v->data;

  if (v->len != CS_AUDIT_ANCHOR_LEN)
    return CS_ERR_STORE;
  a.seq = cs_store_seq_from_key(p, 8);
  memcpy(a.hash, p + 8, CS_HASH_BYTES);
  anchor_mac(kr, chain, &a, mac);
  if (a.seq == 0 || !cs_hash_equal(mac, p + 8 + CS_HASH_BYTES))
    return CS_ERR_CRYPTO;
  *out = a;
  return CS_OK;
}

size_t cs_audit_meta_key(const char *base, const char *chain, char out[CS_AUDIT_META_KEY_MAX])
{
  int n = snprintf(out, CS_AUDIT_META_KEY_MAX, chain[0] ? "%s/%s" : "%s", base, chain);
  return n > 0 && (size_t)n < CS_AUDIT_META_KEY_MAX ? (size_t)n : 0;
}

enum cs_err cs_audit_anchor_load(struct cs_txn *txn, const struct cs_keyring *kr, const char *chain,
                                 struct cs_audit_anchor *out)
{
  char key[CS_AUDIT_META_KEY_MAX];
  struct cs_val v;
  size_t klen = cs_audit_meta_key(CS_AUDIT_ANCHOR_KEY, chain, key);
  enum cs_err e = klen ? cs_txn_get(txn, CS_TBL_META, key, klen, &v) : CS_ERR_INVALID;

  if (e == CS_ERR_NOT_FOUND) {
    memset(out, 0, sizeof *out);
    return CS_OK;
  }
  if (!e && (e = cs_audit_anchor_decode(kr, chain, &v, out)))
    CS_LOG(CS_LOG_ERROR, "the audit anchor record of chain \"%s\" is %s", chain,
           e == CS_ERR_CRYPTO ? "not keyed with this master key (forged?)" : "corrupt");
  return e;
}

enum cs_err cs_audit_anchor_store(struct cs_txn *txn, const struct cs_keyring *kr,
                                  const char *chain, const struct cs_audit_anchor *a)
{
  char key[CS_AUDIT_META_KEY_MAX];
  uint8_t rec[CS_AUDIT_ANCHOR_LEN];
  size_t klen = cs_audit_meta_key(CS_AUDIT_ANCHOR_KEY, chain, key);

  if (!klen)
    return CS_ERR_INVALID;
  cs_audit_anchor_encode(kr, chain, a, rec);
  return cs_txn_put(txn, CS_TBL_META, key, klen, rec, sizeof rec, 0);
}

/* The chain a META key names if it is an anchor record's, into @p chain.
 * @return false for another record. */
static bool anchor_chain(const struct cs_val *k, char chain[CS_NODE_ID_MAX + 1])
{
  const size_t bl = strlen(CS_AUDIT_ANCHOR_KEY);
  const char *p = k->data;

  if (k->len < bl || memcmp(p, CS_AUDIT_ANCHOR_KEY, bl) != 0 ||
      (k->len > bl && (p[bl] != '/' || k->len - bl - 1 > CS_NODE_ID_MAX)))
    return false;
  size_t n = k->len > bl ? k->len - bl - 1 : 0;
  memcpy(chain, p + bl + (n ? 1 : 0), n);
  chain[n] = '\0';
  return true;
}

enum cs_err cs_audit_anchors_each(struct cs_txn *txn, const struct cs_keyring *kr, cs_anchor_fn fn,
                                  void *arg, char bad[CS_NODE_ID_MAX + 1])
{
  const size_t bl = strlen(CS_AUDIT_ANCHOR_KEY);
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  struct cs_audit_anchor a;
  char chain[CS_NODE_ID_MAX + 1];
  enum cs_err e;

  if ((e = cs_cursor_open(txn, CS_TBL_META, &cur)))
    return e;
  for (e = cs_cursor_seek(cur, CS_AUDIT_ANCHOR_KEY, bl, &k, &v);
       e == CS_OK && k.len >= bl && memcmp(k.data, CS_AUDIT_ANCHOR_KEY, bl) == 0;
       e = cs_cursor_next(cur, &k, &v)) {
    if (!anchor_chain(&k, chain))
      continue;
    if ((e = cs_audit_anchor_decode(kr, chain, &v, &a))) {
      memcpy(bad, chain, strlen(chain) + 1);
      break;
    }
    if ((e = fn(arg, chain, &a)))
      break;
  }
  cs_cursor_close(cur);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

enum cs_err cs_audit_anchors(struct cs_core *c, cs_anchor_fn fn, void *arg)
{
  char bad[CS_NODE_ID_MAX + 1] = "";
  struct cs_txn *txn = NULL;
  enum cs_err e = cs_store_read_begin(c->store, &txn);

  if (!e)
    e = cs_audit_anchors_each(txn, c->keyring, fn, arg, bad);
  cs_store_read_end(txn);
  return e;
}
