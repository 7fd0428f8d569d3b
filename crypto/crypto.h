/**
 * @file crypto.h
 * @brief Keys and sealing: master key, keyring of versioned data keys,
 *        seal/open (XChaCha20-Poly1305), access-key secret hashing (keyed
 *        BLAKE2b), HS256 JWTs, random ids and the keyed audit hash chain;
 *        and a small X.509/RSA wrapper over GnuTLS (RS256 signatures,
 *        certificate descriptions) for the providers.
 *
 * Only this module touches key bytes. Keys live in sodium_malloc memory.
 * Call cs_crypto_init() once before anything else.
 */
#ifndef CS_CRYPTO_H
#define CS_CRYPTO_H

#include "common.h"

#include <stddef.h>
#include <stdint.h>

#define CS_KEY_BYTES 32
#define CS_HASH_BYTES 32
#define CS_SALT_BYTES 16

/** Initialise libsodium. @return CS_ERR_INTERNAL if it can't start. */
enum cs_err cs_crypto_init(void) CS_WUR;

/* -------------------------------------------------------------- master key */

struct cs_master_key; /* opaque, 32 bytes in sodium_malloc memory */

/** Argon2id parameters stored beside the keyring so a passphrase reopens it. */
struct cs_kdf_params {
  uint8_t salt[CS_SALT_BYTES];
  uint64_t opslimit;
  uint64_t memlimit;
};

/** Fill @p p with a fresh random salt and the default cost (Argon2id, 3 passes, 64 MiB). */
void cs_kdf_params_new(struct cs_kdf_params *p);

/**
 * Write 32 random bytes to @p path, created 0600 and never overwritten.
 * @return CS_ERR_EXISTS if the file exists, CS_ERR_IO.
 */
enum cs_err cs_master_key_generate_file(const char *path) CS_WUR;

/**
 * Read a master key file: exactly 32 raw bytes, or 64 hex characters
 * (optionally newline-terminated), or base64 of 32 bytes.
 * @return CS_ERR_IO (unreadable), CS_ERR_INVALID (wrong size/format).
 *         Caller frees *out with cs_master_key_free().
 */
enum cs_err cs_master_key_from_file(const char *path, struct cs_master_key **out) CS_WUR;

/**
 * Derive a master key from a passphrase with Argon2id and @p p.
 * @return CS_ERR_INVALID (empty passphrase or bad params), CS_ERR_NOMEM.
 */
enum cs_err cs_master_key_from_passphrase(const char *pass, size_t len,
                                          const struct cs_kdf_params *p,
                                          struct cs_master_key **out) CS_WUR;

/** Wipe and free. NULL ok. */
void cs_master_key_free(struct cs_master_key *mk);

/* ----------------------------------------------------------------- keyring */

struct cs_keyring; /* opaque: data keys by version + derived service keys */

/**
 * Create a new keyring: a random root secret and data key version 1, all
 * wrapped by @p mk. Caller frees with cs_keyring_free().
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_keyring_create(const struct cs_master_key *mk, struct cs_keyring **out) CS_WUR;

/**
 * Serialise the wrapped keyring (nothing in it is readable without the
 * master key) for storage. Caller frees *blob with free().
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_keyring_export(const struct cs_keyring *kr, uint8_t **blob, size_t *len) CS_WUR;

/**
 * Unwrap a blob from cs_keyring_export() with @p mk.
 * @return CS_ERR_MASTER_KEY (wrong master key or tampered blob),
 *         CS_ERR_INVALID (malformed blob), CS_ERR_NOMEM.
 */
enum cs_err cs_keyring_load(const struct cs_master_key *mk, const uint8_t *blob, size_t len,
                            struct cs_keyring **out) CS_WUR;

/** Add a new data-key version; new seals use it. @return CS_ERR_NOMEM, CS_ERR_INVALID (too many).
 */
enum cs_err cs_keyring_rotate(struct cs_keyring *kr) CS_WUR;

/**
 * Unwrap @p blob (a newer export of the same store's keyring, e.g. after
 * another process rotated it) with the master key @p kr was loaded with.
 * Caller frees *out with cs_keyring_free().
 * @return CS_ERR_INVALID (malformed blob), CS_ERR_MASTER_KEY (not wrapped
 *         by that key), CS_ERR_NOMEM.
 */
enum cs_err cs_keyring_reload(const struct cs_keyring *kr, const uint8_t *blob, size_t len,
                              struct cs_keyring **out) CS_WUR;

/** @return the data-key version new seals use. */
uint32_t cs_keyring_current_version(const struct cs_keyring *kr);

/** Wipe and free. NULL ok. */
void cs_keyring_free(struct cs_keyring *kr);

/* ------------------------------------------------------------- seal / open */

/**
 * Seal @p plain for the record @p record_id with the current data key.
 * Layout: u32 key version (big-endian) | 24-byte nonce | ciphertext+tag.
 * The associated data binds record id and key version, so a sealed blob
 * moved to another record, or relabelled with another version, fails to open.
 * Caller frees *out with free(). @return CS_ERR_NOMEM.
 */
