/**
 * @file core.h
 * @brief The service (server/core/): credentials, usages, resolve, access
 *        keys and tokens, audit, events, webhook delivery and key rotation.
 *
 * Every change is one store transaction. The core knows no HTTP: plain C
 * structs in, plain C structs or cJSON out. The api layer (server/api/)
 * parses requests into these structs and renders what comes back; the cli
 * layer (server/cli/) opens a data dir, fills struct cs_core_opts and runs
 * the commands. The core calls down only (providers/, store/, crypto/,
 * common/); it reaches the api only through callbacks the api hands it
 * (cs_events_set_waker, cs_core_set_write_waker).
 */
#ifndef CS_CORE_H
#define CS_CORE_H

#include "common.h"
#include "crypto.h"
#include "providers.h"
#include "store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define CS_DEFAULT_TOKEN_TTL 600         /* seconds a login token lives */
#define CS_DEFAULT_PRISMA_TOKEN_TTL 1800 /* seconds a /prisma token lives (Prisma's default) */
#define CS_DEFAULT_WEBHOOK_RETRY_MS 1000
#define CS_DEFAULT_EVENTS_RETENTION (7 * 86400) /* seconds an event is kept */
#define CS_DEFAULT_EVENTS_MAX 1000000           /* events kept at most */
#define CS_DEFAULT_WEBHOOK_MAX_AGE 86400        /* seconds a delivery is retried */

/* ------------------------------------------------------------------ roles */

enum cs_role { CS_ROLE_ADMIN, CS_ROLE_OPERATOR, CS_ROLE_AUDITOR, CS_ROLE_CI, CS_ROLE__COUNT };

/** @return "admin", "operator", "auditor", "ci" ("none" for other values). */
const char *cs_role_name(enum cs_role r);
/** @return CS_ERR_INVALID for an unknown name. */
enum cs_err cs_role_parse(const char *s, enum cs_role *out) CS_WUR;

/* ---------------------------------------------------------------- context */

/** The core's options (the cli fills them from flags and CREDSTORE_*). */
struct cs_core_opts {
  int64_t token_ttl;              /* seconds; 0: CS_DEFAULT_TOKEN_TTL */
  int64_t prisma_token_ttl;       /* seconds of /prisma tokens; 0: CS_DEFAULT_PRISMA_TOKEN_TTL */
  int64_t webhook_retry_ms;       /* first webhook retry delay; 0: CS_DEFAULT_WEBHOOK_RETRY_MS */
  int64_t webhook_max_age;        /* seconds; 0: CS_DEFAULT_WEBHOOK_MAX_AGE */
  int64_t events_retention;       /* seconds; 0: CS_DEFAULT_EVENTS_RETENTION */
  int64_t events_max;             /* 0: CS_DEFAULT_EVENTS_MAX */
  const char *webhook_allow;      /* CIDRs and host names webhooks may reach despite a deny */
  const char *webhook_deny;       /* CIDRs and host names webhooks may not reach */
  struct cs_broker_config broker; /* endpoints and limits of the outbound calls */
  const char *node_id;            /* this node's name (cluster mode); NULL: none */
};

struct cs_events;
struct cs_outbox;
struct cs_retention;

/**
 * One per process. The store and keyring are borrowed (the cli opens and
 * closes them); the rest belongs to the core. Without cs_core_start() (the
 * offline commands, unit tests) each change commits on its own, there is no
 * network state (network resolves answer CS_ERR_UNAVAILABLE), no long-poll
 * notifier and no webhook worker.
 */
#define CS_CORE_KEYRINGS_MAX 64

struct cs_core {
  struct cs_core_opts opts;
  struct cs_store *store;
  /* The current keyring: the one given, or (cluster mode) a newer one the
   * store's change feed brought (cluster.c). Atomic: swapped on the watch
   * thread while requests read it; a reader uses the pointer it loaded. */
  struct cs_keyring *_Atomic keyring;
  struct cs_keyring *keyring_given;                 /* borrowed from the cli */
  struct cs_keyring *retired[CS_CORE_KEYRINGS_MAX]; /* loaded here; freed at stop */
  size_t n_retired;
  struct cs_writer *writer;       /* group commit; NULL: each change commits alone */
  struct cs_broker *broker;       /* outbound calls, caches; NULL before start */
  struct cs_events *events;       /* long-poll waiters; NULL before start */
  struct cs_outbox *outbox;       /* webhook delivery; NULL before start */
  struct cs_retention *retention; /* the events trimmer; NULL before start */
  int64_t started_at;
  void (*write_park)(void *waiter); /* cs_core_set_write_waker; NULL: writes block */
  void (*write_wake)(void *waiter);
};

/** Fill @p c for @p st and @p kr (both borrowed); @p opts NULL: defaults. Starts nothing. */
void cs_core_init(struct cs_core *c, struct cs_store *st, struct cs_keyring *kr,
                  const struct cs_core_opts *opts);

