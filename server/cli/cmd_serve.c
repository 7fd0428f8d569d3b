/* `credstore serve`: open the data dir, start the core and the api, serve
 * until SIGTERM/SIGINT, stop in order. */
#include "api.h"
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Key material must never land in a core file. */
static void disable_core_dumps(void)
{
  struct rlimit rl = {0, 0};
  setrlimit(RLIMIT_CORE, &rl);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* --node-id, or hostname:port of --listen (what tells nodes apart when
 * several run on one host). */
static void node_name(const struct cs_config *cfg, char out[CS_NODE_ID_MAX + 1])
{
  const char *listen = cfg->listen ? cfg->listen : CS_DEFAULT_LISTEN;
  const char *port = strrchr(listen, ':');
  char host[CS_NODE_ID_MAX + 1] = "localhost";

  if (cfg->node_id) {
    snprintf(out, CS_NODE_ID_MAX + 1, "%s", cfg->node_id);
    return;
  }
  if (gethostname(host, sizeof host - 1) != 0)
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  /* An ephemeral port (":0") names no node apart: the pid does instead. */
  if (!port || strcmp(port, ":0") == 0)
    snprintf(out, CS_NODE_ID_MAX + 1, "%.*s:0-%ld", CS_NODE_ID_MAX - 24, host, (long)getpid());
  else
    snprintf(out, CS_NODE_ID_MAX + 1, "%.*s:%s", CS_NODE_ID_MAX - 8, host, port + 1);
}

static struct cs_core_opts core_opts(const struct cs_config *cfg)
{
  struct cs_core_opts o = {
      .token_ttl = cfg->token_ttl,
      .prisma_token_ttl = cfg->prisma_token_ttl,
      .webhook_retry_ms = cfg->webhook_retry_ms,
      .webhook_max_age = cfg->webhook_max_age,
      .events_retention = cfg->events_retention,
      .events_max = cfg->events_max,
      .webhook_allow = cfg->webhook_allow,
      .webhook_deny = cfg->webhook_deny,
      .broker = {.sts_endpoint = cfg->sts_endpoint,
                 .imds_endpoint = cfg->imds_endpoint,
                 .azure_authority_host = cfg->azure_authority_host,
                 .gcp_token_url = cfg->gcp_token_url,
                 .ibm_iam_endpoint = cfg->ibm_iam_endpoint,
                 .outbound_ca_file = cfg->outbound_ca_file,
                 .timeout_ms = cfg->outbound_timeout * 1000},
  };
  return o;
}

static struct cs_api_opts api_opts(const struct cs_config *cfg)
{
  struct cs_api_opts o = {
      .listen = cfg->listen,
      .tls_cert = cfg->tls_cert,
      .tls_key = cfg->tls_key,
      .insecure_http = cfg->insecure_http,
      .threads = cfg->threads,
      .max_connections = cfg->max_connections,
      .conn_timeout = cfg->conn_timeout,
      .max_conns_per_address = cfg->max_conns_per_address,
      .trusted_proxies = cfg->trusted_proxies,
      .auth_max_failures = cfg->auth_max_failures,
      .auth_cooloff = cfg->auth_cooloff,
      .customer_name = cfg->customer_name,
      .prisma_id = cfg->prisma_id,
  };
  return o;
}

/* Start the core's workers and the api; prints why not. */
static int start(struct cs_core *core, const struct cs_config *cfg, struct cs_api **api)
{
  struct cs_api_opts ao = api_opts(cfg);
  char err[256];

  if (cs_core_start(core, err, sizeof err)) {
    if (err[0])
      fprintf(stderr, "credstore serve: %s\n", err);
    fprintf(stderr, "credstore serve: cannot start\n");
    return 1;
  }
  if (cs_api_start(core, &ao, api)) {
    fprintf(stderr, "credstore serve: cannot start\n");
    return 1;
  }
  return 0;
}

int cs_cmd_serve(const struct cs_config *cfg)
{
  struct cs_core_opts co = core_opts(cfg);
  char node[CS_NODE_ID_MAX + 1];
  struct cs_data data = {0};
  struct cs_core core;
  struct cs_api *api = NULL;
  sigset_t set;
  int sig = 0, lock_fd = -1, rc = 1;

  if (!cfg->store) {
    fprintf(stderr, "credstore serve: --data DIR or --store URL is required\n");
    return 2;
  }
  disable_core_dumps();
  /* Block the stop signals before any thread starts so only sigwait sees them. */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* Held shared while serving: rotate-key refuses to run meanwhile. */
  if (cs_data_lock(cfg->data_dir, false, &lock_fd) || cs_data_open(cfg, 0, &data)) {
    cs_data_unlock(lock_fd);
    return 1;
  }
  /* Named in logs, metrics and audit entries in cluster mode, or when asked. */
  node_name(cfg, node);
  if (cfg->etcd || cfg->node_id) {
    co.node_id = node;
    cs_log_set_node(node);
  }
  cs_core_init(&core, data.store, data.keyring, &co);
  if (start(&core, cfg, &api) == 0) {
    cs_log_buffer_start();
    while (sigwait(&set, &sig) != 0)
      ;
    CS_LOG(CS_LOG_INFO, "received %s, finishing in-flight requests",
           sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = 0;
  }
  /* Long-polls answer first, then in-flight requests finish, then the
   * workers drain: every acknowledged change is already committed. */
  cs_api_stop(api);
  cs_core_stop(&core);
  cs_data_close(&data);
  cs_data_unlock(lock_fd);
  if (rc == 0)
    CS_LOG(CS_LOG_INFO, "stopped");
  cs_log_buffer_stop();
  return rc;
}
