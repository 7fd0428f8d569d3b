/**
 * @file providers.h
 * @brief One provider per credential type behind one vtable: validate the
 *        input, derive the non-secret metadata, produce the payload that
 *        gets sealed, and turn an opened payload back into the material a
 *        consumer receives on resolve.
 *
 * Providers never see keys or the store. The core (server/core/) opens a
 * kept secret and puts it back into the body as secret.plain (or
 * apiToken.plain) before calling validate, so validation always sees the
 * full input. Every resolve and connection test, the network ones (STS,
 * IMDS, Entra, Google, IBM IAM, Kubernetes API servers) included, is the
 * provider's: the core hands it a context (struct cs_prov_ctx) with the
 * stored fields, the opened secret and the process's broker (struct
 * cs_broker: the one outbound HTTP client, the cache of short-lived
 * material, the endpoints and the counters), and never names a type.
 */
#ifndef CS_PROVIDERS_H
#define CS_PROVIDERS_H

#include "common.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/socket.h>

/** Longest field path named in a validation error ("secret.plain.clientId"). */
#define CS_FIELD_MAX 64
/** Longest human message of a validation error. */
#define CS_PROV_MSG_MAX 256

/** Why validation failed: which field, and a message safe to show (no secret). */
struct cs_prov_error {
  char field[CS_FIELD_MAX];
  char msg[CS_PROV_MSG_MAX];
};

/** What validate produces. */
struct cs_prov_result {
  /**
   * Non-secret fields for the stored record and for output, owned by the
   * caller (cJSON_Delete): exactly the type's public fields from the input
   * (accountID, accountGUID, roleArn, externalID, useAWSRole,
   * useSTSRegionalEndpoint, region, durationSeconds, ...) plus derived ones
   * (azureSPInfo, gcp accountID/projectID, kubeconfig{currentContext,clusters}).
   * Never contains secret bytes. Common fields (_id, type, description,
   * version, created, lastModified, owner) are the service layer's, not here.
   */
  cJSON *meta;
  /** Plaintext to seal, malloc'd, NUL-terminated; caller wipes and frees. */
  char *secret;
  size_t secret_len;
};

/** What a resolve hands out (API.md §8 "format"). */
enum cs_resolve_format {
  CS_FORMAT_DEFAULT = 0, /* the type's material: the stored secret, or STS/IMDS credentials */
  CS_FORMAT_TOKEN,       /* azure, gcp (service account), ibmCloud: a short-lived access token */
  CS_FORMAT_SESSION,     /* aws static keys without a role: STS GetSessionToken */
};

/** Options of a resolve request that providers may use. */
struct cs_resolve_opts {
  int64_t duration_seconds; /* 0 = the credential's or the default */
  const char *region;       /* NULL = the credential's */
  const char *session_name; /* NULL = derived by the caller */
  enum cs_resolve_format format;
  const char *scope;         /* azure token scope; NULL: https://management.azure.com/.default */
  const char *const *scopes; /* gcp token scopes, NULL-terminated; NULL: cloud-platform */
};

struct cs_prov_ctx;
struct cs_net_error;
struct cs_test_result;

struct cs_provider {
  const char *type; /* "aws", "azure", "gcp", "ibmCloud", "kubeconfig" */

  /**
   * Validate @p body (the whole credential object as sent) and produce the
   * metadata and the secret payload.
   * @return CS_ERR_INVALID / CS_ERR_MISSING with @p err filled (field path
   *         and message), CS_ERR_NOMEM. Outputs written only on success.
   */
  enum cs_err (*validate)(const cJSON *body, struct cs_prov_result *out, struct cs_prov_error *err);

