/*
 * Offline administration of a data dir: `credstore backup`, `credstore
 * restore`, `credstore rotate-key` and `credstore admin-key` (API.md §1).
 *
 * backup copies sealed bytes only, so it needs no master key; the copy holds
 * the wrapped keyring, so opening a restored copy needs the same master key.
 * LMDB lets it run beside a serving process: the copy is one read snapshot.
 *
 * rotate-key must not run beside `serve`: a running server keeps the keyring
 * in memory and could not open records resealed with a version it has never
 * seen. serve holds DIR/serve.lock shared for its lifetime, rotate-key takes
 * it exclusive and non-blocking, and refuses while a server runs.
 *
 * The rotation commits the new keyring first (with an audit entry), so new
 * writes use the new version at once and a crash mid-rewrap leaves every
 * record readable: the keyring keeps all old versions. The rewrap then walks
 * credentials and usages in transactions of REWRAP_BATCH records, resealing
 * whatever an older version sealed. A credential keeps its version, times and
 * fingerprint (secret.encrypted): the secret itself is unchanged, so a
 * client's stored secret.encrypted stays valid and no usage turns stale.
 *
 * admin-key is the way back in when no usable admin key is left (all
 * expired, or their secrets lost): whoever holds the master key mints a new
 * unscoped admin key, audited. It may run beside `serve`: LMDB serialises
 * writers across processes, the audit head is read inside each write, and
 * serve reads key records from the store on every request, so the new key
 * works at once. It takes serve.lock shared, so it waits for no server but
 * refuses while rotate-key changes the keyring.
 */
#include "svc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_NAME "serve.lock"
#define REWRAP_BATCH 500
#define KEY_MAX 511 /* LMDB's default maximum key size */
#define USAGE_JSON_DEPTH 8
#define COPY_CHUNK (64u * 1024u)

/* The actor of audit entries written from the command line. */
static const struct cs_actor cli_actor = {"cli", "", "cli"};

/* ------------------------------------------------------------------- lock */

enum cs_err cs_data_lock(const char *dir, bool exclusive, int *fd_out)
{
  char path[PATH_MAX];
  int fd;

  *fd_out = -1;
  /* No store yet: nothing to guard, and the caller's open reports it. */
  if (!cs_store_exists(dir))
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
      fprintf(stderr, "credstore: %s is in use by a running credstore serve (or another "
                      "rotate-key); stop credstore serve first\n", dir);
    else
      fprintf(stderr, "credstore: %s is locked by a running credstore rotate-key; try "
                      "again when it has finished\n", dir);
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

/* ------------------------------------------------------------------ files */

/* fsync the directory holding @p path so a new entry in it is durable. */
static int fsync_parent(const char *path)
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

/* Print one JSON line {"<name>": path, "bytes": n, ...extra members}. */
static int print_result(cJSON *o)
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

/* ----------------------------------------------------------------- backup */

int cs_cmd_backup(const struct cs_config *cfg)
{
  struct cs_store *st = NULL;
  struct stat sb;
  enum cs_err e;

  if (!cfg->data_dir || !cfg->out) {
    fprintf(stderr, "credstore backup: --data DIR and --out FILE are required\n");
    return 2;
  }
  if (lstat(cfg->out, &sb) == 0) {
    fprintf(stderr, "credstore backup: %s already exists; refusing to overwrite it\n",
            cfg->out);
    return 1;
  }
  /* Read-only: a backup never writes to the store it copies. */
  e = cs_store_open(cfg->data_dir, CS_STORE_READONLY, &st);
  if (e) {
    fprintf(stderr, "credstore backup: cannot open the store in %s: %s\n", cfg->data_dir,
            cs_err_message(e));
    return 1;
  }
  e = cs_store_backup(st, cfg->out); /* creates 0600, O_EXCL, fsyncs the file */
  cs_store_close(st);
  if (e) {
    fprintf(stderr, "credstore backup: cannot write %s: %s\n", cfg->out,
            e == CS_ERR_EXISTS ? "it already exists; refusing to overwrite it"
                               : cs_err_message(e));
    return 1;
  }
  if (fsync_parent(cfg->out) != 0 || stat(cfg->out, &sb) != 0) {
    fprintf(stderr, "credstore backup: cannot flush %s: %s\n", cfg->out, strerror(errno));
    return 1;
  }
  cJSON *o = cJSON_CreateObject();
  if (o && (!cJSON_AddStringToObject(o, "backup", cfg->out) ||
            !cJSON_AddNumberToObject(o, "bytes", (double)sb.st_size))) {
    cJSON_Delete(o);
    o = NULL;
  }
  return print_result(o);
}

/* ---------------------------------------------------------------- restore */

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
  struct cs_txn *txn = NULL;
  struct cs_val v;
  enum cs_err e = cs_store_open(dir, CS_STORE_READONLY, &st);