/**
 * Start the broker, the long-poll notifier, the group committer and the
 * webhook worker. On failure @p err says why (a bad --webhook-allow,
 * --webhook-deny, endpoint or CA file) and nothing is left running.
 * @return CS_ERR_INVALID, CS_ERR_NOMEM, CS_ERR_INTERNAL.
 */
enum cs_err cs_core_start(struct cs_core *c, char *err, size_t errlen) CS_WUR;

/**
 * Stop what cs_core_start() started, after the api has stopped: waiters
 * are answered (cs_events_stop, if not done), the webhook worker stops
 * (pending deliveries stay in the store), the batch being committed
 * completes and changes still queued complete with CS_ERR_UNAVAILABLE.
 */
void cs_core_stop(struct cs_core *c);

/** What /metrics shows of the core. */
struct cs_core_stats {
  struct cs_store_stat store;
  struct cs_broker_stats broker;
  uint64_t webhook_deliveries; /* answered 2xx */
  uint64_t webhook_failures;   /* attempts that failed */
  uint64_t webhook_dead;       /* deliveries given up on since start (dead letters) */
  uint64_t events_trimmed;     /* events removed by retention since start */
  int64_t started_at;
};

/** @return CS_ERR_STORE. */
enum cs_err cs_core_stats(struct cs_core *c, struct cs_core_stats *out) CS_WUR;

/* ------------------------------------------------------------ who is acting */

#define CS_KEY_ID_MAX 64

/** An authenticated access key: who is calling, what it may reach. */
struct cs_principal {
  char key_id[CS_KEY_ID_MAX + 1];
  enum cs_role role;
  cJSON *scope; /* array of glob strings, or NULL for everything; owned */
  int64_t expires_at;
};

/** Free what @p p owns (its scope) and clear it. NULL ok. */
void cs_principal_clear(struct cs_principal *p);

/** Who made a change, for the audit trail. Strings borrowed. */
struct cs_actor {
  const char *key_id; /* "" when unknown (failed login) */
  const char *role;
  const char *remote;
};

/* ---------------------------------------------------------------- data dir */

/** A data dir's stored keyring, as cs_meta_read_keyring() found it. */
struct cs_stored_keyring {
  uint8_t *blob; /* the wrapped keyring; free with cs_stored_keyring_free() */
  size_t len;
  bool has_kdf; /* sealed with a passphrase: kdf holds its Argon2id parameters */
  struct cs_kdf_params kdf;
};

/**
 * Read the stored keyring (and the passphrase parameters, if any) of @p st.
 * @return CS_ERR_NOT_FOUND (not initialised), CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_meta_read_keyring(struct cs_store *st, struct cs_stored_keyring *out) CS_WUR;
/** Free what cs_meta_read_keyring() allocated. NULL ok. */
void cs_stored_keyring_free(struct cs_stored_keyring *k);

struct cs_new_key;

/**
 * Initialise a new store: the wrapped keyring @p kr, the passphrase
 * parameters @p kdf (NULL: a key file), and a bootstrap admin key.
 * Caller wipes @p admin->secret after showing it.
 * @return CS_ERR_EXISTS (already initialised), CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_meta_init(struct cs_store *st, const struct cs_keyring *kr,
                         const struct cs_kdf_params *kdf, struct cs_new_key *admin) CS_WUR;

/* ------------------------------------------------------------- access keys */

#define CS_KEY_ID_HEX 12     /* random bytes in an access key id */
#define CS_KEY_SECRET_HEX 32 /* random bytes in an access key secret */
#define CS_KEY_NAME_MAX 128
#define CS_KEY_SECRET_MAX 128      /* secrets are hashed at most this long */
#define CS_SCOPE_MAX 64            /* patterns per key */
#define CS_PATTERN_MAX CS_NAME_MAX /* bytes per pattern: a name is a pattern too */

/** What a key may reach: the limits that "broader" compares. */
struct cs_key_bounds {
  const cJSON *scope; /* borrowed; NULL = every credential */
  int64_t expires_at; /* 0 = never */
};

/** What a new access key should be. */
struct cs_key_spec {
  const char *name;
  enum cs_role role;
  const cJSON *scope; /* array of glob strings, or NULL for every credential */
  int64_t expires_at; /* 0 = never */
  const char *owner;  /* creating key id, or NULL */
};

/** A newly created access key, secret included (shown once). */
struct cs_new_key {
  char id[2 * CS_KEY_ID_HEX + 4];
  char secret[2 * CS_KEY_SECRET_HEX + 1];
  int64_t created_at;
};

