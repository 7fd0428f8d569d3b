/* Credentials: records, create/update with kept secrets, get, delete, list
 * (API.md §3). Every change is one store transaction. */
#include "svc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAGIC "CSC1"
#define HDR_LEN (4 + 1 + 8 + 8 + 8 + 4)
#define FP_HEX 32 /* hex chars of the sealed blob's digest shown as secret.encrypted */
#define DESCRIPTION_MAX 1024
#define PUT_RETRIES 8

/* The fields that carry secret input: secret.plain, or gcp's apiToken.plain. */
static const char *const secret_fields[] = {"secret", "apiToken"};

static void put_be(uint8_t *p, uint64_t v, int n)
{
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static int type_index(const struct cs_provider *p)
{
  for (int i = 0; cs_providers[i]; i++)
    if (cs_providers[i] == p)
      return i;
  return -1;
}

enum cs_err cs_cred_decode(const char *id, const struct cs_val *v, struct cs_cred_view *out)
{
  const uint8_t *p = v->data;
  size_t n = v->len;
  int ntypes = 0;

  while (cs_providers[ntypes])
    ntypes++;
  if (n < HDR_LEN || memcmp(p, MAGIC, 4) != 0 || p[4] >= ntypes)
    return CS_ERR_STORE;
  uint64_t meta_len = get_be(p + 29, 4);
  if (meta_len > n - HDR_LEN - 1)
    return CS_ERR_STORE;
  size_t fp_off = HDR_LEN + (size_t)meta_len;
  size_t fp_len = p[fp_off];
  if (fp_len > n - fp_off - 1)
    return CS_ERR_STORE;
  out->id = id;
  out->prov = cs_providers[p[4]];
  out->version = get_be(p + 5, 8);
  out->created = (int64_t)get_be(p + 13, 8);
  out->modified = (int64_t)get_be(p + 21, 8);
  out->meta = (const char *)p + HDR_LEN;
  out->meta_len = (size_t)meta_len;
  out->fp = (const char *)p + fp_off + 1;
  out->fp_len = fp_len;
  out->sealed = p + fp_off + 1 + fp_len;
  out->sealed_len = n - fp_off - 1 - fp_len;
  return CS_OK;
}

/* Build the stored bytes of a credential. Caller frees *out. */
static enum cs_err cred_encode(const struct cs_provider *prov, uint64_t version, int64_t created,
                               int64_t modified, const char *meta, const char *fp,
                               const uint8_t *sealed, size_t sealed_len, uint8_t **out,
                               size_t *out_len)
{
  size_t meta_len = strlen(meta), fp_len = strlen(fp);
  size_t n = HDR_LEN + meta_len + 1 + fp_len + sealed_len;
  uint8_t *p = malloc(n);
  if (!p)
    return CS_ERR_NOMEM;
  memcpy(p, MAGIC, 4);
  p[4] = (uint8_t)type_index(prov);
  put_be(p + 5, version, 8);
  put_be(p + 13, (uint64_t)created, 8);
  put_be(p + 21, (uint64_t)modified, 8);
  put_be(p + 29, meta_len, 4);
  memcpy(p + HDR_LEN, meta, meta_len);
  p[HDR_LEN + meta_len] = (uint8_t)fp_len;
  memcpy(p + HDR_LEN + meta_len + 1, fp, fp_len);
  if (sealed_len) /* aws with useAWSRole stores no secret */
    memcpy(p + HDR_LEN + meta_len + 1 + fp_len, sealed, sealed_len);
  *out = p;
  *out_len = n;
  return CS_OK;
}

static bool add_time(cJSON *o, const char *name, int64_t t)
{
  char buf[32];
  cs_time_format(t, buf);
  return cJSON_AddStringToObject(o, name, buf) != NULL;
}

/* Which field shows the secret in output: gcp API tokens use apiToken. */
static const char *secret_field_of(const cJSON *meta)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(meta, "authType");
  return cJSON_IsString(a) && strcmp(a->valuestring, "apiToken") == 0 ? "apiToken" : "secret";
}

