/* Usages (API.md §4): a consumer's declared dependency on a credential.
 *
 * CS_TBL_USAGES: usage id → {"id","credentialId","type","description",
 *   "callbackUrl"?,"callbackSecretSealed"?,"createdAt","owner","seenVersion",
 *   "resolveCount","lastResolvedAt"}   (times as epoch seconds)
 * CS_TBL_USAGES_BY_CRED: credential id '\0' usage id → "" (the index that
 *   makes "delete only if unused" one lookup in the deleting transaction). */
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALLBACK_SECRET_BYTES 32

static size_t index_key(const char *cred_id, const char *usage_id, char *out, size_t cap)
{
  size_t a = strlen(cred_id), b = strlen(usage_id);
  if (a + 1 + b > cap)
    return 0;
  memcpy(out, cred_id, a);
  out[a] = '\0';
  memcpy(out + a + 1, usage_id, b);
  return a + 1 + b;
}

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
  static const char *const copy[] = {"id", "type", "description", "callbackUrl", "owner",
                                     "seenVersion", "resolveCount"};
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
      !cJSON_AddBoolToObject(o, "stale", cJSON_IsNumber(seen) &&
                                             (uint64_t)seen->valuedouble < cred_version))
    goto fail;
  return o;
fail:
  cJSON_Delete(o);
  return NULL;
}

static enum cs_err load_usage(struct cs_txn *txn, const char *id, cJSON **out)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_USAGES, id, strlen(id), &v);
  if (e)
    return e;
  if (cs_json_parse(v.data, v.len, 8, out))
    return CS_ERR_STORE;
  return CS_OK;
}

static enum cs_err save_usage(struct cs_txn *txn, const cJSON *rec, unsigned flags)
{
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
  char *text = cs_json_print(rec);
  if (!text || !cJSON_IsString(id)) {
    free(text);
    return CS_ERR_NOMEM;
  }
  enum cs_err e = cs_txn_put(txn, CS_TBL_USAGES, id->valuestring, strlen(id->valuestring), text,
                             strlen(text), flags);
  free(text);
  return e;
}

/* Visit every usage record of a credential (via the index). */
static enum cs_err each_usage(struct cs_txn *txn, const char *cred_id,
                              enum cs_err (*fn)(cJSON *rec, void *arg), void *arg)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  size_t plen = strlen(cred_id) + 1;
  enum cs_err e;

  if ((e = cs_cursor_open(txn, CS_TBL_USAGES_BY_CRED, &c)))
    return e;
  for (e = cs_cursor_seek(c, cred_id, plen, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v)) {
    char uid[CS_ID_MAX + 1];
    cJSON *rec = NULL;
    if (k.len <= plen || memcmp(k.data, cred_id, plen) != 0)
      break;
    if (k.len - plen > CS_ID_MAX) {
      e = CS_ERR_STORE;
      break;
    }
    memcpy(uid, (const char *)k.data + plen, k.len - plen);
    uid[k.len - plen] = '\0';
    if ((e = load_usage(txn, uid, &rec)))
      break;
    e = fn(rec, arg);
    cJSON_Delete(rec);
    if (e)
      break;
  }
  cs_cursor_close(c);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
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
  enum cs_err e = each_usage(txn, cred_id, render_one, &r);
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
  struct cs_val v;
  struct cs_cred_view c;
  enum cs_err e = cs_txn_get(txn, CS_TBL_CREDS, cred_id, strlen(cred_id), &v);
  if (!e)
    e = cs_cred_decode(cred_id, &v, &c);
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
  char ikey[2 * CS_ID_MAX + 2];
  const char *uid = cJSON_GetObjectItemCaseSensitive(c->rec, "id")->valuestring;
  size_t klen = index_key(c->in->cred_id, uid, ikey, sizeof ikey);
  enum cs_err e;

  /* The credential must exist in this very transaction: a concurrent delete
   * either sees this usage or has already removed the credential. */
  if ((e = cred_version(txn, c->in->cred_id, &c->version)))
    return e;
  if ((e = save_usage(txn, c->rec, CS_PUT_NO_OVERWRITE)) ||
      (e = cs_txn_put(txn, CS_TBL_USAGES_BY_CRED, ikey, klen, "", 0, 0)) ||
      (e = cs_event_append(txn, "usage_added", c->in->cred_id, c->version)))
    return e;
  return cs_audit_append(txn, c->kr, c->a, "usage_create", c->in->cred_id, "success");
}

