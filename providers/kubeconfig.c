/* kubeconfig: the YAML is the sealed payload; validation loads it with
 * libyaml's event API into a cJSON tree (bounded in size, depth and node
 * count, no anchors or aliases) and checks what kubectl needs to connect
 * without running anything: clusters, users, contexts, a current-context
 * that resolves, and no exec or auth-provider users. */
#include "prov_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define KUBE_MAX_BYTES ((size_t)1 << 20)
#define KUBE_MAX_DEPTH 32
#define KUBE_MAX_NODES 100000
#define KUBE_MAX_ENTRIES 1000
#define KUBE_FIELD "secret.plain"
#define KUBE_PATH_MAX 64

/* ------------------------------------------------------------- loading */

struct loader {
  yaml_parser_t parser;
  cJSON *root;
  cJSON *stack[KUBE_MAX_DEPTH];
  int depth;
  char *key; /* a mapping key waiting for its value */
  size_t nodes;
  int docs;
  struct cs_prov_error *err;
};

static enum cs_err bad(struct cs_prov_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum cs_err bad(struct cs_prov_error *err, const char *fmt, ...)
{
  char msg[CS_PROV_MSG_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cs_prov_fail(err, CS_ERR_INVALID, KUBE_FIELD, "kubeconfig: %s", msg);
}

/* libyaml frees its buffers and queued tokens without clearing them, and
 * they hold the whole document (tokens, client keys). Scalars that outgrow
 * libyaml's 16-byte initial string are grown with realloc, which we cannot
 * reach; everything reachable is wiped. */
static void parser_wipe_delete(yaml_parser_t *p)
{
  if (p->raw_buffer.start)
    cs_memzero(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
  if (p->buffer.start)
    cs_memzero(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
  for (yaml_token_t *t = p->tokens.head; t && t != p->tokens.tail; t++)
    if (t->type == YAML_SCALAR_TOKEN && t->data.scalar.value)
      cs_memzero(t->data.scalar.value, t->data.scalar.length);
  yaml_parser_delete(p);
}

static void event_wipe_delete(yaml_event_t *ev)
{
  if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value)
    cs_memzero(ev->data.scalar.value, ev->data.scalar.length);
  yaml_event_delete(ev);
}

static bool scalar_is_null(const yaml_event_t *ev)
{
  const char *v = (const char *)ev->data.scalar.value;

  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag)
    return false;
  return !v || !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
         !strcmp(v, "NULL");
}

/* Attach @p node under the current container (or as the root), then make it
 * the current container if it is one. Takes @p node in every case. */
static enum cs_err attach(struct loader *l, cJSON *node, bool container)
{
  cJSON *parent = l->depth ? l->stack[l->depth - 1] : NULL;
  bool ok;

  if (!node)
    return CS_ERR_NOMEM;
  if (++l->nodes > KUBE_MAX_NODES) {
    cs_prov_json_free_secret(node);
    return bad(l->err, "the document has more than %d nodes", KUBE_MAX_NODES);
  }
  if (container && l->depth == KUBE_MAX_DEPTH) {
    cs_prov_json_free_secret(node);
    return bad(l->err, "the document is nested more than %d levels deep", KUBE_MAX_DEPTH);
  }
  if (!parent) {
    l->root = node;
  } else if (cJSON_IsArray(parent)) {
    if (!cJSON_AddItemToArray(parent, node)) {
      cs_prov_json_free_secret(node);
      return CS_ERR_NOMEM;
    }
  } else {
    if (!l->key) {
      cs_prov_json_free_secret(node);
      return bad(l->err, "mapping keys must be plain strings");
    }
    ok = cJSON_AddItemToObject(parent, l->key, node);
    cs_free_secret_str(l->key);
    l->key = NULL;
    if (!ok) {
      cs_prov_json_free_secret(node);
      return CS_ERR_NOMEM;
    }
  }
  if (container)
    l->stack[l->depth++] = node;
  return CS_OK;
}

static enum cs_err on_scalar(struct loader *l, const yaml_event_t *ev)
{
  const char *v = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  cJSON *parent = l->depth ? l->stack[l->depth - 1] : NULL;

  if (!v)
    return CS_ERR_INTERNAL; /* libyaml always allocates a scalar's value */
  /* "\0" is legal in a double-quoted YAML scalar but would silently cut a
   * C string short, so the tree would no longer say what the YAML says. */
  if (memchr(v, '\0', n))
    return bad(l->err, "strings must not contain NUL characters");
  if (cJSON_IsObject(parent) && !l->key) {
    if (++l->nodes > KUBE_MAX_NODES)
      return bad(l->err, "the document has more than %d nodes", KUBE_MAX_NODES);
    if (cs_prov_dup_secret(v, n, &l->key) != CS_OK)
      return CS_ERR_NOMEM;
    return CS_OK;
  }
  return attach(l, scalar_is_null(ev) ? cJSON_CreateNull() : cJSON_CreateString(v), false);
}

/* One event into the tree. @return CS_OK, or an error with l->err filled. */
static enum cs_err on_event(struct loader *l, const yaml_event_t *ev)
{
  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (++l->docs > 1)
      return bad(l->err, "expected one YAML document, found several");
    return CS_OK;
  case YAML_ALIAS_EVENT:
    return bad(l->err, "YAML aliases are not supported");
  case YAML_SCALAR_EVENT:
    if (ev->data.scalar.anchor)
      return bad(l->err, "YAML anchors are not supported");
    return on_scalar(l, ev);
  case YAML_SEQUENCE_START_EVENT:
    if (ev->data.sequence_start.anchor)
      return bad(l->err, "YAML anchors are not supported");
    return attach(l, cJSON_CreateArray(), true);
  case YAML_MAPPING_START_EVENT:
    if (ev->data.mapping_start.anchor)
      return bad(l->err, "YAML anchors are not supported");
    return attach(l, cJSON_CreateObject(), true);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    if (l->depth > 0)
      l->depth--;
    return CS_OK;
  default:
    return CS_OK;
  }
}

static enum cs_err load(const char *yaml, size_t len, cJSON **out, struct cs_prov_error *err)
{
  struct loader l = {.err = err};
  yaml_event_t ev;
  bool done = false;
  enum cs_err e = CS_OK;

  if (!yaml_parser_initialize(&l.parser))
    return CS_ERR_NOMEM;
  yaml_parser_set_input_string(&l.parser, (const unsigned char *)yaml, len);
  while (!done && e == CS_OK) {
    if (!yaml_parser_parse(&l.parser, &ev)) {
      if (l.parser.error == YAML_MEMORY_ERROR)
        e = CS_ERR_NOMEM;
      else /* libyaml's problem texts are fixed strings, never document content */
        e = bad(err, "not valid YAML: %s at line %zu, column %zu",
                l.parser.problem ? l.parser.problem : "parse error",
                (size_t)l.parser.problem_mark.line + 1, (size_t)l.parser.problem_mark.column + 1);
      break;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    e = on_event(&l, &ev);
    event_wipe_delete(&ev);
  }
  if (e == CS_OK && !l.root)
    e = bad(err, "the document is empty");
  if (e == CS_OK) {
    *out = l.root;
    l.root = NULL;
  }
  cs_free_secret_str(l.key);
  cs_prov_json_free_secret(l.root);
  parser_wipe_delete(&l.parser);
  return e;
}

/* ---------------------------------------------------------- checking */

/* A member of a mapping; absent and null both give NULL. Duplicate keys are
 * refused where we look, since which one kubectl honours is not ours to guess. */
static enum cs_err member(const cJSON *map, const char *key, const char *path, const cJSON **out,
                          struct cs_prov_error *err)
{
  const cJSON *found = NULL;

  for (const cJSON *c = map ? map->child : NULL; c; c = c->next) {
    if (!c->string || strcmp(c->string, key) != 0)
      continue;
    if (found)
      return bad(err, "%s%s%s appears twice", path, *path ? "." : "", key);
    found = c;
  }
  *out = cJSON_IsNull(found) ? NULL : found;
  return CS_OK;
}

static enum cs_err req_str(const cJSON *map, const char *key, const char *path, const char **out,
                           struct cs_prov_error *err)
{
  const cJSON *v = NULL;
  const char *dot = *path ? "." : "";
  enum cs_err e;

  if ((e = member(map, key, path, &v, err)) != CS_OK)
    return e;
  if (!v)
    return bad(err, "%s%s%s is required", path, dot, key);
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return bad(err, "%s%s%s must be a non-empty string", path, dot, key);
  *out = v->valuestring;
  return CS_OK;
}

static enum cs_err req_map(const cJSON *map, const char *key, const char *path,
                           const cJSON **out, struct cs_prov_error *err)
{
  const cJSON *v = NULL;
  enum cs_err e;

  if ((e = member(map, key, path, &v, err)) != CS_OK)
    return e;
  if (!v)
    return bad(err, "%s.%s is required", path, key);
  if (!cJSON_IsObject(v))
    return bad(err, "%s.%s must be a mapping", path, key);
  *out = v;
  return CS_OK;
}

/* A top-level list of named entries ("clusters", "users", "contexts"). */
static enum cs_err named_list(const cJSON *root, const char *key, const cJSON **out,
                              struct cs_prov_error *err)
{
  const cJSON *list = NULL;
  int n;
  enum cs_err e;

  if ((e = member(root, key, "", &list, err)) != CS_OK)
    return e;
  if (!list)
    return bad(err, "%s is required", key);
  if (!cJSON_IsArray(list))
    return bad(err, "%s must be a list", key);
  n = cJSON_GetArraySize(list);
  if (n == 0)
    return bad(err, "%s must list at least one entry", key);
  if (n > KUBE_MAX_ENTRIES)
    return bad(err, "%s has more than %d entries", key, KUBE_MAX_ENTRIES);
  *out = list;
  return CS_OK;
}

/* Entry @p i of a named list: a mapping with a unique, non-empty name, and
 * its @p inner mapping (NULL allowed only when @p inner_optional). */
static enum cs_err named_entry(const cJSON *list, const cJSON *entry, int i, const char *key,
                               const char *inner, bool inner_optional, const char **name,
                               const cJSON **body, struct cs_prov_error *err)
{
  char path[KUBE_PATH_MAX];
  const cJSON *v = NULL;
  int j = 0;
  enum cs_err e;

  snprintf(path, sizeof path, "%s[%d]", key, i);
  if (!cJSON_IsObject(entry))
    return bad(err, "%s must be a mapping", path);
  if ((e = req_str(entry, "name", path, name, err)) != CS_OK)
    return e;
  for (const cJSON *prev = list->child; prev && j < i; prev = prev->next, j++) {
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(prev, "name");
    if (cJSON_IsString(pn) && strcmp(pn->valuestring, *name) == 0)
      return bad(err, "%s.name repeats the name of %s[%d]", path, key, j);
  }
  if (inner_optional) {
    if ((e = member(entry, inner, path, &v, err)) != CS_OK)
      return e;
    if (v && !cJSON_IsObject(v))
      return bad(err, "%s.%s must be a mapping", path, inner);
    *body = v;
    return CS_OK;
  }
  return req_map(entry, inner, path, body, err);
}

static enum cs_err check_clusters(const cJSON *list, cJSON *meta_list, struct cs_prov_error *err)
{
  char path[KUBE_PATH_MAX];
  const cJSON *c, *cluster = NULL;
  const char *name = NULL, *server = NULL;
  cJSON *m;
  int i = 0;
  enum cs_err e;

  for (c = list->child; c; c = c->next, i++) {
    if ((e = named_entry(list, c, i, "clusters", "cluster", false, &name, &cluster, err)))
      return e;
    snprintf(path, sizeof path, "clusters[%d].cluster", i);
    if ((e = req_str(cluster, "server", path, &server, err)) != CS_OK)
      return e;
    if (!(m = cJSON_CreateObject()) || !cJSON_AddItemToArray(meta_list, m)) {
      cJSON_Delete(m);
      return CS_ERR_NOMEM;
    }
    if ((e = cs_prov_add_str(m, "name", name)) || (e = cs_prov_add_str(m, "server", server)))
      return e;
  }
  return CS_OK;
}

static enum cs_err check_users(const cJSON *list, struct cs_prov_error *err)
{
  const cJSON *u, *user = NULL, *plugin = NULL;
  const char *name = NULL;
  static const char *const plugins[] = {"exec", "auth-provider"};
  int i = 0;
  enum cs_err e;

  for (u = list->child; u; u = u->next, i++) {
    char path[KUBE_PATH_MAX];

    if ((e = named_entry(list, u, i, "users", "user", true, &name, &user, err)) != CS_OK)
      return e;
    snprintf(path, sizeof path, "users[%d].user", i);
    for (size_t k = 0; user && k < sizeof plugins / sizeof plugins[0]; k++) {
      if ((e = member(user, plugins[k], path, &plugin, err)) != CS_OK)
        return e;
      if (plugin)
        return bad(err,
                   "%s.%s: users that authenticate through exec or auth-provider (as GKE "
                   "and EKS kubeconfigs do) need an external binary credstore cannot run; "
                   "use a token or client-certificate user",
                   path, plugins[k]);
    }
  }
  return CS_OK;
}

static enum cs_err check_contexts(const cJSON *list, struct cs_prov_error *err)
{
  char path[KUBE_PATH_MAX];
  const cJSON *c, *ctx = NULL;
  const char *name = NULL, *s = NULL;
  int i = 0;
  enum cs_err e;

  for (c = list->child; c; c = c->next, i++) {
    if ((e = named_entry(list, c, i, "contexts", "context", false, &name, &ctx, err)))
      return e;
    snprintf(path, sizeof path, "contexts[%d].context", i);
    if ((e = req_str(ctx, "cluster", path, &s, err)) || (e = req_str(ctx, "user", path, &s, err)))
      return e;
  }
  return CS_OK;
}

/* The entry of @p list named @p name (names are unique by now), or NULL. */
static const cJSON *find_named(const cJSON *list, const char *name, int *index)
{
  int i = 0;

  for (const cJSON *c = list->child; c; c = c->next, i++) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
      *index = i;
      return c;
    }
  }
  return NULL;
}

