/* Usages (API.md §4): a consumer's declared dependency on a credential.
 * The record and its index are usage_rec.c's; the rules are here: a usage
 * needs its credential in the same transaction, stats are bumped by
 * resolves, and the public view never shows the callback secret. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALLBACK_SECRET_BYTES 32

static bool add_time_or_null(cJSON *o, const char *name, const cJSON *epoch)
{
  if (!cJSON_IsNumber(epoch) || epoch->valuedouble <= 0)
    return cJSON_AddNullToObject(o, name) != NULL;
  char buf[32];
  cs_time_format((int64_t)epoch->valuedouble, buf);
  return cJSON_AddStringToObject(o, name, buf) != NULL;
}

/* The public view of a stored usage; never the callback secret. */
static cJSON *render_usage(const cJSON *rec, uint64_t cred_version)
{
  static const char *const copy[] = {"id",    "type",        "description", "callbackUrl",
                                     "owner", "seenVersion", "resolveCount"};
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, copy[i]);
    if (f && !cJSON_AddItemToObject(o, copy[i], cJSON_Duplicate(f, true)))
      goto fail;
  }
  const cJSON *seen = cJSON_GetObjectItemCaseSensitive(rec, "seenVersion");
  if (!add_time_or_null(o, "createdAt", cJSON_GetObjectItemCaseSensitive(rec, "createdAt")) ||
      !add_time_or_null(o, "lastResolvedAt",
                        cJSON_GetObjectItemCaseSensitive(rec, "lastResolvedAt")) ||
      !cJSON_AddStringToObject(o, "material", cs_usage_material_name(cs_usage_material(rec))) ||
      !cJSON_AddBoolToObject(o, "stale",
                             cJSON_IsNumber(seen) && (uint64_t)seen->valuedouble < cred_version))
    goto fail;
  return o;
fail:
  cJSON_Delete(o);
  return NULL;
}

struct render_ctx {
  cJSON *arr;
  uint64_t version;
};

static enum cs_err render_one(cJSON *rec, void *arg)
{
  struct render_ctx *r = arg;
  cJSON *o = render_usage(rec, r->version);
  if (!o)
    return CS_ERR_NOMEM;
  cJSON_AddItemToArray(r->arr, o);
  return CS_OK;
}

enum cs_err cs_usages_of(struct cs_txn *txn, const char *cred_id, uint64_t cred_version,
                         cJSON **out)
{
  struct render_ctx r = {cJSON_CreateArray(), cred_version};
  if (!r.arr)
    return CS_ERR_NOMEM;
  enum cs_err e = cs_usage_each(txn, cred_id, render_one, &r);
  if (e || cJSON_GetArraySize(r.arr) == 0) {
    cJSON_Delete(r.arr);
    *out = NULL;
    return e;
  }
  *out = r.arr;
  return CS_OK;
}

/* The version of an existing credential. */
static enum cs_err cred_version(struct cs_txn *txn, const char *cred_id, uint64_t *out)
{
  struct cs_cred_view c;
  enum cs_err e = cs_cred_load(txn, cred_id, &c);
  if (!e)
    *out = c.version;
  return e;
}

/* ---------------------------------------------------------------- create */

struct create_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const struct cs_usage_new *in;
  cJSON *rec;
  uint64_t version; /* out: the credential's version */
};

static enum cs_err create_txn(struct cs_txn *txn, void *arg)
{
  struct create_ctx *c = arg;
  enum cs_err e;

  /* The credential must exist in this very transaction: a concurrent delete
   * either sees this usage or has already removed the credential. */
  if ((e = cred_version(txn, c->in->cred_id, &c->version)))
    return e;
  if ((e = cs_usage_save(txn, c->rec, CS_PUT_NO_OVERWRITE)) ||
      (e = cs_event_append(txn, "usage_added", c->in->cred_id, c->version)))
    return e;
  return cs_audit_append(txn, c->kr, c->a, "usage_create", c->in->cred_id, "success");
}