cJSON *cs_cred_render(const struct cs_cred_view *c)
{
  cJSON *meta = NULL, *o = cJSON_CreateObject(), *item, *owner = NULL;

  if (!o || cs_json_parse(c->meta, c->meta_len, CS_JSON_MAX_DEPTH, &meta))
    goto fail;
  if (!cJSON_AddStringToObject(o, "_id", c->id) ||
      !cJSON_AddStringToObject(o, "type", c->prov->type))
    goto fail;
  const char *field = secret_field_of(meta);
  owner = cJSON_DetachItemFromObjectCaseSensitive(meta, "owner");
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "authType");
  /* Provider fields and description, in stored order. */
  while ((item = meta->child)) {
    cJSON_DetachItemViaPointer(meta, item);
    cJSON_AddItemToObject(o, item->string, item);
  }
  if (c->fp_len > 0) {
    char fp[256];
    cJSON *s = cJSON_AddObjectToObject(o, field);
    snprintf(fp, sizeof fp, "%.*s", (int)c->fp_len, c->fp);
    if (!s || !cJSON_AddStringToObject(s, "encrypted", fp))
      goto fail;
  }
  if (!cJSON_AddNumberToObject(o, "version", (double)c->version) ||
      !add_time(o, "created", c->created) || !add_time(o, "lastModified", c->modified))
    goto fail;
  if (owner)
    cJSON_AddItemToObject(o, "owner", owner);
  cJSON_Delete(meta);
  return o;
fail:
  cJSON_Delete(owner);
  cJSON_Delete(meta);
  cJSON_Delete(o);
  return NULL;
}

enum cs_err cs_cred_open_secret(const struct cs_app *app, const struct cs_cred_view *c,
                                uint8_t **plain, size_t *len)
{
  if (c->sealed_len == 0) {
    /* No secret stored (aws with useAWSRole): an empty plaintext. */
    if (!(*plain = calloc(1, 1)))
      return CS_ERR_NOMEM;
    *len = 0;
    return CS_OK;
  }
  return cs_open(app->keyring, c->id, c->sealed, c->sealed_len, plain, len);
}

/* ----------------------------------------------------------- create/update */

/* The state of an existing record, copied out of its read snapshot. */
struct existing {
  bool found;
  const struct cs_provider *prov;
  uint64_t version;
  int64_t created;
  char *meta;   /* JSON text */
  char fp[FP_HEX + 8];
  uint8_t *plain; /* opened secret, wiped on free */
  size_t plain_len;
  uint8_t *sealed; /* the stored sealed bytes, reused when the secret is kept */
  size_t sealed_len;
  bool kept;       /* the request keeps the stored secret */
};

static void existing_free(struct existing *x)
{
  free(x->meta);
  free(x->sealed);
  cs_open_free(x->plain, x->plain_len);
  memset(x, 0, sizeof *x);
}

static enum cs_err read_existing(struct cs_app *app, const char *id, struct existing *x)
{
  struct cs_txn *txn;
  struct cs_val v;
  struct cs_cred_view c;
  enum cs_err e = cs_store_read_begin(app->store, &txn);

  memset(x, 0, sizeof *x);
  if (e)
    return e;
  e = cs_txn_get(txn, CS_TBL_CREDS, id, strlen(id), &v);
  if (e == CS_ERR_NOT_FOUND) {
    e = CS_OK;
    goto out;
  }
  if (e || (e = cs_cred_decode(id, &v, &c)))
    goto out;
  x->found = true;
  x->prov = c.prov;
  x->version = c.version;
  x->created = c.created;
  snprintf(x->fp, sizeof x->fp, "%.*s", (int)c.fp_len, c.fp);
  if (!(x->meta = strndup(c.meta, c.meta_len)) || !(x->sealed = malloc(c.sealed_len + 1))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  memcpy(x->sealed, c.sealed, c.sealed_len);
  x->sealed_len = c.sealed_len;
  e = cs_cred_open_secret(app, &c, &x->plain, &x->plain_len);
out:
  cs_store_read_end(txn);
  if (e)
    existing_free(x);
  return e;
}

__attribute__((format(printf, 4, 5))) static enum cs_err
fail_field(struct cs_cred_put_result *out, enum cs_err e, const char *field, const char *fmt, ...)
{
  snprintf(out->perr.field, sizeof out->perr.field, "%s", field);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->perr.msg, sizeof out->perr.msg, fmt, ap);
  va_end(ap);
  return e;
}

