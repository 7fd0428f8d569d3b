/* Credentials (API.md §3): create/update with kept secrets, get, delete.
 * Every change is one store transaction with its event, its webhooks and
 * its audit entry. The record is cred_rec.c's; listing is cred_list.c. */
#include "core_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIPTION_MAX 1024
#define PUT_RETRIES 8

/* The fields that carry secret input: secret.plain, or gcp's apiToken.plain. */
static const char *const secret_fields[] = {"secret", "apiToken"};

/* ------------------------------------------------------- the stored state */

/* The state of an existing record, copied out of its read snapshot. */
struct existing {
  bool found;
  const struct cs_provider *prov;
  uint64_t version;
  int64_t created;
  char *meta; /* JSON text */
  char fp[CS_CRED_FP_MAX];
  uint8_t *plain; /* opened secret, wiped on free */
  size_t plain_len;
  uint8_t *sealed; /* the stored sealed bytes, reused when the secret is kept */
  size_t sealed_len;
  bool kept; /* the request keeps the stored secret */
};

static void existing_free(struct existing *x)
{
  free(x->meta);
  free(x->sealed);
  cs_open_free(x->plain, x->plain_len);
  memset(x, 0, sizeof *x);
}

static enum cs_err read_existing(struct cs_core *c, const char *id, struct existing *x)
{
  struct cs_txn *txn;
  struct cs_cred_view v;
  enum cs_err e = cs_store_read_begin(c->store, &txn);

  memset(x, 0, sizeof *x);
  if (e)
    return e;
  e = cs_cred_load(txn, id, &v);
  if (e == CS_ERR_NOT_FOUND) {
    e = CS_OK;
    goto out;
  }
  if (e)
    goto out;
  x->found = true;
  x->prov = v.prov;
  x->version = v.version;
  x->created = v.created;
  snprintf(x->fp, sizeof x->fp, "%.*s", (int)v.fp_len, v.fp);
  if (!(x->meta = strndup(v.meta, v.meta_len)) || !(x->sealed = malloc(v.sealed_len + 1))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  memcpy(x->sealed, v.sealed, v.sealed_len);
  x->sealed_len = v.sealed_len;
  e = cs_cred_open_secret(c->keyring, &v, &x->plain, &x->plain_len);
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

/* ------------------------------------------------------------ secret input */

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

/* One secret field: a new plain value, or a sent-back encrypted value that
 * must be this credential's current one (it becomes the stored plaintext,
 * so a blob can't move between records). Sets *any when present. */
static enum cs_err secret_field_input(cJSON *work, const char *name, struct existing *x, bool *any,
                                      struct cs_cred_put_result *out)
{
  cJSON *s = cJSON_GetObjectItemCaseSensitive(work, name);
  char field[32];

  if (!s || cJSON_IsNull(s)) {
    cJSON_DeleteItemFromObjectCaseSensitive(work, name);
    return CS_OK;
  }
  *any = true;
  if (!cJSON_IsObject(s))
    return fail_field(out, CS_ERR_INVALID, name, "%s must be an object", name);
  cJSON *plain = cJSON_GetObjectItemCaseSensitive(s, "plain");
  cJSON *enc = cJSON_GetObjectItemCaseSensitive(s, "encrypted");
  if (plain)
    return CS_OK; /* a new secret; the provider validates it */
  if (!enc)
    return fail_field(out, CS_ERR_MISSING, name, "%s needs plain (or its encrypted value)", name);
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
  return CS_OK;
}

/*
 * Make the body the provider validates: a sent-back secret.encrypted (or
 * apiToken.encrypted) that matches the stored one, or an omitted secret on
 * update, becomes the stored plaintext; any other encrypted value is refused.
 */
static enum cs_err resolve_secret_input(cJSON *work, struct existing *x,
                                        struct cs_cred_put_result *out)
{
  bool any = false;
  enum cs_err e;

  for (size_t i = 0; i < 2; i++)
    if ((e = secret_field_input(work, secret_fields[i], x, &any, out)))
      return e;
  if (!any && x->found && x->plain_len > 0) {
    /* Omitted on update: keep the stored secret, in the field it came from. */
    cJSON *meta = NULL;
    if (cs_json_parse(x->meta, strlen(x->meta), CS_JSON_MAX_DEPTH, &meta))
      return CS_ERR_STORE;
    const char *name = cs_cred_secret_field(meta);
    cJSON_Delete(meta);
    cJSON *s = cJSON_AddObjectToObject(work, name);
    if (!s || !cJSON_AddStringToObject(s, "plain", (const char *)x->plain))
      return CS_ERR_NOMEM;
    x->kept = true;
  }
  return CS_OK;
}

/* ----------------------------------------------------------- the write */

/* The validated, sealed record ready for the write transaction. */
struct put_txn {
  const struct cs_keyring *kr;
  const struct cs_cred_put *in;
  uint64_t expect_version; /* version seen when preparing (0 = absent) */
  bool conflict;           /* out: someone else wrote in between */
  struct cs_cred_view rec; /* version is set by the write */
};

static enum cs_err put_write(struct cs_txn *txn, void *arg)
{
  struct put_txn *t = arg;
  struct cs_cred_view c;
  uint64_t cur = 0;
  uint8_t *bytes = NULL;
  size_t len = 0;
  enum cs_err e = cs_cred_load(txn, t->in->id, &c);

  t->conflict = false;
  if (e == CS_OK)
    cur = c.version;
  else if (e != CS_ERR_NOT_FOUND)
    return e;
  if (t->in->must_exist && cur == 0)
    return CS_ERR_NOT_FOUND;
  if (t->in->has_if_match && t->in->if_match != cur)
    return CS_ERR_PRECONDITION;
  if (cur != t->expect_version) {
    t->conflict = true; /* prepared against an older record: redo */
    return CS_ERR_PRECONDITION;
  }
  t->rec.version = cur + 1;
  if (!(e = cs_cred_encode(&t->rec, &bytes, &len)))
    e = cs_txn_put(txn, CS_TBL_CREDS, t->in->id, strlen(t->in->id), bytes, len, 0);
  free(bytes);
  /* The event, the webhooks and the audit entry commit with the change. */
  if (!e)
    e = cs_event_append(txn, cur ? "updated" : "created", t->in->id, t->rec.version);
  if (!e && cur)
    e = cs_outbox_queue_update(txn, t->in->id, t->rec.version);
  if (!e)
    e = cs_audit_append(txn, t->kr, t->in->actor, cur ? "update" : "create", t->in->id, "success");
  return e;
}

/* ------------------------------------------------------- one attempt */

/* What one attempt holds; freed by attempt_free. */
struct attempt {
  struct existing x;
  struct cs_prov_result pr;
  const struct cs_provider *prov;
  const char *description;
  cJSON *work;
  uint8_t *sealed;
  size_t sealed_len;
  char *meta;
  char fp[CS_CRED_FP_MAX];
};

static void attempt_free(struct attempt *a)
{
  if (a->work)
    wipe_plain(a->work);
  cJSON_Delete(a->work);
  cs_prov_result_free(&a->pr);
  existing_free(&a->x);
  free(a->sealed);
  free(a->meta);
}

/* "aws, azure, ..." from the provider registry, for the refusal of a type. */
static void type_list(char *out, size_t n)
{
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; cs_providers[i] && len < n; i++)
    len += (size_t)snprintf(out + len, n - len, "%s%s", i ? ", " : "", cs_providers[i]->type);
}

/* The body's type and description, and what the stored record allows. */
static enum cs_err check_request(struct cs_core *c, const struct cs_cred_put *in, struct attempt *a,
                                 struct cs_cred_put_result *out)
{
  const char *type = NULL;
  char types[128];
  enum cs_err e;

