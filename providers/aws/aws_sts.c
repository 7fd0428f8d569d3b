/* STS AssumeRole, GetSessionToken and GetCallerIdentity: form POSTs signed
 * with SigV4 by libcurl (CURLOPT_AWS_SIGV4). The signing region is
 * us-east-1 on the global endpoint and the credential's region on the
 * regional one; an --sts-endpoint override changes only the URL, never the
 * region. */
#include "aws_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define STS_ATTEMPTS 3
#define STS_BACKOFF_MS 100
#define STS_FORM_MAX 8192

static const char *const action_names[] = {
    [CS_STS_ASSUME_ROLE] = "AssumeRole",
    [CS_STS_GET_SESSION_TOKEN] = "GetSessionToken",
    [CS_STS_GET_CALLER_IDENTITY] = "GetCallerIdentity",
};

void cs_sts_result_wipe(struct cs_sts_result *r)
{
  if (r)
    cs_memzero(r, sizeof *r);
}

static enum cs_err build_form(enum cs_sts_action a, const struct cs_sts_params *p,
                              struct cs_buf *form)
{
  enum cs_err e;

  if ((e = cs_buf_printf(form, "Action=%s&Version=2011-06-15", action_names[a])))
    return e;
  if (a == CS_STS_GET_SESSION_TOKEN)
    return cs_buf_printf(form, "&DurationSeconds=%" PRId64, p->duration_seconds);
  if (a != CS_STS_ASSUME_ROLE)
    return CS_OK;
  if ((e = cs_buf_printf(form, "&RoleArn=")) || (e = cs_form_escape(form, p->role_arn)) ||
      (e = cs_buf_printf(form, "&RoleSessionName=")) ||
      (e = cs_form_escape(form, p->session_name)) ||
      (e = cs_buf_printf(form, "&DurationSeconds=%" PRId64, p->duration_seconds)))
    return e;
  if (p->external_id &&
      ((e = cs_buf_printf(form, "&ExternalId=")) || (e = cs_form_escape(form, p->external_id))))
    return e;
  return CS_OK;
}

static bool throttled(const char *code)
{
  return strcmp(code, "Throttling") == 0 || strcmp(code, "ThrottlingException") == 0 ||
         strcmp(code, "RequestLimitExceeded") == 0 || strcmp(code, "TooManyRequestsException") == 0;
}

/* 100 ms, 200 ms, ... plus up to half of that again, so that callers
 * throttled together do not come back together. */
