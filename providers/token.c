/* Short-lived tokens for azure, gcp and ibmCloud: one form POST to the
 * cloud's token endpoint (each type's file builds it), the OAuth 2.0
 * answer parsed here, cached in the broker per (credential, version,
 * scope) until CS_TOKEN_MARGIN before expiry, single-flight. */
#include "prov_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORM_MAX (64 * 1024) /* a GCP assertion is ~1 KiB; Entra/IBM forms are small */
#define KEY_MAX 4096
#define URL_CAP 1024
#define TOKEN_TYPE_MAX 31
#define SECRET_SHOWN_MIN 4 /* shorter values are not scrubbed (they would match anything) */

void cs_token_wipe(struct cs_token *t)
{
  if (!t)
    return;
  cs_free_secret_str(t->access_token);
  memset(t, 0, sizeof *t);
}

/* The cached form of a token: fixed header, then the token's bytes. */
struct blob {
  int64_t expires_at;
  char token_type[TOKEN_TYPE_MAX + 1];
  size_t len;
  char token[];
};

static bool printable_token(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e)
      return false;
  return n > 0;
}

/* expires_in as a number or a numeric string (Entra v1 sent strings). */
static bool seconds_of(const cJSON *v, int64_t *out)
{
  uint64_t u;

  if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e10) {
    *out = (int64_t)v->valuedouble;
    return true;
  }
  if (cJSON_IsString(v) && v->valuestring &&
      cs_parse_u64(v->valuestring, 10000000000ULL, &u) == CS_OK) {
    *out = (int64_t)u;
    return true;
  }
  return false;
}

enum cs_err cs_token_parse(const char *body, size_t len, int64_t now, struct cs_token *out,
                           struct cs_net_error *err)
{
  const cJSON *at, *tt, *exp, *in;
  int64_t secs = 0, at_epoch = 0;
  cJSON *j = NULL;
  char *tok = NULL;
  size_t n;
  enum cs_err e = CS_ERR_INVALID;

  if (!body || len > CS_HTTP_BODY_MAX || cs_json_parse(body, len, 8, &j) != CS_OK ||
      !cJSON_IsObject(j)) {
    cs_net_fail(err, e, "MalformedResponse", "the token response is not a JSON object");
    goto out;
  }
  at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
  tt = cJSON_GetObjectItemCaseSensitive(j, "token_type");
  exp = cJSON_GetObjectItemCaseSensitive(j, "expiration"); /* IBM: epoch seconds */
  in = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
  if (!cJSON_IsString(at) || !at->valuestring || (n = strlen(at->valuestring)) > CS_TOKEN_MAX ||
      !printable_token(at->valuestring, n)) {
    cs_net_fail(err, e, "MalformedResponse", "the token response has no usable access_token");
    goto out;
  }
  if (!cJSON_IsString(tt) || !tt->valuestring || strlen(tt->valuestring) > TOKEN_TYPE_MAX ||
      !printable_token(tt->valuestring, strlen(tt->valuestring))) {
    cs_net_fail(err, e, "MalformedResponse", "the token response has no usable token_type");
    goto out;
  }
  if (exp && seconds_of(exp, &at_epoch) && at_epoch > now) {
    secs = at_epoch - now;
  } else if (!seconds_of(in, &secs) || secs <= 0) {
    cs_net_fail(err, e, "MalformedResponse", "the token response has no usable expires_in");
    goto out;
  }
  e = CS_ERR_NOMEM;
  if (!(tok = strndup(at->valuestring, n)))
    goto out;
  memset(out, 0, sizeof *out);
  out->access_token = tok;
  out->len = n;
  /* "bearer" (Google, sometimes) and "Bearer" mean the same. */
  snprintf(out->token_type, sizeof out->token_type, "%s",
           strcasecmp(tt->valuestring, "bearer") == 0 ? "Bearer" : tt->valuestring);
  out->expires_at = now + secs;
  e = CS_OK;
out:
  cs_json_wipe_delete(j);
  return e;
}

