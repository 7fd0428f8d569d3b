/*
 * Master key (key file or Argon2id passphrase) and the keyring it wraps.
 *
 * Keyring export format, version 1 (all integers big-endian):
 *
 *   "CSKR"                 4   magic
 *   0x01                   1   format version
 *   count                  4   number of data keys, 1..CS_KEYRING_MAX_VERSIONS
 *   root nonce            24   XChaCha20-Poly1305 nonce
 *   root ct+tag        32+16   root secret wrapped, AD "credstore root"
 *   count times:
 *     version              4   1, 2, ... count, in order
 *     nonce               24
 *     key ct+tag       32+16   data key wrapped, AD "credstore data key v<version>"
 *
 * Every wrap uses the master key and a fresh random nonce per export. The
 * associated data names what is wrapped, so entries can't be swapped or
 * relabelled. The total length is fixed by count; anything else is
 * malformed (CS_ERR_INVALID) and is refused before any key is touched; an
 * entry that fails to authenticate means a wrong master key or tampering
 * (CS_ERR_MASTER_KEY).
 *
 * The access-key hash key, the JWT key and the audit-chain key are derived
 * from the root secret (crypto_kdf, context "csrootk1", subkey ids 1, 2, 3),
 * so rotating data keys never changes them and a backup restores them. The keyring keeps a copy of
 * the master key so it can re-export itself after cs_keyring_rotate().
 */
#include "crypto_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KR_MAGIC "CSKR"
#define KR_FORMAT 1u
#define KR_HDR_BYTES (4u + 1u + 4u)
#define KR_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define KR_WRAPPED_BYTES (CS_KEY_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define KR_ROOT_BYTES (KR_NONCE_BYTES + KR_WRAPPED_BYTES)
#define KR_ENTRY_BYTES (4u + KR_NONCE_BYTES + KR_WRAPPED_BYTES)
#define KR_AD_MAX 48

/* Default Argon2id cost: 3 passes over 64 MiB (about 0.2 s); between
 * libsodium's INTERACTIVE (2, 64 MiB) and MODERATE (3, 256 MiB), so a
 * daemon start stays quick while an offline guess stays expensive. */
#define KDF_DEFAULT_OPSLIMIT 3u
#define KDF_DEFAULT_MEMLIMIT (64u * 1024u * 1024u)

/* Key files are tiny; anything longer is not a key file. */
#define KEYFILE_MAX 128

_Static_assert(CS_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "AEAD key size");
_Static_assert(CS_KEY_BYTES == crypto_kdf_KEYBYTES, "KDF key size");
_Static_assert(sizeof CS_KDF_ROOT_CONTEXT - 1 == crypto_kdf_CONTEXTBYTES, "KDF context size");
_Static_assert(CS_SALT_BYTES == crypto_pwhash_argon2id_SALTBYTES, "Argon2id salt size");

struct cs_master_key {
  uint8_t k[CS_KEY_BYTES];
};

/* Lives in sodium_malloc memory; only byte arrays, so alignment is moot. */
struct kr_secrets {
  uint8_t mk[CS_KEY_BYTES];
  uint8_t root[CS_KEY_BYTES];
  uint8_t hash_key[CS_KEY_BYTES];
  uint8_t jwt_key[CS_KEY_BYTES];
  uint8_t audit_key[CS_KEY_BYTES];
};

struct cs_keyring {
  struct kr_secrets *s; /* sodium_malloc */
  uint8_t *data_keys;   /* sodium_malloc, count * CS_KEY_BYTES; version v at v-1 */
  uint32_t count;       /* also the current version */
};

/* ------------------------------------------------------------- master key */

static struct cs_master_key *mk_alloc(void) { return sodium_malloc(sizeof(struct cs_master_key)); }

void cs_master_key_free(struct cs_master_key *mk) { sodium_free(mk); /* wipes; NULL ok */ }

void cs_kdf_params_new(struct cs_kdf_params *p)
{
  if (!p)
    return;
  randombytes_buf(p->salt, sizeof p->salt);
  p->opslimit = KDF_DEFAULT_OPSLIMIT;
  p->memlimit = KDF_DEFAULT_MEMLIMIT;
}

enum cs_err cs_master_key_from_passphrase(const char *pass, size_t len,
                                          const struct cs_kdf_params *p, struct cs_master_key **out)
{
  struct cs_master_key *mk;

  if (!pass || len == 0 || !p || !out)
    return CS_ERR_INVALID;
  if (len > crypto_pwhash_argon2id_PASSWD_MAX ||
      p->opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
      p->opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
      p->memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      p->memlimit > crypto_pwhash_argon2id_MEMLIMIT_MAX || p->memlimit > SIZE_MAX)
    return CS_ERR_INVALID;
  mk = mk_alloc();
  if (!mk)
    return CS_ERR_NOMEM;
  /* Only fails when Argon2's memory can't be had (params checked above). */
  if (crypto_pwhash(mk->k, sizeof mk->k, pass, len, p->salt, p->opslimit, (size_t)p->memlimit,
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    cs_master_key_free(mk);
    return CS_ERR_NOMEM;
  }
  *out = mk;
  return CS_OK;
}

static enum cs_err write_all(int fd, const uint8_t *p, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return CS_ERR_IO;
    p += n;
    len -= (size_t)n;
  }
  return CS_OK;
}