static void backoff(int attempt)
{
  long ms = (long)STS_BACKOFF_MS << (attempt - 1);
  unsigned int rnd;
  struct timespec ts;

  if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
    rnd = (unsigned int)cs_mono_ms();
  ms += (long)(rnd % (unsigned int)(ms / 2 + 1));
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Make sense of one answer. @return CS_OK (@p out filled), or
 * CS_ERR_UPSTREAM with @p err filled and *retry set when another attempt
 * may help. */
static enum cs_err interpret(enum cs_sts_action a, const struct cs_http_resp *resp,
                             struct cs_sts_result *out, struct cs_net_error *err, bool *retry)
{
  const char *name = action_names[a];
  struct cs_net_error perr = {0};
  enum cs_err pe = cs_aws_parse_sts(resp->body, resp->len, a, out, &perr);

  *retry = false;
  if (pe == CS_OK && resp->status == 200)
    return CS_OK;
  if (pe == CS_OK)
    cs_sts_result_wipe(out);
  if (pe == CS_ERR_UPSTREAM) {
    *err = perr;
    *retry = throttled(perr.code) || resp->status >= 500;
    CS_LOG(CS_LOG_WARN, "sts %s: HTTP %ld, %s: %s", name, resp->status, perr.code, perr.message);
    return CS_ERR_UPSTREAM;
  }
  if (resp->status == 200) {
    *err = perr;
    CS_LOG(CS_LOG_WARN, "sts %s: HTTP 200 but %s", name, perr.message);
    return CS_ERR_UPSTREAM;
  }
  *retry = resp->status >= 500 || resp->status == 429;
  CS_LOG(CS_LOG_WARN, "sts %s: HTTP %ld without an STS error document", name, resp->status);
  return cs_net_fail(err, CS_ERR_UPSTREAM, resp->status == 429 ? "Throttling" : "UnexpectedStatus",
                     "STS answered HTTP %ld", resp->status);
}

static void sts_url(const struct cs_broker *b, const struct cs_sts_params *p, char *url, size_t cap)
{
  if (b->sts_endpoint)
    snprintf(url, cap, "%s", b->sts_endpoint);
  else if (p->regional)
    snprintf(url, cap, "https://sts.%s.amazonaws.com/", p->region);
  else
    snprintf(url, cap, "https://sts.amazonaws.com/");
}

/* Send the prepared request until it succeeds, STS gives a verdict, or
 * the attempts run out. */
static enum cs_err attempts(struct cs_broker *b, enum cs_sts_action a,
                            const struct cs_http_req *req, struct cs_sts_result *out,
                            struct cs_net_error *err)
{
  struct cs_http_resp resp = {0};
  struct cs_net_error last = {0};
  enum cs_err e;

  for (int attempt = 1;; attempt++) {
    bool retry = true;

    cs_broker_count_call(b, CS_KIND_STS);
    e = cs_http_do(b->http, req, &resp);
    if (e == CS_OK) {
      e = interpret(a, &resp, out, &last, &retry);
    } else if (e == CS_ERR_UPSTREAM || e == CS_ERR_FORBIDDEN) {
      CS_LOG(CS_LOG_WARN, "sts %s: %s", action_names[a], resp.error);
      e = cs_net_fail_transport(&last, "STS", "STSUnreachable", &resp);
      retry = !resp.permanent;
    } else {
      cs_http_resp_wipe(&resp);
      return e; /* out of memory or a libcurl failure: retrying won't help */
    }
    cs_http_resp_wipe(&resp);
    if (e == CS_OK)
      return CS_OK;
    cs_broker_count_error(b, CS_KIND_STS);
    if (!retry || attempt == STS_ATTEMPTS)
      break;
    backoff(attempt);
  }
  if (err)
    *err = last;
  return CS_ERR_UPSTREAM;
}

enum cs_err cs_aws_sts_call(struct cs_broker *b, enum cs_sts_action a,
                            const struct cs_aws_creds *base, const struct cs_sts_params *p,
                            struct cs_sts_result *out, struct cs_net_error *err)
{
  char url[512], sigv4[128];
  char token_hdr[sizeof base->session_token + 32];
  struct cs_buf form;
  const char *headers[3] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL,
                            NULL};
  struct cs_http_req req = {.method = "POST",
                            .url = url,
                            .reach = CS_HTTP_API,
                            .headers = headers,
                            .sigv4 = sigv4,
                            .user = base->access_key_id,
                            .password = base->secret_access_key,
                            .timeout_ms = b->timeout_ms};
  struct cs_sts_result r = {0};
  enum cs_err e;

  cs_buf_init_secret(&form, STS_FORM_MAX); /* ExternalId is a shared secret of sorts */
  sts_url(b, p, url, sizeof url);
  snprintf(sigv4, sizeof sigv4, "aws:amz:%s:sts", p->region);
  if ((e = build_form(a, p, &form)) != CS_OK) {
    e = e == CS_ERR_NOMEM ? e
                          : cs_net_fail(err, CS_ERR_INVALID, "InvalidRequest",
                                        "%s parameters are too long", action_names[a]);
    goto out;
  }
  /* A base identity from the instance role signs with its session token. */
  if (base->session_token[0]) {
    snprintf(token_hdr, sizeof token_hdr, "x-amz-security-token: %s", base->session_token);
    headers[1] = token_hdr;
  }
  req.body = form.data;
  req.body_len = form.len;
  if ((e = attempts(b, a, &req, &r, err)) == CS_OK)
    *out = r;
out:
  cs_sts_result_wipe(&r);
  cs_memzero(token_hdr, sizeof token_hdr);
  cs_buf_wipe(&form);
  return e;
}