enum cs_err cs_usages_create(struct cs_app *app, const struct cs_actor *a,
                             const struct cs_usage_new *in, cJSON **out)
{
  char uid[24], secret[2 * CALLBACK_SECRET_BYTES + 1] = "", record_id[64];
  uint8_t *sealed = NULL;
  size_t sealed_len = 0;
  char *sealed_hex = NULL;
  struct create_ctx c = {app->keyring, a, in, NULL, 0};
  cJSON *rendered = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  memcpy(uid, "u-", 2);
  cs_random_hex(uid + 2, 10);
  if (!(c.rec = cJSON_CreateObject()) || !cJSON_AddStringToObject(c.rec, "id", uid) ||
      !cJSON_AddStringToObject(c.rec, "credentialId", in->cred_id) ||
      !cJSON_AddStringToObject(c.rec, "type", in->type) ||
      !cJSON_AddStringToObject(c.rec, "description", in->description ? in->description : ""))
    goto out;
  if (in->callback_url) {
    /* The callback secret signs webhooks, so it is kept, sealed to this usage. */
    cs_random_hex(secret, CALLBACK_SECRET_BYTES);
    snprintf(record_id, sizeof record_id, "usage:%s", uid);
    if ((e = cs_seal(app->keyring, record_id, (const uint8_t *)secret, strlen(secret), &sealed,
                     &sealed_len)))
      goto out;
    e = CS_ERR_NOMEM;
    if (!(sealed_hex = malloc(2 * sealed_len + 1)))
      goto out;
    cs_hex(sealed, sealed_len, sealed_hex);
    if (!cJSON_AddStringToObject(c.rec, "callbackUrl", in->callback_url) ||
        !cJSON_AddStringToObject(c.rec, "callbackSecretSealed", sealed_hex))
      goto out;
  }
  if (!cJSON_AddNumberToObject(c.rec, "createdAt", (double)cs_now()) ||
      !cJSON_AddStringToObject(c.rec, "owner", a->key_id) ||
      !cJSON_AddNumberToObject(c.rec, "seenVersion", 0) ||
      !cJSON_AddNumberToObject(c.rec, "resolveCount", 0) ||
      !cJSON_AddNullToObject(c.rec, "lastResolvedAt"))
    goto out;
  if ((e = cs_writer_submit(app->writer, create_txn, &c)))
    goto out;
  e = CS_ERR_NOMEM;
  /* seenVersion 0: a new usage has resolved nothing yet, so it is stale
   * until its first resolve, as it will be listed. */
  if (!(rendered = render_usage(c.rec, c.version)))
    goto out;
  if (secret[0] && !cJSON_AddStringToObject(rendered, "callbackSecret", secret))
    goto out;
  *out = rendered;
  rendered = NULL;
  e = CS_OK;
out:
  cs_memzero(secret, sizeof secret);
  cJSON_Delete(rendered);
  cJSON_Delete(c.rec);
  free(sealed);
  free(sealed_hex);
  return e;
}

/* ---------------------------------------------------------- list / delete */

enum cs_err cs_usages_list(struct cs_app *app, const char *cred_id, cJSON **out)
{
  struct cs_txn *txn;
  uint64_t version = 0;
  cJSON *arr = NULL;
  enum cs_err e = cs_store_read_begin(app->store, &txn);
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
  char ikey[2 * CS_ID_MAX + 2];
  cJSON *rec = NULL;
  uint64_t version = 0;
  enum cs_err e;