enum cs_err cs_master_key_generate_file(const char *path)
{
  uint8_t key[CS_KEY_BYTES];
  enum cs_err e = CS_ERR_IO;
  int fd;

  if (!path)
    return CS_ERR_INVALID;
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return errno == EEXIST ? CS_ERR_EXISTS : CS_ERR_IO;
  randombytes_buf(key, sizeof key);
  /* The umask can only remove bits, but be exact anyway. */
  if (fchmod(fd, 0600) != 0)
    goto out;
  e = write_all(fd, key, sizeof key);
  if (e)
    goto out;
  if (fsync(fd) != 0)
    e = CS_ERR_IO;
out:
  sodium_memzero(key, sizeof key);
  if (close(fd) != 0 && e == CS_OK)
    e = CS_ERR_IO;
  if (e)
    unlink(path); /* we created it (O_EXCL); don't leave a half key behind */
  return e;
}

/*
 * Decode a key file's contents into @p key. The length tells the format:
 * 32 raw bytes, 64 hex chars or 44 base64 chars, each optionally followed
 * by one '\n'. Raw comes first because a raw key may itself end in 0x0a.
 */
static enum cs_err parse_key_text(const uint8_t *buf, size_t n, uint8_t key[CS_KEY_BYTES])
{
  const char *txt = (const char *)buf;
  const char *end = NULL;
  size_t bin_len = 0;

  if (n == CS_KEY_BYTES || (n == CS_KEY_BYTES + 1 && buf[CS_KEY_BYTES] == '\n')) {
    memcpy(key, buf, CS_KEY_BYTES);
    return CS_OK;
  }
  if (n > 0 && buf[n - 1] == '\n')
    n--;
  if (n == 2 * CS_KEY_BYTES) {
    if (sodium_hex2bin(key, CS_KEY_BYTES, txt, n, NULL, &bin_len, &end) == 0 && end == txt + n &&
        bin_len == CS_KEY_BYTES)
      return CS_OK;
  } else if (n == sodium_base64_ENCODED_LEN(CS_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL) - 1) {
    if (cs_b64_decode_into(txt, n, sodium_base64_VARIANT_ORIGINAL, key, CS_KEY_BYTES, &bin_len) &&
        bin_len == CS_KEY_BYTES)
      return CS_OK;
  }
  sodium_memzero(key, CS_KEY_BYTES);
  return CS_ERR_INVALID;
}

enum cs_err cs_master_key_from_file(const char *path, struct cs_master_key **out)
{
  uint8_t buf[KEYFILE_MAX + 1];
  struct cs_master_key *mk = NULL;
  struct stat st;
  enum cs_err e = CS_ERR_IO;
  size_t n = 0;
  int fd;

  if (!path || !out)
    return CS_ERR_INVALID;
  /* O_NONBLOCK: a FIFO must not hang us; it is refused below as not regular. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return CS_ERR_IO;
  if (fstat(fd, &st) != 0)
    goto out;
  if (!S_ISREG(st.st_mode)) {
    e = CS_ERR_INVALID;
    goto out;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    CS_LOG(CS_LOG_WARN, "master key file is accessible by group or others; chmod 600 it");
  /* Read one byte past the limit so an oversized file is noticed. */
  while (n < sizeof buf) {
    ssize_t r = read(fd, buf + n, sizeof buf - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      goto out;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > KEYFILE_MAX) {
    e = CS_ERR_INVALID;
    goto out;
  }
  mk = mk_alloc();
  if (!mk) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  e = parse_key_text(buf, n, mk->k);
  if (e)
    goto out;
  *out = mk;
  mk = NULL;
out:
  sodium_memzero(buf, sizeof buf);
  cs_master_key_free(mk);
  close(fd);
  return e;
}

/* ----------------------------------------------------------------- keyring */

const uint8_t *cs_kr_data_key(const struct cs_keyring *kr, uint32_t version)
{
  if (!kr || version == 0 || version > kr->count)
    return NULL;
  return kr->data_keys + (size_t)(version - 1) * CS_KEY_BYTES;
}

const uint8_t *cs_kr_hash_key(const struct cs_keyring *kr) { return kr->s->hash_key; }

const uint8_t *cs_kr_jwt_key(const struct cs_keyring *kr) { return kr->s->jwt_key; }

const uint8_t *cs_kr_audit_key(const struct cs_keyring *kr) { return kr->s->audit_key; }

uint32_t cs_keyring_current_version(const struct cs_keyring *kr) { return kr ? kr->count : 0; }

void cs_keyring_free(struct cs_keyring *kr)
{
  if (!kr)
    return;
  sodium_free(kr->s); /* sodium_free wipes */
  sodium_free(kr->data_keys);
  free(kr);
}

/* A keyring with room for @p count data keys and a copy of @p mk. */
static enum cs_err kr_alloc(const struct cs_master_key *mk, uint32_t count, struct cs_keyring **out)
{
  struct cs_keyring *kr = calloc(1, sizeof *kr);