/* Wipe every "plain" string under the secret fields of a working body. */
static void wipe_plain(cJSON *body)
{
  for (size_t i = 0; i < 2; i++) {
    cJSON *s = cJSON_GetObjectItemCaseSensitive(body, secret_fields[i]);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "plain");
    if (cJSON_IsString(p) && p->valuestring)
      cs_memzero(p->valuestring, strlen(p->valuestring));
  }
}

/*
 * Make the body the provider validates: a sent-back secret.encrypted (or
 * apiToken.encrypted) that matches the stored one, or an omitted secret on
 * update, becomes the stored plaintext; any other encrypted value is refused
 * so a blob can't move between records.
 */
static enum cs_err resolve_secret_input(cJSON *work, struct existing *x,
                                        struct cs_cred_put_result *out)
{
  bool any = false;

  for (size_t i = 0; i < 2; i++) {
    const char *name = secret_fields[i];
    cJSON *s = cJSON_GetObjectItemCaseSensitive(work, name);
    if (!s || cJSON_IsNull(s)) {
      cJSON_DeleteItemFromObjectCaseSensitive(work, name);
      continue;
    }
    any = true;
    if (!cJSON_IsObject(s))
      return fail_field(out, CS_ERR_INVALID, name, "%s must be an object", name);
    cJSON *plain = cJSON_GetObjectItemCaseSensitive(s, "plain");
    cJSON *enc = cJSON_GetObjectItemCaseSensitive(s, "encrypted");
    if (plain)
      continue; /* a new secret; the provider validates it */
    if (!enc)
      return fail_field(out, CS_ERR_MISSING, name, "%s needs plain (or its encrypted value)",
                        name);
    char field[32];
    snprintf(field, sizeof field, "%s.encrypted", name);
    if (!cJSON_IsString(enc) || !x->found || !x->fp[0] || strcmp(enc->valuestring, x->fp) != 0)
      return fail_field(out, CS_ERR_INVALID, field,
                        "%s is not this credential's current secret; send plain to replace it",
                        field);
    cJSON *p = cJSON_CreateString((const char *)x->plain);
    if (!p)
      return CS_ERR_NOMEM;
    cJSON_DeleteItemFromObjectCaseSensitive(s, "encrypted");
    cJSON_AddItemToObject(s, "plain", p);
    x->kept = true;
  }
  if (!any && x->found && x->plain_len > 0) {
    /* Omitted on update: keep the stored secret, in the field it came from. */
    cJSON *meta = NULL;
    if (cs_json_parse(x->meta, strlen(x->meta), CS_JSON_MAX_DEPTH, &meta))
      return CS_ERR_STORE;
    const char *name = secret_field_of(meta);
    cJSON_Delete(meta);
    cJSON *s = cJSON_AddObjectToObject(work, name);
    if (!s || !cJSON_AddStringToObject(s, "plain", (const char *)x->plain))
      return CS_ERR_NOMEM;
    x->kept = true;
  }
  return CS_OK;
}

/* The validated, sealed record ready for the write transaction. */
struct put_txn {
  const struct cs_keyring *kr;
  const char *id;
  const struct cs_cred_put *in;
  uint64_t expect_version; /* version seen when preparing (0 = absent) */
  bool conflict;           /* out: someone else wrote in between */
  uint64_t new_version;
  int64_t created;
  int64_t modified;
  const struct cs_provider *prov;
  const char *meta;
  const char *fp;
  const uint8_t *sealed;
  size_t sealed_len;
};

