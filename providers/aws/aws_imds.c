/* The instance role through IMDSv2: PUT a session token, then list the
 * role and read its credentials with that token. The token is kept in the
 * broker and reused until shortly before its TTL ends; a 401 (IMDS
 * restarted, token revoked) renews it once. */
#include "aws_internal.h"

#include <stdio.h>
#include <string.h>

#define IMDS_CREDS_PATH "/latest/meta-data/iam/security-credentials/"
#define IMDS_ROLE_MAX 64
/* IMDS is link-local and answers in milliseconds; off EC2 it is a black
 * hole, and a resolve should not hang on it for the full STS timeout. */
#define IMDS_TIMEOUT_MAX_MS 2000L

static long imds_timeout(const struct cs_broker *b)
{
  return b->timeout_ms < IMDS_TIMEOUT_MAX_MS ? b->timeout_ms : IMDS_TIMEOUT_MAX_MS;
}

static bool printable_token(const char *s, size_t n)
{
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e)
      return false;
  return true;
}

/* Copy a string member of at most cap-1 bytes. */
static bool copy_member(const cJSON *j, const char *name, char *dst, size_t cap)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
  size_t n;

  if (!cJSON_IsString(v) || !v->valuestring)
    return false;
  n = strlen(v->valuestring);
  if (n >= cap)
    return false;
  memcpy(dst, v->valuestring, n + 1);
  return true;
}

enum cs_err cs_aws_parse_imds_credentials(const char *body, size_t len, struct cs_aws_creds *out,
                                          struct cs_net_error *err)
{
  struct cs_aws_creds c = {0};
  char expiration[64];
  cJSON *j = NULL;
  const cJSON *code;
  enum cs_err e = CS_ERR_INVALID;

  if (!body || len > CS_HTTP_BODY_MAX || cs_json_parse(body, len, 4, &j) != CS_OK ||
      !cJSON_IsObject(j)) {
    cs_net_fail(err, e, "MalformedResponse", "IMDS credentials are not a JSON object");
    goto out;
  }
  code = cJSON_GetObjectItemCaseSensitive(j, "Code");
  if (!cJSON_IsString(code) || !code->valuestring) {
    cs_net_fail(err, e, "MalformedResponse", "IMDS credentials have no Code");
    goto out;
  }
  if (strcmp(code->valuestring, "Success") != 0) {
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "Message");
    /* IMDS's own Code names the failure, when it is a plain word. */
    bool word = printable_token(code->valuestring, strlen(code->valuestring)) &&
                strlen(code->valuestring) < sizeof err->code;
    e = cs_net_fail(err, CS_ERR_UPSTREAM, word ? code->valuestring : "IMDSError", "%s",
                    cJSON_IsString(msg) && msg->valuestring ? msg->valuestring
                                                            : "IMDS did not return credentials");
    goto out;
  }
  if (!copy_member(j, "AccessKeyId", c.access_key_id, sizeof c.access_key_id) ||
      !copy_member(j, "SecretAccessKey", c.secret_access_key, sizeof c.secret_access_key) ||
      !copy_member(j, "Token", c.session_token, sizeof c.session_token) ||
      !printable_token(c.access_key_id, strlen(c.access_key_id)) ||
      !printable_token(c.secret_access_key, strlen(c.secret_access_key)) ||
      !printable_token(c.session_token, strlen(c.session_token))) {
    cs_net_fail(err, e, "MalformedResponse",
                "IMDS credentials lack a valid AccessKeyId, SecretAccessKey or Token");
    goto out;
  }
  if (!copy_member(j, "Expiration", expiration, sizeof expiration) ||
      cs_time_parse(expiration, &c.expiration) != CS_OK || c.expiration <= 0) {
    cs_net_fail(err, e, "MalformedResponse", "IMDS credentials have no valid Expiration");
    goto out;
  }
  *out = c;
  e = CS_OK;
out:
  cs_json_wipe_delete(j);
  cs_aws_creds_wipe(&c);
  return e;
}

/* Put a token into @p tok: the kept one, or a new one when there is none,
 * it is about to expire, or it equals @p stale (IMDS just refused it). */
