/*
 * Unit tests for crypto/: known answers (computed independently with
 * Python's hashlib/hmac/base64), round trips, and tamper tests.
 *
 * A "fixed" keyring is built here from the documented export format with
 * known master key, root secret and data keys, so the derived keys, the
 * sealed layout and minted tokens can be checked against outside values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto.h"
#include "crypto_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

/* Master key 00..1f, root secret 40..5f, data key v<n> = (0x60 + n) repeated. */
static uint8_t fix_mk[32], fix_root[32];
/* From the root via BLAKE2b(key=root, salt=LE64(id), person="csrootk1"). */
static const char FIX_JWT_KEY_HEX[] =
    "dff1c6cc14f3cc4aace6029d0279bc303bec74768844b70b49a5854e00d66389";
static uint8_t fix_jwt_key[32];

/* ---------------------------------------------------------------- helpers */

static void from_hex(const char *hex, uint8_t *out, size_t n)
{
  size_t got = 0;
  assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &got, NULL), 0);
  assert_int_equal(got, n);
}

static void path_in(char *out, size_t cap, const char *name)
{
  int n = snprintf(out, cap, "%s/%s", tmpdir, name);
  assert_true(n > 0 && (size_t)n < cap);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
}

/* A master key holding exactly @p k, via a raw key file. */
static struct cs_master_key *mk_from_bytes(const uint8_t k[32])
{
  struct cs_master_key *mk = NULL;
  char path[256];

  path_in(path, sizeof path, "mk.raw");
  write_file(path, k, 32, 0600);
  assert_int_equal(cs_master_key_from_file(path, &mk), CS_OK);
  assert_non_null(mk);
  unlink(path);
  return mk;
}

static void test_wrap(const uint8_t mk[32], const uint8_t key[32], const char *ad, uint8_t *dst,
                      uint8_t nonce_byte)
{
  unsigned long long clen = 0;
  memset(dst, nonce_byte, 24);
  assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(
                       dst + 24, &clen, key, 32, (const uint8_t *)ad, strlen(ad), NULL, dst, mk),
                   0);
  assert_int_equal(clen, 48);
}

/* A keyring blob in the documented v1 format, written independently of keyring.c. */
static uint8_t *build_blob(const uint8_t mk[32], const uint8_t root[32], uint8_t dks[][32],
                           uint32_t count, size_t *len)
{
  size_t n = 9 + 72 + (size_t)count * 76;
  uint8_t *b = malloc(n), *p;
  char ad[64];

  assert_non_null(b);
  memcpy(b, "CSKR", 4);
  b[4] = 1;
  cs_put_be32(b + 5, count);
  test_wrap(mk, root, "credstore root", b + 9, 0x11);
  p = b + 81;
  for (uint32_t v = 1; v <= count; v++, p += 76) {
    cs_put_be32(p, v);
    snprintf(ad, sizeof ad, "credstore data key v%u", (unsigned)v);
    test_wrap(mk, dks[v - 1], ad, p + 4, (uint8_t)(0x20 + v));
  }
  *len = n;
  return b;
}

/* Load a fixed keyring whose data keys are @p dks (count of them). */
static struct cs_keyring *fixed_keyring_with(uint8_t dks[][32], uint32_t count)
{
  struct cs_master_key *mk = mk_from_bytes(fix_mk);
  struct cs_keyring *kr = NULL;
  size_t len = 0;
  uint8_t *blob = build_blob(fix_mk, fix_root, dks, count, &len);

  assert_int_equal(cs_keyring_load(mk, blob, len, &kr), CS_OK);
  assert_int_equal(cs_keyring_current_version(kr), count);
  free(blob);
  cs_master_key_free(mk);
  return kr;
}

static struct cs_keyring *fixed_keyring(void)
{
  uint8_t dks[2][32];
  memset(dks[0], 0x61, 32);
  memset(dks[1], 0x62, 32);
  return fixed_keyring_with(dks, 2);
}

static struct cs_keyring *new_keyring(struct cs_master_key **mk_out)
{
  uint8_t k[32];
  struct cs_master_key *mk;
  struct cs_keyring *kr = NULL;

  randombytes_buf(k, sizeof k);
  mk = mk_from_bytes(k);
  assert_int_equal(cs_keyring_create(mk, &kr), CS_OK);
  assert_int_equal(cs_keyring_current_version(kr), 1);
  if (mk_out)
    *mk_out = mk;
  else
    cs_master_key_free(mk);
  return kr;
}

static int group_setup(void **state)
{
  char tmpl[] = "/tmp/cs-test-crypto-XXXXXX";
  (void)state;
  if (cs_crypto_init() != CS_OK || !mkdtemp(tmpl))
    return -1;
  memcpy(tmpdir, tmpl, sizeof tmpl);
  for (int i = 0; i < 32; i++) {
    fix_mk[i] = (uint8_t)i;
    fix_root[i] = (uint8_t)(0x40 + i);
  }
  if (sodium_hex2bin(fix_jwt_key, 32, FIX_JWT_KEY_HEX, 64, NULL, NULL, NULL) != 0)
    return -1;
  cs_log_min_level = CS_LOG_ERROR;
  return 0;
}

static int group_teardown(void **state)
{
  (void)state;
  return rmdir(tmpdir);
}

/* -------------------------------------------------------- known answers */

