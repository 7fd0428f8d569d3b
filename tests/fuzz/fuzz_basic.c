/*
 * An Authorization: Basic header. The server's decoding (auth_basic in
 * server/auth.c) is static, so its steps are reproduced here with the same
 * bounds, on the same public functions: MHD hands the header over as a C
 * string, leading spaces are skipped, the base64 is refused past
 * BASIC_MAX*4/3+4 characters, decoded with cs_base64_decode, refused past
 * BASIC_MAX bytes or with a NUL inside, split at the first ':', and the
 * id and secret bounds of cs_auth_key_secret are applied before the secret
 * is hashed. Keep in step with server/auth.c.
 */
#include "fuzz_common.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BASIC_MAX 512 /* server/auth.c: decoded "id:secret" */
#define SECRET_MAX 128 /* server/auth.c */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  (void)cs_fuzz_keyring();
  return 0;
}

/* auth_basic on the header value after "Basic ". */
static void basic(const char *b64)
{
  char buf[BASIC_MAX + 1];
  uint8_t *raw = NULL;
  size_t len = 0, slen;
  uint8_t h[CS_HASH_BYTES];

  while (*b64 == ' ')
    b64++;
  if (strlen(b64) > BASIC_MAX * 4 / 3 + 4)
    return;
  if (cs_base64_decode(b64, strlen(b64), &raw, &len) != CS_OK)
    return;
  if (len <= BASIC_MAX) {
    memcpy(buf, raw, len);
    buf[len] = '\0';
  }
  /* The round trip holds for whatever decoded. */
  char *again = cs_base64_encode(raw, len);
  if (!again || strcmp(again, b64) != 0)
    cs_fuzz_fail("base64 does not round-trip: \"%s\" -> \"%s\"", b64, again ? again : "(null)");
  free(again);
  cs_open_free(raw, len);
  if (len > BASIC_MAX)
    return;
  char *colon = strchr(buf, ':');
  if (!colon || strlen(buf) != len)
    return;
  *colon = '\0';
  slen = strlen(colon + 1);
  /* cs_auth_key_secret: hash first (timing), then refuse oversize ids and secrets. */
  cs_secret_hash(cs_fuzz_keyring(), colon + 1, slen > SECRET_MAX ? SECRET_MAX : slen, h);
  if (strlen(buf) <= CS_KEY_ID_MAX && slen <= SECRET_MAX)
    (void)cs_id_valid(buf, strlen(buf)); /* the store lookup's key */
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
