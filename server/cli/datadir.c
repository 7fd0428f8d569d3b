/* Opening a data dir: the master key (key file, passphrase or the
 * development DIR/master.key), the store and keyring, serve.lock, and the
 * few output helpers the commands share. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LOCK_NAME "serve.lock"

enum cs_err cs_master_key_for(const struct cs_config *cfg, const struct cs_kdf_params *kdf,
                              struct cs_master_key **out)
{
  char path[PATH_MAX];
  enum cs_err e;

  if (cfg->master_key_file && cfg->passphrase_env) {
    fprintf(stderr, "credstore: give either --master-key-file or --passphrase-env, not both\n");
    return CS_ERR_INVALID;
  }
  if (kdf && !cfg->passphrase_env) {
    fprintf(stderr, "credstore: this data dir is sealed with a passphrase; "
                    "give --passphrase-env VAR\n");
    return CS_ERR_INVALID;
  }
  if (cfg->passphrase_env) {
    const char *pass = getenv(cfg->passphrase_env);
    if (!pass || !pass[0]) {
      fprintf(stderr, "credstore: environment variable %s is empty or unset\n",
              cfg->passphrase_env);
      return CS_ERR_INVALID;
    }
    if (!kdf) {
      fprintf(stderr, "credstore: this data dir uses a master key file, not a passphrase\n");
      return CS_ERR_INVALID;
    }
    e = cs_master_key_from_passphrase(pass, strlen(pass), kdf, out);
    if (e)
      fprintf(stderr, "credstore: cannot derive the master key: %s\n", cs_err_message(e));
    return e;
  }
  const char *file = cfg->master_key_file;
  if (!file && !cfg->data_dir) {
    /* etcd: there is no data dir to keep a development key in. */
    fprintf(stderr, "credstore: cluster mode needs the master key: give --master-key-file F "
                    "or --passphrase-env VAR\n");
    return CS_ERR_INVALID;
  }
  if (!file) {
    if ((size_t)snprintf(path, sizeof path, "%s/master.key", cfg->data_dir) >= sizeof path)
      return CS_ERR_INVALID;
    file = path;
  }
  e = cs_master_key_from_file(file, out);
  if (e)
    fprintf(stderr, "credstore: cannot read master key file %s: %s\n", file,
            e == CS_ERR_INVALID ? "it must hold 32 bytes (raw, hex or base64)" : strerror(errno));
  return e;
}

enum cs_err cs_cli_store_open(const struct cs_config *cfg, const char *url, unsigned flags,
                              struct cs_store **out)
{
  struct cs_store_opts o = {
      .etcd_cacert = cfg->etcd_cacert,
      .etcd_cert = cfg->etcd_cert,
      .etcd_key = cfg->etcd_key,
      .etcd_user = cfg->etcd_user,
      .etcd_password = getenv("CREDSTORE_ETCD_PASSWORD"),
  };
  enum cs_err e;

  if (!url) {
    fprintf(stderr, "credstore: --data DIR or --store URL is required\n");
    return CS_ERR_INVALID;
  }
  if (o.etcd_user && !o.etcd_password) {
    fprintf(stderr, "credstore: CREDSTORE_ETCD_USER is set but CREDSTORE_ETCD_PASSWORD is not\n");
    return CS_ERR_INVALID;
  }
  e = cs_store_open_url(url, &o, flags, out);
  if (e == CS_ERR_ALREADY_INITIALIZED)
    fprintf(stderr, "credstore: %s already holds a store; refusing to touch it\n", url);
  else if (e)
    fprintf(stderr, "credstore: cannot open the store %s: %s\n", url, cs_err_message(e));
  return e;
}

enum cs_err cs_data_open(const struct cs_config *cfg, unsigned store_flags, struct cs_data *out)
{
  struct cs_stored_keyring k = {0};
  struct cs_master_key *mk = NULL;
  struct cs_data d = {0};
  enum cs_err e;

  if ((e = cs_cli_store_open(cfg, cfg->store, store_flags, &d.store)))
    return e;
  if ((e = cs_meta_read_keyring(d.store, &k))) {
    fprintf(stderr, "credstore: %s holds no keyring: %s\n", cfg->store,
            cs_err_message(e == CS_ERR_NOT_FOUND ? CS_ERR_NOT_INITIALIZED : e));
    goto out;
  }
  if ((e = cs_master_key_for(cfg, k.has_kdf ? &k.kdf : NULL, &mk)))
    goto out;
  if ((e = cs_keyring_load(mk, k.blob, k.len, &d.keyring)))
    fprintf(stderr, "credstore: %s\n", cs_err_message(e));
out:
  cs_master_key_free(mk);
  cs_stored_keyring_free(&k);
  if (e) {
    cs_store_close(d.store);
    return e;
  }
  *out = d;
  return CS_OK;
}

void cs_data_close(struct cs_data *d)
{
  cs_keyring_free(d->keyring);
  cs_store_close(d->store);
  d->keyring = NULL;
  d->store = NULL;
}

enum cs_err cs_data_lock(const char *dir, bool exclusive, int *fd_out)
{
  char path[PATH_MAX];
  int fd;

  *fd_out = -1;
  /* No store yet: nothing to guard, and the caller's open reports it.
   * No dir (etcd): nodes and commands share the store by design. */
  if (!dir || !cs_store_exists(dir))
    return CS_OK;
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME) >= sizeof path)
    return CS_ERR_INVALID;
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    fprintf(stderr, "credstore: cannot open %s: %s\n", path, strerror(errno));
    return CS_ERR_IO;
  }
  while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    if (errno == EINTR)
      continue;
    int err = errno;
    close(fd);
    if (err != EWOULDBLOCK) {
      fprintf(stderr, "credstore: cannot lock %s: %s\n", path, strerror(err));
      return CS_ERR_IO;
    }
    if (exclusive)
      fprintf(stderr,
              "credstore: %s is in use by a running credstore serve (or another "
              "rotate-key); stop credstore serve first\n",
              dir);
    else
      fprintf(stderr,
              "credstore: %s is locked by a running credstore rotate-key; try "
              "again when it has finished\n",
              dir);
    return CS_ERR_UNAVAILABLE;
  }
  *fd_out = fd;
  return CS_OK;
}

void cs_data_unlock(int fd)
{
  if (fd >= 0)
    close(fd); /* releases the flock */
}

int cs_print_admin_key(const struct cs_new_key *k)
{
  printf("{\"id\":\"%s\",\"secret\":\"%s\",\"role\":\"admin\"}\n", k->id, k->secret);
  return fflush(stdout) == 0 ? 0 : 1;
}

int cs_fsync_parent(const char *path)
{
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int fd, rc;

  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else if ((size_t)snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) >= sizeof dir)
    return -1;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  rc = fsync(fd);
  close(fd);
  return rc;
}

int cs_print_json(cJSON *o)
{
  char *text = o ? cs_json_print(o) : NULL;
  cJSON_Delete(o);
  if (!text) {
    fprintf(stderr, "credstore: out of memory\n");
    return 1;
  }
  printf("%s\n", text);
  free(text);
  return fflush(stdout) == 0 ? 0 : 1;
}
