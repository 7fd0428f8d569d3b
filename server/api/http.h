/**
 * @file http.h
 * @brief Inside server/api/: the request/response model handlers see, the
 *        static route table, the helpers that turn requests into C values
 *        and results into responses, the handlers and the metrics.
 */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include "api.h"
#include "netaddr.h"

#include <microhttpd.h>
#include <stdatomic.h>

#define CS_BODY_MAX (1024u * 1024u)        /* API.md §6: bodies over 1 MiB get 413 */
#define CS_PUBLIC_BODY_MAX 4096u           /* bodies of routes without authentication (login) */
#define CS_DRAIN_MAX (16u * 1024u * 1024u) /* refused bodies read and dropped... */
#define CS_UNAUTH_DRAIN_MAX (64u * 1024u)  /* ...or this, for unauthenticated senders */

/** The running api (api.h), one per serve process. */
struct cs_api {
  struct cs_api_opts opts;
  struct cs_core *core;         /* borrowed */
  struct cs_ratelimit *rl;      /* failed access-key attempts per client */
  struct cs_cidr_list *trusted; /* --trusted-proxies, or NULL */
  struct MHD_Daemon *daemon;
  char *tls_cert_pem, *tls_key_pem; /* handed to GnuTLS; wiped when stopped */
  atomic_bool ready;
  atomic_int in_flight;
};

/* ------------------------------------------------------------------- roles */

#define CS_R(role) (1u << (role))
#define CS_PUBLIC 0u /* no authentication */
#define CS_R_ADMIN CS_R(CS_ROLE_ADMIN)
#define CS_R_WRITE (CS_R(CS_ROLE_ADMIN) | CS_R(CS_ROLE_OPERATOR))
#define CS_R_READ (CS_R_WRITE | CS_R(CS_ROLE_AUDITOR))
#define CS_R_AUDIT (CS_R(CS_ROLE_ADMIN) | CS_R(CS_ROLE_AUDITOR))
#define CS_R_USE (CS_R_WRITE | CS_R(CS_ROLE_CI))
#define CS_R_ANY (CS_R_READ | CS_R(CS_ROLE_CI))

/* -------------------------------------------------------- request, response */

enum cs_method { CS_GET, CS_POST, CS_PUT, CS_DELETE, CS_METHOD_OTHER };

#define CS_MAX_PARAMS 3
#define CS_MAX_HEADERS 6
#define CS_ERR_MSG_MAX 640 /* a message with a whole name (CS_NAME_MAX bytes) in it */

/** What a handler produces. */
struct cs_resp {
  int status;
  char *body; /* malloc'd; handed to MHD */
  size_t len;
  const char *content_type;
  struct {
    const char *name;
    char value[96];
  } headers[CS_MAX_HEADERS];
  int nheaders;
  char err_msg[CS_ERR_MSG_MAX]; /* overrides the registry's message */
  cJSON *err_extra;             /* members merged into the error body; owned */
  bool suspended;               /* the handler parked the request (long-poll) */
  bool secret;                  /* the body holds secrets: wiped when freed */
};

struct cs_route;

/** One request; lives from MHD's first callback until completion. */
struct cs_req {
  struct cs_api *api;
  struct MHD_Connection *conn;
  const struct cs_route *route;
  enum cs_method method;
  const char *params[CS_MAX_PARAMS]; /* path parameters, into path_buf */
  char path_buf[2048]; /* the raw path (conn.h CS_RAW_PATH_MAX): a whole encoded name fits */
  struct cs_buf body;
  enum cs_err early_err; /* refusal decided from the headers, before the body */
  struct cs_resp early;  /* its message and headers (no body) */
  uint64_t declared;     /* Content-Length; UINT64_MAX when chunked */
  size_t dropped;        /* body bytes seen, for draining refused bodies */
  bool authenticated;
  struct cs_principal who;
  char rid[24];
  int64_t t0_us;
  int status;                   /* status sent, for the access log */
  struct cs_addr client;        /* the peer, or its X-Forwarded-For client (:: if unknown) */
  char remote[CS_ADDR_STR_MAX]; /* client, as text: access log, audit, rate limiting */
  char allow[40];               /* methods the matched path allows, for 405 */
  int64_t wait_deadline_ms;     /* long-poll: when to answer even without news */
  uint64_t wait_cursor;         /* long-poll: the feed was read up to here (out of view) */
  bool close;                   /* answer with Connection: close */
  bool raw_nul;                 /* the request line held a NUL byte */
  void *track;                  /* the connection's tracker (conn.h) */
  struct cs_core_job *job;      /* a write it awaits (cs_req_await); freed at completion */
};

