/**
 * @file common.h
 * @brief credstore's shared base: the error registry, logging, bounded
 *        buffers, time and small JSON helpers. Depends on libc and cJSON only.
 */
#ifndef CS_COMMON_H
#define CS_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#define CS_WUR __attribute__((warn_unused_result))

/* ------------------------------------------------------------------ errors */

/**
 * Every fallible function returns one of these. The registry in err.c maps
 * each to an HTTP status, a stable snake_case code and a default message;
 * rendering an error body happens in exactly one place
 * (server/api/response.c, cs_resp_error).
 *
 * X(name, http_status, "stable_code", "default human message")
 */
#define CS_ERR_LIST(X)                                                                             \
  X(CS_OK, 200, "ok", "ok")                                                                        \
  X(CS_ERR_NOMEM, 500, "out_of_memory", "out of memory")                                           \
  X(CS_ERR_INTERNAL, 500, "internal_error", "internal error")                                      \
  X(CS_ERR_IO, 500, "io_error", "input/output error")                                              \
  X(CS_ERR_STORE, 500, "store_error", "store error")                                               \
  X(CS_ERR_STORE_FULL, 500, "store_full", "store map is full")                                     \
  X(CS_ERR_SCHEMA_NEWER, 500, "schema_too_new",                                                    \
    "the data dir was written by a newer credstore (unknown schema version)")                      \
  X(CS_ERR_SCHEMA_OLD, 500, "schema_too_old",                                                      \
    "the data dir was written by a pre-release credstore this build cannot read")                  \
  X(CS_ERR_NOT_INITIALIZED, 500, "not_initialized",                                                \
    "the data dir is not initialised (run credstore init)")                                        \
  X(CS_ERR_ALREADY_INITIALIZED, 409, "already_initialized", "the data dir is already initialised") \
  X(CS_ERR_CRYPTO, 500, "crypto_error", "sealed data failed to open")                              \
  X(CS_ERR_MASTER_KEY, 500, "bad_master_key",                                                      \
    "the master key does not open this data dir's keyring")                                        \
  X(CS_ERR_BAD_JSON, 400, "malformed_json", "request body is not valid JSON")                      \
  X(CS_ERR_INVALID, 400, "invalid_field", "invalid field")                                         \
  X(CS_ERR_MISSING, 400, "missing_field", "missing field")                                         \
  X(CS_ERR_BAD_ID, 400, "invalid_id", "invalid id")                                                \
  X(CS_ERR_BAD_QUERY, 400, "invalid_query", "invalid query parameter")                             \
  X(CS_ERR_TOO_DEEP, 400, "json_too_deep", "JSON nesting is too deep")                             \
  X(CS_ERR_UNAUTHORIZED, 401, "unauthorized", "authentication required")                           \
  X(CS_ERR_BAD_CREDENTIALS, 401, "invalid_credentials", "invalid access key id or secret")         \
  X(CS_ERR_BAD_TOKEN, 401, "invalid_token", "invalid or expired token")                            \
  X(CS_ERR_FORBIDDEN, 403, "forbidden", "the access key's role may not do this")                   \
  X(CS_ERR_TOKEN_ONLY, 403, "token_only_usage",                                                    \
    "this usage may resolve only short-lived material, not the stored secret")                     \
  X(CS_ERR_NOT_FOUND, 404, "not_found", "not found")                                               \
  X(CS_ERR_NO_ROUTE, 404, "no_route", "no such route")                                             \
  X(CS_ERR_METHOD, 405, "method_not_allowed", "method not allowed")                                \
  X(CS_ERR_EXISTS, 409, "already_exists", "already exists")                                        \
  X(CS_ERR_IN_USE, 409, "credential_in_use", "the credential is in use")                           \
  X(CS_ERR_LAST_ADMIN, 409, "last_admin_key", "the last admin access key cannot be deleted")       \
  X(CS_ERR_NOT_DEAD, 409, "not_dead_letter", "the delivery is not a dead letter")                  \
  X(CS_ERR_EVENTS_EXPIRED, 410, "events_expired",                                                  \
    "events after since are no longer kept; resynchronise, then read from oldest")                 \
  X(CS_ERR_PRECONDITION, 412, "precondition_failed",                                               \
    "If-Match does not match the current version")                                                 \
  X(CS_ERR_TOO_LARGE, 413, "body_too_large", "request body is too large")                          \
  X(CS_ERR_UNSUPPORTED_MEDIA, 415, "unsupported_media_type",                                       \
    "request body must be application/json")                                                       \
  X(CS_ERR_RATE_LIMITED, 429, "too_many_attempts", "too many failed attempts; try again later")    \
  X(CS_ERR_UPSTREAM, 502, "upstream_error", "upstream service failed")                             \
  X(CS_ERR_UNAVAILABLE, 503, "unavailable", "service unavailable")                                 \
  X(CS_ERR_STORE_UNAVAILABLE, 503, "store_unavailable",                                            \
    "the store is unavailable (no etcd quorum or no reachable endpoint)")