  if (cs_json_req_string(in->body, "type", 32, &type) || !(a->prov = cs_provider_find(type))) {
    type_list(types, sizeof types);
    return fail_field(out, CS_ERR_INVALID, "type", "type must be one of %s", types);
  }
  if (cs_json_opt_string(in->body, "description", DESCRIPTION_MAX, &a->description))
    return fail_field(out, CS_ERR_INVALID, "description", "%s",
                      "description must be a string of at most 1024 characters");
  if ((e = read_existing(c, in->id, &a->x)))
    return e;
  if (in->must_exist && !a->x.found)
    return CS_ERR_NOT_FOUND;
  if (a->x.found && a->x.prov != a->prov)
    return fail_field(out, CS_ERR_INVALID, "type",
                      "the type of an existing credential (%s) "
                      "cannot change; delete it and create a new one",
                      a->x.prov->type);
  if (in->has_if_match && in->if_match != a->x.version)
    return CS_ERR_PRECONDITION;
  return CS_OK;
}

/* Seal the validated secret, or keep the stored sealed bytes when it is the
 * same secret, so secret.encrypted stays valid. */
static enum cs_err seal_or_keep(struct cs_core *c, const char *id, struct attempt *a)
{
  struct existing *x = &a->x;
  const struct cs_prov_result *pr = &a->pr;

