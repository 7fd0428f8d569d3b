/**
 * @file auth.h
 * @brief Authentication (Bearer/x-redlock-auth JWTs, Basic access keys),
 *        the role check of the route table, and brute-force limiting.
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
 * limiting by client address and key id. Fills @p who on success.
 * @return CS_ERR_BAD_CREDENTIALS, CS_ERR_RATE_LIMITED, CS_ERR_STORE.
 */
enum cs_err cs_auth_key_secret(struct cs_req *req, const char *id, const char *secret,
                               struct cs_principal *who) CS_WUR;

/**
 * Mint a token for @p who valid for the configured TTL, rendered as
 * {"token","message":"login_successful"}.
 */
enum cs_err cs_auth_token_response(struct cs_req *req, const struct cs_principal *who,
                                   struct cs_resp *resp) CS_WUR;

/** Is @p kind ('a' address, 'k' key id) @p subject cooling off at @p now? */
bool cs_rl_blocked(char kind, const char *subject, int64_t now);
/** Count a failure; past @p max_failures block for @p cooloff seconds. */
void cs_rl_fail(char kind, const char *subject, int64_t now, int64_t max_failures,
                int64_t cooloff);
/** Forget failures of @p subject after a success (unless it is blocked). */
void cs_rl_success(char kind, const char *subject);

#endif /* CS_AUTH_H */