static enum cs_err put_write(struct cs_txn *txn, void *arg)
{
  struct put_txn *t = arg;
  struct cs_val v;
  struct cs_cred_view c;
  uint64_t cur = 0;
  uint8_t *rec = NULL;
  size_t rec_len = 0;
  enum cs_err e = cs_txn_get(txn, CS_TBL_CREDS, t->id, strlen(t->id), &v);

  t->conflict = false;
  if (e == CS_OK) {
    if ((e = cs_cred_decode(t->id, &v, &c)))
      return e;
    cur = c.version;
  } else if (e != CS_ERR_NOT_FOUND) {
    return e;
  }
  if (t->in->must_exist && cur == 0)
    return CS_ERR_NOT_FOUND;
  if (t->in->has_if_match && t->in->if_match != cur)
    return CS_ERR_PRECONDITION;
  if (cur != t->expect_version) {
    t->conflict = true; /* prepared against an older record: redo */
    return CS_ERR_PRECONDITION;
  }
  t->new_version = cur + 1;
  e = cred_encode(t->prov, t->new_version, t->created, t->modified, t->meta, t->fp, t->sealed,
                  t->sealed_len, &rec, &rec_len);
  if (!e)
    e = cs_txn_put(txn, CS_TBL_CREDS, t->id, strlen(t->id), rec, rec_len, 0);
  free(rec);
  /* The event, the webhooks and the audit entry commit with the change. */
  if (!e)
    e = cs_event_append(txn, cur ? "updated" : "created", t->id, t->new_version);
  if (!e && cur)
    e = cs_outbox_queue_update(txn, t->id, t->new_version);
  if (!e)
    e = cs_audit_append(txn, t->kr, t->in->actor, cur ? "update" : "create", t->id, "success");
  return e;
}

/* Compose the stored meta: provider fields, description, owner. */
static char *compose_meta(cJSON *pmeta, const char *description, const char *owner)
{
  if ((description && !cJSON_AddStringToObject(pmeta, "description", description)) ||
      (owner && !cJSON_AddStringToObject(pmeta, "owner", owner)))
    return NULL;
  return cs_json_print(pmeta);
}

static enum cs_err put_once(struct cs_app *app, const struct cs_cred_put *in,
                            struct cs_cred_put_result *out, bool *retry)
{
  struct existing x;
  struct cs_prov_result pr = {0};
  struct put_txn t = {.kr = app->keyring, .id = in->id, .in = in};
  const char *type = NULL, *description = NULL;
  cJSON *work = NULL;
  uint8_t *sealed = NULL;
  size_t sealed_len = 0;
  char *meta = NULL, *owner_copy = NULL;
  char fp[FP_HEX + 8] = "";
  enum cs_err e;