  if (e)
    return e;
  if ((e = cs_store_read_begin(st, &txn)))
    goto out;
  e = cs_txn_get(txn, CS_TBL_META, CS_META_KEYRING, strlen(CS_META_KEYRING), &v);
  if (e == CS_ERR_NOT_FOUND)
    e = CS_ERR_NOT_INITIALIZED;
  if (!e) {
    e = cs_txn_get(txn, CS_TBL_META, CS_META_KDF, strlen(CS_META_KDF), &v);
    r->passphrase = e == CS_OK;
    e = e == CS_ERR_NOT_FOUND ? CS_OK : e;
  }
  cs_store_read_end(txn);
  if (!e)
    e = cs_store_stat(st, &r->stat);
out:
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
  struct cs_app app = {0};

  if (!cfg->master_key_file && !cfg->passphrase_env)
    return CS_OK;
  app.cfg = *cfg;
  enum cs_err e = cs_app_open(&app, CS_STORE_READONLY);
  cs_app_close(&app);
  return e;
}

static void restore_note(const char *dir, const struct restored *r, bool verified)
{
  if (verified) {
    fprintf(stderr, "credstore restore: the given master key opens the restored keyring; "
                    "serve %s with the same option.\n", dir);
    return;
  }
  if (r->passphrase) {
    fprintf(stderr, "credstore restore: note: this store is sealed with a passphrase; serve "
                    "%s with --passphrase-env VAR holding the same passphrase.\n", dir);
    return;
  }
  fprintf(stderr, "credstore restore: note: the master key was not copied; serve %s with "
                  "the same master key as the original: --master-key-file F, or, if the "
                  "original used the development key DIR/master.key, copy that file to "
                  "%s/master.key (mode 0600).\n", dir, dir);
}

static enum cs_err restore_prepare_dir(const char *dir, bool *made)
{
  struct stat sb;

  if (cs_store_exists(dir)) {
    fprintf(stderr, "credstore restore: %s already holds a store; refusing to touch it\n",
            dir);
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
  if (e || rename(partial, data) != 0 || fsync_parent(data) != 0) {
    fprintf(stderr, "credstore restore: cannot copy %s into %s: %s\n", cfg->from,
            cfg->data_dir, e ? cs_err_message(e) : strerror(errno));
    restore_undo(cfg->data_dir, made);
    return 1;
  }
  if ((e = validate_restored(cfg->data_dir, &r))) {
    fprintf(stderr, "credstore restore: %s is not a usable credstore backup: %s; nothing "
                    "restored\n", cfg->from, cs_err_message(e));
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
  return print_result(o);
}

/* ------------------------------------------------------------- rotate-key */

struct keyring_write {
  const uint8_t *old; /* the stored blob the rotated keyring was loaded from */
  size_t old_len;
  const uint8_t *blob; /* the rotated keyring */
  size_t len;
  char target[32];
  const struct cs_keyring *kr; /* keys the audit entry (the chain key survives rotation) */
};

static enum cs_err keyring_write_txn(struct cs_txn *txn, void *arg)
{
  struct keyring_write *k = arg;
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, CS_META_KEYRING, strlen(CS_META_KEYRING), &v);

  if (e)
    return e;
  /* Compare-and-swap: never overwrite a keyring someone else changed. */
  if (v.len != k->old_len || memcmp(v.data, k->old, v.len) != 0)
    return CS_ERR_PRECONDITION;
  if ((e = cs_txn_put(txn, CS_TBL_META, CS_META_KEYRING, strlen(CS_META_KEYRING), k->blob,
                      k->len, 0)))
    return e;
  return cs_audit_append(txn, k->kr, &cli_actor, "keyring_rotate", k->target, "success");
}

/* A copy of the stored keyring blob. Caller frees *out. */
static enum cs_err keyring_read(struct cs_store *st, uint8_t **out, size_t *len)
{
  struct cs_txn *txn;
  struct cs_val v;
  enum cs_err e = cs_store_read_begin(st, &txn);

