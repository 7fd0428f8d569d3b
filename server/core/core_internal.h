/**
 * @file core_internal.h
 * @brief Shared inside server/core/ (and its unit tests): the record codecs
 *        (one owner per stored format), the pieces of a change that join
 *        another change's transaction, and the sequence-table walk.
 */
#ifndef CS_CORE_INTERNAL_H
#define CS_CORE_INTERNAL_H

#include "core.h"

#include <pthread.h>
#include <stdatomic.h>

/** Run @p fn in the next group commit, or on its own without a writer (txn.c). */
enum cs_err cs_core_write(struct cs_core *c, cs_store_write_fn fn, void *ctx) CS_WUR;

/** A request's queued write (core.h); the kind's struct embeds it first. */
struct cs_core_job {
  struct cs_core *core;
  void *waiter;       /* the api's handle for the request; NULL: not parked */
  atomic_int refs;    /* the request's hold, and the writer's while queued */
  bool parked;        /* set on the request's thread before the write is queued */
  enum cs_err result; /* the write's, once done (read after the wake-up) */
  pthread_mutex_t mu; /* orders the wake-up against the request going */
  bool gone;          /* the request dropped its hold: nobody to wake */
  void (*free_kind)(struct cs_core_job *j); /* wipe and free the containing struct */
  char *key_id, *role, *remote;             /* the actor's strings, owned */
  struct cs_actor actor;                    /* into the above */
};

/**
 * Set up @p j (zeroed by the caller) for @p waiter with a copy of @p a;
 * @p free_kind frees the containing struct. On error @p j is still freed
 * by cs_core_job_free(). @return CS_ERR_NOMEM.
 */
enum cs_err cs_core_job_init(struct cs_core_job *j, struct cs_core *c, void *waiter,
                             const struct cs_actor *a,
                             void (*free_kind)(struct cs_core_job *j)) CS_WUR;

/**
 * Commit @p fn(@p ctx) as @p j's write: parked until durable when serving
 * with a waker and @p j has a waiter, else before this returns. j->result
 * is the outcome once done; @p ctx lives in the job.
 */
void cs_core_job_write(struct cs_core_job *j, cs_store_write_fn fn, void *ctx);

/* ------------------------------------------- credential record (cred_rec.c) */

/**
 * A credential record as stored in CS_TBL_CREDS, decoded in place (borrowed
 * from the transaction). Binary layout, big-endian:
 *   "CSC1" | u8 type | u64 version | i64 created | i64 modified |
 *   u32 meta_len | meta JSON | u8 fp_len | fingerprint | sealed secret
 * meta holds description, owner and the provider's non-secret fields; the
 * fingerprint is what output shows as secret.encrypted. The secret is
 * sealed with the credential id as its associated data.
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
  size_t sealed_len; /* 0: no secret (aws with useAWSRole) */
};

#define CS_CRED_FP_MAX 40 /* fingerprint "v1." + 32 hex, and room */

/** Decode @p v (a CS_TBL_CREDS value for @p id). @return CS_ERR_STORE if corrupt. */
enum cs_err cs_cred_decode(const char *id, const struct cs_val *v, struct cs_cred_view *out) CS_WUR;

/** The stored bytes of @p c. Caller frees *out. @return CS_ERR_NOMEM. */
enum cs_err cs_cred_encode(const struct cs_cred_view *c, uint8_t **out, size_t *len) CS_WUR;

#define CS_CRED_RENDER_MAX (16u << 20) /* bytes of one rendered credential */

/**
 * Append the metadata object of @p c (API.md §3: _id, type, the stored
 * fields in stored order, the secret's fingerprint, version, times, owner;
 * never the secret) to @p b; @p prisma adds Prisma's "useAWSRole":false
 * when the record has none. The one renderer of credentials.
 * @return CS_ERR_STORE (corrupt meta), CS_ERR_TOO_LARGE, CS_ERR_NOMEM; @p b
 *         may hold a partial object then.
 */
