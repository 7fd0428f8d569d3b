/*
 * Writes the corpus seeds that need the fixed keyring: valid JWTs and
 * unsigned "header.payload" inputs for fuzz_jwt, keyring and sealed blobs
 * for fuzz_keyring. Deterministic (see fuzz_common.c), so `--check` can
 * tell whether the committed seeds are still the ones the harnesses accept.
 *
 *   fuzz_seedgen CORPUS_DIR           (re)write the seeds
 *   fuzz_seedgen --check CORPUS_DIR   exit 1 if any differs or is missing
 */
#include "fuzz_common.h"
#include "crypto_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;
static bool check;
static int failures;

static void put(const char *harness, const char *name, const void *a, size_t alen, const void *b,
                size_t blen)
{
  char path[4096];
  FILE *f;

  snprintf(path, sizeof path, "%s/%s", root, harness);
  if (!check && mkdir(path, 0755) != 0 && errno != EEXIST)
    cs_fuzz_fail("mkdir %s", path);
  snprintf(path, sizeof path, "%s/%s/%s", root, harness, name);
  if (check) {
    uint8_t buf[16384];
    size_t n;
    f = fopen(path, "rb");
    n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (!f || n != alen + blen || memcmp(buf, a, alen) != 0 ||
        (blen && memcmp(buf + alen, b, blen) != 0)) {
      fprintf(stderr, "seed differs or is missing: %s\n", path);
      failures++;
    }
    if (f)
      fclose(f);
    return;
  }
  f = fopen(path, "wb");
  if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) ||
      fclose(f) != 0)
    cs_fuzz_fail("cannot write %s", path);
}

/* ------------------------------------------------------------- fuzz_jwt */

static void jwt(const char *name, const char *sub, const char *role, int64_t iat, int64_t exp)
{
  const struct cs_keyring *kr = cs_fuzz_keyring();
  struct cs_jwt_claims c = {.iat = iat, .exp = exp};
  char *tok = NULL;

  snprintf(c.sub, sizeof c.sub, "%s", sub);
  snprintf(c.role, sizeof c.role, "%s", role);
  if (cs_jwt_mint(kr, &c, &tok) != CS_OK)
    cs_fuzz_fail("cs_jwt_mint %s", name);
  put("fuzz_jwt", name, tok, strlen(tok), NULL, 0);
  free(tok);
}

/* "b64url(header).b64url(payload)": fuzz_jwt signs these itself. */
static void unsigned_jwt(const char *name, const char *header, const char *payload)
{
  char *h = cs_b64url_encode((const uint8_t *)header, strlen(header));
  char *p = cs_b64url_encode((const uint8_t *)payload, strlen(payload));
  char buf[2048];

  if (!h || !p)
    cs_fuzz_fail("out of memory");
  snprintf(buf, sizeof buf, "%s.%s", h, p);
  put("fuzz_jwt", name, buf, strlen(buf), NULL, 0);
  free(h);
  free(p);
}