static void test_hmac_rfc4231(void **state)
{
  /* RFC 4231 test cases 1, 2 and 6 (key longer than the block). */
  static const struct {
    const char *key_hex, *msg, *mac_hex;
  } v[] = {
      {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"4a656665", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {NULL, "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
  };
  uint8_t key[131], mac[32], want[32];
  char hex[65];
  (void)state;

  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t klen = 131;
    if (v[i].key_hex) {
      klen = strlen(v[i].key_hex) / 2;
      from_hex(v[i].key_hex, key, klen);
    } else
      memset(key, 0xaa, klen);
    from_hex(v[i].mac_hex, want, 32);
    cs_hmac_sha256(key, klen, v[i].msg, strlen(v[i].msg), mac);
    assert_memory_equal(mac, want, 32);
    cs_hmac_sha256_hex(key, klen, v[i].msg, strlen(v[i].msg), hex);
    assert_string_equal(hex, v[i].mac_hex);
  }
}

static void test_digest_kat(void **state)
{
  uint8_t out[32], want[32];
  (void)state;

  /* BLAKE2b-256 of "" and "abc" (RFC 7693 / reference implementation). */
  cs_digest("", 0, out);
  from_hex("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", want, 32);
  assert_memory_equal(out, want, 32);
  cs_digest("abc", 3, out);
  from_hex("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319", want, 32);
  assert_memory_equal(out, want, 32);
}

/* Python: hashlib.blake2b(prev + entry, digest_size=32, key=audit_key), with
 * audit_key = blake2b(key=root, salt=LE64(3), person="csrootk1") of the fixed root. */
static const char FIX_AUDIT_KEY_HEX[] =
    "073b89afe76da5d4a16f14d1d9b18dc2292f178274917e662eadec34de38beb9";

static void test_chain_hash_kat(void **state)
{
  struct cs_keyring *kr = fixed_keyring(), *other = new_keyring(NULL);
  uint8_t zero[32] = {0}, prev[32], out[32], want[32], key[32], oneshot[64 + 32];
  static const char entry[] = "{\"actor\":\"admin\",\"action\":\"create\"}";
  (void)state;

  from_hex(FIX_AUDIT_KEY_HEX, key, 32);
  assert_memory_equal(cs_kr_audit_key(kr), key, 32);
  /* Separate from the other derived keys. */
  assert_memory_not_equal(cs_kr_audit_key(kr), cs_kr_hash_key(kr), 32);
  assert_memory_not_equal(cs_kr_audit_key(kr), cs_kr_jwt_key(kr), 32);

  cs_chain_hash(kr, zero, "", 0, out);
  from_hex("caa98e1fa349ef091e58b0ee60f024d7b317cbddcb52d6564a98e00bdbf41715", want, 32);
  assert_memory_equal(out, want, 32);
  cs_chain_hash(kr, zero, NULL, 0, out);
  assert_memory_equal(out, want, 32);

  cs_chain_hash(kr, zero, "abc", 3, out);
  from_hex("7bd28ec7b5b0b1f5a9dc18fb99f726f4e8a261df61b9373fcd584c7037af95e2", want, 32);
  assert_memory_equal(out, want, 32);

  for (int i = 0; i < 32; i++)
    prev[i] = (uint8_t)i;
  cs_chain_hash(kr, prev, entry, strlen(entry), out);
  from_hex("a53f7ca27c6646fbeef61abda266b0d767f71f770063fe9ecb60973b3bac2191", want, 32);
  assert_memory_equal(out, want, 32);

  /* Streaming equals one-shot keyed BLAKE2b-256 over prev || entry. */
  memcpy(oneshot, prev, 32);
  memcpy(oneshot + 32, entry, strlen(entry));
  crypto_generichash(want, 32, oneshot, 32 + strlen(entry), key, 32);
  assert_memory_equal(out, want, 32);
  /* Not the unkeyed hash a store writer could recompute (the v1 chain). */
  from_hex("2a31659393cf9965b7726f54a408791286f910c91ed011bce25c30a83a6d55fa", want, 32);
  assert_memory_not_equal(out, want, 32);
  /* Another keyring (another root) gives another link. */
  cs_chain_hash(other, prev, entry, strlen(entry), want);
  assert_memory_not_equal(out, want, 32);
  /* The link depends on prev and on every entry byte. */
  prev[31] ^= 1;
  cs_chain_hash(kr, prev, entry, strlen(entry), want);
  assert_memory_not_equal(out, want, 32);
  prev[31] ^= 1;
  cs_chain_hash(kr, prev, entry, strlen(entry) - 1, want);
  assert_memory_not_equal(out, want, 32);
  cs_keyring_free(kr);
  cs_keyring_free(other);
}

/* The chain key survives a rotation and a reload: old links still verify. */
static void test_chain_key_stable_across_rotate_and_reload(void **state)
{
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = new_keyring(&mk), *back = NULL;
  uint8_t zero[32] = {0}, before[32], after[32], *blob = NULL;
  size_t len = 0;
  (void)state;

  cs_chain_hash(kr, zero, "entry", 5, before);
  assert_int_equal(cs_keyring_rotate(kr), CS_OK);
  cs_chain_hash(kr, zero, "entry", 5, after);
  assert_memory_equal(before, after, 32);
  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  assert_int_equal(cs_keyring_load(mk, blob, len, &back), CS_OK);
  cs_chain_hash(back, zero, "entry", 5, after);
  assert_memory_equal(before, after, 32);
  free(blob);
  cs_keyring_free(back);
  cs_keyring_free(kr);
  cs_master_key_free(mk);
}

static void test_secret_hash(void **state)
{
  struct cs_keyring *kr = fixed_keyring(), *other = new_keyring(NULL);
  uint8_t h[32], h2[32], want[32];
  (void)state;

  from_hex("022e95f354ea4a4c3a13ec2802ec9c98df706f984ad9d776c06f06118681b363", want, 32);
  cs_secret_hash(kr, "my-access-secret", 16, h);
  assert_memory_equal(h, want, 32);
  assert_true(cs_hash_equal(h, want));

  cs_secret_hash(kr, "my-access-secreT", 16, h2);
  assert_false(cs_hash_equal(h, h2));
  cs_secret_hash(other, "my-access-secret", 16, h2); /* keyed: other keyring differs */
  assert_false(cs_hash_equal(h, h2));
  memcpy(h2, h, 32);
  h2[31] ^= 0x80;
  assert_false(cs_hash_equal(h, h2));
  cs_keyring_free(kr);
  cs_keyring_free(other);
}

static void test_base64_vectors(void **state)
{
  /* RFC 4648 section 10. */
  static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const b64[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  (void)state;

  for (size_t i = 0; i < 7; i++) {
    char *s = cs_base64_encode((const uint8_t *)in[i], strlen(in[i]));
    uint8_t *d = NULL;
    size_t n = 99;
    assert_non_null(s);
    assert_string_equal(s, b64[i]);
    assert_int_equal(cs_base64_decode(s, strlen(s), &d, &n), CS_OK);
    assert_int_equal(n, strlen(in[i]));
    assert_memory_equal(d, in[i], n);
    assert_int_equal(d[n], 0);
    free(d);
    free(s);
  }
}

static void test_base64_rejects(void **state)
{
  static const char *const bad[] = {"Zg=", "Zg", "Zh==", "Zm9v\n", "Zm9-", "Zm9_",
                                    "Zm9v====", "=Zm9", "Zm 9v", "Zg==Zg==", "Z===", "Zm9v*A==",
                                    /* libsodium 1.0.18 alone reads bytes >= 0x80 as '/' */
                                    "Zm9\x80", "\xffm9v", "Zm\xae\xae"};
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t *d = (uint8_t *)&d;
    size_t n = 7;
    assert_int_equal(cs_base64_decode(bad[i], strlen(bad[i]), &d, &n), CS_ERR_INVALID);
    assert_ptr_equal(d, (uint8_t *)&d); /* untouched on error */
    assert_int_equal(n, 7);
  }
}

static void test_b64url(void **state)
{
  static const uint8_t bin[] = {0xfb, 0xff, 0xbf};
  uint8_t out[8];
  size_t n = 0;
  char *s;
  (void)state;

  s = cs_b64url_encode(bin, 2);
  assert_string_equal(s, "-_8");
  free(s);
  /* A high byte is not another spelling of '_' (found by fuzz_jwt). */
  assert_int_equal(cs_b64url_decode("-\x80"
                                    "8",
                                    3, out, sizeof out, &n),
                   CS_ERR_INVALID);
  s = cs_b64url_encode(bin, 3);
  assert_string_equal(s, "-_-_");
  free(s);
  assert_int_equal(cs_b64url_decode("-_8", 3, out, sizeof out, &n), CS_OK);
  assert_int_equal(n, 2);
  assert_memory_equal(out, bin, 2);
  assert_int_equal(cs_b64url_decode("+/8", 3, out, sizeof out, &n), CS_ERR_INVALID);
  assert_int_equal(cs_b64url_decode("-_8=", 4, out, sizeof out, &n), CS_ERR_INVALID);
  assert_int_equal(cs_b64url_decode("-_9", 3, out, sizeof out, &n), CS_ERR_INVALID);
  assert_int_equal(cs_b64url_decode("A", 1, out, sizeof out, &n), CS_ERR_INVALID);
  assert_int_equal(cs_b64url_decode("AAAAAAAAAAAA", 12, out, 8, &n), CS_ERR_INVALID); /* 9 > cap */
}

static void test_hex_random(void **state)
{
  static const uint8_t bin[] = {0x00, 0x01, 0xab, 0xff};
  char hex[9], r1[33], r2[33];
  uint8_t b1[32] = {0}, b2[32] = {0}, zero[32] = {0};
  (void)state;

  cs_hex(bin, 4, hex);
  assert_string_equal(hex, "0001abff");
  cs_random_hex(r1, 16);
  cs_random_hex(r2, 16);
  assert_int_equal(strlen(r1), 32);
  assert_int_equal(strspn(r1, "0123456789abcdef"), 32);
  assert_string_not_equal(r1, r2);
  cs_random_bytes(b1, sizeof b1);
  cs_random_bytes(b2, sizeof b2);
  assert_memory_not_equal(b1, b2, 32);
  assert_memory_not_equal(b1, zero, 32);
  {
    char big[2 * 100 + 1];
    cs_random_hex(big, 100); /* crosses the internal 32-byte chunk */
    assert_int_equal(strlen(big), 200);
    assert_int_equal(strspn(big, "0123456789abcdef"), 200);
  }
}

/* ------------------------------------------------------------ seal / open */

static void roundtrip(const struct cs_keyring *kr, const char *id, const uint8_t *p, size_t n)
{
  uint8_t *sealed = NULL, *plain = NULL;
  size_t slen = 0, plen = 99;

  assert_int_equal(cs_seal(kr, id, p, n, &sealed, &slen), CS_OK);
  assert_int_equal(slen, n + CS_SEAL_OVERHEAD);
  assert_int_equal(cs_sealed_version(sealed, slen), cs_keyring_current_version(kr));
  assert_int_equal(cs_open(kr, id, sealed, slen, &plain, &plen), CS_OK);
  assert_int_equal(plen, n);
  if (n)
    assert_memory_equal(plain, p, n);
  assert_int_equal(plain[n], 0);
  cs_open_free(plain, plen);
  free(sealed);
}

static void test_seal_roundtrip(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  size_t big = 1u << 20;
  uint8_t *b = malloc(big);
  (void)state;

  assert_non_null(b);
  randombytes_buf(b, big);
  roundtrip(kr, "cred-1", (const uint8_t *)"hello", 5);
  roundtrip(kr, "cred-1", NULL, 0);
  roundtrip(kr, "", (const uint8_t *)"x", 1);
  roundtrip(kr, "cred-big", b, big);
  free(b);
  cs_keyring_free(kr);
}

static void test_seal_nonce_fresh(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  uint8_t *a = NULL, *b = NULL;
  size_t al = 0, bl = 0;
  (void)state;

  assert_int_equal(cs_seal(kr, "r", (const uint8_t *)"same", 4, &a, &al), CS_OK);
  assert_int_equal(cs_seal(kr, "r", (const uint8_t *)"same", 4, &b, &bl), CS_OK);
  assert_int_equal(al, bl);
  assert_memory_not_equal(a + 4, b + 4, 24);
  assert_memory_not_equal(a + 28, b + 28, al - 28);
  free(a);
  free(b);
  cs_keyring_free(kr);
}

/* The layout and AD documented in crypto.h, checked with libsodium directly. */
static void test_seal_layout_independent(void **state)
{
  struct cs_keyring *kr = fixed_keyring();
  uint8_t dk2[32], ad[64], m[16], c[4 + 24 + 5 + 16], *sealed = NULL, *plain = NULL;
  size_t slen = 0, plen = 0, adlen;
  unsigned long long mlen = 0, clen = 0;
  (void)state;

  memset(dk2, 0x62, 32);
  memcpy(ad, "credstore v1\0cred-7\0\0\0\0\2", 24); /* 13 + 6 + 1 + 4 */
  adlen = 24;
  assert_int_equal(cs_seal(kr, "cred-7", (const uint8_t *)"s3cr3", 5, &sealed, &slen), CS_OK);
  assert_int_equal(slen, sizeof c);
  assert_memory_equal(sealed, "\0\0\0\2", 4);
  assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                       m, &mlen, NULL, sealed + 28, slen - 28, ad, adlen, sealed + 4, dk2),
                   0);
  assert_int_equal(mlen, 5);
  assert_memory_equal(m, "s3cr3", 5);

  /* And the other way: a blob made here opens with cs_open. */
  memcpy(c, "\0\0\0\2", 4);
  memset(c + 4, 0x5a, 24);
  crypto_aead_xchacha20poly1305_ietf_encrypt(c + 28, &clen, (const uint8_t *)"hello", 5, ad, adlen,
                                             NULL, c + 4, dk2);
  assert_int_equal(cs_open(kr, "cred-7", c, sizeof c, &plain, &plen), CS_OK);
  assert_int_equal(plen, 5);
  assert_memory_equal(plain, "hello", 5);
  cs_open_free(plain, plen);
  free(sealed);
  cs_keyring_free(kr);
}