enum cs_err cs_cred_render_text(const struct cs_cred_view *c, bool prisma, struct cs_buf *b) CS_WUR;

/** Which field shows the secret in output: "apiToken" for gcp API tokens, else "secret". */
const char *cs_cred_secret_field(const cJSON *meta);

/** Decode the credential @p id inside @p txn. @return CS_ERR_NOT_FOUND, CS_ERR_STORE. */
enum cs_err cs_cred_load(struct cs_txn *txn, const char *id, struct cs_cred_view *out) CS_WUR;

/** Open a credential's sealed secret (empty when none). Caller frees with cs_open_free(). */
enum cs_err cs_cred_open_secret(const struct cs_keyring *kr, const struct cs_cred_view *c,
                                uint8_t **plain, size_t *len) CS_WUR;

/** What a resolve or a test needs of a credential, copied out of its snapshot. */
struct cs_cred_snapshot {
  const struct cs_provider *prov;
  uint64_t version;
  cJSON *meta;    /* the stored non-secret fields; owned */
  uint8_t *plain; /* the opened secret (NUL-terminated); owned, wiped by _free */
  size_t plain_len;
};

/**
 * Copy @p c (decoded inside a read txn) into @p out, opening its secret, so
 * that the provider's work runs after the txn has ended.
 * @return CS_ERR_STORE (corrupt meta), CS_ERR_CRYPTO, CS_ERR_NOMEM; @p out
 *         is empty on failure.
 */
enum cs_err cs_cred_snapshot(const struct cs_keyring *kr, const struct cs_cred_view *c,
                             struct cs_cred_snapshot *out) CS_WUR;
/** Wipe and free what @p s holds. NULL ok. */
void cs_cred_snapshot_free(struct cs_cred_snapshot *s);

/**
 * Seal @p len bytes of secret for credential @p id and compute its
 * fingerprint into @p fp. Caller frees *sealed.
 * @return CS_ERR_NOMEM, CS_ERR_CRYPTO.
 */
enum cs_err cs_cred_seal_secret(const struct cs_keyring *kr, const char *id, const void *plain,
                                size_t len, uint8_t **sealed, size_t *sealed_len,
                                char fp[CS_CRED_FP_MAX]) CS_WUR;

/**
 * The record @p v of @p id with its secret resealed under the current data
 * key, header, meta and fingerprint unchanged. Caller frees *out.
 * @return CS_ERR_NOT_FOUND (already current, or no secret), CS_ERR_CRYPTO
 *         (corrupt or unopenable), CS_ERR_NOMEM.
 */
enum cs_err cs_cred_reseal(const struct cs_keyring *kr, const char *id, const struct cs_val *v,
                           uint8_t **out, size_t *len) CS_WUR;

/* ------------------------------------------------- usage record (usage_rec.c) */

/*
 * CS_TBL_USAGES: usage id → {"id","credentialId","type","description",
 *   "callbackUrl"?,"callbackSecretSealed"?,"material"?,"createdAt","owner"}
 *   (times as epoch seconds; "material" is "token" or absent, which is
 *   "secret": records written before the field existed read as they were
 *   meant); the callback secret is hex of a blob sealed with "usage:<id>"
 *   as associated data.
 * CS_TBL_USAGES_BY_CRED: credential id '\0' usage id → the usage's material
 *   and resolve stats, CS_USAGE_IDX_LEN bytes, big-endian:
 *     'S' | u8 1 (version) | 's' or 't' (material) | u64 resolveCount |
 *     u64 seenVersion | i64 lastResolvedAt (0: never)
 *   (the index that makes "delete only if unused" one lookup in the deleting
 *   transaction, the resolve's usage and material check one lookup too, and
 *   a resolve's stats update a rewrite of these bytes, no JSON). Entries
 *   written before are "" ("secret") or "t" ("token"), their stats still the
 *   JSON record's "seenVersion","resolveCount","lastResolvedAt"; the next
 *   stats write moves them here.
 * The loaded record (cs_usage_load, cs_usage_each) is the JSON with the
 * three stats members set, whichever format holds them; cs_usage_save
 * stores the stats members in the index entry, the rest as JSON.
 */