  if (e)
    return e;
  e = cs_txn_get(txn, CS_TBL_META, CS_META_KEYRING, strlen(CS_META_KEYRING), &v);
  if (!e && !(*out = malloc(v.len ? v.len : 1)))
    e = CS_ERR_NOMEM;
  if (!e) {
    memcpy(*out, v.data, v.len);
    *len = v.len;
  }
  cs_store_read_end(txn);
  return e;
}

/* One batch of the rewrap pass over one table. Inputs: tbl, start. Outputs
 * are reset on every run, since cs_store_write may rerun the callback. */
struct rewrap {
  const struct cs_keyring *kr;
  enum cs_table tbl;
  uint8_t start[KEY_MAX]; /* first key of this batch (inclusive) */
  size_t start_len;       /* 0: from the first record */
  /* out */
  uint8_t next[KEY_MAX]; /* first key of the next batch */
  size_t next_len;       /* 0: the table is done */
  uint64_t rewrapped;
  cJSON *failed; /* ids that could not be opened or decoded */
};

/* Reseal @p sealed (for @p record_id) with the current data key. Returns
 * CS_ERR_NOT_FOUND when it already uses the current version. */
static enum cs_err reseal(const struct cs_keyring *kr, const char *record_id,
                          const uint8_t *sealed, size_t len, uint8_t **out, size_t *out_len)
{
  uint32_t ver = cs_sealed_version(sealed, len);
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  enum cs_err e;

  if (ver == 0)
    return CS_ERR_CRYPTO;
  if (ver >= cs_keyring_current_version(kr))
    return CS_ERR_NOT_FOUND;
  if ((e = cs_open(kr, record_id, sealed, len, &plain, &plain_len)))
    return e;
  e = cs_seal(kr, record_id, plain, plain_len, out, out_len);
  cs_open_free(plain, plain_len);
  return e;
}

/* Credential: same header, meta and fingerprint; only the sealed tail changes. */
static enum cs_err rewrap_cred(struct cs_txn *txn, const struct cs_keyring *kr,
                               const char *id, bool *done)
{
  struct cs_val v;
  struct cs_cred_view c;
  uint8_t *sealed = NULL, *rec = NULL;
  size_t sealed_len = 0;
  enum cs_err e = cs_txn_get(txn, CS_TBL_CREDS, id, strlen(id), &v);

  *done = false;
  if (e)
    return e == CS_ERR_NOT_FOUND ? CS_ERR_STORE : e;
  if (cs_cred_decode(id, &v, &c))
    return CS_ERR_CRYPTO; /* a bad record, reported and skipped */
  if (c.sealed_len == 0)
    return CS_OK; /* no secret stored (aws useAWSRole) */
  e = reseal(kr, id, c.sealed, c.sealed_len, &sealed, &sealed_len);
  if (e == CS_ERR_NOT_FOUND)
    return CS_OK;
  if (e)
    return e;
  size_t prefix = (size_t)(c.sealed - (const uint8_t *)v.data);
  if (!(rec = malloc(prefix + sealed_len))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  memcpy(rec, v.data, prefix);
  memcpy(rec + prefix, sealed, sealed_len);
  if (!(e = cs_txn_put(txn, CS_TBL_CREDS, id, strlen(id), rec, prefix + sealed_len, 0)))
    *done = true;
out:
  free(rec);
  free(sealed);
  return e;
}

static bool unhex(const char *s, size_t n, uint8_t *out)
{
  for (size_t i = 0; i < n; i++) {
    int v = 0;
    for (int j = 0; j < 2; j++) {
      char ch = s[2 * i + j];
      int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
      if (d < 0)
        return false;
      v = v << 4 | d;
    }
    out[i] = (uint8_t)v;
  }
  return true;
}

/* Usage: a JSON record whose callbackSecretSealed is hex of a sealed blob. */
static enum cs_err rewrap_usage(struct cs_txn *txn, const struct cs_keyring *kr,
                                const char *id, bool *done)
{
  char record_id[KEY_MAX + 8], *hex = NULL, *text = NULL;
  uint8_t *old = NULL, *sealed = NULL;
  size_t sealed_len = 0;
  cJSON *rec = NULL;
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_USAGES, id, strlen(id), &v);

  *done = false;
  if (e)
    return e == CS_ERR_NOT_FOUND ? CS_ERR_STORE : e;
  if (cs_json_parse(v.data, v.len, USAGE_JSON_DEPTH, &rec))
    return CS_ERR_CRYPTO; /* a bad record, reported and skipped */
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, "callbackSecretSealed");
  if (!cJSON_IsString(s))
    goto out; /* no callback, nothing sealed */
  size_t hl = strlen(s->valuestring), n = hl / 2;
  e = CS_ERR_NOMEM;
  if (!(old = malloc(n ? n : 1)))
    goto out;
  e = CS_ERR_CRYPTO;
  if (hl % 2 || !unhex(s->valuestring, n, old))
    goto out;
  snprintf(record_id, sizeof record_id, "usage:%s", id);
  e = reseal(kr, record_id, old, n, &sealed, &sealed_len);
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK; /* already current */
  if (e || !sealed)
    goto out;
  e = CS_ERR_NOMEM;
  if (!(hex = malloc(2 * sealed_len + 1)))
    goto out;
  cs_hex(sealed, sealed_len, hex);
  cJSON *item = cJSON_CreateString(hex);
  if (!item || !cJSON_ReplaceItemInObjectCaseSensitive(rec, "callbackSecretSealed", item)) {
    cJSON_Delete(item);
    goto out;
  }
  if (!(text = cs_json_print(rec)))
    goto out;
  if (!(e = cs_txn_put(txn, CS_TBL_USAGES, id, strlen(id), text, strlen(text), 0)))
    *done = true;
out:
  free(text);
  free(hex);
  free(sealed);
  free(old);
  cJSON_Delete(rec);
  return e;
}