/* The X-macro expansion is not a statement for clang-format to indent. */
/* clang-format off */
enum cs_err {
#define CS_ERR_ENUM(name, status, code, msg) name,
  CS_ERR_LIST(CS_ERR_ENUM)
#undef CS_ERR_ENUM
  CS_ERR__COUNT
};
/* clang-format on */

/** @return the HTTP status for @p e (500 for unknown values). */
int cs_err_http_status(enum cs_err e);
/** @return the stable snake_case code for @p e ("internal_error" if unknown). */
const char *cs_err_code(enum cs_err e);
/** @return the default human message for @p e. */
const char *cs_err_message(enum cs_err e);
/** @return true for errors caused by the client (4xx), false otherwise. */
bool cs_err_is_client(enum cs_err e);

/* ----------------------------------------------------------------- logging */

enum cs_log_level { CS_LOG_DEBUG, CS_LOG_INFO, CS_LOG_WARN, CS_LOG_ERROR, CS_LOG_OFF };

extern enum cs_log_level cs_log_min_level;

/** Log one JSON line on stderr; arguments are not evaluated below the level. */
#define CS_LOG(level, ...)                                                                         \
  do {                                                                                             \
    if ((level) >= cs_log_min_level)                                                               \
      cs_log_write((level), __VA_ARGS__);                                                          \
  } while (0)

/**
 * Write {"ts","level","rid"?,"msg"} as one line on stderr. The message is
 * printf-formatted, truncated at 2 KiB and JSON-escaped. Never pass secrets.
 */