static enum cs_err check_current(const cJSON *root, const cJSON *clusters, const cJSON *users,
                                 const cJSON *contexts, const char **current,
                                 struct cs_prov_error *err)
{
  const cJSON *ctx;
  const char *cluster, *user;
  int i = -1, unused;
  enum cs_err e;

  /* Names can be long and are the user's text: the messages say where, not what. */
  if ((e = req_str(root, "current-context", "", current, err)) != CS_OK)
    return e;
  if (!(ctx = find_named(contexts, *current, &i)))
    return bad(err, "current-context names no entry of contexts");
  ctx = cJSON_GetObjectItemCaseSensitive(ctx, "context");
  cluster = cJSON_GetObjectItemCaseSensitive(ctx, "cluster")->valuestring;
  user = cJSON_GetObjectItemCaseSensitive(ctx, "user")->valuestring;
  if (!find_named(clusters, cluster, &unused))
    return bad(err, "contexts[%d].context.cluster (the current context's) names no entry of "
                    "clusters", i);
  if (!find_named(users, user, &unused))
    return bad(err, "contexts[%d].context.user (the current context's) names no entry of users",
               i);
  return CS_OK;
}

static enum cs_err describe_tree(const cJSON *root, cJSON *meta, struct cs_prov_error *err)
{
  const cJSON *clusters = NULL, *users = NULL, *contexts = NULL;
  const char *current = NULL;
  cJSON *list = NULL;
  enum cs_err e;

