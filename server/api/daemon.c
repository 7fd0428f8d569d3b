/* The daemon: options into a libmicrohttpd daemon (thread pool, TLS, the
 * guards in front of the handlers), start and an orderly stop. */
#include "conn.h"
#include "http.h"
#include "ratelimit.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  CS_LOG(CS_LOG_WARN, "libmicrohttpd: %s", msg);
}

/* The PEM buffers handed to GnuTLS are kept until the daemon stops, then wiped. */
static void tls_free(struct cs_api *api)
{
  cs_free_secret_str(api->tls_key_pem);
  free(api->tls_cert_pem);
  api->tls_key_pem = api->tls_cert_pem = NULL;
}

static enum cs_err read_pem(const char *path, char **out)
{
  struct cs_buf b;
  char chunk[4096];
  size_t n;
  FILE *f = fopen(path, "rb");

  if (!f) {
    fprintf(stderr, "credstore: cannot read %s\n", path);
    return CS_ERR_IO;
  }
  cs_buf_init(&b, 1024 * 1024);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (cs_buf_append(&b, chunk, n)) {
      fprintf(stderr, "credstore: %s is too large for a PEM file\n", path);
      fclose(f);
      cs_memzero(chunk, sizeof chunk);
      cs_buf_wipe(&b);
      return CS_ERR_INVALID;
    }
  }
  fclose(f);
  cs_memzero(chunk, sizeof chunk);
  if (!b.data || !strstr(b.data, "-----BEGIN ")) {
    fprintf(stderr, "credstore: %s is not a PEM file\n", path);
    cs_buf_wipe(&b);
    return CS_ERR_INVALID;
  }
  *out = b.data;
  return CS_OK;
}

/* Parse HOST:PORT or [V6]:PORT into @p ss. */
static enum cs_err parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                                bool *loopback)
{
  char host[256];
  const char *colon, *port;
  struct addrinfo hints = {0}, *ai = NULL;

  if (listen[0] == '[') {
    const char *end = strchr(listen, ']');
    if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof host)
      return CS_ERR_INVALID;
    memcpy(host, listen + 1, (size_t)(end - listen - 1));
    host[end - listen - 1] = '\0';
    port = end + 2;
  } else {
    colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
      return CS_ERR_INVALID;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
  }
  uint64_t p;
  if (cs_parse_u64(port, 65535, &p))
    return CS_ERR_INVALID;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host[0] ? host : NULL, port, &hints, &ai) || !ai)
    return CS_ERR_INVALID;
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *sslen = ai->ai_addrlen;
  freeaddrinfo(ai);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)ss;
    *loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
  } else {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ss;
    *loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
  }
  return CS_OK;
}

/* What stands between clients and the handlers: trusted proxies, the
 * brute-force table, connection tracking. Prints a clear message. */
static enum cs_err guards_start(struct cs_api *api)
{
  const struct cs_api_opts *o = &api->opts;
  int64_t per_address = o->max_conns_per_address;
  enum cs_err e;

  if (!per_address) /* no one address takes every slot, unless there are few */
    per_address = o->max_connections < CS_DEFAULT_CONNS_PER_ADDRESS ? o->max_connections
                                                                    : CS_DEFAULT_CONNS_PER_ADDRESS;
  if (o->trusted_proxies && (e = cs_cidr_list_parse(o->trusted_proxies, &api->trusted))) {
    fprintf(stderr,
            "credstore: --trusted-proxies %s: expected IP addresses or CIDRs "
            "separated by commas (e.g. 10.0.0.0/8,192.0.2.7,fd00::/8)\n",
            o->trusted_proxies);
    return e;
  }
  if ((e = cs_rl_create(CS_RL_CAPACITY, o->auth_max_failures, o->auth_cooloff, &api->rl)) ||
      (e = cs_conn_start(o->conn_timeout, o->max_connections, per_address, api->trusted))) {
    fprintf(stderr, "credstore: cannot set up connection tracking: %s\n", cs_err_message(e));
    cs_rl_destroy(api->rl);
    cs_cidr_list_free(api->trusted);
    api->rl = NULL;
    api->trusted = NULL;
    return e;
  }
  return CS_OK;
}

static void guards_stop(struct cs_api *api)
{
  cs_conn_stop();
  cs_rl_destroy(api->rl);
  cs_cidr_list_free(api->trusted);
  api->rl = NULL;
  api->trusted = NULL;
}

/* Writes wait for their group commit on the calling thread, so the pool
 * size bounds how many changes share one fsync: more threads than cores. */
static unsigned pool_size(const struct cs_api_opts *o)
{
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = CS_DEFAULT_THREADS;
  if (ncpu > CS_DEFAULT_THREADS / 8)
    threads = (unsigned)(ncpu * 8 > 256 ? 256 : ncpu * 8);
  return o->threads ? (unsigned)o->threads : threads;
}

/* The address, and whether it may be served as configured. */
static enum cs_err check_listen(const struct cs_api_opts *o, struct sockaddr_storage *ss)
{
  socklen_t sslen;
  bool loopback;