enum cs_err cs_seal(const struct cs_keyring *kr, const char *record_id, const uint8_t *plain,
                    size_t plain_len, uint8_t **out, size_t *out_len) CS_WUR;

/**
 * Open a blob from cs_seal(). *plain is NUL-terminated (not counted in
 * *plain_len); the caller wipes and frees it with cs_open_free().
 * @return CS_ERR_CRYPTO (tampered, wrong record, unknown version), CS_ERR_NOMEM.
 */
enum cs_err cs_open(const struct cs_keyring *kr, const char *record_id, const uint8_t *sealed,
                    size_t sealed_len, uint8_t **plain, size_t *plain_len) CS_WUR;

/** @return the key version a sealed blob names, or 0 if too short. */
uint32_t cs_sealed_version(const uint8_t *sealed, size_t len);

/**
 * Reseal a blob from cs_seal() with the current data key, for the same
 * @p record_id (key rotation). Caller frees *out with free().
 * @return CS_ERR_NOT_FOUND (it already uses the current version),
 *         CS_ERR_CRYPTO (too short, tampered, wrong record), CS_ERR_NOMEM.
 */
enum cs_err cs_reseal(const struct cs_keyring *kr, const char *record_id, const uint8_t *sealed,
                      size_t len, uint8_t **out, size_t *out_len) CS_WUR;

/** Wipe @p len bytes of @p plain and free it. NULL ok. */
void cs_open_free(uint8_t *plain, size_t len);

/* ---------------------------------------------------------- hashing, ids */

/** Keyed BLAKE2b-256 of an access-key secret, keyed by the keyring's hash key. */
void cs_secret_hash(const struct cs_keyring *kr, const char *secret, size_t len,
                    uint8_t out[CS_HASH_BYTES]);

/** Unkeyed BLAKE2b-256 of @p len bytes (fingerprints of sealed blobs). */
void cs_digest(const void *data, size_t len, uint8_t out[CS_HASH_BYTES]);

/** Lowercase hex HMAC-SHA256 of @p msg keyed with @p key (any length) into out[65]. */
void cs_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t len, char out[65]);

/** Constant-time equality of @p len bytes. */
bool cs_bytes_equal(const void *a, const void *b, size_t len);

/** Constant-time equality of two hashes. */
bool cs_hash_equal(const uint8_t a[CS_HASH_BYTES], const uint8_t b[CS_HASH_BYTES]);

/**
 * Audit chain link: keyed BLAKE2b-256(prev || entry) under the keyring's
 * audit-chain key (derived from the root secret, so stable across data-key
 * rotations and restores). Without the master key nobody can recompute a
 * link, so a store writer cannot rewrite history. @p prev may be all zeros
 * for the first entry.
 */
void cs_chain_hash(const struct cs_keyring *kr, const uint8_t prev[CS_HASH_BYTES],
                   const void *entry, size_t len, uint8_t out[CS_HASH_BYTES]);

/** Write @p nbytes random bytes as lowercase hex plus NUL into out[2*nbytes+1]. */
void cs_random_hex(char *out, size_t nbytes);

/** Lowercase hex of @p len bytes into out[2*len+1]. */
void cs_hex(const uint8_t *in, size_t len, char *out);

/**
 * Decode exactly @p hexlen hex digits (either case, nothing else) into
 * @p out, which holds @p max bytes; the one hex decoder (sodium_hex2bin).
 * @return CS_ERR_INVALID (odd length, a non-hex character, more than
 *         @p max bytes; @p out may then hold part of it). *len written
 *         only on success.
 */
enum cs_err cs_unhex(const char *hex, size_t hexlen, uint8_t *out, size_t max, size_t *len) CS_WUR;

/** Fill @p buf with random bytes. */
void cs_random_bytes(void *buf, size_t len);

/**
 * Base64 (standard alphabet, padded) of @p len bytes. Caller frees.
 * @return NULL on OOM.
 */
char *cs_base64_encode(const uint8_t *in, size_t len);
/** Base64url without padding (RFC 7515 JWS). Caller frees. @return NULL on OOM. */
char *cs_b64url_encode(const uint8_t *in, size_t len);
/**
 * Decode standard padded base64. Caller frees *out (wipe with cs_open_free
 * if secret). @return CS_ERR_INVALID, CS_ERR_NOMEM.
 */
enum cs_err cs_base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len) CS_WUR;

/* --------------------------------------------------------------------- JWT */

#define CS_JWT_SUB_MAX 64
#define CS_JWT_ROLE_MAX 16
#define CS_JWT_MAX_LEN 1024

struct cs_jwt_claims {
  char sub[CS_JWT_SUB_MAX + 1];   /* access key id */
  char role[CS_JWT_ROLE_MAX + 1]; /* role name */
  int64_t iat;
  int64_t exp;
  char jti[33]; /* 16 random bytes, hex */
};

