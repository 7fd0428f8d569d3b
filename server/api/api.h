/**
 * @file api.h
 * @brief The HTTP API (server/api/), the only code that includes
 *        microhttpd.h: the daemon, dispatch, request accessors, response
 *        rendering, the route table with its roles column, authentication,
 *        rate limiting, one handler file per resource, and metrics. Calls
 *        the core (server/core/core.h) and nothing above it.
 */
#ifndef CS_API_H
#define CS_API_H

#include "core.h"

#define CS_DEFAULT_LISTEN "127.0.0.1:8200"
#define CS_DEFAULT_THREADS 32 /* at least; 8 per core on bigger machines */
#define CS_DEFAULT_MAX_CONNECTIONS 1024
#define CS_DEFAULT_CONNS_PER_ADDRESS 128 /* or max_connections, if fewer */
#define CS_DEFAULT_CONN_TIMEOUT 30       /* seconds a whole request may take to arrive */
#define CS_DEFAULT_AUTH_MAX_FAILURES 10
#define CS_DEFAULT_AUTH_COOLOFF 60

/** The api's options (the cli fills them from flags and CREDSTORE_*); 0/NULL: defaults. */
struct cs_api_opts {
  const char *listen;   /* HOST:PORT or [V6]:PORT; NULL: CS_DEFAULT_LISTEN */
  const char *tls_cert; /* PEM files; both or neither */
  const char *tls_key;
  bool insecure_http;            /* allow a non-loopback address without TLS */
  int64_t threads;               /* 0: CS_DEFAULT_THREADS, or 8 per core */
  int64_t max_connections;       /* 0: CS_DEFAULT_MAX_CONNECTIONS */
  int64_t conn_timeout;          /* seconds; 0: CS_DEFAULT_CONN_TIMEOUT */
  int64_t max_conns_per_address; /* 0: min(CS_DEFAULT_CONNS_PER_ADDRESS, max_connections) */
  const char *trusted_proxies;   /* CIDR[,CIDR...] whose X-Forwarded-For is honoured */
  int64_t auth_max_failures;     /* failed attempts per address before 429 */
  int64_t auth_cooloff;          /* seconds of 429 after that */
  const char *customer_name;     /* /prisma/login's customerName; NULL: "credstore" */
  const char *prisma_id;         /* /prisma/login's prismaId; NULL: cs_core_store_id() */
};

struct cs_api;

/**
 * Serve @p core (started; borrowed until cs_api_stop) over HTTP as @p opts
 * say. Prints a clear message on stderr when an option or the address is
 * refused. Once this returns CS_OK, /readyz answers ready.
 * @return CS_ERR_INVALID (an option), CS_ERR_IO (cannot listen), CS_ERR_NOMEM.
 */
enum cs_err cs_api_start(struct cs_core *core, const struct cs_api_opts *opts,
                         struct cs_api **out) CS_WUR;

/**
 * Stop serving: /readyz answers not ready, long-polls answer, in-flight
 * requests finish (bounded), the daemon stops. Then the core may stop.
 * NULL ok.
 */
void cs_api_stop(struct cs_api *api);

#endif /* CS_API_H */
