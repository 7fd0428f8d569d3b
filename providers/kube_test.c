/* "Test connection" for kubeconfig credentials (API.md §8): GET /version
 * on the current context's server, authenticated as its user (bearer
 * token, client certificate and key, or basic auth) and trusting its
 * certificate-authority-data only, as kubectl does. The kubeconfig is the
 * one validation accepted (no exec, files or proxies: kubeconfig.c), and
 * the connection also meets the built-in denials (link-local, metadata)
 * since the server is whatever the credential names. */
#include "prov_internal.h"

#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_MAX (CS_PROV_PLAIN_MAX + 64)

/* The current context's cluster and user, as borrowed strings of the tree. */
struct kube_target {
  const char *server, *tls_name, *ca_b64, *token, *username, *password, *cert_b64, *key_b64;
  bool insecure;
};

static const cJSON *named(const cJSON *root, const char *list, const char *name, const char *inner)
{
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, list), *c;

  if (!name)
    return NULL;
  cJSON_ArrayForEach(c, l)
  {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
      return cJSON_GetObjectItemCaseSensitive(c, inner);
  }
  return NULL;
}

static const char *str(const cJSON *map, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, key);
  return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Validation has made sure every name resolves and every value is a scalar. */
static bool find_target(const cJSON *root, struct kube_target *t)
{
  const char *cur = str(root, "current-context"), *skip;
  const cJSON *ctx = cur ? named(root, "contexts", cur, "context") : NULL;
  const cJSON *cluster = ctx ? named(root, "clusters", str(ctx, "cluster"), "cluster") : NULL;
  const cJSON *user = ctx ? named(root, "users", str(ctx, "user"), "user") : NULL;

  if (!cluster || !(t->server = str(cluster, "server")))
    return false;
  t->ca_b64 = str(cluster, "certificate-authority-data");
  t->tls_name = str(cluster, "tls-server-name");
  skip = str(cluster, "insecure-skip-tls-verify");
  t->insecure = skip && strcasecmp(skip, "true") == 0;
  if (user) { /* a user without fields is anonymous */
    t->token = str(user, "token");
    t->username = str(user, "username");
    t->password = str(user, "password");
    t->cert_b64 = str(user, "client-certificate-data");
    t->key_b64 = str(user, "client-key-data");
  }
  return true;
}

/* base64 of a PEM document (what kubeconfig *-data fields hold). */
static enum cs_err decode(const char *b64, const char *field, uint8_t **out, size_t *len,
                          struct cs_net_error *err)
{
  enum cs_err e = cs_base64_decode(b64, strlen(b64), out, len);

  if (e == CS_ERR_INVALID)
    return cs_net_fail(err, CS_ERR_INVALID, "InvalidKubeconfig",
                       "%s of the current context is not valid base64", field);
  return e;
}

/* The decoded material of @p t, owned by the caller (wipe the key). */
struct kube_material {
  uint8_t *ca, *cert, *key;
  size_t ca_len, cert_len, key_len;
};

static void material_free(struct kube_material *m)
{
  free(m->ca);
  free(m->cert);
  cs_open_free(m->key, m->key_len);
}

static enum cs_err decode_all(const struct kube_target *t, struct kube_material *m,
                              struct cs_net_error *err)
{
  enum cs_err e;

  if (t->ca_b64 && (e = decode(t->ca_b64, "certificate-authority-data", &m->ca, &m->ca_len, err)))
    return e;
  if (t->cert_b64 && t->key_b64 &&
      ((e = decode(t->cert_b64, "client-certificate-data", &m->cert, &m->cert_len, err)) ||
       (e = decode(t->key_b64, "client-key-data", &m->key, &m->key_len, err))))
    return e;
  return CS_OK;
}

/* What the server said, as a test result. */
static void judge(const struct cs_http_resp *r, const char *server, struct cs_test_result *out,
                  int64_t t0)
{
  struct cs_net_error err = {0};
  cJSON *j = NULL;
  const char *v, *msg;

  if (cs_json_parse(r->body, r->len, 8, &j) != CS_OK)
    j = NULL;
  v = str(j, "gitVersion");
  msg = str(j, "message"); /* a Kubernetes Status */
  if (r->status == 200 && v) {
    cs_test_ok(out, t0, v, "Kubernetes %s at %s", v, server);
  } else {
    cs_net_fail(&err, CS_ERR_UPSTREAM,
                r->status == 401   ? "Unauthorized"
                : r->status == 403 ? "Forbidden"
                : r->status == 200 ? "MalformedResponse"
                                   : "UnexpectedStatus",
                "GET /version answered HTTP %ld%s%s", r->status, msg ? ": " : "",
                msg ? msg : (r->status == 200 ? " without a gitVersion" : ""));
    cs_test_failed(out, t0, &err);
  }
  cJSON_Delete(j);
}

/* The URL to GET, and with tls-server-name the CONNECT_TO line that sends
 * the connection to the server's own address while TLS checks the name. */
