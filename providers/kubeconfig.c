/* kubeconfig: the YAML is the sealed payload; validation loads it with
 * libyaml's event API into a cJSON tree and checks it against what kubectl
 * (client-go's clientcmd/api/v1 types) reads, so that a stored kubeconfig
 * can never make a consumer run a program, read a local file, or send its
 * credentials anywhere but its cluster.
 *
 * Loading is bounded in size, depth and node count and refuses the YAML
 * features that would make kubectl read something other than the tree we
 * check: merge keys (<<), anchors and aliases, and tags. Checking is an
 * allowlist: every mapping kubectl interprets may hold only the fields
 * listed below; fields that run programs (exec, auth-provider), name local
 * files (tokenFile, client-certificate, client-key, certificate-authority)
 * or reroute traffic (proxy-url) are refused with the reason, and so is any
 * field we do not know, because a later client-go may give it a meaning. */
#include "prov_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define KUBE_MAX_BYTES ((size_t)1 << 20)
#define KUBE_MAX_DEPTH 32
#define KUBE_MAX_NODES 100000
#define KUBE_MAX_ENTRIES 1000
#define KUBE_FIELD "secret.plain"
#define KUBE_PATH_MAX 80
/* Longest mapping key a message repeats; longer or odd keys show as "?". */
#define KUBE_KEY_SHOWN 32

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

/* @p key as a message may show it. Keys are the user's text: one that does
 * not look like a field name might be a misplaced secret, so it becomes "?". */
static const char *shown(const char *key)
{
  size_t n = strnlen(key, KUBE_KEY_SHOWN + 1);

  if (n == 0 || n > KUBE_KEY_SHOWN)
    return "?";
  for (const char *p = key; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("-_./<", *p))
      return "?";
  return key;
}

/* Append printf output to the path in @p buf (truncating, never overflowing). */
static void path_add(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path_add(char *buf, size_t size, const char *fmt, ...)
{
  size_t used = strlen(buf);
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf + used, size - used, fmt, ap);
  va_end(ap);
}

/* Where the loader stands ("users[0].user.exec"), for messages: the open
 * containers, then the slot the next node fills, named @p leaf when that
 * node is itself a mapping key. Each open container is its parent's last
 * child, so an index is the parent's size less one. */
static void load_where(const struct loader *l, const char *leaf, char *buf, size_t size)
{
  buf[0] = '\0';
  for (int i = 0; i < l->depth; i++) {
    const cJSON *c = l->stack[i];
    const char *name = i + 1 < l->depth ? l->stack[i + 1]->string : l->key ? l->key : leaf;
    int n = cJSON_GetArraySize(c);

    if (cJSON_IsArray(c))
      path_add(buf, size, "[%d]", i + 1 < l->depth ? n - 1 : n);
    else if (name)
      path_add(buf, size, "%s%s", buf[0] ? "." : "", shown(name));
  }
  if (!buf[0])
    path_add(buf, size, "the document");
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

  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  return !v || !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
         !strcmp(v, "NULL");
}

/* Anchors, aliases, merge keys and tags make kubectl's YAML library (go-yaml)
 * read a different document from the tree we check: an alias or a merge
 * copies one mapping into another (a user gains an exec), and a tag changes
 * what a node is (!!merge makes any key a merge, !!binary turns base64 into
 * other text). A kubeconfig needs none of them, so none is accepted, core
 * tags such as !!str included. @p leaf names the node when it is a key. */
static enum cs_err refuse_props(struct loader *l, const yaml_char_t *anchor, const yaml_char_t *tag,
                                const char *leaf)
{
  char where[KUBE_PATH_MAX];

  if (!anchor && !tag)
    return CS_OK;
  load_where(l, leaf, where, sizeof where);
  if (tag)
    return bad(l->err,
               "%s: YAML tags (!...) are refused: a kubeconfig needs none, and a tag "
               "changes what kubectl reads",
               where);
  return bad(l->err,
             "%s: YAML anchors and aliases are refused: kubectl would copy in content "
             "credstore never checked there",
             where);
}

