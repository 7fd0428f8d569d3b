/**
 * @file fuzz_common.h
 * @brief What the libFuzzer harnesses share: the libFuzzer entry points,
 *        a deterministic random source (so a keyring, a JWT or a sealed blob
 *        made by fuzz_seedgen is the same one every harness run rebuilds),
 *        the fixed master key and keyring, and small helpers.
 *
 * Never link this into anything but the fuzz harnesses and fuzz_seedgen:
 * it replaces libsodium's random source with a predictable one.
 */
#ifndef CS_FUZZ_COMMON_H
#define CS_FUZZ_COMMON_H

#include "common.h"
#include "crypto.h"

#include <stddef.h>
#include <stdint.h>

/** libFuzzer's entry points (each harness defines the first, some the second). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/** The clock every time-dependent check uses: 2025-11-22T15:46:40Z. */
#define CS_FUZZ_NOW ((int64_t)1763826400)

/** Record id the fixed sealed-blob seeds are bound to. */
#define CS_FUZZ_RECORD_ID "fuzz-record"

/** Data-key versions of the fixed keyring (1 created, then rotated). */
#define CS_FUZZ_KEY_VERSIONS 2u

/**
 * Install the deterministic random source, start libsodium and silence
 * logging. Idempotent; aborts on failure. Must run before anything uses
 * randomness (keyrings, seals, JWT ids).
 */
void cs_fuzz_init(void);

/** The fixed master key (32 known bytes read back through a key file). */
const struct cs_master_key *cs_fuzz_master_key(void);

/**
 * The fixed keyring: created under cs_fuzz_master_key() with the
 * deterministic random source, then rotated to CS_FUZZ_KEY_VERSIONS
 * versions. Identical in every process as long as it is the first thing
 * that draws randomness after cs_fuzz_init().
 */
const struct cs_keyring *cs_fuzz_keyring(void);

/** Copy @p size bytes into a new NUL-terminated string; aborts on OOM. */
char *cs_fuzz_cstr(const uint8_t *data, size_t size);

/** Report a broken invariant and abort (libFuzzer saves the input). */
void cs_fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** Abort unless @p s is NUL-terminated within @p cap bytes. */
void cs_fuzz_check_terminated(const char *what, const char *s, size_t cap);

#endif /* CS_FUZZ_COMMON_H */