static enum cs_err version_url(const struct kube_target *t, char *url, size_t cap, char *connect_to,
                               size_t ct_cap, struct cs_net_error *err)
{
  char plain[2100];
  size_t n = strlen(t->server);
  enum cs_err e;

  while (n > 0 && t->server[n - 1] == '/')
    n--;
  snprintf(plain, sizeof plain, "%.*s/version", (int)(n < 2048 ? n : 2048), t->server);
  if (!t->tls_name || strncmp(plain, "https://", 8) != 0) {
    snprintf(url, cap, "%s", plain);
    return CS_OK;
  }
  e = cs_http_server_name_url(plain, t->tls_name, url, cap, connect_to, ct_cap);
  if (e == CS_ERR_INVALID || e == CS_ERR_TOO_LARGE)
    return cs_net_fail(err, CS_ERR_INVALID, "InvalidKubeconfig",
                       "tls-server-name of the current context is not a host name");
  return e;
}

/* The user's credentials and the cluster's CA into @p req; a bearer token
 * goes into @p auth (a secret buffer) as the header line headers[1]. */
static enum cs_err authenticate(const struct kube_target *t, const struct kube_material *m,
                                struct cs_http_req *req, const char **headers, struct cs_buf *auth,
                                struct cs_net_error *err)
{
  enum cs_err e;

  if (t->token) {
    if (!cs_prov_token_ok(t->token, 1, CS_PROV_PLAIN_MAX))
      return cs_net_fail(err, CS_ERR_INVALID, "InvalidKubeconfig",
                         "the current user's token holds spaces or control characters");
    if ((e = cs_buf_printf(auth, "Authorization: Bearer %s", t->token)))
      return e;
    headers[1] = auth->data;
  } else if (t->username) {
    req->user = t->username;
    req->password = t->password;
  }
  if (m->ca) {
    req->ca_pem = (const char *)m->ca;
    req->ca_pem_len = m->ca_len;
  }
  if (m->cert && m->key) {
    req->cert_pem = (const char *)m->cert;
    req->cert_pem_len = m->cert_len;
    req->key_pem = (const char *)m->key;
    req->key_pem_len = m->key_len;
  }
  return CS_OK;
}

static enum cs_err call_version(const struct cs_prov_ctx *ctx, const struct kube_target *t,
                                const struct kube_material *m, struct cs_test_result *out,
                                int64_t t0)
{
  struct cs_broker *b = ctx->broker;
  char url[2400], connect_to[600] = "";
  struct cs_buf auth;
  const char *headers[3] = {"Accept: application/json", NULL, NULL};
  struct cs_http_req req = {.method = "GET",
                            .url = url,
                            .reach = CS_HTTP_API,
                            .policy = b->named_urls,
                            .headers = headers,
                            .timeout_ms = b->timeout_ms,
                            .insecure_loopback = t->insecure};
  struct cs_http_resp r = {0};
  struct cs_net_error err = {0};
  enum cs_err e;

  cs_buf_init_secret(&auth, HEADER_MAX);
  if ((e = version_url(t, url, sizeof url, connect_to, sizeof connect_to, &err)) ||
      (e = authenticate(t, m, &req, headers, &auth, &err)))
    goto out;
  req.connect_to = connect_to[0] ? connect_to : NULL;
  cs_broker_count_call(b, CS_KIND_KUBE);
  e = cs_http_do(b->http, &req, &r);
  if (e == CS_OK) {
    judge(&r, t->server, out, t0);
  } else if (e == CS_ERR_UPSTREAM || e == CS_ERR_FORBIDDEN || e == CS_ERR_INVALID) {
    cs_net_fail_transport(&err, "Kubernetes API", "Unreachable", &r);
    cs_test_failed(out, t0, &err);
    e = CS_OK;
  }
  if (e == CS_OK && !out->ok)
    cs_broker_count_error(b, CS_KIND_KUBE);
out:
  if (e == CS_ERR_INVALID) { /* the kubeconfig's fault: a result, not an error */
    cs_test_failed(out, t0, &err);
    e = CS_OK;
  }
  cs_http_resp_wipe(&r);
  cs_buf_wipe(&auth);
  return e;
}

enum cs_err cs_kube_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  struct kube_target t = {0};
  struct kube_material m = {0};
  struct cs_net_error err = {0};
  cJSON *root = NULL;
  int64_t t0;
  enum cs_err e;

  if (!ctx->broker)
    return CS_ERR_UNAVAILABLE;

  cs_test_start(out, &t0);
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  e = cs_kube_load(ctx->secret, ctx->secret_len, &root, NULL);
  if (e != CS_OK)
    return e == CS_ERR_NOMEM ? e : CS_ERR_CRYPTO; /* validated on write: not ours */
  if (!find_target(root, &t)) {
    e = CS_ERR_CRYPTO;
    goto out;
  }
  if ((e = decode_all(&t, &m, &err)) == CS_ERR_INVALID) {
    cs_test_failed(out, t0, &err);
    e = CS_OK;
    goto out;
  }
  if (e == CS_OK)
    e = call_version(ctx, &t, &m, out, t0);
out:
  material_free(&m);
  cs_json_wipe_delete(root);
  return e;
}