  /**
   * The material for @p ctx in ctx->opts->format: the stored material
   * (§4 shapes) for CS_FORMAT_DEFAULT without a role; STS/IMDS credentials
   * ({"type":"aws","AccessKeyId","SecretAccessKey","SessionToken"?,
   * "Expiration"?}); or a token (azure {"type","accessToken","tokenType",
   * "expiresOn","scope"}, gcp {"type","accessToken","tokenType",
   * "expiresAt","scopes"}, ibmCloud {"type","accessToken","tokenType",
   * "expiresAt"}), cached in ctx->broker. The core adds "version". Caller
   * frees *out with cs_json_wipe_delete().
   * @return CS_ERR_UPSTREAM (err: upstream code and message), CS_ERR_INVALID
   *         (err: field and message, e.g. a format the type has not, a bad
   *         scope), CS_ERR_CRYPTO (payload no longer parses), CS_ERR_UNAVAILABLE
   *         (network needed and ctx->broker NULL), CS_ERR_INTERNAL,
   *         CS_ERR_NOMEM. *out written only on success.
   */
  enum cs_err (*resolve)(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err);

  /**
   * Prove the credential works (never cached). Upstream refusals and
   * transport failures are results (ok false, code, message), not errors.
   * @return CS_OK with @p out filled; CS_ERR_CRYPTO; CS_ERR_UNAVAILABLE
   *         (ctx->broker NULL); CS_ERR_NOMEM.
   */
  enum cs_err (*test)(const struct cs_prov_ctx *ctx, struct cs_test_result *out);

  /** Would resolve(ctx) hand out short-lived material only (a "token" usage's rule)? */
  bool (*short_lived)(const struct cs_prov_ctx *ctx);
};

/** @return the provider for @p type, or NULL if the type is unknown. */
const struct cs_provider *cs_provider_find(const char *type);

/** NULL-terminated list of every provider, in a stable order. */
extern const struct cs_provider *const cs_providers[];

/** Wipe and free the secret of @p r and delete its meta. NULL ok. */
void cs_prov_result_free(struct cs_prov_result *r);

/**
 * Parse a kubeconfig YAML document (libyaml) and describe it.
 * Fills *meta with {"currentContext": "...", "clusters": [{"name","server"}]}.
 *
 * What is accepted is what lets kubectl connect without running a program,
 * reading a file on the consumer's machine, or sending the credentials
 * anywhere but the cluster:
 * - no YAML merge keys (<< as a key in any quoting, or a plain << anywhere),
 *   anchors, aliases or tags (none at all, core tags such as !!str included);
 * - only the fields of client-go's clientcmd/api/v1 that are known to be
 *   safe (an allowlist: unknown fields are refused): users may hold token,
 *   username/password, client-certificate-data/client-key-data,
 *   as/as-uid/as-groups/as-user-extra and extensions; `exec` and
 *   `auth-provider` are refused (the message says GKE/EKS-style users need
 *   an external binary credstore cannot run), and so are tokenFile,
 *   client-certificate and client-key (local paths); clusters may hold
 *   server, certificate-authority-data, tls-server-name,
 *   insecure-skip-tls-verify, disable-compression and extensions, but not
 *   certificate-authority (a path) or proxy-url;
 * - every cluster's server is an https:// URL, or http:// to a loopback host
 *   (127.0.0.0/8, [::1], localhost), without user info;
 *   insecure-skip-tls-verify other than false only on a loopback server.
 *
 * Messages name the place in the document ("users[0].user.exec") and the
 * rule, never a value; err->field is always "secret.plain".
 * @return CS_ERR_MISSING when @p yaml is NULL or empty; CS_ERR_INVALID with
 *         @p err filled when the YAML is malformed or breaks a rule above,
 *         has no clusters/users/contexts, or current-context is missing or
 *         does not resolve to a context whose cluster and user exist;
 *         CS_ERR_NOMEM. *meta is written only on success.
 */
enum cs_err cs_kubeconfig_describe(const char *yaml, size_t len, cJSON **meta,
                                   struct cs_prov_error *err) CS_WUR;

/* ------------------------------------------------------------- HTTP client */

