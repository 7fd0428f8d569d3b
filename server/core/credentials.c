/* Credentials (API.md §3): create/update with kept secrets, get, delete.
 * Every change is one store transaction with its event, its webhooks and
 * its audit entry. The record is cred_rec.c's; listing is cred_list.c. */
#include "core_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIPTION_MAX 1024

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

/* Copy the record @p id as @p txn (read or write) sees it into @p x. */
static enum cs_err load_existing(struct cs_core *c, struct cs_txn *txn, const char *id,
                                 struct existing *x)
{
  struct cs_cred_view v;
  enum cs_err e = cs_cred_load(txn, id, &v);

  memset(x, 0, sizeof *x);
  if (e == CS_ERR_NOT_FOUND)
    return CS_OK;
  if (e)
    return e;
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
  e = cs_cred_open_secret(cs_core_keyring_for(c, cs_sealed_version(v.sealed, v.sealed_len)), &v,
                          &x->plain, &x->plain_len);
out:
  if (e)
    existing_free(x);
  return e;
}

static enum cs_err read_existing(struct cs_core *c, const char *id, struct existing *x)
{
  struct cs_txn *txn;
  enum cs_err e = cs_store_read_begin(c->store, &txn);

  memset(x, 0, sizeof *x);
  if (e)
    return e;
  e = load_existing(c, txn, id, x);
  cs_store_read_end(txn);
  return e;
}

/* Is the record @p txn sees (@p e from cs_cred_load, @p v) the one @p x
 * copied? Version, creation time and fingerprint: a credential deleted and
 * created again starts at version 1 again. */
