/* Opening an initialised data dir, and `credstore init`. */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Stored Argon2id parameters: salt | u64 BE opslimit | u64 BE memlimit. */
#define KDF_RECORD_LEN (CS_SALT_BYTES + 16)

static void put_u64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static void kdf_encode(const struct cs_kdf_params *p, uint8_t out[KDF_RECORD_LEN])
{
  memcpy(out, p->salt, CS_SALT_BYTES);
  put_u64(out + CS_SALT_BYTES, p->opslimit);
  put_u64(out + CS_SALT_BYTES + 8, p->memlimit);
}

static void kdf_decode(const uint8_t in[KDF_RECORD_LEN], struct cs_kdf_params *p)
{
  memcpy(p->salt, in, CS_SALT_BYTES);
  p->opslimit = get_u64(in + CS_SALT_BYTES);
  p->memlimit = get_u64(in + CS_SALT_BYTES + 8);
}

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
  if (!file) {
    if ((size_t)snprintf(path, sizeof path, "%s/master.key", cfg->data_dir) >= sizeof path)
      return CS_ERR_INVALID;
    file = path;
  }
  e = cs_master_key_from_file(file, out);
  if (e)
    fprintf(stderr, "credstore: cannot read master key file %s: %s\n", file,
            e == CS_ERR_INVALID ? "it must hold 32 bytes (raw, hex or base64)"
                                : strerror(errno));
  return e;
}

struct meta_read {
  struct cs_kdf_params kdf;
  bool has_kdf;
  uint8_t *keyring;
  size_t keyring_len;
};

static enum cs_err read_meta(struct cs_store *st, struct meta_read *m)
{
  struct cs_txn *txn;
  struct cs_val v;
  enum cs_err e = cs_store_read_begin(st, &txn);
  if (e)
    return e;
  e = cs_txn_get(txn, CS_TBL_META, CS_META_KDF, strlen(CS_META_KDF), &v);
  if (e == CS_OK && v.len == KDF_RECORD_LEN) {
    kdf_decode(v.data, &m->kdf);
    m->has_kdf = true;
  } else if (e != CS_ERR_NOT_FOUND) {
    e = e ? e : CS_ERR_STORE;
    goto out;
  }
  e = cs_txn_get(txn, CS_TBL_META, CS_META_KEYRING, strlen(CS_META_KEYRING), &v);
  if (e)
    goto out;
  m->keyring = malloc(v.len);
  if (!m->keyring) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  memcpy(m->keyring, v.data, v.len);
  m->keyring_len = v.len;
out:
  cs_store_read_end(txn);
  return e;
}

enum cs_err cs_app_open(struct cs_app *app, unsigned store_flags)
{
  struct meta_read m = {0};
  struct cs_master_key *mk = NULL;
  enum cs_err e;

  if (!app->cfg.data_dir) {
    fprintf(stderr, "credstore: --data DIR is required\n");
    return CS_ERR_INVALID;
  }
  e = cs_store_open(app->cfg.data_dir, store_flags, &app->store);
  if (e) {
    fprintf(stderr, "credstore: cannot open the store in %s: %s\n", app->cfg.data_dir,
            cs_err_message(e));
    return e;
  }
  e = read_meta(app->store, &m);
  if (e) {
    fprintf(stderr, "credstore: %s holds no keyring: %s\n", app->cfg.data_dir,
            cs_err_message(e == CS_ERR_NOT_FOUND ? CS_ERR_NOT_INITIALIZED : e));
    goto out;
  }
  e = cs_master_key_for(&app->cfg, m.has_kdf ? &m.kdf : NULL, &mk);
  if (e)
    goto out;
  e = cs_keyring_load(mk, m.keyring, m.keyring_len, &app->keyring);
  if (e)
    fprintf(stderr, "credstore: %s\n", cs_err_message(e));
out:
  cs_master_key_free(mk);
  free(m.keyring);
  if (e) {
    cs_store_close(app->store);
    app->store = NULL;
  }
  return e;
}

void cs_app_close(struct cs_app *app)
{
  cs_keyring_free(app->keyring);
  app->keyring = NULL;
  cs_store_close(app->store);
  app->store = NULL;
}

/* ------------------------------------------------------------------- init */

