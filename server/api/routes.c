/* The static route table: method, path pattern, handler, who may call it,
 * name, flags. The roles column is the only place roles are decided; the
 * flags column says which routes a key with a scope may not call at all
 * (their answers span every credential). */
#include "http.h"

#include <stdio.h>
#include <string.h>

/* One row per line, so the table reads (and tests/integration parse it) as a table. */
/* clang-format off */
const struct cs_route cs_routes[] = {
    {CS_GET, "/healthz", cs_h_healthz, CS_PUBLIC, "healthz", 0},
    {CS_GET, "/readyz", cs_h_readyz, CS_PUBLIC, "readyz", 0},
    {CS_GET, "/metrics", cs_h_metrics, CS_R_READ, "metrics", CS_ROUTE_UNSCOPED},
    {CS_GET, "/api/v1/version", cs_h_version, CS_R_ANY, "version", 0},
    {CS_POST, "/api/v1/login", cs_h_login, CS_PUBLIC, "login", 0},
    {CS_GET, "/api/v1/auth_token/extend", cs_h_extend, CS_R_ANY, "auth_token_extend", 0},
    {CS_POST, "/api/v1/access_keys", cs_h_keys_create, CS_R_ADMIN, "access_keys_create", 0},
    {CS_GET, "/api/v1/access_keys", cs_h_keys_list, CS_R_ADMIN, "access_keys_list", 0},
    {CS_DELETE, "/api/v1/access_keys/{}", cs_h_keys_delete, CS_R_ADMIN, "access_keys_delete", 0},
    {CS_GET, "/api/v1/credentials", cs_h_creds_list, CS_R_READ, "credentials_list", 0},
    {CS_POST, "/api/v1/credentials", cs_h_creds_upsert, CS_R_WRITE, "credentials_upsert", 0},
    {CS_GET, "/api/v1/credentials/{}", cs_h_creds_get, CS_R_READ, "credentials_get", 0},
    {CS_PUT, "/api/v1/credentials/{}", cs_h_creds_update, CS_R_WRITE, "credentials_update", 0},
    {CS_DELETE, "/api/v1/credentials/{}", cs_h_creds_delete, CS_R_WRITE, "credentials_delete", 0},
    {CS_GET, "/api/v1/credentials/{}/usages", cs_h_usages_list, CS_R_READ, "usages_list", 0},
    {CS_POST, "/api/v1/credentials/{}/usages", cs_h_usages_create, CS_R_USE, "usages_create", 0},
    {CS_DELETE, "/api/v1/credentials/{}/usages/{}", cs_h_usages_delete, CS_R_USE, "usages_delete", 0},
    {CS_POST, "/api/v1/credentials/{}/resolve", cs_h_resolve, CS_R_USE, "resolve", 0},
    {CS_POST, "/api/v1/credentials/{}/test", cs_h_creds_test, CS_R_WRITE, "credentials_test", 0},
    {CS_GET, "/api/v1/events", cs_h_events, CS_R_READ, "events", 0},
    {CS_GET, "/api/v1/audit", cs_h_audit, CS_R_AUDIT, "audit", 0},
    {CS_GET, "/api/v1/deliveries", cs_h_deliveries_list, CS_R_ADMIN, "deliveries_list", 0},
    {CS_POST, "/api/v1/deliveries/{}/retry", cs_h_delivery_retry, CS_R_ADMIN, "delivery_retry", 0},
    {CS_GET, "/api/v1/aws/container-credentials/{}", cs_h_aws_container, CS_R_USE, "aws_container_credentials", 0},
    {CS_GET, "/", cs_h_ui_redirect, CS_PUBLIC, "root_redirect", 0},
    {CS_GET, "/ui", cs_h_ui_redirect, CS_PUBLIC, "ui_redirect", 0},
    {CS_GET, "/ui/", cs_h_ui_index, CS_PUBLIC, "ui_index", 0},
    {CS_GET, "/ui/assets/{}/{}", cs_h_ui_asset, CS_PUBLIC, "ui_asset", 0},
    {CS_POST, "/prisma/api/v{}/authenticate", cs_h_prisma_authenticate, CS_PUBLIC, "prisma_authenticate", CS_ROUTE_PRISMA},
    {CS_GET, "/prisma/api/v{}/authenticate/renew", cs_h_prisma_renew, CS_R_ANY, "prisma_authenticate_renew", CS_ROUTE_PRISMA},
    {CS_GET, "/prisma/api/v{}/credentials", cs_h_prisma_creds_list, CS_R_READ, "prisma_credentials_list", CS_ROUTE_PRISMA},
    {CS_POST, "/prisma/api/v{}/credentials", cs_h_prisma_creds_upsert, CS_R_WRITE, "prisma_credentials_upsert", CS_ROUTE_PRISMA},
    {CS_DELETE, "/prisma/api/v{}/credentials/{}", cs_h_prisma_creds_delete, CS_R_WRITE, "prisma_credentials_delete", CS_ROUTE_PRISMA},
    {CS_GET, "/prisma/api/v{}/credentials/{}/usages", cs_h_prisma_usages_list, CS_R_READ, "prisma_usages_list", CS_ROUTE_PRISMA},
    {CS_POST, "/prisma/login", cs_h_prisma_login, CS_PUBLIC, "prisma_login", CS_ROUTE_REDLOCK},
    {CS_GET, "/prisma/auth_token/extend", cs_h_prisma_extend, CS_R_ANY, "prisma_auth_token_extend", CS_ROUTE_REDLOCK},
};
/* clang-format on */
const size_t cs_routes_count = sizeof cs_routes / sizeof cs_routes[0];