#define CS_USAGE_IDX_LEN 27

/** A usage's resolve stats. */
struct cs_usage_stats {
  uint64_t count; /* resolveCount */
  uint64_t seen;  /* seenVersion: the newest credential version resolved */
  int64_t last;   /* lastResolvedAt, epoch seconds; 0 = never */
};

/** Encode an index entry (material and stats) into @p out. */
void cs_usage_idx_encode(enum cs_usage_material m, const struct cs_usage_stats *s,
                         uint8_t out[CS_USAGE_IDX_LEN]);
/**
 * Decode an index entry of @p len bytes. An old-format entry ("" or "t")
 * gives its material, zero stats and *has_stats false.
 * @return CS_ERR_STORE (wrong size, magic, version or material; outputs untouched).
 */
enum cs_err cs_usage_idx_decode(const void *val, size_t len, enum cs_usage_material *m,
                                struct cs_usage_stats *s, bool *has_stats) CS_WUR;
/**
 * Add @p n resolves up to credential @p version at @p now to the stats of
 * usage @p usage_id of @p cred_id: the index entry rewritten, the JSON record
 * untouched (an old-format usage is converted: its record rewritten once).
 * @return CS_ERR_NOT_FOUND (no such usage), CS_ERR_STORE (corrupt), the store's error.
 */
enum cs_err cs_usage_bump(struct cs_txn *txn, const char *cred_id, const char *usage_id, unsigned n,
                          uint64_t version, int64_t now) CS_WUR;
/** Parse usage @p id, stats included. Caller deletes *out. @return CS_ERR_NOT_FOUND, CS_ERR_STORE.
 */
enum cs_err cs_usage_load(struct cs_txn *txn, const char *id, cJSON **out) CS_WUR;
/**
 * Store @p rec under its "id": its stats members in its index entry (added
 * or replaced), the rest as JSON. @p rec is unchanged on return (its stats
 * members may be reordered).
 * @return CS_ERR_EXISTS (CS_PUT_NO_OVERWRITE), CS_ERR_INVALID (no "id" or
 *         "credentialId"), CS_ERR_NOMEM, the store's error.
 */
enum cs_err cs_usage_save(struct cs_txn *txn, cJSON *rec, unsigned flags) CS_WUR;
/**
 * Write the index entry of usage @p usage_id of @p cred_id for its record
 * @p rec (material and stats members; cs_usage_save does this), or remove
 * it (@p rec NULL). @return CS_ERR_INVALID (key too long), the store's error.
 */
enum cs_err cs_usage_index(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                           const cJSON *rec) CS_WUR;
/**
 * Is @p usage_id a usage of @p cred_id? One index lookup, no record parsed;
 * the entry's value carries the usage's material (NULL ok).
 * @return CS_OK, CS_ERR_NOT_FOUND, or the store's error.
 */
enum cs_err cs_usage_indexed(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                             enum cs_usage_material *material) CS_WUR;
/** Record @p m in @p rec (only "token" is stored). @return CS_ERR_NOMEM. */
enum cs_err cs_usage_set_material(cJSON *rec, enum cs_usage_material m) CS_WUR;
/** The material of a stored usage @p rec. */
enum cs_usage_material cs_usage_material(const cJSON *rec);
/** Visit every usage record of @p cred_id (via the index); fn's error ends the walk. */
enum cs_err cs_usage_each(struct cs_txn *txn, const char *cred_id,
                          enum cs_err (*fn)(cJSON *rec, void *arg), void *arg) CS_WUR;
/** Seal a callback secret for usage @p id into @p rec ("callbackSecretSealed"). */
enum cs_err cs_usage_seal_callback(const struct cs_keyring *kr, const char *id, const char *secret,
                                   cJSON *rec) CS_WUR;