  *retry = false;
  if (cs_json_req_string(in->body, "type", 32, &type) || !(t.prov = cs_provider_find(type)))
    return fail_field(out, CS_ERR_INVALID, "type", "%s",
                      "type must be one of aws, azure, gcp, ibmCloud, kubeconfig");
  if (cs_json_opt_string(in->body, "description", DESCRIPTION_MAX, &description))
    return fail_field(out, CS_ERR_INVALID, "description", "%s",
                      "description must be a string of at most 1024 characters");
  if ((e = read_existing(app, in->id, &x)))
    return e;
  if (in->must_exist && !x.found) {
    e = CS_ERR_NOT_FOUND;
    goto out;
  }
  if (x.found && x.prov != t.prov) {
    e = fail_field(out, CS_ERR_INVALID, "type", "the type of an existing credential (%s) "
                   "cannot change; delete it and create a new one", x.prov->type);
    goto out;
  }
  if (in->has_if_match && in->if_match != x.version) {
    e = CS_ERR_PRECONDITION;
    goto out;
  }
  if (!(work = cJSON_Duplicate(in->body, true))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  if ((e = resolve_secret_input(work, &x, out)))
    goto out;
  if ((e = t.prov->validate(work, &pr, &out->perr)))
    goto out;
  if (x.kept && pr.secret_len == x.plain_len && pr.secret_len > 0 &&
      memcmp(pr.secret, x.plain, pr.secret_len) == 0) {
    /* Same secret: keep its sealed bytes, so secret.encrypted stays valid. */
    sealed = x.sealed;
    sealed_len = x.sealed_len;
    x.sealed = NULL;
    snprintf(fp, sizeof fp, "%s", x.fp);
  } else if (pr.secret_len > 0) {
    uint8_t digest[CS_HASH_BYTES];
    if ((e = cs_seal(app->keyring, in->id, (const uint8_t *)pr.secret, pr.secret_len, &sealed,
                     &sealed_len)))
      goto out;
    cs_digest(sealed, sealed_len, digest);
    memcpy(fp, "v1.", 3);
    cs_hex(digest, FP_HEX / 2, fp + 3);
  }
  /* The owner is whoever created the credential; updates keep it. */
  if (x.found) {
    cJSON *old = NULL;
    if (!cs_json_parse(x.meta, strlen(x.meta), CS_JSON_MAX_DEPTH, &old)) {
      const cJSON *o = cJSON_GetObjectItemCaseSensitive(old, "owner");
      if (cJSON_IsString(o))
        owner_copy = strdup(o->valuestring);
      cJSON_Delete(old);
    }
  }
  if (!(meta = compose_meta(pr.meta, description,
                            owner_copy ? owner_copy : (x.found ? NULL : in->who->key_id)))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  t.expect_version = x.found ? x.version : 0;
  t.created = x.found ? x.created : cs_now();
  t.modified = cs_now();
  t.meta = meta;
  t.fp = fp;
  t.sealed = sealed;
  t.sealed_len = sealed_len;
  e = cs_writer_submit(app->writer, put_write, &t);
  if (e == CS_ERR_PRECONDITION && t.conflict) {
    *retry = true;
    goto out;
  }
  if (e)
    goto out;
  if (x.found)
    cs_prov_net_invalidate(app->net, in->id); /* cached STS results of the old version */
  struct cs_cred_view view = {.id = in->id, .prov = t.prov, .version = t.new_version,
                              .created = t.created, .modified = t.modified, .meta = meta,
                              .meta_len = strlen(meta), .fp = fp, .fp_len = strlen(fp),
                              .sealed = sealed, .sealed_len = sealed_len};
  out->created = !x.found;
  if (!(out->credential = cs_cred_render(&view)))
    e = CS_ERR_NOMEM;
out:
  if (work)
    wipe_plain(work);
  cJSON_Delete(work);
  cs_prov_result_free(&pr);
  existing_free(&x);
  free(sealed);
  free(meta);
  free(owner_copy);
  return e;
}

enum cs_err cs_creds_put(struct cs_app *app, const struct cs_cred_put *in,
                         struct cs_cred_put_result *out)
{
  bool retry = true;
  enum cs_err e = CS_ERR_INTERNAL;

  memset(out, 0, sizeof *out);
  if (!cs_id_valid(in->id, strlen(in->id)))
    return fail_field(out, CS_ERR_BAD_ID, "_id", "%s",
                      "_id must be 1-128 characters of [A-Za-z0-9._-]");
  for (int i = 0; i < PUT_RETRIES && retry; i++)
    e = put_once(app, in, out, &retry);
  return retry ? CS_ERR_UNAVAILABLE : e;
}

/* --------------------------------------------------------- get and delete */

enum cs_err cs_creds_get(struct cs_app *app, const char *id, cJSON **out)
{
  struct cs_txn *txn;
  struct cs_val v;
  struct cs_cred_view c;
  enum cs_err e = cs_store_read_begin(app->store, &txn);

  if (e)
    return e;
  e = cs_txn_get(txn, CS_TBL_CREDS, id, strlen(id), &v);
  if (!e)
    e = cs_cred_decode(id, &v, &c);
  if (!e && !(*out = cs_cred_render(&c)))
    e = CS_ERR_NOMEM;
  cs_store_read_end(txn);
  return e;
}

struct delete_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *id;
  cJSON *usages; /* out, when in use */
};

static enum cs_err delete_write(struct cs_txn *txn, void *arg)
{
  struct delete_ctx *d = arg;
  struct cs_val v;
  struct cs_cred_view c;
  enum cs_err e;

