/**
 * @file aws_internal.h
 * @brief Private to providers/aws/: the STS and IMDS clients, the request
 *        checks and cache keys of the resolver, and the two response
 *        parsers (exposed so the unit tests and fuzz harnesses can call
 *        them directly). HTTP goes through the broker's one client.
 */
#ifndef CS_AWS_INTERNAL_H
#define CS_AWS_INTERNAL_H

#include "prov_internal.h"

/** IMDSv2 token lifetime requested (seconds) and the margin before it is renewed. */
#define CS_AWS_IMDS_TOKEN_TTL 21600
#define CS_AWS_IMDS_TOKEN_MARGIN 60

/* --------------------------------------------------------------- parsers */

/** The three STS actions credstore calls. */
enum cs_sts_action {
  CS_STS_ASSUME_ROLE,
  CS_STS_GET_SESSION_TOKEN,
  CS_STS_GET_CALLER_IDENTITY,
};

/** What an STS answer carries; which parts depend on the action. */
struct cs_sts_result {
  struct cs_aws_creds creds; /* AssumeRole, GetSessionToken */
  char arn[2049];    /* GetCallerIdentity Arn; AssumeRole AssumedRoleUser/Arn ("" if absent) */
  char account[33];  /* GetCallerIdentity */
  char user_id[257]; /* GetCallerIdentity */
};

/** Wipe @p r. */
void cs_sts_result_wipe(struct cs_sts_result *r);

/**
 * Parse an STS answer to @p action: its <Action>Response (into @p out) or
 * an ErrorResponse (code and message into @p err). Bounded: reads exactly
 * @p len bytes (no NUL needed), refuses DTDs, nesting deeper than 16,
 * duplicate fields and values longer than the fields of @p out.
 * Credentials need AccessKeyId, SecretAccessKey, SessionToken and a valid
 * Expiration; GetCallerIdentity needs Arn and Account.
 * @return CS_OK with @p out filled; CS_ERR_UPSTREAM for an STS error
 *         document (@p err filled); CS_ERR_INVALID for anything else
 *         (@p err gets code "MalformedResponse" and what was wrong).
 *         @p out is written only on CS_OK.
 */
enum cs_err cs_aws_parse_sts(const char *body, size_t len, enum cs_sts_action action,
                             struct cs_sts_result *out, struct cs_net_error *err) CS_WUR;

/**
 * Parse IMDS role credentials ({"Code":"Success","AccessKeyId",
 * "SecretAccessKey","Token","Expiration",...}).
 * @return CS_OK with @p out filled; CS_ERR_UPSTREAM when Code is not
 *         "Success" (@p err holds Code and Message); CS_ERR_INVALID for
 *         malformed or oversize documents (@p err code "MalformedResponse").
 */
enum cs_err cs_aws_parse_imds_credentials(const char *body, size_t len, struct cs_aws_creds *out,
                                          struct cs_net_error *err) CS_WUR;

/* ---------------------------------------------------------------- clients */

/**
 * Fetch the instance role's credentials through IMDSv2 (token, role name,
 * role credentials), reusing the broker's token and renewing it once on 401.
 * @return CS_ERR_UPSTREAM (@p err filled), CS_ERR_NOMEM.
 */
enum cs_err cs_aws_imds_fetch(struct cs_broker *b, struct cs_aws_creds *out,
                              struct cs_net_error *err) CS_WUR;

/** An STS call's parameters besides the identity that signs it. */
struct cs_sts_params {
  const char *role_arn;     /* AssumeRole */
  const char *external_id;  /* AssumeRole; NULL: none */
  const char *session_name; /* AssumeRole; validated */
  int64_t duration_seconds; /* AssumeRole, GetSessionToken */
  const char *region;       /* signing region (us-east-1 on the global endpoint) */
  bool regional;            /* sts.<region>.amazonaws.com unless --sts-endpoint */
};

/**
 * Call STS @p action signed as @p base (SigV4 through libcurl; a base
 * with a session token sends it signed), retrying throttling, 5xx and
 * transport failures (3 attempts, exponential backoff with jitter) but
 * not what retrying cannot fix (STS's verdicts, TLS, refused endpoints).
 * @return CS_ERR_UPSTREAM (@p err holds STS's code and message, or the
 *         transport failure), CS_ERR_INVALID (parameters too long), CS_ERR_NOMEM.
 */
enum cs_err cs_aws_sts_call(struct cs_broker *b, enum cs_sts_action action,
                            const struct cs_aws_creds *base, const struct cs_sts_params *p,
                            struct cs_sts_result *out, struct cs_net_error *err) CS_WUR;

/**
 * When cached credentials that expire at @p expiration must be renewed
 * (the refresh window rule of providers.h): @p duration is what was asked
 * of STS, or 0 for IMDS (then the lifetime left at @p now counts).
 */
int64_t cs_aws_serve_until(int64_t expiration, int64_t duration, int64_t now);

/**
 * Test @p req: GetCallerIdentity as the base identity, then AssumeRole
 * when a role is set (never cached). identity = the assumed role's ARN,
 * or the caller's without a role.
 * @return CS_OK with @p out filled; CS_ERR_NOMEM.
 */
enum cs_err cs_aws_test(struct cs_broker *b, const struct cs_aws_request *req,
                        struct cs_test_result *out) CS_WUR;

#endif /* CS_AWS_INTERNAL_H */