/**
 * Mint an HS256 JWT (header {"alg":"HS256","typ":"JWT"}) over @p c with the
 * keyring's JWT key. A fresh jti is generated when c->jti is empty.
 * Caller frees *out. @return CS_ERR_INVALID (sub/role empty or too long), CS_ERR_NOMEM.
 */
enum cs_err cs_jwt_mint(const struct cs_keyring *kr, const struct cs_jwt_claims *c,
                        char **out) CS_WUR;

/**
 * Verify an HS256 JWT of @p len bytes at time @p now: exactly three
 * base64url parts, header alg HS256 (alg none or any other refused),
 * signature checked in constant time, then sub, role, iat, exp required
 * and exp > now.
 * @return CS_ERR_BAD_TOKEN for any failure. *out written only on success.
 */
enum cs_err cs_jwt_verify(const struct cs_keyring *kr, const char *token, size_t len, int64_t now,
                          struct cs_jwt_claims *out) CS_WUR;

/* --------------------------------------------------------------------- PKI */

/*
 * X.509 and RSA through GnuTLS: no RSA or ASN.1 code of our own. Inputs are
 * PEM text, bounded by CS_PKI_PEM_MAX before GnuTLS sees them. GnuTLS keeps
 * its own copies of a private key only inside the objects freed here, and
 * zeroes them when they are released.
 */

/** Largest PEM input accepted (a certificate chain and its key). */
#define CS_PKI_PEM_MAX ((size_t)64 * 1024)
/** Fewest RSA modulus bits cs_rs256_sign() accepts. */
#define CS_RSA_MIN_BITS 2048

/**
 * Sign @p len bytes of @p data with RSASSA-PKCS1-v1_5 and SHA-256 (JWS
 * "RS256"), with the unencrypted RSA private key in @p pem: PKCS#8
 * ("-----BEGIN PRIVATE KEY-----", as in GCP service-account keys) or
 * PKCS#1 ("-----BEGIN RSA PRIVATE KEY-----"). The signature is
 * deterministic. Caller frees *sig with free() (it is not secret).
 * @p why (NULL ok) gets a static message on CS_ERR_INVALID.
 * @return CS_ERR_INVALID (not a PEM private key, encrypted, not RSA, or
 *         fewer than CS_RSA_MIN_BITS bits; larger than CS_PKI_PEM_MAX),
 *         CS_ERR_NOMEM, CS_ERR_INTERNAL (GnuTLS failed to sign).
 *         Outputs written only on success.
 */
enum cs_err cs_rs256_sign(const char *pem, size_t pem_len, const void *data, size_t len,
                          uint8_t **sig, size_t *sig_len, const char **why) CS_WUR;

/** Which part of a certificate-and-key input is at fault. */
enum cs_pki_fault {
  CS_PKI_FAULT_NONE,
  CS_PKI_FAULT_CERT,    /* no certificate, or one that does not parse */
  CS_PKI_FAULT_KEY,     /* no private key, an encrypted one, or one that does not parse */
  CS_PKI_FAULT_MISMATCH /* the key is not the certificate's */
};

/** Why cs_cert_describe() refused its input; msg never holds key bytes. */
struct cs_pki_error {
  enum cs_pki_fault fault;
  char msg[160];
};

/** What a certificate says about itself (no secret in here). */
struct cs_cert_info {
  char subject[512]; /* RFC 4514 DN, cut at a UTF-8 boundary if longer */
  char issuer[512];
  char not_after[32]; /* RFC 3339 UTC */
  int64_t not_after_epoch;
  char sha256[65]; /* lowercase hex SHA-256 of the DER certificate */
};

/**
 * Describe the first certificate of @p pem (a PEM certificate, optionally
 * followed by its chain, and its PEM private key: PKCS#8, PKCS#1 RSA or
 * SEC1 EC, unencrypted) and check that the private key belongs to it by
 * comparing SHA-256 key ids of the two public keys: a key that does not
 * belong is an error (fault MISMATCH), never a description.
 * @return CS_ERR_INVALID with @p err filled (fault CERT, KEY or MISMATCH,
 *         and a message naming the problem); CS_ERR_NOMEM; CS_ERR_INTERNAL.
 *         *out written only on success.
 */
enum cs_err cs_cert_describe(const char *pem, size_t len, struct cs_cert_info *out,
                             struct cs_pki_error *err) CS_WUR;

/**
 * Count the PEM certificates in @p pem (a CA bundle such as
 * --outbound-ca-file), refusing anything that is not one or more
 * well-formed certificates.
 * @return CS_ERR_INVALID (none, or one does not parse; @p why says which),
 *         CS_ERR_TOO_LARGE (over @p max bytes), CS_ERR_NOMEM.
 */
enum cs_err cs_pem_certs_count(const char *pem, size_t len, size_t max, size_t *count,
                               const char **why) CS_WUR;

#endif /* CS_CRYPTO_H */