/**
 * A handler: parse the request into a C struct, call the core, render the
 * result into @p resp. A non-CS_OK return becomes the error body
 * {"err","code"} (plus resp->err_msg / err_extra) rendered by response.c.
 */
typedef enum cs_err (*cs_handler)(struct cs_req *req, struct cs_resp *resp);

/** Route flags. */
#define CS_ROUTE_UNSCOPED 0x1u /* answers about every credential: a key with a scope gets 403 */
#define CS_ROUTE_PRISMA 0x2u   /* the /prisma mount: errors are Prisma's {"err"} */
#define CS_ROUTE_REDLOCK 0x6u  /* ...and carry x-redlock-status (CSPM login and extend) */

struct cs_route {
  enum cs_method method;
  const char *pattern; /* "/api/v1/credentials/{}/usages/{}" */
  cs_handler fn;
  unsigned roles;   /* CS_PUBLIC or a CS_R_* mask: enforced in one place */
  const char *name; /* label for logs and metrics */
  unsigned flags;   /* CS_ROUTE_*: enforced with the roles, in cs_auth_request */
};

extern const struct cs_route cs_routes[];
extern const size_t cs_routes_count;

/**
 * Find the route for @p method and @p path, filling req->params.
 * @return CS_ERR_NO_ROUTE (no pattern matches), CS_ERR_METHOD (a pattern
 *         matches but not for this method).
 */
enum cs_err cs_route_match(struct cs_req *req, const char *path) CS_WUR;

/* ------------------------------------------------------------- dispatch */

/** MHD_OPTION_URI_LOG_CALLBACK: marks a request line that held a NUL byte. */
void *cs_dispatch_uri_check(void *cls, const char *uri, struct MHD_Connection *c);
/** MHD's access handler (cls: the struct cs_api). */
enum MHD_Result cs_dispatch_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls);
/** MHD_OPTION_NOTIFY_COMPLETED: access log, metrics, free (cls: the struct cs_api). */
void cs_dispatch_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe);
/** Seed the request-id prefix (once, before serving). */
void cs_dispatch_init(void);

/* ------------------------------------------------------ request helpers */

/**
 * Percent-decode @p s in place, once, as path parameters and query values
 * are; '+' stays a plus. "%00" becomes the byte 0xFF: decoded to NUL it
 * would end the C string early ("victim%00junk" acting on "victim"), and
 * left encoded it would name a credential called "victim%00junk"; 0xFF is
 * never valid UTF-8, so every name, id and number refuses it. A '%' not
 * followed by two hex digits stays as it is.
 * @return the new length.
 */
size_t cs_http_unescape(char *s);

/** MHD_OPTION_UNESCAPE_CALLBACK: cs_http_unescape(). */
size_t cs_http_unescape_cb(void *cls, struct MHD_Connection *c, char *s);

/** Where query parameters come from: a request's (cs_req_params) or a test's. */
struct cs_params {
  const char *(*get)(void *arg, const char *name); /* unescaped value, or NULL */
  void *arg;
  /* Every value of @p name in order, at most @p max into @p out; how many
   * there were (may exceed max). NULL: only get's one value. */
  size_t (*get_all)(void *arg, const char *name, const char **out, size_t max);
};

