/**
 * @file providers.h
 * @brief One provider per credential type behind one vtable: validate the
 *        input, derive the non-secret metadata, produce the payload that
 *        gets sealed, and turn an opened payload back into the material a
 *        consumer receives on resolve.
 *
 * Providers never see keys or the store. The service layer opens a kept
 * secret and puts it back into the body as secret.plain (or apiToken.plain)
 * before calling validate, so validation always sees the full input.
 */
#ifndef CS_PROVIDERS_H
#define CS_PROVIDERS_H

#include "common.h"

#include <cjson/cJSON.h>

/** Longest field path named in a validation error ("secret.plain.clientId"). */
#define CS_FIELD_MAX 64
/** Longest human message of a validation error. */
#define CS_PROV_MSG_MAX 256

/** Why validation failed: which field, and a message safe to show (no secret). */
struct cs_prov_error {
  char field[CS_FIELD_MAX];
  char msg[CS_PROV_MSG_MAX];
};

/** What validate produces. */
struct cs_prov_result {
  /**
   * Non-secret fields for the stored record and for output, owned by the
   * caller (cJSON_Delete): exactly the type's public fields from the input
   * (accountID, accountGUID, roleArn, externalID, useAWSRole,
   * useSTSRegionalEndpoint, region, durationSeconds, ...) plus derived ones
   * (azureSPInfo, gcp accountID/projectID, kubeconfig{currentContext,clusters}).
   * Never contains secret bytes. Common fields (_id, type, description,
   * version, created, lastModified, owner) are the service layer's, not here.
   */
  cJSON *meta;
  /** Plaintext to seal, malloc'd, NUL-terminated; caller wipes and frees. */
  char *secret;
  size_t secret_len;
};

/** Options of a resolve request that providers may use. */
struct cs_resolve_opts {
  int64_t duration_seconds; /* 0 = the credential's or the default */
  const char *region;       /* NULL = the credential's */
  const char *session_name; /* NULL = derived by the caller */
};

struct cs_provider {
  const char *type; /* "aws", "azure", "gcp", "ibmCloud", "kubeconfig" */

  /**
   * Validate @p body (the whole credential object as sent) and produce the
   * metadata and the secret payload.
   * @return CS_ERR_INVALID / CS_ERR_MISSING with @p err filled (field path
   *         and message), CS_ERR_NOMEM. Outputs written only on success.
   */
  enum cs_err (*validate)(const cJSON *body, struct cs_prov_result *out,
                          struct cs_prov_error *err);

  /**
   * Build the material a consumer receives, from the stored metadata and
   * the opened secret. Types whose material needs network calls (aws with a
   * role or instance identity) are resolved elsewhere (providers/aws/).
   * Caller frees *out with cJSON_Delete (and must treat it as secret).
   * @return CS_ERR_CRYPTO if the payload no longer parses, CS_ERR_NOMEM.
   */
  enum cs_err (*resolve)(const cJSON *meta, const char *secret, size_t secret_len,
                         const struct cs_resolve_opts *opts, cJSON **out);
};

/** @return the provider for @p type, or NULL if the type is unknown. */
const struct cs_provider *cs_provider_find(const char *type);

/** NULL-terminated list of every provider, in a stable order. */
extern const struct cs_provider *const cs_providers[];

/** Wipe and free the secret of @p r and delete its meta. NULL ok. */
void cs_prov_result_free(struct cs_prov_result *r);

/**
 * Parse a kubeconfig YAML document (libyaml) and describe it.
 * Fills *meta with {"currentContext": "...", "clusters": [{"name","server"}]}.
 * @return CS_ERR_INVALID with @p err filled when the YAML is malformed, has no
 *         clusters/users/contexts, current-context is missing or does not
 *         resolve to a context whose cluster and user exist, or a user
 *         authenticates through `exec` or `auth-provider` (the message says
 *         GKE/EKS-style users need an external binary credstore cannot run).
 */
enum cs_err cs_kubeconfig_describe(const char *yaml, size_t len, cJSON **meta,
                                   struct cs_prov_error *err) CS_WUR;

/* ------------------------------------------------------------- HTTP client */

