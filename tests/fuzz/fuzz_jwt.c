/*
 * A bearer token (Authorization: Bearer … or X-Redlock-Auth).
 *
 * Inputs with two dots are verified as they are, against the fixed keyring
 * (fuzz_seedgen mints the corpus's valid tokens with it). The fuzzer can't
 * forge an HMAC, so an input with exactly one dot ("header.payload") is
 * signed here with the keyring's JWT key before it is verified: that is
 * how mutated headers and payloads reach the claim parser. Whatever
 * verifies is minted again from its claims and must verify to the same
 * claims.
 */
#include "fuzz_common.h"
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  (void)cs_fuzz_keyring();
  return 0;
}

static void check_claims(const struct cs_jwt_claims *c)
{
  cs_fuzz_check_terminated("sub", c->sub, sizeof c->sub);
  cs_fuzz_check_terminated("role", c->role, sizeof c->role);
  cs_fuzz_check_terminated("jti", c->jti, sizeof c->jti);
  if (!c->sub[0] || !c->role[0])
    cs_fuzz_fail("a token without sub or role verified");
  if (c->exp <= CS_FUZZ_NOW || c->iat < 0)
    cs_fuzz_fail("a token with exp %lld, iat %lld verified", (long long)c->exp, (long long)c->iat);
}

/* mint(claims) must verify back to the same claims. */
static void check_remint(const struct cs_keyring *kr, const struct cs_jwt_claims *c)
{
  struct cs_jwt_claims back;
  char *tok = NULL;
  enum cs_err e = cs_jwt_mint(kr, c, &tok);

  if (e == CS_ERR_INVALID)
    return; /* claims that escape past CS_JWT_MAX_LEN */
  if (e != CS_OK)
    cs_fuzz_fail("cs_jwt_mint returned %s", cs_err_code(e));
  if (cs_jwt_verify(kr, tok, strlen(tok), CS_FUZZ_NOW, &back) != CS_OK)
    cs_fuzz_fail("a minted token does not verify: %s", tok);
  if (strcmp(back.sub, c->sub) || strcmp(back.role, c->role) || back.iat != c->iat ||
      back.exp != c->exp || (c->jti[0] && strcmp(back.jti, c->jti)))
    cs_fuzz_fail("claims changed through mint and verify: %s", tok);
  free(tok);
}

/* A token is three base64url parts: one that verifies holds nothing else,
 * or the same token has other spellings (a second token id for a cache,
 * a log or a deny list keyed by the token text). */
static void check_alphabet(const char *tok, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)tok[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      cs_fuzz_fail("a token with byte 0x%02x at offset %zu verified", c, i);
  }
}

static void verify(const struct cs_keyring *kr, const char *tok, size_t len)
{
  struct cs_jwt_claims c;

  memset(&c, 0x5a, sizeof c);
  if (cs_jwt_verify(kr, tok, len, CS_FUZZ_NOW, &c) != CS_OK)
    return;
  check_alphabet(tok, len);
  check_claims(&c);
  check_remint(kr, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const struct cs_keyring *kr = cs_fuzz_keyring();
  const char *dot = memchr(data, '.', size);
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  char *sig, *tok;
  size_t n;

  /* Exactly size bytes, no NUL after them: verify must not read past. */
  verify(kr, (const char *)data, size);
  if (!dot || memchr(dot + 1, '.', size - (size_t)(dot + 1 - (const char *)data)))
    return 0;

  cs_hmac_sha256(cs_kr_jwt_key(kr), CS_KEY_BYTES, data, size, mac);
  sig = cs_b64url_encode(mac, sizeof mac);
  if (!sig)
    cs_fuzz_fail("out of memory");
  n = size + 1 + strlen(sig);
  tok = malloc(n);
  if (!tok)
    cs_fuzz_fail("out of memory");
  memcpy(tok, data, size);
  tok[size] = '.';
  memcpy(tok + size + 1, sig, strlen(sig));
  verify(kr, tok, n);
  free(tok);
  free(sig);
  return 0;
}
