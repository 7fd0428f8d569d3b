/*
 * Sealing secrets for one record with XChaCha20-Poly1305.
 *
 * Sealed layout: u32 BE key version | 24-byte random nonce | ciphertext+tag.
 * Associated data: "credstore v1\0" || record_id || '\0' || u32 BE version.
 * Record ids contain no NUL, so the encoding is unambiguous; binding the
 * version means relabelling a blob with another key version fails too.
 */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#define SEAL_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

static const char AD_PREFIX[] = "credstore v1"; /* sizeof includes the NUL */

/* Build the associated data for @p record_id and @p version. Caller frees. */
static uint8_t *seal_ad(const char *record_id, uint32_t version, size_t *ad_len)
{
  size_t id_len = strlen(record_id);
  size_t n;
  uint8_t *ad;

  if (id_len > SIZE_MAX - sizeof AD_PREFIX - 1 - 4)
    return NULL;
  n = sizeof AD_PREFIX + id_len + 1 + 4;
  ad = malloc(n);
  if (!ad)
    return NULL;
  memcpy(ad, AD_PREFIX, sizeof AD_PREFIX);
  memcpy(ad + sizeof AD_PREFIX, record_id, id_len);
  ad[sizeof AD_PREFIX + id_len] = '\0';
  cs_put_be32(ad + sizeof AD_PREFIX + id_len + 1, version);
  *ad_len = n;
  return ad;
}

enum cs_err cs_seal(const struct cs_keyring *kr, const char *record_id, const uint8_t *plain,
                    size_t plain_len, uint8_t **out, size_t *out_len)
{
  const uint8_t *key;
  unsigned long long clen = 0;
  uint32_t version;
  uint8_t *ad, *buf;
  size_t ad_len = 0, n;

  if (!kr || !record_id || (!plain && plain_len) || !out || !out_len)
    return CS_ERR_INVALID;
  if (plain_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
      plain_len > SIZE_MAX - CS_SEAL_OVERHEAD)
    return CS_ERR_NOMEM;
  version = cs_keyring_current_version(kr);
  key = cs_kr_data_key(kr, version);
  if (!key)
    return CS_ERR_INTERNAL;
  ad = seal_ad(record_id, version, &ad_len);
  if (!ad)
    return CS_ERR_NOMEM;
  n = plain_len + CS_SEAL_OVERHEAD;
  buf = malloc(n);
  if (!buf) {
    free(ad);
    return CS_ERR_NOMEM;
  }
  cs_put_be32(buf, version);
  randombytes_buf(buf + 4, SEAL_NONCE_BYTES);
  crypto_aead_xchacha20poly1305_ietf_encrypt(buf + 4 + SEAL_NONCE_BYTES, &clen, plain, plain_len,
                                             ad, ad_len, NULL, buf + 4, key);
  free(ad);
  *out = buf;
  *out_len = n;
  return CS_OK;
}

enum cs_err cs_open(const struct cs_keyring *kr, const char *record_id, const uint8_t *sealed,
                    size_t sealed_len, uint8_t **plain, size_t *plain_len)
{
  const uint8_t *key;
  unsigned long long mlen = 0;
  uint32_t version;
  uint8_t *ad, *buf;
  size_t ad_len = 0, n;
  int rc;

  if (!kr || !record_id || !plain || !plain_len)
    return CS_ERR_INVALID;
  if (!sealed || sealed_len < CS_SEAL_OVERHEAD)
    return CS_ERR_CRYPTO;
  version = cs_get_be32(sealed);
  key = cs_kr_data_key(kr, version);
  if (!key)
    return CS_ERR_CRYPTO;
  ad = seal_ad(record_id, version, &ad_len);
  if (!ad)
    return CS_ERR_NOMEM;
  n = sealed_len - CS_SEAL_OVERHEAD;
  buf = malloc(n + 1); /* +1 for the NUL; never malloc(0) */
  if (!buf) {
    free(ad);
    return CS_ERR_NOMEM;
  }
  rc = crypto_aead_xchacha20poly1305_ietf_decrypt(buf, &mlen, NULL, sealed + 4 + SEAL_NONCE_BYTES,
                                                  sealed_len - 4 - SEAL_NONCE_BYTES, ad, ad_len,
                                                  sealed + 4, key);
  free(ad);
  if (rc != 0 || mlen != n) {
    cs_open_free(buf, n + 1);
    return CS_ERR_CRYPTO;
  }
  buf[n] = 0;
  *plain = buf;
  *plain_len = n;
  return CS_OK;
}

uint32_t cs_sealed_version(const uint8_t *sealed, size_t len)
{
  /* Shorter than the overhead can't be a sealed blob at all. */
  if (!sealed || len < CS_SEAL_OVERHEAD)
    return 0;
  return cs_get_be32(sealed);
}

enum cs_err cs_reseal(const struct cs_keyring *kr, const char *record_id, const uint8_t *sealed,
                      size_t len, uint8_t **out, size_t *out_len)
{
  uint32_t ver = cs_sealed_version(sealed, len);
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  enum cs_err e;

  if (ver == 0)
    return CS_ERR_CRYPTO;
  if (ver >= cs_keyring_current_version(kr))
    return CS_ERR_NOT_FOUND;
  if ((e = cs_open(kr, record_id, sealed, len, &plain, &plain_len)))
    return e;
  e = cs_seal(kr, record_id, plain, plain_len, out, out_len);
  cs_open_free(plain, plain_len);
  return e;
}

void cs_open_free(uint8_t *plain, size_t len)
{
  if (!plain)
    return;
  sodium_memzero(plain, len);
  free(plain);
}