  if (!cJSON_IsObject(root))
    return bad(err, "the document must be a mapping with clusters, users and contexts");
  if ((e = named_list(root, "clusters", &clusters, err)) ||
      (e = named_list(root, "users", &users, err)) ||
      (e = named_list(root, "contexts", &contexts, err)))
    return e;
  e = CS_ERR_NOMEM;
  if (!(list = cJSON_CreateArray()))
    goto out;
  if ((e = check_clusters(clusters, list, err)) || (e = check_users(users, err)) ||
      (e = check_contexts(contexts, err)) ||
      (e = check_current(root, clusters, users, contexts, &current, err)))
    goto out;
  if ((e = cs_prov_add_str(meta, "currentContext", current)) != CS_OK)
    goto out;
  e = cs_prov_add_item(meta, "clusters", list);
  list = NULL;
out:
  cJSON_Delete(list);
  return e;
}

enum cs_err cs_kubeconfig_describe(const char *yaml, size_t len, cJSON **meta,
                                   struct cs_prov_error *err)
{
  cJSON *root = NULL, *m = NULL;
  enum cs_err e;

  if (!yaml || len == 0)
    return cs_prov_fail(err, CS_ERR_MISSING, KUBE_FIELD, "the kubeconfig is empty");
  if (len > KUBE_MAX_BYTES)
    return bad(err, "larger than 1 MiB");
  if ((e = load(yaml, len, &root, err)) != CS_OK)
    goto out;
  e = CS_ERR_NOMEM;
  if (!(m = cJSON_CreateObject()))
    goto out;
  if ((e = describe_tree(root, m, err)) != CS_OK)
    goto out;
  *meta = m;
  m = NULL;
out:
  cJSON_Delete(m);
  cs_prov_json_free_secret(root);
  return e;
}