  if (parse_listen(o->listen, ss, &sslen, &loopback)) {
    fprintf(stderr, "credstore: --listen %s: expected HOST:PORT or [V6ADDR]:PORT\n", o->listen);
    return CS_ERR_INVALID;
  }
  if (!loopback && !o->tls_cert && !o->insecure_http) {
    fprintf(stderr,
            "credstore: refusing to listen on non-loopback %s without TLS; "
            "give --tls-cert/--tls-key, or --insecure-http if a proxy terminates TLS\n",
            o->listen);
    return CS_ERR_INVALID;
  }
  return CS_OK;
}

/* TLS options for MHD from --tls-cert/--tls-key (none without them). */
static enum cs_err tls_options(struct cs_api *api, struct MHD_OptionItem tls[4], unsigned *flags)
{
  const struct cs_api_opts *o = &api->opts;

  tls[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  if (!o->tls_cert && !o->tls_key)
    return CS_OK;
  if (!o->tls_cert || !o->tls_key) {
    fprintf(stderr, "credstore: --tls-cert and --tls-key go together\n");
    return CS_ERR_INVALID;
  }
  if (read_pem(o->tls_cert, &api->tls_cert_pem) || read_pem(o->tls_key, &api->tls_key_pem)) {
    tls_free(api);
    return CS_ERR_INVALID;
  }
  *flags |= MHD_USE_TLS;
  tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, api->tls_cert_pem};
  tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, api->tls_key_pem};
  /* Modern protocol versions only. */
  tls[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                   (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
  tls[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  return CS_OK;
}

static struct MHD_Daemon *daemon_start(struct cs_api *api, unsigned flags,
                                       struct sockaddr_storage *ss, unsigned threads,
                                       struct MHD_OptionItem *tls)
{
  const struct cs_api_opts *o = &api->opts;
  return MHD_start_daemon(
      flags, 0, NULL, NULL, cs_dispatch_request, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_NOTIFY_COMPLETED, cs_dispatch_completed, api, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->conn_timeout,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)1024, MHD_OPTION_NOTIFY_CONNECTION, cs_conn_notify, NULL,
      MHD_OPTION_URI_LOG_CALLBACK, cs_dispatch_uri_check, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
      cs_http_unescape_cb, NULL, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_ARRAY, tls,
      MHD_OPTION_END);
}

static void opts_defaults(struct cs_api_opts *o)
{
  if (!o->listen)
    o->listen = CS_DEFAULT_LISTEN;
  if (!o->max_connections)
    o->max_connections = CS_DEFAULT_MAX_CONNECTIONS;
  if (!o->conn_timeout)
    o->conn_timeout = CS_DEFAULT_CONN_TIMEOUT;
  if (!o->auth_max_failures)
    o->auth_max_failures = CS_DEFAULT_AUTH_MAX_FAILURES;
  if (!o->auth_cooloff)
    o->auth_cooloff = CS_DEFAULT_AUTH_COOLOFF;
}

/* Listen as api->opts say; prints a clear message on failure. */
static enum cs_err listen_start(struct cs_api *api)
{
  struct sockaddr_storage ss;
  struct MHD_OptionItem tls[4];
  unsigned threads = pool_size(&api->opts);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                   MHD_USE_ITC | MHD_USE_SUSPEND_RESUME;

  if (check_listen(&api->opts, &ss))
    return CS_ERR_INVALID;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (tls_options(api, tls, &flags))
    return CS_ERR_INVALID;
  if (guards_start(api)) {
    tls_free(api);
    return CS_ERR_INVALID;
  }
  if (!(api->daemon = daemon_start(api, flags, &ss, threads, tls))) {
    fprintf(stderr,
            "credstore: cannot listen on %s (address in use, not permitted, or a "
            "bad TLS certificate/key)\n",
            api->opts.listen);
    guards_stop(api);
    tls_free(api);
    return CS_ERR_IO;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
  CS_LOG(CS_LOG_INFO, "listening on %s port %u with %u threads%s", api->opts.listen,
         di ? (unsigned)di->port : 0u, threads, api->tls_key_pem ? " (TLS)" : "");
  return CS_OK;
}

enum cs_err cs_api_start(struct cs_core *core, const struct cs_api_opts *opts, struct cs_api **out)
{
  struct cs_api *api = calloc(1, sizeof *api);
  enum cs_err e;

  if (!api)
    return CS_ERR_NOMEM;
  api->opts = *opts;
  opts_defaults(&api->opts);
  api->core = core;
  cs_dispatch_init();
  cs_metrics_init(cs_routes, cs_routes_count);
  cs_h_events_init(core);
  cs_req_writes_init(core);
  /* Ready before the first connection can arrive: the store is open, and a
   * /readyz answered between listening and this store would say 503. */
  atomic_store(&api->ready, true);
  if ((e = listen_start(api))) {
    free(api);
    return e;
  }
  *out = api;
  return CS_OK;
}

void cs_api_stop(struct cs_api *api)
{
  if (!api)
    return;
  /* Long-polls answer first, then in-flight requests finish: every
   * acknowledged change is already committed. */
  atomic_store(&api->ready, false);
  cs_events_stop(api->core);
  MHD_quiesce_daemon(api->daemon);
  /* Let in-flight requests finish, but not forever. */
  for (int i = 0; i < 1000 && atomic_load(&api->in_flight) > 0; i++)
    usleep(10 * 1000);
  MHD_stop_daemon(api->daemon);
  guards_stop(api);
  tls_free(api);
  free(api);
}
