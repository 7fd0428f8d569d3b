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

struct cs_actor;

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
  const struct cs_actor *actor;
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
enum cs_err cs_creds_delete(struct cs_app *app, const struct cs_actor *a, const char *id,
                            cJSON **usages) CS_WUR;

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

/* ------------------------------------------------------------------ actor */

/** Who made a change, for the audit trail. */
struct cs_actor {
  const char *key_id; /* "" when unknown (failed login) */
  const char *role;
  const char *remote;
};

/** The actor of an authenticated request. */
struct cs_actor cs_actor_of(const struct cs_req *req);

/* ------------------------------------------------------------------ audit */

/**
 * Append a hash-chained audit entry inside @p txn (write). Entries name
 * actors and targets, never values. The link is keyed with @p kr's
 * audit-chain key (cs_chain_hash).
 * Stored: CS_TBL_AUDIT seq → hash[32] | entry JSON (with prevHash), and
 * META "audit_head" → u64 seq | hash[32].
 * @return CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_audit_append(struct cs_txn *txn, const struct cs_keyring *kr,
                            const struct cs_actor *a, const char *action, const char *target,
                            const char *result) CS_WUR;

/** Record one audit entry in its own durable write. */
enum cs_err cs_audit_record(struct cs_app *app, const struct cs_actor *a, const char *action,
                            const char *target, const char *result) CS_WUR;

/**
 * Check the whole chain: consecutive seqs from 1, each hash the keyed link
 * (@p kr) over its entry and the previous hash, prevHash fields matching,
 * and the head record.
 * @return CS_OK, or CS_ERR_CRYPTO with the first bad seq in *bad_seq (also
 *         when @p kr is another data dir's keyring), CS_ERR_STORE*.
 */
enum cs_err cs_audit_verify(struct cs_txn *txn, const struct cs_keyring *kr, uint64_t *count,
                            uint64_t *bad_seq) CS_WUR;

/* ------------------------------------------------------ sequence tables */

/**
 * Visit one record of a sequence-keyed table. Set *stop to end the walk;
 * a non-CS_OK return ends it with that error.
 */
typedef enum cs_err (*cs_seq_fn)(uint64_t seq, const struct cs_val *v, void *arg, bool *stop);

/**
 * Walk @p t from sequence @p from upwards in one read snapshot (audit,
 * events, outbox). @return fn's error, CS_ERR_STORE.
 */
enum cs_err cs_seq_each(struct cs_store *st, enum cs_table t, uint64_t from, cs_seq_fn fn,
                        void *arg) CS_WUR;

/* ----------------------------------------------------------------- events */

/** Append an event inside @p txn (write). */
enum cs_err cs_event_append(struct cs_txn *txn, const char *type, const char *cred_id,
                            uint64_t version) CS_WUR;

/** Start the long-poll notifier. @return CS_ERR_NOMEM, CS_ERR_INTERNAL. */
enum cs_err cs_events_start(struct cs_app *app) CS_WUR;
/** Wake every waiter (after a commit). Safe from any thread. */
void cs_events_notify(struct cs_app *app);
/** Answer every waiter and stop the notifier; later long-polls answer at once. */
void cs_events_stop(struct cs_app *app);
/** Free the notifier's state once the HTTP daemon has stopped. */
void cs_events_free(struct cs_app *app);

/* ---------------------------------------------------------------- usages */

#define CS_USAGE_TYPE_MAX 128
#define CS_URL_MAX 2048

/** A usage to register. */
struct cs_usage_new {
  const char *cred_id;
  const char *type;
  const char *description;
  const char *callback_url; /* NULL: no webhooks */
};

/**
 * Register a usage of an existing credential (atomically with deletes).
 * *out is the rendered usage (with callbackSecret when callback_url is set).
 * @return CS_ERR_NOT_FOUND (credential), CS_ERR_STORE*, CS_ERR_NOMEM.
 */
enum cs_err cs_usages_create(struct cs_app *app, const struct cs_actor *a,
                             const struct cs_usage_new *in, cJSON **out) CS_WUR;