void cs_log_write(enum cs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Same as cs_log_write with extra pre-rendered JSON members ("k":v,...). */
void cs_log_fields(enum cs_log_level level, const char *json_members, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Parse "debug"|"info"|"warn"|"error"|"off". @return CS_ERR_INVALID if unknown. */
enum cs_err cs_log_parse_level(const char *s, enum cs_log_level *out) CS_WUR;
/**
 * Buffer stderr (64 KiB) and flush it from a thread every 100 ms; warn and
 * error lines are flushed at once. For serve's access log. Lines of the
 * last ~100 ms are lost if the process is killed.
 */
void cs_log_buffer_start(void);
/** Flush and go back to unbuffered stderr. */
void cs_log_buffer_stop(void);
/** Set the calling thread's request id (copied, max 31 chars); NULL clears. */
void cs_log_set_request_id(const char *rid);
/** @return the calling thread's request id, or "" when none. */
const char *cs_log_request_id(void);
/** Longest node name (--node-id) a log line, metric or audit entry carries. */
#define CS_NODE_ID_MAX 64
/**
 * Name this process in every log line ("node"), cluster mode's --node-id.
 * Call once before threads start; NULL or "" drops the field.
 */
void cs_log_set_node(const char *node);

/* --------------------------------------------------------- bounded buffers */

/** A growable byte buffer that refuses to grow past @c max (curl's dynbuf). */
struct cs_buf {
  char *data; /* always NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
  size_t max;
  bool secret; /* set by cs_buf_init_secret(): growing leaves no copy behind */
};

/** Initialise an empty buffer that may hold at most @p max bytes. */
void cs_buf_init(struct cs_buf *b, size_t max);
/**
 * Like cs_buf_init() for a buffer that will hold secrets (form bodies with
 * client secrets, signed assertions): growth copies into a new allocation
 * and wipes the old one instead of realloc()ing, so no stale copy is left in
 * freed memory. Release it with cs_buf_wipe().
 */
void cs_buf_init_secret(struct cs_buf *b, size_t max);
/**
 * A buffer over the caller's @p size bytes at @p mem (a stack array) that
 * never grows: it holds at most @p size - 1 bytes and the NUL, and appends
 * past that fail with CS_ERR_TOO_LARGE. Never pass it to cs_buf_free() or
 * cs_buf_wipe(); @p size must be at least 1.
 */
struct cs_buf cs_buf_fixed(char *mem, size_t size);
/** @return CS_ERR_TOO_LARGE past max (buffer unchanged), CS_ERR_NOMEM. */
enum cs_err cs_buf_append(struct cs_buf *b, const void *data, size_t len) CS_WUR;
/** Append @p v in decimal (no printf). @return CS_ERR_TOO_LARGE, CS_ERR_NOMEM. */
enum cs_err cs_buf_append_int(struct cs_buf *b, int64_t v) CS_WUR;
/** printf-append. @return CS_ERR_TOO_LARGE, CS_ERR_NOMEM, CS_ERR_INTERNAL. */
enum cs_err cs_buf_printf(struct cs_buf *b, const char *fmt, ...) CS_WUR
    __attribute__((format(printf, 2, 3)));
/**
 * Append @p s percent-encoded for one URL path segment or query value: every
 * byte but RFC 3986's unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX.
 * @return CS_ERR_TOO_LARGE, CS_ERR_NOMEM.
 */
enum cs_err cs_buf_url_escape(struct cs_buf *b, const char *s, size_t len) CS_WUR;

/**
 * Append @p s JSON-escaped, without quotes, byte for byte as cJSON prints a
 * string (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx,
 * the rest as they are), so text printed here hashes like cJSON's (the
 * audit chain). @return CS_ERR_TOO_LARGE, CS_ERR_NOMEM.
 */
enum cs_err cs_buf_json_escape(struct cs_buf *b, const char *s, size_t len) CS_WUR;
/**
 * Append @p v as cJSON 1.7 prints a number: integers below 1e15 in plain
 * digits, larger ones as "%1.15g" (or "%1.17g" when that does not read
 * back), so JSON printed here hashes and compares like cJSON's.
 * @return as cs_buf_append().
 */
enum cs_err cs_buf_json_u64(struct cs_buf *b, uint64_t v) CS_WUR;
/**
 * Append @p pre (a member's opening, as CS_BUF_JSON_STR spells it), @p s
 * escaped as cs_buf_json_escape() does, and the closing quote.
 * @return as cs_buf_append().
 */
enum cs_err cs_buf_json_str(struct cs_buf *b, const char *pre, size_t plen, const char *s) CS_WUR;
/** Append ,"name":"s" (name a literal). @return as cs_buf_append(). */
#define CS_BUF_JSON_STR(b, name, s)                                                                \
  cs_buf_json_str(b, ",\"" name "\":\"", sizeof(",\"" name "\":\"") - 1, s)
/** Append @p v in decimal (what "%" PRIu64 prints, without printf). @return as cs_buf_append(). */
enum cs_err cs_buf_u64(struct cs_buf *b, uint64_t v) CS_WUR;
/** Wipe the contents (sodium-free memzero) and free; keeps max. NULL ok. */
void cs_buf_wipe(struct cs_buf *b);
/** Free without wiping. NULL ok. */
void cs_buf_free(struct cs_buf *b);

/** Zero @p len bytes in a way the compiler can't elide. */
void cs_memzero(void *p, size_t len);
/** Wipe and free a NUL-terminated heap string. NULL ok. */
void cs_free_secret_str(char *s);

/* -------------------------------------------------------------------- time */

/** @return wall-clock seconds since the epoch. */
int64_t cs_now(void);
/** @return monotonic milliseconds. */
int64_t cs_mono_ms(void);
/** The CLOCK_REALTIME time @p ms milliseconds from now, for pthread_cond_timedwait. */
void cs_deadline_in_ms(int64_t ms, struct timespec *out);
/** Format @p t as RFC 3339 UTC ("2026-11-22T15:42:10Z") into @p out[21+]. */
void cs_time_format(int64_t t, char out[static 32]);
/** Parse RFC 3339 ("…Z" or "…±hh:mm", optional fraction). @return CS_ERR_INVALID. */
enum cs_err cs_time_parse(const char *s, int64_t *out) CS_WUR;

/* -------------------------------------------------------------------- JSON */

#define CS_JSON_MAX_DEPTH 32

/**
 * Parse exactly @p len bytes of JSON, refusing nesting deeper than
 * @p max_depth before the parser sees it.
 * @return CS_ERR_BAD_JSON, CS_ERR_TOO_DEEP, CS_ERR_NOMEM. Caller frees *out
 *         with cJSON_Delete.
 */
enum cs_err cs_json_parse(const char *buf, size_t len, int max_depth, cJSON **out) CS_WUR;

/**
 * Read an optional string member. Absent or null → *out = NULL, CS_OK.
 * @return CS_ERR_INVALID if present but not a string, or longer than max_len.
 */
enum cs_err cs_json_opt_string(const cJSON *obj, const char *name, size_t max_len,
                               const char **out) CS_WUR;
/** Like cs_json_opt_string but absent/null → CS_ERR_MISSING. */
enum cs_err cs_json_req_string(const cJSON *obj, const char *name, size_t max_len,
                               const char **out) CS_WUR;
/** Optional integer in [min,max]; absent → *out unchanged. @return CS_ERR_INVALID. */
enum cs_err cs_json_opt_int(const cJSON *obj, const char *name, int64_t min, int64_t max,
                            int64_t *out) CS_WUR;
/** Optional boolean; absent → *out unchanged. @return CS_ERR_INVALID. */
enum cs_err cs_json_opt_bool(const cJSON *obj, const char *name, bool *out) CS_WUR;

/** @return true if @p len bytes are strict UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool cs_utf8_valid(const char *s, size_t len);

/** Wipe every string of @p j (values, and the names of its members) in place. NULL ok. */
void cs_json_wipe(cJSON *j);
/** cs_json_wipe(), then delete @p j: the one way a tree that held secrets is freed. NULL ok. */
void cs_json_wipe_delete(cJSON *j);

/** Render @p j compactly into a malloc'd string. @return NULL on OOM. */
char *cs_json_print(const cJSON *j);

/* ---------------------------------------------------------------- ids/misc */

#define CS_ID_MAX 128
/** Credential names: at most CS_NAME_CHARS characters in at most CS_NAME_MAX bytes. */
#define CS_NAME_CHARS 128
#define CS_NAME_MAX 384 /* 128 characters of the Basic Multilingual Plane */

/** @return true if @p s is 1..CS_ID_MAX chars of [A-Za-z0-9._-] (access-key and usage ids). */
bool cs_id_valid(const char *s, size_t len);

/**
 * A credential name (API.md §3 "Names"): 1..CS_NAME_CHARS characters of
 * strict UTF-8 in at most CS_NAME_MAX bytes, no control character (C0, DEL,
 * C1), no '/' or '\\', no leading or trailing space, not "." or "..".
 * @return true if @p len bytes at @p s are one.
 */
bool cs_name_valid(const char *s, size_t len);

/** What cs_name_valid() admits, for error messages. */
#define CS_NAME_RULE                                                                               \
  "1-128 characters of UTF-8 without control characters, '/' or '\\', leading or trailing "        \
  "spaces, and not '.' or '..'"
/** Parse a decimal non-negative integer fully. @return CS_ERR_INVALID. */
enum cs_err cs_parse_u64(const char *s, uint64_t max, uint64_t *out) CS_WUR;

#endif /* CS_COMMON_H */
