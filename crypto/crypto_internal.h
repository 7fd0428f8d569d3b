/**
 * @file crypto_internal.h
 * @brief Private to crypto/: key accessors shared by keyring.c, seal.c,
 *        jwt.c and util.c, and the base64url/HMAC helpers. Not installed,
 *        not for other modules (unit tests may use it for known answers).
 */
#ifndef CS_CRYPTO_INTERNAL_H
#define CS_CRYPTO_INTERNAL_H

#include "crypto.h"

#include <sodium.h>

/** Most data-key versions a keyring may hold. */
#define CS_KEYRING_MAX_VERSIONS 1024u

/** Bytes cs_seal() adds to the plaintext: version, nonce, tag. */
#define CS_SEAL_OVERHEAD                                                                           \
  (4u + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)

/** KDF context and subkey ids for the keys derived from the root secret. */
#define CS_KDF_ROOT_CONTEXT "csrootk1"
#define CS_KDF_ID_HASH_KEY 1u
#define CS_KDF_ID_JWT_KEY 2u
#define CS_KDF_ID_AUDIT_KEY 3u

/** @return the 32-byte data key for @p version, or NULL if the keyring has none. */
const uint8_t *cs_kr_data_key(const struct cs_keyring *kr, uint32_t version);
/** @return the 32-byte keyed-BLAKE2b key for access-key secrets. */
const uint8_t *cs_kr_hash_key(const struct cs_keyring *kr);
/** @return the 32-byte HS256 key for JWTs. */
const uint8_t *cs_kr_jwt_key(const struct cs_keyring *kr);
/** @return the 32-byte keyed-BLAKE2b key of the audit hash chain. */
const uint8_t *cs_kr_audit_key(const struct cs_keyring *kr);

/** HMAC-SHA256 of @p msg under a key of any length (RFC 2104). */
void cs_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
                    uint8_t out[crypto_auth_hmacsha256_BYTES]);

/**
 * Decode all @p len bytes of base64 in @p variant into @p out (cap bytes):
 * strict (bytes >= 0x80 refused, whole input consumed, canonical padding).
 * @return false on any error.
 */
bool cs_b64_decode_into(const char *in, size_t len, int variant, uint8_t *out, size_t cap,
                        size_t *out_len);

/**
 * Strictly decode unpadded base64url (no '=', no whitespace, canonical
 * trailing bits) of @p len bytes into @p out, which holds @p cap bytes.
 * @return CS_ERR_INVALID (bad input or would not fit).
 */
enum cs_err cs_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                             size_t *out_len) CS_WUR;

/** Write @p v big-endian into p[0..3]. */
static inline void cs_put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/** @return the big-endian u32 at p[0..3]. */
static inline uint32_t cs_get_be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

#endif /* CS_CRYPTO_INTERNAL_H */