static void expect_open_fails(const struct cs_keyring *kr, const char *id, const uint8_t *s,
                              size_t n)
{
  uint8_t *plain = (uint8_t *)&plain;
  size_t plen = 12345;
  assert_int_equal(cs_open(kr, id, s, n, &plain, &plen), CS_ERR_CRYPTO);
  assert_ptr_equal(plain, (uint8_t *)&plain);
  assert_int_equal(plen, 12345);
}

static void test_seal_tamper_every_byte(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  uint8_t *s = NULL;
  size_t n = 0;
  (void)state;

  assert_int_equal(cs_seal(kr, "cred-1", (const uint8_t *)"0123456789abcdef", 16, &s, &n), CS_OK);
  assert_int_equal(n, 60);
  /* version 0..3, nonce 4..27, ciphertext 28..43, tag 44..59 */
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit += 7) {
      s[i] ^= (uint8_t)(1u << bit);
      expect_open_fails(kr, "cred-1", s, n);
      s[i] ^= (uint8_t)(1u << bit);
    }
  }
  roundtrip(kr, "cred-1", (const uint8_t *)"ok", 2); /* control */
  free(s);
  cs_keyring_free(kr);
}

static void test_seal_truncated_and_wrong_record(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  uint8_t *s = NULL, *plain = NULL;
  size_t n = 0, plen = 0;
  (void)state;

  assert_int_equal(cs_seal(kr, "cred-1", (const uint8_t *)"secret", 6, &s, &n), CS_OK);
  for (size_t len = 0; len < n; len++)
    expect_open_fails(kr, "cred-1", s, len);
  expect_open_fails(kr, "cred-2", s, n);
  expect_open_fails(kr, "cred-1 ", s, n);
  expect_open_fails(kr, "", s, n);
  expect_open_fails(kr, "cred-1", NULL, n);
  assert_int_equal(cs_sealed_version(s, 3), 0);
  assert_int_equal(cs_sealed_version(s, CS_SEAL_OVERHEAD - 1), 0);
  assert_int_equal(cs_sealed_version(s, n), 1);
  assert_int_equal(cs_open(kr, "cred-1", s, n, &plain, &plen), CS_OK); /* control */
  cs_open_free(plain, plen);
  free(s);
  cs_keyring_free(kr);
}

/* v1 and v2 share key bytes, so only the AD can catch a relabelled version. */
static void test_seal_relabelled_version(void **state)
{
  uint8_t dks[2][32];
  struct cs_keyring *kr;
  uint8_t *s = NULL, *plain = NULL;
  size_t n = 0, plen = 0;
  (void)state;

  memset(dks, 0x77, sizeof dks);
  kr = fixed_keyring_with(dks, 2);
  assert_int_equal(cs_seal(kr, "cred-1", (const uint8_t *)"secret", 6, &s, &n), CS_OK);
  assert_int_equal(cs_sealed_version(s, n), 2);
  s[3] = 1;
  expect_open_fails(kr, "cred-1", s, n);
  s[3] = 3; /* unknown version */
  expect_open_fails(kr, "cred-1", s, n);
  s[3] = 0;
  expect_open_fails(kr, "cred-1", s, n);
  s[3] = 2;
  assert_int_equal(cs_open(kr, "cred-1", s, n, &plain, &plen), CS_OK);
  cs_open_free(plain, plen);
  free(s);
  cs_keyring_free(kr);
}

/* ----------------------------------------------------------------- keyring */