  if ((e = load_usage(txn, c->usage_id, &rec)))
    return e;
  const cJSON *owner = cJSON_GetObjectItemCaseSensitive(rec, "credentialId");
  bool mine = cJSON_IsString(owner) && strcmp(owner->valuestring, c->cred_id) == 0;
  cJSON_Delete(rec);
  if (!mine)
    return CS_ERR_NOT_FOUND;
  size_t klen = index_key(c->cred_id, c->usage_id, ikey, sizeof ikey);
  if ((e = cs_txn_del(txn, CS_TBL_USAGES, c->usage_id, strlen(c->usage_id))) ||
      (e = cs_txn_del(txn, CS_TBL_USAGES_BY_CRED, ikey, klen)))
    return e;
  if ((e = cred_version(txn, c->cred_id, &version)) && e != CS_ERR_NOT_FOUND)
    return e;
  if ((e = cs_event_append(txn, "usage_removed", c->cred_id, version)))
    return e;
  return cs_audit_append(txn, c->kr, c->a, "usage_delete", c->cred_id, "success");
}

enum cs_err cs_usages_delete(struct cs_app *app, const struct cs_actor *a, const char *cred_id,
                             const char *usage_id)
{
  struct delete_ctx c = {app->keyring, a, cred_id, usage_id};
  if (!cs_id_valid(usage_id, strlen(usage_id)))
    return CS_ERR_NOT_FOUND;
  return cs_writer_submit(app->writer, delete_txn, &c);
}

/* ------------------------------------------------------------------ outbox */

struct outbox_ctx {
  struct cs_txn *txn;
  const char *cred_id;
  uint64_t version;
};

static enum cs_err queue_one(cJSON *rec, void *arg)
{
  struct outbox_ctx *o = arg;
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(rec, "callbackUrl");
  const cJSON *uid = cJSON_GetObjectItemCaseSensitive(rec, "id");
  uint64_t seq;
  uint8_t key[8];
  char *text = NULL, target[CS_HTTP_TARGET_MAX];
  const char *why;
  enum cs_err e;

  if (!cJSON_IsString(url) || !cJSON_IsString(uid))
    return CS_OK;
  if ((e = cs_txn_last_seq(o->txn, CS_TBL_OUTBOX, &seq)))
    return e;
  /* The target lets the delivery scan pass over a busy target's entries
   * without opening their usages; delivery checks the URL itself. */
  bool hint = cs_http_check_url(NULL, url->valuestring, target, &why) == CS_OK;
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "usageId", uid->valuestring) ||
      !cJSON_AddStringToObject(j, "credentialId", o->cred_id) ||
      !cJSON_AddNumberToObject(j, "version", (double)o->version) ||
      !cJSON_AddNumberToObject(j, "attempts", 0) || !cJSON_AddNumberToObject(j, "nextAt", 0) ||
      (hint && !cJSON_AddStringToObject(j, "target", target)) || !(text = cs_json_print(j))) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  cJSON_Delete(j);
  cs_store_seq_key(seq + 1, key);
  e = cs_txn_put(o->txn, CS_TBL_OUTBOX, key, 8, text, strlen(text), CS_PUT_NO_OVERWRITE);
  free(text);
  return e;
}

enum cs_err cs_outbox_queue_update(struct cs_txn *txn, const char *cred_id, uint64_t version)
{
  struct outbox_ctx o = {txn, cred_id, version};
  return each_usage(txn, cred_id, queue_one, &o);
}

/* ------------------------------------------------------------ resolve stats */

struct seen_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *cred_id, *usage_id;
  uint64_t version;
  const char *result;
};

static enum cs_err seen_txn(struct cs_txn *txn, void *arg)
{
  struct seen_ctx *s = arg;
  cJSON *rec = NULL;
  enum cs_err e;