/**
 * Open the callback secret of @p rec (usage @p id). Caller wipes and frees
 * *secret (cs_free_secret_str).
 * @return CS_ERR_NOT_FOUND (no callback), CS_ERR_STORE (corrupt), CS_ERR_CRYPTO.
 */
enum cs_err cs_usage_open_callback(const struct cs_keyring *kr, const char *id, const cJSON *rec,
                                   char **secret) CS_WUR;
/**
 * Reseal the callback secret of @p rec (usage @p id) under the current data
 * key, in place. @return CS_ERR_NOT_FOUND (no secret, or already current),
 * CS_ERR_CRYPTO (corrupt or unopenable), CS_ERR_NOMEM.
 */
enum cs_err cs_usage_reseal(const struct cs_keyring *kr, const char *id, cJSON *rec) CS_WUR;

/* ---------------------------------------------------------------- usages.c */

/** Inside a txn: the usages of @p cred_id rendered, or NULL when there are none. */
enum cs_err cs_usages_of(struct cs_txn *txn, const char *cred_id, uint64_t cred_version,
                         cJSON **out) CS_WUR;
/**
 * Inside a read txn: is @p usage_id a usage of @p cred_id? Its material
 * goes to @p material (NULL ok). @return CS_ERR_NOT_FOUND, CS_ERR_STORE.
 */
enum cs_err cs_usage_check(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                           enum cs_usage_material *material) CS_WUR;
/** One resolve's record: its audit entry and its usage's stats. Strings borrowed. */
struct cs_usage_seen {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *cred_id, *usage_id;
  uint64_t version;
  const char *result;
  const struct cs_writer *w;
  bool queued; /* its stats wait in the writer's batch for the flush */
};

/** Fill @p s to record a resolve of @p cred_id for @p usage_id as @p a (cs_usage_seen_txn). */
void cs_usage_seen_init(struct cs_usage_seen *s, struct cs_core *c, const struct cs_actor *a,
                        const char *cred_id, const char *usage_id, uint64_t version,
                        const char *result);
/**
 * The write that durably records a resolve (@p arg: a struct
 * cs_usage_seen): an audit entry, and usage stats (when the usage still
 * exists) written with the others of the same group commit.
 */
enum cs_err cs_usage_seen_txn(struct cs_txn *txn, void *arg) CS_WUR;
/** Have the writer coalesce the usage stats of each batch's resolves (after cs_writer_start). */
void cs_usage_coalesce(struct cs_core *c);
/**
 * The callback URL and opened callback secret of a usage (webhook worker).
 * Caller frees *url and wipes *secret (cs_free_secret_str).
 * @return CS_ERR_NOT_FOUND (usage gone or no callback), CS_ERR_CRYPTO, ...
 */
enum cs_err cs_usage_callback(const struct cs_keyring *kr, struct cs_txn *txn, const char *usage_id,
                              char **url, char **secret) CS_WUR;

/* ----------------------------------------------- key record (key_rec.c) */

/*
 * CS_TBL_KEYS: access key id → {"id","name","role","scope"?,"createdAt",
 * "expiresAt"?,"owner"?,"hash"}; only the keyed BLAKE2b hash of the secret
 * (lowercase hex) is kept, times are epoch seconds. A secret is checked by
 * comparing hex, so a load (every request) decodes nothing.
 */

/** A stored access key, as authentication needs it. */
struct cs_key_rec {
  char id[CS_KEY_ID_MAX + 1];
  enum cs_role role;
  int64_t created_at;
  int64_t expires_at;                   /* 0 = never */
  char hash_hex[2 * CS_HASH_BYTES + 1]; /* as stored: lowercase hex */
  cJSON *scope; /* owned by cs_key_load's caller; borrowed from cs_key_decode's tree */
};

/** The record of a new key @p id with secret hash @p hash. Caller frees *out. */
enum cs_err cs_key_encode(const char *id, const struct cs_key_spec *spec, int64_t created_at,
                          const uint8_t hash[CS_HASH_BYTES], char **out) CS_WUR;
