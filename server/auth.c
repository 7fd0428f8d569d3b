/* Who is calling, and may they call this route (API.md §2). */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BASIC_MAX 512 /* decoded "id:secret" */
#define SECRET_MAX 128

/* Load a key that must exist and not be expired. */
static enum cs_err load_live_key(struct cs_req *req, const char *id, struct cs_key_rec *out)
{
  struct cs_txn *txn;
  enum cs_err e = cs_store_read_begin(req->app->store, &txn);
  if (e)
    return e;
  e = cs_keys_load(txn, id, out);
  cs_store_read_end(txn);
  if (e == CS_OK && out->expires_at && out->expires_at <= cs_now()) {
    cJSON_Delete(out->scope);
    out->scope = NULL;
    e = CS_ERR_NOT_FOUND;
  }
  return e;
}

static void fill_principal(struct cs_principal *who, struct cs_key_rec *k)
{
  cJSON_Delete(who->scope);
  snprintf(who->key_id, sizeof who->key_id, "%s", k->id);
  who->role = k->role;
  who->scope = k->scope;
  who->expires_at = k->expires_at;
  k->scope = NULL;
}

enum cs_err cs_auth_key_secret(struct cs_req *req, const char *id, const char *secret,
                               struct cs_principal *who)
{
  const struct cs_config *cfg = &req->app->cfg;
  struct cs_key_rec k = {0};
  uint8_t h[CS_HASH_BYTES];
  int64_t now = cs_now();
  enum cs_err e;

  if (cs_rl_blocked('a', req->remote, now) || cs_rl_blocked('k', id, now)) {
    CS_LOG(CS_LOG_WARN, "authentication refused while cooling off: key %.64s from %s", id,
           req->remote);
    return CS_ERR_RATE_LIMITED;
  }
  size_t slen = strlen(secret);
  /* Hash even for unknown ids so timing does not tell which ids exist. */
  cs_secret_hash(req->app->keyring, secret, slen > SECRET_MAX ? SECRET_MAX : slen, h);
  e = strlen(id) > CS_KEY_ID_MAX || slen > SECRET_MAX ? CS_ERR_NOT_FOUND
                                                        : load_live_key(req, id, &k);
  if (e == CS_OK && !cs_hash_equal(h, k.hash))
    e = CS_ERR_NOT_FOUND;
  cs_memzero(h, sizeof h);
  if (e == CS_ERR_NOT_FOUND) {
    cJSON_Delete(k.scope);
    cs_rl_fail('a', req->remote, now, cfg->auth_max_failures, cfg->auth_cooloff);
    cs_rl_fail('k', id, now, cfg->auth_max_failures, cfg->auth_cooloff);
    cs_audit_auth(req, id, "failure");
    return CS_ERR_BAD_CREDENTIALS;
  }
  if (e)
    return e;
  cs_rl_success('a', req->remote);
  cs_rl_success('k', id);
  fill_principal(who, &k);
  return CS_OK;
}

static enum cs_err auth_basic(struct cs_req *req, const char *b64, struct cs_principal *who)
{
  char buf[BASIC_MAX + 1];
  uint8_t *raw = NULL;
  size_t len = 0;
  enum cs_err e = CS_ERR_BAD_CREDENTIALS;

  while (*b64 == ' ')
    b64++;
  if (strlen(b64) > BASIC_MAX * 4 / 3 + 4 || cs_base64_decode(b64, strlen(b64), &raw, &len))
    return CS_ERR_BAD_CREDENTIALS;
  if (len <= BASIC_MAX) {
    memcpy(buf, raw, len);
    buf[len] = '\0';
  }
  cs_open_free(raw, len);
  if (len > BASIC_MAX)
    return e;
  char *colon = strchr(buf, ':');
  if (colon && strlen(buf) == len) {
    *colon = '\0';
    e = cs_auth_key_secret(req, buf, colon + 1, who);
  }
  cs_memzero(buf, sizeof buf);
  return e;
}

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

static enum cs_err auth_token(struct cs_req *req, const char *token, struct cs_principal *who)
{
  struct cs_jwt_claims c;
  struct cs_key_rec k = {0};
  enum cs_err e;

  while (*token == ' ')
    token++;
  if (verify_token(req->app->keyring, token, strlen(token), cs_now(), &c))
    return CS_ERR_BAD_TOKEN;
  /* A deleted or expired key's tokens stop working at once. */
  e = load_live_key(req, c.sub, &k);
  if (e == CS_ERR_NOT_FOUND)
    return CS_ERR_BAD_TOKEN;
  if (e)
    return e;
  fill_principal(who, &k);
  return CS_OK;
}

enum cs_err cs_auth_request(struct cs_req *req, struct cs_resp *resp)
{
  const char *authz = cs_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  const char *redlock = cs_req_header(req, "x-redlock-auth");
  enum cs_err e;

  if (redlock)
    e = auth_token(req, redlock, &req->who);
  else if (authz && strncasecmp(authz, "Bearer ", 7) == 0)
    e = auth_token(req, authz + 7, &req->who);
  else if (authz && strncasecmp(authz, "Basic ", 6) == 0)
    e = auth_basic(req, authz + 6, &req->who);
  else if (authz)
    return cs_fail(resp, CS_ERR_UNAUTHORIZED,
                   "unsupported Authorization scheme; use Bearer or Basic");
  else
    return CS_ERR_UNAUTHORIZED;
  if (e == CS_ERR_RATE_LIMITED)
    cs_resp_header(resp, "Retry-After", "%lld", (long long)req->app->cfg.auth_cooloff);
  if (e)
    return e;
  req->authenticated = true;
  if (!(req->route->roles & CS_R(req->who.role)))
    return cs_fail(resp, CS_ERR_FORBIDDEN, "role %s may not call %s",
                   cs_role_name(req->who.role), req->route->name);
  if ((req->route->flags & CS_ROUTE_UNSCOPED) && req->who.scope)
    return cs_fail(resp, CS_ERR_FORBIDDEN, "a key with a scope may not call %s: it spans every "
                   "credential", req->route->name);
  return CS_OK;
}

enum cs_err cs_auth_token_response(struct cs_req *req, const struct cs_principal *who,
                                   struct cs_resp *resp)
{
  struct cs_jwt_claims c = {0};
  char *token = NULL;
  int64_t now = cs_now();
  enum cs_err e;

  snprintf(c.sub, sizeof c.sub, "%s", who->key_id);
  snprintf(c.role, sizeof c.role, "%s", cs_role_name(who->role));
  c.iat = now;
  c.exp = now + req->app->cfg.token_ttl;
  if (who->expires_at && who->expires_at < c.exp)
    c.exp = who->expires_at; /* a token never outlives its key */
  if ((e = cs_jwt_mint(req->app->keyring, &c, &token)))
    return e;
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "token", token) ||
      !cJSON_AddStringToObject(j, "message", "login_successful")) {
    cJSON_Delete(j);
    free(token);
    return CS_ERR_NOMEM;
  }
  free(token);
  return cs_resp_json_secret(resp, 200, j);
}
