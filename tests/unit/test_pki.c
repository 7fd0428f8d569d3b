/*
 * Unit tests for crypto/pki.c (GnuTLS): RS256 signatures and certificate
 * descriptions, checked against OpenSSL's command line, an independent
 * implementation: a known answer with a committed fake key
 * (tests/fixtures/pki/), keys and certificates generated at test time and
 * verified or described by `openssl`, and every refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CS_FIXTURES_DIR
#error "CS_FIXTURES_DIR must name tests/fixtures"
#endif

static char dir[64];

/* `printf 'credstore RS256 known answer\n' | openssl dgst -sha256 -sign
 * tests/fixtures/pki/rsa2048.pkcs8.pem | xxd -p` */
static const char KAT_MSG[] = "credstore RS256 known answer\n";
static const char KAT_SIG[] = "a394584f57782d3154c156018d25994df0c2d4f5e592e13330517b04895ba35e"
                              "e627b6e984ba3d33880dca67340f286bcd4c04aa977dbf1b299a565f3a7e19ba"
                              "9ebe3eeda7b640b0d94b01690c9de6b3c387cc90d2644d85891b534258c9a270"
                              "d70c88cde1fe9b28e979bd2c20d881dee8080b863ae85a8b9f63db64cd7d3597"
                              "5c67e04c57325849bd19302e38d1d3e21f6c7b0ff154218e590bc0ab3ba9f6c4"
                              "caa32857496e096111324864b41e31ba5e4d759a5e319efff1c6673a64d17f23"
                              "d2924ede3d3a7d9d9d45361e21163df5476cc4e4bf4f69feddf9a980b12d41f4"
                              "732aacc819a3d50a67ccf582310a0a618073d5902e8d949082b179caedd0827c";

/* ---------------------------------------------------------------- helpers */

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static char *read_in(const char *name, size_t *len)
{
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return slurp(path, len);
}

static void write_in(const char *name, const void *data, size_t len)
{
  char path[256];
  FILE *f;

  snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_non_null(f = fopen(path, "wb"));
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* Run a shell command in the temporary directory; it must succeed. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
  char cmd[2048];
  va_list ap;
  int n = snprintf(cmd, sizeof cmd, "cd '%s' && (", dir);

  va_start(ap, fmt);
  n += vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
  va_end(ap);
  assert_true((size_t)n + 20 < sizeof cmd);
  snprintf(cmd + n, sizeof cmd - (size_t)n, ") >/dev/null 2>&1");
  if (system(cmd) != 0)
    fail_msg("command failed: %s", cmd);
}

/* First line of a command's output, trimmed. */
static void sh_out(char *out, size_t cap, const char *cmd)
{
  char full[1024];
  FILE *p;

  snprintf(full, sizeof full, "cd '%s' && %s", dir, cmd);
  assert_non_null(p = popen(full, "r"));
  assert_non_null(fgets(out, (int)cap, p));
  assert_int_equal(pclose(p), 0);
  out[strcspn(out, "\r\n")] = '\0';
}

static char *cat2(const char *a, size_t na, const char *b, size_t nb, size_t *n)
{
  char *s = malloc(na + nb + 1);
  assert_non_null(s);
  memcpy(s, a, na);
  memcpy(s + na, b, nb);
  s[na + nb] = '\0';
  *n = na + nb;
  return s;
}

static int setup(void **state)
{
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/cs-pki-XXXXXX");
  assert_non_null(mkdtemp(dir));
  /* Two RSA keys, an EC key, a CA, a leaf it signs, and self-signed certs. */
  sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out a.key && "
     "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out b.key && "
     "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out small.key && "
     "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key && "
     "openssl pkey -in a.key -pubout -out a.pub && openssl pkey -in b.key -pubout -out b.pub && "
     "openssl pkcs8 -topk8 -in a.key -passout pass:secret -out enc.key && "
     "openssl pkey -in a.key -traditional -aes256 -passout pass:secret -out enc1.key && "
     "openssl req -x509 -key a.key -subj '/CN=client.example/O=credstore test' -days 30 "
     "  -out a.crt && "
     "openssl req -x509 -key ec.key -subj '/CN=ec.example' -days 400 -out ec.crt && "
     "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj '/CN=Test CA/O=credstore' "
     "  -days 60 -out ca.crt && "
     "openssl req -new -key b.key -subj '/CN=leaf.example' -out leaf.csr && "
     "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 10 "
     "  -out leaf.crt");
  return 0;
}