/** Parse a stored record (a JSON object). Caller deletes *out. @return CS_ERR_STORE. */
enum cs_err cs_key_parse(const struct cs_val *v, cJSON **out) CS_WUR;
/** Decode parsed @p j into @p k exactly; k->scope borrows from @p j. @return CS_ERR_STORE. */
enum cs_err cs_key_decode(const cJSON *j, struct cs_key_rec *k) CS_WUR;
/** Load key @p id; caller deletes out->scope. @return CS_ERR_NOT_FOUND, CS_ERR_STORE. */
enum cs_err cs_key_load(struct cs_txn *txn, const char *id, struct cs_key_rec *out) CS_WUR;
/** The public view of a parsed record (no hash, RFC 3339 times). @return NULL on OOM. */
cJSON *cs_key_public_json(const cJSON *rec);

/** Inside a write txn: create a key from @p spec (no audit entry). Caller wipes out->secret. */
enum cs_err cs_keys_create_txn(struct cs_txn *txn, const struct cs_keyring *kr,
                               const struct cs_key_spec *spec, struct cs_new_key *out) CS_WUR;
/** Load the live (unexpired) key @p id into @p who. @return CS_ERR_NOT_FOUND, CS_ERR_STORE. */
enum cs_err cs_keys_load_live(struct cs_core *c, const char *id, struct cs_principal *who) CS_WUR;

/* ------------------------------------- joined into other changes' txns */

/**
 * Append a hash-chained audit entry inside @p txn (write). Entries name
 * actors and targets, never values. The link is keyed with @p kr's
 * audit-chain key (cs_chain_hash).
 * @return CS_ERR_NOMEM, CS_ERR_STORE*.
 */
enum cs_err cs_audit_append(struct cs_txn *txn, const struct cs_keyring *kr,
                            const struct cs_actor *a, const char *action, const char *target,
                            const char *result) CS_WUR;
/**
 * Append the JSON of link @p seq of @p chain ("": LMDB's chain) at time
 * @p at to @p b: printed straight into the buffer, byte for byte what
 * cJSON_PrintUnformatted printed for the same members before (so chains
 * written then and now verify alike).
 * @return CS_ERR_TOO_LARGE (past @p b's max), CS_ERR_NOMEM.
 */
enum cs_err cs_audit_entry_print(struct cs_buf *b, const char *chain, uint64_t seq,
                                 const uint8_t prev[CS_HASH_BYTES], int64_t at,
                                 const struct cs_actor *a, const char *action, const char *target,
                                 const char *result) CS_WUR;

/**
 * A stored audit entry at feed position @p seq as GET /audit shows it (with
 * "hash"). @return CS_ERR_STORE, NOMEM.
 */
enum cs_err cs_audit_render(uint64_t seq, const struct cs_val *v, cJSON **out) CS_WUR;

/* -------------------------------- audit anchor (audit_anchor.c, audit_export.c) */

/*
 * CS_TBL_META "audit_anchor" (LMDB's chain ""; a node's chain has
 * "audit_anchor/<chain id>") → u64 BE seq | hash[32] | mac[32]: the last
 * entry audit-prune removed from the chain (its chain seq and hash), and a
 * keyed BLAKE2b (the audit-chain key) over "audit_anchor" | chain | seq |
 * hash, so no one without the master key can move it or copy it onto
 * another chain.
 * CS_TBL_META "audit_exported" (chain "") / "audit_exported/<chain id>" →
 * u64 BE: the highest chain seq of that chain exported (chain "": the
 * highest entry key, as the key is its seq).
 */
#define CS_AUDIT_ANCHOR_LEN (8 + 2 * CS_HASH_BYTES)
#define CS_AUDIT_ANCHOR_KEY "audit_anchor"

/** Encode @p a of chain @p chain ("" for this store's) with its MAC. */
void cs_audit_anchor_encode(const struct cs_keyring *kr, const char *chain,
                            const struct cs_audit_anchor *a, uint8_t out[CS_AUDIT_ANCHOR_LEN]);
