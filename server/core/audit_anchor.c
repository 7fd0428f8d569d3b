/* The audit chain's anchor (core_internal.h): where the chain starts after
 * audit-prune removed its oldest entries, the last removed entry's seq and
 * hash, keyed with the audit-chain key so only the master key's holder can
 * move it. One chain per store today; the record's key and its MAC name the
 * chain, so per-node chains each get their own anchor. Read by audit.c's
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

enum cs_err cs_audit_anchor_load(struct cs_txn *txn, const struct cs_keyring *kr,
                                 struct cs_audit_anchor *out)
{
  struct cs_val v;
  enum cs_err e =
      cs_txn_get(txn, CS_TBL_META, CS_AUDIT_ANCHOR_KEY, strlen(CS_AUDIT_ANCHOR_KEY), &v);

  if (e == CS_ERR_NOT_FOUND) {
    memset(out, 0, sizeof *out);
    return CS_OK;
  }
  if (!e && (e = cs_audit_anchor_decode(kr, "", &v, out)))
    CS_LOG(CS_LOG_ERROR, "the audit anchor record is %s",
           e == CS_ERR_CRYPTO ? "not keyed with this master key (forged?)" : "corrupt");
  return e;
}