/**
 * POST @p body (application/json) to an http(s) @p url with extra header
 * lines (NULL-terminated array, may be NULL); no redirects. *status is the
 * HTTP status; the response body goes to @p resp (bounded by its max) or is
 * discarded when @p resp is NULL.
 * @return CS_ERR_UPSTREAM (transport failure, timeout, response too large),
 *         CS_ERR_INVALID (url).
 */
enum cs_err cs_http_post_json(const char *url, const char *const *headers, const char *body,
                              size_t len, long timeout_ms, long *status,
                              struct cs_buf *resp) CS_WUR;

/* ------------------------------------------------------------------- AWS */

/** STS DurationSeconds when the credential stores none. */
#define CS_AWS_DEFAULT_DURATION 3600

/**
 * @return true if @p s is an AWS region name (us-east-1, us-gov-west-1, ...):
 *         2-4 lowercase letters, "-word" groups, "-" and 1-2 digits, at most
 *         32 characters. The one check for stored and requested regions.
 */
bool cs_aws_region_valid(const char *s);

/** Where AWS lives; tests point both at loopback doubles. */
struct cs_aws_config {
  const char *sts_endpoint;  /* NULL: global/regional amazonaws.com endpoints */
  const char *imds_endpoint; /* NULL: http://169.254.169.254 */
  long timeout_ms;           /* per HTTP call; 0 = 5000 */
};

/** One resolve of an aws credential. Strings are borrowed for the call. */
struct cs_aws_request {
  const char *cred_id;         /* cache key part */
  uint64_t version;            /* cache key part: an edit invalidates */
  const char *access_key_id;   /* stored keys; NULL with use_instance_role */
  const char *secret_key;      /* stored secret; NULL with use_instance_role */
  bool use_instance_role;      /* base identity from IMDSv2 */
  const char *role_arn;        /* NULL: no AssumeRole */
  const char *external_id;     /* NULL: none */
  const char *session_name;    /* RoleSessionName; NULL: "credstore" */
  int64_t duration_seconds;    /* 0: CS_AWS_DEFAULT_DURATION */
  const char *region;          /* signing region with regional endpoint */
  bool regional_endpoint;      /* sts.<region>.amazonaws.com, signed for region */
};

/** Temporary (or static) credentials. Wipe with cs_aws_creds_wipe(). */
struct cs_aws_creds {
  char access_key_id[129];
  char secret_access_key[129];
  char session_token[2048]; /* "" for static keys */
  int64_t expiration;       /* 0 for static keys */
};

/** What an upstream failure said (STS error code and message, or a transport error). */
struct cs_aws_error {
  char code[64];
  char message[256];
};

struct cs_aws_stats {
  uint64_t sts_calls;
  uint64_t imds_calls;
  uint64_t cache_hits;
  uint64_t cache_misses;
};

struct cs_aws_resolver; /* opaque: config, cache, single-flight state */

/**
 * @return CS_ERR_INVALID (an endpoint that is not an http(s) URL of at most
 *         400 characters), CS_ERR_NOMEM, CS_ERR_INTERNAL (libcurl init).
 *         Free with cs_aws_resolver_free().
 */
enum cs_err cs_aws_resolver_create(const struct cs_aws_config *cfg,
                                   struct cs_aws_resolver **out) CS_WUR;
/** NULL ok. Wipes cached credentials. */
void cs_aws_resolver_free(struct cs_aws_resolver *r);

/**
 * Resolve @p req: base identity (stored keys, or the instance role through
 * IMDSv2), then AssumeRole when role_arn is set; cached by (cred_id,
 * version, role, external id, duration, region) until 5 minutes before
 * expiry; concurrent resolves of a cold key make one upstream call.
 * @return CS_ERR_UPSTREAM (err says what STS/IMDS answered), CS_ERR_INVALID,
 *         CS_ERR_NOMEM. *out written only on success.
 */
enum cs_err cs_aws_resolve(struct cs_aws_resolver *r, const struct cs_aws_request *req,
                           struct cs_aws_creds *out, struct cs_aws_error *err) CS_WUR;

/** Drop every cached entry of @p cred_id (after an edit or delete). */
void cs_aws_invalidate(struct cs_aws_resolver *r, const char *cred_id);

/** Counters for /metrics. */
void cs_aws_get_stats(struct cs_aws_resolver *r, struct cs_aws_stats *out);

/** Wipe @p c. */
void cs_aws_creds_wipe(struct cs_aws_creds *c);

#endif /* CS_PROVIDERS_H */