/* Copy the keys of up to REWRAP_BATCH records from r->start on into
 * @p keys (NUL-terminated), and the key after them into r->next. */
static enum cs_err collect_keys(struct cs_txn *txn, struct rewrap *r, char (*keys)[KEY_MAX + 1],
                                size_t *count)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  size_t n = 0;
  enum cs_err e = cs_cursor_open(txn, r->tbl, &c);

  if (e)
    return e;
  e = cs_cursor_seek(c, r->start_len ? r->start : NULL, r->start_len, &k, &v);
  for (; !e; e = cs_cursor_next(c, &k, &v)) {
    if (k.len > KEY_MAX || memchr(k.data, '\0', k.len)) {
      e = CS_ERR_STORE;
      break;
    }
    if (n == REWRAP_BATCH) {
      memcpy(r->next, k.data, k.len);
      r->next_len = k.len;
      break;
    }
    memcpy(keys[n], k.data, k.len);
    keys[n][k.len] = '\0';
    n++;
  }
  cs_cursor_close(c);
  *count = n;
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

static enum cs_err rewrap_txn(struct cs_txn *txn, void *arg)
{
  struct rewrap *r = arg;
  char (*keys)[KEY_MAX + 1] = malloc(REWRAP_BATCH * sizeof *keys);
  size_t n = 0;
  enum cs_err e = CS_ERR_NOMEM;

