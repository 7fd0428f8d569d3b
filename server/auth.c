/* Who is calling, and may they call this route (API.md §2). */
#include "auth.h"
#include "ratelimit.h"
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* What of a presented access-key id may be recorded: only something with
 * the shape of an id. A client that swapped id and secret, or sent its
 * secret where the id goes, must not get the secret written down. */
static const char *loggable_key_id(const char *id)
{
  size_t n = id ? strlen(id) : 0;
  if (n != 3 + 2 * CS_KEY_ID_HEX || strncmp(id, "ak-", 3) != 0)
    return "(not a key id)";
  for (size_t i = 3; i < n; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return "(not a key id)";
  return id;
}

void cs_auth_record(struct cs_req *req, const char *presented_id, const char *result,
                    bool audit)
{
  char fields[256];
  const char *id = loggable_key_id(presented_id);
  struct cs_buf b = {fields, 0, sizeof fields, sizeof fields, false};
  struct cs_actor a = {id, req->authenticated ? cs_role_name(req->who.role) : "", req->remote};

  if (strcmp(result, "success") != 0 &&
      !cs_buf_printf(&b, "\"audit\":\"login\",\"result\":\"%s\",\"remote\":\"%s\",\"actor\":\"",
                     result, req->remote) &&
      !cs_buf_json_escape(&b, id, strlen(id)) && !cs_buf_append(&b, "\"", 1))
    cs_log_fields(CS_LOG_WARN, fields, "authentication %s", result);
  if (audit && req->app->writer && cs_audit_record(req->app, &a, "auth", id, result))
    CS_LOG(CS_LOG_ERROR, "could not record an audit entry");
}

/* Does @p secret open the live key @p id? Malformed, empty and oversize
 * ids are simply wrong: they cost a hash like any other attempt. */
static enum cs_err check_key(struct cs_req *req, const char *id, const char *secret,
                             struct cs_key_rec *k)
{
  uint8_t h[CS_HASH_BYTES];
  size_t slen = strlen(secret), idlen = id ? strlen(id) : 0;
  enum cs_err e = CS_ERR_NOT_FOUND;

  /* Hash even for unknown ids so timing does not tell which ids exist. */
  cs_secret_hash(req->app->keyring, secret, slen > SECRET_MAX ? SECRET_MAX : slen, h);
  if (idlen && idlen <= CS_KEY_ID_MAX && slen <= SECRET_MAX)
    e = load_live_key(req, id, k);
  if (e == CS_OK && !cs_hash_equal(h, k->hash)) {
    cJSON_Delete(k->scope);
    k->scope = NULL;
    e = CS_ERR_NOT_FOUND;
  }
  cs_memzero(h, sizeof h);
  return e == CS_ERR_NOT_FOUND ? CS_ERR_BAD_CREDENTIALS : e;
}

enum cs_err cs_auth_key_secret(struct cs_req *req, const char *id, const char *secret,
                               struct cs_principal *who)
{
  struct cs_ratelimit *rl = req->app->rl;
  struct cs_addr group = cs_addr_group(&req->client);
  struct cs_key_rec k = {0};
  int64_t now = cs_now();

  /* Per client address only: an attacker can slow down itself, never the
   * key it names (a key's secret is 256 random bits). */
  enum cs_rl_verdict v = cs_rl_begin(rl, &group, now);
  if (v != CS_RL_GO) {
    /* Every refusal is counted and logged; only the first of a cool-off
     * is audited, so a flood cannot grow the trail. */
    cs_metrics_auth("rate_limited");
    cs_auth_record(req, id, "rate_limited", v == CS_RL_COOLING_FIRST);
    return CS_ERR_RATE_LIMITED;
  }
  enum cs_err e = check_key(req, id, secret, &k);
  cs_rl_end(rl, &group, e == CS_ERR_BAD_CREDENTIALS, now);
  if (e == CS_ERR_BAD_CREDENTIALS) {
    cs_metrics_auth("failure");
    cs_auth_record(req, id, "failure", true);
  }
  if (e)
    return e;
  cs_metrics_auth("success");
  fill_principal(who, &k);
  return CS_OK;
}

enum cs_err cs_auth_basic_split(const char *b64, char buf[CS_BASIC_MAX + 1], const char **id,
                                const char **secret)
{
  uint8_t *raw = NULL;
  size_t len = 0, n;
  enum cs_err e = CS_ERR_BAD_CREDENTIALS;

  while (*b64 == ' ')
    b64++;
  n = strlen(b64);
  if (n > CS_BASIC_MAX * 4 / 3 + 4 || cs_base64_decode(b64, n, &raw, &len))
    return e;
  const uint8_t *colon = len <= CS_BASIC_MAX ? memchr(raw, ':', len) : NULL;
  if (colon && !memchr(raw, '\0', len)) {
    size_t at = (size_t)(colon - raw);
    memcpy(buf, raw, len);
    buf[len] = '\0';
    buf[at] = '\0';
    *id = buf;
    *secret = buf + at + 1;
    e = CS_OK;
  }
  cs_open_free(raw, len);
  return e;
}

static enum cs_err auth_basic(struct cs_req *req, const char *b64, struct cs_principal *who)
{
  char buf[CS_BASIC_MAX + 1];
  const char *id = NULL, *secret = "";

  /* Anything but "id:secret" is a wrong credential, and counts as one. */
  if (cs_auth_basic_split(b64, buf, &id, &secret))
    id = NULL, secret = "";
  enum cs_err e = cs_auth_key_secret(req, id, secret, who);
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