/* The stored record of a new usage @p uid; @p secret gets its callback secret. */
static enum cs_err new_record(struct cs_core *c, const struct cs_actor *a,
                              const struct cs_usage_new *in, const char *uid,
                              char secret[2 * CALLBACK_SECRET_BYTES + 1], cJSON **out)
{
  cJSON *rec = cJSON_CreateObject();
  enum cs_err e = CS_ERR_NOMEM;

  if (!rec || !cJSON_AddStringToObject(rec, "id", uid) ||
      !cJSON_AddStringToObject(rec, "credentialId", in->cred_id) ||
      !cJSON_AddStringToObject(rec, "type", in->type) ||
      !cJSON_AddStringToObject(rec, "description", in->description ? in->description : ""))
    goto out;
  if (in->callback_url) {
    /* The callback secret signs webhooks, so it is kept, sealed to this usage. */
    cs_random_hex(secret, CALLBACK_SECRET_BYTES);
    if (!cJSON_AddStringToObject(rec, "callbackUrl", in->callback_url))
      goto out;
    if ((e = cs_usage_seal_callback(c->keyring, uid, secret, rec)))
      goto out;
    e = CS_ERR_NOMEM;
  }
  if ((e = cs_usage_set_material(rec, in->material)))
    goto out;
  e = CS_ERR_NOMEM;
  if (!cJSON_AddNumberToObject(rec, "createdAt", (double)cs_now()) ||
      !cJSON_AddStringToObject(rec, "owner", a->key_id) ||
      !cJSON_AddNumberToObject(rec, "seenVersion", 0) ||
      !cJSON_AddNumberToObject(rec, "resolveCount", 0) ||
      !cJSON_AddNullToObject(rec, "lastResolvedAt"))
    goto out;
  *out = rec;
  rec = NULL;
  e = CS_OK;
out:
  cJSON_Delete(rec);
  return e;
}

enum cs_err cs_usages_create(struct cs_core *c, const struct cs_actor *a,
                             const struct cs_usage_new *in, cJSON **out)
{
  char uid[24], secret[2 * CALLBACK_SECRET_BYTES + 1] = "";
  struct create_ctx cc = {c->keyring, a, in, NULL, 0};
  cJSON *rendered = NULL;
  enum cs_err e;

  memcpy(uid, "u-", 2);
  cs_random_hex(uid + 2, 10);
  if ((e = new_record(c, a, in, uid, secret, &cc.rec)) || (e = cs_core_write(c, create_txn, &cc)))
    goto out;
  e = CS_ERR_NOMEM;
  /* seenVersion 0: a new usage has resolved nothing yet, so it is stale
   * until its first resolve, as it will be listed. */
  if (!(rendered = render_usage(cc.rec, cc.version)))
    goto out;
  if (secret[0] && !cJSON_AddStringToObject(rendered, "callbackSecret", secret))
    goto out;
  *out = rendered;
  rendered = NULL;
  e = CS_OK;
out:
  cs_memzero(secret, sizeof secret);
  cJSON_Delete(rendered);
  cJSON_Delete(cc.rec);
  return e;
}

/* ---------------------------------------------------------- list / delete */

enum cs_err cs_usages_list(struct cs_core *c, const char *cred_id, cJSON **out)
{
  struct cs_txn *txn;
  uint64_t version = 0;
  cJSON *arr = NULL;
  enum cs_err e = cs_store_read_begin(c->store, &txn);
  if (e)
    return e;
  if (!(e = cred_version(txn, cred_id, &version)))
    e = cs_usages_of(txn, cred_id, version, &arr);
  cs_store_read_end(txn);
  if (e)
    return e;
  *out = arr ? arr : cJSON_CreateArray();
  return *out ? CS_OK : CS_ERR_NOMEM;
}

struct delete_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *cred_id, *usage_id;
};

static enum cs_err delete_txn(struct cs_txn *txn, void *arg)
{
  struct delete_ctx *c = arg;
  uint64_t version = 0;
  enum cs_err e;

  if ((e = cs_usage_check(txn, c->cred_id, c->usage_id, NULL)))
    return e;
  if ((e = cs_txn_del(txn, CS_TBL_USAGES, c->usage_id, strlen(c->usage_id))) ||
      (e = cs_usage_index(txn, c->cred_id, c->usage_id, NULL)))
    return e;
  if ((e = cred_version(txn, c->cred_id, &version)) && e != CS_ERR_NOT_FOUND)
    return e;
  if ((e = cs_event_append(txn, "usage_removed", c->cred_id, version)))
    return e;
  return cs_audit_append(txn, c->kr, c->a, "usage_delete", c->cred_id, "success");
}

enum cs_err cs_usages_delete(struct cs_core *c, const struct cs_actor *a, const char *cred_id,
                             const char *usage_id)
{
  struct delete_ctx d = {c->keyring, a, cred_id, usage_id};
  if (!cs_id_valid(usage_id, strlen(usage_id)))
    return CS_ERR_NOT_FOUND;
  return cs_core_write(c, delete_txn, &d);
}

enum cs_err cs_usage_check(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                           enum cs_usage_material *material)
{
  /* The index entry is written and removed in the same transactions as the
   * record, so it answers "whose usage" without parsing the record (the
   * resolve hot path). */
  if (!cs_id_valid(usage_id, strlen(usage_id)))
    return CS_ERR_NOT_FOUND;
  return cs_usage_indexed(txn, cred_id, usage_id, material);
}

