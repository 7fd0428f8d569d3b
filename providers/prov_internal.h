/**
 * @file prov_internal.h
 * @brief Helpers shared by the provider files (not part of the module API).
 *
 * Conventions every provider follows:
 * - An empty string and JSON null mean "not set", because clients that edit a
 *   credential (Prisma's UI among them) send "" for fields they leave blank,
 *   and the core hands back a useAWSRole credential's empty payload
 *   as secret.plain = "".
 * - Error messages name the field and the rule, never the offending value.
 */
#ifndef CS_PROV_INTERNAL_H
#define CS_PROV_INTERNAL_H

#include "providers.h"

#include <pthread.h>
#include <stdatomic.h>

extern const struct cs_provider cs_provider_aws;
extern const struct cs_provider cs_provider_azure;
extern const struct cs_provider cs_provider_gcp;
extern const struct cs_provider cs_provider_ibmcloud;
extern const struct cs_provider cs_provider_kubeconfig;
extern const struct cs_provider cs_provider_basic;
extern const struct cs_provider cs_provider_apitoken;
extern const struct cs_provider cs_provider_certificate;
extern const struct cs_provider cs_provider_certificate;

/** short_lived of the types that hand out what they store: false. */
bool cs_prov_never_short_lived(const struct cs_prov_ctx *ctx);

/** Largest secret.plain any provider accepts (the request body cap). */
#define CS_PROV_PLAIN_MAX ((size_t)1 << 20)

/**
 * Fill @p err (NULL ok) with @p field and a printf-formatted message.
 * @return @p e, so callers can write `e = cs_prov_fail(...); goto out;`.
 */