/** The query parameters of @p req. */
struct cs_params cs_req_params(struct cs_req *req);
/** @return the query parameter @p name (unescaped) or NULL. */
const char *cs_req_query(struct cs_req *req, const char *name);
/** @return the request header @p name or NULL. */
const char *cs_req_header(struct cs_req *req, const char *name);
/**
 * Parse the body as a JSON object (depth-capped).
 * @return CS_ERR_BAD_JSON (also for a non-object), CS_ERR_TOO_DEEP.
 */
enum cs_err cs_req_json(struct cs_req *req, cJSON **out) CS_WUR;

/**
 * The credential id of the path (first parameter).
 * @return CS_ERR_BAD_ID when malformed, CS_ERR_NOT_FOUND outside the
 *         caller's scope (a scoped key sees nothing else).
 */
enum cs_err cs_req_cred_id(struct cs_req *req, struct cs_resp *resp, const char **out) CS_WUR;

/** The actor of a request, for the audit trail (borrows from @p req). */
struct cs_actor cs_actor_of(const struct cs_req *req);

/** Register the write waker with the core: parked writes suspend their connection. */
void cs_req_writes_init(struct cs_core *core);
/**
 * After a core *_start call gave @p job: hold it in @p req and, when it is
 * parked, suspend the request (resp->suspended) until its write is done;
 * MHD then calls the handler again, which finds req->job and finishes.
 * @return true when parked (the handler returns CS_OK at once).
 */
bool cs_req_await(struct cs_req *req, struct cs_resp *resp, struct cs_core_job *job);
/** Free the job @p req awaited (after its *_finish call). */
void cs_req_job_done(struct cs_req *req);

/** If-Match: 3 or "3" (an ETag-style quoted version). @return CS_ERR_INVALID. */
enum cs_err cs_parse_if_match(const char *v, uint64_t *out) CS_WUR;

/* ----------------------------------------------------- response helpers */