/*
 * One libcurl client for every outbound call (providers/http_client.c):
 * http and https only, no redirects, TLS verified against the system CAs
 * plus an optional extra CA file, bounded response bodies, header lines
 * wiped. Where a call may connect is checked on the address libcurl is
 * about to connect to, so DNS rebinding and every spelling of an address
 * (decimal, octal, IPv4-mapped, names) are judged by where the connection
 * really goes: token and STS endpoints take plain http only to loopback;
 * instance metadata only link-local or loopback; webhooks follow the
 * webhook policy (below) and never use a proxy.
 */

/** Longest target key "scheme://host:port" (host names are at most 253). */
#define CS_HTTP_TARGET_MAX 280

/** Set once for the whole process. */
struct cs_http_client_config {
  /** --outbound-ca-file: PEM certificates trusted in addition to the
   *  system's, for every call (webhooks included). NULL or "": none. */
  const char *extra_ca_file;
  long timeout_ms; /* per call unless the call says; 0 = 5000 */
};

/** Immutable once created; shared by every thread. */
struct cs_http_client;

/**
 * Create the client. With an extra CA file, the system bundle (libcurl's
 * default CAINFO) and the file's certificates are joined into one private
 * in-memory bundle (CURLOPT_CAINFO_BLOB replaces the default bundle, so
 * both must be in it). Free with cs_http_client_free().
 * @return CS_ERR_INVALID (the CA file is unreadable, over 1 MiB, or not PEM
 *         certificates: @p err says which), CS_ERR_NOMEM, CS_ERR_INTERNAL.
 */
enum cs_err cs_http_client_create(const struct cs_http_client_config *cfg,
                                  struct cs_http_client **out, char *err, size_t errlen) CS_WUR;
/** Free a client no call is using any more. NULL ok. */
void cs_http_client_free(struct cs_http_client *c);

/**
 * Which hosts and addresses webhooks may reach: built-in denied ranges
 * (link-local 169.254.0.0/16 and fe80::/10, cloud metadata addresses,
 * unspecified, multicast, broadcast and reserved), plus the operator's
 * --webhook-allow and --webhook-deny lists of CIDRs and host names.
 * Precedence: a host-name entry decides first (deny over allow); otherwise
 * the most specific matching CIDR decides, and at equal prefix length an
 * operator deny beats an operator allow, which beats a built-in deny;
 * nothing matching means allowed (loopback and private ranges included).
 */
struct cs_http_policy;

/**
 * Build a policy from comma-separated @p allow and @p deny lists (NULL or
 * empty: none). Items are CIDRs ("10.0.0.0/8", "fd00::/8"), single
 * addresses ("169.254.169.254"), host names ("hooks.example.com") or
 * wildcards ("*.example.com": subdomains, not the name itself). Caller
 * frees *out with cs_http_policy_free().
 * @return CS_ERR_INVALID with a message naming the bad item in @p err,
 *         CS_ERR_NOMEM.
 */
enum cs_err cs_http_policy_create(const char *allow, const char *deny, struct cs_http_policy **out,
                                  char *err, size_t errlen) CS_WUR;
/** Free a policy. NULL ok. */
void cs_http_policy_free(struct cs_http_policy *p);

/**
 * Check @p url without resolving anything: an http or https URL of at most
 * 2048 printable ASCII characters with a host, no user name or password,
 * and, when @p p is given, a host that is not a denied literal address (in
 * any spelling libc or libcurl accepts) nor a denied name. On success the
 * target key ("http://host:port", host lower-cased, default port filled
 * in) goes to @p target (NULL ok), the unit of per-target limits.
 * @return CS_ERR_INVALID (not such a URL, or userinfo) or CS_ERR_FORBIDDEN
 *         (the policy refuses the host), with a static message in *why.
 */
enum cs_err cs_http_check_url(const struct cs_http_policy *p, const char *url,
                              char target[CS_HTTP_TARGET_MAX], const char **why) CS_WUR;

/**
 * May a connection for URL host @p host (as cs_http_check_url sees it)
 * go to @p sa (AF_INET or AF_INET6)? What the client asks of every address
 * it is about to connect to.
 */