  if ((e = cs_txn_get(txn, CS_TBL_CREDS, d->id, strlen(d->id), &v)) ||
      (e = cs_cred_decode(d->id, &v, &c)))
    return e;
  /* In the deleting transaction itself: a usage registered concurrently is
   * either seen here or finds the credential gone. */
  cJSON_Delete(d->usages);
  d->usages = NULL;
  if ((e = cs_usages_of(txn, d->id, c.version, &d->usages)))
    return e;
  if (d->usages)
    return CS_ERR_IN_USE;
  uint64_t version = c.version;
  if ((e = cs_txn_del(txn, CS_TBL_CREDS, d->id, strlen(d->id))) ||
      (e = cs_event_append(txn, "deleted", d->id, version)))
    return e;
  return cs_audit_append(txn, d->kr, d->a, "delete", d->id, "success");
}

enum cs_err cs_creds_delete(struct cs_app *app, const struct cs_actor *a, const char *id,
                            cJSON **usages)
{
  struct delete_ctx d = {app->keyring, a, id, NULL};
  enum cs_err e = cs_writer_submit(app->writer, delete_write, &d);
  *usages = NULL;
  if (e == CS_ERR_IN_USE)
    *usages = d.usages;
  else
    cJSON_Delete(d.usages);
  if (!e)
    cs_prov_net_invalidate(app->net, id);
  return e;
}

/* ------------------------------------------------------------------- list */

struct list_item {
  const char *id; /* borrowed from the snapshot */
  size_t id_len;
  struct cs_cred_view c;
};

static int cmp_items(const void *a, const void *b, void *arg)
{
  const struct list_item *x = a, *y = b;
  enum cs_cred_sort sort = *(const enum cs_cred_sort *)arg;
  int r = 0;

  switch (sort) {
  case CS_SORT_TYPE:
    r = strcmp(x->c.prov->type, y->c.prov->type);
    break;
  case CS_SORT_CREATED:
    r = (x->c.created > y->c.created) - (x->c.created < y->c.created);
    break;
  case CS_SORT_MODIFIED:
    r = (x->c.modified > y->c.modified) - (x->c.modified < y->c.modified);
    break;
  case CS_SORT_ID:
    break;
  }
  if (r == 0) {
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    r = memcmp(x->id, y->id, n);
    if (r == 0)
      r = (x->id_len > y->id_len) - (x->id_len < y->id_len);
  }
  return r;
}

/* Does the record match the query's type, search and scope? */
static bool matches(const struct cs_cred_query *q, const char *id, const struct cs_cred_view *c)
{
  if (q->type && c->prov != q->type)
    return false;
  if (q->scope && !cs_scope_allows(q->scope, id))
    return false;
  if (!q->search || !q->search[0])
    return true;
  if (strcasestr(id, q->search))
    return true;
  /* description and accountID live in the meta JSON. */
  cJSON *meta = NULL;
  bool hit = false;
  if (cs_json_parse(c->meta, c->meta_len, CS_JSON_MAX_DEPTH, &meta))
    return false;
  const char *fields[] = {"description", "accountID", "accountGUID"};
  for (size_t i = 0; i < 3 && !hit; i++) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(meta, fields[i]);
    hit = cJSON_IsString(f) && strcasestr(f->valuestring, q->search);
  }
  cJSON_Delete(meta);
  return hit;
}

