/* `credstore serve`: open the data dir, serve until SIGTERM/SIGINT. */
#include "svc.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* Key material must never land in a core file. */
static void disable_core_dumps(void)
{
  struct rlimit rl = {0, 0};
  setrlimit(RLIMIT_CORE, &rl);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* After each group commit: wake long-polls and the webhook worker. */
static void after_commit(void *arg)
{
  struct cs_app *app = arg;
  cs_events_notify(app);
  cs_outbox_kick(app);
}

int cs_cmd_serve(const struct cs_config *cfg)
{
  struct cs_app app = {0};
  struct MHD_Daemon *d = NULL;
  sigset_t set;
  int sig = 0;

  app.cfg = *cfg;
  if (!app.cfg.data_dir) {
    fprintf(stderr, "credstore serve: --data DIR is required\n");
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
  int lock_fd = -1;
  if (cs_data_lock(app.cfg.data_dir, false, &lock_fd) || cs_app_open(&app, 0)) {
    cs_data_unlock(lock_fd);
    return 1;
  }
  app.started_at = cs_now();
  struct cs_prov_net_config net = {app.cfg.sts_endpoint, app.cfg.imds_endpoint, 0};
  int rc = 1;
  if (cs_prov_net_create(&net, &app.net) || cs_events_start(&app) ||
      cs_writer_start(app.store, after_commit, &app, &app.writer) || cs_outbox_start(&app) ||
      cs_http_start(&app, &d)) {
    fprintf(stderr, "credstore serve: cannot start\n");
    goto out;
  }
  atomic_store(&app.ready, true);
  cs_log_buffer_start();
  while (sigwait(&set, &sig) != 0)
    ;
  CS_LOG(CS_LOG_INFO, "received %s, finishing in-flight requests",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  rc = 0;
out:
  /* Long-polls answer first, then in-flight requests finish, then the
   * workers drain: every acknowledged change is already committed. */
  atomic_store(&app.ready, false);
  cs_events_stop(&app);
  cs_http_stop(&app, d);
  cs_events_free(&app);
  cs_outbox_stop(&app);
  cs_writer_stop(app.writer);
  cs_prov_net_free(app.net);
  cs_app_close(&app);
  cs_data_unlock(lock_fd);
  if (rc == 0)
    CS_LOG(CS_LOG_INFO, "stopped");
  cs_log_buffer_stop();
  return rc;
}