static void test_keyring_roundtrip(void **state)
{
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = new_keyring(&mk), *kr2 = NULL;
  uint8_t *blob = NULL, *s = NULL, *plain = NULL, h1[32], h2[32];
  size_t len = 0, n = 0, plen = 0;
  struct cs_jwt_claims c = {.sub = "AKID1", .role = "admin", .iat = 100, .exp = 200}, got;
  char *tok = NULL;
  (void)state;

  assert_int_equal(cs_seal(kr, "cred-1", (const uint8_t *)"before", 6, &s, &n), CS_OK);
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_OK);
  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  assert_int_equal(len, 9 + 72 + 76);
  assert_memory_equal(blob, "CSKR\1\0\0\0\1", 9);
  assert_int_equal(cs_keyring_load(mk, blob, len, &kr2), CS_OK);
  assert_int_equal(cs_keyring_current_version(kr2), 1);
  assert_int_equal(cs_open(kr2, "cred-1", s, n, &plain, &plen), CS_OK);
  assert_memory_equal(plain, "before", 6);
  cs_secret_hash(kr, "k", 1, h1);
  cs_secret_hash(kr2, "k", 1, h2);
  assert_memory_equal(h1, h2, 32);
  assert_int_equal(cs_jwt_verify(kr2, tok, strlen(tok), 150, &got), CS_OK);
  assert_string_equal(got.sub, "AKID1");

  cs_open_free(plain, plen);
  free(tok);
  free(s);
  free(blob);
  cs_keyring_free(kr2);
  cs_keyring_free(kr);
  cs_master_key_free(mk);
}

static void test_keyring_wrong_master_key(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL), *kr2 = (struct cs_keyring *)&kr2;
  struct cs_master_key *other = NULL;
  uint8_t *blob = NULL;
  size_t len = 0;
  (void)state;

  other = mk_from_bytes(fix_mk);
  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  assert_int_equal(cs_keyring_load(other, blob, len, &kr2), CS_ERR_MASTER_KEY);
  assert_ptr_equal(kr2, (struct cs_keyring *)&kr2);
  free(blob);
  cs_master_key_free(other);
  cs_keyring_free(kr);
}

static void test_keyring_truncated_and_garbage(void **state)
{
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = new_keyring(&mk), *kr2 = NULL;
  uint8_t *blob = NULL, junk[400];
  size_t len = 0;
  (void)state;

  assert_int_equal(cs_keyring_rotate(kr), CS_OK);
  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  for (size_t n = 0; n < len; n++)
    assert_int_equal(cs_keyring_load(mk, blob, n, &kr2), CS_ERR_INVALID);
  assert_int_equal(cs_keyring_load(mk, NULL, 0, &kr2), CS_ERR_INVALID);
  for (int i = 0; i < 2000; i++) {
    size_t n = randombytes_uniform(sizeof junk);
    enum cs_err e;
    randombytes_buf(junk, sizeof junk);
    if (i % 2) { /* plausible header, random body */
      memcpy(junk, "CSKR\1", 5);
      cs_put_be32(junk + 5, 1 + (uint32_t)randombytes_uniform(3));
      n = 9 + 72 + 76 * (size_t)cs_get_be32(junk + 5);
      for (uint32_t v = 1; v <= cs_get_be32(junk + 5); v++)
        cs_put_be32(junk + 81 + 76 * (v - 1), v);
    }
    e = cs_keyring_load(mk, junk, n, &kr2);
    assert_true(e == CS_ERR_INVALID || e == CS_ERR_MASTER_KEY);
    if (i % 2)
      assert_int_equal(e, CS_ERR_MASTER_KEY);
  }
  /* Count fields out of range, and a byte too many. */
  memcpy(junk, blob, len);
  cs_put_be32(junk + 5, 0);
  assert_int_equal(cs_keyring_load(mk, junk, 9, &kr2), CS_ERR_INVALID);
  cs_put_be32(junk + 5, CS_KEYRING_MAX_VERSIONS + 1);
  assert_int_equal(cs_keyring_load(mk, junk, len, &kr2), CS_ERR_INVALID);
  memcpy(junk, blob, len);
  junk[len] = 0;
  assert_int_equal(cs_keyring_load(mk, junk, len + 1, &kr2), CS_ERR_INVALID);
  assert_int_equal(cs_keyring_load(mk, blob, len, &kr2), CS_OK); /* control */
  cs_keyring_free(kr2);
  free(blob);
  cs_keyring_free(kr);
  cs_master_key_free(mk);
}

static void test_keyring_tamper_every_byte(void **state)
{
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = new_keyring(&mk), *kr2 = NULL;
  uint8_t *blob = NULL;
  size_t len = 0;
  (void)state;

  assert_int_equal(cs_keyring_rotate(kr), CS_OK);
  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  assert_int_equal(len, 9 + 72 + 2 * 76);
  for (size_t i = 0; i < len; i++) {
    enum cs_err want = CS_ERR_MASTER_KEY;
    if (i < 9 || (i >= 81 && (i - 81) % 76 < 4))
      want = CS_ERR_INVALID; /* header, count or an entry's version */
    blob[i] ^= 0x01;
    assert_int_equal(cs_keyring_load(mk, blob, len, &kr2), want);
    blob[i] ^= 0x01;
  }
  /* Swap the two data-key entries' nonce+ciphertext, keeping versions. */
  {
    uint8_t tmp[72];
    memcpy(tmp, blob + 81 + 4, 72);
    memcpy(blob + 81 + 4, blob + 81 + 76 + 4, 72);
    memcpy(blob + 81 + 76 + 4, tmp, 72);
    assert_int_equal(cs_keyring_load(mk, blob, len, &kr2), CS_ERR_MASTER_KEY);
    /* Root moved into a data-key slot. */
    memcpy(blob + 81 + 4, blob + 9, 72);
    assert_int_equal(cs_keyring_load(mk, blob, len, &kr2), CS_ERR_MASTER_KEY);
  }
  free(blob);
  cs_keyring_free(kr);
  cs_master_key_free(mk);
}

static void test_keyring_rotate(void **state)
{
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = new_keyring(&mk), *kr2 = NULL;
  uint8_t *s1 = NULL, *s2 = NULL, *blob = NULL, *plain = NULL, h1[32], h2[32];
  size_t n1 = 0, n2 = 0, len = 0, plen = 0;
  (void)state;

  cs_secret_hash(kr, "k", 1, h1);
  assert_int_equal(cs_seal(kr, "a", (const uint8_t *)"old", 3, &s1, &n1), CS_OK);
  assert_int_equal(cs_keyring_rotate(kr), CS_OK);
  assert_int_equal(cs_keyring_current_version(kr), 2);
  assert_int_equal(cs_seal(kr, "a", (const uint8_t *)"new", 3, &s2, &n2), CS_OK);
  assert_int_equal(cs_sealed_version(s1, n1), 1);
  assert_int_equal(cs_sealed_version(s2, n2), 2);
  cs_secret_hash(kr, "k", 1, h2);
  assert_memory_equal(h1, h2, 32); /* service keys survive rotation */

  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  assert_int_equal(cs_keyring_load(mk, blob, len, &kr2), CS_OK);
  assert_int_equal(cs_keyring_current_version(kr2), 2);
  for (int i = 0; i < 2; i++) {
    const struct cs_keyring *k = i ? kr2 : kr;
    assert_int_equal(cs_open(k, "a", s1, n1, &plain, &plen), CS_OK);
    assert_memory_equal(plain, "old", 3);
    cs_open_free(plain, plen);
    assert_int_equal(cs_open(k, "a", s2, n2, &plain, &plen), CS_OK);
    assert_memory_equal(plain, "new", 3);
    cs_open_free(plain, plen);
  }
  /* Data keys differ: v2's blob relabelled as v1 fails. */
  s2[3] = 1;
  expect_open_fails(kr, "a", s2, n2);
  free(s1);
  free(s2);
  free(blob);
  cs_keyring_free(kr2);
  cs_keyring_free(kr);
  cs_master_key_free(mk);
}

