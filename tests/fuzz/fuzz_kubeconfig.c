/* A kubeconfig YAML document, as pasted into secret.plain.
 *
 * Besides "no crash, outputs only on success", an accepted document is
 * re-read here with libyaml's event API, independently of the provider's
 * loader, and must not hold what issue 11 was about: a merge key, an anchor,
 * an alias or a tag anywhere, or a refused field (exec, auth-provider,
 * tokenFile, client-certificate, client-key under users[].user;
 * certificate-authority, proxy-url under clusters[].cluster). Every server
 * in the metadata must be https, or http to loopback. */
#include "fuzz_common.h"
#include "providers.h"

#include <stdio.h>
#include <string.h>

#include <yaml.h>

#define SCAN_DEPTH 64
#define SCAN_KEY 32

/* One open container and the key it sits under in its parent ("" in a list). */
struct frame {
  bool map;
  bool want_key; /* map: the next scalar is a key */
  char key[SCAN_KEY];
};

static bool in(const char *s, const char *const *set)
{
  for (; *set; set++)
    if (strcmp(s, *set) == 0)
      return true;
  return false;
}

/* A key at root.<list>[i].<inner>.<key> that must never have been accepted. */
static void check_key(const struct frame *st, int d, const char *key)
{
  static const char *const user[] = {
      "exec", "auth-provider", "tokenFile", "client-certificate", "client-key", NULL};
  static const char *const cluster[] = {"certificate-authority", "proxy-url", NULL};

  if (strcmp(key, "<<") == 0)
    cs_fuzz_fail("kubeconfig accepted with a merge key");
  if (d != 4 || !st[0].map || st[1].map || !st[2].map || !st[3].map)
    return;
  if ((!strcmp(st[1].key, "users") && !strcmp(st[3].key, "user") && in(key, user)) ||
      (!strcmp(st[1].key, "clusters") && !strcmp(st[3].key, "cluster") && in(key, cluster)))
    cs_fuzz_fail("kubeconfig accepted with %s.%s.%s", st[1].key, st[3].key, key);
}

static void push(struct frame *st, int *d, bool map, const char *pending)
{
  if (*d == SCAN_DEPTH)
    cs_fuzz_fail("kubeconfig accepted nested deeper than %d", SCAN_DEPTH);
  if (*d > 0 && st[*d - 1].map)
    st[*d - 1].want_key = true;
  st[*d].map = map;
  st[*d].want_key = map;
  snprintf(st[*d].key, sizeof st[*d].key, "%s", *d > 0 && st[*d - 1].map ? pending : "");
  (*d)++;
}

static void scalar(struct frame *st, int d, const yaml_event_t *ev, char *pending)
{
  const char *v = (const char *)ev->data.scalar.value;

  if (d > 0 && st[d - 1].map && st[d - 1].want_key) {
    check_key(st, d, v);
    snprintf(pending, SCAN_KEY, "%s", v);
    st[d - 1].want_key = false;
    return;
  }
  if (strcmp(v, "<<") == 0 && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
    cs_fuzz_fail("kubeconfig accepted with a plain << value");
  if (d > 0 && st[d - 1].map)
    st[d - 1].want_key = true;
}

static void scan_accepted(const uint8_t *data, size_t size)
{
  yaml_parser_t p;
  yaml_event_t ev;
  struct frame st[SCAN_DEPTH];
  char pending[SCAN_KEY] = "";
  int d = 0;
  bool done = false;

  if (!yaml_parser_initialize(&p))
    cs_fuzz_fail("yaml_parser_initialize");
  yaml_parser_set_input_string(&p, data, size);
  while (!done) {
    if (!yaml_parser_parse(&p, &ev))
      cs_fuzz_fail("kubeconfig accepted that libyaml cannot parse");
    done = ev.type == YAML_STREAM_END_EVENT;
    if ((ev.type == YAML_ALIAS_EVENT) ||
        (ev.type == YAML_SCALAR_EVENT && (ev.data.scalar.anchor || ev.data.scalar.tag)) ||
        (ev.type == YAML_SEQUENCE_START_EVENT &&
         (ev.data.sequence_start.anchor || ev.data.sequence_start.tag)) ||
        (ev.type == YAML_MAPPING_START_EVENT &&
         (ev.data.mapping_start.anchor || ev.data.mapping_start.tag)))
      cs_fuzz_fail("kubeconfig accepted with an anchor, alias or tag");
    if (ev.type == YAML_SCALAR_EVENT)
      scalar(st, d, &ev, pending);
    else if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
      push(st, &d, ev.type == YAML_MAPPING_START_EVENT, pending);
    else if ((ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) && d > 0)
      d--;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
}

static void check_servers(const cJSON *clusters)
{
  const cJSON *c;

  cJSON_ArrayForEach(c, clusters)
  {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "server");
    const char *v = cJSON_IsString(s) ? s->valuestring : "";

    if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://127.", 11) != 0 &&
        strncmp(v, "http://[", 8) != 0 && strncmp(v, "http://localhost", 16) != 0)
      cs_fuzz_fail("kubeconfig accepted with a server that is not https or loopback");
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct cs_prov_error err;
  cJSON *meta = NULL;
  enum cs_err e;

  memset(&err, 0x5a, sizeof err);
  /* Exactly size bytes, no NUL after them: the parser must not read past. */
  e = cs_kubeconfig_describe((const char *)data, size, &meta, &err);
  if (e == CS_OK) {
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(meta, "currentContext");
    const cJSON *clusters = cJSON_GetObjectItemCaseSensitive(meta, "clusters");
    if (!cJSON_IsString(cur) || !cur->valuestring[0] || !cJSON_IsArray(clusters) ||
        cJSON_GetArraySize(clusters) < 1)
      cs_fuzz_fail("kubeconfig accepted without currentContext and clusters");
    check_servers(clusters);
    cJSON_Delete(meta);
    scan_accepted(data, size);
  } else {
    if (meta)
      cs_fuzz_fail("cs_kubeconfig_describe wrote *meta on failure");
    if (e != CS_ERR_NOMEM) {
      if (e != CS_ERR_INVALID && e != CS_ERR_MISSING)
        cs_fuzz_fail("cs_kubeconfig_describe returned %s", cs_err_code(e));
      cs_fuzz_check_terminated("err.field", err.field, sizeof err.field);
      cs_fuzz_check_terminated("err.msg", err.msg, sizeof err.msg);
    }
  }
  return 0;
}
