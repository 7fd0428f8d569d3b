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

#endif /* CS_PROVIDERS_H */