  if (!kr)
    return CS_ERR_NOMEM;
  kr->s = sodium_malloc(sizeof *kr->s);
  kr->data_keys = sodium_malloc((size_t)count * CS_KEY_BYTES);
  if (!kr->s || !kr->data_keys) {
    cs_keyring_free(kr);
    return CS_ERR_NOMEM;
  }
  memcpy(kr->s->mk, mk->k, CS_KEY_BYTES);
  kr->count = count;
  *out = kr;
  return CS_OK;
}

/* Derive the service keys, then make all key memory read-only: nothing
 * writes it again until sodium_free (rotate swaps in a new data-key block). */
static void kr_finish(struct cs_keyring *kr)
{
  crypto_kdf_derive_from_key(kr->s->hash_key, CS_KEY_BYTES, CS_KDF_ID_HASH_KEY, CS_KDF_ROOT_CONTEXT,
                             kr->s->root);
  crypto_kdf_derive_from_key(kr->s->jwt_key, CS_KEY_BYTES, CS_KDF_ID_JWT_KEY, CS_KDF_ROOT_CONTEXT,
                             kr->s->root);
  crypto_kdf_derive_from_key(kr->s->audit_key, CS_KEY_BYTES, CS_KDF_ID_AUDIT_KEY,
                             CS_KDF_ROOT_CONTEXT, kr->s->root);
  sodium_mprotect_readonly(kr->s);
  sodium_mprotect_readonly(kr->data_keys);
}

static size_t ad_root(char ad[KR_AD_MAX])
{
  static const char s[] = "credstore root";
  memcpy(ad, s, sizeof s - 1);
  return sizeof s - 1;
}

static size_t ad_data_key(char ad[KR_AD_MAX], uint32_t version)
{
  int n = snprintf(ad, KR_AD_MAX, "credstore data key v%u", (unsigned)version);
  return n > 0 && n < KR_AD_MAX ? (size_t)n : 0;
}

enum cs_err cs_keyring_create(const struct cs_master_key *mk, struct cs_keyring **out)
{
  struct cs_keyring *kr = NULL;
  enum cs_err e;

  if (!mk || !out)
    return CS_ERR_INVALID;
  e = kr_alloc(mk, 1, &kr);
  if (e)
    return e;
  randombytes_buf(kr->s->root, CS_KEY_BYTES);
  randombytes_buf(kr->data_keys, CS_KEY_BYTES);
  kr_finish(kr);
  *out = kr;
  return CS_OK;
}

/* Wrap @p key under the master key into nonce || ct+tag at @p dst. */
static void wrap(const uint8_t mk[CS_KEY_BYTES], const uint8_t key[CS_KEY_BYTES], const char *ad,
                 size_t ad_len, uint8_t *dst)
{
  unsigned long long clen = 0;

  randombytes_buf(dst, KR_NONCE_BYTES);
  crypto_aead_xchacha20poly1305_ietf_encrypt(dst + KR_NONCE_BYTES, &clen, key, CS_KEY_BYTES,
                                             (const unsigned char *)ad, ad_len, NULL, dst, mk);
}

/* Unwrap nonce || ct+tag at @p src into @p key. @return false if it fails to authenticate. */
static bool unwrap(const uint8_t mk[CS_KEY_BYTES], const uint8_t *src, const char *ad,
                   size_t ad_len, uint8_t key[CS_KEY_BYTES])
{
  unsigned long long mlen = 0;

  if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &mlen, NULL, src + KR_NONCE_BYTES,
                                                 KR_WRAPPED_BYTES, (const unsigned char *)ad,
                                                 ad_len, src, mk) != 0 ||
      mlen != CS_KEY_BYTES) {
    sodium_memzero(key, CS_KEY_BYTES);
    return false;
  }
  return true;
}

static size_t kr_blob_len(uint32_t count)
{
  return KR_HDR_BYTES + KR_ROOT_BYTES + (size_t)count * KR_ENTRY_BYTES;
}

