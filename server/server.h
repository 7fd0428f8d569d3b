/**
 * @file server.h
 * @brief Internals of the credstore binary: configuration, the running
 *        application, the HTTP request/response model, the route table and
 *        the service layer. Only server/ includes microhttpd.h.
 */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include "common.h"
#include "crypto.h"
#include "store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define CS_BODY_MAX (1024u * 1024u) /* API.md §6: bodies over 1 MiB get 413 */
#define CS_DEFAULT_LISTEN "127.0.0.1:8200"
#define CS_DEFAULT_TOKEN_TTL 600
#define CS_DEFAULT_THREADS 32 /* at least; 8 per core on bigger machines */
#define CS_DEFAULT_MAX_CONNECTIONS 1024
#define CS_DEFAULT_CONNS_PER_ADDRESS 128 /* or --max-connections, if fewer */
#define CS_DEFAULT_CONN_TIMEOUT 30       /* seconds a whole request may take to arrive */

/* ------------------------------------------------------------------ config */

/** Options of every command; NULL/0 when not given. Strings are borrowed
 *  from argv or the environment and live for the process. */
struct cs_config {
  const char *data_dir;
  const char *listen;
  const char *master_key_file;
  const char *passphrase_env;
  const char *tls_cert;
  const char *tls_key;
  const char *sts_endpoint;
  const char *imds_endpoint;
  const char *out;        /* backup --out */
  const char *from;       /* restore --from */
  const char *url;        /* credential-process --url */
  const char *credential; /* credential-process --credential */
  const char *usage;      /* credential-process --usage */
  const char *name;       /* admin-key --name */
  const char *webhook_allow; /* CIDRs and host names webhooks may reach despite a deny */
  const char *webhook_deny;  /* CIDRs and host names webhooks may not reach */
  int64_t token_ttl;
  int64_t threads;
  int64_t max_connections;
  int64_t conn_timeout;
  enum cs_log_level log_level;
  int64_t auth_max_failures; /* failed attempts before 429 (default 10) */
  int64_t auth_cooloff;      /* seconds of 429 after that (default 60) */
  int64_t webhook_retry_ms;  /* first webhook retry delay (default 1000) */
  int64_t max_conns_per_address; /* 0: min(128, max connections) */
  const char *trusted_proxies;   /* CIDR[,CIDR...] whose X-Forwarded-For is honoured */
  bool insecure_http;
};

/**
 * Parse argv (after the command word) and CREDSTORE_* environment variables
 * into @p cfg; flags win over the environment. Prints a clear message on
 * stderr for unknown options or bad values.
 * @return CS_ERR_INVALID.
 */
enum cs_err cs_config_parse(int argc, char **argv, struct cs_config *cfg) CS_WUR;

/* ---------------------------------------------------------------- keyfiles */

/**
 * Obtain the master key for the data dir as @p cfg says: --master-key-file,
 * --passphrase-env (with the kdf parameters stored in the store), or
 * DIR/master.key. @p kdf is the stored parameter record or NULL when the dir
 * uses a key file. Prints a clear message on failure.
 * @return CS_ERR_INVALID, CS_ERR_IO, CS_ERR_NOMEM.
 */
enum cs_err cs_master_key_for(const struct cs_config *cfg, const struct cs_kdf_params *kdf,
                              struct cs_master_key **out) CS_WUR;

/* ------------------------------------------------------------------- roles */

enum cs_role { CS_ROLE_ADMIN, CS_ROLE_OPERATOR, CS_ROLE_AUDITOR, CS_ROLE_CI, CS_ROLE__COUNT };

#define CS_R(role) (1u << (role))
#define CS_PUBLIC 0u /* no authentication */
#define CS_R_ADMIN CS_R(CS_ROLE_ADMIN)
#define CS_R_WRITE (CS_R(CS_ROLE_ADMIN) | CS_R(CS_ROLE_OPERATOR))
#define CS_R_READ (CS_R_WRITE | CS_R(CS_ROLE_AUDITOR))
#define CS_R_AUDIT (CS_R(CS_ROLE_ADMIN) | CS_R(CS_ROLE_AUDITOR))
#define CS_R_USE (CS_R_WRITE | CS_R(CS_ROLE_CI))
#define CS_R_ANY (CS_R_READ | CS_R(CS_ROLE_CI))

/** @return "admin", "operator", "auditor", "ci". */
const char *cs_role_name(enum cs_role r);
/** @return CS_ERR_INVALID for an unknown name. */
enum cs_err cs_role_parse(const char *s, enum cs_role *out) CS_WUR;

/* ------------------------------------------------------------- application */

struct cs_events;
struct cs_outbox;
struct cs_prov_net;
struct cs_ratelimit;
struct cs_cidr_list;

/** Everything a handler may use; one per serve process. */
struct cs_app {
  struct cs_config cfg;
  struct cs_store *store;
  struct cs_keyring *keyring;
  struct cs_writer *writer;       /* group commit of every change */
  struct cs_events *events;       /* long-poll waiters */
  struct cs_outbox *outbox;       /* webhook delivery worker */
  struct cs_prov_net *net;       /* providers' network state: STS/IMDS with cache */
  struct cs_ratelimit *rl;        /* failed access-key attempts per client */
  struct cs_cidr_list *trusted;   /* --trusted-proxies, or NULL */
  int64_t started_at;
  atomic_bool ready;
  atomic_int in_flight;
};