/** Every usage of @p cred_id with "stale". @return CS_ERR_NOT_FOUND, ... */
enum cs_err cs_usages_list(struct cs_app *app, const char *cred_id, cJSON **out) CS_WUR;
/** @return CS_ERR_NOT_FOUND (no such usage of this credential), ... */
enum cs_err cs_usages_delete(struct cs_app *app, const struct cs_actor *a, const char *cred_id,
                             const char *usage_id) CS_WUR;

/**
 * Inside a write txn: the usages of @p cred_id as a JSON array of rendered
 * usages (NULL when there are none).
 */
enum cs_err cs_usages_of(struct cs_txn *txn, const char *cred_id, uint64_t cred_version,
                         cJSON **out) CS_WUR;

/** Inside a read txn: is @p usage_id a usage of @p cred_id? @return CS_ERR_NOT_FOUND. */
enum cs_err cs_usage_check(struct cs_txn *txn, const char *cred_id, const char *usage_id) CS_WUR;

/** Durably record a resolve: usage stats (when the usage still exists) and an audit entry. */
enum cs_err cs_usage_record_resolve(struct cs_app *app, const struct cs_actor *a,
                                    const char *cred_id, const char *usage_id, uint64_t version,
                                    const char *result) CS_WUR;

/**
 * The callback URL and opened callback secret of a usage (outbox worker).
 * Caller frees *url and wipes *secret (cs_free_secret_str).
 * @return CS_ERR_NOT_FOUND (usage gone or no callback), CS_ERR_CRYPTO, ...
 */
enum cs_err cs_usage_callback(struct cs_app *app, struct cs_txn *txn, const char *usage_id,
                              char **url, char **secret) CS_WUR;

/** Inside a write txn: queue an "updated" webhook for every usage with a callback. */
enum cs_err cs_outbox_queue_update(struct cs_txn *txn, const char *cred_id,
                                   uint64_t version) CS_WUR;

/* ---------------------------------------------------------------- resolve */

/** A resolve request. */
struct cs_resolve_req {
  const char *cred_id;
  const char *usage_id;
  const char *require_type; /* refuse any other type (NULL: any type) */
  /**
   * Options may only narrow what the credential allows: duration_seconds
   * at most the stored durationSeconds (CS_AWS_DEFAULT_DURATION when none
   * is stored); session_name, when given, must be the one derived from the
   * usage ("credstore-<usageId>"); region must be an AWS region name.
   */
  struct cs_resolve_opts opts;
};

/**
 * Resolve the material of a credential for one of its usages, and record
 * seenVersion/lastResolvedAt/resolveCount and an audit entry durably. A
 * request refused for its own fault (unknown credential, not a usage of
 * it, another type than require_type, an option beyond the credential)
 * records nothing; a resolve attempted and failed is audited as a failure.
 * @return CS_ERR_NOT_FOUND (credential), CS_ERR_INVALID (fail->field names
 *         the request field at fault, or is "": wrong type, unusable stored
 *         fields; fail->message says why), CS_ERR_UPSTREAM (fail->code and
 *         message: what upstream answered), CS_ERR_UNAVAILABLE,
 *         CS_ERR_CRYPTO, CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_resolve(struct cs_app *app, const struct cs_actor *a,
                       const struct cs_resolve_req *in, cJSON **material,
                       struct cs_net_error *fail) CS_WUR;

/* ----------------------------------------------------------------- outbox */

/** Start the webhook delivery worker. @return CS_ERR_INVALID (bad --webhook-allow or
 *  --webhook-deny, said on stderr), CS_ERR_NOMEM, CS_ERR_INTERNAL. */
enum cs_err cs_outbox_start(struct cs_app *app) CS_WUR;
/**
 * Check a callbackUrl being registered against the webhook target policy
 * (--webhook-allow, --webhook-deny and the built-in denied ranges), without
 * resolving names: those are judged again at delivery.
 * @return CS_ERR_INVALID (not an http(s) URL with a host, or userinfo) or
 *         CS_ERR_FORBIDDEN (a denied target), with a static message in *why.
 */
enum cs_err cs_outbox_check_url(struct cs_app *app, const char *url, const char **why) CS_WUR;
/** Wake the worker (after a commit). Safe from any thread. */
void cs_outbox_kick(struct cs_app *app);
/** Stop the worker (pending deliveries stay in the store). */
void cs_outbox_stop(struct cs_app *app);

#endif /* CS_SVC_H */