/**
 * Decode and check an anchor record of chain @p chain.
 * @return CS_ERR_STORE (not CS_AUDIT_ANCHOR_LEN bytes), CS_ERR_CRYPTO (MAC).
 */
enum cs_err cs_audit_anchor_decode(const struct cs_keyring *kr, const char *chain,
                                   const struct cs_val *v, struct cs_audit_anchor *out) CS_WUR;
#define CS_AUDIT_EXPORTED_KEY "audit_exported"
#define CS_AUDIT_META_KEY_MAX (32 + CS_NODE_ID_MAX)

/**
 * The META key of chain @p chain's record @p base (CS_AUDIT_ANCHOR_KEY,
 * CS_AUDIT_EXPORTED_KEY): @p base for LMDB's chain "", else "base/chain".
 * @return its length, 0 if it does not fit.
 */
size_t cs_audit_meta_key(const char *base, const char *chain, char out[CS_AUDIT_META_KEY_MAX]);
/**
 * The anchor of @p chain in @p txn (seq 0 when never pruned).
 * @return as cs_audit_anchor_decode(), CS_ERR_STORE*.
 */
enum cs_err cs_audit_anchor_load(struct cs_txn *txn, const struct cs_keyring *kr, const char *chain,
                                 struct cs_audit_anchor *out) CS_WUR;
/** Write @p a as @p chain's anchor inside @p txn (write). @return CS_ERR_STORE*. */
enum cs_err cs_audit_anchor_store(struct cs_txn *txn, const struct cs_keyring *kr,
                                  const char *chain, const struct cs_audit_anchor *a) CS_WUR;
/**
 * Visit every chain's anchor in @p txn. A record that does not decode
 * stops the walk with its chain's name in @p bad.
 * @return fn's error, as cs_audit_anchor_decode(), CS_ERR_STORE*.
 */
enum cs_err cs_audit_anchors_each(struct cs_txn *txn, const struct cs_keyring *kr, cs_anchor_fn fn,
                                  void *arg, char bad[CS_NODE_ID_MAX + 1]) CS_WUR;
/**
 * The head of @p chain in @p txn (audit.c): its newest entry's chain seq
 * and hash; seq 0 and a zero hash for a chain with no entries.
 * @return CS_ERR_STORE (corrupt), CS_ERR_STORE*.
 */
enum cs_err cs_audit_head(struct cs_txn *txn, const char *chain, uint64_t *seq,
                          uint8_t hash[CS_HASH_BYTES]) CS_WUR;

/**
 * Append the JSON of an event at time @p at to @p b (@p with_seq: LMDB's,
 * which stores its seq; a shared store's has none): printed straight into
 * the buffer, byte for byte what cJSON_PrintUnformatted printed for the
 * same members before. @return CS_ERR_TOO_LARGE (past @p b's max), CS_ERR_NOMEM.
 */
enum cs_err cs_event_print(struct cs_buf *b, bool with_seq, uint64_t seq, const char *type,
                           const char *cred_id, uint64_t version, int64_t at) CS_WUR;
/** Append an event inside @p txn (write). @return CS_ERR_TOO_LARGE (@p cred_id
 * longer than a name), CS_ERR_NOMEM, CS_ERR_STORE*. */
enum cs_err cs_event_append(struct cs_txn *txn, const char *type, const char *cred_id,
                            uint64_t version) CS_WUR;

/** The wall clock in epoch milliseconds (outbox times survive restarts). */
int64_t cs_wall_ms(void);
/**
 * Inside a txn: the key of a new outbox entry. LMDB: above every pending and
 * dead one; a shared store: random in 2^52..2^53-1 (exact as a JSON number).
 * @return CS_ERR_STORE.
 */
enum cs_err cs_outbox_new_key(struct cs_txn *txn, uint8_t key[8]) CS_WUR;

/** Inside a write txn: queue an "updated" webhook for every usage of @p cred_id with a callback. */
enum cs_err cs_outbox_queue_update(struct cs_txn *txn, const char *cred_id,
                                   uint64_t version) CS_WUR;