/* ---------------------------------------------------------- provider */

static enum cs_err kube_validate(const cJSON *body, struct cs_prov_result *out,
                                 struct cs_prov_error *err)
{
  const char *plain = NULL;
  cJSON *meta = NULL, *desc = NULL;
  char *secret = NULL;
  size_t len;
  enum cs_err e;

  if ((e = cs_prov_plain(body, "secret", &plain, err)) != CS_OK)
    goto out;
  if (!plain) {
    e = cs_prov_fail(err, CS_ERR_MISSING, KUBE_FIELD,
                     "secret.plain (the kubeconfig YAML) is required");
    goto out;
  }
  len = strlen(plain);
  if ((e = cs_kubeconfig_describe(plain, len, &desc, err)) != CS_OK)
    goto out;
  e = CS_ERR_NOMEM;
  if (!(meta = cJSON_CreateObject()))
    goto out;
  e = cs_prov_add_item(meta, "kubeconfig", desc);
  desc = NULL;
  if (e != CS_OK)
    goto out;
  if ((e = cs_prov_dup_secret(plain, len, &secret)) != CS_OK)
    goto out;
  out->meta = meta;
  out->secret = secret;
  out->secret_len = len;
  meta = NULL;
out:
  cJSON_Delete(desc);
  cJSON_Delete(meta);
  return e;
}

static enum cs_err kube_resolve(const cJSON *meta, const char *secret, size_t secret_len,
                                const struct cs_resolve_opts *opts, cJSON **out)
{
  cJSON *r = NULL;
  enum cs_err e;

  if ((e = cs_prov_payload_ok(secret, secret_len)) != CS_OK)
    return e;
  if (secret_len == 0)
    return CS_ERR_CRYPTO;
  e = CS_ERR_NOMEM;
  if (!(r = cJSON_CreateObject()))
    goto out;
  if ((e = cs_prov_add_str(r, "type", "kubeconfig")) != CS_OK ||
      (e = cs_prov_add_secret(r, "kubeconfig", secret, secret_len)) != CS_OK)
    goto out;
  *out = r;
  r = NULL;
out:
  cs_prov_json_free_secret(r);
  return e;
}

const struct cs_provider cs_provider_kubeconfig = {
    .type = "kubeconfig",
    .validate = kube_validate,
    .resolve = kube_resolve,
};