  r->next_len = 0;
  r->rewrapped = 0;
  cJSON_Delete(r->failed);
  if (!keys || !(r->failed = cJSON_CreateArray()))
    goto out;
  /* Keys first, then writes: no cursor stays open across a put. */
  if ((e = collect_keys(txn, r, keys, &n)))
    goto out;
  for (size_t i = 0; i < n; i++) {
    bool done = false;
    e = r->tbl == CS_TBL_CREDS ? rewrap_cred(txn, r->kr, keys[i], &done)
                               : rewrap_usage(txn, r->kr, keys[i], &done);
    if (e == CS_ERR_CRYPTO) {
      /* Undecodable or unopenable: report it, keep going with the rest. */
      cJSON *id = cJSON_CreateString(keys[i]);
      e = id && cJSON_AddItemToArray(r->failed, id) ? CS_OK : CS_ERR_NOMEM;
      if (e)
        cJSON_Delete(id);
    }
    if (e)
      goto out;
    r->rewrapped += done;
  }
out:
  free(keys);
  return e;
}

/* Rewrap every record of @p tbl sealed with an older version. */
static enum cs_err rewrap_table(struct cs_store *st, const struct cs_keyring *kr,
                                enum cs_table tbl, uint64_t *count, uint64_t *failed)
{
  struct rewrap *r = calloc(1, sizeof *r);
  enum cs_err e = CS_ERR_NOMEM;

  *count = *failed = 0;
  if (!r)
    return e;
  r->kr = kr;
  r->tbl = tbl;
  for (;;) {
    if ((e = cs_store_write(st, rewrap_txn, r)))
      break;
    *count += r->rewrapped;
    int nf = cJSON_GetArraySize(r->failed);
    for (int i = 0; i < nf; i++)
      fprintf(stderr, "credstore rotate-key: cannot rewrap %s %s: its record is corrupt or "
                      "does not open; left as it is\n", tbl == CS_TBL_CREDS ? "credential"
                      : "usage", cJSON_GetArrayItem(r->failed, i)->valuestring);
    *failed += (uint64_t)nf;
    if (r->next_len == 0)
      break;
    memcpy(r->start, r->next, r->next_len);
    r->start_len = r->next_len;
  }
  cJSON_Delete(r->failed);
  free(r);
  return e;
}

struct rewrap_audit {
  const struct cs_keyring *kr;
  const char *result;
};

static enum cs_err audit_rewrap_txn(struct cs_txn *txn, void *arg)
{
  const struct rewrap_audit *r = arg;
  return cs_audit_append(txn, r->kr, &cli_actor, "keyring_rewrap", "keyring", r->result);
}

/* Rotate the loaded keyring and commit it (first, on its own). */
static enum cs_err rotate_commit(struct cs_app *app)
{
  struct keyring_write k = {0};
  uint8_t *old = NULL, *blob = NULL;
  enum cs_err e;

  if ((e = keyring_read(app->store, &old, &k.old_len)) || (e = cs_keyring_rotate(app->keyring)) ||
      (e = cs_keyring_export(app->keyring, &blob, &k.len)))
    goto out;
  k.old = old;
  k.blob = blob;
  k.kr = app->keyring;
  snprintf(k.target, sizeof k.target, "data key v%u",
           (unsigned)cs_keyring_current_version(app->keyring));
  e = cs_store_write(app->store, keyring_write_txn, &k);
out:
  free(old);
  free(blob);
  return e;
}