  if (s->usage_id && (e = load_usage(txn, s->usage_id, &rec)) == CS_OK) {
    cJSON *count = cJSON_GetObjectItemCaseSensitive(rec, "resolveCount");
    double n = cJSON_IsNumber(count) ? count->valuedouble + 1 : 1;
    cJSON *seen = cJSON_GetObjectItemCaseSensitive(rec, "seenVersion");
    double prev = cJSON_IsNumber(seen) ? seen->valuedouble : 0;
    if (!cJSON_ReplaceItemInObjectCaseSensitive(rec, "resolveCount", cJSON_CreateNumber(n)) ||
        !cJSON_ReplaceItemInObjectCaseSensitive(
            rec, "seenVersion",
            cJSON_CreateNumber((double)s->version > prev ? (double)s->version : prev)) ||
        !cJSON_ReplaceItemInObjectCaseSensitive(rec, "lastResolvedAt",
                                                cJSON_CreateNumber((double)cs_now()))) {
      cJSON_Delete(rec);
      return CS_ERR_NOMEM;
    }
    e = save_usage(txn, rec, 0);
    cJSON_Delete(rec);
    if (e)
      return e;
  } else if (s->usage_id && e != CS_ERR_NOT_FOUND) {
    return e; /* a usage removed meanwhile keeps no stats, but is still audited */
  }
  return cs_audit_append(txn, s->kr, s->a, "resolve", s->cred_id, s->result);
}

enum cs_err cs_usage_record_resolve(struct cs_app *app, const struct cs_actor *a,
                                    const char *cred_id, const char *usage_id, uint64_t version,
                                    const char *result)
{
  struct seen_ctx s = {app->keyring, a, cred_id, usage_id, version, result};
  return cs_writer_submit(app->writer, seen_txn, &s);
}

enum cs_err cs_usage_check(struct cs_txn *txn, const char *cred_id, const char *usage_id)
{
  cJSON *rec = NULL;
  enum cs_err e;
  if (!cs_id_valid(usage_id, strlen(usage_id)))
    return CS_ERR_NOT_FOUND;
  if ((e = load_usage(txn, usage_id, &rec)))
    return e;
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(rec, "credentialId");
  e = cJSON_IsString(c) && strcmp(c->valuestring, cred_id) == 0 ? CS_OK : CS_ERR_NOT_FOUND;
  cJSON_Delete(rec);
  return e;
}

enum cs_err cs_usage_callback(struct cs_app *app, struct cs_txn *txn, const char *usage_id,
                              char **url, char **secret)
{
  cJSON *rec = NULL;
  char record_id[64];
  enum cs_err e;
  if ((e = load_usage(txn, usage_id, &rec)))
    return e;
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(rec, "callbackUrl");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, "callbackSecretSealed");
  e = CS_ERR_NOT_FOUND;
  if (cJSON_IsString(u) && cJSON_IsString(s)) {
    size_t hl = strlen(s->valuestring), n = hl / 2;
    uint8_t *sealed = malloc(n + 1), *plain = NULL;
    size_t plen = 0;
    e = CS_ERR_NOMEM;
    if (sealed) {
      e = CS_ERR_STORE;
      bool ok = hl % 2 == 0;
      for (size_t i = 0; ok && i < n; i++) {
        unsigned v;
        ok = sscanf(s->valuestring + 2 * i, "%2x", &v) == 1;
        sealed[i] = (uint8_t)v;
      }
      snprintf(record_id, sizeof record_id, "usage:%s", usage_id);
      if (ok && !(e = cs_open(app->keyring, record_id, sealed, n, &plain, &plen))) {
        *secret = (char *)plain; /* NUL-terminated by cs_open */
        if (!(*url = strdup(u->valuestring))) {
          cs_open_free(plain, plen);
          e = CS_ERR_NOMEM;
        }
      }
      free(sealed);
    }
  }
  cJSON_Delete(rec);
  return e;
}