/* Bounded copy of a JSON string member, or @p dflt. */
static const char *str_of(const cJSON *j, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
  return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

void cs_token_oauth_error(const cJSON *j, struct cs_net_error *err)
{
  const char *code = str_of(j, "error"), *desc = str_of(j, "error_description");
  const cJSON *codes = cJSON_GetObjectItemCaseSensitive(j, "error_codes");
  const cJSON *first = cJSON_IsArray(codes) ? codes->child : NULL;

  if (!code)
    return;
  /* Entra's description starts with its AADSTS number; say it when not. */
  if (cJSON_IsNumber(first) && (!desc || strncmp(desc, "AADSTS", 6) != 0))
    cs_net_fail(err, CS_ERR_UPSTREAM, code, "AADSTS%.0f: %s", first->valuedouble,
                desc ? desc : code);
  else
    cs_net_fail(err, CS_ERR_UPSTREAM, code, "%s", desc ? desc : code);
}

/* Replace every occurrence of @p secret in @p s (in place) with '*'. */
static void scrub(char *s, const struct cs_buf *secret)
{
  char *p;

  if (!secret->data || secret->len < SECRET_SHOWN_MIN)
    return;
  while ((p = strstr(s, secret->data)))
    memset(p, '*', secret->len);
}

/* An answer that is not a token: the upstream's own error, if it sent one. */
static enum cs_err refused(const struct cs_token_client *tc, const struct cs_http_resp *r,
                           struct cs_net_error *err)
{
  cJSON *j = NULL;

  err->code[0] = '\0';
  if (cs_json_parse(r->body, r->len, 8, &j) == CS_OK && cJSON_IsObject(j))
    (tc->error ? tc->error : cs_token_oauth_error)(j, err);
  cs_json_wipe_delete(j);
  if (!err->code[0])
    cs_net_fail(err, CS_ERR_UPSTREAM, r->status == 429 ? "Throttling" : "UnexpectedStatus",
                "%s answered HTTP %ld", tc->what, r->status);
  return CS_ERR_UPSTREAM;
}

/* One POST to the token endpoint. */
static enum cs_err exchange(const struct cs_token_client *tc, const struct cs_prov_ctx *ctx,
                            const char *scope, struct cs_token *out, struct cs_net_error *err)
{
  static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                        "Accept: application/json", NULL};
  char url[URL_CAP];
  struct cs_buf form, secret;
  struct cs_http_req req = {.method = "POST",
                            .url = url,
                            .reach = CS_HTTP_API,
                            .headers = headers,
                            .timeout_ms = ctx->broker->timeout_ms};
  struct cs_http_resp r = {0};
  enum cs_err e;

  cs_buf_init_secret(&form, FORM_MAX);
  cs_buf_init_secret(&secret, CS_PROV_PLAIN_MAX);
  if ((e = tc->build(ctx->broker, ctx, scope, url, sizeof url, &form, &secret, err)))
    goto out;
  req.body = form.data ? form.data : "";
  req.body_len = form.len;
  cs_broker_count_call(ctx->broker, tc->kind);
  e = cs_http_do(ctx->broker->http, &req, &r);
  if (e == CS_ERR_UPSTREAM || e == CS_ERR_FORBIDDEN) {
    e = cs_net_fail_transport(err, tc->what, "Unreachable", &r);
  } else if (e == CS_OK) {
    e = r.status == 200 ? cs_token_parse(r.body, r.len, cs_now(), out, err) : refused(tc, &r, err);
    if (e == CS_ERR_INVALID)
      e = CS_ERR_UPSTREAM; /* a malformed answer is the upstream's fault */
  }
  if (e == CS_ERR_UPSTREAM) {
    cs_broker_count_error(ctx->broker, tc->kind);
    /* Before anything repeats it: the log line, the caller, the audit. */
    scrub(err->code, &secret);
    scrub(err->message, &secret);
    CS_LOG(CS_LOG_WARN, "%s token for %s: HTTP %ld, %s: %s", tc->what,
           ctx->cred_id ? ctx->cred_id : "", r.status, err->code, err->message);
  }
out:
  cs_http_resp_wipe(&r);
  cs_buf_wipe(&form);
  cs_buf_wipe(&secret);
  return e;
}

/* ------------------------------------------------------------ the cache */

struct fetch_arg {
  const struct cs_token_client *tc;
  const struct cs_prov_ctx *ctx;
  const char *scope;
};

