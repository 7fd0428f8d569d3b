/* /api/v1/access_keys: create, list, delete (admin only, per the route table). */
#include "http.h"

#include <string.h>

/* A glob over names (API.md §3 "Names"): the characters a name may hold,
 * spaces and UTF-8 included, plus fnmatch's * ? [ ] ! (never '\\', so no
 * character is ever escaped and cs_pattern_covers reads it literally). */
static bool pattern_ok(const char *p)
{
  size_t n = strlen(p);
  const unsigned char *u = (const unsigned char *)p;
  if (n == 0 || n > CS_PATTERN_MAX || !cs_utf8_valid(p, n))
    return false;
  for (size_t i = 0; i < n; i++) {
    if (u[i] < 0x20 || u[i] == 0x7f || u[i] == '/' || u[i] == '\\' ||
        (u[i] == 0xc2 && u[i + 1] < 0xa0))
      return false;
  }
  return true;
}

static enum cs_err parse_scope(const cJSON *scope, struct cs_key_spec *spec, struct cs_resp *resp)
{
  const cJSON *p;
  int n = 0;

  /* null is the same as leaving scope out: the creator's scope. */
  if (!scope || cJSON_IsNull(scope))
    return CS_OK;
  if (!cJSON_IsArray(scope))
    return cs_fail_field(resp, CS_ERR_INVALID, "scope", "scope must be an array of glob patterns");
  /* [] would be a key that sees no credential: surely a mistake, not a
   * request for every credential (that is leaving scope out). */
  if (!cJSON_GetArraySize(scope))
    return cs_fail_field(resp, CS_ERR_INVALID, "scope",
                         "scope must hold at least one pattern; leave it out for the creating "
                         "key's scope");
  cJSON_ArrayForEach(p, scope)
  {
    if (++n > CS_SCOPE_MAX || !cJSON_IsString(p) || !pattern_ok(p->valuestring))
      return cs_fail_field(resp, CS_ERR_INVALID, "scope",
                           "scope must hold at most %d glob patterns of 1-%d bytes of UTF-8 "
                           "without control characters, '/' or '\\'",
                           CS_SCOPE_MAX, CS_PATTERN_MAX);
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
    return cs_fail_field(resp, CS_ERR_INVALID, "name", "name must be a string of 1-%d characters",
                         CS_KEY_NAME_MAX);
  if (cs_json_req_string(body, "role", 16, &role) || cs_role_parse(role, &spec->role))
    return cs_fail_field(resp, CS_ERR_INVALID, "role",
                         "role must be admin, operator, auditor or ci");
  if ((e = parse_scope(cJSON_GetObjectItemCaseSensitive(body, "scope"), spec, resp)))
    return e;
  if (cs_json_opt_string(body, "expiresAt", 64, &exp) ||
      (exp && cs_time_parse(exp, &spec->expires_at)))
    return cs_fail_field(resp, CS_ERR_INVALID, "expiresAt", "expiresAt must be an RFC 3339 time");
  if (exp && spec->expires_at <= cs_now())
    return cs_fail_field(resp, CS_ERR_INVALID, "expiresAt", "expiresAt must be in the future");
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
  return cs_fail_field(resp, CS_ERR_FORBIDDEN, field, "%s",
                       strcmp(field, "scope") == 0
                           ? "scope is broader than this access key's scope; a key may only "
                             "create keys within its own scope"
                           : "expiresAt is later than this access key's; a key may not create "
                             "a key that outlives it");
}

/* The new key as shown once, secret included. */
static cJSON *render_new_key(const struct cs_key_spec *spec, const struct cs_new_key *key)
{
  char when[32];
  cJSON *out = cJSON_CreateObject();

  cs_time_format(key->created_at, when);
  if (!out || !cJSON_AddStringToObject(out, "id", key->id) ||
      !cJSON_AddStringToObject(out, "secret", key->secret) ||
      !cJSON_AddStringToObject(out, "name", spec->name) ||
      !cJSON_AddStringToObject(out, "role", cs_role_name(spec->role)) ||
      (spec->scope && !cJSON_AddItemToObject(out, "scope", cJSON_Duplicate(spec->scope, 1))) ||
      !cJSON_AddStringToObject(out, "createdAt", when) ||
      !cJSON_AddStringToObject(out, "owner", spec->owner))
    goto fail;
  if (spec->expires_at) {
    cs_time_format(spec->expires_at, when);
    if (!cJSON_AddStringToObject(out, "expiresAt", when))
      goto fail;
  }
  return out;
fail:
  cs_json_wipe_delete(out);
  return NULL;
}

enum cs_err cs_h_keys_create(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_key_spec spec = {0};
  struct cs_new_key key = {"", "", 0};
  struct cs_actor a = cs_actor_of(req);
  cJSON *body = NULL, *out;
  enum cs_err e;

  if ((e = cs_req_json(req, &body)))
    return e;
  if ((e = parse_spec(body, &spec, resp)) || (e = bound_spec(req, &spec, resp)))
    goto out;
  spec.owner = req->who.key_id;
  if ((e = cs_keys_add(req->api->core, &a, "access_key_create", &spec, &key)))
    goto out;
  e = (out = render_new_key(&spec, &key)) ? cs_resp_json_secret(resp, 201, out) : CS_ERR_NOMEM;
out:
  cJSON_Delete(body);
  cs_memzero(&key, sizeof key);
  return e;
}

enum cs_err cs_h_keys_list(struct cs_req *req, struct cs_resp *resp)
{
  struct cs_key_bounds by = {req->who.scope, req->who.expires_at};
  cJSON *arr = NULL;
  enum cs_err e = cs_keys_list(req->api->core, &by, &arr);
  if (e)
    return e;
  return cs_resp_json(resp, 200, arr);
}

enum cs_err cs_h_keys_delete(struct cs_req *req, struct cs_resp *resp)
{
  const char *id = req->params[0];
  struct cs_key_bounds by = {req->who.scope, req->who.expires_at};
  struct cs_actor a = cs_actor_of(req);
  enum cs_err e = cs_keys_delete(req->api->core, &a, &by, id);
  if (e == CS_ERR_NOT_FOUND)
    return cs_fail(resp, e, "no access key %.64s", id);
  if (e)
    return e;
  return cs_resp_empty(resp, 204);
}
