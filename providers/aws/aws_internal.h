/**
 * @file aws_internal.h
 * @brief Private to providers/aws/: the resolver's state, the HTTP helper,
 *        the STS and IMDS clients, and the two response parsers (exposed so
 *        the unit tests and fuzz harnesses can call them directly).
 *
 * In this directory only aws_http.c includes curl.h: the STS and IMDS
 * clients speak HTTP through cs_aws_http() (the rest of providers/ uses
 * libcurl in http_post.c and http_policy.c).
 */
#ifndef CS_AWS_INTERNAL_H
#define CS_AWS_INTERNAL_H

#include "providers.h"

#include <pthread.h>
#include <stdatomic.h>

/** Largest upstream response body read; bigger ones are an upstream error. */
#define CS_AWS_BODY_MAX ((size_t)64 * 1024)
/** Cached temporary credentials are used until this long before Expiration. */
#define CS_AWS_EXPIRY_MARGIN 300
/** Most entries the resolver's cache holds. */
#define CS_AWS_CACHE_MAX 10000
/** Longest IMDSv2 session token kept. */
#define CS_AWS_IMDS_TOKEN_MAX 1024
/** IMDSv2 token lifetime requested (seconds) and the margin before it is renewed. */
#define CS_AWS_IMDS_TOKEN_TTL 21600
#define CS_AWS_IMDS_TOKEN_MARGIN 60

struct cs_aws_entry; /* aws_resolver.c */

struct cs_aws_resolver {
  char *sts_endpoint;  /* NULL: amazonaws.com */
  char *imds_endpoint; /* never NULL */
  long timeout_ms;

  /* Cache and single-flight state. */
  pthread_mutex_t lock;
  struct cs_aws_entry **buckets;
  size_t nbuckets;
  size_t count;
  struct cs_aws_entry *lru_head, *lru_tail; /* most recently used first */

  /* IMDSv2 session token, reused until shortly before its TTL ends. */
  pthread_mutex_t imds_lock;
  char imds_token[CS_AWS_IMDS_TOKEN_MAX + 1];
  int64_t imds_token_expiry_ms; /* monotonic; 0 = none */

  atomic_uint_fast64_t sts_calls;  /* HTTP requests sent to STS */
  atomic_uint_fast64_t imds_calls; /* HTTP requests sent to IMDS */
  atomic_uint_fast64_t cache_hits;
  atomic_uint_fast64_t cache_misses;
};

/* ------------------------------------------------------------------ HTTP */

/** One HTTP exchange with an AWS endpoint. */
struct cs_aws_http_req {
  const char *method; /* "GET", "PUT" or "POST" */
  const char *url;
  const char *const *headers; /* NULL-terminated "Name: value" lines; NULL ok */
  const char *body;           /* request body (POST/PUT); NULL: none */
  size_t body_len;
  const char *sigv4;    /* CURLOPT_AWS_SIGV4 ("aws:amz:<region>:sts"); NULL: unsigned */
  const char *user;     /* access key id, with sigv4 */
  const char *password; /* secret access key, with sigv4 */
  long timeout_ms;
  bool direct; /* never through a proxy (IMDS is link-local) */
};

/** What came back. The body may hold secrets: release with cs_aws_http_resp_wipe(). */
struct cs_aws_http_resp {
  long status;
  char *body; /* NUL-terminated, malloc'd */
  size_t len;
  char error[256]; /* transport failure, no secrets */
  bool permanent;  /* a failure retrying cannot fix (TLS verification, bad URL) */
};

/**
 * Send @p req. A response of any HTTP status is a success here.
 * @return CS_ERR_UPSTREAM on a transport failure (resp->error says which:
 *         connect, timeout, a body over CS_AWS_BODY_MAX…), CS_ERR_NOMEM,
 *         CS_ERR_INTERNAL.
 */
enum cs_err cs_aws_http(const struct cs_aws_http_req *req, struct cs_aws_http_resp *resp) CS_WUR;
/** Wipe and free the body of @p resp. */
void cs_aws_http_resp_wipe(struct cs_aws_http_resp *resp);
/** curl_global_init, once per process. @return CS_ERR_INTERNAL. */
enum cs_err cs_aws_http_global_init(void) CS_WUR;

/* --------------------------------------------------------------- parsers */

/**
 * Parse an STS answer: an AssumeRoleResponse (credentials into @p out) or an
 * ErrorResponse (code and message into @p err). Bounded: reads exactly
 * @p len bytes (no NUL needed), refuses DTDs, nesting deeper than 16,
 * duplicate fields and values longer than the fields of @p out.
 * @return CS_OK with @p out filled; CS_ERR_UPSTREAM for an STS error
 *         document (@p err filled); CS_ERR_INVALID for anything else
 *         (@p err gets code "MalformedResponse" and what was wrong).
 *         @p out is written only on CS_OK.
 */
enum cs_err cs_aws_parse_sts_response(const char *body, size_t len, struct cs_aws_creds *out,
                                      struct cs_aws_error *err) CS_WUR;

/**
 * Parse IMDS role credentials ({"Code":"Success","AccessKeyId",
 * "SecretAccessKey","Token","Expiration",...}).
 * @return CS_OK with @p out filled; CS_ERR_UPSTREAM when Code is not
 *         "Success" (@p err holds Code and Message); CS_ERR_INVALID for
 *         malformed or oversize documents (@p err code "MalformedResponse").
 */
enum cs_err cs_aws_parse_imds_credentials(const char *body, size_t len, struct cs_aws_creds *out,
                                          struct cs_aws_error *err) CS_WUR;

/* ---------------------------------------------------------------- clients */

/** Fill @p err (NULL ok) with @p code and a printf-formatted message. @return @p e. */
enum cs_err cs_aws_fail(struct cs_aws_error *err, enum cs_err e, const char *code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/**
 * Fetch the instance role's credentials through IMDSv2 (token, role name,
 * role credentials), reusing the resolver's token and renewing it once on 401.
 * @return CS_ERR_UPSTREAM (@p err filled), CS_ERR_NOMEM.
 */
enum cs_err cs_aws_imds_fetch(struct cs_aws_resolver *r, struct cs_aws_creds *out,
                              struct cs_aws_error *err) CS_WUR;

/** What AssumeRole needs besides the base identity. */
struct cs_aws_assume {
  const char *role_arn;
  const char *external_id;  /* NULL: none */
  const char *session_name; /* validated */
  int64_t duration_seconds;
  const char *region; /* signing region (us-east-1 on the global endpoint) */
  bool regional;      /* sts.<region>.amazonaws.com unless --sts-endpoint */
};

/**
 * Call STS AssumeRole as @p base, retrying throttling, 5xx and transport
 * failures (3 attempts, exponential backoff with jitter).
 * @return CS_ERR_UPSTREAM (@p err holds STS's code and message), CS_ERR_NOMEM.
 */
enum cs_err cs_aws_sts_assume_role(struct cs_aws_resolver *r, const struct cs_aws_creds *base,
                                   const struct cs_aws_assume *a, struct cs_aws_creds *out,
                                   struct cs_aws_error *err) CS_WUR;

/**
 * Append @p s percent-encoded for a form body (everything but A-Z a-z 0-9
 * - . _ ~ as %XX, like curl_easy_escape). @return CS_ERR_TOO_LARGE, CS_ERR_NOMEM.
 */
enum cs_err cs_aws_form_escape(struct cs_buf *b, const char *s) CS_WUR;

#endif /* CS_AWS_INTERNAL_H */
