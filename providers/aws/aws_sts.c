/* STS AssumeRole: a form POST signed with SigV4 by libcurl
 * (CURLOPT_AWS_SIGV4). The signing region is us-east-1 on the global
 * endpoint and the credential's region on the regional one; an
 * --sts-endpoint override changes only the URL, never the region. */
#include "aws_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define STS_ATTEMPTS 3
#define STS_BACKOFF_MS 100
#define STS_FORM_MAX 8192

enum cs_err cs_aws_fail(struct cs_aws_error *err, enum cs_err e, const char *code, const char *fmt,
                        ...)
{
  va_list ap;

  if (!err)
    return e;
  snprintf(err->code, sizeof err->code, "%s", code);
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return e;
}

enum cs_err cs_aws_form_escape(struct cs_buf *b, const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  enum cs_err e;

  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      e = cs_buf_append(b, s, 1);
    } else {
      char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
      e = cs_buf_append(b, enc, 3);
    }
    if (e)
      return e;
  }
  return CS_OK;
}

static enum cs_err build_form(const struct cs_aws_assume *a, struct cs_buf *form)
{
  enum cs_err e;

  if ((e = cs_buf_printf(form, "Action=AssumeRole&Version=2011-06-15&RoleArn=")) ||
      (e = cs_aws_form_escape(form, a->role_arn)) ||
      (e = cs_buf_printf(form, "&RoleSessionName=")) ||
      (e = cs_aws_form_escape(form, a->session_name)) ||
      (e = cs_buf_printf(form, "&DurationSeconds=%" PRId64, a->duration_seconds)))
    return e;
  if (a->external_id &&
      ((e = cs_buf_printf(form, "&ExternalId=")) || (e = cs_aws_form_escape(form, a->external_id))))
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

/* Make sense of one answer. @return CS_OK (creds in @p out), or
 * CS_ERR_UPSTREAM with @p err filled and *retry set when another attempt
 * may help. */
static enum cs_err interpret(const struct cs_aws_http_resp *resp, const char *role_arn,
                             struct cs_aws_creds *out, struct cs_aws_error *err, bool *retry)
{
  struct cs_aws_error perr = {0};
  enum cs_err pe = cs_aws_parse_sts_response(resp->body, resp->len, out, &perr);

  *retry = false;
  if (pe == CS_OK && resp->status == 200)
    return CS_OK;
  if (pe == CS_OK)
    cs_aws_creds_wipe(out);
  if (pe == CS_ERR_UPSTREAM) {
    *err = perr;
    *retry = throttled(perr.code) || resp->status >= 500;
    CS_LOG(CS_LOG_WARN, "sts AssumeRole %s: HTTP %ld, %s: %s", role_arn, resp->status, perr.code,
           perr.message);
    return CS_ERR_UPSTREAM;
  }
  if (resp->status == 200) {
    *err = perr;
    CS_LOG(CS_LOG_WARN, "sts AssumeRole %s: HTTP 200 but %s", role_arn, perr.message);
    return CS_ERR_UPSTREAM;
  }
  *retry = resp->status >= 500 || resp->status == 429;
  CS_LOG(CS_LOG_WARN, "sts AssumeRole %s: HTTP %ld without an STS error document", role_arn,
         resp->status);
  return cs_aws_fail(err, CS_ERR_UPSTREAM, resp->status == 429 ? "Throttling" : "UnexpectedStatus",
                     "STS answered HTTP %ld", resp->status);
}

/* Send @p req up to STS_ATTEMPTS times while another attempt may help.
 * @return CS_OK (@p out filled), CS_ERR_UPSTREAM (@p last says why), or a
 *         local failure (out of memory, libcurl) that retrying won't help. */
static enum cs_err send_with_retries(struct cs_aws_resolver *r, const struct cs_aws_http_req *req,
                                     const char *role_arn, struct cs_aws_creds *out,
                                     struct cs_aws_error *last)
{
  struct cs_aws_http_resp resp = {0};
  enum cs_err e;

  for (int attempt = 1;; attempt++) {
    bool retry = true;

    atomic_fetch_add(&r->sts_calls, 1);
    e = cs_aws_http(req, &resp);
    if (e == CS_OK) {
      e = interpret(&resp, role_arn, out, last, &retry);
    } else if (e == CS_ERR_UPSTREAM) {
      CS_LOG(CS_LOG_WARN, "sts AssumeRole %s: %s", role_arn, resp.error);
      cs_aws_fail(last, e, "STSUnreachable", "STS request failed: %s", resp.error);
      retry = !resp.permanent;
    }
    cs_aws_http_resp_wipe(&resp);
    if (e != CS_ERR_UPSTREAM)
      return e;
    if (!retry || attempt == STS_ATTEMPTS)
      return CS_ERR_UPSTREAM;
    backoff(attempt);
  }
}

enum cs_err cs_aws_sts_assume_role(struct cs_aws_resolver *r, const struct cs_aws_creds *base,
                                   const struct cs_aws_assume *a, struct cs_aws_creds *out,
                                   struct cs_aws_error *err)
{
  char url[512], sigv4[128];
  char token_hdr[sizeof base->session_token + 32];
  struct cs_buf form;
  const char *headers[3] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL,
                            NULL};
  struct cs_aws_http_req req = {0};
  struct cs_aws_creds c = {0};
  struct cs_aws_error e_last = {0};
  enum cs_err e;

  cs_buf_init(&form, STS_FORM_MAX);
  if (r->sts_endpoint)
    snprintf(url, sizeof url, "%s", r->sts_endpoint);
  else if (a->regional)
    snprintf(url, sizeof url, "https://sts.%s.amazonaws.com/", a->region);
  else
    snprintf(url, sizeof url, "https://sts.amazonaws.com/");
  snprintf(sigv4, sizeof sigv4, "aws:amz:%s:sts", a->region);

  if ((e = build_form(a, &form)) != CS_OK) {
    e = e == CS_ERR_NOMEM ? e
                          : cs_aws_fail(err, CS_ERR_INVALID, "InvalidRequest",
                                        "AssumeRole parameters are too long");
    goto out;
  }
  /* A base identity from the instance role signs with its session token. */
  if (base->session_token[0]) {
    snprintf(token_hdr, sizeof token_hdr, "x-amz-security-token: %s", base->session_token);
    headers[1] = token_hdr;
  }
  req = (struct cs_aws_http_req){"POST",
                                 url,
                                 headers,
                                 form.data,
                                 form.len,
                                 sigv4,
                                 base->access_key_id,
                                 base->secret_access_key,
                                 r->timeout_ms,
                                 false};
  e = send_with_retries(r, &req, a->role_arn, &c, &e_last);
  if (e == CS_OK)
    *out = c;
  else if (e == CS_ERR_UPSTREAM && err)
    *err = e_last;
out:
  cs_aws_creds_wipe(&c);
  cs_memzero(token_hdr, sizeof token_hdr);
  cs_buf_free(&form);
  return e;
}