/**
 * Create an access key from @p spec and record @p action (e.g.
 * "access_key_create", "access_key_recover") by @p a in the audit trail, in
 * one transaction: random id and secret, only the keyed hash stored. An API
 * caller bounds @p spec first (cs_key_spec_bound); the command line holds
 * the master key and is unbounded. Caller wipes @p out->secret.
 * @return CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_keys_add(struct cs_core *c, const struct cs_actor *a, const char *action,
                        const struct cs_key_spec *spec, struct cs_new_key *out) CS_WUR;

/**
 * Public view (no hashes), as a JSON array, of every key within @p by
 * (cs_key_within); the caller itself is among them.
 * @return CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_keys_list(struct cs_core *c, const struct cs_key_bounds *by, cJSON **out) CS_WUR;

/**
 * Delete key @p id on behalf of @p a, a key bounded by @p by, audited. A key
 * not within @p by is not found, exactly like a missing one. Refuses to
 * delete the last full admin: a live (unexpired) admin key whose scope
 * covers every credential; scoped admins do not count.
 * @return CS_ERR_NOT_FOUND, CS_ERR_LAST_ADMIN, CS_ERR_STORE.
 */
enum cs_err cs_keys_delete(struct cs_core *c, const struct cs_actor *a,
                           const struct cs_key_bounds *by, const char *id) CS_WUR;

/**
 * Does @p secret open the live (unexpired) key @p id? Hashes even for ids
 * that cannot exist, so timing does not tell which do; @p id NULL, empty or
 * over CS_KEY_ID_MAX and secrets over CS_KEY_SECRET_MAX are simply wrong.
 * Fills @p who on success (replacing what it held).
 * @return CS_ERR_BAD_CREDENTIALS, CS_ERR_STORE.
 */
enum cs_err cs_keys_check_secret(struct cs_core *c, const char *id, const char *secret,
                                 struct cs_principal *who) CS_WUR;

#define CS_KEY_HASH_HEX (2 * CS_HASH_BYTES) /* a secret's keyed hash as stored: lowercase hex */

/**
 * The stored form of @p secret (its keyed hash, @p hex NUL-terminated;
 * the caller wipes it). @return CS_ERR_BAD_CREDENTIALS for a secret over
 * CS_KEY_SECRET_MAX (hashed all the same, for timing), else CS_OK.
 */
enum cs_err cs_keys_secret_hash(struct cs_core *c, const char *secret,
                                char hex[CS_KEY_HASH_HEX + 1]) CS_WUR;

/**
 * cs_keys_check_secret() for a secret already hashed by cs_keys_secret_hash():
 * the live record of @p id is read and its hash compared in constant time.
 * @return CS_ERR_BAD_CREDENTIALS, CS_ERR_STORE.
 */
enum cs_err cs_keys_check_hash(struct cs_core *c, const char *id, const char hex[CS_KEY_HASH_HEX],
                               struct cs_principal *who) CS_WUR;

/** @return true if @p scope (array of globs, or NULL) admits credential @p id. */
bool cs_scope_allows(const cJSON *scope, const char *id);

/**
 * Does pattern @p p match every credential id that pattern @p q matches?
 * Sound, not complete: true when p == q, when q has no glob metacharacter
 * (`*?[\\`) and fnmatch(p, q) matches, or when p is a literal prefix and one
 * trailing `*` and q starts with that prefix; false otherwise, even for some
 * equivalent globs (`[a]ws-*` is not taken as within `aws-*`).
 */
bool cs_pattern_covers(const char *p, const char *q);

/**
 * Does scope @p k admit every id that scope @p j admits? NULL is every
 * credential (the single pattern `*`), `[]` is none; every pattern of @p j
 * must be covered (cs_pattern_covers) by some pattern of @p k.
 */
bool cs_scope_within(const cJSON *j, const cJSON *k);

/**
 * Is key @p j within key @p k: its scope within k's (cs_scope_within) and,
 * when k expires, j expires too and no later? The one test of "broader"
 * that creating, listing and deleting keys apply.
 */
bool cs_key_within(const struct cs_key_bounds *j, const struct cs_key_bounds *k);

/**
 * Bound a new key's @p spec by its creator @p by: an omitted scope or
 * expiresAt (NULL / 0) becomes the creator's, and the result must be within
 * @p by (cs_key_within). spec->scope may then borrow by->scope.
 * @return CS_ERR_FORBIDDEN with *field = "scope" or "expiresAt".
 */
enum cs_err cs_key_spec_bound(struct cs_key_spec *spec, const struct cs_key_bounds *by,
                              const char **field) CS_WUR;

/* ------------------------------------------------------------------ tokens */

/**
 * Mint a token for @p who, valid for @p ttl seconds (0: opts.token_ttl) but
 * never past the key's own expiry. Caller frees *token.
 * @return CS_ERR_NOMEM, CS_ERR_CRYPTO.
 */
enum cs_err cs_token_issue(struct cs_core *c, const struct cs_principal *who, int64_t ttl,
                           char **token) CS_WUR;

/**
 * A stable id of this store (32 hex digits): a keyed hash under the
 * keyring's root-derived audit key, so it survives restarts, data-key
 * rotations, backups and restores, and says nothing about any key.
 */
void cs_core_store_id(const struct cs_core *c, char out[33]);

