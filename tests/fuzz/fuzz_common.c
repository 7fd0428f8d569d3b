/* Shared set-up of the harnesses: see fuzz_common.h. */
#include "fuzz_common.h"

#include <sodium.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------- deterministic random */

/* Every draw is ChaCha20 keyed by a fixed seed with a draw counter mixed
 * in: reproducible across processes, which fuzzing needs (a crash must
 * replay) and which lets fuzz_seedgen mint tokens the harnesses accept. */
static uint64_t draws;

static void det_buf(void *const buf, const size_t size)
{
  static const char base[] = "credstore fuzz: not a random key";
  unsigned char seed[randombytes_SEEDBYTES];
  uint64_t n = draws++;

  _Static_assert(sizeof base - 1 == randombytes_SEEDBYTES, "seed size");
  memcpy(seed, base, sizeof seed);
  for (size_t i = 0; i < sizeof n; i++)
    seed[i] ^= (unsigned char)(n >> (8 * i));
  randombytes_buf_deterministic(buf, size, seed);
}

static uint32_t det_random(void)
{
  uint32_t v;
  det_buf(&v, sizeof v);
  return v;
}

static const char *det_name(void) { return "credstore-fuzz-deterministic"; }

static struct randombytes_implementation det_impl = {
    .implementation_name = det_name,
    .random = det_random,
    .buf = det_buf,
};

void cs_fuzz_init(void)
{
  static int done;

  if (done)
    return;
  done = 1;
  cs_log_min_level = CS_LOG_OFF;
  if (randombytes_set_implementation(&det_impl) != 0 || cs_crypto_init() != CS_OK)
    cs_fuzz_fail("cannot start libsodium");
}

/* ------------------------------------------------------- fixed keys */

const struct cs_master_key *cs_fuzz_master_key(void)
{
  static struct cs_master_key *mk;
  static const uint8_t key[CS_KEY_BYTES] = "fuzzing master key, 32 bytes ok";
  char path[] = "/tmp/cs-fuzz-mk-XXXXXX";
  int fd;

  if (mk)
    return mk;
  cs_fuzz_init();
  /* Through a key file on purpose: the same path the daemon loads keys by. */
  fd = mkstemp(path);
  if (fd < 0 || write(fd, key, sizeof key) != (ssize_t)sizeof key || close(fd) != 0)
    cs_fuzz_fail("cannot write %s", path);
  if (cs_master_key_from_file(path, &mk) != CS_OK)
    cs_fuzz_fail("cs_master_key_from_file failed");
  unlink(path);
  return mk;
}

const struct cs_keyring *cs_fuzz_keyring(void)
{
  static struct cs_keyring *kr;
  const struct cs_master_key *mk;

  if (kr)
    return kr;
  mk = cs_fuzz_master_key();
  if (cs_keyring_create(mk, &kr) != CS_OK)
    cs_fuzz_fail("cs_keyring_create failed");
  while (cs_keyring_current_version(kr) < CS_FUZZ_KEY_VERSIONS)
    if (cs_keyring_rotate(kr) != CS_OK)
      cs_fuzz_fail("cs_keyring_rotate failed");
  return kr;
}

/* ------------------------------------------------------------ helpers */

char *cs_fuzz_cstr(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);

  if (!s)
    cs_fuzz_fail("out of memory");
  if (size)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

void cs_fuzz_fail(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, "FUZZ INVARIANT BROKEN: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

void cs_fuzz_check_terminated(const char *what, const char *s, size_t cap)
{
  if (strnlen(s, cap) >= cap)
    cs_fuzz_fail("%s is not NUL-terminated within %zu bytes", what, cap);
}
