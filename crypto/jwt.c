/*
 * HS256 JSON Web Tokens (RFC 7519) signed with the keyring's JWT key.
 *
 * Only one header is ever minted ({"alg":"HS256","typ":"JWT"}) and only
 * alg HS256 is accepted: the algorithm is fixed here, never chosen by the
 * token, so "none" and algorithm-confusion tricks have nothing to work
 * with. The signature is checked in constant time before any claim in the
 * payload is looked at.
 */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#define JWT_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define JWT_SIG_BYTES crypto_auth_hmacsha256_BYTES
#define JWT_JTI_MAX 32
/* Decoded parts are 3/4 of the encoded size, which is at most CS_JWT_MAX_LEN. */
#define JWT_PART_MAX (CS_JWT_MAX_LEN / 4 * 3 + 3)
#define JWT_JSON_DEPTH 2
/* JSON numbers are doubles; integers beyond 2^53 would not survive. */
#define JWT_TIME_MAX ((int64_t)1 << 53)

_Static_assert(crypto_auth_hmacsha256_KEYBYTES == CS_KEY_BYTES, "HS256 key size");
_Static_assert(sizeof((struct cs_jwt_claims){0}).jti == JWT_JTI_MAX + 1, "jti size");

void cs_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
                    uint8_t out[crypto_auth_hmacsha256_BYTES])
{
  crypto_auth_hmacsha256_state st;

  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, msg, len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st); /* holds the key's inner/outer pads */
}

/* @return strlen of a fixed-size claim field, or 0 if empty or unterminated. */
static size_t field_len(const char *s, size_t size)
{
  size_t n = strnlen(s, size);
  return n < size ? n : 0;
}

/* The payload JSON for @p c with jti @p jti. Caller frees. */
static char *payload_json(const struct cs_jwt_claims *c, const char *jti)
{
  cJSON *o = cJSON_CreateObject();
  char *s = NULL;

  if (!o)
    return NULL;
  if (cJSON_AddStringToObject(o, "sub", c->sub) && cJSON_AddStringToObject(o, "role", c->role) &&
      cJSON_AddNumberToObject(o, "iat", (double)c->iat) &&
      cJSON_AddNumberToObject(o, "exp", (double)c->exp) && cJSON_AddStringToObject(o, "jti", jti))
    s = cs_json_print(o);
  cJSON_Delete(o);
  return s;
}

enum cs_err cs_jwt_mint(const struct cs_keyring *kr, const struct cs_jwt_claims *c, char **out)
{
  uint8_t sig[JWT_SIG_BYTES];
  char jti[sizeof c->jti];
  char *json = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL;
  struct cs_buf b;
  size_t sub_len, role_len, jti_len;
  enum cs_err e = CS_ERR_NOMEM;

  cs_buf_init(&b, CS_JWT_MAX_LEN);
  if (!kr || !c || !out)
    return CS_ERR_INVALID;
  sub_len = field_len(c->sub, sizeof c->sub);
  role_len = field_len(c->role, sizeof c->role);
  jti_len = strnlen(c->jti, sizeof c->jti);
  if (sub_len == 0 || role_len == 0 || jti_len >= sizeof c->jti)
    return CS_ERR_INVALID;
  if (c->iat < 0 || c->iat > JWT_TIME_MAX || c->exp < 0 || c->exp > JWT_TIME_MAX)
    return CS_ERR_INVALID;
  if (jti_len == 0)
    cs_random_hex(jti, 16);
  else
    memcpy(jti, c->jti, jti_len + 1);

  json = payload_json(c, jti);
  h64 = cs_b64url_encode((const uint8_t *)JWT_HEADER, sizeof JWT_HEADER - 1);
  p64 = json ? cs_b64url_encode((const uint8_t *)json, strlen(json)) : NULL;
  if (!json || !h64 || !p64)
    goto out;
  if ((e = cs_buf_append(&b, h64, strlen(h64))) || (e = cs_buf_append(&b, ".", 1)) ||
      (e = cs_buf_append(&b, p64, strlen(p64))))
    goto out;
  cs_hmac_sha256(cs_kr_jwt_key(kr), CS_KEY_BYTES, b.data, b.len, sig);
  s64 = cs_b64url_encode(sig, sizeof sig);
  if (!s64) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  if ((e = cs_buf_append(&b, ".", 1)) || (e = cs_buf_append(&b, s64, strlen(s64))))
    goto out;
  *out = b.data;
  b.data = NULL;
out:
  /* Only possible with claims full of characters JSON must escape. */
  if (e == CS_ERR_TOO_LARGE)
    e = CS_ERR_INVALID;
  free(json);
  free(h64);
  free(p64);
  free(s64);
  cs_buf_free(&b);
  return e;
}

