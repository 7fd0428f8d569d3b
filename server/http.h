/**
 * @file http.h
 * @brief The HTTP request/response model handlers see, the static route
 *        table, and the helpers that turn requests into C values and
 *        results into responses. Only server/ includes microhttpd.h.
 */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include "netaddr.h"
#include "server.h"

#include <microhttpd.h>

enum cs_method { CS_GET, CS_POST, CS_PUT, CS_DELETE, CS_METHOD_OTHER };

#define CS_MAX_PARAMS 3
#define CS_MAX_HEADERS 4
#define CS_ERR_MSG_MAX 256
#define CS_PUBLIC_BODY_MAX 4096u /* bodies of routes without authentication (login) */
#define CS_DRAIN_MAX (16u * 1024u * 1024u) /* refused bodies read and dropped... */
#define CS_UNAUTH_DRAIN_MAX (64u * 1024u)  /* ...or this, for unauthenticated senders */

/** Who is calling, once authenticated. */
struct cs_principal {
  char key_id[CS_KEY_ID_MAX + 1];
  enum cs_role role;
  cJSON *scope; /* array of glob strings, or NULL for everything; owned */
  int64_t expires_at;
};

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
  struct cs_app *app;
  struct MHD_Connection *conn;
  const struct cs_route *route;
  enum cs_method method;
  const char *params[CS_MAX_PARAMS]; /* path parameters, into path_buf */
  char path_buf[512];
  struct cs_buf body;
  enum cs_err early_err; /* refusal decided from the headers, before the body */
  struct cs_resp early;  /* its message and headers (no body) */
  uint64_t declared;     /* Content-Length; UINT64_MAX when chunked */
  size_t dropped;        /* body bytes seen, for draining refused bodies */
  bool authenticated;
  struct cs_principal who;
  char rid[24];
  int64_t t0_us;
  int status; /* status sent, for the access log */
  struct cs_addr client;  /* netaddr.h: the peer, or its X-Forwarded-For client (:: if unknown) */
  char remote[CS_ADDR_STR_MAX]; /* client, as text: access log, audit, rate limiting */
  char allow[40]; /* methods the matched path allows, for 405 */
  int64_t wait_deadline_ms; /* long-poll: when to answer even without news */
  uint64_t wait_cursor;     /* long-poll: the feed was read up to here (out of view) */
  bool close;               /* answer with Connection: close */
  bool raw_nul;             /* the request line held a NUL byte */
  void *track;              /* the connection's tracker (conn.h) */
};


/**
 * A handler: parse the request into a C struct, call the service layer,
 * render the result into @p resp. A non-CS_OK return becomes the error
 * body {"err","code"} (plus resp->err_msg / err_extra) rendered by http.c.
 */
typedef enum cs_err (*cs_handler)(struct cs_req *req, struct cs_resp *resp);

/** Route flags. */
#define CS_ROUTE_UNSCOPED 0x1u /* answers about every credential: a key with a scope gets 403 */

struct cs_route {
  enum cs_method method;
  const char *pattern; /* "/api/v1/credentials/{}/usages/{}" */
  cs_handler fn;
  unsigned roles; /* CS_PUBLIC or a CS_R_* mask: enforced in one place */
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

/** Start/stop the HTTP daemon for @p app as app->cfg says. */
enum cs_err cs_http_start(struct cs_app *app, struct MHD_Daemon **out) CS_WUR;
/** Stop accepting, wait for in-flight requests (bounded), stop. */
void cs_http_stop(struct cs_app *app, struct MHD_Daemon *d);

/* ------------------------------------------------------ request helpers */

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

/* ----------------------------------------------------- response helpers */

/** Like cs_resp_json for secret material: the tree and later the body are wiped. */
enum cs_err cs_resp_json_secret(struct cs_resp *resp, int status, cJSON *j) CS_WUR;
/** Render @p j as the body with @p status; deletes @p j. @return CS_ERR_NOMEM. */
enum cs_err cs_resp_json(struct cs_resp *resp, int status, cJSON *j) CS_WUR;
/** An empty response (204). @return CS_ERR_NOMEM. */
enum cs_err cs_resp_empty(struct cs_resp *resp, int status) CS_WUR;
/** Add a response header (value copied, truncated to 95 chars). */
void cs_resp_header(struct cs_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Set a specific error message and return @p e, for `return cs_fail(...)`. */
enum cs_err cs_fail(struct cs_resp *resp, enum cs_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------- handlers */

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
enum cs_err cs_h_usages_list(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_usages_create(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_usages_delete(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_resolve(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_events(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_audit(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_metrics(struct cs_req *req, struct cs_resp *resp);
enum cs_err cs_h_aws_container(struct cs_req *req, struct cs_resp *resp);

/* --------------------------------------------------------------- metrics */

/** Count one completed request of @p route (NULL: unrouted). */
void cs_metrics_observe(const struct cs_route *route, int status, int64_t us);
/** Count one webhook attempt. */
void cs_metrics_webhook(bool ok);
/** Count one access-key attempt: "success", "failure" or "rate_limited". */
void cs_metrics_auth(const char *result);
/** Count one connection refused by --max-connections-per-address. */
void cs_metrics_connection_refused(void);

#endif /* CS_HTTP_H */