/**
 * Check @p token (leading blanks skipped) and that its key still exists and
 * is live: a deleted or expired key's tokens stop working at once. Each
 * thread remembers the last few tokens it verified. Fills @p who.
 * @return CS_ERR_BAD_TOKEN, CS_ERR_STORE.
 */
enum cs_err cs_token_check(struct cs_core *c, const char *token, struct cs_principal *who) CS_WUR;

/* ------------------------------------------------- writes a request awaits */

/**
 * A request's audited write, queued for the group commit (txn.c). A
 * *_start call does the request's work on its thread and queues the write;
 * when serving with a write waker, the request is parked meanwhile (it
 * holds no thread) and woken once the write is durable or failed, and the
 * matching *_finish call takes the outcome. Whatever it holds (material, a
 * copy of the request) is wiped and freed by cs_core_job_free(), which the
 * request calls once, whether or not it was woken yet.
 */
struct cs_core_job;

/**
 * How the api parks a request while its write is queued (@p park, on the
 * request's thread, before the write is queued) and wakes it (@p wake, on
 * the writer thread, once the outcome is in). Each parked request is woken
 * exactly once. Set after cs_core_start(), before serving; unset, every
 * *_start call commits before it returns (not parked).
 */
void cs_core_set_write_waker(struct cs_core *c, void (*park)(void *waiter),
                             void (*wake)(void *waiter));

/** Is @p j parked (its outcome comes with the wake-up), or done already? */
bool cs_core_job_parked(const struct cs_core_job *j);

/** Drop the request's hold on @p j; the last hold wipes and frees it. NULL ok. */
void cs_core_job_free(struct cs_core_job *j);

/* ------------------------------------------------------------- credentials */

/** A create-or-update request. */
struct cs_cred_put {
  const char *id;    /* path id (PUT) or body _id (POST) */
  const cJSON *body; /* the credential as sent; not modified */
  bool must_exist;   /* PUT: 404 when missing */
  bool has_if_match; /* If-Match given */
  uint64_t if_match; /* the version it names */
  const struct cs_principal *who;
  const struct cs_actor *actor;
  bool skip_unchanged; /* /prisma: an update that changes nothing writes only its audit entry */
  bool no_render;      /* the caller answers without a body (/prisma): no json in the result */
  /* Instead of body, cs_creds_put_start only: the caller's tree, taken
   * by the job on CS_OK (wiped and freed with it, no copy); on an error
   * it stays the caller's. */
  cJSON *given_body;
};

/** What a create-or-update did. */
struct cs_cred_put_result {
  bool created;
  bool unchanged;            /* skip_unchanged applied: no new version, event or webhook */
  char *json;                /* rendered as GET renders it, NUL-terminated, caller frees */
  size_t json_len;           /* its length */
  struct cs_prov_error perr; /* on CS_ERR_INVALID/MISSING/BAD_ID: field and message */
  const char *id;            /* the credential's id (cs_creds_put_finish: the job's) */
};

/**
 * Validate through the type's provider, seal the secret (keeping the stored
 * one when the body omits it or sends back its secret.encrypted) and write,
 * with the event, the webhooks of its usages and the audit entry. The
 * version check and the merge with the stored record happen inside the
 * write, so concurrent updates of one id all succeed, one version each.
 * @return CS_ERR_INVALID/CS_ERR_MISSING/CS_ERR_BAD_ID (perr says which field),
 *         CS_ERR_NOT_FOUND (PUT on a missing id), CS_ERR_PRECONDITION
 *         (If-Match), CS_ERR_NOMEM, CS_ERR_STORE*, CS_ERR_CRYPTO.
 */
enum cs_err cs_creds_put(struct cs_core *c, const struct cs_cred_put *in,
                         struct cs_cred_put_result *out) CS_WUR;

/**
 * cs_creds_put() in two halves: validation, merge and sealing on this
 * thread, then the write queued as *job (parked for @p waiter, see
 * cs_core_set_write_waker; @p waiter NULL: committed before this returns).
 * The job keeps its own copy of @p in (given_body: takes it). On CS_OK the caller owns *job
 * (cs_core_job_free); otherwise @p out says why, as for cs_creds_put().
 * @return as cs_creds_put(), except the write's outcome (cs_creds_put_finish).
 */
enum cs_err cs_creds_put_start(struct cs_core *c, const struct cs_cred_put *in, void *waiter,
                               struct cs_core_job **job, struct cs_cred_put_result *out) CS_WUR;
/**
 * The outcome of a put job once done: @p out as cs_creds_put() fills it
 * (out->id borrowed from @p job, which stays the caller's).
 * @return as cs_creds_put() (the write prepares the record again when
 *         another change committed first), CS_ERR_UNAVAILABLE (the writer
 *         stopped).
 */
enum cs_err cs_creds_put_finish(struct cs_core_job *job, struct cs_cred_put_result *out) CS_WUR;

