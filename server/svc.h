/**
 * @file svc.h
 * @brief The service layer: the rules of credentials (and, later, usages,
 *        events and audit), each change one store transaction. Handlers
 *        parse requests into these structs and render what comes back; they
 *        never touch the store themselves.
 */
#ifndef CS_SVC_H
#define CS_SVC_H

#include "http.h"
#include "providers.h"

/* ------------------------------------------------------ credential records */

/**
 * A credential record as stored in CS_TBL_CREDS, decoded in place (borrowed
 * from the transaction). Binary layout, big-endian:
 *   "CSC1" | u8 type | u64 version | i64 created | i64 modified |
 *   u32 meta_len | meta JSON | u8 fp_len | fingerprint | sealed secret
 * meta holds description, owner and the provider's non-secret fields; the
 * fingerprint is what output shows as secret.encrypted.
 */
struct cs_cred_view {
  const char *id;
  const struct cs_provider *prov;
  uint64_t version;
  int64_t created;
  int64_t modified;
  const char *meta;
  size_t meta_len;
  const char *fp;
  size_t fp_len;
  const uint8_t *sealed;
  size_t sealed_len;
};

/** Decode @p v (a CS_TBL_CREDS value for @p id). @return CS_ERR_STORE if corrupt. */
enum cs_err cs_cred_decode(const char *id, const struct cs_val *v, struct cs_cred_view *out) CS_WUR;

/** Render the metadata of a credential (no secret). @return NULL on OOM/corrupt meta. */
cJSON *cs_cred_render(const struct cs_cred_view *c);

/** Open a credential's sealed secret. Caller frees with cs_open_free(). */
enum cs_err cs_cred_open_secret(const struct cs_app *app, const struct cs_cred_view *c,
                                uint8_t **plain, size_t *len) CS_WUR;

/* -------------------------------------------------------------- operations */

/** A create-or-update request. */
struct cs_cred_put {
  const char *id;          /* path id (PUT) or body _id (POST) */
  const cJSON *body;       /* the credential as sent; not modified */
  bool must_exist;         /* PUT: 404 when missing */
  bool has_if_match;       /* If-Match given */
  uint64_t if_match;       /* the version it names */
  const struct cs_principal *who;
};

/** What a create-or-update did. */
struct cs_cred_put_result {
  bool created;
  cJSON *credential; /* rendered, owned by the caller */
  struct cs_prov_error perr; /* on CS_ERR_INVALID/MISSING: field and message */
};

/**
 * Validate through the type's provider, seal the secret (keeping the stored
 * one when the body omits it or sends back its secret.encrypted) and write.
 * @return CS_ERR_INVALID/CS_ERR_MISSING/CS_ERR_BAD_ID (perr says which field),
 *         CS_ERR_NOT_FOUND (PUT on a missing id), CS_ERR_PRECONDITION
 *         (If-Match), CS_ERR_NOMEM, CS_ERR_STORE*, CS_ERR_CRYPTO.
 */
enum cs_err cs_creds_put(struct cs_app *app, const struct cs_cred_put *in,
                         struct cs_cred_put_result *out) CS_WUR;

/** Rendered metadata of @p id. @return CS_ERR_NOT_FOUND, CS_ERR_STORE, CS_ERR_NOMEM. */
enum cs_err cs_creds_get(struct cs_app *app, const char *id, cJSON **out) CS_WUR;

/**
 * Delete @p id unless a usage exists (checked in the same transaction).
 * @return CS_ERR_NOT_FOUND, CS_ERR_IN_USE (*usages = the usages, caller
 *         deletes), CS_ERR_STORE*.
 */
enum cs_err cs_creds_delete(struct cs_app *app, const char *id, cJSON **usages) CS_WUR;

enum cs_cred_sort { CS_SORT_ID, CS_SORT_TYPE, CS_SORT_CREATED, CS_SORT_MODIFIED };

/** A list query (API.md §3). */
struct cs_cred_query {
  uint64_t offset;
  uint64_t limit;
  const struct cs_provider *type; /* NULL = all */
  const char *search;             /* case-insensitive substring of _id, description, accountID */
  enum cs_cred_sort sort;
  bool reverse;
  const cJSON *scope; /* the caller's scope, NULL = everything */
};

/** One page of rendered credentials and the count of all that match. */
enum cs_err cs_creds_list(struct cs_app *app, const struct cs_cred_query *q, cJSON **page,
                          uint64_t *total) CS_WUR;

#endif /* CS_SVC_H */
