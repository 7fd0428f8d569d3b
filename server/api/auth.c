/* Who is calling, and may they call this route (API.md §2). */
#include "auth.h"
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void cs_auth_record(struct cs_req *req, const char *presented_id, const char *result, bool audit)
{
  char fields[256];
  const char *id = loggable_key_id(presented_id);
  struct cs_buf b = cs_buf_fixed(fields, sizeof fields);
  struct cs_actor a = {id, req->authenticated ? cs_role_name(req->who.role) : "", req->remote};

  if (strcmp(result, "success") != 0 &&
      !cs_buf_printf(&b, "\"audit\":\"login\",\"result\":\"%s\",\"remote\":\"%s\",\"actor\":\"",
                     result, req->remote) &&
      !cs_buf_json_escape(&b, id, strlen(id)) && !cs_buf_append(&b, "\"", 1))
    cs_log_fields(CS_LOG_WARN, fields, "authentication %s", result);
  if (audit && cs_audit_record(req->api->core, &a, "auth", id, result))
    CS_LOG(CS_LOG_ERROR, "could not record an audit entry");
}

/* One attempt under the rate limiter: @p secret, or @p known_hex, the
 * stored form of a secret this thread verified before (basic_find). */
static enum cs_err key_attempt(struct cs_req *req, const char *id, const char *secret,
                               const char *known_hex, struct cs_principal *who)
{
  struct cs_ratelimit *rl = req->api->rl;
  struct cs_addr group = cs_addr_group(&req->client);
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
  enum cs_err e = known_hex ? cs_keys_check_hash(req->api->core, id, known_hex, who)
                            : cs_keys_check_secret(req->api->core, id, secret, who);
  cs_rl_end(rl, &group, e == CS_ERR_BAD_CREDENTIALS, now);
  if (e == CS_ERR_BAD_CREDENTIALS) {
    cs_metrics_auth("failure");
    cs_auth_record(req, id, "failure", true);
  }
  if (e)
    return e;
  cs_metrics_auth("success");
  return CS_OK;
}

enum cs_err cs_auth_key_secret(struct cs_req *req, const char *id, const char *secret,
                               struct cs_principal *who)
{
  return key_attempt(req, id, secret, NULL, who);
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

/* A Basic client sends the same header on every request, and its base64
 * and the keyed BLAKE2b of its secret were ~20,000 instructions of each.
 * Each thread remembers the last few headers whose secret it verified, with
 * the secret's stored hash; a header is matched in constant time. The key
 * record is still read and its hash compared on every request, so deletion,
 * expiry and a new secret take effect at once, and the rate limiter sees
 * every attempt as before. */
#define BASIC_CACHE 4
#define BASIC_B64_MAX (CS_BASIC_MAX * 4 / 3 + 4)

struct basic_slot {
  const struct cs_core *core;
  size_t len; /* 0: empty */
  char b64[BASIC_B64_MAX];
  char id[CS_KEY_ID_MAX + 1];
  char hex[CS_KEY_HASH_HEX + 1];
};

static _Thread_local struct basic_slot basic_cache[BASIC_CACHE];
static _Thread_local unsigned basic_next;

static struct basic_slot *basic_find(const struct cs_core *core, const char *b64, size_t len)
{
  for (unsigned i = 0; i < BASIC_CACHE; i++) {
    struct basic_slot *s = &basic_cache[i];
    if (s->len && s->core == core && s->len == len && cs_bytes_equal(s->b64, b64, len))
      return s;
  }
  return NULL;
}

/* Remember a header that just verified (@p hex: its secret's stored form). */
static void basic_put(struct cs_core *core, const char *b64, size_t len, const char *id,
                      const char *secret)
{
  struct basic_slot *s = &basic_cache[basic_next++ % BASIC_CACHE];
  size_t idlen = strlen(id);

  cs_memzero(s, sizeof *s);
  if (len > sizeof s->b64 || idlen > CS_KEY_ID_MAX || cs_keys_secret_hash(core, secret, s->hex))
    return;
  memcpy(s->b64, b64, len);
  memcpy(s->id, id, idlen + 1);
  s->core = core;
  s->len = len;
}

static enum cs_err auth_basic(struct cs_req *req, const char *b64, struct cs_principal *who)
{
  char buf[CS_BASIC_MAX + 1];
  const char *id = NULL, *secret = "";
  struct basic_slot *s;
  enum cs_err e;

  while (*b64 == ' ')
    b64++;
  size_t len = strlen(b64);
  if ((s = basic_find(req->api->core, b64, len))) {
    if ((e = key_attempt(req, s->id, NULL, s->hex, who)) == CS_ERR_BAD_CREDENTIALS)
      cs_memzero(s, sizeof *s); /* revoked or a new secret: verify afresh next time */
    return e;
  }
  /* Anything but "id:secret" is a wrong credential, and counts as one. */
  if (cs_auth_basic_split(b64, buf, &id, &secret))
    id = NULL, secret = "";
  e = key_attempt(req, id, secret, NULL, who);
  if (!e)
    basic_put(req->api->core, b64, len, id, secret);
  cs_memzero(buf, sizeof buf);
  return e;
}

enum cs_err cs_auth_request(struct cs_req *req, struct cs_resp *resp)
{
  const char *authz = cs_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  const char *redlock = cs_req_header(req, "x-redlock-auth");
  enum cs_err e;

  if (redlock)
    e = cs_token_check(req->api->core, redlock, &req->who);
  else if (authz && strncasecmp(authz, "Bearer ", 7) == 0)
    e = cs_token_check(req->api->core, authz + 7, &req->who);
  else if (authz && strncasecmp(authz, "Basic ", 6) == 0)
    e = auth_basic(req, authz + 6, &req->who);
  else if (authz)
    return cs_fail(resp, CS_ERR_UNAUTHORIZED,
                   "unsupported Authorization scheme; use Bearer or Basic");
  else
    return CS_ERR_UNAUTHORIZED;
  if (e)
    return e;
  req->authenticated = true;
  if (!(req->route->roles & CS_R(req->who.role)))
    return cs_fail(resp, CS_ERR_FORBIDDEN, "role %s may not call %s", cs_role_name(req->who.role),
                   req->route->name);
  if ((req->route->flags & CS_ROUTE_UNSCOPED) && req->who.scope)
    return cs_fail(resp, CS_ERR_FORBIDDEN,
                   "a key with a scope may not call %s: it spans every "
                   "credential",
                   req->route->name);
  return CS_OK;
}

enum cs_err cs_auth_token_object(struct cs_req *req, const struct cs_principal *who, int64_t ttl,
                                 cJSON **out)
{
  char *token = NULL;
  enum cs_err e;

  if ((e = cs_token_issue(req->api->core, who, ttl, &token)))
    return e;
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "token", token)) {
    cJSON_Delete(j);
    e = CS_ERR_NOMEM;
  } else {
    *out = j;
  }
  cs_free_secret_str(token);
  return e;
}

enum cs_err cs_auth_token_response(struct cs_req *req, const struct cs_principal *who,
                                   struct cs_resp *resp)
{
  cJSON *j = NULL;
  enum cs_err e = cs_auth_token_object(req, who, 0, &j);
  if (e)
    return e;
  if (!cJSON_AddStringToObject(j, "message", "login_successful")) {
    cs_json_wipe_delete(j);
    return CS_ERR_NOMEM;
  }
  return cs_resp_json_secret(resp, 200, j);
}