/* Keys are NUL-free ids without terminator: copy one for rendering. */
static enum cs_err render_into(cJSON *page, const struct list_item *it)
{
  char id[CS_ID_MAX + 1];
  struct cs_cred_view c = it->c;
  if (it->id_len > CS_ID_MAX)
    return CS_ERR_STORE;
  memcpy(id, it->id, it->id_len);
  id[it->id_len] = '\0';
  c.id = id;
  cJSON *o = cs_cred_render(&c);
  if (!o)
    return CS_ERR_NOMEM;
  cJSON_AddItemToArray(page, o);
  return CS_OK;
}

/* The common case, ordered by id with no filter: walk the key order and
 * count from the table's size, so a page costs the same at any store size. */
static enum cs_err list_by_id(struct cs_txn *txn, const struct cs_cred_query *q, cJSON *page,
                              uint64_t *total)
{
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  uint64_t skipped = 0;
  enum cs_err e;

  if ((e = cs_txn_count(txn, CS_TBL_CREDS, total)) || (e = cs_cursor_open(txn, CS_TBL_CREDS, &cur)))
    return e;
  e = q->reverse ? cs_cursor_last(cur, &k, &v) : cs_cursor_seek(cur, NULL, 0, &k, &v);
  for (; e == CS_OK; e = q->reverse ? cs_cursor_prev(cur, &k, &v) : cs_cursor_next(cur, &k, &v)) {
    if (skipped < q->offset) {
      skipped++;
      continue;
    }
    if ((uint64_t)cJSON_GetArraySize(page) >= q->limit)
      break;
    struct list_item it = {.id = k.data, .id_len = k.len};
    if ((e = cs_cred_decode("", &v, &it.c)) || (e = render_into(page, &it)))
      break;
  }
  cs_cursor_close(cur);
  return e == CS_ERR_NOT_FOUND ? CS_OK : e;
}

static enum cs_err list_filtered(struct cs_txn *txn, const struct cs_cred_query *q, cJSON *page,
                                 uint64_t *total)
{
  struct cs_cursor *cur = NULL;
  struct cs_val k, v;
  struct list_item *items = NULL;
  size_t n = 0, cap = 0;
  enum cs_err e;

  if ((e = cs_cursor_open(txn, CS_TBL_CREDS, &cur)))
    return e;
  for (e = cs_cursor_seek(cur, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(cur, &k, &v)) {
    char id[CS_ID_MAX + 1];
    struct list_item it = {.id = k.data, .id_len = k.len};
    if (k.len > CS_ID_MAX || (e = cs_cred_decode("", &v, &it.c)))
      break;
    memcpy(id, k.data, k.len);
    id[k.len] = '\0';
    if (!matches(q, id, &it.c))
      continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 256;
      struct list_item *p = realloc(items, ncap * sizeof *p);
      if (!p) {
        e = CS_ERR_NOMEM;
        break;
      }
      items = p;
      cap = ncap;
    }
    items[n++] = it;
  }
  cs_cursor_close(cur);
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK;
  if (!e) {
    enum cs_cred_sort sort = q->sort;
    if (n > 1)
      qsort_r(items, n, sizeof *items, cmp_items, &sort);
    *total = n;
    for (uint64_t i = q->offset; i < n && (uint64_t)cJSON_GetArraySize(page) < q->limit && !e;
         i++)
      e = render_into(page, &items[q->reverse ? n - 1 - i : i]);
  }
  free(items);
  return e;
}

enum cs_err cs_creds_list(struct cs_app *app, const struct cs_cred_query *q, cJSON **page,
                          uint64_t *total)
{
  struct cs_txn *txn;
  cJSON *arr = cJSON_CreateArray();
  enum cs_err e;

  if (!arr)
    return CS_ERR_NOMEM;
  if ((e = cs_store_read_begin(app->store, &txn))) {
    cJSON_Delete(arr);
    return e;
  }
  if (q->sort == CS_SORT_ID && !q->type && !q->scope && !(q->search && q->search[0]))
    e = list_by_id(txn, q, arr, total);
  else
    e = list_filtered(txn, q, arr, total);
  cs_store_read_end(txn);
  if (e) {
    cJSON_Delete(arr);
    return e;
  }
  *page = arr;
  return CS_OK;
}