static void jwt_seeds(void)
{
  const int64_t now = CS_FUZZ_NOW;
  char pl[512];

  jwt("valid-admin", "ak_3f9c2e7a1b04d5e6c7a8", "admin", now - 60, now + 600);
  jwt("valid-reader", "ak_0a1b2c3d4e5f60718293", "reader", now - 5, now + 86400);
  jwt("valid-consumer", "ak_consumer01", "consumer", now, now + 1);
  jwt("expired", "ak_3f9c2e7a1b04d5e6c7a8", "admin", now - 7200, now - 600);
  jwt("long-sub", "ak_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab", "admin", now,
      now + 600);

  static const char hs[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  snprintf(pl, sizeof pl,
           "{\"sub\":\"ak_3f9c2e7a1b04d5e6c7a8\",\"role\":\"admin\",\"iat\":%lld,\"exp\":%lld,"
           "\"jti\":\"4f1c9e0d2b7a6c5e8d3f0a1b2c3d4e5f\"}",
           (long long)now - 60, (long long)now + 600);
  unsigned_jwt("unsigned-valid", hs, pl);
  unsigned_jwt("unsigned-alg-none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", pl);
  unsigned_jwt("unsigned-alg-rs256", "{\"alg\":\"RS256\",\"kid\":\"k1\"}", pl);
  snprintf(pl, sizeof pl, "{\"sub\":\"ak_1\",\"role\":\"admin\",\"iat\":%lld}", (long long)now);
  unsigned_jwt("unsigned-no-exp", hs, pl);
  snprintf(pl, sizeof pl, "{\"sub\":\"ak_1\",\"role\":\"admin\",\"iat\":1.5e3,\"exp\":%lld.0}",
           (long long)now + 60);
  unsigned_jwt("unsigned-float-times", hs, pl);
  unsigned_jwt("unsigned-nested", hs,
               "{\"sub\":{\"a\":[1]},\"role\":[\"admin\"],\"iat\":0,\"exp\":9007199254740993}");
  snprintf(pl, sizeof pl,
           "{\"sub\":\"ak_\\u00e9\\n\\\"x\",\"role\":\"admin\",\"iat\":0,\"exp\":%lld,"
           "\"sub\":\"dup\"}",
           (long long)now + 60);
  unsigned_jwt("unsigned-escapes-dup", hs, pl);
}

/* --------------------------------------------------------- fuzz_keyring */

static void keyring_seeds(void)
{
  const struct cs_keyring *kr = cs_fuzz_keyring();
  const struct cs_master_key *mk = cs_fuzz_master_key();
  struct cs_keyring *big = NULL;
  uint8_t *blob = NULL, *sealed = NULL;
  size_t len = 0, slen = 0;
  static const uint8_t load_mode = 0, open_mode = 1, trip_mode = 2;
  static const char *const plains[] = {
      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "{\"clientId\":\"3897ad90-e584-4307-801d-cfffdae92bcc\",\"clientSecret\":\"cLJ8Q~P-2\"}",
      "",
  };
  static const char *const names[] = {"open-aws-secret", "open-azure-json", "open-empty"};

  if (cs_keyring_export(kr, &blob, &len) != CS_OK)
    cs_fuzz_fail("cs_keyring_export");
  put("fuzz_keyring", "load-2-versions", &load_mode, 1, blob, len);
  free(blob);

  if (cs_keyring_create(mk, &big) != CS_OK || cs_keyring_rotate(big) != CS_OK ||
      cs_keyring_rotate(big) != CS_OK || cs_keyring_rotate(big) != CS_OK ||
      cs_keyring_export(big, &blob, &len) != CS_OK)
    cs_fuzz_fail("a 4-version keyring");
  put("fuzz_keyring", "load-4-versions", &load_mode, 1, blob, len);
  free(blob);
  cs_keyring_free(big);

  for (size_t i = 0; i < sizeof plains / sizeof plains[0]; i++) {
    if (cs_seal(kr, CS_FUZZ_RECORD_ID, (const uint8_t *)plains[i], strlen(plains[i]), &sealed,
                &slen) != CS_OK)
      cs_fuzz_fail("cs_seal");
    put("fuzz_keyring", names[i], &open_mode, 1, sealed, slen);
    free(sealed);
  }

  static const char trip1[] = "prod-aws-billing\0wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  static const char trip2[] = "kube.prod_eu-1\0apiVersion: v1\nkind: Config\n";
  put("fuzz_keyring", "seal-aws", &trip_mode, 1, trip1, sizeof trip1 - 1);
  put("fuzz_keyring", "seal-kube", &trip_mode, 1, trip2, sizeof trip2 - 1);
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--check") == 0) {
    check = true;
    root = argv[2];
  } else if (argc == 2 && argv[1][0] != '-') {
    root = argv[1];
  } else {
    fprintf(stderr, "usage: %s [--check] CORPUS_DIR\n", argv[0]);
    return 2;
  }
  /* The fixed keyring first: it must be built from the same draws as in the harnesses. */
  (void)cs_fuzz_keyring();
  jwt_seeds();
  keyring_seeds();
  if (failures) {
    fprintf(stderr, "%d seed(s) differ: regenerate with %s %s\n", failures, argv[0], root);
    return 1;
  }
  printf("%s: seeds %s\n", root, check ? "match" : "written");
  return 0;
}