/** Like cs_resp_json for secret material: the tree and later the body are wiped. */
enum cs_err cs_resp_json_secret(struct cs_resp *resp, int status, cJSON *j) CS_WUR;
/** Render @p j as the body with @p status; deletes @p j. @return CS_ERR_NOMEM. */
enum cs_err cs_resp_json(struct cs_resp *resp, int status, cJSON *j) CS_WUR;
/** An empty response (204). @return CS_ERR_NOMEM. */
enum cs_err cs_resp_empty(struct cs_resp *resp, int status) CS_WUR;
/** Add a response header (value copied, truncated to 95 chars); past CS_MAX_HEADERS dropped. */
void cs_resp_header(struct cs_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Set a specific error message and return @p e, for `return cs_fail(...)`. */
enum cs_err cs_fail(struct cs_resp *resp, enum cs_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** cs_fail() for a fault of one field: the error body also says "field": @p field. */
enum cs_err cs_fail_field(struct cs_resp *resp, enum cs_err e, const char *field, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
/**
 * Render error @p e into @p resp: {"err","code"} plus resp->err_extra's
 * members, the one place an error body is made; takes err_extra.
 * @return CS_ERR_NOMEM (resp unchanged but err_extra freed).
 */
enum cs_err cs_resp_error(enum cs_err e, struct cs_resp *resp) CS_WUR;

/* -------------------------------------------------- query-string parsers */

/* One parser per request type, over struct cs_params so that fuzz_query
 * runs them on split query strings. Each refusal is a 400 (invalid_query)
 * with a message in @p resp. */

#define CS_LIST_LIMIT_MAX 500
#define CS_LIST_OFFSET_MAX 1000000000ULL

/**
 * GET /credentials: offset, limit, type, search, sort, reverse, ids into
 * @p q (scope untouched). ids: several ids= values are whole names; a single
 * one is split on commas (so a name with a comma is asked for alone as
 * "ids=a,b&ids="; empty values are ignored, and ids with only empty values
 * filters nothing). On success q->ids is a new array
 * the caller frees with cJSON_Delete (NULL when no ids were given).
 */
enum cs_err cs_parse_cred_query(const struct cs_params *p, struct cs_cred_query *q,
                                struct cs_resp *resp) CS_WUR;

/** A feed read: since, limit (audit) or wait (events), credential. */
struct cs_feed_query {
  uint64_t since;
  uint64_t limit;   /* audit: 1..CS_AUDIT_LIST_MAX (default 100) */
  uint64_t wait;    /* events: seconds, 0..CS_EVENTS_WAIT_MAX */
  const char *cred; /* a valid credential id, or NULL */
};

/** GET /audit: since, limit, credential. */
enum cs_err cs_parse_audit_query(const struct cs_params *p, struct cs_feed_query *q,
                                 struct cs_resp *resp) CS_WUR;
/** GET /events: since, wait, credential (which must be in @p scope). */
enum cs_err cs_parse_events_query(const struct cs_params *p, const cJSON *scope,
                                  struct cs_feed_query *q, struct cs_resp *resp) CS_WUR;

/** GET /deliveries: state (pending, dead, all), offset, limit into @p q (scope untouched). */
enum cs_err cs_parse_deliveries_query(const struct cs_params *p, struct cs_delivery_query *q,
                                      struct cs_resp *resp) CS_WUR;

/* ------------------------------------------------------------- handlers */

/**
 * POST /credentials (native and /prisma): the body's _id, its scope, then
 * the upsert. Native answers the object (201/200); @p prisma answers 200
 * with an empty body and skips updates that change nothing.
 */
enum cs_err cs_creds_upsert_request(struct cs_req *req, struct cs_resp *resp, bool prisma) CS_WUR;
/** DELETE /credentials/{id} (native and /prisma): answers @p status with no body. */
enum cs_err cs_creds_delete_request(struct cs_req *req, struct cs_resp *resp, int status) CS_WUR;

/**
 * Render error @p e the /prisma way: {"err"} only (Prisma's clients read
 * nothing else) and, with @p redlock, the header x-redlock-status that the
 * CSPM clients parse. Takes err_extra. @return CS_ERR_NOMEM.
 */
enum cs_err cs_resp_error_prisma(enum cs_err e, struct cs_resp *resp, bool redlock) CS_WUR;

enum cs_err cs_h_healthz(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_readyz(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_version(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_login(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_extend(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_keys_create(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_keys_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_keys_delete(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_creds_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_creds_get(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_creds_upsert(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_creds_update(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_creds_delete(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_creds_test(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_usages_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_usages_create(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_usages_delete(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_resolve(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_events(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_audit(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_deliveries_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_delivery_retry(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_metrics(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_aws_container(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_authenticate(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_renew(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_creds_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_creds_upsert(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_creds_delete(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_usages_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_login(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_prisma_extend(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_ui_redirect(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_ui_index(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_ui_asset(struct cs_req *req, struct cs_resp *resp);

/* ------------------------------------------------------------ console */

/** One file of server/api/ui/, compiled in (ui_files.c, made by embed_ui.cmake). */
struct cs_ui_file {
  const char *name; /* "app.js" */
  const unsigned char *data;
  size_t len;
};

extern const struct cs_ui_file cs_ui_files[];
extern const size_t cs_ui_files_count;
/** Hash of every UI file: assets are served under /ui/assets/<cs_ui_build>/. */
extern const char cs_ui_build[];

/** Register the long-poll waker with the core (h_events.c). */
void cs_h_events_init(struct cs_core *core);

/* --------------------------------------------------------------- metrics */

/** Name the routes counted by slot (the route table), before serving. */
void cs_metrics_init(const struct cs_route *routes, size_t n);
/** Count one completed request of @p route (NULL: unrouted). */
void cs_metrics_observe(const struct cs_route *route, int status, int64_t us);
/** Count one access-key attempt: "success", "failure" or "rate_limited". */
void cs_metrics_auth(const char *result);
/** Count one connection refused by --max-connections-per-address. */
void cs_metrics_connection_refused(void);
/** Append the request, latency and guard counters in Prometheus text. */
enum cs_err cs_metrics_render(struct cs_buf *b) CS_WUR;

#endif /* CS_HTTP_H */
