/*
 * Stored key material read back: the first byte picks what the rest is.
 *   0 (mod 3): a keyring blob, loaded with the fixed master key; one that
 *              loads must export and load again to the same version count.
 *   1:         a sealed blob, opened for record CS_FUZZ_RECORD_ID with the
 *              fixed keyring (fuzz_seedgen seals the corpus's valid ones).
 *   2:         a record id (up to the first NUL) and a plaintext (after it)
 *              sealed and opened again: same bytes back, and no other
 *              record id opens it.
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  (void)cs_fuzz_keyring();
  return 0;
}

static void load(const uint8_t *blob, size_t len)
{
  static char unwritten; /* *out must stay this on failure */
  const struct cs_master_key *mk = cs_fuzz_master_key();
  struct cs_keyring *kr = (struct cs_keyring *)&unwritten, *kr2 = NULL;
  uint8_t *out = NULL;
  size_t out_len = 0;
  enum cs_err e = cs_keyring_load(mk, blob, len, &kr);

  if (e != CS_OK) {
    if (kr != (struct cs_keyring *)&unwritten)
      cs_fuzz_fail("cs_keyring_load wrote *out on failure");
    if (e != CS_ERR_INVALID && e != CS_ERR_MASTER_KEY && e != CS_ERR_NOMEM)
      cs_fuzz_fail("cs_keyring_load returned %s", cs_err_code(e));
    return;
  }
  if (cs_keyring_export(kr, &out, &out_len) != CS_OK)
    cs_fuzz_fail("cs_keyring_export failed");
  if (out_len != len)
    cs_fuzz_fail("a keyring of %zu bytes exports as %zu", len, out_len);
  if (cs_keyring_load(mk, out, out_len, &kr2) != CS_OK ||
      cs_keyring_current_version(kr2) != cs_keyring_current_version(kr))
    cs_fuzz_fail("an exported keyring does not load back");
  free(out);
  cs_keyring_free(kr2);
  cs_keyring_free(kr);
}

static void open_blob(const uint8_t *sealed, size_t len)
{
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  uint32_t v = cs_sealed_version(sealed, len);
  enum cs_err e = cs_open(cs_fuzz_keyring(), CS_FUZZ_RECORD_ID, sealed, len, &plain, &plain_len);

  if (e != CS_OK) {
    if (plain)
      cs_fuzz_fail("cs_open wrote *plain on failure");
    if (e != CS_ERR_CRYPTO && e != CS_ERR_NOMEM)
      cs_fuzz_fail("cs_open returned %s", cs_err_code(e));
    return;
  }
  if (v == 0 || v > CS_FUZZ_KEY_VERSIONS)
    cs_fuzz_fail("opened a blob naming key version %u", (unsigned)v);
  if (plain[plain_len] != '\0')
    cs_fuzz_fail("opened plaintext is not NUL-terminated");
  cs_open_free(plain, plain_len);
}

static void round_trip(const uint8_t *data, size_t size)
{
  const struct cs_keyring *kr = cs_fuzz_keyring();
  const uint8_t *nul = memchr(data, '\0', size);
  size_t id_len = nul ? (size_t)(nul - data) : size;
  const uint8_t *pt = nul ? nul + 1 : data + size;
  size_t pt_len = (size_t)(data + size - pt);
  char *id = cs_fuzz_cstr(data, id_len);
  uint8_t *sealed = NULL, *plain = NULL;
  size_t sealed_len = 0, plain_len = 0;

  if (cs_seal(kr, id, pt, pt_len, &sealed, &sealed_len) != CS_OK)
    cs_fuzz_fail("cs_seal failed");
  if (cs_sealed_version(sealed, sealed_len) != cs_keyring_current_version(kr))
    cs_fuzz_fail("a new seal does not use the current key version");
  if (cs_open(kr, id, sealed, sealed_len, &plain, &plain_len) != CS_OK || plain_len != pt_len ||
      (pt_len && memcmp(plain, pt, pt_len) != 0))
    cs_fuzz_fail("a sealed blob does not open to its plaintext");
  cs_open_free(plain, plain_len);
  plain = NULL;
  /* Bound to the record: a one-byte-longer id must not open it. */
  char *other = malloc(id_len + 2);
  if (!other)
    cs_fuzz_fail("out of memory");
  memcpy(other, id, id_len);
  other[id_len] = 'x';
  other[id_len + 1] = '\0';
  if (cs_open(kr, other, sealed, sealed_len, &plain, &plain_len) != CS_ERR_CRYPTO)
    cs_fuzz_fail("a sealed blob opened under another record id");
  free(other);
  free(sealed);
  free(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  switch (data[0] % 3) {
  case 0:
    load(data + 1, size - 1);
    break;
  case 1:
    open_blob(data + 1, size - 1);
    break;
  default:
    round_trip(data + 1, size - 1);
    break;
  }
  return 0;
}
