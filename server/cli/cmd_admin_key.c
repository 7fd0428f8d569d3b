/* `credstore admin-key --data DIR [--name NAME]` (API.md §1): the way back
 * in when no usable admin key is left (all expired, or their secrets lost):
 * whoever holds the master key mints a new unscoped admin key, audited. It
 * may run beside `serve`: LMDB serialises writers across processes, the
 * audit head is read inside each write, and serve reads key records from
 * the store on every request, so the new key works at once. It takes
 * serve.lock shared, so it waits for no server but refuses while
 * rotate-key changes the keyring. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* The actor of audit entries written from the command line. */
static const struct cs_actor cli_actor = {"cli", "", "cli"};

int cs_cmd_admin_key(const struct cs_config *cfg)
{
  struct cs_data data = {0};
  struct cs_core core;
  struct cs_key_spec spec = {.name = cfg->name ? cfg->name : "recovery-admin",
                             .role = CS_ROLE_ADMIN};
  struct cs_new_key key = {"", "", 0};
  int lock_fd = -1, rc = 1;
  enum cs_err e;

  if (!cfg->store) {
    fprintf(stderr, "credstore admin-key: --data DIR or --store URL is required\n");
    return 2;
  }
  if (strlen(spec.name) > CS_KEY_NAME_MAX) {
    fprintf(stderr, "credstore admin-key: --name must be 1-%d characters\n", CS_KEY_NAME_MAX);
    return 2;
  }
  if (cs_data_lock(cfg->data_dir, false, &lock_fd) || cs_data_open(cfg, 0, &data))
    goto out;
  cs_core_init(&core, data.store, data.keyring, NULL);
  if ((e = cs_keys_add(&core, &cli_actor, "access_key_recover", &spec, &key))) {
    fprintf(stderr, "credstore admin-key: cannot store the new key: %s\n", cs_err_message(e));
    goto out;
  }
  fprintf(stderr, "credstore admin-key: minted admin key %s (%s); the secret is shown once\n",
          key.id, spec.name);
  rc = cs_print_admin_key(&key);
out:
  cs_memzero(&key, sizeof key);
  cs_data_close(&data);
  cs_data_unlock(lock_fd);
  return rc;
}
