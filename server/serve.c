/* `credstore serve`: open the data dir, serve until SIGTERM/SIGINT. */
#include "http.h"

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

  if (cs_app_open(&app, 0))
    return 1;
  app.started_at = cs_now();
  if (cs_http_start(&app, &d)) {
    cs_app_close(&app);
    return 1;
  }
  atomic_store(&app.ready, true);
  while (sigwait(&set, &sig) != 0)
    ;
  CS_LOG(CS_LOG_INFO, "received %s, finishing in-flight requests",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  atomic_store(&app.ready, false);
  cs_http_stop(&app, d);
  cs_app_close(&app);
  CS_LOG(CS_LOG_INFO, "stopped");
  return 0;
}