  if (x->kept && pr->secret_len == x->plain_len && pr->secret_len > 0 &&
      memcmp(pr->secret, x->plain, pr->secret_len) == 0) {
    a->sealed = x->sealed;
    a->sealed_len = x->sealed_len;
    x->sealed = NULL;
    snprintf(a->fp, sizeof a->fp, "%s", x->fp);
    return CS_OK;
  }
  if (pr->secret_len == 0)
    return CS_OK; /* aws with useAWSRole stores no secret */
  return cs_cred_seal_secret(c->keyring, id, pr->secret, pr->secret_len, &a->sealed, &a->sealed_len,
                             a->fp);
}

/* The stored meta: provider fields, description, and the owner, who is
 * whoever created the credential (updates keep it). */
static enum cs_err compose_meta(const struct cs_cred_put *in, struct attempt *a)
{
  cJSON *old = NULL, *pmeta = a->pr.meta;
  const char *owner = a->x.found ? NULL : in->who->key_id;
  enum cs_err e = CS_ERR_NOMEM;

  if (a->x.found && !cs_json_parse(a->x.meta, strlen(a->x.meta), CS_JSON_MAX_DEPTH, &old)) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(old, "owner");
    if (cJSON_IsString(o))
      owner = o->valuestring;
  }
  if ((!a->description || cJSON_AddStringToObject(pmeta, "description", a->description)) &&
      (!owner || cJSON_AddStringToObject(pmeta, "owner", owner)) &&
      (a->meta = cs_json_print(pmeta)))
    e = CS_OK;
  cJSON_Delete(old);
  return e;
}

static enum cs_err put_once(struct cs_core *c, const struct cs_cred_put *in,
                            struct cs_cred_put_result *out, bool *retry)
{
  struct attempt a = {0};
  struct put_txn t = {.kr = c->keyring, .in = in};
  enum cs_err e;

  *retry = false;
  if ((e = check_request(c, in, &a, out)))
    goto out;
  if (!(a.work = cJSON_Duplicate(in->body, true))) {
    e = CS_ERR_NOMEM;
    goto out;
  }
  if ((e = resolve_secret_input(a.work, &a.x, out)) ||
      (e = a.prov->validate(a.work, &a.pr, &out->perr)) || (e = seal_or_keep(c, in->id, &a)) ||
      (e = compose_meta(in, &a)))
    goto out;
  t.expect_version = a.x.found ? a.x.version : 0;
  t.rec.id = in->id;
  t.rec.prov = a.prov;
  t.rec.created = a.x.found ? a.x.created : cs_now();
  t.rec.modified = cs_now();
  t.rec.meta = a.meta;
  t.rec.meta_len = strlen(a.meta);
  t.rec.fp = a.fp;
  t.rec.fp_len = strlen(a.fp);
  t.rec.sealed = a.sealed;
  t.rec.sealed_len = a.sealed_len;
  e = cs_core_write(c, put_write, &t);
  if ((*retry = e == CS_ERR_PRECONDITION && t.conflict) || e)
    goto out;
  if (a.x.found)
    cs_core_cred_changed(c, in->id); /* cached material of the old version */
  out->created = !a.x.found;
  if (!(out->credential = cs_cred_render(&t.rec)))
    e = CS_ERR_NOMEM;
out:
  attempt_free(&a);
  return e;
}

enum cs_err cs_creds_put(struct cs_core *c, const struct cs_cred_put *in,
                         struct cs_cred_put_result *out)
{
  bool retry = true;
  enum cs_err e = CS_ERR_INTERNAL;

  memset(out, 0, sizeof *out);
  if (!cs_id_valid(in->id, strlen(in->id)))
    return fail_field(out, CS_ERR_BAD_ID, "_id", "%s",
                      "_id must be 1-128 characters of [A-Za-z0-9._-]");
  for (int i = 0; i < PUT_RETRIES && retry; i++)
    e = put_once(c, in, out, &retry);
  return retry ? CS_ERR_UNAVAILABLE : e;
}

/* --------------------------------------------------------- get and delete */

enum cs_err cs_creds_get(struct cs_core *c, const char *id, cJSON **out)
{
  struct cs_txn *txn;
  struct cs_cred_view v;
  enum cs_err e = cs_store_read_begin(c->store, &txn);

  if (e)
    return e;
  e = cs_cred_load(txn, id, &v);
  if (!e && !(*out = cs_cred_render(&v)))
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
  struct cs_cred_view c;
  enum cs_err e;

  if ((e = cs_cred_load(txn, d->id, &c)))
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

enum cs_err cs_creds_delete(struct cs_core *c, const struct cs_actor *a, const char *id,
                            cJSON **usages)
{
  struct delete_ctx d = {c->keyring, a, id, NULL};
  enum cs_err e = cs_core_write(c, delete_write, &d);
  *usages = NULL;
  if (e == CS_ERR_IN_USE)
    *usages = d.usages;
  else
    cJSON_Delete(d.usages);
  if (!e)
    cs_core_cred_changed(c, id);
  return e;
}