int cs_cmd_rotate_key(const struct cs_config *cfg)
{
  struct cs_app app = {0};
  uint64_t creds = 0, usages = 0, failed_c = 0, failed_u = 0;
  int lock_fd = -1, rc = 1;
  enum cs_err e;

  if (!cfg->data_dir) {
    fprintf(stderr, "credstore rotate-key: --data DIR is required\n");
    return 2;
  }
  app.cfg = *cfg;
  if (cs_data_lock(cfg->data_dir, true, &lock_fd) || cs_app_open(&app, 0))
    goto out;
  if ((e = rotate_commit(&app))) {
    fprintf(stderr, "credstore rotate-key: cannot store the new keyring: %s\n",
            e == CS_ERR_PRECONDITION ? "the keyring changed meanwhile; run it again"
                                     : cs_err_message(e));
    goto out;
  }
  e = rewrap_table(app.store, app.keyring, CS_TBL_CREDS, &creds, &failed_c);
  if (!e)
    e = rewrap_table(app.store, app.keyring, CS_TBL_USAGES, &usages, &failed_u);
  const char *result = e ? "failure" : failed_c + failed_u ? "partial" : "success";
  struct rewrap_audit ra = {app.keyring, result};
  if (cs_store_write(app.store, audit_rewrap_txn, &ra) && !e)
    e = CS_ERR_STORE;
  if (e) {
    fprintf(stderr, "credstore rotate-key: the new key version is in place, but the rewrap "
                    "pass stopped: %s; records not yet rewrapped stay readable; run rotate-key "
                    "again to finish\n", cs_err_message(e));
    goto out;
  }
  printf("{\"keyVersion\":%u,\"rewrapped\":{\"credentials\":%llu,\"usages\":%llu}}\n",
         (unsigned)cs_keyring_current_version(app.keyring), (unsigned long long)creds,
         (unsigned long long)usages);
  rc = fflush(stdout) == 0 && failed_c + failed_u == 0 ? 0 : 1;
out:
  cs_app_close(&app);
  cs_data_unlock(lock_fd);
  return rc;
}

/* -------------------------------------------------------------- admin-key */

struct admin_key {
  const struct cs_keyring *kr;
  const char *name;
  struct cs_new_key key;
};

static enum cs_err admin_key_txn(struct cs_txn *txn, void *arg)
{
  struct admin_key *a = arg;
  struct cs_key_spec spec = {.name = a->name, .role = CS_ROLE_ADMIN};
  enum cs_err e = cs_keys_create(txn, a->kr, &spec, &a->key);
  return e ? e : cs_audit_append(txn, a->kr, &cli_actor, "access_key_recover", a->key.id,
                                 "success");
}

int cs_cmd_admin_key(const struct cs_config *cfg)
{
  struct cs_app app = {0};
  struct admin_key a = {.name = cfg->name ? cfg->name : "recovery-admin"};
  int lock_fd = -1, rc = 1;
  enum cs_err e;

  if (!cfg->data_dir) {
    fprintf(stderr, "credstore admin-key: --data DIR is required\n");
    return 2;
  }
  if (strlen(a.name) > CS_KEY_NAME_MAX) {
    fprintf(stderr, "credstore admin-key: --name must be 1-%d characters\n", CS_KEY_NAME_MAX);
    return 2;
  }
  app.cfg = *cfg;
  if (cs_data_lock(cfg->data_dir, false, &lock_fd) || cs_app_open(&app, 0))
    goto out;
  a.kr = app.keyring;
  if ((e = cs_store_write(app.store, admin_key_txn, &a))) {
    fprintf(stderr, "credstore admin-key: cannot store the new key: %s\n", cs_err_message(e));
    goto out;
  }
  fprintf(stderr, "credstore admin-key: minted admin key %s (%s); the secret is shown once\n",
          a.key.id, a.name);
  rc = cs_print_admin_key(&a.key);
out:
  cs_memzero(&a.key, sizeof a.key);
  cs_app_close(&app);
  cs_data_unlock(lock_fd);
  return rc;
}
