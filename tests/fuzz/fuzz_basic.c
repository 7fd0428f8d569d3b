/*
 * An Authorization: Basic header value, through the server's own parser
 * (cs_auth_basic_split in server/api/auth.c), then the hash the core's
 * cs_keys_check_secret takes of the secret (capped at CS_KEY_SECRET_MAX). Promises checked: outputs
 * are written only on success, and then id and secret lie inside the buffer, hold no NUL, and
 * "id:secret" encodes back to exactly the input (the decoder is strict).
 */
#include "auth.h"
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  (void)cs_fuzz_keyring();
  return 0;
}

static void basic(const char *b64)
{
  char buf[CS_BASIC_MAX + 1];
  const char *id = NULL, *secret = NULL;
  uint8_t h[CS_HASH_BYTES];

  enum cs_err e = cs_auth_basic_split(b64, buf, &id, &secret);
  if (e) {
    if (e != CS_ERR_BAD_CREDENTIALS || id || secret)
      cs_fuzz_fail("refusal %d wrote outputs or used another code", (int)e);
    return;
  }
  size_t ilen = strlen(id), slen = strlen(secret);
  if (id != buf || secret != buf + ilen + 1 || ilen + 1 + slen > CS_BASIC_MAX)
    cs_fuzz_fail("id/secret outside the buffer (%zu, %zu)", ilen, slen);
  buf[ilen] = ':';
  char *again = cs_base64_encode((const uint8_t *)buf, ilen + 1 + slen);
  while (*b64 == ' ')
    b64++;
  if (!again || strcmp(again, b64) != 0)
    cs_fuzz_fail("\"id:secret\" does not encode back to the input \"%s\"", b64);
  free(again);
  /* As cs_keys_check_secret (server/core/keys.c) hashes it: capped. */
  cs_secret_hash(cs_fuzz_keyring(), buf + ilen + 1,
                 slen > CS_KEY_SECRET_MAX ? CS_KEY_SECRET_MAX : slen, h);
  cs_memzero(buf, sizeof buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *hdr = cs_fuzz_cstr(data, size); /* a header is a C string: cut at a NUL */

  if (strncasecmp(hdr, "Basic ", 6) == 0)
    basic(hdr + 6);
  else
    basic(hdr);
  free(hdr);
  return 0;
}
