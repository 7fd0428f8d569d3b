/* Scopes (API.md §2): which credential ids a key's glob patterns admit, and
 * what "broader" means between keys, the one test that creating, listing
 * and deleting keys apply. */
#include "core_internal.h"

#include <fnmatch.h>
#include <string.h>

bool cs_scope_allows(const cJSON *scope, const char *id)
{
  const cJSON *p;
  if (!scope)
    return true;
  cJSON_ArrayForEach(p, scope)
  {
    if (cJSON_IsString(p) && fnmatch(p->valuestring, id, 0) == 0)
      return true;
  }
  return false;
}

/* fnmatch(3) metacharacters (without FNM_NOESCAPE). A stored pattern never
 * holds '\\' (the create handler's alphabet), but it is listed so an escape
 * is never mistaken for a plain character. */
#define GLOB_META "*?[\\"

bool cs_pattern_covers(const char *p, const char *q)
{
  size_t n = strlen(p);

  if (strcmp(p, q) == 0)
    return true;
  /* A literal q matches exactly itself, so fnmatch decides. */
  if (!strpbrk(q, GLOB_META))
    return fnmatch(p, q, 0) == 0;
  /* p = literal prefix + '*': q's first n-1 characters are that literal
   * prefix, so every id q matches starts with it, and p matches it. Any
   * other shape is refused: deciding glob inclusion in general is not
   * worth the risk of a wrong yes (fnmatch(p, q) is one: "a?" matches the
   * text "a*", yet "a*" matches "abc"). */
  if (n > 0 && p[n - 1] == '*' && strcspn(p, GLOB_META) == n - 1)
    return strncmp(p, q, n - 1) == 0;
  return false;
}

/* Is pattern @p q covered by some pattern of scope @p k (not NULL)? */
static bool scope_covers(const cJSON *k, const char *q)
{
  const cJSON *p;

  cJSON_ArrayForEach(p, k)
  {
    if (cJSON_IsString(p) && cs_pattern_covers(p->valuestring, q))
      return true;
  }
  return false;
}

bool cs_scope_within(const cJSON *j, const cJSON *k)
{
  const cJSON *q;

  if (!k)
    return true; /* every credential: even a record we cannot read is within */
  if (!j)
    return scope_covers(k, "*"); /* every credential, as the pattern "*" */
  cJSON_ArrayForEach(q, j)
  {
    /* A pattern we cannot read is never assumed narrow. */
    if (!cJSON_IsString(q) || !scope_covers(k, q->valuestring))
      return false;
  }
  return true;
}

bool cs_key_within(const struct cs_key_bounds *j, const struct cs_key_bounds *k)
{
  if (k->expires_at && (!j->expires_at || j->expires_at > k->expires_at))
    return false;
  return cs_scope_within(j->scope, k->scope);
}

enum cs_err cs_key_spec_bound(struct cs_key_spec *spec, const struct cs_key_bounds *by,
                              const char **field)
{
  if (!spec->scope)
    spec->scope = by->scope;
  if (!spec->expires_at)
    spec->expires_at = by->expires_at;
  if (cs_key_within(&(struct cs_key_bounds){spec->scope, spec->expires_at}, by))
    return CS_OK;
  *field = cs_scope_within(spec->scope, by->scope) ? "expiresAt" : "scope";
  return CS_ERR_FORBIDDEN;
}