/* Require the header to name alg "HS256"; nothing else is trusted from it. */
static bool header_ok(const char *h64, size_t len)
{
  uint8_t raw[JWT_PART_MAX];
  const cJSON *alg;
  cJSON *j = NULL;
  size_t n = 0;
  bool ok;

  if (cs_b64url_decode(h64, len, raw, sizeof raw, &n) != CS_OK || n == 0)
    return false;
  if (cs_json_parse((const char *)raw, n, JWT_JSON_DEPTH, &j) != CS_OK)
    return false;
  alg = cJSON_GetObjectItemCaseSensitive(j, "alg");
  ok = cJSON_IsObject(j) && cJSON_IsString(alg) && alg->valuestring &&
       strcmp(alg->valuestring, "HS256") == 0;
  cJSON_Delete(j);
  return ok;
}

/* Copy a required string claim of 1..max chars into @p dst[max+1]. */
static bool claim_str(const cJSON *o, const char *name, size_t max, char *dst)
{
  const char *s = NULL;

  if (cs_json_req_string(o, name, max, &s) != CS_OK || s[0] == '\0')
    return false;
  memcpy(dst, s, strlen(s) + 1);
  return true;
}

static bool claim_int(const cJSON *o, const char *name, int64_t *dst)
{
  if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, name)))
    return false;
  return cs_json_opt_int(o, name, 0, JWT_TIME_MAX, dst) == CS_OK;
}

static bool payload_claims(const char *p64, size_t len, int64_t now, struct cs_jwt_claims *c)
{
  uint8_t raw[JWT_PART_MAX];
  const char *jti = NULL;
  cJSON *j = NULL;
  size_t n = 0;
  bool ok = false;

  if (cs_b64url_decode(p64, len, raw, sizeof raw, &n) != CS_OK || n == 0)
    return false;
  if (cs_json_parse((const char *)raw, n, JWT_JSON_DEPTH, &j) != CS_OK)
    return false;
  if (!cJSON_IsObject(j) || !claim_str(j, "sub", CS_JWT_SUB_MAX, c->sub) ||
      !claim_str(j, "role", CS_JWT_ROLE_MAX, c->role) || !claim_int(j, "iat", &c->iat) ||
      !claim_int(j, "exp", &c->exp) || c->exp <= now)
    goto out;
  if (cs_json_opt_string(j, "jti", JWT_JTI_MAX, &jti) != CS_OK)
    goto out;
  if (jti)
    memcpy(c->jti, jti, strlen(jti) + 1);
  ok = true;
out:
  cJSON_Delete(j);
  return ok;
}

enum cs_err cs_jwt_verify(const struct cs_keyring *kr, const char *token, size_t len, int64_t now,
                          struct cs_jwt_claims *out)
{
  struct cs_jwt_claims c;
  uint8_t sig[JWT_SIG_BYTES + 3];
  const char *dot1, *dot2;
  size_t sig_len = 0;

  if (!kr || !token || !out || len == 0 || len > CS_JWT_MAX_LEN)
    return CS_ERR_BAD_TOKEN;
  if (memchr(token, '\0', len))
    return CS_ERR_BAD_TOKEN;
  dot1 = memchr(token, '.', len);
  if (!dot1)
    return CS_ERR_BAD_TOKEN;
  dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
  if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
    return CS_ERR_BAD_TOKEN;

  if (!header_ok(token, (size_t)(dot1 - token)))
    return CS_ERR_BAD_TOKEN;
  if (cs_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof sig, &sig_len) !=
          CS_OK ||
      sig_len != JWT_SIG_BYTES)
    return CS_ERR_BAD_TOKEN;
  if (crypto_auth_hmacsha256_verify(sig, (const unsigned char *)token, (size_t)(dot2 - token),
                                    cs_kr_jwt_key(kr)) != 0)
    return CS_ERR_BAD_TOKEN;

  memset(&c, 0, sizeof c);
  if (!payload_claims(dot1 + 1, (size_t)(dot2 - dot1 - 1), now, &c))
    return CS_ERR_BAD_TOKEN;
  *out = c;
  return CS_OK;
}