/**
 * Rendered metadata of @p id as JSON text (*json NUL-terminated, caller
 * frees). @return CS_ERR_NOT_FOUND, CS_ERR_STORE, CS_ERR_NOMEM.
 */
enum cs_err cs_creds_get(struct cs_core *c, const char *id, char **json, size_t *len) CS_WUR;

/**
 * Delete @p id unless a usage exists (checked in the same transaction).
 * @return CS_ERR_NOT_FOUND, CS_ERR_IN_USE (*usages = the usages, caller
 *         deletes), CS_ERR_STORE*.
 */
enum cs_err cs_creds_delete(struct cs_core *c, const struct cs_actor *a, const char *id,
                            cJSON **usages) CS_WUR;

/**
 * cs_creds_delete() in two halves: the delete queued as *job (parked for
 * @p waiter, see cs_core_set_write_waker; NULL: committed before this
 * returns); the caller owns *job on CS_OK (cs_core_job_free).
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_creds_delete_start(struct cs_core *c, const struct cs_actor *a, const char *id,
                                  void *waiter, struct cs_core_job **job) CS_WUR;
/** The outcome of a delete job once done. @return and *usages as cs_creds_delete(). */
enum cs_err cs_creds_delete_finish(struct cs_core_job *job, cJSON **usages) CS_WUR;

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
  const cJSON *ids;   /* array of names: only these (and within scope), or NULL */
  bool prisma;        /* render in Prisma's shape (useAWSRole always present) */
};

#define CS_IDS_MAX 500 /* names in one ?ids= filter */

/**
 * One page of rendered credentials, a JSON array as text (*page
 * NUL-terminated, caller frees), and the count of all that match.
 * @return CS_ERR_STORE, CS_ERR_TOO_LARGE, CS_ERR_NOMEM.
 */
enum cs_err cs_creds_list(struct cs_core *c, const struct cs_cred_query *q, char **page,
                          size_t *len, uint64_t *total) CS_WUR;

/* ------------------------------------------------------------------ usages */

#define CS_USAGE_TYPE_MAX 128
#define CS_URL_MAX 2048

/** What a usage may resolve (API.md §8 "material"), set at registration. */
enum cs_usage_material {
  CS_MATERIAL_SECRET = 0, /* anything, the stored secret included (the default) */
  CS_MATERIAL_TOKEN,      /* only short-lived material: tokens, STS or session credentials */
};

/** @return "secret" or "token". */
const char *cs_usage_material_name(enum cs_usage_material m);
/** @return CS_ERR_INVALID unless @p s is "secret" or "token". */
enum cs_err cs_usage_material_parse(const char *s, enum cs_usage_material *out) CS_WUR;

/** A usage to register. */
struct cs_usage_new {
  const char *cred_id;
  const char *type;
  const char *description;
  const char *callback_url; /* NULL: no webhooks; checked with cs_webhook_check_url() */
  enum cs_usage_material material;
};

/**
 * Register a usage of an existing credential (atomically with deletes).
 * *out is the rendered usage (with callbackSecret when callback_url is set).
 * @return CS_ERR_NOT_FOUND (credential), CS_ERR_STORE*, CS_ERR_NOMEM.
 */
enum cs_err cs_usages_create(struct cs_core *c, const struct cs_actor *a,
                             const struct cs_usage_new *in, cJSON **out) CS_WUR;
/** Every usage of @p cred_id with "stale". @return CS_ERR_NOT_FOUND, ... */
enum cs_err cs_usages_list(struct cs_core *c, const char *cred_id, cJSON **out) CS_WUR;
/** @return CS_ERR_NOT_FOUND (no such usage of this credential), ... */
enum cs_err cs_usages_delete(struct cs_core *c, const struct cs_actor *a, const char *cred_id,
                             const char *usage_id) CS_WUR;

/**
 * Check a callbackUrl being registered against the webhook target policy
 * (--webhook-allow, --webhook-deny and the built-in denied ranges), without
 * resolving names: those are judged again at delivery.
 * @return CS_ERR_INVALID (not an http(s) URL with a host, or userinfo) or
 *         CS_ERR_FORBIDDEN (a denied target), with a static message in *why.
 */
enum cs_err cs_webhook_check_url(struct cs_core *c, const char *url, const char **why) CS_WUR;

/* ----------------------------------------------------------------- resolve */

/** A resolve request. */
struct cs_resolve_req {
  const char *cred_id;
  const char *usage_id;
  const char *require_type; /* refuse any other type (NULL: any type) */
  /**
   * Options may only narrow what the credential allows
   * (cs_resolve_opts_check); session_name, when given, must be the one
   * derived from the usage ("credstore-<usageId>").
   */
  struct cs_resolve_opts opts;
};

