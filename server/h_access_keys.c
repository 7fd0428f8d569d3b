/* /api/v1/access_keys: create, list, delete (admin only, per the route table). */
#include "svc.h"

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

/* Turn the request body into a key spec; borrowed pointers into @p body. */
static enum cs_err parse_spec(const cJSON *body, struct cs_key_spec *spec, struct cs_resp *resp)
{
  const char *name = NULL, *role = NULL, *exp = NULL;
  const cJSON *scope;

  if (cs_json_req_string(body, "name", CS_KEY_NAME_MAX, &name) || !name[0])
    return cs_fail(resp, CS_ERR_INVALID, "name must be a string of 1-%d characters",
                   CS_KEY_NAME_MAX);
  if (cs_json_req_string(body, "role", 16, &role) || cs_role_parse(role, &spec->role))
    return cs_fail(resp, CS_ERR_INVALID, "role must be admin, operator, auditor or ci");
  scope = cJSON_GetObjectItemCaseSensitive(body, "scope");
  if (scope && !cJSON_IsNull(scope)) {
    const cJSON *p;
    int n = 0;
    if (!cJSON_IsArray(scope))
      return cs_fail(resp, CS_ERR_INVALID, "scope must be an array of glob patterns");
    cJSON_ArrayForEach(p, scope)
    {
      if (++n > CS_SCOPE_MAX || !cJSON_IsString(p) || !pattern_ok(p->valuestring))
        return cs_fail(resp, CS_ERR_INVALID,
                       "scope must hold at most %d patterns of 1-%d characters of "
                       "[A-Za-z0-9._-*?[]!]",
                       CS_SCOPE_MAX, CS_PATTERN_MAX);
    }
    spec->scope = scope;
  }
  if (cs_json_opt_string(body, "expiresAt", 64, &exp))
    return cs_fail(resp, CS_ERR_INVALID, "expiresAt must be an RFC 3339 time");
  if (exp) {
    if (cs_time_parse(exp, &spec->expires_at))
      return cs_fail(resp, CS_ERR_INVALID, "expiresAt must be an RFC 3339 time");
    if (spec->expires_at <= cs_now())
      return cs_fail(resp, CS_ERR_INVALID, "expiresAt must be in the future");
  }
  spec->name = name;
  return CS_OK;
}

enum cs_err cs_h_keys_create(struct cs_req *req, struct cs_resp *resp)
{
  struct key_create c = {.kr = req->app->keyring};
  cJSON *body = NULL, *out = NULL;
  char when[32];
  enum cs_err e;

  if ((e = cs_req_json(req, &body)))
    return e;
  if ((e = parse_spec(body, &c.spec, resp)))
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
  e = cs_keys_list(txn, &arr);
  cs_store_read_end(txn);
  if (e)
    return e;
  return cs_resp_json(resp, 200, arr);
}

struct key_delete {
  const char *id;
  struct cs_actor actor;
  const struct cs_keyring *kr;
};

static enum cs_err delete_txn(struct cs_txn *txn, void *arg)
{
  struct key_delete *d = arg;
  enum cs_err e = cs_keys_delete(txn, d->id);
  return e ? e : cs_audit_append(txn, d->kr, &d->actor, "access_key_delete", d->id, "success");
}

enum cs_err cs_h_keys_delete(struct cs_req *req, struct cs_resp *resp)
{
  const char *id = req->params[0];
  struct key_delete d = {id, cs_actor_of(req), req->app->keyring};
  enum cs_err e = cs_writer_submit(req->app->writer, delete_txn, &d);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no access key %.64s", id);
  if (e)
    return e;
  return cs_resp_empty(resp, 204);
}