static bool same_record(const struct existing *x, enum cs_err e, const struct cs_cred_view *v)
{
  if (e == CS_ERR_NOT_FOUND)
    return !x->found;
  return x->found && v->version == x->version && v->created == x->created &&
         v->fp_len == strlen(x->fp) && memcmp(v->fp, x->fp, v->fp_len) == 0;
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

static bool empty_string(const cJSON *j) { return cJSON_IsString(j) && !j->valuestring[0]; }

/* A non-empty plain: a new secret, which wins over an encrypted echo beside
 * it (Terraform sends back the last encrypted value with every plain). */
static bool has_new_plain(const cJSON *s)
{
  const cJSON *plain = cJSON_GetObjectItemCaseSensitive(s, "plain");
  return plain && !empty_string(plain);
}

/* API.md §3 "Prisma fields": {}, {"encrypted": ""} and {"plain": "",
 * "encrypted": ""} give no value (keep what is stored), like leaving the
 * field out. */
static bool empty_secret(const cJSON *s)
{
  const cJSON *plain = cJSON_GetObjectItemCaseSensitive(s, "plain");
  const cJSON *enc = cJSON_GetObjectItemCaseSensitive(s, "encrypted");
  return cJSON_IsObject(s) && (!enc || empty_string(enc)) &&
         (!plain ? true : empty_string(plain) && enc);
}

/* One secret field: a new plain value, or a sent-back encrypted value that
 * must be this credential's current one (it becomes the stored plaintext,
 * so a blob can't move between records). Sets *any when present. With
 * @p echo_ignored (the other field carries a new plain), an echo here is
 * dropped unchecked: a stale echo beside a new secret is not an error. */
static enum cs_err secret_field_input(cJSON *work, const char *name, struct existing *x, bool *any,
                                      bool echo_ignored, struct cs_cred_put_result *out)
{
  cJSON *s = cJSON_GetObjectItemCaseSensitive(work, name);
  char field[32];

  if (!s || cJSON_IsNull(s) || empty_secret(s) ||
      (echo_ignored && cJSON_IsObject(s) && !has_new_plain(s))) {
    cJSON_DeleteItemFromObjectCaseSensitive(work, name);
    return CS_OK;
  }
  *any = true;
  if (!cJSON_IsObject(s))
    return fail_field(out, CS_ERR_INVALID, name, "%s must be an object", name);
  cJSON *plain = cJSON_GetObjectItemCaseSensitive(s, "plain");
  cJSON *enc = cJSON_GetObjectItemCaseSensitive(s, "encrypted");
  if (has_new_plain(s) || (plain && !enc)) {
    cJSON_DeleteItemFromObjectCaseSensitive(s, "encrypted");
    return CS_OK; /* a new secret; the provider validates it */
  }
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
  cJSON_DeleteItemFromObjectCaseSensitive(s, "plain"); /* an empty one beside the echo */
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
  bool any = false, fresh = false;
  enum cs_err e;

  for (size_t i = 0; i < 2; i++)
    fresh |= has_new_plain(cJSON_GetObjectItemCaseSensitive(work, secret_fields[i]));
  for (size_t i = 0; i < 2; i++)
    if ((e = secret_field_input(work, secret_fields[i], x, &any, fresh, out)))
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

/* ------------------------------------------------------- one preparation */

/* A record prepared against one state of the stored credential (x); freed
 * by prepared_free. */
struct prepared {
  struct existing x;
  struct cs_prov_result pr;
  cJSON *work;
  uint8_t *sealed;
  size_t sealed_len;
  char *meta;
  char fp[CS_CRED_FP_MAX];
  struct cs_cred_view rec; /* borrows the above; version is set by the write */
};

static void prepared_free(struct prepared *p)
{
  if (p->work)
    wipe_plain(p->work);
  cJSON_Delete(p->work);
  cs_prov_result_free(&p->pr);
  existing_free(&p->x);
  free(p->sealed);
  free(p->meta);
  memset(p, 0, sizeof *p);
}

/* One create-or-update: the request, its checked type and description, and
 * what it has prepared so far. */
struct put_job {
  struct cs_core *c;
  const struct cs_cred_put *in;
  struct cs_cred_put_result *out;
  const struct cs_provider *prov;
  const char *description;
  struct prepared p;
};

/* "aws, azure, ..." from the provider registry, for the refusal of a type. */
static void type_list(char *out, size_t n)
{
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; cs_providers[i] && len < n; i++)
    len += (size_t)snprintf(out + len, n - len, "%s%s", i ? ", " : "", cs_providers[i]->type);
}

/* The body's type and description: what no stored state changes. */
static enum cs_err check_body(struct put_job *j)
{
  const char *type = NULL;
  char types[128];

  if (cs_json_req_string(j->in->body, "type", 32, &type) || !(j->prov = cs_provider_find(type))) {
    type_list(types, sizeof types);
    return fail_field(j->out, CS_ERR_INVALID, "type", "type must be one of %s", types);
  }
  if (cs_json_opt_string(j->in->body, "description", DESCRIPTION_MAX, &j->description))
    return fail_field(j->out, CS_ERR_INVALID, "description", "%s",
                      "description must be a string of at most 1024 characters");
  return CS_OK;
}

/* What the stored record allows: it exists for PUT, keeps its type, and
 * has the version If-Match names. */
static enum cs_err check_existing(const struct put_job *j)
{
  const struct existing *x = &j->p.x;

  if (j->in->must_exist && !x->found)
    return CS_ERR_NOT_FOUND;
  if (x->found && x->prov != j->prov)
    return fail_field(j->out, CS_ERR_INVALID, "type",
                      "the type of an existing credential (%s) "
                      "cannot change; delete it and create a new one",
                      x->prov->type);
  if (j->in->has_if_match && j->in->if_match != x->version)
    return CS_ERR_PRECONDITION;
  return CS_OK;
}

/* Seal the validated secret, or keep the stored sealed bytes when it is the
 * same secret, so secret.encrypted stays valid. */
static enum cs_err seal_or_keep(struct cs_core *c, const char *id, struct prepared *p)
{
  struct existing *x = &p->x;
  const struct cs_prov_result *pr = &p->pr;

  /* The same plaintext, kept or sent again, keeps its sealed bytes: the
   * encrypted value a client read stays the current one (Terraform sends it
   * back with every apply). */
  if (x->found && pr->secret_len == x->plain_len && pr->secret_len > 0 &&
      cs_bytes_equal(pr->secret, x->plain, pr->secret_len)) {
    p->sealed = x->sealed;
    p->sealed_len = x->sealed_len;
    x->sealed = NULL;
    snprintf(p->fp, sizeof p->fp, "%s", x->fp);
    return CS_OK;
  }
  if (pr->secret_len == 0)
    return CS_OK; /* aws with useAWSRole stores no secret */
  return cs_cred_seal_secret(c->keyring, id, pr->secret, pr->secret_len, &p->sealed, &p->sealed_len,
                             p->fp);
}

/* API.md §3 "Prisma fields": stored as given, returned unchanged. */
static const struct {
  const char *name;
  int kind;   /* cJSON_String, cJSON_True (a boolean) or cJSON_Array (of strings) */
  size_t max; /* bytes of a string; items of an array */
} prisma_fields[] = {
    {"accountName", cJSON_String, 256}, {"caCert", cJSON_String, 64 * 1024},
    {"url", cJSON_String, CS_URL_MAX},  {"cloudProviderAccountID", cJSON_String, 256},
    {"skipVerify", cJSON_True, 0},      {"global", cJSON_True, 0},
    {"external", cJSON_True, 0},        {"stsEndpoints", cJSON_Array, 64},
};

static bool prisma_field_ok(const cJSON *v, int kind, size_t max)
{
  const cJSON *s;
  if (kind == cJSON_True)
    return cJSON_IsBool(v);
  if (kind == cJSON_String)
    return cJSON_IsString(v) && strlen(v->valuestring) <= max;
  if (!cJSON_IsArray(v) || (size_t)cJSON_GetArraySize(v) > max)
    return false;
  cJSON_ArrayForEach(s, v)
  {
    if (!cJSON_IsString(s) || strlen(s->valuestring) > 256)
      return false;
  }
  return true;
}

/* Copy the Prisma fields of @p body into @p meta (null or absent: left out). */
static enum cs_err add_prisma_fields(const cJSON *body, cJSON *meta, struct cs_cred_put_result *out)
{
  for (size_t i = 0; i < sizeof prisma_fields / sizeof prisma_fields[0]; i++) {
    const char *name = prisma_fields[i].name;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v))
      continue;
    if (!prisma_field_ok(v, prisma_fields[i].kind, prisma_fields[i].max))
      return fail_field(out, CS_ERR_INVALID, name, "%s must be %s", name,
                        prisma_fields[i].kind == cJSON_True     ? "true or false"
                        : prisma_fields[i].kind == cJSON_String ? "a string (bounded in size)"
                                                                : "an array of at most 64 strings");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, name);
    if (!cJSON_AddItemToObject(meta, name, cJSON_Duplicate(v, true)))
      return CS_ERR_NOMEM;
  }
  return CS_OK;
}