/**
 * Resolve the material of a credential for one of its usages through its
 * provider, and record seenVersion/lastResolvedAt/resolveCount and an audit
 * entry durably before handing it out. A request refused for its own fault
 * (unknown credential, not a usage of it, another type than require_type,
 * an option beyond the credential) records nothing; a resolve attempted and
 * failed is audited as a failure. Caller frees *material with
 * cs_json_wipe_delete().
 * A usage registered with CS_MATERIAL_TOKEN gets only what the provider's
 * short_lived() says is short-lived; asking it for the stored secret is
 * refused before anything is recorded.
 * @return CS_ERR_NOT_FOUND (credential), CS_ERR_INVALID (fail->field names
 *         the request field at fault — usageId, format, scope, scopes,
 *         durationSeconds... — or is "": wrong type, unusable stored
 *         fields; fail->message says why), CS_ERR_TOKEN_ONLY (a "token"
 *         usage asked for the stored secret), CS_ERR_UPSTREAM (fail->code
 *         and message: what upstream answered), CS_ERR_UNAVAILABLE,
 *         CS_ERR_CRYPTO, CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_resolve(struct cs_core *c, const struct cs_actor *a, const struct cs_resolve_req *in,
                       cJSON **material, struct cs_net_error *fail) CS_WUR;

/**
 * cs_resolve() in two halves: the snapshot, checks and provider work on
 * this thread, then the record queued as *job (parked for @p waiter, see
 * cs_core_set_write_waker; @p waiter NULL: committed before this returns).
 * A refusal returns its error here and queues nothing (fail as for
 * cs_resolve). On CS_OK the caller owns *job (cs_core_job_free).
 * @return as cs_resolve(), except the record's outcome (cs_resolve_finish).
 */
enum cs_err cs_resolve_start(struct cs_core *c, const struct cs_actor *a,
                             const struct cs_resolve_req *in, void *waiter,
                             struct cs_core_job **job, struct cs_net_error *fail) CS_WUR;
/**
 * The outcome of a resolve job once done (not parked, or woken): the
 * material, handed out only when its record is durable; the caller frees it
 * with cs_json_wipe_delete(). @p job stays the caller's.
 * @return the provider's error (fail says what), CS_ERR_UNAVAILABLE (the
 *         writer stopped), CS_ERR_STORE*, CS_ERR_NOMEM: nothing handed out.
 */
enum cs_err cs_resolve_finish(struct cs_core_job *job, cJSON **material,
                              struct cs_net_error *fail) CS_WUR;

/* ------------------------------------------------------- connection test */

/**
 * Prove that credential @p id works ("Test connection", API.md §8) through
 * its provider's test, which never uses the cache, and audit it as "test"
 * (result "success" when the upstream accepted the credential, "failure"
 * otherwise) durably before answering. An upstream refusal is a result
 * (out->ok false, with the upstream's code and message), not an error.
 * @return CS_OK with @p out filled; CS_ERR_NOT_FOUND, CS_ERR_UNAVAILABLE
 *         (not started: no broker), CS_ERR_CRYPTO, CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_creds_test(struct cs_core *c, const struct cs_actor *a, const char *id,
                          struct cs_test_result *out) CS_WUR;

/**
 * Credential @p id changed or went away: drop what this node caches of it
 * (short-lived material of its old version). Called after every committed
 * edit and delete on this node; in cluster mode the store's change hook
 * calls it for changes committed by other nodes (issue 13).
 */
void cs_core_cred_changed(struct cs_core *c, const char *id);

/* ---------------------------------------------------- audit trail, events */

/** What a reader may see of the audit trail or the event feed. */
struct cs_view {
  const char *cred;   /* only this credential (?credential=), or NULL */
  const cJSON *scope; /* the reader's scope; NULL = every credential */
};

/** Record one audit entry in its own durable write. @return CS_ERR_NOMEM, CS_ERR_STORE*. */
enum cs_err cs_audit_record(struct cs_core *c, const struct cs_actor *a, const char *action,
                            const char *target, const char *result) CS_WUR;

#define CS_AUDIT_LIST_MAX 1000 /* entries per page at most */

/**
 * Up to @p limit entries after @p since that @p v may see, examining at most
 * 10,000. *next is the last seq examined, where the next page starts: a
 * reader pages on with since = next until it stops moving. Entries about
 * access keys, logins and the keyring are hidden from a reader with a
 * scope or a credential filter; a credential outside the scope filters like
 * one without entries. Caller deletes *entries.
 * @return CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_audit_read(struct cs_core *c, const struct cs_view *v, uint64_t since,
                          uint64_t limit, cJSON **entries, uint64_t *next) CS_WUR;

/**
 * Where a chain starts after audit-prune: the seq and hash of the last
 * entry removed (seq 0: nothing was removed; the chain starts at 1 from a
 * zero hash). One per chain.
 */
struct cs_audit_anchor {
  uint64_t seq;
  uint8_t hash[CS_HASH_BYTES];
};

