/* The rewrap pass of key rotation (core.h cs_rewrap_all): credentials and
 * usages in transactions of REWRAP_BATCH records, each record resealed by
 * its own codec (cred_rec.c, usage_rec.c). A credential keeps its version,
 * times and fingerprint (secret.encrypted): the secret itself is unchanged,
 * so a client's stored secret.encrypted stays valid and no usage turns
 * stale. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

#define REWRAP_BATCH 500
#define KEY_MAX 511 /* LMDB's default maximum key size */

/* One batch of the pass over one table. Inputs: tbl, start. Outputs are
 * reset on every run, since a write may rerun the callback. */
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

static enum cs_err rewrap_cred(struct cs_txn *txn, const struct cs_keyring *kr, const char *id,
                               bool *done)
{
  struct cs_val v;
  uint8_t *rec = NULL;
  size_t len = 0;
  enum cs_err e = cs_txn_get(txn, CS_TBL_CREDS, id, strlen(id), &v);

  if (e)
    return e == CS_ERR_NOT_FOUND ? CS_ERR_STORE : e;
  e = cs_cred_reseal(kr, id, &v, &rec, &len);
  if (e == CS_ERR_NOT_FOUND)
    return CS_OK; /* already current, or no secret */
  if (!e && !(e = cs_txn_put(txn, CS_TBL_CREDS, id, strlen(id), rec, len, 0)))
    *done = true;
  free(rec);
  return e;
}

static enum cs_err rewrap_usage(struct cs_txn *txn, const struct cs_keyring *kr, const char *id,
                                bool *done)
{
  cJSON *rec = NULL;
  enum cs_err e = cs_usage_load(txn, id, &rec);

  if (e == CS_ERR_STORE)
    return CS_ERR_CRYPTO; /* a bad record, reported and skipped */
  if (e)
    return e == CS_ERR_NOT_FOUND ? CS_ERR_STORE : e;
  e = cs_usage_reseal(kr, id, rec);
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK; /* no callback secret, or already current */
  else if (!e && !(e = cs_usage_save(txn, rec, 0)))
    *done = true;
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
  char(*keys)[KEY_MAX + 1] = malloc(REWRAP_BATCH * sizeof *keys);
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
static enum cs_err rewrap_table(struct cs_core *c, enum cs_table tbl,
                                void (*on_fail)(void *, const char *, const char *), void *arg,
                                uint64_t *count, uint64_t *failed)
{
  struct rewrap *r = calloc(1, sizeof *r);
  enum cs_err e = CS_ERR_NOMEM;

  if (!r)
    return e;
  r->kr = c->keyring;
  r->tbl = tbl;
  for (;;) {
    if ((e = cs_core_write(c, rewrap_txn, r)))
      break;
    *count += r->rewrapped;
    int nf = cJSON_GetArraySize(r->failed);
    for (int i = 0; i < nf && on_fail; i++)
      on_fail(arg, tbl == CS_TBL_CREDS ? "credential" : "usage",
              cJSON_GetArrayItem(r->failed, i)->valuestring);
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

enum cs_err cs_rewrap_all(struct cs_core *c, const struct cs_actor *a,
                          void (*on_fail)(void *arg, const char *kind, const char *id), void *arg,
                          struct cs_rewrap_result *out)
{
  struct cs_rewrap_result r = {0};
  enum cs_err e = rewrap_table(c, CS_TBL_CREDS, on_fail, arg, &r.credentials, &r.failed);

  if (!e)
    e = rewrap_table(c, CS_TBL_USAGES, on_fail, arg, &r.usages, &r.failed);
  const char *result = e ? "failure" : r.failed ? "partial" : "success";
  if (cs_audit_record(c, a, "keyring_rewrap", "keyring", result) && !e)
    e = CS_ERR_STORE;
  *out = r;
  return e;
}