/* ------------------------------------------------------------ resolve stats */

/* Usage stats coalesced per group commit: each resolve's op appends its own
 * audit entry but only queues its stats here; the batch's flush (run on the
 * writer thread as the batch's last change) writes each usage once, however
 * many of its resolves the batch holds, instead of parsing and printing the
 * record once per resolve. Per writer thread; an op may run more than once
 * (a retried batch), so an entry counts only while its op is "queued". */
#define SEEN_BATCH_MAX 512
static _Thread_local struct {
  struct cs_usage_seen *op[SEEN_BATCH_MAX];
  size_t n;
} seen_batch;

/* Add @p n resolves up to @p version to the stats of @p usage_id: a few
 * bytes of its index entry rewritten, no JSON; a usage removed meanwhile
 * keeps no stats. */
static enum cs_err save_stats(struct cs_txn *txn, const char *cred_id, const char *usage_id,
                              unsigned n, uint64_t version)
{
  enum cs_err e = cs_usage_bump(txn, cred_id, usage_id, n, version, cs_now());
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

enum cs_err cs_usage_seen_txn(struct cs_txn *txn, void *arg)
{
  struct cs_usage_seen *s = arg;
  enum cs_err e = cs_audit_append(txn, s->kr, s->a, "resolve", s->cred_id, s->result);

  s->queued = false; /* a rerun queues again */
  if (e || !s->usage_id)
    return e;
  if (cs_writer_flushing(s->w) && seen_batch.n < SEEN_BATCH_MAX) {
    seen_batch.op[seen_batch.n++] = s;
    s->queued = true;
    return CS_OK;
  }
  return save_stats(txn, s->cred_id, s->usage_id, 1, s->version);
}

/* The batch's flush: one stats write per usage for all its queued resolves.
 * @return CS_ERR_NOT_FOUND when nothing was queued (so a batch whose other
 * changes all failed still skips its commit). */
static enum cs_err seen_flush_txn(struct cs_txn *txn, void *arg)
{
  enum cs_err e = CS_OK;
  bool any = false;

  (void)arg;
  for (size_t i = 0; i < seen_batch.n && !e; i++) {
    struct cs_usage_seen *s = seen_batch.op[i];
    unsigned n = 0;
    uint64_t version = 0;
    if (!s->queued)
      continue;
    for (size_t j = i; j < seen_batch.n; j++) {
      struct cs_usage_seen *t = seen_batch.op[j];
      if (t->queued && strcmp(t->usage_id, s->usage_id) == 0) {
        n++;
        version = t->version > version ? t->version : version;
        t->queued = false; /* counted (the same op may be listed twice after a rerun) */
      }
    }
    e = save_stats(txn, s->cred_id, s->usage_id, n, version);
    any = true;
  }
  seen_batch.n = 0; /* a rerun of the batch queues its resolves again */
  return e ? e : any ? CS_OK : CS_ERR_NOT_FOUND;
}

/* After every batch: whatever was queued and not flushed (a failed batch)
 * belongs to ops whose submitters are about to return. */
static void seen_drop(void *arg)
{
  (void)arg;
  for (size_t i = 0; i < seen_batch.n; i++)
    seen_batch.op[i]->queued = false;
  seen_batch.n = 0;
}

void cs_usage_coalesce(struct cs_core *c)
{
  cs_writer_set_flush(c->writer, seen_flush_txn, seen_drop, c);
}

void cs_usage_seen_init(struct cs_usage_seen *s, struct cs_core *c, const struct cs_actor *a,
                        const char *cred_id, const char *usage_id, uint64_t version,
                        const char *result)
{
  *s = (struct cs_usage_seen){c->keyring, a, cred_id, usage_id, version, result, c->writer, false};
}

enum cs_err cs_usage_callback(const struct cs_keyring *kr, struct cs_txn *txn, const char *usage_id,
                              char **url, char **secret)
{
  cJSON *rec = NULL;
  char *s = NULL;
  enum cs_err e;

  if ((e = cs_usage_load(txn, usage_id, &rec)))
    return e;
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(rec, "callbackUrl");
  e = CS_ERR_NOT_FOUND;
  if (cJSON_IsString(u) && !(e = cs_usage_open_callback(kr, usage_id, rec, &s))) {
    if ((*url = strdup(u->valuestring))) {
      *secret = s;
    } else {
      cs_free_secret_str(s);
      e = CS_ERR_NOMEM;
    }
  }
  cJSON_Delete(rec);
  return e;
}