bool cs_http_policy_allows_addr(const struct cs_http_policy *p, const char *host,
                                const struct sockaddr *sa);

/** One webhook POST. Strings are borrowed for the call that takes it. */
struct cs_http_post {
  const char *url;
  const char *const *headers; /* NULL-terminated "Name: value" lines (at most 32); NULL ok */
  const char *body;           /* application/json */
  size_t len;
  long timeout_ms; /* connect and whole transfer */
};

/** How a POST ended. */
struct cs_http_result {
  enum cs_err e; /* CS_OK: an HTTP answer in status; CS_ERR_FORBIDDEN: every
                    address was refused by the policy; CS_ERR_UPSTREAM: transport */
  long status;
  char error[256]; /* what went wrong, no secrets; "" on CS_OK */
};

/**
 * POST JSON to the user's own @p url and wait for the answer, through any
 * proxy the environment names (credential-process; system trust only).
 * The response body goes to @p resp (bounded by its max) or is discarded
 * when @p resp is NULL.
 * @return CS_ERR_UPSTREAM (transport failure, timeout, response too large),
 *         CS_ERR_INVALID (url, or more than 32 headers), CS_ERR_NOMEM.
 *         *status is written on CS_OK.
 */
enum cs_err cs_http_post_json(const char *url, const char *const *headers, const char *body,
                              size_t len, long timeout_ms, long *status,
                              struct cs_buf *resp) CS_WUR;

/**
 * Many POSTs in flight at once, driven from one thread with libcurl's multi
 * interface (webhook delivery). Every transfer obeys the batch's policy,
 * never uses a proxy, and discards response bodies.
 */
struct cs_http_batch;

/**
 * Create a batch whose transfers use @p client's trust (NULL: the system's)
 * and enforce @p policy. Both are borrowed and must outlive the batch.
 * Free with cs_http_batch_free().
 * @return CS_ERR_NOMEM, CS_ERR_INTERNAL (libcurl would not start).
 */
enum cs_err cs_http_batch_open(const struct cs_http_client *client,
                               const struct cs_http_policy *policy,
                               struct cs_http_batch **out) CS_WUR;

/**
 * Start @p req (copied); @p tag comes back to the done callback of
 * cs_http_batch_run() when it ends.
 * @return CS_ERR_INVALID or CS_ERR_FORBIDDEN as cs_http_check_url (with
 *         *why), CS_ERR_NOMEM, CS_ERR_INTERNAL. Nothing was started then.
 */
enum cs_err cs_http_batch_add(struct cs_http_batch *b, const struct cs_http_post *req, void *tag,
                              const char **why) CS_WUR;

/** Called once per finished transfer, on the thread running the batch. */
typedef void (*cs_http_done_fn)(void *tag, const struct cs_http_result *r, void *arg);

/**
 * Move every transfer on, waiting up to @p wait_ms for activity, a finished
 * transfer or cs_http_batch_wakeup(); then report finished transfers to
 * @p done. @return CS_ERR_INTERNAL (libcurl failed; nothing is lost).
 */
enum cs_err cs_http_batch_run(struct cs_http_batch *b, long wait_ms, cs_http_done_fn done,
                              void *arg) CS_WUR;

/** Make a waiting cs_http_batch_run() return now. Safe from any thread. */
void cs_http_batch_wakeup(struct cs_http_batch *b);

/** Abort what is in flight (done is not called) and free. NULL ok. */
void cs_http_batch_free(struct cs_http_batch *b);

/* ---------------------------------------------------------------- broker */

/** Where the clouds live; every URL is optional (NULL: the public default). */
struct cs_broker_config {
  const char *sts_endpoint;  /* --sts-endpoint: replaces the URL, never the signing region */
  const char *imds_endpoint; /* --imds-endpoint; default http://169.254.169.254 */
  const char
      *azure_authority_host; /* --azure-authority-host; default https://login.microsoftonline.com */
  const char *gcp_token_url; /* --gcp-token-url; default https://oauth2.googleapis.com/token */
  const char *ibm_iam_endpoint; /* --ibm-iam-endpoint; default https://iam.cloud.ibm.com */
  const char *outbound_ca_file; /* --outbound-ca-file (see cs_http_client_config) */
  long timeout_ms;              /* per HTTP call; 0 = 5000 */
  size_t cache_max_entries;     /* 0 = 10000 */
};

