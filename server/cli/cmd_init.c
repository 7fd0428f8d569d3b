/* `credstore init --data DIR [--master-key-file F | --passphrase-env VAR]`
 * or `--store etcd://... (--master-key-file F | --passphrase-env VAR)`: a new
 * store with a keyring under the master key and a bootstrap admin key,
 * printed once. An etcd prefix must hold no key at all (CS_STORE_CREATE). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The dir must be new (or empty of a store) and creatable. */
static int prepare_dir(const char *dir)
{
  if (cs_store_exists(dir)) {
    fprintf(stderr, "credstore init: %s is already initialised; refusing to touch it\n", dir);
    return 1;
  }
  if (mkdir(dir, 0700) && errno != EEXIST) {
    fprintf(stderr, "credstore init: cannot create %s: %s\n", dir, strerror(errno));
    return 1;
  }
  return 0;
}

/* Without a key option: write a development key into DIR/master.key and
 * point @p kcfg at it. */
static int dev_key_file(const char *dir, char path[PATH_MAX], struct cs_config *kcfg)
{
  enum cs_err e;

  if ((size_t)snprintf(path, PATH_MAX, "%s/master.key", dir) >= PATH_MAX)
    return 1;
  if ((e = cs_master_key_generate_file(path))) {
    fprintf(stderr, "credstore init: cannot write %s: %s\n", path,
            e == CS_ERR_EXISTS ? "it already exists" : cs_err_message(e));
    return 1;
  }
  fprintf(stderr,
          "credstore init: WARNING: wrote a random master key to %s; "
          "that is for development only. In production keep the master key "
          "outside the data dir (--master-key-file or --passphrase-env).\n",
          path);
  kcfg->master_key_file = path;
  return 0;
}

/* Create the store @p cfg names and write the keyring and the admin key. */
static int write_store(const struct cs_config *cfg, const struct cs_keyring *kr,
                       const struct cs_kdf_params *kdf)
{
  struct cs_store *st = NULL;
  struct cs_new_key key = {"", "", 0};
  int rc = 1;
  enum cs_err e;

  if (cs_cli_store_open(cfg, cfg->store, CS_STORE_CREATE, &st))
    return 1;
  if ((e = cs_meta_init(st, kr, kdf, &key)))
    fprintf(stderr, "credstore init: cannot write the keyring: %s\n", cs_err_message(e));
  else
    rc = cs_print_admin_key(&key);
  cs_memzero(&key, sizeof key);
  cs_store_close(st);
  return rc;
}

int cs_cmd_init(const struct cs_config *cfg)
{
  struct cs_config kcfg = *cfg;
  struct cs_kdf_params kdf, *kdfp = NULL;
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = NULL;
  char path[PATH_MAX];
  int rc = 1;
  enum cs_err e;

  if (!cfg->store) {
    fprintf(stderr, "credstore init: --data DIR or --store URL is required\n");
    return 2;
  }
  if (cfg->etcd && !cfg->master_key_file && !cfg->passphrase_env) {
    fprintf(stderr, "credstore init: --store etcd://... needs --master-key-file F or "
                    "--passphrase-env VAR (there is no data dir to keep a key in)\n");
    return 2;
  }
  if (cfg->data_dir && prepare_dir(cfg->data_dir))
    return 1;
  if (cfg->passphrase_env) {
    cs_kdf_params_new(&kdf);
    kdfp = &kdf;
  } else if (!cfg->master_key_file && dev_key_file(cfg->data_dir, path, &kcfg)) {
    return 1;
  }
  if (cs_master_key_for(&kcfg, kdfp, &mk))
    goto out;
  if ((e = cs_keyring_create(mk, &kr))) {
    fprintf(stderr, "credstore init: cannot create the keyring: %s\n", cs_err_message(e));
    goto out;
  }
  rc = write_store(cfg, kr, kdfp);
out:
  cs_keyring_free(kr);
  cs_master_key_free(mk);
  return rc;
}
