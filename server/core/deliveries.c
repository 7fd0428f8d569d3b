/* Webhook deliveries (API.md §11): what the outbox still tries (pending)
 * and what it gave up on (dead letters), listed for an operator, and a
 * dead letter requeued. The entry format is outbox.c's. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- listing */

/* An epoch-ms field of an entry as RFC 3339 (null when absent or 0). */
static bool add_ms_time(cJSON *o, const char *name, const cJSON *entry, const char *field)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, field);
  char buf[32];

  if (!cJSON_IsNumber(v) || v->valuedouble <= 0)
    return cJSON_AddNullToObject(o, name) != NULL;
  cs_time_format((int64_t)(v->valuedouble / 1000), buf);
  return cJSON_AddStringToObject(o, name, buf) != NULL;
}

/* The public view of a stored entry: never the callback URL or secret. */
static cJSON *render_delivery(uint64_t id, bool dead, const cJSON *entry)
{
  static const char *const copy[] = {"usageId",  "credentialId", "version",
                                     "attempts", "lastError",    "target"};
  cJSON *o = cJSON_CreateObject();

  if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) ||
      !cJSON_AddStringToObject(o, "state", dead ? "dead" : "pending"))
    goto fail;
  for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(entry, copy[i]);
    if (f && !cJSON_AddItemToObject(o, copy[i], cJSON_Duplicate(f, true)))
      goto fail;
  }
  if (!cJSON_HasObjectItem(o, "lastError") && !cJSON_AddNullToObject(o, "lastError"))
    goto fail;
  if (!add_ms_time(o, "createdAt", entry, "createdAt") ||
      !add_ms_time(o, dead ? "deadAt" : "nextAttemptAt", entry, dead ? "deadAt" : "nextAt"))
    goto fail;
  return o;
fail:
  cJSON_Delete(o);
  return NULL;
}

struct list_ctx {
  const struct cs_delivery_query *q;
  bool dead;
  uint64_t matched; /* entries in scope so far, across both tables */
  cJSON *page;
};

static enum cs_err list_one(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct list_ctx *l = arg;
  cJSON *entry = NULL;
  enum cs_err e = CS_OK;

  (void)stop; /* every entry is counted for the total */
  if (cs_json_parse(v->data, v->len, 4, &entry))
    return CS_OK; /* an unreadable entry is skipped, as the worker skips it */
  const cJSON *cred = cJSON_GetObjectItemCaseSensitive(entry, "credentialId");
  if (cJSON_IsString(cred) && cs_scope_allows(l->q->scope, cred->valuestring)) {
    if (l->matched >= l->q->offset && l->matched - l->q->offset < l->q->limit) {
      cJSON *o = render_delivery(seq, l->dead, entry);
      if (o)
        cJSON_AddItemToArray(l->page, o);
      else
        e = CS_ERR_NOMEM;
    }
    l->matched++;
  }
  cJSON_Delete(entry);
  return e;
}

enum cs_err cs_deliveries_list(struct cs_core *c, const struct cs_delivery_query *q, cJSON **page,
                               uint64_t *total)
{
  struct list_ctx l = {q, false, 0, cJSON_CreateArray()};
  struct cs_txn *txn = NULL;
  enum cs_err e;

  if (!l.page)
    return CS_ERR_NOMEM;
  /* Both tables in one snapshot: an entry moving between them counts once. */
  if ((e = cs_store_read_begin(c->store, &txn)))
    goto out;
  if (q->state != CS_DELIVERY_DEAD && (e = cs_seq_each_txn(txn, CS_TBL_OUTBOX, 0, list_one, &l)))
    goto out;
  l.dead = true;
  if (q->state != CS_DELIVERY_PENDING)
    e = cs_seq_each_txn(txn, CS_TBL_DEAD, 0, list_one, &l);
out:
  cs_store_read_end(txn);
  if (e) {
    cJSON_Delete(l.page);
    return e;
  }
  *page = l.page;
  *total = l.matched;
  return CS_OK;
}

/* ---------------------------------------------------------------- retry */

struct retry_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const cJSON *scope;
  uint64_t id;
};

/* Is the entry stored under @p key in @p t one of a credential in scope?
 * *entry is the parsed entry; caller deletes. @return CS_ERR_NOT_FOUND otherwise. */
static enum cs_err entry_in_scope(struct cs_txn *txn, enum cs_table t, const uint8_t key[8],
                                  const cJSON *scope, cJSON **entry)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, t, key, 8, &v);

  if (e)
    return e;
  if (cs_json_parse(v.data, v.len, 4, entry))
    return CS_ERR_STORE;
  const cJSON *cred = cJSON_GetObjectItemCaseSensitive(*entry, "credentialId");
  if (!cJSON_IsString(cred) || !cs_scope_allows(scope, cred->valuestring)) {
    cJSON_Delete(*entry);
    *entry = NULL;
    return CS_ERR_NOT_FOUND;
  }
  return CS_OK;
}

/* The dead letter back in the outbox: due now, with a fresh max age. */
static enum cs_err requeue(struct cs_txn *txn, const uint8_t key[8], cJSON *entry)
{
  char *text = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  cJSON_DeleteItemFromObjectCaseSensitive(entry, "deadAt");
  cJSON_DeleteItemFromObjectCaseSensitive(entry, "nextAt");
  cJSON_DeleteItemFromObjectCaseSensitive(entry, "createdAt");
  if (cJSON_AddNumberToObject(entry, "nextAt", 0) &&
      cJSON_AddNumberToObject(entry, "createdAt", (double)cs_wall_ms()) &&
      (text = cs_json_print(entry)))
    e = cs_txn_put(txn, CS_TBL_OUTBOX, key, 8, text, strlen(text), CS_PUT_NO_OVERWRITE);
  free(text);
  if (!e)
    e = cs_txn_del(txn, CS_TBL_DEAD, key, 8);
  return e;
}

static enum cs_err retry_txn(struct cs_txn *txn, void *arg)
{
  struct retry_ctx *r = arg;
  cJSON *entry = NULL;
  uint8_t key[8];
  enum cs_err e;

  cs_store_seq_key(r->id, key);
  if ((e = entry_in_scope(txn, CS_TBL_DEAD, key, r->scope, &entry)) == CS_ERR_NOT_FOUND) {
    /* Not dead: still pending (in scope) is a conflict, else unknown. */
    e = entry_in_scope(txn, CS_TBL_OUTBOX, key, r->scope, &entry);
    cJSON_Delete(entry);
    return e ? e : CS_ERR_NOT_DEAD;
  }
  if (!e)
    e = requeue(txn, key, entry);
  if (!e) {
    const cJSON *cred = cJSON_GetObjectItemCaseSensitive(entry, "credentialId");
    e = cs_audit_append(txn, r->kr, r->a, "delivery_retry", cred->valuestring, "success");
  }
  cJSON_Delete(entry);
  return e;
}

enum cs_err cs_delivery_retry(struct cs_core *c, const struct cs_actor *a, const cJSON *scope,
                              uint64_t id)
{
  struct retry_ctx r = {c->keyring, a, scope, id};

  if (id == 0)
    return CS_ERR_NOT_FOUND;
  return cs_core_write(c, retry_txn, &r);
}
