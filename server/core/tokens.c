/* Login tokens (API.md §2): HS256 JWTs minted for an access key, checked
 * against the key's live record on every use. */
#include "core_internal.h"

#include <stdio.h>
#include <string.h>

/* Verifying a JWT (base64, two JSON parses, HMAC) was the largest part of a
 * Bearer request. Each thread remembers the last few tokens it verified,
 * compared byte for byte in constant time; expiry is checked on every use
 * and the key record (revocation) is still read every request. */
#define TOKEN_CACHE 4

struct token_slot {
  const struct cs_keyring *kr;
  size_t len;
  char token[CS_JWT_MAX_LEN];
  struct cs_jwt_claims claims;
};

static _Thread_local struct token_slot token_cache[TOKEN_CACHE];
static _Thread_local unsigned token_next;

static enum cs_err verify_token(const struct cs_keyring *kr, const char *token, size_t len,
                                int64_t now, struct cs_jwt_claims *out)
{
  if (len == 0 || len > CS_JWT_MAX_LEN)
    return CS_ERR_BAD_TOKEN;
  for (unsigned i = 0; i < TOKEN_CACHE; i++) {
    struct token_slot *s = &token_cache[i];
    if (s->kr == kr && s->len == len && cs_bytes_equal(s->token, token, len)) {
      if (s->claims.exp <= now)
        return CS_ERR_BAD_TOKEN;
      *out = s->claims;
      return CS_OK;
    }
  }
  if (cs_jwt_verify(kr, token, len, now, out))
    return CS_ERR_BAD_TOKEN;
  struct token_slot *s = &token_cache[token_next++ % TOKEN_CACHE];
  s->kr = kr;
  s->len = len;
  memcpy(s->token, token, len);
  s->claims = *out;
  return CS_OK;
}

enum cs_err cs_token_check(struct cs_core *c, const char *token, struct cs_principal *who)
{
  struct cs_jwt_claims claims;
  enum cs_err e;

  while (*token == ' ')
    token++;
  if (verify_token(c->keyring, token, strlen(token), cs_now(), &claims))
    return CS_ERR_BAD_TOKEN;
  /* A deleted or expired key's tokens stop working at once. */
  e = cs_keys_load_live(c, claims.sub, who);
  return e == CS_ERR_NOT_FOUND ? CS_ERR_BAD_TOKEN : e;
}

void cs_core_store_id(const struct cs_core *c, char out[33])
{
  static const uint8_t zero[CS_HASH_BYTES];
  static const char label[] = "credstore store id";
  uint8_t h[CS_HASH_BYTES];
  cs_chain_hash(c->keyring, zero, label, sizeof label - 1, h);
  cs_hex(h, 16, out);
}

enum cs_err cs_token_issue(struct cs_core *c, const struct cs_principal *who, int64_t ttl,
                           char **token)
{
  struct cs_jwt_claims claims = {0};
  int64_t now = cs_now();

  snprintf(claims.sub, sizeof claims.sub, "%s", who->key_id);
  snprintf(claims.role, sizeof claims.role, "%s", cs_role_name(who->role));
  claims.iat = now;
  claims.exp = now + (ttl > 0 ? ttl : c->opts.token_ttl);
  if (who->expires_at && who->expires_at < claims.exp)
    claims.exp = who->expires_at; /* a token never outlives its key */
  return cs_jwt_mint(c->keyring, &claims, token);
}
