/* The HTTP layer's ceiling for tests/bench/run.sh: a bare libmicrohttpd
 * server with the daemon flags and options of server/api/daemon.c, answering
 * every request (any method, any path) with one fixed ~150-byte JSON body.
 *
 * Like credstore it returns MHD_YES on the first access-handler call and
 * queues the response on a later one (DESIGN.md, performance rules), drains
 * request bodies, and makes one MHD_Response per request. What it leaves
 * out is everything credstore does per request: routing, authentication,
 * the store, rendering, metrics, the access log.
 *
 *   cc -O2 -o baseline tests/bench/baseline.c $(pkg-config --cflags --libs libmicrohttpd)
 *   ./baseline [--listen-port PORT] [--threads N]
 *
 * Prints "listening on port N with T threads" on stderr once it accepts,
 * then serves until SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <microhttpd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 150 bytes, shaped like a credential's metadata. */
static const char BODY[] = "{\"_id\":\"bench-aws\",\"type\":\"aws\",\"description\":\"baseline\","
                           "\"accountID\":\"AKIAIOSFODNN7EXAMPLE\",\"version\":1,"
                           "\"created\":\"2024-01-01T00:00:00Z\",\"owner\":\"ak-0\"}";

static int marker; /* *con_cls after the first call */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
  if (!*con_cls) {
    *con_cls = &marker;
    return MHD_YES; /* queue on a later call, as credstore does */
  }
  if (*upload_data_size) {
    *upload_data_size = 0; /* read and drop the body */
    return MHD_YES;
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  (void)cls, (void)conn, (void)toe;
  *con_cls = NULL;
}

int main(int argc, char **argv)
{
  unsigned port = 0, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--listen-port"))
      port = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--threads"))
      threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--listen-port PORT] [--threads N]\n", argv[0]);
      return 2;
    }
  }
  if (!threads) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 1 ? (unsigned)n : 1;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  /* Blocked before MHD starts its threads, so only sigwait() sees them. */
  sigset_t set;
  int sig;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  /* Flags and options as in server/api/daemon.c (listen_start), without TLS. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                   MHD_USE_ITC | MHD_USE_SUSPEND_RESUME;
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned)1024, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "baseline: cannot listen on 127.0.0.1:%u\n", port);
    return 1;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  fprintf(stderr, "listening on port %u with %u threads\n", di ? (unsigned)di->port : 0u, threads);

  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  return 0;
}