static const char *const method_names[] = {"GET", "POST", "PUT", "DELETE"};

/* Match one pattern against @p path. Segments "{}" match any non-empty
 * segment; their offsets and lengths go to off/len. */
static bool match(const char *pattern, const char *path, size_t off[CS_MAX_PARAMS],
                  size_t len[CS_MAX_PARAMS], int *nparams)
{
  const char *p = pattern, *s = path;
  int n = 0;

  while (*p && *s) {
    if (p[0] == '{' && p[1] == '}') {
      const char *end = strchr(s, '/');
      size_t l = end ? (size_t)(end - s) : strlen(s);
      if (l == 0 || n >= CS_MAX_PARAMS)
        return false;
      off[n] = (size_t)(s - path);
      len[n++] = l;
      s += l;
      p += 2;
      continue;
    }
    if (*p != *s)
      return false;
    p++;
    s++;
  }
  *nparams = n;
  return *p == '\0' && *s == '\0';
}

enum cs_err cs_route_match(struct cs_req *req, const char *path)
{
  size_t off[CS_MAX_PARAMS], plen[CS_MAX_PARAMS];
  int n = 0;
  bool path_known = false;
  size_t len = strlen(path);

  if (len >= sizeof req->path_buf)
    return CS_ERR_NO_ROUTE;
  memcpy(req->path_buf, path, len + 1);
  req->allow[0] = '\0';
  for (size_t i = 0; i < cs_routes_count; i++) {
    const struct cs_route *r = &cs_routes[i];
    if (!match(r->pattern, path, off, plen, &n))
      continue;
    path_known = true;
    size_t al = strlen(req->allow);
    if (!strstr(req->allow, method_names[r->method]) && al + 8 < sizeof req->allow)
      snprintf(req->allow + al, sizeof req->allow - al, "%s%s", al ? ", " : "",
               method_names[r->method]);
    if (r->method != req->method)
      continue;
    /* Parameters become NUL-terminated strings inside req->path_buf,
     * percent-decoded exactly once ('+' stays a plus: this is a path). */
    for (int k = 0; k < n; k++) {
      req->path_buf[off[k] + plen[k]] = '\0';
      req->params[k] = req->path_buf + off[k];
      cs_http_unescape(req->path_buf + off[k]);
    }
    req->route = r;
    return CS_OK;
  }
  return path_known ? CS_ERR_METHOD : CS_ERR_NO_ROUTE;
}