enum cs_err cs_prov_fail(struct cs_prov_error *err, enum cs_err e, const char *field,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * Read @p holder.plain from @p body (holder is "secret" or "apiToken").
 * Holder or plain absent, null or "" → *out = NULL, CS_OK.
 * @return CS_ERR_INVALID naming the holder when it is not an object, or
 *         "<holder>.plain" when plain is not a string or is too long.
 */
enum cs_err cs_prov_plain(const cJSON *body, const char *holder, const char **out,
                          struct cs_prov_error *err) CS_WUR;

/**
 * Read an optional string member @p name; absent, null or "" → *out = NULL.
 * @return CS_ERR_INVALID naming @p name if it is not a string or is longer
 *         than @p max_len.
 */
enum cs_err cs_prov_opt_str(const cJSON *obj, const char *name, size_t max_len, const char **out,
                            struct cs_prov_error *err) CS_WUR;

/**
 * Read a required, non-empty string member of a parsed secret document;
 * the error names "<prefix>.<name>" (e.g. "secret.plain.clientId").
 * @return CS_ERR_MISSING when absent or null, CS_ERR_INVALID when not a
 *         string, empty, or longer than @p max_len.
 */
enum cs_err cs_prov_req_member(const cJSON *obj, const char *prefix, const char *name,
                               size_t max_len, const char **out, struct cs_prov_error *err) CS_WUR;

/** @return true if @p s is @p min..@p max printable ASCII chars without spaces. */
bool cs_prov_token_ok(const char *s, size_t min, size_t max);

/**
 * Copy @p len bytes of secret into a malloc'd NUL-terminated buffer.
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_prov_dup_secret(const char *s, size_t len, char **out) CS_WUR;

/**
 * Check an opened payload: non-NULL, at most CS_PROV_PLAIN_MAX bytes, no
 * embedded NUL. Reads only @p len bytes. @return CS_ERR_CRYPTO otherwise.
 */
enum cs_err cs_prov_payload_ok(const char *secret, size_t len) CS_WUR;

/** Add a string member; @return CS_ERR_NOMEM. */
enum cs_err cs_prov_add_str(cJSON *obj, const char *name, const char *val) CS_WUR;
/**
 * Add the @p len bytes of @p secret (not necessarily NUL-terminated) as a
 * string member, through a terminated copy that is wiped. @return CS_ERR_NOMEM.
 */
enum cs_err cs_prov_add_secret(cJSON *obj, const char *name, const char *secret, size_t len) CS_WUR;
/** Add @p item to @p obj, deleting (wiped) @p item if that fails. @return CS_ERR_NOMEM. */
enum cs_err cs_prov_add_item(cJSON *obj, const char *name, cJSON *item) CS_WUR;

/** Longest URL host (a DNS name; IPv6 literals are shorter). */
#define CS_HTTP_HOST_MAX 253

/**
 * cs_http_check_url(), also giving the URL's normalised host (lower case,
 * no trailing dot, IPv6 without brackets) for the connect-time check.
 * @return as cs_http_check_url.
 */
enum cs_err cs_http_check_url_host(const struct cs_http_policy *p, const char *url,
                                   char target[CS_HTTP_TARGET_MAX], char host[CS_HTTP_HOST_MAX + 1],
                                   const char **why) CS_WUR;

/**
 * @return true if @p host (normalised as cs_http_check_url_host leaves it)
 *         is a loopback address literal (127.0.0.0/8, ::1, ::ffff:127.x) or
 *         "localhost".
 */
bool cs_http_host_is_loopback(const char *host);

/* ------------------------------------------------------- outbound calls */

/** Largest response body read unless a call says otherwise. */
#define CS_HTTP_BODY_MAX ((size_t)64 * 1024)

/**
 * Where a call may connect. Checked on the URL before the call and on
 * every address libcurl is about to connect to.
 */
enum cs_http_reach {
  /** Token, STS and Kubernetes API endpoints: https, or plain http (and
   *  unverified TLS) only to loopback addresses; verified https to a fixed
   *  endpoint may use the environment's proxy. */
  CS_HTTP_API,
  /** Instance metadata: link-local (169.254.0.0/16, fe80::/10,
   *  fd00:ec2::254) or loopback addresses only; never a proxy. */
  CS_HTTP_METADATA,
  /** Webhook targets: where the request's policy allows; never a proxy. */
  CS_HTTP_WEBHOOK,
  /** credential-process: the user's own URL, proxies as the environment says. */
  CS_HTTP_ANY,
};

/** One exchange. Strings are borrowed for the call. */
struct cs_http_req {
  const char *method; /* "GET", "POST" or "PUT" */
  const char *url;
  enum cs_http_reach reach;
  /** Judged at connect time; required with CS_HTTP_WEBHOOK, optional with
   *  CS_HTTP_API (URLs a credential names: built-in denials). A policy also
   *  keeps the call off proxies. */
  const struct cs_http_policy *policy;
  const char *const *headers; /* NULL-terminated "Name: value"; wiped after the call */
  const char *body;           /* POST/PUT; NULL: empty */
  size_t body_len;
  bool copy_body;      /* libcurl copies the body (batches); else it must outlive the call */
  long timeout_ms;     /* connect and whole transfer; 0: the client's */
  size_t max_response; /* 0: CS_HTTP_BODY_MAX; larger bodies fail the call */
  bool discard;        /* read and drop the body */
  /** CURLOPT_AWS_SIGV4 ("aws:amz:<region>:sts") signed with user/password
   *  (access key id and secret); without sigv4, user/password are HTTP Basic. */
  const char *sigv4;
  const char *user, *password;
  /** Trust exactly these PEM CAs instead of the client's (a kubeconfig's
   *  certificate-authority-data). */
  const char *ca_pem;
  size_t ca_pem_len;
  /** PEM client certificate and key (mTLS); the key is used in place, never copied. */
  const char *cert_pem, *key_pem;
  size_t cert_pem_len, key_pem_len;
  /** Skip certificate checks: honoured only when the URL host is loopback,
   *  and then the connection must be to a loopback address. */
  bool insecure_loopback;
  /** CURLOPT_CONNECT_TO "host:port:addr:port": the URL names the TLS server
   *  name, the connection goes to addr (a kubeconfig's tls-server-name).
   *  The address checks still apply to where it connects. NULL: none. */
  const char *connect_to;
};

/** Why a call failed before an HTTP answer. */
enum cs_http_fail {
  CS_HTTP_FAIL_NONE,
  CS_HTTP_FAIL_CONNECT, /* name did not resolve, connection refused */
  CS_HTTP_FAIL_TIMEOUT,
  CS_HTTP_FAIL_TLS,       /* handshake or certificate verification */
  CS_HTTP_FAIL_TOO_LARGE, /* body over max_response */
  CS_HTTP_FAIL_REFUSED,   /* the reach rule or policy refused the URL or every address */
  CS_HTTP_FAIL_OTHER,
};

/** What came back. The body may hold secrets: release with cs_http_resp_wipe(). */
struct cs_http_resp {
  enum cs_err e; /* as cs_http_do returned */
  long status;   /* CS_OK: the HTTP status, any value */
  char *body;    /* CS_OK: NUL-terminated, malloc'd */
  size_t len;
  enum cs_http_fail fail;
  char error[256]; /* what went wrong, no secrets; "" on CS_OK */
  bool permanent;  /* retrying cannot fix it (refused, TLS, bad URL) */
};

/**
 * Make one exchange through @p c (NULL: system trust, 5 s timeout).
 * @return CS_OK with any HTTP status; CS_ERR_UPSTREAM (transport failure,
 *         timeout, body too large: resp->fail and resp->error say which);
 *         CS_ERR_FORBIDDEN (the reach rule or policy refused the URL or
 *         every address); CS_ERR_INVALID (not an acceptable http(s) URL);
 *         CS_ERR_NOMEM; CS_ERR_INTERNAL. resp->error is filled on failure.
 */
enum cs_err cs_http_do(const struct cs_http_client *c, const struct cs_http_req *req,
                       struct cs_http_resp *resp) CS_WUR;
/** Wipe and free the body of @p r. NULL ok. */
void cs_http_resp_wipe(struct cs_http_resp *r);

/**
 * For a TLS server name other than @p url's host (a kubeconfig's
 * tls-server-name): @p url with its host replaced by @p name into
 * @p out, and the CURLOPT_CONNECT_TO line sending it to the original host
 * and port into @p connect_to.
 * @return CS_ERR_INVALID (@p name is not a host name, or @p url not an
 *         http(s) URL), CS_ERR_TOO_LARGE (an output does not fit), CS_ERR_NOMEM.
 */
enum cs_err cs_http_server_name_url(const char *url, const char *name, char *out, size_t cap,
                                    char *connect_to, size_t ct_cap) CS_WUR;

/* -------------------------------------------------------- errors, forms */

/** Fill @p err (NULL ok) with @p code and a printf-formatted message. @return @p e. */
enum cs_err cs_net_fail(struct cs_net_error *err, enum cs_err e, const char *code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
/** As cs_net_fail, naming the request or stored @p field at fault. @return @p e. */
enum cs_err cs_net_fail_field(struct cs_net_error *err, enum cs_err e, const char *field,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/**
 * Fill @p err from a transport failure of a call to @p what ("STS",
 * "Entra"...): code "Timeout", "TLSVerificationFailed", "ResponseTooLarge",
 * "EndpointRefused", or @p unreachable for the rest. @return CS_ERR_UPSTREAM.
 */
enum cs_err cs_net_fail_transport(struct cs_net_error *err, const char *what,
                                  const char *unreachable, const struct cs_http_resp *r);

/**
 * Append @p s percent-encoded for a form body (everything but A-Z a-z 0-9
 * - . _ ~ as %XX, like curl_easy_escape, but into a buffer that is wiped).
 * @return CS_ERR_TOO_LARGE, CS_ERR_NOMEM.
 */
enum cs_err cs_form_escape(struct cs_buf *b, const char *s) CS_WUR;

/* ---------------------------------------------------------------- cache */

/** Most entries and bytes (keys and values) the cache holds by default. */
#define CS_CACHE_MAX_ENTRIES 10000
#define CS_CACHE_MAX_BYTES ((size_t)64 << 20)
/** A due entry whose renewal fails is still served while it has more than
 *  this many seconds left (the JavaScript SDK's own refresh window)... */
#define CS_CACHE_FALLBACK_MIN 300
/** ...and its renewal is retried no sooner than this many seconds later. */
#define CS_CACHE_RETRY_S 30

/** Cached material: an opaque, secret byte string and its two times. */
struct cs_cache_val {
  void *data; /* malloc'd; wiped and freed by cs_cache_val_wipe() */
  size_t len;
  int64_t expires_at;  /* wall clock: when the material stops working */
  int64_t serve_until; /* handed out until then; afterwards renewed first */
};

/** Produce a fresh value for a key; runs without the cache lock. */
typedef enum cs_err (*cs_cache_fetch_fn)(void *arg, struct cs_cache_val *out,
                                         struct cs_net_error *err);

/** One lookup: the key, whose credential it belongs to, and how to fetch it. */
struct cs_cache_req {
  const char *key; /* every input that changes the value, unambiguously encoded */
  size_t key_len;
  const char *cred_id; /* for cs_cache_invalidate; NULL: none */
  cs_cache_fetch_fn fetch;
  void *arg;
  size_t size_hint; /* expected value size, to make room before fetching */
};

/** How a lookup was answered (for the stats). */
enum cs_cache_how {
  CS_CACHE_HIT,      /* a fresh entry, or a fetch already in flight, shared */
  CS_CACHE_MISS,     /* this caller fetched (cold, or renewing a due entry) */
  CS_CACHE_FALLBACK, /* renewal failed; the previous value was served */
};

struct cs_cache; /* opaque */

/** @p max_count / @p max_bytes 0: the defaults. @return CS_ERR_NOMEM, CS_ERR_INTERNAL. */
enum cs_err cs_cache_create(size_t max_count, size_t max_bytes, struct cs_cache **out) CS_WUR;
/** Wipe every value and free. No lookup may be running. NULL ok. */
void cs_cache_free(struct cs_cache *c);

/**
 * The value for @p req: cached and not yet due, shared with a fetch in
 * flight, or fetched once for every concurrent caller. Errors are shared
 * with the waiting callers and never cached. *out is a copy the caller
 * wipes with cs_cache_val_wipe().
 * @return CS_OK; whatever the fetch returned (with @p err); CS_ERR_NOMEM.
 */
enum cs_err cs_cache_get(struct cs_cache *c, const struct cs_cache_req *req,
                         struct cs_cache_val *out, struct cs_net_error *err,
                         enum cs_cache_how *how) CS_WUR;

/** Drop (and wipe) every entry of @p cred_id; fetches in flight are not kept. */
void cs_cache_invalidate(struct cs_cache *c, const char *cred_id);

/** Wipe and free @p v's data. NULL ok. */
void cs_cache_val_wipe(struct cs_cache_val *v);

/* --------------------------------------------------------------- broker */

/** Longest IMDSv2 session token kept. */
#define CS_IMDS_TOKEN_MAX 1024

struct cs_broker_counters {
  atomic_uint_fast64_t calls, hits, misses, errors, fallbacks;
};

/** The state every network resolve and test shares (one per process). */
struct cs_broker {
  struct cs_http_client *http;
  struct cs_http_policy *named_urls; /* built-in denials, for URLs a credential names */
  struct cs_cache *cache;
  char *sts_endpoint; /* NULL: the amazonaws.com endpoints */
  char *imds_endpoint;
  char *azure_authority;
  char *gcp_token_url; /* NULL: the default, or a key's own googleapis.com token_uri */
  char *ibm_iam;
  long timeout_ms;

  /* IMDSv2 session token, reused until shortly before its TTL ends. */
  pthread_mutex_t imds_lock;
  char imds_token[CS_IMDS_TOKEN_MAX + 1];
  int64_t imds_token_expiry_ms; /* monotonic; 0 = none */

  struct cs_broker_counters stats[CS_KIND__COUNT];
};

/** Count one upstream HTTP request of @p kind (and, when !ok, an error). */
void cs_broker_count_call(struct cs_broker *b, enum cs_broker_kind kind);
void cs_broker_count_error(struct cs_broker *b, enum cs_broker_kind kind);

/**
 * cs_cache_get() through the broker's cache, counting the answer as a hit,
 * miss or fallback of @p kind (CS_KIND__COUNT: a nested lookup, not counted).
 * @return as cs_cache_get.
 */
enum cs_err cs_broker_cached(struct cs_broker *b, enum cs_broker_kind kind,
                             const struct cs_cache_req *req, struct cs_cache_val *out,
                             struct cs_net_error *err) CS_WUR;

/** Start a test: zero @p out and note the time. */
void cs_test_start(struct cs_test_result *out, int64_t *t0);
/** Finish a test that worked, with @p identity (NULL: none) and a message. */
void cs_test_ok(struct cs_test_result *out, int64_t t0, const char *identity, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Finish a test that failed with @p err (code and message). */
void cs_test_failed(struct cs_test_result *out, int64_t t0, const struct cs_net_error *err);

/* ------------------------------------------------ per-type network parts */

/** A short-lived bearer token (Entra, Google, IBM IAM). */
struct cs_token {
  char *access_token; /* malloc'd secret; cs_token_wipe() */
  size_t len;
  char token_type[32];
  int64_t expires_at; /* wall clock */
};

/** Wipe and free the token. NULL ok. */
void cs_token_wipe(struct cs_token *t);

/** Longest access token accepted from an upstream. */
#define CS_TOKEN_MAX 16384
/** Tokens are served until this long before they expire (API.md §8). */
#define CS_TOKEN_MARGIN 300

/** How one cloud exchanges its stored secret for a token (token.c). */
struct cs_token_client {
  enum cs_broker_kind kind;
  const char *what; /* "Entra", "Google", "IBM IAM": for messages and logs */
  /**
   * From the opened payload, build the POST: URL into @p url, form body
   * into @p form (a secret buffer), and into @p scrub the secret an error
   * message must never repeat (NULL-free; may stay empty).
   * @return CS_ERR_INVALID (err: what in the payload or request is
   *         unusable), CS_ERR_CRYPTO (payload no longer parses), CS_ERR_NOMEM.
   */
  enum cs_err (*build)(struct cs_broker *b, const struct cs_prov_ctx *ctx, const char *scope,
                       char *url, size_t url_cap, struct cs_buf *form, struct cs_buf *scrub,
                       struct cs_net_error *err);
  /** Read the upstream's error document (code and message) from @p j; NULL: OAuth's. */
  void (*error)(const cJSON *j, struct cs_net_error *err);
};

/**
 * A token for @p ctx with @p scope (its cache key part, "" for none),
 * cached per (credential, version, scope) until CS_TOKEN_MARGIN before
 * expiry, single-flight. With @p fresh, bypass the cache (tests).
 * @return CS_ERR_UPSTREAM (err: the upstream's code and message, or the
 *         transport failure), CS_ERR_INVALID (err: the stored payload or a
 *         request field is unusable), CS_ERR_CRYPTO, CS_ERR_NOMEM.
 */
enum cs_err cs_token_get(const struct cs_token_client *tc, const struct cs_prov_ctx *ctx,
                         const char *scope, bool fresh, struct cs_token *out,
                         struct cs_net_error *err) CS_WUR;

/** Read OAuth 2.0's error, error_description (and Entra's error_codes). */
void cs_token_oauth_error(const cJSON *j, struct cs_net_error *err);

/** A type's stored material (§4) from ctx's meta and secret; no network. */
typedef enum cs_err (*cs_prov_material_fn)(const struct cs_prov_ctx *ctx, cJSON **out,
                                           struct cs_net_error *err);

/**
 * The default-format resolve of a @p type credential: @p material, after
 * refusing any other format with CS_ERR_INVALID naming "format".
 */
enum cs_err cs_prov_plain_resolve(cs_prov_material_fn material, const char *type,
                                  const struct cs_prov_ctx *ctx, cJSON **out,
                                  struct cs_net_error *err) CS_WUR;

/** The format asked for (CS_FORMAT_DEFAULT without options). */
enum cs_resolve_format cs_prov_format(const struct cs_prov_ctx *ctx);

/**
 * Add {"accessToken","tokenType",<expires_field>: RFC 3339} of @p t to @p m.
 * @return CS_ERR_NOMEM.
 */
enum cs_err cs_token_render(cJSON *m, const struct cs_token *t, const char *expires_field) CS_WUR;

/**
 * Parse an OAuth 2.0 token response (access_token, token_type,
 * expires_in, and IBM's expiration) of @p len bytes at time @p now.
 * @return CS_OK; CS_ERR_INVALID (not such a document; err code
 *         "MalformedResponse"). *out written only on success.
 */
enum cs_err cs_token_parse(const char *body, size_t len, int64_t now, struct cs_token *out,
                           struct cs_net_error *err) CS_WUR;

/**
 * Load and check a kubeconfig like cs_kubeconfig_describe, keeping the
 * checked tree (secret: free with cs_json_wipe_delete). kubeconfig.c.
 */
enum cs_err cs_kube_load(const char *yaml, size_t len, cJSON **root,
                         struct cs_prov_error *err) CS_WUR;

/** A kubeconfig's connection test: GET /version on its current context's server. kube_test.c. */
enum cs_err cs_kube_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out) CS_WUR;

/** How a stored secret authenticates the GET of a credential's `url`. */
struct cs_url_auth {
  const char *user, *password;    /* HTTP Basic (basic); NULL: none */
  const char *bearer;             /* Authorization: Bearer (apiToken); NULL: none */
  const char *cert_pem, *key_pem; /* mTLS client certificate and key (certificate) */
  size_t cert_pem_len, key_pem_len;
};

/**
 * The connection test of a type that only keeps a secret (basic, apiToken,
 * certificate; API.md §8): ok with "stored; nothing to test" when
 * ctx->meta has no `url`; otherwise a GET of it with @p auth (borrowed),
 * reached like any URL a credential names (https, http only to loopback,
 * link-local and metadata addresses refused), ok on a 2xx. Messages name
 * only scheme://host:port, never the path or query (which may hold secrets).
 * @return CS_OK with @p out filled (refusals and transport failures are
 *         results); CS_ERR_UNAVAILABLE (a url and no broker); CS_ERR_NOMEM.
 */
enum cs_err cs_prov_test_url(const struct cs_prov_ctx *ctx, const struct cs_url_auth *auth,
                             struct cs_test_result *out) CS_WUR;

#endif /* CS_PROV_INTERNAL_H */