/**
 * Check every chain of the store (audit.c: LMDB's one, a cluster's one per
 * node): consecutive seqs from the chain's anchor's + 1 (1 when never
 * pruned), each hash the keyed link (the keyring's audit-chain key) over
 * its entry and the previous hash (the anchor's for the first), prevHash fields matching, and the
 * head records (every head must have its chain). *anchor is where LMDB's chain started, *count how
 * many entries were checked.
 * @return CS_OK, or CS_ERR_CRYPTO with the first bad seq in *bad_seq (also
 *         when the keyring is another data dir's, or the anchor record was
 *         forged: then *bad_seq is 1), CS_ERR_STORE*.
 */
enum cs_err cs_audit_verify(struct cs_core *c, uint64_t *count, uint64_t *bad_seq,
                            struct cs_audit_anchor *anchor) CS_WUR;

/**
 * Export the audit trail: @p line gets every entry from the oldest kept,
 * one JSON object each, as GET /api/v1/audit shows it (with hash and
 * prevHash), in one read snapshot. *count and *last say what was written.
 * @return @p line's error, CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_audit_export(struct cs_core *c,
                            enum cs_err (*line)(void *arg, const char *json, size_t len), void *arg,
                            uint64_t *count, uint64_t *last) CS_WUR;

/**
 * Record that the entries up to feed position @p last are safely exported
 * (META "audit_exported", never lowered), so audit-prune may remove them:
 * on etcd too one position says it for every chain, as positions only
 * grow. Call once the export is durable.
 * @return CS_ERR_STORE*.
 */
enum cs_err cs_audit_mark_exported(struct cs_core *c, uint64_t last) CS_WUR;

/**
 * Remove the entries with seq (feed position) below @p before, oldest
 * first, in transactions of CS_TRIM_BATCH, each moving the anchor of every
 * chain it removes from to that chain's last removed entry (the anchor
 * record is keyed, so only the master key's holder can move it); then
 * record "audit_prune" by @p a. Never removes an entry not yet exported,
 * nor the newest entry of the trail (refused) or of a chain (kept: each
 * head stays checkable). *removed and *anchor (the last anchor moved; on
 * LMDB the chain's) say what was done, also on failure.
 * @return CS_ERR_PRECONDITION (entries below @p before are not exported
 *         yet, or @p before is past the newest entry; *limit is the highest
 *         @p before allowed now), CS_ERR_UNAVAILABLE (another audit-prune
 *         moved an anchor meanwhile), CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_audit_prune(struct cs_core *c, const struct cs_actor *a, uint64_t before,
                           uint64_t *removed, uint64_t *limit,
                           struct cs_audit_anchor *anchor) CS_WUR;

/** Visit one chain's anchor (@p chain "" : LMDB's chain). */
typedef enum cs_err (*cs_anchor_fn)(void *arg, const char *chain, const struct cs_audit_anchor *a);

/**
 * Visit the anchor of every pruned chain, in one read snapshot (what
 * audit-prune and audit-verify report in cluster mode).
 * @return fn's error, CS_ERR_CRYPTO (a forged anchor record),
 *         CS_ERR_STORE*.
 */
enum cs_err cs_audit_anchors(struct cs_core *c, cs_anchor_fn fn, void *arg) CS_WUR;

/** Where audit-verify found a chain broken. */
struct cs_audit_break {
  char chain[CS_NODE_ID_MAX + 32]; /* "" : LMDB's chain (and one migrated from it) */
  uint64_t seq;                    /* the first link of that chain that does not check */
};

/**
 * cs_audit_verify() saying which chain broke; *chains = how many chains.
 * @return as cs_audit_verify(), with *bad set on CS_ERR_CRYPTO.
 */
enum cs_err cs_audit_verify_chains(struct cs_core *c, uint64_t *count, size_t *chains,
                                   struct cs_audit_break *bad,
                                   struct cs_audit_anchor *anchor) CS_WUR;

/**
 * Name this process's audit chain in a shared store (cluster mode): its
 * node id, or "cli@<hostname>" for @p node NULL (offline commands). One
 * per process; cs_core_init() sets it from opts->node_id.
 */
void cs_audit_set_chain(const char *node);

#define CS_EVENTS_WAIT_MAX 60 /* seconds a long-poll may wait */

/**
 * Events after @p after that @p v may see, examining at most 10,000 and
 * returning at most 1,000. *next is the last seq examined; *more is true
 * when the examination budget ran out (more may follow at once). @p after
 * 0 reads from the oldest kept event. Caller deletes *events.
 * @return CS_ERR_EVENTS_EXPIRED (retention removed events after @p after:
 *         *oldest is the oldest kept one, the reader resynchronises and
 *         reads on with after = *oldest - 1), CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_events_read(struct cs_core *c, const struct cs_view *v, uint64_t after,
                           cJSON **events, uint64_t *next, bool *more, uint64_t *oldest) CS_WUR;

#define CS_TRIM_BATCH 100 /* events one trimming transaction removes at most (etcd: < 127 ops) */