static enum cs_err refuse_merge(struct loader *l, const char *leaf)
{
  char where[KUBE_PATH_MAX];

  load_where(l, leaf, where, sizeof where);
  return bad(l->err,
             "%s: YAML merge keys (<<) are refused: kubectl would merge in fields "
             "credstore never checked",
             where);
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
    cs_json_wipe_delete(node);
    return bad(l->err, "the document has more than %d nodes", KUBE_MAX_NODES);
  }
  if (container && l->depth == KUBE_MAX_DEPTH) {
    cs_json_wipe_delete(node);
    return bad(l->err, "the document is nested more than %d levels deep", KUBE_MAX_DEPTH);
  }
  if (!parent) {
    l->root = node;
  } else if (cJSON_IsArray(parent)) {
    if (!cJSON_AddItemToArray(parent, node)) {
      cs_json_wipe_delete(node);
      return CS_ERR_NOMEM;
    }
  } else {
    if (!l->key) {
      cs_json_wipe_delete(node);
      return bad(l->err, "mapping keys must be plain strings");
    }
    ok = cJSON_AddItemToObject(parent, l->key, node);
    cs_free_secret_str(l->key);
    l->key = NULL;
    if (!ok) {
      cs_json_wipe_delete(node);
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
  bool is_key;

  if (!v)
    return CS_ERR_INTERNAL; /* libyaml always allocates a scalar's value */
  /* "\0" is legal in a double-quoted YAML scalar but would silently cut a
   * C string short, so the tree would no longer say what the YAML says. */
  if (memchr(v, '\0', n))
    return bad(l->err, "strings must not contain NUL characters");
  is_key = cJSON_IsObject(parent) && !l->key;
  /* go-yaml v2 merges on a plain <<, v3 also on some quoted ones: refuse
   * << as a key in every style, and a plain << anywhere. */
  if (!strcmp(v, "<<") && (is_key || ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    return refuse_merge(l, is_key ? v : NULL);
  if (is_key) {
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
  enum cs_err e;

  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (++l->docs > 1)
      return bad(l->err, "expected one YAML document, found several");
    return CS_OK;
  case YAML_ALIAS_EVENT:
    return refuse_props(l, ev->data.alias.anchor, NULL, NULL);
  case YAML_SCALAR_EVENT:
    if ((e = refuse_props(l, ev->data.scalar.anchor, ev->data.scalar.tag,
                          (const char *)ev->data.scalar.value)) != CS_OK)
      return e;
    return on_scalar(l, ev);
  case YAML_SEQUENCE_START_EVENT:
    if ((e = refuse_props(l, ev->data.sequence_start.anchor, ev->data.sequence_start.tag, NULL)) !=
        CS_OK)
      return e;
    return attach(l, cJSON_CreateArray(), true);
  case YAML_MAPPING_START_EVENT:
    if ((e = refuse_props(l, ev->data.mapping_start.anchor, ev->data.mapping_start.tag, NULL)) !=
        CS_OK)
      return e;
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
  cs_json_wipe_delete(l.root);
  parser_wipe_delete(&l.parser);
  return e;
}

/* ---------------------------------------------------------- checking */

/* What a field may hold. Scalars are strings in our tree (YAML's types are
 * go-yaml's business: a mistyped value makes kubectl fail, not misbehave). */
enum field_kind {
  F_VALUE,   /* a scalar */
  F_VALUES,  /* a list of scalars */
  F_EXTRA,   /* a mapping of lists of scalars, any keys (as-user-extra) */
  F_MAP,     /* a mapping holding only the fields of ->sub */
  F_LIST,    /* a list of mappings holding only the fields of ->sub */
  F_ANY,     /* inert to client-go (an extension's payload) */
  F_REFUSED, /* never accepted, for the reason ->why */
};

struct field {
  const char *key;
  enum field_kind kind;
  const struct field *sub;
  const char *why;
};

#define FIELD(k, kind)                                                                             \
  {                                                                                                \
    k, kind, NULL, NULL                                                                            \
  }
#define NESTED(k, kind, sub)                                                                       \
  {                                                                                                \
    k, kind, sub, NULL                                                                             \
  }
#define REFUSED(k, why)                                                                            \
  {                                                                                                \
    k, F_REFUSED, NULL, why                                                                        \
  }
#define FIELDS_END                                                                                 \
  {                                                                                                \
    NULL, F_ANY, NULL, NULL                                                                        \
  }

#define PLUGIN_WHY                                                                                 \
  "users that authenticate through exec or auth-provider (as GKE and EKS kubeconfigs do) "         \
  "need an external binary credstore cannot run; use a token or client-certificate user"
#define PATH_WHY(data) "names a file on the consumer's machine; put the content inline in " data

/* Extensions are kept by client-go for other tools and never acted on (the
 * one exception, exec plugins reading cluster extensions, needs an exec). */
static const struct field extension_fields[] = {FIELD("name", F_VALUE), FIELD("extension", F_ANY),
                                                FIELDS_END};

/* client-go clientcmd/api/v1 Cluster. tls-server-name only narrows which
 * certificate is accepted; insecure-skip-tls-verify is checked with server. */
static const struct field cluster_fields[] = {
    FIELD("server", F_VALUE),
    FIELD("tls-server-name", F_VALUE),
    FIELD("insecure-skip-tls-verify", F_VALUE),
    FIELD("certificate-authority-data", F_VALUE),
    FIELD("disable-compression", F_VALUE),
    NESTED("extensions", F_LIST, extension_fields),
    REFUSED("certificate-authority", PATH_WHY("certificate-authority-data")),
    REFUSED("proxy-url", "would send the cluster's traffic, credentials included, through "
                         "another host; consumers keep their own proxy settings"),
    FIELDS_END};

/* AuthInfo. Impersonation (as, as-uid, as-groups, as-user-extra) only asks
 * the cluster to act as someone else, which its RBAC decides. */
static const struct field user_fields[] = {
    FIELD("token", F_VALUE),
    FIELD("username", F_VALUE),
    FIELD("password", F_VALUE),
    FIELD("client-certificate-data", F_VALUE),
    FIELD("client-key-data", F_VALUE),
    FIELD("as", F_VALUE),
    FIELD("as-uid", F_VALUE),
    FIELD("as-groups", F_VALUES),
    FIELD("as-user-extra", F_EXTRA),
    NESTED("extensions", F_LIST, extension_fields),
    REFUSED("exec", PLUGIN_WHY),
    REFUSED("auth-provider", PLUGIN_WHY),
    REFUSED("tokenFile", "reads the token from a file on the consumer's machine; put the token "
                         "itself in token"),
    REFUSED("client-certificate", PATH_WHY("client-certificate-data")),
    REFUSED("client-key", PATH_WHY("client-key-data")),
    FIELDS_END};

static const struct field context_fields[] = {
    FIELD("cluster", F_VALUE), FIELD("user", F_VALUE), FIELD("namespace", F_VALUE),
    NESTED("extensions", F_LIST, extension_fields), FIELDS_END};

static const struct field preference_fields[] = {
    FIELD("colors", F_VALUE), NESTED("extensions", F_LIST, extension_fields), FIELDS_END};

static const struct field cluster_entry[] = {FIELD("name", F_VALUE),
                                             NESTED("cluster", F_MAP, cluster_fields), FIELDS_END};
static const struct field user_entry[] = {FIELD("name", F_VALUE),
                                          NESTED("user", F_MAP, user_fields), FIELDS_END};
static const struct field context_entry[] = {FIELD("name", F_VALUE),
                                             NESTED("context", F_MAP, context_fields), FIELDS_END};

static const struct field config_fields[] = {FIELD("apiVersion", F_VALUE),
                                             FIELD("kind", F_VALUE),
                                             NESTED("preferences", F_MAP, preference_fields),
                                             NESTED("clusters", F_LIST, cluster_entry),
                                             NESTED("users", F_LIST, user_entry),
                                             NESTED("contexts", F_LIST, context_entry),
                                             FIELD("current-context", F_VALUE),
                                             NESTED("extensions", F_LIST, extension_fields),
                                             FIELDS_END};

static const struct field extra_values = FIELD(NULL, F_VALUES);

static enum cs_err check_fields(const cJSON *map, const struct field *fields, const char *path,
                                struct cs_prov_error *err);
static enum cs_err check_value(const cJSON *v, const struct field *f, const char *path,
                               struct cs_prov_error *err);

/* Lists of F_VALUES, F_LIST and F_EXTRA: each item at "<path>[i]" (".<key>"). */
static enum cs_err check_items(const cJSON *v, const struct field *f, const char *path,
                               struct cs_prov_error *err)
{
  char sub[KUBE_PATH_MAX];
  int i = 0;
  enum cs_err e;

  for (const cJSON *c = v->child; c; c = c->next, i++) {
    if (f->kind == F_EXTRA)
      snprintf(sub, sizeof sub, "%s.%s", path, shown(c->string));
    else
      snprintf(sub, sizeof sub, "%s[%d]", path, i);
    if (f->kind == F_EXTRA) /* each member a list of scalars, or null */
      e = check_value(c, &extra_values, sub, err);
    else if (f->kind == F_VALUES)
      e = cJSON_IsString(c) || cJSON_IsNull(c)
              ? CS_OK
              : bad(err, "%s must be a single value, not a list or mapping", sub);
    else
      e = cJSON_IsObject(c) ? check_fields(c, f->sub, sub, err)
                            : bad(err, "%s must be a mapping", sub);
    if (e != CS_OK)
      return e;
  }
  return CS_OK;
}

/* The value @p v of field @p f, at @p path. Null is "not set" for every kind. */
static enum cs_err check_value(const cJSON *v, const struct field *f, const char *path,
                               struct cs_prov_error *err)
{
  if (cJSON_IsNull(v) || f->kind == F_ANY)
    return CS_OK;
  switch (f->kind) {
  case F_VALUE:
    return cJSON_IsString(v) ? CS_OK
                             : bad(err, "%s must be a single value, not a list or mapping", path);
  case F_MAP:
    return cJSON_IsObject(v) ? check_fields(v, f->sub, path, err)
                             : bad(err, "%s must be a mapping", path);
  case F_EXTRA:
    return cJSON_IsObject(v) ? check_items(v, f, path, err)
                             : bad(err, "%s must be a mapping", path);
  default: /* F_VALUES, F_LIST */
    return cJSON_IsArray(v) ? check_items(v, f, path, err) : bad(err, "%s must be a list", path);
  }
}

/* Every member of @p map must be one of @p fields, once, holding what the
 * field allows. An allowlist, so a field kubectl would act on that we did
 * not think about (or a later client-go adds) is refused, not passed on. */
static enum cs_err check_fields(const cJSON *map, const struct field *fields, const char *path,
                                struct cs_prov_error *err)
{
  char sub[KUBE_PATH_MAX];
  enum cs_err e;

  for (const cJSON *c = map->child; c; c = c->next) {
    const struct field *f = fields;

    while (f->key && strcmp(f->key, c->string) != 0)
      f++;
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", shown(c->string));
    if (!f->key)
      return bad(err,
                 "%s is not a kubeconfig field credstore accepts: it takes only the fields "
                 "that cannot run programs, read local files or send credentials elsewhere",
                 sub);
    for (const cJSON *p = map->child; p != c; p = p->next)
      if (strcmp(p->string, c->string) == 0)
        return bad(err, "%s appears twice", sub);
    if (f->kind == F_REFUSED)
      return bad(err, "%s: %s", sub, f->why);
    if ((e = check_value(c, f, sub, err)) != CS_OK)
      return e;
  }
  return CS_OK;
}

/* A member of a mapping; absent and null both give NULL (check_fields has
 * already refused duplicates and values of the wrong shape). */
static const cJSON *member(const cJSON *map, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, key);

  return cJSON_IsNull(v) ? NULL : v;
}

static enum cs_err req_str(const cJSON *map, const char *key, const char *path, const char **out,
                           struct cs_prov_error *err)
{
  const cJSON *v = member(map, key);
  const char *dot = *path ? "." : "";

  if (!v)
    return bad(err, "%s%s%s is required", path, dot, key);
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return bad(err, "%s%s%s must be a non-empty string", path, dot, key);
  *out = v->valuestring;
  return CS_OK;
}

/* A top-level list of named entries ("clusters", "users", "contexts"). */
static enum cs_err named_list(const cJSON *root, const char *key, const cJSON **out,
                              struct cs_prov_error *err)
{
  const cJSON *list = member(root, key);
  int n;

  if (!list)
    return bad(err, "%s is required", key);
  n = cJSON_GetArraySize(list);
  if (n == 0)
    return bad(err, "%s must list at least one entry", key);
  if (n > KUBE_MAX_ENTRIES)
    return bad(err, "%s has more than %d entries", key, KUBE_MAX_ENTRIES);
  *out = list;
  return CS_OK;
}

/* Entry @p i of a named list: a unique, non-empty name, and its @p inner
 * mapping (NULL allowed only when @p inner_optional). */
static enum cs_err named_entry(const cJSON *list, const cJSON *entry, int i, const char *key,
                               const char *inner, bool inner_optional, const char **name,
                               const cJSON **body, struct cs_prov_error *err)
{
  char path[KUBE_PATH_MAX];
  int j = 0;
  enum cs_err e;

  snprintf(path, sizeof path, "%s[%d]", key, i);
  if ((e = req_str(entry, "name", path, name, err)) != CS_OK)
    return e;
  for (const cJSON *prev = list->child; prev && j < i; prev = prev->next, j++) {
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(prev, "name");
    if (cJSON_IsString(pn) && strcmp(pn->valuestring, *name) == 0)
      return bad(err, "%s.name repeats the name of %s[%d]", path, key, j);
  }
  *body = member(entry, inner);
  if (!*body && !inner_optional)
    return bad(err, "%s.%s is required", path, inner);
  return CS_OK;
}

/* The host[:port] of a URL is a loopback address: 127.0.0.0/8, [::1] or
 * localhost (RFC 6761), as Go's URL parser and dialer would read it. */
static bool authority_is_loopback(const char *a, size_t n)
{
  char host[INET6_ADDRSTRLEN];
  const char *end = a + n, *h = a, *he, *rest;
  struct in_addr v4;
  struct in6_addr v6;

  if (*a == '[') {
    h = a + 1;
    if (!(he = memchr(h, ']', n - 1)))
      return false;
    rest = he + 1;
  } else {
    he = memchr(a, ':', n);
    rest = he = he ? he : end;
  }
  if (rest < end) { /* ":port", digits only */
    if (*rest != ':' || end - rest < 2 || end - rest > 6)
      return false;
    for (const char *p = rest + 1; p < end; p++)
      if (!isdigit((unsigned char)*p))
        return false;
  }
  if (he == h || (size_t)(he - h) >= sizeof host)
    return false;
  memcpy(host, h, (size_t)(he - h));
  host[he - h] = '\0';
  if (*a == '[')
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
  /* inet_pton takes exactly four decimal parts without leading zeros, as Go's ParseIP does */
  return strcmp(host, "localhost") == 0 ||
         (inet_pton(AF_INET, host, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127);
}

/* kubectl sends the user's credentials to server: it must be https, or http
 * to this machine only, since a token sent over http is readable on the way;
 * and certificate checks may be skipped only on loopback, for the same reason. */
static enum cs_err check_server(const cJSON *cluster, const char *server, const char *path,
                                struct cs_prov_error *err)
{
  bool tls = strncmp(server, "https://", 8) == 0;
  const char *auth = server + (tls ? 8 : 7);
  const cJSON *skip = member(cluster, "insecure-skip-tls-verify");
  size_t n;
  bool loopback;

  if (!tls && strncmp(server, "http://", 7) != 0)
    return bad(err, "%s.server must be an https:// URL", path);
  for (const char *p = server; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f)
      return bad(err, "%s.server must not contain spaces or control characters", path);
  n = strcspn(auth, "/?#");
  if (n == 0)
    return bad(err, "%s.server has no host", path);
  /* Also: the server is shown in the credential's metadata. */
  if (memchr(auth, '@', n))
    return bad(err, "%s.server must not carry a user name or password", path);
  loopback = authority_is_loopback(auth, n);
  if (!tls && !loopback)
    return bad(err,
               "%s.server: plain http is accepted only to a loopback host (127.0.0.0/8, "
               "[::1], localhost); a token sent over http can be read on the way",
               path);
  if (skip && !loopback && strcmp(skip->valuestring, "false") != 0 &&
      strcmp(skip->valuestring, "False") != 0 && strcmp(skip->valuestring, "FALSE") != 0)
    return bad(err,
               "%s.insecure-skip-tls-verify is accepted only for a loopback server: "
               "without certificate checks anyone on the way can pose as the cluster",
               path);
  return CS_OK;
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
    if ((e = req_str(cluster, "server", path, &server, err)) != CS_OK ||
        (e = check_server(cluster, server, path, err)) != CS_OK)
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

/* Users need only a unique name: check_fields has refused every field that
 * runs a program or reads a file, and a user with no field is anonymous. */
static enum cs_err check_users(const cJSON *list, struct cs_prov_error *err)
{
  const cJSON *u, *user = NULL;
  const char *name = NULL;
  int i = 0;
  enum cs_err e;

  for (u = list->child; u; u = u->next, i++)
    if ((e = named_entry(list, u, i, "users", "user", true, &name, &user, err)) != CS_OK)
      return e;
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
    return bad(err,
               "contexts[%d].context.cluster (the current context's) names no entry of "
               "clusters",
               i);
  if (!find_named(users, user, &unused))
    return bad(err, "contexts[%d].context.user (the current context's) names no entry of users", i);
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
  if ((e = check_fields(root, config_fields, "", err)) != CS_OK)
    return e;
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

/* Bounds, load and every check; the tree and (NULL ok) the description. */
static enum cs_err load_checked(const char *yaml, size_t len, cJSON **root_out, cJSON **meta,
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
  if (meta) {
    *meta = m;
    m = NULL;
  }
  if (root_out) {
    *root_out = root;
    root = NULL;
  }
out:
  cJSON_Delete(m);
  cs_json_wipe_delete(root);
  return e;
}

enum cs_err cs_kubeconfig_describe(const char *yaml, size_t len, cJSON **meta,
                                   struct cs_prov_error *err)
{
  return load_checked(yaml, len, NULL, meta, err);
}

enum cs_err cs_kube_load(const char *yaml, size_t len, cJSON **root, struct cs_prov_error *err)
{
  return load_checked(yaml, len, root, NULL, err);
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

static enum cs_err kube_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                 struct cs_net_error *err)
{
  const char *secret = ctx->secret;
  size_t secret_len = ctx->secret_len;
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
  cs_json_wipe_delete(r);
  return e;
}

static enum cs_err kube_resolve(const struct cs_prov_ctx *ctx, cJSON **out,
                                struct cs_net_error *err)
{
  return cs_prov_plain_resolve(kube_material, "kubeconfig", ctx, out, err);
}

/* A kubeconfig hands out its stored document, never short-lived material. */
static bool never_short_lived(const struct cs_prov_ctx *ctx)
{
  (void)ctx;
  return false;
}

const struct cs_provider cs_provider_kubeconfig = {
    .type = "kubeconfig",
    .validate = kube_validate,
    .resolve = kube_resolve,
    .test = cs_kube_test,
    .short_lived = never_short_lived,
};
