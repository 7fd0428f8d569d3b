#include "crypto.h"

#include <sodium.h>

void cs_digest(const void *data, size_t len, uint8_t out[CS_HASH_BYTES])
{
  crypto_generichash(out, CS_HASH_BYTES, data, len, NULL, 0);
}
