/**
 * @file prov_internal.h
 * @brief Helpers shared by the provider files (not part of the module API).
 *
 * Conventions every provider follows:
 * - An empty string and JSON null mean "not set", because clients that edit a
 *   credential (Prisma's UI among them) send "" for fields they leave blank,
 *   and the core hands back a useAWSRole credential's empty payload
 *   as secret.plain = "".
 * - Error messages name the field and the rule, never the offending value.
 */
#ifndef CS_PROV_INTERNAL_H
#define CS_PROV_INTERNAL_H

#include "providers.h"

extern const struct cs_provider cs_provider_aws;
extern const struct cs_provider cs_provider_azure;
extern const struct cs_provider cs_provider_gcp;
extern const struct cs_provider cs_provider_ibmcloud;
extern const struct cs_provider cs_provider_kubeconfig;
extern const struct cs_provider cs_provider_basic;
extern const struct cs_provider cs_provider_apitoken;

/** The process's network state (providers.h); aws.c reads it. */
struct cs_prov_net {
  struct cs_aws_resolver *aws; /* STS and IMDS with their cache */
};

/** Every provider's test until the broker issue: CS_ERR_UNAVAILABLE, "NotImplemented". */
enum cs_err cs_prov_test_unimplemented(const struct cs_prov_ctx *ctx,
                                       struct cs_test_result *out) CS_WUR;

/** The test of a type that only stores (basic, apiToken, certificate without
 * a url): ok, "stored; nothing to test". @return CS_OK. */
enum cs_err cs_prov_test_stored(const struct cs_prov_ctx *ctx, struct cs_test_result *out) CS_WUR;

/** Largest secret.plain any provider accepts (the request body cap). */
#define CS_PROV_PLAIN_MAX ((size_t)1 << 20)

/**
 * Fill @p err (NULL ok) with @p field and a printf-formatted message.
 * @return @p e, so callers can write `e = cs_prov_fail(...); goto out;`.
 */
enum cs_err cs_prov_fail(struct cs_prov_error *err, enum cs_err e, const char *field,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * Read @p holder.plain from @p body (holder is "secret" or "apiToken").
 * Holder or plain absent, null or "" → *out = NULL, CS_OK.
 * @return CS_ERR_INVALID naming the holder when it is not an object, or
 *         "<holder>.plain" when plain is not a string or is too long.
 */
enum cs_err cs_prov_plain(const cJSON *body, const char *holder, const char **out,
                          struct cs_prov_error *err) CS_WUR;

/**
 * Read an optional string member @p name; absent, null or "" → *out = NULL.
 * @return CS_ERR_INVALID naming @p name if it is not a string or is longer
 *         than @p max_len.
 */
enum cs_err cs_prov_opt_str(const cJSON *obj, const char *name, size_t max_len, const char **out,
                            struct cs_prov_error *err) CS_WUR;

/**
 * Read a required, non-empty string member of a parsed secret document;
 * the error names "<prefix>.<name>" (e.g. "secret.plain.clientId").
 * @return CS_ERR_MISSING when absent or null, CS_ERR_INVALID when not a
 *         string, empty, or longer than @p max_len.
 */
enum cs_err cs_prov_req_member(const cJSON *obj, const char *prefix, const char *name,
                               size_t max_len, const char **out, struct cs_prov_error *err) CS_WUR;

/** @return true if @p s is @p min..@p max printable ASCII chars without spaces. */
bool cs_prov_token_ok(const char *s, size_t min, size_t max);

/**
 * Copy @p len bytes of secret into a malloc'd NUL-terminated buffer.
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_prov_dup_secret(const char *s, size_t len, char **out) CS_WUR;

/**
 * Check an opened payload: non-NULL, at most CS_PROV_PLAIN_MAX bytes, no
 * embedded NUL. Reads only @p len bytes. @return CS_ERR_CRYPTO otherwise.
 */
enum cs_err cs_prov_payload_ok(const char *secret, size_t len) CS_WUR;

/** Add a string member; @return CS_ERR_NOMEM. */
enum cs_err cs_prov_add_str(cJSON *obj, const char *name, const char *val) CS_WUR;
/**
 * Add the @p len bytes of @p secret (not necessarily NUL-terminated) as a
 * string member, through a terminated copy that is wiped. @return CS_ERR_NOMEM.
 */
enum cs_err cs_prov_add_secret(cJSON *obj, const char *name, const char *secret, size_t len) CS_WUR;
/** Add @p item to @p obj, deleting (wiped) @p item if that fails. @return CS_ERR_NOMEM. */
enum cs_err cs_prov_add_item(cJSON *obj, const char *name, cJSON *item) CS_WUR;

/** Longest URL host (a DNS name; IPv6 literals are shorter). */
#define CS_HTTP_HOST_MAX 253

/**
 * cs_http_check_url(), also giving the URL's normalised host (lower case,
 * no trailing dot, IPv6 without brackets) for the connect-time check.
 * @return as cs_http_check_url.
 */
enum cs_err cs_http_check_url_host(const struct cs_http_policy *p, const char *url,
                                   char target[CS_HTTP_TARGET_MAX], char host[CS_HTTP_HOST_MAX + 1],
                                   const char **why) CS_WUR;

#endif /* CS_PROV_INTERNAL_H */
