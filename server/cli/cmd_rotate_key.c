/* `credstore rotate-key --data DIR` (API.md §1): a new data-key version,
 * committed first on its own (new writes use it at once, and a crash
 * mid-rewrap leaves every record readable: the keyring keeps all old
 * versions), then the core's rewrap pass over credentials and usages.
 *
 * It must not run beside `serve`: a running server keeps the keyring in
 * memory and could not open records resealed with a version it has never
 * seen. serve holds DIR/serve.lock shared for its lifetime; rotate-key takes
 * it exclusive and non-blocking, and refuses while a server runs. */
#include "cli.h"

#include <stdio.h>

/* The actor of audit entries written from the command line. */
static const struct cs_actor cli_actor = {"cli", "", "cli"};

static void report_failed(void *arg, const char *kind, const char *id)
{
  fprintf(stderr,
          "credstore rotate-key: cannot rewrap %s %s: its record is corrupt or "
          "does not open; left as it is\n",
          kind, id);
}

int cs_cmd_rotate_key(const struct cs_config *cfg)
{
  struct cs_data data = {0};
  struct cs_core core;
  struct cs_rewrap_result r = {0};
  int lock_fd = -1, rc = 1;
  enum cs_err e;

  if (!cfg->store) {
    fprintf(stderr, "credstore rotate-key: --data DIR or --store URL is required\n");
    return 2;
  }
  if (cs_data_lock(cfg->data_dir, true, &lock_fd) || cs_data_open(cfg, 0, &data))
    goto out;
  cs_core_init(&core, data.store, data.keyring, NULL);
  if ((e = cs_keyring_rotate_commit(&core, &cli_actor))) {
    fprintf(stderr, "credstore rotate-key: cannot store the new keyring: %s\n",
            e == CS_ERR_PRECONDITION ? "the keyring changed meanwhile; run it again"
                                     : cs_err_message(e));
    goto out;
  }
  if ((e = cs_rewrap_all(&core, &cli_actor, report_failed, NULL, &r))) {
    fprintf(stderr,
            "credstore rotate-key: the new key version is in place, but the rewrap "
            "pass stopped: %s; records not yet rewrapped stay readable; run rotate-key "
            "again to finish\n",
            cs_err_message(e));
    goto out;
  }
  printf("{\"keyVersion\":%u,\"rewrapped\":{\"credentials\":%llu,\"usages\":%llu}}\n",
         (unsigned)cs_keyring_current_version(data.keyring), (unsigned long long)r.credentials,
         (unsigned long long)r.usages);
  rc = fflush(stdout) == 0 && r.failed == 0 ? 0 : 1;
out:
  cs_data_close(&data);
  cs_data_unlock(lock_fd);
  return rc;
}