/* The stored meta: provider fields, description, and the owner, who is
 * whoever created the credential (updates keep it). */
static enum cs_err compose_meta(const struct put_job *j, struct prepared *p)
{
  cJSON *old = NULL, *pmeta = p->pr.meta;
  const char *owner = p->x.found ? NULL : j->in->who->key_id;
  enum cs_err e = CS_ERR_NOMEM;

  if (p->x.found && !cs_json_parse(p->x.meta, strlen(p->x.meta), CS_JSON_MAX_DEPTH, &old)) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(old, "owner");
    if (cJSON_IsString(o))
      owner = o->valuestring;
  }
  if ((!j->description || cJSON_AddStringToObject(pmeta, "description", j->description)) &&
      (!owner || cJSON_AddStringToObject(pmeta, "owner", owner)) &&
      (p->meta = cs_json_print(pmeta)))
    e = CS_OK;
  cJSON_Delete(old);
  return e;
}

/* Same secret (its sealed bytes kept) and the same stored fields. */
static bool unchanged(const struct prepared *p)
{
  bool same_secret = p->x.plain_len == 0 ? p->pr.secret_len == 0 : !p->x.sealed;
  return p->x.found && same_secret && strcmp(p->meta, p->x.meta) == 0;
}

/* Make the record from the request and the stored state j->p.x: the merge
 * of a kept secret and owner, validation and sealing. */
static enum cs_err prepare(struct put_job *j)
{
  struct prepared *p = &j->p;
  enum cs_err e;

  memset(&j->out->perr, 0, sizeof j->out->perr);
  if ((e = check_existing(j)))
    return e;
  if (!(p->work = cJSON_Duplicate(j->in->body, true)))
    return CS_ERR_NOMEM;
  if ((e = resolve_secret_input(p->work, &p->x, j->out)) ||
      (e = j->prov->validate(p->work, &p->pr, &j->out->perr)) ||
      (e = add_prisma_fields(j->in->body, p->pr.meta, j->out)) ||
      (e = seal_or_keep(j->c, j->in->id, p)) || (e = compose_meta(j, p)))
    return e;
  p->rec.id = j->in->id;
  p->rec.prov = j->prov;
  p->rec.created = p->x.found ? p->x.created : cs_now();
  p->rec.meta = p->meta;
  p->rec.meta_len = strlen(p->meta);
  p->rec.fp = p->fp;
  p->rec.fp_len = strlen(p->fp);
  p->rec.sealed = p->sealed;
  p->rec.sealed_len = p->sealed_len;
  return CS_OK;
}

/* ----------------------------------------------------------- the write */