static void test_keyring_rotate_limit(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  (void)state;

  for (uint32_t v = 2; v <= CS_KEYRING_MAX_VERSIONS; v++) {
    assert_int_equal(cs_keyring_rotate(kr), CS_OK);
    assert_int_equal(cs_keyring_current_version(kr), v);
  }
  assert_int_equal(cs_keyring_rotate(kr), CS_ERR_INVALID);
  assert_int_equal(cs_keyring_current_version(kr), CS_KEYRING_MAX_VERSIONS);
  roundtrip(kr, "r", (const uint8_t *)"x", 1);
  cs_keyring_free(kr);
  cs_keyring_free(NULL);
  cs_master_key_free(NULL);
  cs_open_free(NULL, 5);
}

/* -------------------------------------------------------------- master key */

/* true if @p mk opens a blob exported under @p ref (i.e. same key). */
static bool same_key(const struct cs_master_key *ref, const struct cs_master_key *mk)
{
  struct cs_keyring *kr = NULL, *kr2 = NULL;
  uint8_t *blob = NULL;
  size_t len = 0;
  enum cs_err e;

  assert_int_equal(cs_keyring_create(ref, &kr), CS_OK);
  assert_int_equal(cs_keyring_export(kr, &blob, &len), CS_OK);
  e = cs_keyring_load(mk, blob, len, &kr2);
  assert_true(e == CS_OK || e == CS_ERR_MASTER_KEY);
  cs_keyring_free(kr2);
  cs_keyring_free(kr);
  free(blob);
  return e == CS_OK;
}

static struct cs_master_key *pass_key(const char *pass, uint8_t salt_byte, uint64_t ops)
{
  struct cs_kdf_params p;
  struct cs_master_key *mk = NULL;

  memset(p.salt, salt_byte, sizeof p.salt);
  p.opslimit = ops;
  p.memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN;
  assert_int_equal(cs_master_key_from_passphrase(pass, strlen(pass), &p, &mk), CS_OK);
  return mk;
}

static void test_passphrase(void **state)
{
  uint64_t ops = crypto_pwhash_argon2id_OPSLIMIT_MIN;
  struct cs_master_key *a = pass_key("correct horse", 1, ops);
  struct cs_master_key *b = pass_key("correct horse", 1, ops);
  struct cs_master_key *c = pass_key("correct horse", 2, ops);
  struct cs_master_key *d = pass_key("correct horsf", 1, ops);
  struct cs_master_key *e = pass_key("correct horse", 1, ops + 1);
  (void)state;

  assert_true(same_key(a, b));
  assert_false(same_key(a, c));
  assert_false(same_key(a, d));
  assert_false(same_key(a, e));
  cs_master_key_free(a);
  cs_master_key_free(b);
  cs_master_key_free(c);
  cs_master_key_free(d);
  cs_master_key_free(e);
}

static void test_passphrase_invalid(void **state)
{
  struct cs_kdf_params p, q;
  struct cs_master_key *mk = (struct cs_master_key *)&mk;
  (void)state;

  memset(&p, 0, sizeof p);
  p.opslimit = crypto_pwhash_argon2id_OPSLIMIT_MIN;
  p.memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN;
  assert_int_equal(cs_master_key_from_passphrase("", 0, &p, &mk), CS_ERR_INVALID);
  assert_int_equal(cs_master_key_from_passphrase(NULL, 3, &p, &mk), CS_ERR_INVALID);
  q = p;
  q.opslimit = crypto_pwhash_argon2id_OPSLIMIT_MIN - 1;
  assert_int_equal(cs_master_key_from_passphrase("pw", 2, &q, &mk), CS_ERR_INVALID);
  q = p;
  q.opslimit = (uint64_t)crypto_pwhash_argon2id_OPSLIMIT_MAX + 1;
  assert_int_equal(cs_master_key_from_passphrase("pw", 2, &q, &mk), CS_ERR_INVALID);
  q = p;
  q.memlimit = crypto_pwhash_argon2id_MEMLIMIT_MIN - 1;
  assert_int_equal(cs_master_key_from_passphrase("pw", 2, &q, &mk), CS_ERR_INVALID);
  q = p;
  q.memlimit = UINT64_MAX;
  assert_int_equal(cs_master_key_from_passphrase("pw", 2, &q, &mk), CS_ERR_INVALID);
  assert_ptr_equal(mk, (struct cs_master_key *)&mk);
  assert_int_equal(cs_master_key_from_passphrase("pw", 2, &p, &mk), CS_OK); /* control */
  cs_master_key_free(mk);
}

static void test_kdf_params_new(void **state)
{
  struct cs_kdf_params a, b;
  (void)state;

  cs_kdf_params_new(&a);
  cs_kdf_params_new(&b);
  assert_memory_not_equal(a.salt, b.salt, sizeof a.salt);
  assert_int_equal(a.opslimit, 3);
  assert_int_equal(a.memlimit, 64u * 1024 * 1024);
  assert_true(a.opslimit >= crypto_pwhash_argon2id_OPSLIMIT_MIN);
  assert_true(a.memlimit >= crypto_pwhash_argon2id_MEMLIMIT_MIN);
}

static enum cs_err load_keyfile(const void *data, size_t len, struct cs_master_key **mk)
{
  char path[256];
  enum cs_err e;

  path_in(path, sizeof path, "key");
  write_file(path, data, len, 0600);
  e = cs_master_key_from_file(path, mk);
  unlink(path);
  return e;
}

static void test_keyfile_formats(void **state)
{
  uint8_t k[32], k2[32], raw_nl[33];
  char hex[66], b64[48], upper[65];
  struct cs_master_key *ref, *mk;
  (void)state;

  for (int i = 0; i < 32; i++)
    k[i] = (uint8_t)(0xa0 + i);
  ref = mk_from_bytes(k);
  sodium_bin2hex(hex, sizeof hex, k, 32);
  sodium_bin2base64(b64, sizeof b64, k, 32, sodium_base64_VARIANT_ORIGINAL);
  assert_int_equal(strlen(b64), 44);
  memcpy(raw_nl, k, 32);
  raw_nl[32] = '\n';

  hex[64] = '\n';
  hex[65] = 0;
  b64[44] = '\n';
  b64[45] = 0;
  for (int i = 0; i < 64; i++)
    upper[i] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
  upper[64] = 0;

  const struct {
    const void *p;
    size_t n;
  } ok[] = {{k, 32}, {raw_nl, 33}, {hex, 64}, {hex, 65}, {upper, 64}, {b64, 44}, {b64, 45}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    mk = NULL;
    assert_int_equal(load_keyfile(ok[i].p, ok[i].n, &mk), CS_OK);
    assert_true(same_key(ref, mk));
    cs_master_key_free(mk);
  }
  /* A raw key that happens to end in '\n' is still 32 raw bytes. */
  memcpy(k2, k, 32);
  k2[31] = '\n';
  mk = NULL;
  assert_int_equal(load_keyfile(k2, 32, &mk), CS_OK);
  assert_false(same_key(ref, mk));
  {
    struct cs_master_key *ref2 = NULL;
    char h2[65];
    sodium_bin2hex(h2, sizeof h2, k2, 32);
    assert_int_equal(load_keyfile(h2, 64, &ref2), CS_OK);
    assert_true(same_key(ref2, mk));
    cs_master_key_free(ref2);
  }
  cs_master_key_free(mk);
  cs_master_key_free(ref);
}