/**
 * One per process: the outbound client, the cache of short-lived material
 * (STS and IMDS credentials, Entra/Google/IBM tokens) with single-flight,
 * the endpoints and the counters. Thread-safe.
 */
struct cs_broker;

/**
 * Create the broker. Endpoints must be http(s) URLs of at most 400
 * characters without user info; plain http only to a loopback host (IMDS:
 * any host; its connections must reach link-local or loopback addresses).
 * @return CS_ERR_INVALID (@p err names the option and the rule),
 *         CS_ERR_NOMEM, CS_ERR_INTERNAL. Free with cs_broker_free().
 */
enum cs_err cs_broker_create(const struct cs_broker_config *cfg, struct cs_broker **out, char *err,
                             size_t errlen) CS_WUR;
/** Wipe every cached secret and free. No call may be running. NULL ok. */
void cs_broker_free(struct cs_broker *b);

/** The broker's client, for the webhook batch (cs_http_batch_open). */
const struct cs_http_client *cs_broker_http(const struct cs_broker *b);

/** Drop every cached entry of @p cred_id (after an edit or delete). */
void cs_broker_invalidate(struct cs_broker *b, const char *cred_id);

/** What the counters are kept per: one upstream each. */
enum cs_broker_kind {
  CS_KIND_STS,
  CS_KIND_IMDS,
  CS_KIND_AZURE,
  CS_KIND_GCP,
  CS_KIND_IBM,
  CS_KIND_KUBE,
  CS_KIND__COUNT
};

/** @return "sts", "imds", "azure", "gcp", "ibm" or "kube" (the /metrics label). */
const char *cs_broker_kind_name(enum cs_broker_kind k);

/** Counters of one kind, for /metrics. */
struct cs_broker_kind_stats {
  uint64_t calls;        /* HTTP requests sent upstream (retries included) */
  uint64_t cache_hits;   /* resolves answered from the cache or a shared fetch */
  uint64_t cache_misses; /* resolves that fetched (cold, or renewing) */
  uint64_t errors;       /* upstream or transport failures */
  uint64_t fallbacks;    /* renewals that failed while the cached material was still served */
};

struct cs_broker_stats {
  struct cs_broker_kind_stats kind[CS_KIND__COUNT];
};

/** Snapshot the counters. NULL @p b gives zeros. */
void cs_broker_get_stats(struct cs_broker *b, struct cs_broker_stats *out);

/* --------------------------------------------- network resolves and tests */

/** Everything a resolve or a test reads; all borrowed for the call. */
struct cs_prov_ctx {
  struct cs_broker *broker; /* outbound client, caches, endpoints; NULL: CS_ERR_UNAVAILABLE */
  const char *cred_id;      /* cache key part, and what an edit invalidates */
  uint64_t version;         /* cache key part */
  const cJSON *meta;        /* the stored non-secret fields (cs_prov_result.meta) */
  const char *secret;       /* the opened payload, NUL-terminated as cs_open() leaves it */
  size_t secret_len;
  const struct cs_resolve_opts *opts; /* NULL: all defaults */
};

/** Longest field path, code and message of a network failure. */
struct cs_net_error {
  char field[CS_FIELD_MAX]; /* CS_ERR_INVALID: the request or stored field at fault; or "" */
  char code[64];            /* upstream's code ("AccessDenied", "invalid_client", "BXNIM0415E"),
                               or ours ("Unreachable", "TLSVerificationFailed", "InvalidRequest") */
  char message[256];        /* upstream's message or ours; never a secret */
};

