/**
 * @file cli.h
 * @brief The credstore binary's command line (server/cli/): options and
 *        CREDSTORE_* parsing, opening a data dir, and one function per
 *        command. Fills the core's and the api's options from the config;
 *        nothing below calls back into it.
 */
#ifndef CS_CLI_H
#define CS_CLI_H

#include "core.h"

#include <stdbool.h>
#include <stdint.h>

/* ------------------------------------------------------------------ config */

/** Options of every command; NULL/0 when not given. Strings are borrowed
 *  from argv or the environment and live for the process. */
struct cs_config {
  const char *data_dir; /* LMDB only: --data DIR, or the DIR of --store [lmdb:]DIR */
  const char *store;    /* the store URL: --store, or --data's DIR; NULL when neither */
  bool etcd;            /* store is etcd:// or etcds:// (cluster mode) */
  const char *etcd_cacert;
  const char *etcd_cert;
  const char *etcd_key;
  const char *etcd_user; /* CREDSTORE_ETCD_USER; the password only from CREDSTORE_ETCD_PASSWORD */
  const char *node_id;   /* serve --node-id; default hostname:port */
  const char *to;        /* migrate --to STORE */
  const char *listen;
  const char *master_key_file;
  const char *passphrase_env;
  const char *tls_cert;
  const char *tls_key;
  const char *sts_endpoint;
  const char *imds_endpoint;
  const char *azure_authority_host; /* serve: Entra ID's authority */
  const char *gcp_token_url;        /* serve: Google's OAuth 2.0 token endpoint */
  const char *ibm_iam_endpoint;     /* serve: IBM Cloud IAM */
  const char *outbound_ca_file;     /* serve: extra CAs for outbound calls and webhooks */
  const char *out;                  /* backup --out */
  const char *from;                 /* restore --from */
  const char *url;                  /* credential-process --url */
  const char *credential;           /* credential-process --credential */
  const char *usage;                /* credential-process --usage */
  const char *name;                 /* admin-key --name */
  const char *webhook_allow;        /* CIDRs and host names webhooks may reach despite a deny */
  const char *webhook_deny;         /* CIDRs and host names webhooks may not reach */
  int64_t token_ttl;
  int64_t prisma_token_ttl;  /* /prisma tokens (default 1800, Prisma's) */
  const char *customer_name; /* /prisma/login's customerName (default "credstore") */
  const char *prisma_id;     /* /prisma/login's prismaId (default: the store's stable id) */
  int64_t threads;
  int64_t max_connections;
  int64_t conn_timeout;
  int64_t outbound_timeout; /* serve: seconds per outbound call (STS, tokens, tests); 0: 5 */
  enum cs_log_level log_level;
  int64_t auth_max_failures;     /* failed attempts before 429 (default 10) */
  int64_t auth_cooloff;          /* seconds of 429 after that (default 60) */
  int64_t webhook_retry_ms;      /* first webhook retry delay (default 1000) */
  int64_t max_conns_per_address; /* 0: min(128, max connections) */
  const char *trusted_proxies;   /* CIDR[,CIDR...] whose X-Forwarded-For is honoured */
  int64_t events_retention;      /* seconds an event is kept (default 7d) */
  int64_t events_max;            /* events kept at most (default 1,000,000) */
  int64_t webhook_max_age;       /* seconds a delivery is retried (default 24h) */
  int64_t before;                /* audit-prune --before SEQ */
  bool insecure_http;
};

/**
 * Parse argv (after the command word) and CREDSTORE_* environment variables
 * into @p cfg; flags win over the environment. Prints a clear message on
 * stderr for unknown options or bad values.
 * @return CS_ERR_INVALID.
 */
enum cs_err cs_config_parse(int argc, char **argv, struct cs_config *cfg) CS_WUR;

/* ---------------------------------------------------------------- data dir */

/**
 * Open the store @p cfg names (--store or --data) with its etcd options
 * (--etcd-cacert/-cert/-key, CREDSTORE_ETCD_USER and _PASSWORD). Prints
 * why not.
 * @return as cs_store_open_url(), CS_ERR_INVALID (no store given).
 */
enum cs_err cs_cli_store_open(const struct cs_config *cfg, const char *url, unsigned flags,
                              struct cs_store **out) CS_WUR;

/**
 * Obtain the master key for the data dir as @p cfg says: --master-key-file,
 * --passphrase-env (with the kdf parameters stored in the store), or
 * DIR/master.key. @p kdf is the stored parameter record or NULL when the dir
 * uses a key file. Prints a clear message on failure.
 * @return CS_ERR_INVALID, CS_ERR_IO, CS_ERR_NOMEM, CS_ERR_MASTER_KEY.
 */
enum cs_err cs_master_key_for(const struct cs_config *cfg, const struct cs_kdf_params *kdf,
                              struct cs_master_key **out) CS_WUR;

/** An opened data dir: its store and keyring. */
struct cs_data {
  struct cs_store *store;
  struct cs_keyring *keyring;
};

/**
 * Open the store and keyring of an initialised data dir (serve, restore's
 * check, rotate-key, admin-key, audit-verify). Prints clear messages on
 * failure. Close with cs_data_close().
 * @return CS_ERR_INVALID (no --data), CS_ERR_NOT_INITIALIZED,
 *         CS_ERR_SCHEMA_NEWER, CS_ERR_MASTER_KEY, CS_ERR_IO, ...
 */
enum cs_err cs_data_open(const struct cs_config *cfg, unsigned store_flags,
                         struct cs_data *out) CS_WUR;
/** Close what cs_data_open() opened. */
void cs_data_close(struct cs_data *d);

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

/**
 * Print a new admin key as init and admin-key do: one JSON line
 * {"id","secret","role":"admin"} on stdout.
 * @return 0, or 1 when stdout cannot be written.
 */
int cs_print_admin_key(const struct cs_new_key *k);

/** Print @p o (deleted) as one JSON line on stdout. @return 0, or 1 (NULL, OOM, stdout). */
int cs_print_json(cJSON *o);

/** fsync the directory holding @p path so a new entry in it is durable. @return 0 or -1. */
int cs_fsync_parent(const char *path);

/* ---------------------------------------------------------------- commands */

/* Each returns the process exit status: 0, 1 (failed), 2 (usage). */
int cs_cmd_init(const struct cs_config *cfg);
int cs_cmd_serve(const struct cs_config *cfg);
int cs_cmd_audit_verify(const struct cs_config *cfg);
/**
 * Every pruned chain's anchor as a JSON object {"<chain>":{"seq","hash"}}
 * (audit-verify's and audit-prune's report in cluster mode). Caller frees.
 * @return NULL on failure (out of memory, a forged anchor).
 */
char *cs_cli_anchors_json(struct cs_core *core);
/** `credstore audit-export`: every audit entry as JSON lines, then recorded as exported. */
int cs_cmd_audit_export(const struct cs_config *cfg);
/** `credstore audit-prune`: remove exported entries below --before, re-anchoring the chain. */
int cs_cmd_audit_prune(const struct cs_config *cfg);
int cs_cmd_backup(const struct cs_config *cfg);
int cs_cmd_restore(const struct cs_config *cfg);
int cs_cmd_rotate_key(const struct cs_config *cfg);
/** `credstore admin-key`: mint an unscoped admin key offline (recovery). */
int cs_cmd_admin_key(const struct cs_config *cfg);
int cs_cmd_credential_process(const struct cs_config *cfg);
/** `credstore migrate --from STORE --to STORE`: copy a whole store into an empty one. */
int cs_cmd_migrate(const struct cs_config *cfg);

#endif /* CS_CLI_H */
