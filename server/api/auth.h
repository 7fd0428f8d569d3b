/**
 * @file auth.h
 * @brief Authentication (Bearer/x-redlock-auth JWTs, Basic access keys,
 *        checked by the core), the role check of the route table, and
 *        brute-force limiting.
 */
#ifndef CS_AUTH_H
#define CS_AUTH_H

#include "http.h"

/**
 * Authenticate @p req from its headers and check its route's roles column
 * and flags (CS_ROUTE_UNSCOPED: a key with a scope gets CS_ERR_FORBIDDEN).
 * Fills req->who on success.
 * @return CS_ERR_UNAUTHORIZED (no credentials), CS_ERR_BAD_TOKEN,
 *         CS_ERR_BAD_CREDENTIALS, CS_ERR_RATE_LIMITED, CS_ERR_FORBIDDEN,
 *         CS_ERR_STORE.
 */
enum cs_err cs_auth_request(struct cs_req *req, struct cs_resp *resp) CS_WUR;

/**
 * Check an access key id and secret (login and Basic), with brute-force
 * limiting by client address group (ratelimit.h). @p id may be NULL (a
 * malformed credential): like an empty, oversize or unknown id it is a
 * failure, counted and audited. Fills @p who on success.
 * @return CS_ERR_BAD_CREDENTIALS, CS_ERR_RATE_LIMITED, CS_ERR_STORE.
 */
enum cs_err cs_auth_key_secret(struct cs_req *req, const char *id, const char *secret,
                               struct cs_principal *who) CS_WUR;

#define CS_BASIC_MAX 512 /* bytes of a decoded Basic "id:secret" */

/**
 * Split the value of an "Authorization: Basic" header (what follows the
 * scheme; leading spaces skipped) into @p id and @p secret, both pointing
 * into @p buf, which the caller wipes.
 * @return CS_ERR_BAD_CREDENTIALS for anything but standard base64 of
 *         "id:secret" of at most CS_BASIC_MAX bytes without a NUL.
 */
enum cs_err cs_auth_basic_split(const char *b64, char buf[CS_BASIC_MAX + 1], const char **id,
                                const char **secret) CS_WUR;

/**
 * Mint a token for @p who valid for the configured TTL, rendered as
 * {"token","message":"login_successful"}.
 */
/**
 * {"token"} for @p who, valid @p ttl seconds (0: --token-ttl). Caller frees
 * *out with cs_json_wipe_delete() or hands it to cs_resp_json_secret().
 * @return CS_ERR_NOMEM, CS_ERR_CRYPTO.
 */
enum cs_err cs_auth_token_object(struct cs_req *req, const struct cs_principal *who, int64_t ttl,
                                 cJSON **out) CS_WUR;

/**
 * A login body {"username", "password", ...}: check the pair (counted by the
 * rate limiter like any attempt) and record a success. @p body is the
 * caller's, and its password is wiped.
 * @return CS_ERR_BAD_JSON, CS_ERR_INVALID (not strings), CS_ERR_BAD_CREDENTIALS,
 *         CS_ERR_RATE_LIMITED, CS_ERR_STORE.
 */
enum cs_err cs_auth_login(struct cs_req *req, struct cs_resp *resp,
                          struct cs_principal *who) CS_WUR;

enum cs_err cs_auth_token_response(struct cs_req *req, const struct cs_principal *who,
                                   struct cs_resp *resp) CS_WUR;

/**
 * The one place an authentication outcome is logged, counted and audited:
 * it alone decides what of a presented credential may be written down
 * (@p presented_id only if it has the shape of a key id; never a secret or
 * token). @p result is "success", "failure" or "rate_limited"; failures and
 * refusals get a log line, and an audit entry when @p audit. Counting in
 * /metrics is done where the attempt is decided (cs_auth_key_secret).
 */
void cs_auth_record(struct cs_req *req, const char *presented_id, const char *result, bool audit);

#endif /* CS_AUTH_H */
