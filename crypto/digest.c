#include "crypto_internal.h"

void cs_digest(const void *data, size_t len, uint8_t out[CS_HASH_BYTES])
{
  crypto_generichash(out, CS_HASH_BYTES, data, len, NULL, 0);
}

void cs_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t len, char out[65])
{
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  cs_hmac_sha256(key, key_len, msg, len, mac);
  cs_hex(mac, sizeof mac, out);
  sodium_memzero(mac, sizeof mac);
}

bool cs_bytes_equal(const void *a, const void *b, size_t len)
{
  return sodium_memcmp(a, b, len) == 0;
}