static enum cs_err imds_token(struct cs_broker *r, const char *stale,
                              char tok[CS_IMDS_TOKEN_MAX + 1], struct cs_net_error *err)
{
  char url[600];
  static const char *const headers[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600",
                                        "Content-Type:", NULL};
  struct cs_http_req req = {.method = "PUT",
                            .url = url,
                            .reach = CS_HTTP_METADATA,
                            .headers = headers,
                            .timeout_ms = imds_timeout(r)};
  struct cs_http_resp resp = {0};
  enum cs_err e;
  size_t a = 0, n;

  snprintf(url, sizeof url, "%s/latest/api/token", r->imds_endpoint);
  /* Held across the PUT: concurrent callers wait for one token, not fetch N. */
  pthread_mutex_lock(&r->imds_lock);
  if (stale && strcmp(stale, r->imds_token) == 0)
    r->imds_token_expiry_ms = 0;
  if (r->imds_token_expiry_ms > cs_mono_ms()) {
    memcpy(tok, r->imds_token, sizeof r->imds_token);
    e = CS_OK;
    goto out;
  }
  cs_broker_count_call(r, CS_KIND_IMDS);
  e = cs_http_do(r->http, &req, &resp);
  if (e == CS_ERR_UPSTREAM || e == CS_ERR_FORBIDDEN) {
    CS_LOG(CS_LOG_WARN, "imds token: %s", resp.error);
    e = cs_net_fail_transport(err, "IMDS token", "IMDSUnreachable", &resp);
    goto out;
  }
  if (e)
    goto out;
  if (resp.status != 200) {
    CS_LOG(CS_LOG_WARN, "imds token: HTTP %ld", resp.status);
    e = cs_net_fail(err, CS_ERR_UPSTREAM, "IMDSError",
                    "IMDS answered HTTP %ld to the token request", resp.status);
    goto out;
  }
  n = resp.len;
  while (n > 0 && (resp.body[n - 1] == '\n' || resp.body[n - 1] == '\r' || resp.body[n - 1] == ' '))
    n--;
  while (a < n && (resp.body[a] == ' ' || resp.body[a] == '\n'))
    a++;
  if (n - a > CS_IMDS_TOKEN_MAX || !printable_token(resp.body + a, n - a)) {
    e = cs_net_fail(err, CS_ERR_UPSTREAM, "MalformedResponse", "IMDS returned an unusable token");
    goto out;
  }
  cs_memzero(r->imds_token, sizeof r->imds_token);
  memcpy(r->imds_token, resp.body + a, n - a);
  r->imds_token_expiry_ms =
      cs_mono_ms() + (int64_t)(CS_AWS_IMDS_TOKEN_TTL - CS_AWS_IMDS_TOKEN_MARGIN) * 1000;
  memcpy(tok, r->imds_token, sizeof r->imds_token);
out:
  pthread_mutex_unlock(&r->imds_lock);
  cs_http_resp_wipe(&resp);
  return e;
}

/* GET @p path with the session token, renewing the token once on 401.
 * @return CS_OK with a 200 answer in @p resp. */
static enum cs_err imds_get(struct cs_broker *r, const char *path, struct cs_http_resp *resp,
                            struct cs_net_error *err)
{
  char url[600], tok[CS_IMDS_TOKEN_MAX + 1], hdr[CS_IMDS_TOKEN_MAX + 64];
  const char *headers[] = {hdr, NULL};
  struct cs_http_req req = {.method = "GET",
                            .url = url,
                            .reach = CS_HTTP_METADATA,
                            .headers = headers,
                            .timeout_ms = imds_timeout(r)};
  enum cs_err e;

  snprintf(url, sizeof url, "%s%s", r->imds_endpoint, path);
  for (int round = 0; round < 2; round++) {
    if ((e = imds_token(r, round ? tok : NULL, tok, err)) != CS_OK)
      goto out;
    snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", tok);
    cs_broker_count_call(r, CS_KIND_IMDS);
    e = cs_http_do(r->http, &req, resp);
    if (e == CS_ERR_UPSTREAM || e == CS_ERR_FORBIDDEN) {
      CS_LOG(CS_LOG_WARN, "imds GET %s: %s", path, resp->error);
      e = cs_net_fail_transport(err, "IMDS", "IMDSUnreachable", resp);
      goto out;
    }
    if (e)
      goto out;
    if (resp->status == 200)
      goto out;
    CS_LOG(CS_LOG_WARN, "imds GET %s: HTTP %ld", path, resp->status);
    if (resp->status != 401 || round == 1)
      break;
    cs_http_resp_wipe(resp);
  }
  if (resp->status == 404)
    e = cs_net_fail(err, CS_ERR_UPSTREAM, "NoInstanceRole",
                    "IMDS has no IAM role for this instance (HTTP 404)");
  else
    e = cs_net_fail(err, CS_ERR_UPSTREAM, "IMDSError", "IMDS answered HTTP %ld", resp->status);
  cs_http_resp_wipe(resp);
out:
  cs_memzero(tok, sizeof tok);
  cs_memzero(hdr, sizeof hdr);
  return e;
}

static bool role_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("_+=,.@-", c));
}

enum cs_err cs_aws_imds_fetch(struct cs_broker *r, struct cs_aws_creds *out,
                              struct cs_net_error *err)
{
  char path[sizeof IMDS_CREDS_PATH + IMDS_ROLE_MAX];
  struct cs_http_resp resp = {0};
  size_t n = 0;
  enum cs_err e;

  if ((e = imds_get(r, IMDS_CREDS_PATH, &resp, err)) != CS_OK)
    return e;
  /* One role per instance profile: the first line. */
  while (n < resp.len && role_char(resp.body[n]))
    n++;
  if (n == 0 || n > IMDS_ROLE_MAX ||
      (n < resp.len && resp.body[n] != '\n' && resp.body[n] != '\r')) {
    cs_http_resp_wipe(&resp);
    CS_LOG(CS_LOG_WARN, "imds: no usable role name in the role list");
    return cs_net_fail(err, CS_ERR_UPSTREAM, "NoInstanceRole",
                       "IMDS lists no usable IAM role for this instance");
  }
  snprintf(path, sizeof path, "%s%.*s", IMDS_CREDS_PATH, (int)n, resp.body);
  cs_http_resp_wipe(&resp);

  if ((e = imds_get(r, path, &resp, err)) != CS_OK)
    return e;
  e = cs_aws_parse_imds_credentials(resp.body, resp.len, out, err);
  cs_http_resp_wipe(&resp);
  if (e == CS_ERR_INVALID)
    e = CS_ERR_UPSTREAM;
  if (e != CS_OK)
    CS_LOG(CS_LOG_WARN, "imds role credentials: %s: %s", err ? err->code : "",
           err ? err->message : "");
  return e;
}
