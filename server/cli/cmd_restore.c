/* `credstore restore --from FILE --data NEWDIR` (API.md §1): a backup
 * copied into a new data dir under another name, renamed into place, then
 * opened read-only to prove it is a store (and, with a key option, that the
 * key opens it). Nothing is left behind when it fails. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (64u * 1024u)

static bool dir_is_empty(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *ent;
  bool empty = true;

  if (!d)
    return false;
  while (empty && (ent = readdir(d)))
    empty = strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0;
  closedir(d);
  return empty;
}

/* Copy @p from into the new file @p to (0600), fsynced. */
static enum cs_err copy_file(const char *from, const char *to, uint64_t *bytes)
{
  uint8_t *buf = malloc(COPY_CHUNK);
  int in = open(from, O_RDONLY | O_CLOEXEC);
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  enum cs_err e = buf ? CS_ERR_IO : CS_ERR_NOMEM;
  uint64_t total = 0;

  if (!buf || in < 0 || out < 0 || fchmod(out, 0600) != 0)
    goto out;
  for (;;) {
    ssize_t n = read(in, buf, COPY_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      goto out;
    if (n == 0)
      break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        goto out;
      off += w;
    }
    total += (uint64_t)n;
  }
  if (fsync(out) != 0)
    goto out;
  e = CS_OK;
  *bytes = total;
out:
  if (out >= 0 && close(out) != 0 && e == CS_OK)
    e = CS_ERR_IO;
  if (in >= 0)
    close(in);
  free(buf);
  return e;
}

/* What a restored store holds, read back to prove it opens. */
struct restored {
  bool passphrase; /* sealed with a passphrase (a "kdf" record) */
  struct cs_store_stat stat;
};

static enum cs_err validate_restored(const char *dir, struct restored *r)
{
  struct cs_store *st = NULL;
  struct cs_stored_keyring k = {0};
  enum cs_err e = cs_store_open(dir, CS_STORE_READONLY, &st);

  if (e)
    return e;
  e = cs_meta_read_keyring(st, &k);
  if (e == CS_ERR_NOT_FOUND)
    e = CS_ERR_NOT_INITIALIZED;
  r->passphrase = k.has_kdf;
  cs_stored_keyring_free(&k);
  if (!e)
    e = cs_store_stat(st, &r->stat);
  cs_store_close(st);
  return e;
}

/* Undo a failed restore: the files we made, and the dir if we made it. */
static void restore_undo(const char *dir, bool made_dir)
{
  static const char *const names[] = {"data.mdb", "lock.mdb", "data.mdb.partial"};
  char p[PATH_MAX];

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, names[i]) < sizeof p)
      unlink(p);
  if (made_dir)
    rmdir(dir);
}

/* With a key option: prove the key opens the restored keyring. */
static enum cs_err verify_master_key(const struct cs_config *cfg)
{
  struct cs_data d = {0};

  if (!cfg->master_key_file && !cfg->passphrase_env)
    return CS_OK;
  enum cs_err e = cs_data_open(cfg, CS_STORE_READONLY, &d);
  cs_data_close(&d);
  return e;
}

static void restore_note(const char *dir, const struct restored *r, bool verified)
{
  if (verified) {
    fprintf(stderr,
            "credstore restore: the given master key opens the restored keyring; "
            "serve %s with the same option.\n",
            dir);
    return;
  }
  if (r->passphrase) {
    fprintf(stderr,
            "credstore restore: note: this store is sealed with a passphrase; serve "
            "%s with --passphrase-env VAR holding the same passphrase.\n",
            dir);
    return;
  }
  fprintf(stderr,
          "credstore restore: note: the master key was not copied; serve %s with "
          "the same master key as the original: --master-key-file F, or, if the "
          "original used the development key DIR/master.key, copy that file to "
          "%s/master.key (mode 0600).\n",
          dir, dir);
}

static enum cs_err restore_prepare_dir(const char *dir, bool *made)
{
  struct stat sb;

  if (cs_store_exists(dir)) {
    fprintf(stderr, "credstore restore: %s already holds a store; refusing to touch it\n", dir);
    return CS_ERR_ALREADY_INITIALIZED;
  }
  if (mkdir(dir, 0700) == 0) {
    *made = true;
    return CS_OK;
  }
  if (errno != EEXIST || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || !dir_is_empty(dir)) {
    fprintf(stderr, "credstore restore: %s must be a new or empty directory\n", dir);
    return CS_ERR_INVALID;
  }
  if (chmod(dir, 0700) != 0) {
    fprintf(stderr, "credstore restore: cannot chmod %s: %s\n", dir, strerror(errno));
    return CS_ERR_IO;
  }
  return CS_OK;
}

int cs_cmd_restore(const struct cs_config *cfg)
{
  char partial[PATH_MAX], data[PATH_MAX];
  struct restored r = {0};
  struct stat sb;
  uint64_t bytes = 0;
  bool made = false;
  enum cs_err e;

  if (!cfg->from || !cfg->data_dir) {
    fprintf(stderr, "credstore restore: --from FILE and --data NEWDIR are required\n");
    return 2;
  }
  if (stat(cfg->from, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fprintf(stderr, "credstore restore: %s is not a readable backup file\n", cfg->from);
    return 1;
  }
  if ((size_t)snprintf(partial, sizeof partial, "%s/data.mdb.partial", cfg->data_dir) >=
          sizeof partial ||
      (size_t)snprintf(data, sizeof data, "%s/data.mdb", cfg->data_dir) >= sizeof data) {
    fprintf(stderr, "credstore restore: path too long\n");
    return 2;
  }
  if (restore_prepare_dir(cfg->data_dir, &made))
    return 1;
  /* Copy under another name, then rename: a torn copy never looks like a store. */
  e = copy_file(cfg->from, partial, &bytes);
  if (e || rename(partial, data) != 0 || cs_fsync_parent(data) != 0) {
    fprintf(stderr, "credstore restore: cannot copy %s into %s: %s\n", cfg->from, cfg->data_dir,
            e ? cs_err_message(e) : strerror(errno));
    restore_undo(cfg->data_dir, made);
    return 1;
  }
  if ((e = validate_restored(cfg->data_dir, &r))) {
    fprintf(stderr,
            "credstore restore: %s is not a usable credstore backup: %s; nothing "
            "restored\n",
            cfg->from, cs_err_message(e));
    restore_undo(cfg->data_dir, made);
    return 1;
  }
  if ((e = verify_master_key(cfg))) {
    fprintf(stderr, "credstore restore: the given master key does not open the backup; "
                    "nothing restored\n");
    restore_undo(cfg->data_dir, made);
    return 1;
  }
  restore_note(cfg->data_dir, &r, cfg->master_key_file || cfg->passphrase_env);
  cJSON *o = cJSON_CreateObject();
  if (o && (!cJSON_AddStringToObject(o, "restored", cfg->data_dir) ||
            !cJSON_AddNumberToObject(o, "bytes", (double)bytes) ||
            !cJSON_AddNumberToObject(o, "credentials", (double)r.stat.records[CS_TBL_CREDS]) ||
            !cJSON_AddNumberToObject(o, "usages", (double)r.stat.records[CS_TBL_USAGES]) ||
            !cJSON_AddNumberToObject(o, "accessKeys", (double)r.stat.records[CS_TBL_KEYS]))) {
    cJSON_Delete(o);
    o = NULL;
  }
  return cs_print_json(o);
}