enum cs_err cs_keyring_export(const struct cs_keyring *kr, uint8_t **blob, size_t *len)
{
  char ad[KR_AD_MAX];
  size_t n, ad_len;
  uint8_t *b, *p;

  if (!kr || !blob || !len)
    return CS_ERR_INVALID;
  n = kr_blob_len(kr->count);
  b = malloc(n);
  if (!b)
    return CS_ERR_NOMEM;
  memcpy(b, KR_MAGIC, 4);
  b[4] = KR_FORMAT;
  cs_put_be32(b + 5, kr->count);
  p = b + KR_HDR_BYTES;
  ad_len = ad_root(ad);
  wrap(kr->s->mk, kr->s->root, ad, ad_len, p);
  p += KR_ROOT_BYTES;
  for (uint32_t v = 1; v <= kr->count; v++) {
    cs_put_be32(p, v);
    ad_len = ad_data_key(ad, v);
    wrap(kr->s->mk, cs_kr_data_key(kr, v), ad, ad_len, p + 4);
    p += KR_ENTRY_BYTES;
  }
  *blob = b;
  *len = n;
  return CS_OK;
}

/* Structural checks only; nothing is decrypted. @return the key count or 0. */
static uint32_t kr_blob_check(const uint8_t *blob, size_t len)
{
  uint32_t count;
  const uint8_t *p;

  if (len < KR_HDR_BYTES || memcmp(blob, KR_MAGIC, 4) != 0 || blob[4] != KR_FORMAT)
    return 0;
  count = cs_get_be32(blob + 5);
  if (count == 0 || count > CS_KEYRING_MAX_VERSIONS || len != kr_blob_len(count))
    return 0;
  p = blob + KR_HDR_BYTES + KR_ROOT_BYTES;
  for (uint32_t v = 1; v <= count; v++, p += KR_ENTRY_BYTES)
    if (cs_get_be32(p) != v)
      return 0;
  return count;
}

enum cs_err cs_keyring_load(const struct cs_master_key *mk, const uint8_t *blob, size_t len,
                            struct cs_keyring **out)
{
  struct cs_keyring *kr = NULL;
  char ad[KR_AD_MAX];
  const uint8_t *p;
  uint32_t count;
  size_t ad_len;
  enum cs_err e;

  if (!mk || !out || (!blob && len))
    return CS_ERR_INVALID;
  count = blob ? kr_blob_check(blob, len) : 0;
  if (count == 0)
    return CS_ERR_INVALID;
  e = kr_alloc(mk, count, &kr);
  if (e)
    return e;
  p = blob + KR_HDR_BYTES;
  ad_len = ad_root(ad);
  if (!unwrap(mk->k, p, ad, ad_len, kr->s->root)) {
    e = CS_ERR_MASTER_KEY;
    goto out;
  }
  p += KR_ROOT_BYTES;
  for (uint32_t v = 1; v <= count; v++, p += KR_ENTRY_BYTES) {
    ad_len = ad_data_key(ad, v);
    if (!unwrap(mk->k, p + 4, ad, ad_len, kr->data_keys + (size_t)(v - 1) * CS_KEY_BYTES)) {
      e = CS_ERR_MASTER_KEY;
      goto out;
    }
  }
  kr_finish(kr);
  *out = kr;
  kr = NULL;
out:
  cs_keyring_free(kr); /* wipes whatever was unwrapped before the failure */
  return e;
}

enum cs_err cs_keyring_reload(const struct cs_keyring *kr, const uint8_t *blob, size_t len,
                              struct cs_keyring **out)
{
  struct cs_master_key *mk;
  enum cs_err e;

  if (!kr)
    return CS_ERR_INVALID;
  if (!(mk = mk_alloc()))
    return CS_ERR_NOMEM;
  memcpy(mk->k, kr->s->mk, CS_KEY_BYTES);
  e = cs_keyring_load(mk, blob, len, out);
  cs_master_key_free(mk);
  return e;
}

enum cs_err cs_keyring_rotate(struct cs_keyring *kr)
{
  uint8_t *keys;

  if (!kr)
    return CS_ERR_INVALID;
  if (kr->count >= CS_KEYRING_MAX_VERSIONS)
    return CS_ERR_INVALID;
  keys = sodium_malloc((size_t)(kr->count + 1) * CS_KEY_BYTES);
  if (!keys)
    return CS_ERR_NOMEM;
  memcpy(keys, kr->data_keys, (size_t)kr->count * CS_KEY_BYTES);
  randombytes_buf(keys + (size_t)kr->count * CS_KEY_BYTES, CS_KEY_BYTES);
  sodium_mprotect_readonly(keys);
  sodium_free(kr->data_keys);
  kr->data_keys = keys;
  kr->count++;
  return CS_OK;
}