/*
 * The version check and the merge happen here, inside the write: the
 * record was prepared outside it (validation and sealing stay off the
 * writer thread), and when another change to this credential committed
 * first, it is prepared again against what this transaction sees. So an
 * update without If-Match never fails for losing a race, however many
 * writers contend for one id, and no update is lost.
 */
static enum cs_err put_write(struct cs_txn *txn, void *arg)
{
  struct put_job *j = arg;
  struct cs_cred_view c;
  uint8_t *bytes = NULL;
  size_t len = 0;
  enum cs_err e = cs_cred_load(txn, j->in->id, &c);

  j->out->unchanged = false; /* a batch that failed runs its writes again */
  if (e && e != CS_ERR_NOT_FOUND)
    return e;
  if (!same_record(&j->p.x, e, &c)) {
    prepared_free(&j->p);
    if ((e = load_existing(j->c, txn, j->in->id, &j->p.x)) || (e = prepare(j)))
      return e;
  }
  if (j->in->skip_unchanged && unchanged(&j->p)) {
    /* An update that changes nothing: no version, event or webhook, but
     * still an audited call. */
    j->out->unchanged = true;
    return cs_audit_append(txn, j->c->keyring, j->in->actor, "update", j->in->id, "unchanged");
  }
  uint64_t cur = j->p.x.found ? j->p.x.version : 0;
  j->p.rec.version = cur + 1;
  j->p.rec.modified = cs_now();
  if (!cur)
    j->p.rec.created = j->p.rec.modified; /* a new credential: one instant, both times */
  if (!(e = cs_cred_encode(&j->p.rec, &bytes, &len)))
    e = cs_txn_put(txn, CS_TBL_CREDS, j->in->id, strlen(j->in->id), bytes, len, 0);
  free(bytes);
  /* The event, the webhooks and the audit entry commit with the change. */
  if (!e)
    e = cs_event_append(txn, cur ? "updated" : "created", j->in->id, j->p.rec.version);
  if (!e && cur)
    e = cs_outbox_queue_update(txn, j->in->id, j->p.rec.version);
  if (!e)
    e = cs_audit_append(txn, j->c->keyring, j->in->actor, cur ? "update" : "create", j->in->id,
                        "success");
  return e;
}

/* @p v as text (NUL-terminated, caller frees), as GET and a put's
 * response both send it: rendered once, never through a cJSON tree. */
static enum cs_err render(const struct cs_cred_view *v, char **json, size_t *len)
{
  struct cs_buf b;
  enum cs_err e;

  cs_buf_init(&b, CS_CRED_RENDER_MAX);
  if ((e = cs_cred_render_text(v, false, &b))) {
    cs_buf_free(&b);
    return e;
  }
  *json = b.data;
  *len = b.len;
  return CS_OK;
}

/* A create-or-update whose write is queued: its own copy of the request
 * (the write may prepare the record again; the body given or copied), the
 * preparation and the result. */
struct put_work {
  struct cs_core_job base;
  struct cs_cred_put in; /* into the copies below */
  char *id;
  cJSON *body; /* holds the secret input: wiped */
  struct cs_principal who;
  struct cs_cred_put_result out;
  struct put_job j;
};

static void put_work_free(struct cs_core_job *b)
{
  struct put_work *w = (struct put_work *)b;

  prepared_free(&w->j.p);
  cs_json_wipe_delete(w->body);
  free(w->id);
  free(w);
}

/* The job for @p in, with copies of what the write reads of it. */
static enum cs_err put_work_new(struct cs_core *c, const struct cs_cred_put *in, void *waiter,
                                struct put_work **out)
{
  struct put_work *w = calloc(1, sizeof *w);
  enum cs_err e;

  if (!w)
    return CS_ERR_NOMEM;
  if ((e = cs_core_job_init(&w->base, c, waiter, in->actor, put_work_free)) ||
      !(w->id = strdup(in->id)) ||
      !(w->body = in->given_body ? in->given_body : cJSON_Duplicate(in->body, true))) {
    cs_core_job_free(&w->base);
    return e ? e : CS_ERR_NOMEM;
  }
  snprintf(w->who.key_id, sizeof w->who.key_id, "%s", in->who->key_id);
  w->who.role = in->who->role;
  w->in = *in;
  w->in.id = w->id;
  w->in.body = w->body;
  w->in.who = &w->who;
  w->in.actor = &w->base.actor;
  w->j = (struct put_job){.c = c, .in = &w->in, .out = &w->out};
  *out = w;
  return CS_OK;
}