/** The answer of "Test connection" (API.md §8). */
struct cs_test_result {
  bool ok;
  int64_t latency_ms; /* wall time of the whole test */
  char code[64];      /* !ok: upstream's error code, or ours */
  char message[512];  /* what was proven, or what failed; never a secret */
  char identity[512]; /* who the credential is ("arn:aws:...", client id, email); "" */
};

/**
 * Check a resolve's options against the stored fields @p meta: options may
 * narrow what the credential allows, never widen it. durationSeconds at
 * most the stored one (CS_AWS_DEFAULT_DURATION when none is stored), a
 * sessionName only if it is @p session_name (the one the caller derives),
 * a region only if it is an AWS region name.
 * @return CS_ERR_INVALID with @p err's field and message.
 */
enum cs_err cs_resolve_opts_check(const cJSON *meta, const struct cs_resolve_opts *opts,
                                  const char *session_name, struct cs_net_error *err) CS_WUR;

/* ------------------------------------------------------------------- AWS */

/** STS DurationSeconds when the credential stores none. */
#define CS_AWS_DEFAULT_DURATION 3600
/**
 * Cached AWS credentials are renewed before they are handed out once fewer
 * than this many seconds remain (API.md §4 "Refresh windows": botocore and
 * the AWS CLI refresh under 15 minutes, the JavaScript SDK under 5). STS
 * durations of at most this long cannot stay out of the window: those are
 * renewed once fewer than CS_AWS_SHORT_MARGIN seconds remain, which keeps
 * them out of botocore's mandatory 10-minute refresh.
 */
#define CS_AWS_REFRESH_WINDOW 960
#define CS_AWS_SHORT_MARGIN 660

/**
 * @return true if @p s is an AWS region name (us-east-1, us-gov-west-1, ...):
 *         2-4 lowercase letters, "-word" groups, "-" and 1-2 digits, at most
 *         32 characters. The one check for stored and requested regions.
 */
bool cs_aws_region_valid(const char *s);

/** One resolve of an aws credential. Strings are borrowed for the call. */
struct cs_aws_request {
  const char *cred_id;       /* cache key part */
  uint64_t version;          /* cache key part: an edit invalidates */
  const char *access_key_id; /* stored keys; NULL with use_instance_role */
  const char *secret_key;    /* stored secret; NULL with use_instance_role */
  bool use_instance_role;    /* base identity from IMDSv2 */
  const char *role_arn;      /* NULL: no AssumeRole */
  const char *external_id;   /* NULL: none */
  const char *session_name;  /* RoleSessionName; NULL: "credstore" */
  int64_t duration_seconds;  /* 0: CS_AWS_DEFAULT_DURATION */
  const char *region;        /* signing region with regional endpoint */
  bool regional_endpoint;    /* sts.<region>.amazonaws.com, signed for region */
  bool session;              /* GetSessionToken (static keys, no role) */
};

/** Temporary (or static) credentials. Wipe with cs_aws_creds_wipe(). */
struct cs_aws_creds {
  char access_key_id[129];
  char secret_access_key[129];
  char session_token[2048]; /* "" for static keys */
  int64_t expiration;       /* 0 for static keys */
};

/** Wipe @p c. */
void cs_aws_creds_wipe(struct cs_aws_creds *c);

/**
 * Resolve @p req through @p b: base identity (stored keys, or the instance
 * role through IMDSv2), then AssumeRole when role_arn is set, or
 * GetSessionToken with session; cached by (cred_id, version, role,
 * external id, session name, duration, region) and renewed inside the
 * refresh window above; concurrent resolves of a cold or due key make one
 * upstream call. Static keys without role or session come back as stored.
 * @return CS_ERR_UPSTREAM (err says what STS/IMDS answered), CS_ERR_INVALID
 *         (err.field names the bad parameter), CS_ERR_NOMEM. *out written
 *         only on success.
 */
enum cs_err cs_broker_aws(struct cs_broker *b, const struct cs_aws_request *req,
                          struct cs_aws_creds *out, struct cs_net_error *err) CS_WUR;

#endif /* CS_PROVIDERS_H */