/* ------------------------------------------------------------- access keys */

#define CS_KEY_ID_HEX 12     /* random bytes in an access key id */
#define CS_KEY_SECRET_HEX 32 /* random bytes in an access key secret */
#define CS_KEY_ID_MAX 64
#define CS_KEY_NAME_MAX 128
#define CS_SCOPE_MAX 64      /* patterns per key */
#define CS_PATTERN_MAX 128   /* chars per pattern */

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

/** A stored access key, as authentication needs it. */
struct cs_key_rec {
  char id[CS_KEY_ID_MAX + 1];
  enum cs_role role;
  int64_t created_at;
  int64_t expires_at; /* 0 = never */
  uint8_t hash[CS_HASH_BYTES];
  cJSON *scope; /* owned; NULL = everything */
};

/**
 * Create an access key record inside @p txn (write): random id and secret,
 * only the keyed hash stored. An API caller bounds @p spec first
 * (cs_key_spec_bound); the command line holds the master key and is
 * unbounded. Caller wipes @p out->secret after showing it.
 * @return CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_keys_create(struct cs_txn *txn, const struct cs_keyring *kr,
                           const struct cs_key_spec *spec, struct cs_new_key *out) CS_WUR;

/**
 * Load the key @p id. Caller frees out->scope with cJSON_Delete.
 * @return CS_ERR_NOT_FOUND, CS_ERR_STORE (unreadable record).
 */
enum cs_err cs_keys_load(struct cs_txn *txn, const char *id, struct cs_key_rec *out) CS_WUR;

/**
 * Public view (no hashes), as a JSON array, of every key within @p by
 * (cs_key_within); the caller itself is among them.
 * @return CS_ERR_NOMEM, CS_ERR_STORE.
 */
enum cs_err cs_keys_list(struct cs_txn *txn, const struct cs_key_bounds *by, cJSON **out) CS_WUR;

/**
 * Delete key @p id on behalf of a key bounded by @p by. A key not within
 * @p by is not found, exactly like a missing one. Refuses to delete the
 * last full admin: a live (unexpired) admin key whose scope covers every
 * credential; scoped admins do not count, since they cannot recover the rest.
 * @return CS_ERR_NOT_FOUND, CS_ERR_LAST_ADMIN, CS_ERR_STORE.
 */
enum cs_err cs_keys_delete(struct cs_txn *txn, const struct cs_key_bounds *by,
                           const char *id) CS_WUR;

/** Render a stored key record (no hash) for output. @return NULL on OOM. */
cJSON *cs_keys_public_json(const cJSON *rec);

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

/* ---------------------------------------------------------------- commands */

int cs_cmd_init(const struct cs_config *cfg);
int cs_cmd_serve(const struct cs_config *cfg);
int cs_cmd_audit_verify(const struct cs_config *cfg);
int cs_cmd_backup(const struct cs_config *cfg);
int cs_cmd_restore(const struct cs_config *cfg);
int cs_cmd_rotate_key(const struct cs_config *cfg);
/** `credstore admin-key`: mint an unscoped admin key offline (recovery). */
int cs_cmd_admin_key(const struct cs_config *cfg);

/**
 * Print a new admin key as init and admin-key do: one JSON line
 * {"id","secret","role":"admin"} on stdout.
 * @return 0, or 1 when stdout cannot be written.
 */
int cs_print_admin_key(const struct cs_new_key *k);

/**
 * Take DIR/serve.lock with flock, non-blocking: shared for serve (several
 * may run), exclusive for rotate-key (no server may hold the keyring while
 * it changes). *fd is -1 when DIR holds no store yet (nothing to guard).
 * Prints a clear message on failure. Release with cs_data_unlock().
 * @return CS_ERR_UNAVAILABLE (held in the other mode), CS_ERR_IO, CS_ERR_INVALID.
 */
enum cs_err cs_data_lock(const char *dir, bool exclusive, int *fd) CS_WUR;
/** Release a lock from cs_data_lock(). -1 ok. */
void cs_data_unlock(int fd);
int cs_cmd_credential_process(const struct cs_config *cfg);

/* Meta keys in CS_TBL_META. */
#define CS_META_KEYRING "keyring"
#define CS_META_KDF "kdf"

/**
 * Open the store and keyring of an initialised data dir (serve, backup,
 * rotate-key, audit-verify). Prints clear messages on failure.
 * @return CS_ERR_NOT_INITIALIZED, CS_ERR_SCHEMA_NEWER, CS_ERR_MASTER_KEY, ...
 */
enum cs_err cs_app_open(struct cs_app *app, unsigned store_flags) CS_WUR;
/** Close what cs_app_open opened. */
void cs_app_close(struct cs_app *app);

#endif /* CS_SERVER_H */