static void test_keyfile_rejects(void **state)
{
  uint8_t k[200];
  char hex[70], b64[50], path[256];
  struct cs_master_key *mk = (struct cs_master_key *)&mk;
  (void)state;

  randombytes_buf(k, sizeof k);
  k[32] = 'x';
  sodium_bin2hex(hex, sizeof hex, k, 32);
  assert_int_equal(load_keyfile(k, 31, &mk), CS_ERR_INVALID);
  assert_int_equal(load_keyfile(k, 33, &mk), CS_ERR_INVALID); /* 33rd byte isn't '\n' */
  assert_int_equal(load_keyfile(k, 34, &mk), CS_ERR_INVALID);
  assert_int_equal(load_keyfile(k, 0, &mk), CS_ERR_INVALID);
  assert_int_equal(load_keyfile(k, 129, &mk), CS_ERR_INVALID);
  assert_int_equal(load_keyfile(k, 200, &mk), CS_ERR_INVALID);
  assert_int_equal(load_keyfile(hex, 63, &mk), CS_ERR_INVALID);
  hex[10] = 'g';
  assert_int_equal(load_keyfile(hex, 64, &mk), CS_ERR_INVALID);
  hex[10] = '0';
  hex[64] = '\r';
  hex[65] = '\n';
  assert_int_equal(load_keyfile(hex, 66, &mk), CS_ERR_INVALID);
  hex[64] = '\n';
  assert_int_equal(load_keyfile(hex, 66, &mk), CS_ERR_INVALID); /* two newlines */
  sodium_bin2base64(b64, sizeof b64, k, 31, sodium_base64_VARIANT_ORIGINAL);
  assert_int_equal(strlen(b64), 44);
  assert_int_equal(load_keyfile(b64, 44, &mk), CS_ERR_INVALID); /* 31 bytes */
  sodium_bin2base64(b64, sizeof b64, k, 33, sodium_base64_VARIANT_ORIGINAL);
  assert_int_equal(strlen(b64), 44);
  assert_int_equal(load_keyfile(b64, 44, &mk), CS_ERR_INVALID); /* 33 bytes */
  sodium_bin2base64(b64, sizeof b64, k, 32, sodium_base64_VARIANT_URLSAFE);
  b64[0] = '-';
  assert_int_equal(load_keyfile(b64, 44, &mk), CS_ERR_INVALID);
  assert_int_equal(load_keyfile("this is not a key at all, sorry!!!!!!!!!!!!", 44, &mk),
                   CS_ERR_INVALID);
  path_in(path, sizeof path, "missing");
  assert_int_equal(cs_master_key_from_file(path, &mk), CS_ERR_IO);
  assert_int_equal(cs_master_key_from_file(tmpdir, &mk), CS_ERR_INVALID);
  path_in(path, sizeof path, "fifo");
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(cs_master_key_from_file(path, &mk), CS_ERR_INVALID); /* and doesn't block */
  unlink(path);
  assert_ptr_equal(mk, (struct cs_master_key *)&mk);
}

static void test_generate_file(void **state)
{
  char path[256], bad[256];
  uint8_t before[33], after[33];
  struct cs_master_key *mk = NULL, *mk2 = NULL;
  struct stat st;
  mode_t old;
  int fd;
  (void)state;

  path_in(path, sizeof path, "generated.key");
  old = umask(0);
  assert_int_equal(cs_master_key_generate_file(path), CS_OK);
  umask(old);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(st.st_size, 32);
  fd = open(path, O_RDONLY);
  assert_int_equal(read(fd, before, sizeof before), 32);
  close(fd);

  assert_int_equal(cs_master_key_generate_file(path), CS_ERR_EXISTS);
  fd = open(path, O_RDONLY);
  assert_int_equal(read(fd, after, sizeof after), 32);
  close(fd);
  assert_memory_equal(before, after, 32);

  assert_int_equal(cs_master_key_from_file(path, &mk), CS_OK);
  mk2 = mk_from_bytes(before);
  assert_true(same_key(mk, mk2));
  path_in(bad, sizeof bad, "no-such-dir/k");
  assert_int_equal(cs_master_key_generate_file(bad), CS_ERR_IO);
  cs_master_key_free(mk);
  cs_master_key_free(mk2);
  unlink(path);
}

/* --------------------------------------------------------------------- JWT */