/**
 * Remove, in one transaction, up to CS_TRIM_BATCH of the oldest events (in
 * feed order) that retention no longer keeps: beyond opts.events_max, or
 * older than opts.events_retention seconds before @p now; on etcd only
 * whole commits (a batch may keep a few over the cap until the rest of a
 * commit goes too). Picked in a read snapshot, committed only if the floor
 * is still the one it saw: of the nodes of a cluster trimming at once, one
 * commits each batch. The serving process runs it in the background (one
 * batch after another until one removes nothing). *trimmed is how many it
 * removed (0 also when another node's trim won).
 * @return CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_events_trim_batch(struct cs_core *c, int64_t now, uint64_t *trimmed) CS_WUR;

/**
 * How the api parks and wakes a long-poll: @p park runs, under the
 * notifier's lock, when a waiter is parked (so a wake-up cannot overtake
 * it); @p wake when the next commit lands, its deadline passes, or the
 * notifier stops. Each waiter is woken exactly once. Set after
 * cs_core_start(), before the first cs_events_park(); until then nothing
 * parks.
 */
void cs_events_set_waker(struct cs_core *c, void (*park)(void *waiter), void (*wake)(void *waiter));

/** The notifier's generation: bumped after every commit. 0 before start. */
uint64_t cs_events_generation(struct cs_core *c);

/**
 * Park @p waiter until the next commit or @p deadline_ms (cs_mono_ms()),
 * unless a commit landed since generation @p gen was read or the notifier
 * is stopping: then *parked is false and the caller reads again.
 * @return CS_ERR_NOMEM, CS_ERR_UNAVAILABLE (not started).
 */
enum cs_err cs_events_park(struct cs_core *c, void *waiter, int64_t deadline_ms, uint64_t gen,
                           bool *parked) CS_WUR;

/** Wake every waiter and refuse new ones. Safe to call twice. */
void cs_events_stop(struct cs_core *c);

/* ------------------------------------------------ webhook deliveries */

enum cs_delivery_state { CS_DELIVERY_PENDING, CS_DELIVERY_DEAD, CS_DELIVERY_ALL };

/** A deliveries list query (GET /api/v1/deliveries). */
struct cs_delivery_query {
  enum cs_delivery_state state;
  uint64_t offset;
  uint64_t limit;
  const cJSON *scope; /* the caller's scope; NULL = every credential */
};

/**
 * One page of webhook deliveries of credentials in q->scope: pending ones
 * (in the outbox) by id, then dead letters by id (state ALL), each
 * {"id","state","usageId","credentialId","version","attempts","lastError",
 * "createdAt","nextAttemptAt" | "deadAt","target"?}; *total counts all
 * that match. Caller deletes *page.
 * @return CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_deliveries_list(struct cs_core *c, const struct cs_delivery_query *q, cJSON **page,
                               uint64_t *total) CS_WUR;

/**
 * Requeue dead letter @p id for delivery (a fresh --webhook-max-age from
 * now, attempts kept), audited as @p a's "delivery_retry" of its
 * credential. A delivery of a credential outside @p scope is not found.
 * @return CS_ERR_NOT_FOUND, CS_ERR_NOT_DEAD (still pending), CS_ERR_NOMEM,
 *         CS_ERR_STORE*.
 */
enum cs_err cs_delivery_retry(struct cs_core *c, const struct cs_actor *a, const cJSON *scope,
                              uint64_t id) CS_WUR;

/* ------------------------------------------------------------ key rotation */

/**
 * Add a data-key version to the loaded keyring and commit it on its own
 * (compare-and-swap against the stored keyring, audited as @p a's
 * "keyring_rotate"). New writes use it
 * at once; the old versions stay readable.
 * @return CS_ERR_PRECONDITION (the stored keyring changed meanwhile),
 *         CS_ERR_INVALID (too many versions), CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_keyring_rotate_commit(struct cs_core *c, const struct cs_actor *a) CS_WUR;

/** What a rewrap pass did. */
struct cs_rewrap_result {
  uint64_t credentials, usages; /* records resealed */
  uint64_t failed;              /* records left as they were (corrupt or unopenable) */
};

/**
 * Reseal every credential and usage secret sealed with an older data-key
 * version, 500 records per transaction; credentials keep their version,
 * times and fingerprint. A record that does not decode or open is reported
 * to @p on_fail (NULL ok; "credential" or "usage", its id) and skipped.
 * Audited as "keyring_rewrap" by @p a (success, partial or failure). *out
 * counts what was done, also when the pass stopped.
 * @return CS_ERR_NOMEM, CS_ERR_STORE*: the pass stopped; what is not yet
 *         rewrapped stays readable, and running it again finishes it.
 */
enum cs_err cs_rewrap_all(struct cs_core *c, const struct cs_actor *a,
                          void (*on_fail)(void *arg, const char *kind, const char *id), void *arg,
                          struct cs_rewrap_result *out) CS_WUR;

#endif /* CS_CORE_H */