int cs_print_admin_key(const struct cs_new_key *k)
{
  printf("{\"id\":\"%s\",\"secret\":\"%s\",\"role\":\"admin\"}\n", k->id, k->secret);
  return fflush(stdout) == 0 ? 0 : 1;
}

struct init_ctx {
  const struct cs_keyring *kr;
  const uint8_t *keyring_blob;
  size_t keyring_len;
  const struct cs_kdf_params *kdf;
  struct cs_new_key key;
};

static enum cs_err init_write(struct cs_txn *txn, void *arg)
{
  struct init_ctx *c = arg;
  enum cs_err e;

  e = cs_txn_put(txn, CS_TBL_META, CS_META_KEYRING, strlen(CS_META_KEYRING), c->keyring_blob,
                 c->keyring_len, CS_PUT_NO_OVERWRITE);
  if (!e && c->kdf) {
    uint8_t rec[KDF_RECORD_LEN];
    kdf_encode(c->kdf, rec);
    e = cs_txn_put(txn, CS_TBL_META, CS_META_KDF, strlen(CS_META_KDF), rec, sizeof rec,
                   CS_PUT_NO_OVERWRITE);
  }
  if (!e) {
    struct cs_key_spec spec = {.name = "bootstrap-admin", .role = CS_ROLE_ADMIN};
    e = cs_keys_create(txn, c->kr, &spec, &c->key);
  }
  return e;
}

int cs_cmd_init(const struct cs_config *cfg)
{
  struct cs_config kcfg = *cfg;
  struct cs_kdf_params kdf;
  struct cs_master_key *mk = NULL;
  struct cs_keyring *kr = NULL;
  struct cs_store *st = NULL;
  struct init_ctx ctx = {0};
  uint8_t *blob = NULL;
  size_t blob_len = 0;
  char path[PATH_MAX];
  int rc = 1;
  enum cs_err e;

  if (!cfg->data_dir) {
    fprintf(stderr, "credstore init: --data DIR is required\n");
    return 2;
  }
  if (cs_store_exists(cfg->data_dir)) {
    fprintf(stderr, "credstore init: %s is already initialised; refusing to touch it\n",
            cfg->data_dir);
    return 1;
  }
  if (mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
    fprintf(stderr, "credstore init: cannot create %s: %s\n", cfg->data_dir, strerror(errno));
    return 1;
  }
  if (cfg->passphrase_env) {
    cs_kdf_params_new(&kdf);
    ctx.kdf = &kdf;
  } else if (!cfg->master_key_file) {
    if ((size_t)snprintf(path, sizeof path, "%s/master.key", cfg->data_dir) >= sizeof path)
      return 1;
    e = cs_master_key_generate_file(path);
    if (e) {
      fprintf(stderr, "credstore init: cannot write %s: %s\n", path,
              e == CS_ERR_EXISTS ? "it already exists" : cs_err_message(e));
      return 1;
    }
    fprintf(stderr, "credstore init: WARNING: wrote a random master key to %s; "
                    "that is for development only. In production keep the master key "
                    "outside the data dir (--master-key-file or --passphrase-env).\n",
            path);
    kcfg.master_key_file = path;
  }
  if (cs_master_key_for(&kcfg, ctx.kdf, &mk))
    goto out;
  if ((e = cs_keyring_create(mk, &kr)) || (e = cs_keyring_export(kr, &blob, &blob_len))) {
    fprintf(stderr, "credstore init: cannot create the keyring: %s\n", cs_err_message(e));
    goto out;
  }
  e = cs_store_open(cfg->data_dir, CS_STORE_CREATE, &st);
  if (e) {
    fprintf(stderr, "credstore init: cannot create the store in %s: %s\n", cfg->data_dir,
            cs_err_message(e));
    goto out;
  }
  ctx.kr = kr;
  ctx.keyring_blob = blob;
  ctx.keyring_len = blob_len;
  e = cs_store_write(st, init_write, &ctx);
  if (e) {
    fprintf(stderr, "credstore init: cannot write the keyring: %s\n", cs_err_message(e));
    goto out;
  }
  rc = cs_print_admin_key(&ctx.key);
out:
  cs_memzero(&ctx.key, sizeof ctx.key);
  free(blob);
  cs_store_close(st);
  cs_keyring_free(kr);
  cs_master_key_free(mk);
  return rc;
}