static const char JWT_HDR[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char KAT_PAYLOAD[] =
    "{\"sub\":\"AKIDEXAMPLE\",\"role\":\"admin\",\"iat\":1700000000,\"exp\":1700003600,"
    "\"jti\":\"0123456789abcdef0123456789abcdef\"}";
/* Python: hmac.new(jwt_key, b64url(hdr) + "." + b64url(payload), sha256). */
static const char KAT_TOKEN[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJBS0lERVhBTVBMRSIsInJvbGUiOiJhZG1pbiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNj"
    "AwLCJqdGkiOiIwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZiJ9."
    "n-keAwcQbk2T1SpSZPZqCPTayU2i5bo6n6T2k31gTus";
#define KAT_NOW 1700000001

/* Base64 of a string in @p variant, written here rather than through jwt.c. */
static char *enc(const char *s, int variant)
{
  size_t n = strlen(s), cap = sodium_base64_encoded_len(n, variant);
  char *out = malloc(cap);
  assert_non_null(out);
  sodium_bin2base64(out, cap, (const uint8_t *)s, n, variant);
  return out;
}

/* "h.p.sig" with a valid HS256 signature under @p key over the given encoded parts. */
static char *sign_parts(const char *h, const char *p, const uint8_t key[32])
{
  size_t n = strlen(h) + 1 + strlen(p);
  char sig[44], *tok = malloc(n + 1 + sizeof sig); /* 43 chars + NUL */
  uint8_t mac[32];

  assert_non_null(tok);
  snprintf(tok, n + 1, "%s.%s", h, p);
  crypto_auth_hmacsha256(mac, (const uint8_t *)tok, n, key);
  sodium_bin2base64(sig, sizeof sig, mac, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  tok[n] = '.';
  memcpy(tok + n + 1, sig, sizeof sig);
  return tok;
}

static char *craft(const char *hdr, const char *payload)
{
  char *h = enc(hdr, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *p = enc(payload, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *t = sign_parts(h, p, fix_jwt_key);
  free(h);
  free(p);
  return t;
}

static void expect_bad_len(const struct cs_keyring *kr, const char *tok, size_t len, int64_t now)
{
  struct cs_jwt_claims out, copy;
  memset(&out, 0xa5, sizeof out);
  copy = out;
  assert_int_equal(cs_jwt_verify(kr, tok, len, now, &out), CS_ERR_BAD_TOKEN);
  assert_memory_equal(&out, &copy, sizeof out); /* untouched on failure */
}

static void expect_bad(const struct cs_keyring *kr, const char *tok, int64_t now)
{
  expect_bad_len(kr, tok, strlen(tok), now);
}

static void expect_ok(const struct cs_keyring *kr, const char *tok, int64_t now,
                      struct cs_jwt_claims *out)
{
  assert_int_equal(cs_jwt_verify(kr, tok, strlen(tok), now, out), CS_OK);
}

/* Crafted and validly signed with the fixed key: must be refused anyway. */
static void expect_crafted_bad(const struct cs_keyring *kr, const char *hdr, const char *payload)
{
  char *t = craft(hdr, payload);
  expect_bad(kr, t, KAT_NOW);
  free(t);
}

static void test_jwt_kat(void **state)
{
  struct cs_keyring *kr = fixed_keyring();
  struct cs_jwt_claims c = {.sub = "AKIDEXAMPLE",
                            .role = "admin",
                            .iat = 1700000000,
                            .exp = 1700003600,
                            .jti = "0123456789abcdef0123456789abcdef"},
                       got;
  char *tok = NULL, *crafted = craft(JWT_HDR, KAT_PAYLOAD);
  (void)state;

  assert_string_equal(crafted, KAT_TOKEN); /* the test's own signer agrees with Python */
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_OK);
  assert_string_equal(tok, KAT_TOKEN);
  memset(&got, 0, sizeof got);
  expect_ok(kr, KAT_TOKEN, KAT_NOW, &got);
  assert_string_equal(got.sub, "AKIDEXAMPLE");
  assert_string_equal(got.role, "admin");
  assert_int_equal(got.iat, 1700000000);
  assert_int_equal(got.exp, 1700003600);
  assert_string_equal(got.jti, c.jti);
  expect_ok(kr, KAT_TOKEN, 1700003599, &got);
  expect_bad(kr, KAT_TOKEN, 1700003600); /* exp == now */
  expect_bad(kr, KAT_TOKEN, 1800000000);
  free(tok);
  free(crafted);
  cs_keyring_free(kr);
}

static void test_jwt_roundtrip(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  struct cs_jwt_claims c, got;
  char *t1 = NULL, *t2 = NULL;
  (void)state;

  memset(&c, 0, sizeof c);
  memset(c.sub, 'S', CS_JWT_SUB_MAX); /* longest allowed */
  memset(c.role, 'r', CS_JWT_ROLE_MAX);
  c.iat = 1000;
  c.exp = 2000;
  assert_int_equal(cs_jwt_mint(kr, &c, &t1), CS_OK);
  assert_int_equal(cs_jwt_mint(kr, &c, &t2), CS_OK);
  assert_string_not_equal(t1, t2); /* fresh jti each time */
  assert_true(strlen(t1) <= CS_JWT_MAX_LEN);
  expect_ok(kr, t1, 1999, &got);
  assert_string_equal(got.sub, c.sub);
  assert_string_equal(got.role, c.role);
  assert_int_equal(got.iat, 1000);
  assert_int_equal(got.exp, 2000);
  assert_int_equal(strlen(got.jti), 32);
  assert_int_equal(strspn(got.jti, "0123456789abcdef"), 32);
  expect_bad(kr, t1, 2000);
  expect_bad(kr, t1, 2001);
  free(t1);
  free(t2);
  cs_keyring_free(kr);
}

static void test_jwt_mint_invalid(void **state)
{
  struct cs_keyring *kr = new_keyring(NULL);
  struct cs_jwt_claims ok = {.sub = "a", .role = "r", .iat = 1, .exp = 2}, c;
  char *tok = (char *)&tok;
  (void)state;

  c = ok;
  c.sub[0] = 0;
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  c = ok;
  c.role[0] = 0;
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  c = ok;
  memset(c.sub, 'x', sizeof c.sub); /* unterminated: 65 chars */
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  c = ok;
  memset(c.role, 'x', sizeof c.role);
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  c = ok;
  memset(c.jti, 'x', sizeof c.jti);
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  c = ok;
  c.iat = -1;
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  c = ok;
  c.exp = INT64_MAX;
  assert_int_equal(cs_jwt_mint(kr, &c, &tok), CS_ERR_INVALID);
  assert_ptr_equal(tok, (char *)&tok);
  assert_int_equal(cs_jwt_mint(kr, &ok, &tok), CS_OK); /* control */
  free(tok);
  cs_keyring_free(kr);
}

static void test_jwt_alg(void **state)
{
  struct cs_keyring *kr = fixed_keyring();
  struct cs_jwt_claims got;
  char *t, *h;
  (void)state;

  t = craft("{\"alg\":\"HS256\"}", KAT_PAYLOAD); /* control: typ is optional */
  expect_ok(kr, t, KAT_NOW, &got);
  free(t);
  expect_crafted_bad(kr, "{\"alg\":\"none\",\"typ\":\"JWT\"}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"typ\":\"JWT\"}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":null}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":256}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":[\"HS256\"]}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":\"hs256\"}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":\"HS256 \"}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"ALG\":\"HS256\"}", KAT_PAYLOAD);
  expect_crafted_bad(kr, "[\"HS256\"]", KAT_PAYLOAD);
  expect_crafted_bad(kr, "{\"alg\":\"HS256\"", KAT_PAYLOAD);
  expect_crafted_bad(kr, "", KAT_PAYLOAD);

  /* Unsigned "none" token: header.payload. */
  h = enc("{\"alg\":\"none\",\"typ\":\"JWT\"}", sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  {
    char *p = enc(KAT_PAYLOAD, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t cap = strlen(h) + strlen(p) + 3;
    char *u = malloc(cap);
    assert_non_null(u);
    snprintf(u, cap, "%s.%s.", h, p);
    expect_bad(kr, u, KAT_NOW);
    free(u);
    free(p);
  }
  free(h);
  cs_keyring_free(kr);
}

static void test_jwt_claims(void **state)
{
  static const char *const bad[] = {
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1}",          /* no exp */
      "{\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",     /* no sub */
      "{\"sub\":\"a\",\"iat\":1,\"exp\":1800000000}",      /* no role */
      "{\"sub\":\"a\",\"role\":\"r\",\"exp\":1800000000}", /* no iat */
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":\"1800000000\"}",
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000.5}",
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":null}",
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":-1,\"exp\":1800000000}",
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1e300}",
      "{\"sub\":\"\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
      "{\"sub\":7,\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
      "{\"sub\":\"a\",\"role\":\"\",\"iat\":1,\"exp\":1800000000}",
      "{\"sub\":\"a\",\"role\":\"rrrrrrrrrrrrrrrrr\",\"iat\":1,\"exp\":1800000000}", /* 17 */
      ("{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000,"
       "\"jti\":\"0123456789abcdef0123456789abcdef0\"}"), /* jti 33 */
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000,\"jti\":5}",
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1700000001}", /* exp == now */
      "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000",  /* bad JSON */
      "[\"sub\",\"a\"]",
      "\"just a string\"",
  };
  struct cs_keyring *kr = fixed_keyring();
  struct cs_jwt_claims got;
  char sub65[200], *t;
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_crafted_bad(kr, JWT_HDR, bad[i]);
  snprintf(sub65, sizeof sub65, "{\"sub\":\"%065d\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
           0);
  expect_crafted_bad(kr, JWT_HDR, sub65);

  /* Controls: 64-char sub, no jti. */
  snprintf(sub65, sizeof sub65, "{\"sub\":\"%064d\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
           0);
  t = craft(JWT_HDR, sub65);
  expect_ok(kr, t, KAT_NOW, &got);
  assert_int_equal(strlen(got.sub), 64);
  assert_string_equal(got.jti, "");
  free(t);
  cs_keyring_free(kr);
}

static void test_jwt_tampered(void **state)
{
  struct cs_keyring *kr = fixed_keyring();
  size_t n = strlen(KAT_TOKEN);
  char tok[sizeof KAT_TOKEN], *t;
  struct cs_jwt_claims got;
  (void)state;

  memcpy(tok, KAT_TOKEN, sizeof tok);
  for (size_t i = 0; i < n; i++) {
    char orig = tok[i];
    if (orig == '.')
      continue;
    tok[i] = orig == 'A' ? 'B' : 'A';
    expect_bad(kr, tok, KAT_NOW);
    tok[i] = orig;
  }
  expect_ok(kr, tok, KAT_NOW, &got); /* control */

  /* Payload re-encoded with another role but the old signature. */
  {
    char *p = enc("{\"sub\":\"AKIDEXAMPLE\",\"role\":\"root\",\"iat\":1700000000,"
                  "\"exp\":1700003600,\"jti\":\"0123456789abcdef0123456789abcdef\"}",
                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    const char *d1 = strchr(KAT_TOKEN, '.'), *d2 = strrchr(KAT_TOKEN, '.');
    size_t cap = n + 64;
    t = malloc(cap);
    assert_non_null(t);
    snprintf(t, cap, "%.*s.%s%s", (int)(d1 - KAT_TOKEN), KAT_TOKEN, p, d2);
    expect_bad(kr, t, KAT_NOW);
    free(t);
    free(p);
  }
  /* Signature truncated, extended, or zeroed. */
  memcpy(tok, KAT_TOKEN, sizeof tok);
  expect_bad_len(kr, tok, n - 1, KAT_NOW);
  expect_bad_len(kr, tok, n + 1, KAT_NOW); /* includes the NUL */
  memset(strrchr(tok, '.') + 1, 'A', 43);
  expect_bad(kr, tok, KAT_NOW);
  cs_keyring_free(kr);
}

static void test_jwt_bad_base64(void **state)
{
  static const char *const swaps = "+/= *\n";
  struct cs_keyring *kr = fixed_keyring();
  char *h = enc(JWT_HDR, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *p_pad = enc("{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
                    sodium_base64_VARIANT_URLSAFE);
  char *p_std = enc("{\"sub\":\"~~~>>>~~~ooo\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
                    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  char *p_url = enc("{\"sub\":\"~~~>>>~~~ooo\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000}",
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *t, tok[sizeof KAT_TOKEN];
  struct cs_jwt_claims got;
  (void)state;

  /* Validly signed, but with padding or the standard alphabet. */
  assert_non_null(strchr(p_pad, '='));
  t = sign_parts(h, p_pad, fix_jwt_key);
  expect_bad(kr, t, KAT_NOW);
  free(t);
  assert_non_null(strpbrk(p_std, "+/"));
  t = sign_parts(h, p_std, fix_jwt_key);
  expect_bad(kr, t, KAT_NOW);
  free(t);
  t = sign_parts(h, p_url, fix_jwt_key); /* control: same payload, url alphabet */
  expect_ok(kr, t, KAT_NOW, &got);
  assert_string_equal(got.sub, "~~~>>>~~~ooo");
  free(t);

  /* Signature with padding appended, and bad characters anywhere. */
  {
    size_t cap = sizeof KAT_TOKEN + 1;
    char *padded = malloc(cap);
    assert_non_null(padded);
    snprintf(padded, cap, "%s=", KAT_TOKEN);
    expect_bad(kr, padded, KAT_NOW);
    free(padded);
  }
  memcpy(tok, KAT_TOKEN, sizeof tok);
  for (const char *s = swaps; *s; s++) {
    for (size_t i = 5; i < sizeof tok - 1; i += 37) {
      char orig = tok[i];
      if (orig == '.')
        continue;
      tok[i] = *s;
      expect_bad(kr, tok, KAT_NOW);
      tok[i] = orig;
    }
  }
  free(h);
  free(p_pad);
  free(p_std);
  free(p_url);
  cs_keyring_free(kr);
}

static void test_jwt_segments(void **state)
{
  struct cs_keyring *kr = fixed_keyring();
  char buf[2 * sizeof KAT_TOKEN];
  const char *d2 = strrchr(KAT_TOKEN, '.');
  (void)state;

  snprintf(buf, sizeof buf, "%.*s", (int)(d2 - KAT_TOKEN), KAT_TOKEN); /* 2 parts */
  expect_bad(kr, buf, KAT_NOW);
  snprintf(buf, sizeof buf, "%s.%s", KAT_TOKEN, d2 + 1); /* 4 parts */
  expect_bad(kr, buf, KAT_NOW);
  snprintf(buf, sizeof buf, "%s.", KAT_TOKEN);
  expect_bad(kr, buf, KAT_NOW);
  snprintf(buf, sizeof buf, ".%s", KAT_TOKEN);
  expect_bad(kr, buf, KAT_NOW);
  expect_bad(kr, "..", KAT_NOW);
  expect_bad(kr, "...", KAT_NOW);
  expect_bad(kr, "abc", KAT_NOW);
  expect_bad_len(kr, KAT_TOKEN, 0, KAT_NOW);
  expect_bad_len(kr, NULL, 10, KAT_NOW);
  cs_keyring_free(kr);
}

static void test_jwt_other_keyring(void **state)
{
  struct cs_keyring *a = new_keyring(NULL), *b = new_keyring(NULL), *fixed = fixed_keyring();
  struct cs_jwt_claims c = {.sub = "k", .role = "reader", .iat = 1, .exp = 1800000000}, got;
  char *t = NULL;
  (void)state;

  assert_int_equal(cs_jwt_mint(a, &c, &t), CS_OK);
  expect_ok(a, t, KAT_NOW, &got);
  expect_bad(b, t, KAT_NOW);
  expect_bad(fixed, t, KAT_NOW);
  expect_bad(a, KAT_TOKEN, KAT_NOW);
  free(t);
  cs_keyring_free(a);
  cs_keyring_free(b);
  cs_keyring_free(fixed);
}

static void test_jwt_overlong(void **state)
{
  struct cs_keyring *kr = fixed_keyring();
  char payload[1200], pad[1100];
  bool saw_ok = false, saw_long = false;
  struct cs_jwt_claims got;
  (void)state;

  /* Validly signed tokens around the limit: accepted up to it, refused past it. */
  for (size_t n = 640; n < 660; n++) {
    char *t;
    memset(pad, 'p', n);
    pad[n] = 0;
    snprintf(payload, sizeof payload,
             "{\"sub\":\"a\",\"role\":\"r\",\"iat\":1,\"exp\":1800000000,\"x\":\"%s\"}", pad);
    t = craft(JWT_HDR, payload);
    if (strlen(t) <= CS_JWT_MAX_LEN) {
      expect_ok(kr, t, KAT_NOW, &got);
      saw_ok = true;
    } else {
      expect_bad(kr, t, KAT_NOW);
      saw_long = true;
    }
    free(t);
  }
  assert_true(saw_ok && saw_long);
  cs_keyring_free(kr);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hmac_rfc4231),
      cmocka_unit_test(test_digest_kat),
      cmocka_unit_test(test_chain_hash_kat),
      cmocka_unit_test(test_chain_key_stable_across_rotate_and_reload),
      cmocka_unit_test(test_secret_hash),
      cmocka_unit_test(test_base64_vectors),
      cmocka_unit_test(test_base64_rejects),
      cmocka_unit_test(test_b64url),
      cmocka_unit_test(test_hex_random),
      cmocka_unit_test(test_seal_roundtrip),
      cmocka_unit_test(test_seal_nonce_fresh),
      cmocka_unit_test(test_seal_layout_independent),
      cmocka_unit_test(test_seal_tamper_every_byte),
      cmocka_unit_test(test_seal_truncated_and_wrong_record),
      cmocka_unit_test(test_seal_relabelled_version),
      cmocka_unit_test(test_keyring_roundtrip),
      cmocka_unit_test(test_keyring_wrong_master_key),
      cmocka_unit_test(test_keyring_truncated_and_garbage),
      cmocka_unit_test(test_keyring_tamper_every_byte),
      cmocka_unit_test(test_keyring_rotate),
      cmocka_unit_test(test_keyring_rotate_limit),
      cmocka_unit_test(test_passphrase),
      cmocka_unit_test(test_passphrase_invalid),
      cmocka_unit_test(test_kdf_params_new),
      cmocka_unit_test(test_keyfile_formats),
      cmocka_unit_test(test_keyfile_rejects),
      cmocka_unit_test(test_generate_file),
      cmocka_unit_test(test_jwt_kat),
      cmocka_unit_test(test_jwt_roundtrip),
      cmocka_unit_test(test_jwt_mint_invalid),
      cmocka_unit_test(test_jwt_alg),
      cmocka_unit_test(test_jwt_claims),
      cmocka_unit_test(test_jwt_tampered),
      cmocka_unit_test(test_jwt_bad_base64),
      cmocka_unit_test(test_jwt_segments),
      cmocka_unit_test(test_jwt_other_keyring),
      cmocka_unit_test(test_jwt_overlong),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
