/*
 * Library start-up, randomness, hex/base64 codecs and the hashes that are
 * not tied to sealing: access-key secret hashes and the audit chain.
 */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(CS_HASH_BYTES == crypto_generichash_BYTES, "BLAKE2b-256 output");
_Static_assert(CS_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX, "hash key fits BLAKE2b");

enum cs_err cs_crypto_init(void)
{
  /* 1 means "already initialised", which is fine. */
  if (sodium_init() < 0)
    return CS_ERR_INTERNAL;
  return CS_OK;
}

void cs_random_bytes(void *buf, size_t len)
{
  if (buf && len)
    randombytes_buf(buf, len);
}

void cs_hex(const uint8_t *in, size_t len, char *out)
{
  if (!out)
    return;
  if (!in || len == 0) {
    out[0] = '\0';
    return;
  }
  sodium_bin2hex(out, 2 * len + 1, in, len);
}

enum cs_err cs_unhex(const char *hex, size_t hexlen, uint8_t *out, size_t max, size_t *len)
{
  const char *end = NULL;
  size_t n = 0;

  if (hexlen % 2 || hexlen / 2 > max)
    return CS_ERR_INVALID;
  if (sodium_hex2bin(out, max, hex, hexlen, NULL, &n, &end) != 0 || end != hex + hexlen)
    return CS_ERR_INVALID;
  *len = n;
  return CS_OK;
}

void cs_random_hex(char *out, size_t nbytes)
{
  uint8_t chunk[32];

  if (!out)
    return;
  out[0] = '\0';
  /* Chunked so any nbytes works without a variable-length array. */
  for (size_t done = 0; done < nbytes;) {
    size_t n = nbytes - done < sizeof chunk ? nbytes - done : sizeof chunk;
    randombytes_buf(chunk, n);
    sodium_bin2hex(out + 2 * done, 2 * n + 1, chunk, n);
    done += n;
  }
  /* Random ids may become secrets (access-key secrets), so wipe. */
  sodium_memzero(chunk, sizeof chunk);
}

static char *b64_encode(const uint8_t *in, size_t len, int variant)
{
  size_t cap;
  char *s;

  if (len > (SIZE_MAX / 4) * 3 - 3)
    return NULL;
  cap = sodium_base64_encoded_len(len, variant);
  s = malloc(cap);
  if (!s)
    return NULL;
  if (len == 0) {
    s[0] = '\0';
    return s;
  }
  sodium_bin2base64(s, cap, in, len, variant);
  return s;
}

char *cs_base64_encode(const uint8_t *in, size_t len)
{
  return b64_encode(in, len, sodium_base64_VARIANT_ORIGINAL);
}

char *cs_b64url_encode(const uint8_t *in, size_t len)
{
  return b64_encode(in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/*
 * libsodium stops at the first character it can't use and still reports
 * success, so "the whole input was consumed" is checked here; it already
 * rejects bad padding and non-canonical trailing bits.
 */
bool cs_b64_decode_into(const char *in, size_t len, int variant, uint8_t *out, size_t cap,
                        size_t *out_len)
{
  const char *end = NULL;
  size_t n = 0;

  if (len == 0) {
    *out_len = 0;
    return true;
  }
  /* libsodium 1.0.18 reads every byte >= 0x80 as '/' (or '_'), so one
   * token or key would have many accepted spellings (found by fuzz_jwt). */
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)in[i] >= 0x80)
      return false;
  if (sodium_base642bin(out, cap, in, len, NULL, &n, &end, variant) != 0 || end != in + len)
    return false;
  *out_len = n;
  return true;
}

enum cs_err cs_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
  size_t n = 0;

  if (!in || !out || !out_len)
    return CS_ERR_INVALID;
  if (!cs_b64_decode_into(in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING, out, cap, &n)) {
    sodium_memzero(out, cap);
    return CS_ERR_INVALID;
  }
  *out_len = n;
  return CS_OK;
}

enum cs_err cs_base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
  size_t cap, n = 0;
  uint8_t *buf;

  if (!in || !out || !out_len)
    return CS_ERR_INVALID;
  if (len % 4 != 0)
    return CS_ERR_INVALID;
  cap = len / 4 * 3;
  buf = malloc(cap + 1); /* +1: room for a NUL, and never malloc(0) */
  if (!buf)
    return CS_ERR_NOMEM;
  if (!cs_b64_decode_into(in, len, sodium_base64_VARIANT_ORIGINAL, buf, cap, &n)) {
    sodium_memzero(buf, cap + 1);
    free(buf);
    return CS_ERR_INVALID;
  }
  buf[n] = 0;
  *out = buf;
  *out_len = n;
  return CS_OK;
}

void cs_secret_hash(const struct cs_keyring *kr, const char *secret, size_t len,
                    uint8_t out[CS_HASH_BYTES])
{
  crypto_generichash(out, CS_HASH_BYTES, (const unsigned char *)secret, secret ? len : 0,
                     cs_kr_hash_key(kr), CS_KEY_BYTES);
}

bool cs_hash_equal(const uint8_t a[CS_HASH_BYTES], const uint8_t b[CS_HASH_BYTES])
{
  return sodium_memcmp(a, b, CS_HASH_BYTES) == 0;
}

void cs_chain_hash(const struct cs_keyring *kr, const uint8_t prev[CS_HASH_BYTES],
                   const void *entry, size_t len, uint8_t out[CS_HASH_BYTES])
{
  crypto_generichash_state st;

  crypto_generichash_init(&st, cs_kr_audit_key(kr), CS_KEY_BYTES, CS_HASH_BYTES);
  crypto_generichash_update(&st, prev, CS_HASH_BYTES);
  if (entry && len)
    crypto_generichash_update(&st, entry, len);
  crypto_generichash_final(&st, out, CS_HASH_BYTES);
  sodium_memzero(&st, sizeof st);
}