static int teardown(void **state)
{
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ RS256 */

static void sign_file_key(const char *path, char hex[1025])
{
  size_t klen, slen;
  char *key = slurp(path, &klen);
  uint8_t *sig = NULL;
  const char *why = NULL;

  assert_int_equal(cs_rs256_sign(key, klen, KAT_MSG, strlen(KAT_MSG), &sig, &slen, &why), CS_OK);
  assert_int_equal(slen, 256);
  cs_hex(sig, slen, hex);
  free(sig);
  free(key);
}

static void test_rs256_known_answer(void **state)
{
  char hex[1025];
  (void)state;
  sign_file_key(CS_FIXTURES_DIR "/pki/rsa2048.pkcs8.pem", hex);
  assert_string_equal(hex, KAT_SIG);
  /* The same key in PKCS#1 form signs the same (RS256 is deterministic). */
  sign_file_key(CS_FIXTURES_DIR "/pki/rsa2048.pkcs1.pem", hex);
  assert_string_equal(hex, KAT_SIG);
}

/* A key made now, a signature OpenSSL must verify, and one it must not. */
static void sign_and_verify(const char *key_name, const char *pub_name)
{
  static const char msg[] = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0";
  char cmd[256], out[128];
  size_t klen, slen;
  char *key = read_in(key_name, &klen);
  uint8_t *sig = NULL;

  assert_int_equal(cs_rs256_sign(key, klen, msg, strlen(msg), &sig, &slen, NULL), CS_OK);
  write_in("msg", msg, strlen(msg));
  write_in("sig", sig, slen);
  snprintf(cmd, sizeof cmd, "openssl dgst -sha256 -verify %s -signature sig msg", pub_name);
  sh_out(out, sizeof out, cmd);
  assert_string_equal(out, "Verified OK");
  sig[slen / 2] ^= 1;
  write_in("sig", sig, slen);
  snprintf(cmd, sizeof cmd, "openssl dgst -sha256 -verify %s -signature sig msg >/dev/null 2>&1",
           pub_name);
  char full[512];
  snprintf(full, sizeof full, "cd '%s' && %s", dir, cmd);
  assert_int_not_equal(system(full), 0);
  free(sig);
  free(key);
}

static void test_rs256_verifies_with_openssl(void **state)
{
  (void)state;
  sign_and_verify("a.key", "a.pub"); /* 2048 bits, PKCS#8 */
  sign_and_verify("b.key", "b.pub"); /* 3072 bits */
}

static void expect_sign_refused(const char *pem, size_t len, const char *why_part)
{
  uint8_t *sig = (uint8_t *)"unchanged";
  size_t slen = 7;
  const char *why = NULL;

  assert_int_equal(cs_rs256_sign(pem, len, "x", 1, &sig, &slen, &why), CS_ERR_INVALID);
  assert_string_equal((const char *)sig, "unchanged");
  assert_int_equal(slen, 7);
  assert_non_null(why);
  if (!strstr(why, why_part))
    fail_msg("message '%s' lacks '%s'", why, why_part);
  assert_null(strstr(why, "MII")); /* never a piece of the key */
}

static void test_rs256_refusals(void **state)
{
  size_t n, n2;
  char *s, *s2;
  (void)state;

  expect_sign_refused("", 0, "missing");
  expect_sign_refused("not a key at all", 16, "no unencrypted PEM private key");
  s = read_in("ec.key", &n);
  expect_sign_refused(s, n, "RSA");
  free(s);
  s = read_in("small.key", &n);
  expect_sign_refused(s, n, "2048");
  free(s);
  s = read_in("enc.key", &n);
  expect_sign_refused(s, n, "encrypted");
  free(s);
  s = read_in("enc1.key", &n);
  expect_sign_refused(s, n, "encrypted");
  free(s);
  s = read_in("a.crt", &n); /* a certificate is not a key */
  expect_sign_refused(s, n, "no unencrypted PEM private key");
  free(s);
  s = read_in("a.key", &n); /* truncated in the middle of the base64 */
  expect_sign_refused(s, n / 2, "no unencrypted PEM private key");
  /* A PEM key with one base64 character changed no longer parses as a key. */
  s[40] = s[40] == 'A' ? 'B' : 'A';
  s[41] = '!';
  expect_sign_refused(s, n, "no unencrypted PEM private key");
  free(s);
  /* Bounded before GnuTLS sees it. */
  s = read_in("a.key", &n);
  s2 = calloc(1, CS_PKI_PEM_MAX + 1);
  assert_non_null(s2);
  memcpy(s2, s, n);
  memset(s2 + n, '\n', CS_PKI_PEM_MAX + 1 - n);
  n2 = CS_PKI_PEM_MAX + 1;
  expect_sign_refused(s2, n2, "64 KiB");
  free(s2);
  free(s);
}

/* ----------------------------------------------------------- certificates */

/* What OpenSSL says: RFC 2253 subject or issuer, ISO end date, SHA-256. */
static void openssl_facts(const char *crt, char *subject, char *issuer, char *not_after,
                          char *sha256)
{
  char cmd[256], buf[512];
  size_t j = 0;

  snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -subject -nameopt RFC2253", crt);
  sh_out(buf, sizeof buf, cmd);
  snprintf(subject, 512, "%s", buf + strlen("subject="));
  snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -issuer -nameopt RFC2253", crt);
  sh_out(buf, sizeof buf, cmd);
  snprintf(issuer, 512, "%s", buf + strlen("issuer="));
  snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -enddate -dateopt iso_8601", crt);
  sh_out(buf, sizeof buf, cmd); /* notAfter=2025-01-31 10:00:00Z */
  snprintf(not_after, 32, "%.10sT%.9s", buf + 9, buf + 20);
  snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -fingerprint -sha256", crt);
  sh_out(buf, sizeof buf, cmd); /* sha256 Fingerprint=AB:CD:... */
  for (const char *p = strchr(buf, '=') + 1; *p; p++)
    if (*p != ':')
      sha256[j++] = (char)tolower((unsigned char)*p);
  sha256[j] = '\0';
}

static void describe_ok(const char *const *files, size_t nfiles, const char *crt_for_facts)
{
  char subject[512], issuer[512], not_after[32], sha256[128];
  struct cs_cert_info info;
  struct cs_pki_error err = {0};
  char *all = NULL;
  size_t len = 0;

  for (size_t i = 0; i < nfiles; i++) {
    size_t n;
    char *s = read_in(files[i], &n), *joined = cat2(all ? all : "", len, s, n, &len);
    free(all);
    free(s);
    all = joined;
  }
  memset(&info, 0, sizeof info);
  assert_int_equal(cs_cert_describe(all, len, &info, &err), CS_OK);
  openssl_facts(crt_for_facts, subject, issuer, not_after, sha256);
  assert_string_equal(info.subject, subject);
  assert_string_equal(info.issuer, issuer);
  assert_string_equal(info.not_after, not_after);
  assert_string_equal(info.sha256, sha256);
  assert_true(info.not_after_epoch > cs_now());
  free(all);
}

static void test_describe_self_signed(void **state)
{
  static const char *const rsa[] = {"a.crt", "a.key"};
  static const char *const ec[] = {"ec.crt", "ec.key"};
  static const char *const key_first[] = {"a.key", "a.crt"};
  (void)state;
  describe_ok(rsa, 2, "a.crt");
  describe_ok(ec, 2, "ec.crt");
  describe_ok(key_first, 2, "a.crt");
}

static void test_describe_chain_describes_the_leaf(void **state)
{
  static const char *const chain[] = {"leaf.crt", "ca.crt", "b.key"};
  char ca_subject[512], ignored[512], na[32], fp[128], leaf_issuer[512];
  (void)state;

  describe_ok(chain, 3, "leaf.crt");
  /* The issuer is the CA's subject, as OpenSSL reads it. */
  openssl_facts("ca.crt", ca_subject, ignored, na, fp);
  openssl_facts("leaf.crt", ignored, leaf_issuer, na, fp);
  assert_string_equal(leaf_issuer, ca_subject);
}

static void expect_describe_fault(const char *const *files, size_t nfiles, const char *raw,
                                  enum cs_pki_fault fault, const char *msg_part)
{
  struct cs_cert_info info;
  struct cs_pki_error err = {0};
  char *all = raw ? strdup(raw) : NULL;
  size_t len = raw ? strlen(raw) : 0;

  for (size_t i = 0; i < nfiles; i++) {
    size_t n;
    char *s = read_in(files[i], &n), *joined = cat2(all ? all : "", len, s, n, &len);
    free(all);
    free(s);
    all = joined;
  }
  memset(&info, 0x5a, sizeof info);
  assert_int_equal(cs_cert_describe(all ? all : "", len, &info, &err), CS_ERR_INVALID);
  assert_int_equal(err.fault, fault);
  if (!strstr(err.msg, msg_part))
    fail_msg("message '%s' lacks '%s'", err.msg, msg_part);
  assert_null(strstr(err.msg, "MII"));
  assert_int_equal((unsigned char)info.subject[0], 0x5a); /* untouched */
  free(all);
}

static void test_describe_refusals(void **state)
{
  static const char *const mismatch[] = {"a.crt", "b.key"};
  static const char *const chain_wrong_key[] = {"leaf.crt", "ca.crt", "ca.key"};
  static const char *const cert_only[] = {"a.crt"};
  static const char *const key_only[] = {"a.key"};
  static const char *const encrypted[] = {"a.crt", "enc.key"};
  static const char *const ec_mismatch[] = {"ec.crt", "a.key"};
  static const char *const none[] = {NULL};
  (void)state;

  expect_describe_fault(mismatch, 2, NULL, CS_PKI_FAULT_MISMATCH, "does not belong");
  /* The CA's key is in the input, but the leaf is what is described. */
  expect_describe_fault(chain_wrong_key, 3, NULL, CS_PKI_FAULT_MISMATCH, "does not belong");
  expect_describe_fault(ec_mismatch, 2, NULL, CS_PKI_FAULT_MISMATCH, "does not belong");
  expect_describe_fault(cert_only, 1, NULL, CS_PKI_FAULT_KEY, "private key");
  expect_describe_fault(key_only, 1, NULL, CS_PKI_FAULT_CERT, "certificate");
  expect_describe_fault(encrypted, 2, NULL, CS_PKI_FAULT_KEY, "encrypted");
  expect_describe_fault(none, 0, "garbage, not PEM", CS_PKI_FAULT_CERT, "certificate");
  expect_describe_fault(none, 0, "", CS_PKI_FAULT_CERT, "missing");
  expect_describe_fault(none, 0,
                        "-----BEGIN CERTIFICATE-----\nMIIBbroken\n-----END CERTIFICATE-----\n",
                        CS_PKI_FAULT_CERT, "certificate");
  /* A good certificate followed by a key block that is not a key. */
  expect_describe_fault(cert_only, 1,
                        "-----BEGIN PRIVATE KEY-----\nMIIBnotakey==\n-----END PRIVATE KEY-----\n",
                        CS_PKI_FAULT_KEY, "private key");
}

/* --------------------------------------------------------- CA bundles */

static void test_pem_certs_count(void **state)
{
  size_t la, lb, n = 0, count = 99, l;
  char *a = read_in("a.crt", &la), *b = read_in("ca.crt", &lb), *both = cat2(a, la, b, lb, &l);
  const char *why = NULL;
  (void)state;

  assert_int_equal(cs_pem_certs_count(a, la, 1 << 20, &count, NULL), CS_OK);
  assert_int_equal(count, 1);
  assert_int_equal(cs_pem_certs_count(both, l, 1 << 20, &count, NULL), CS_OK);
  assert_int_equal(count, 2);
  count = 99;
  assert_int_equal(cs_pem_certs_count("nothing here", 12, 1 << 20, &count, &why), CS_ERR_INVALID);
  assert_int_equal(count, 99);
  assert_non_null(why);
  assert_int_equal(cs_pem_certs_count(both, l, l - 1, &n, &why), CS_ERR_TOO_LARGE);
  free(a), free(b), free(both);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rs256_known_answer),
      cmocka_unit_test(test_rs256_verifies_with_openssl),
      cmocka_unit_test(test_rs256_refusals),
      cmocka_unit_test(test_describe_self_signed),
      cmocka_unit_test(test_describe_chain_describes_the_leaf),
      cmocka_unit_test(test_describe_refusals),
      cmocka_unit_test(test_pem_certs_count),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