enum cs_err cs_creds_put_start(struct cs_core *c, const struct cs_cred_put *in, void *waiter,
                               struct cs_core_job **job, struct cs_cred_put_result *out)
{
  struct put_work *w = NULL;
  enum cs_err e;

  memset(out, 0, sizeof *out);
  if (!cs_name_valid(in->id, strlen(in->id)))
    return fail_field(out, CS_ERR_BAD_ID, "_id", "%s", "_id must be " CS_NAME_RULE);
  if ((e = put_work_new(c, in, waiter, &w)))
    return e;
  /* Validation and sealing here, on the request's thread. */
  if ((e = check_body(&w->j)) || (e = read_existing(c, in->id, &w->j.p.x)) ||
      (e = prepare(&w->j))) {
    out->perr = w->out.perr;
    if (in->given_body)
      w->body = NULL; /* still the caller's */
    cs_core_job_free(&w->base);
    return e;
  }
  cs_core_job_write(&w->base, put_write, &w->j);
  *job = &w->base;
  return CS_OK;
}

enum cs_err cs_creds_put_finish(struct cs_core_job *job, struct cs_cred_put_result *out)
{
  struct put_work *w = (struct put_work *)job;
  enum cs_err e = job->result;

  memset(out, 0, sizeof *out);
  out->id = w->id;
  out->perr = w->out.perr; /* prepared again in the write, it may have failed there */
  if (e)
    return e;
  out->unchanged = w->out.unchanged;
  if (out->unchanged)
    return CS_OK;
  if (w->j.p.x.found)
    cs_core_cred_changed(job->core, w->id); /* cached material of the old version */
  out->created = !w->j.p.x.found;
  return w->in.no_render ? CS_OK : render(&w->j.p.rec, &out->json, &out->json_len);
}

enum cs_err cs_creds_put(struct cs_core *c, const struct cs_cred_put *in,
                         struct cs_cred_put_result *out)
{
  struct cs_core_job *job = NULL;
  enum cs_err e = cs_creds_put_start(c, in, NULL, &job, out);

  if (!e)
    e = cs_creds_put_finish(job, out);
  out->id = in->id;
  cs_core_job_free(job);
  return e;
}

/* --------------------------------------------------------- get and delete */

enum cs_err cs_creds_get(struct cs_core *c, const char *id, char **json, size_t *len)
{
  struct cs_txn *txn;
  struct cs_cred_view v;
  enum cs_err e = cs_store_read_begin(c->store, &txn);

  if (e)
    return e;
  if (!(e = cs_cred_load(txn, id, &v)))
    e = render(&v, json, len);
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

/* A delete whose write is queued. */
struct delete_work {
  struct cs_core_job base;
  struct delete_ctx d;
  char *id;
};

static void delete_work_free(struct cs_core_job *b)
{
  struct delete_work *w = (struct delete_work *)b;

  cJSON_Delete(w->d.usages);
  free(w->id);
  free(w);
}

enum cs_err cs_creds_delete_start(struct cs_core *c, const struct cs_actor *a, const char *id,
                                  void *waiter, struct cs_core_job **job)
{
  struct delete_work *w = calloc(1, sizeof *w);
  enum cs_err e;

  if (!w)
    return CS_ERR_NOMEM;
  if ((e = cs_core_job_init(&w->base, c, waiter, a, delete_work_free)) || !(w->id = strdup(id))) {
    cs_core_job_free(&w->base);
    return e ? e : CS_ERR_NOMEM;
  }
  w->d = (struct delete_ctx){c->keyring, &w->base.actor, w->id, NULL};
  cs_core_job_write(&w->base, delete_write, &w->d);
  *job = &w->base;
  return CS_OK;
}

enum cs_err cs_creds_delete_finish(struct cs_core_job *job, cJSON **usages)
{
  struct delete_work *w = (struct delete_work *)job;
  enum cs_err e = job->result;

  *usages = NULL;
  if (e == CS_ERR_IN_USE) {
    *usages = w->d.usages;
    w->d.usages = NULL;
  }
  if (!e)
    cs_core_cred_changed(job->core, w->id);
  return e;
}

enum cs_err cs_creds_delete(struct cs_core *c, const struct cs_actor *a, const char *id,
                            cJSON **usages)
{
  struct cs_core_job *job = NULL;
  enum cs_err e = cs_creds_delete_start(c, a, id, NULL, &job);

  *usages = NULL;
  if (!e)
    e = cs_creds_delete_finish(job, usages);
  cs_core_job_free(job);
  return e;
}