static enum cs_err fetch(void *arg, struct cs_cache_val *out, struct cs_net_error *err)
{
  struct fetch_arg *a = arg;
  struct cs_token t = {0};
  struct blob *b;
  enum cs_err e;

  if ((e = exchange(a->tc, a->ctx, a->scope, &t, err)))
    return e;
  if (!(b = malloc(sizeof *b + t.len))) {
    cs_token_wipe(&t);
    return CS_ERR_NOMEM;
  }
  b->expires_at = t.expires_at;
  memcpy(b->token_type, t.token_type, sizeof b->token_type);
  b->len = t.len;
  memcpy(b->token, t.access_token, t.len);
  *out = (struct cs_cache_val){b, sizeof *b + t.len, t.expires_at, t.expires_at - CS_TOKEN_MARGIN};
  cs_token_wipe(&t);
  return CS_OK;
}

static enum cs_err from_blob(const struct cs_cache_val *v, struct cs_token *out)
{
  const struct blob *b = v->data;

  if (v->len < sizeof *b || v->len != sizeof *b + b->len)
    return CS_ERR_INTERNAL;
  memset(out, 0, sizeof *out);
  if (!(out->access_token = strndup(b->token, b->len)))
    return CS_ERR_NOMEM;
  out->len = b->len;
  memcpy(out->token_type, b->token_type, sizeof out->token_type);
  out->expires_at = b->expires_at;
  return CS_OK;
}

enum cs_err cs_token_get(const struct cs_token_client *tc, const struct cs_prov_ctx *ctx,
                         const char *scope, bool fresh, struct cs_token *out,
                         struct cs_net_error *err)
{
  struct fetch_arg a = {tc, ctx, scope ? scope : ""};
  const char *id = ctx->cred_id ? ctx->cred_id : "";
  struct cs_cache_val v = {0};
  struct cs_buf key;
  enum cs_err e;

  if (!ctx->broker)
    return CS_ERR_UNAVAILABLE;

  if (fresh)
    return exchange(tc, ctx, a.scope, out, err);
  cs_buf_init(&key, KEY_MAX);
  e = cs_buf_printf(&key, "t\n%d\n%zu:%s\n%" PRIu64 "\n%zu:%s", (int)tc->kind, strlen(id), id,
                    ctx->version, strlen(a.scope), a.scope);
  if (e) {
    e = e == CS_ERR_NOMEM ? e : cs_net_fail_field(err, CS_ERR_INVALID, "scope", "scope too long");
    goto out;
  }
  struct cs_cache_req cr = {key.data, key.len, id, fetch, &a, sizeof(struct blob) + 2048};
  if ((e = cs_broker_cached(ctx->broker, tc->kind, &cr, &v, err)) == CS_OK)
    e = from_blob(&v, out);
out:
  cs_cache_val_wipe(&v);
  cs_buf_free(&key);
  return e;
}

/* ---------------------------------------------------- shared resolve parts */

enum cs_resolve_format cs_prov_format(const struct cs_prov_ctx *ctx)
{
  return ctx->opts ? ctx->opts->format : CS_FORMAT_DEFAULT;
}

enum cs_err cs_prov_plain_resolve(cs_prov_material_fn material, const char *type,
                                  const struct cs_prov_ctx *ctx, cJSON **out,
                                  struct cs_net_error *err)
{
  if (cs_prov_format(ctx) != CS_FORMAT_DEFAULT)
    return cs_net_fail_field(err, CS_ERR_INVALID, "format",
                             "format \"%s\" is not available for %s credentials",
                             cs_prov_format(ctx) == CS_FORMAT_TOKEN ? "token" : "session", type);
  return material(ctx, out, err);
}

enum cs_err cs_token_render(cJSON *m, const struct cs_token *t, const char *expires_field)
{
  char when[32];
  enum cs_err e;

  cs_time_format(t->expires_at, when);
  if ((e = cs_prov_add_secret(m, "accessToken", t->access_token, t->len)) ||
      (e = cs_prov_add_str(m, "tokenType", t->token_type)) ||
      (e = cs_prov_add_str(m, expires_field, when)))
    return e;
  return CS_OK;
}