/* ---------------------------------------------- lifecycle pieces (core.c) */

/**
 * The keyring to open a record sealed under data-key @p version: the
 * current one, or in a shared store a newer one loaded now when @p version
 * is past it (rotated by another process, not yet reported by the watch).
 * Borrowed until cs_core_stop().
 */
const struct cs_keyring *cs_core_keyring_for(struct cs_core *c, uint32_t version);

/** Follow the store's change feed (cluster.c); stop before the workers go. */
void cs_cluster_start(struct cs_core *c);
void cs_cluster_stop(struct cs_core *c);
enum cs_err cs_events_start(struct cs_core *c) CS_WUR;
void cs_events_notify(struct cs_core *c);
void cs_events_free(struct cs_core *c);
enum cs_err cs_outbox_start(struct cs_core *c, char *err, size_t errlen) CS_WUR;
void cs_outbox_kick(struct cs_core *c);
void cs_outbox_stop(struct cs_core *c);
/** Webhook counters of the running worker (zeros without one). */
void cs_outbox_counts(struct cs_core *c, uint64_t *deliveries, uint64_t *failures, uint64_t *dead);

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

/**
 * Show a feed record (audit entry, event) at feed position @p pos: its
 * "seq" member is set to it (replaced in place, or added). LMDB positions
 * are the stored seqs; etcd's come from the commit (store.h "feeds").
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_json_set_seq(cJSON *j, uint64_t pos) CS_WUR;

/**
 * The key of a new record of a sequence table (events, outbox) in @p txn:
 * LMDB the last seq + 1; a shared store a random 8-byte key with its top
 * bit set (no tail that every node's appends would conflict on; order comes
 * from the feed, and set bits keep them apart from keys migrated from LMDB).
 * @return CS_ERR_STORE.
 */
enum cs_err cs_seq_new_key(struct cs_txn *txn, enum cs_table t, uint8_t key[8]) CS_WUR;

/** cs_seq_each() inside the open transaction @p txn (any kind). */
enum cs_err cs_seq_each_txn(struct cs_txn *txn, enum cs_table t, uint64_t from, cs_seq_fn fn,
                            void *arg) CS_WUR;

/* ------------------------------------------------ retention (retention.c) */

/*
 * CS_TBL_META "events_floor" → u64 BE: the highest event feed position (seq)
 * retention has removed (absent: none); in cluster mode one for the whole
 * cluster. Retention removes events from the oldest up, so every event
 * above the floor is kept; a reader asking for events after a seq below it
 * has missed some (410 events_expired).
 */

/** Decode a floor record. @return CS_ERR_STORE unless exactly 8 bytes. */
enum cs_err cs_events_floor_decode(const struct cs_val *v, uint64_t *out) CS_WUR;
/** Encode @p floor as its record. */
void cs_events_floor_encode(uint64_t floor, uint8_t out[8]);
/** The floor inside @p txn (0 when absent). @return CS_ERR_STORE (corrupt). */
enum cs_err cs_events_floor(struct cs_txn *txn, uint64_t *out) CS_WUR;

/*
 * The commit a feed position belongs to: etcd's revision (records of one
 * commit share it); LMDB: the position itself. Retention and audit-prune
 * remove a commit's feed records all together or not at all: a node that
 * loads the store afresh ranks the survivors of a commit from 0, one that
 * watched it keeps the ranks, and the two must give every record the same
 * position (store.h "feeds").
 */
static inline uint64_t cs_feed_commit(bool shared, uint64_t pos)
{
  return shared ? pos >> CS_FEED_RANK_BITS : pos;
}

enum cs_err cs_retention_start(struct cs_core *c) CS_WUR;
void cs_retention_stop(struct cs_core *c);
/** Events the background trimmer removed since start (0 without one). */
uint64_t cs_retention_trimmed(struct cs_core *c);

#endif /* CS_CORE_INTERNAL_H */
