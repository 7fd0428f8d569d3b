/* /api/v1/access_keys: create, list, delete (admin only, per the route table). */
#include "svc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct key_create {
  const struct cs_keyring *kr;
  struct cs_key_spec spec;
  struct cs_new_key key;
  struct cs_actor actor;
};

static enum cs_err create_txn(struct cs_txn *txn, void *arg)
{
  struct key_create *c = arg;
  enum cs_err e = cs_keys_create(txn, c->kr, &c->spec, &c->key);
  return e ? e : cs_audit_append(txn, c->kr, &c->actor, "access_key_create", c->key.id,
                                 "success");
}

static bool pattern_ok(const char *p)
{
  size_t n = strlen(p);
  if (n == 0 || n > CS_PATTERN_MAX)
    return false;
  for (; *p; p++) {
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*?[]!", *p))
      return false;
  }
  return true;
}

/* A 400 or 403 naming the field at fault. */
static enum cs_err __attribute__((format(printf, 4, 5)))
bad_field(struct cs_resp *resp, enum cs_err e, const char *field, const char *fmt, ...)
{
  char msg[CS_ERR_MSG_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if ((resp->err_extra = cJSON_CreateObject()))
    cJSON_AddStringToObject(resp->err_extra, "field", field);
  return cs_fail(resp, e, "%s", msg);
}

static enum cs_err parse_scope(const cJSON *scope, struct cs_key_spec *spec,
                               struct cs_resp *resp)
{
  const cJSON *p;
  int n = 0;

  /* null is the same as leaving scope out: the creator's scope. */
  if (!scope || cJSON_IsNull(scope))
    return CS_OK;
  if (!cJSON_IsArray(scope))
    return bad_field(resp, CS_ERR_INVALID, "scope", "scope must be an array of glob patterns");
  /* [] would be a key that sees no credential: surely a mistake, not a
   * request for every credential (that is leaving scope out). */
  if (!cJSON_GetArraySize(scope))
    return bad_field(resp, CS_ERR_INVALID, "scope",
                     "scope must hold at least one pattern; leave it out for the creating "
                     "key's scope");
  cJSON_ArrayForEach(p, scope)
  {
    if (++n > CS_SCOPE_MAX || !cJSON_IsString(p) || !pattern_ok(p->valuestring))
      return bad_field(resp, CS_ERR_INVALID, "scope",
                       "scope must hold at most %d patterns of 1-%d characters of "
                       "[A-Za-z0-9._-*?[]!]", CS_SCOPE_MAX, CS_PATTERN_MAX);
  }
  spec->scope = scope;
  return CS_OK;
}

/* Turn the request body into a key spec; borrowed pointers into @p body. */
static enum cs_err parse_spec(const cJSON *body, struct cs_key_spec *spec, struct cs_resp *resp)
{
  const char *name = NULL, *role = NULL, *exp = NULL;
  enum cs_err e;

  if (cs_json_req_string(body, "name", CS_KEY_NAME_MAX, &name) || !name[0])
    return bad_field(resp, CS_ERR_INVALID, "name", "name must be a string of 1-%d characters",
                     CS_KEY_NAME_MAX);
  if (cs_json_req_string(body, "role", 16, &role) || cs_role_parse(role, &spec->role))
    return bad_field(resp, CS_ERR_INVALID, "role", "role must be admin, operator, auditor or ci");
  if ((e = parse_scope(cJSON_GetObjectItemCaseSensitive(body, "scope"), spec, resp)))
    return e;
  if (cs_json_opt_string(body, "expiresAt", 64, &exp) ||
      (exp && cs_time_parse(exp, &spec->expires_at)))
    return bad_field(resp, CS_ERR_INVALID, "expiresAt", "expiresAt must be an RFC 3339 time");
  if (exp && spec->expires_at <= cs_now())
    return bad_field(resp, CS_ERR_INVALID, "expiresAt", "expiresAt must be in the future");
  spec->name = name;
  return CS_OK;
}

/* A new key is bounded by the key that creates it (API.md §2). */
static enum cs_err bound_spec(struct cs_req *req, struct cs_key_spec *spec, struct cs_resp *resp)
{
  struct cs_key_bounds by = {req->who.scope, req->who.expires_at};
  const char *field = NULL;

  if (!cs_key_spec_bound(spec, &by, &field))
    return CS_OK;
  return bad_field(resp, CS_ERR_FORBIDDEN, field, "%s",
                   strcmp(field, "scope") == 0
                       ? "scope is broader than this access key's scope; a key may only "
                         "create keys within its own scope"
                       : "expiresAt is later than this access key's; a key may not create "
                         "a key that outlives it");
}

enum cs_err cs_h_keys_create(struct cs_req *req, struct cs_resp *resp)
{
  struct key_create c = {.kr = req->app->keyring};
  cJSON *body = NULL, *out = NULL;
  char when[32];
  enum cs_err e;

  if ((e = cs_req_json(req, &body)))
    return e;
  if ((e = parse_spec(body, &c.spec, resp)) || (e = bound_spec(req, &c.spec, resp)))
    goto out;
  c.spec.owner = req->who.key_id;
  c.actor = cs_actor_of(req);
  if ((e = cs_writer_submit(req->app->writer, create_txn, &c)))
    goto out;
  e = CS_ERR_NOMEM;
  cs_time_format(c.key.created_at, when);
  out = cJSON_CreateObject();
  if (!out || !cJSON_AddStringToObject(out, "id", c.key.id) ||
      !cJSON_AddStringToObject(out, "secret", c.key.secret) ||
      !cJSON_AddStringToObject(out, "name", c.spec.name) ||
      !cJSON_AddStringToObject(out, "role", cs_role_name(c.spec.role)) ||
      (c.spec.scope && !cJSON_AddItemToObject(out, "scope", cJSON_Duplicate(c.spec.scope, 1))) ||
      !cJSON_AddStringToObject(out, "createdAt", when) ||
      !cJSON_AddStringToObject(out, "owner", c.spec.owner))
    goto out;
  if (c.spec.expires_at) {
    cs_time_format(c.spec.expires_at, when);
    if (!cJSON_AddStringToObject(out, "expiresAt", when))
      goto out;
  }
  e = cs_resp_json_secret(resp, 201, out);
  out = NULL;
out:
  cJSON_Delete(out);
  cJSON_Delete(body);
  cs_memzero(&c.key, sizeof c.key);
  return e;
}

enum cs_err cs_h_keys_list(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_txn *txn;
  cJSON *arr = NULL;
  enum cs_err e = cs_store_read_begin(req->app->store, &txn);
  if (e)
    return e;
  e = cs_keys_list(txn, &(struct cs_key_bounds){req->who.scope, req->who.expires_at}, &arr);
  cs_store_read_end(txn);
  if (e)
    return e;
  return cs_resp_json(resp, 200, arr);
}

struct key_delete {
  const char *id;
  struct cs_key_bounds by;
  struct cs_actor actor;
  const struct cs_keyring *kr;
};

static enum cs_err delete_txn(struct cs_txn *txn, void *arg)
{
  struct key_delete *d = arg;
  enum cs_err e = cs_keys_delete(txn, &d->by, d->id);
  return e ? e : cs_audit_append(txn, d->kr, &d->actor, "access_key_delete", d->id, "success");
}

enum cs_err cs_h_keys_delete(struct cs_req *req, struct cs_resp *resp)
{
  const char *id = req->params[0];
  struct key_delete d = {id, {req->who.scope, req->who.expires_at}, cs_actor_of(req),
                          req->app->keyring};
  enum cs_err e = cs_writer_submit(req->app->writer, delete_txn, &d);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no access key %.64s", id);
  if (e)
    return e;
  return cs_resp_empty(resp, 204);
}
