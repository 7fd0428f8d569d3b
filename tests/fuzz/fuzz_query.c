/*
 * A query string ("offset=10&limit=50&type=aws&search=prod&sort=_id") and
 * the request headers parsed like one value (If-Match). MHD splits on '&'
 * and the first '=', turns '+' into a space, and hands each name and value
 * to the server's unescape callback; this harness does the same with the
 * server's own cs_http_unescape (server/api/request.c: %XX decoded once,
 * %00 to the byte 0xFF) and then runs the server's own parsers on the
 * parameters: cs_parse_cred_query (h_credentials.c), cs_parse_audit_query
 * (h_audit.c), cs_parse_events_query (h_events.c), cs_parse_deliveries_query
 * (h_deliveries.c) and cs_parse_if_match
 * (request.c), plus the common parsers underneath (cs_parse_u64 with each
 * parameter's bound, cs_id_valid, cs_name_valid, cs_time_parse for expiresAt,
 * cs_provider_find for type), every one on parameters it does not know.
 *
 * Promises checked: an accepted query is within the bounds the parsers
 * promise (limit 1..max, offset and wait bounded, a credential filter is a
 * valid id, a type names its provider); a refusal is a 400 with a message
 * and writes nothing the handler would use; cs_parse_u64 agrees with printf
 * and an RFC 3339 time formats back to itself.
 */
#include "fuzz_common.h"
#include "http.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

/* The split query: names and values as MHD would hand them over. */
struct table {
  const char *name[MAX_PARAMS];
  const char *value[MAX_PARAMS];
  size_t n;
};

/* MHD's lookup: the first value of @p name, NULL when absent. */
static const char *table_get(void *arg, const char *name)
{
  const struct table *t = arg;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->name[i], name) == 0)
      return t->value[i];
  return NULL;
}

/* MHD's iteration: every value of @p name in order. */
static size_t table_get_all(void *arg, const char *name, const char **out, size_t max)
{
  const struct table *t = arg;
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->name[i], name) == 0) {
      if (n < max)
        out[n] = t->value[i];
      n++;
    }
  return n;
}

/* MHD_unescape_plus, then the server's callback, in place. */
static void unescape(char *s)
{
  for (char *p = s; *p; p++)
    if (*p == '+')
      *p = ' ';
  size_t n = cs_http_unescape(s);
  if (n != strlen(s))
    cs_fuzz_fail("cs_http_unescape returned %zu for a string of %zu", n, strlen(s));
}

/* cs_parse_u64 must agree with printf: no sign, no space, value <= max. */
static void u64(const char *v, uint64_t max)
{
  uint64_t n = 0;
  char back[32];
  const char *digits = v;

  if (cs_parse_u64(v, max, &n) != CS_OK)
    return;
  if (n > max)
    cs_fuzz_fail("cs_parse_u64(\"%s\") = %" PRIu64 " > max %" PRIu64, v, n, max);
  while (digits[0] == '0' && digits[1])
    digits++;
  snprintf(back, sizeof back, "%" PRIu64, n);
  if (strcmp(back, digits) != 0)
    cs_fuzz_fail("cs_parse_u64(\"%s\") = %s", v, back);
}

/* RFC 3339: whatever parses formats back to a time that parses to the same second. */
static void rfc3339(const char *v)
{
  int64_t t = 0, again = 0;
  char out[32];

  if (cs_time_parse(v, &t) != CS_OK)
    return;
  if (t < 0 || t >= (int64_t)253402300800) /* before 1970 or after 9999 (offsets) */
    return;
  cs_time_format(t, out);
  if (cs_time_parse(out, &again) != CS_OK || again != t)
    cs_fuzz_fail("cs_time_parse(\"%s\") = %lld, formats as %s", v, (long long)t, out);
}

/* If-Match: 3 or "3", through the server's parser. */
static void if_match(const char *v)
{
  uint64_t n = 0, plain = 0;
  size_t len = strlen(v);

  if (cs_parse_if_match(v, &n) != CS_OK)
    return;
  /* Accepted: the digits, or the digits between the quotes, parse alike. */
  char *inner = strndup(v + (len >= 2 && v[0] == '"' ? 1 : 0),
                        len >= 2 && v[0] == '"' && v[len - 1] == '"' ? len - 2 : len);
  if (!inner || cs_parse_u64(inner, UINT64_MAX, &plain) != CS_OK || plain != n)
    cs_fuzz_fail("cs_parse_if_match(\"%s\") = %" PRIu64 " disagrees with its digits", v, n);
  free(inner);
}

static void type(const char *v)
{
  const struct cs_provider *p = v[0] ? cs_provider_find(v) : NULL;
  if (p && strcmp(p->type, v) != 0)
    cs_fuzz_fail("cs_provider_find(\"%s\") found %s", v, p->type);
}

/* A refusal is a 400 with a message; nothing else. */
static void refused(enum cs_err e, const struct cs_resp *r, const char *what)
{
  if (e != CS_ERR_BAD_QUERY || !r->err_msg[0] || r->err_extra || r->body)
    cs_fuzz_fail("%s refused with %s (message \"%s\")", what, cs_err_code(e), r->err_msg);
}

static void cred_query(const struct cs_params *p)
{
  struct cs_cred_query q;
  struct cs_resp r = {0};
  enum cs_err e = cs_parse_cred_query(p, &q, &r);

  if (e) {
    refused(e, &r, "cs_parse_cred_query");
    return;
  }
  if (q.limit < 1 || q.limit > CS_LIST_LIMIT_MAX || q.offset > CS_LIST_OFFSET_MAX ||
      (q.search && strlen(q.search) > 128) || q.scope)
    cs_fuzz_fail("cs_parse_cred_query accepted limit %" PRIu64 ", offset %" PRIu64, q.limit,
                 q.offset);
  const char *t = p->get(p->arg, "type");
  if (q.type && (!t || strcmp(q.type->type, t) != 0))
    cs_fuzz_fail("cs_parse_cred_query: type %s for ?type=%s", q.type->type, t ? t : "(none)");
  const cJSON *id;
  if (q.ids && (!cJSON_GetArraySize(q.ids) || cJSON_GetArraySize(q.ids) > CS_IDS_MAX))
    cs_fuzz_fail("cs_parse_cred_query: %d ids", cJSON_GetArraySize(q.ids));
  cJSON_ArrayForEach(id, q.ids)
  {
    if (!cJSON_IsString(id) || !cs_name_valid(id->valuestring, strlen(id->valuestring)))
      cs_fuzz_fail("cs_parse_cred_query accepted an id that is not a name");
  }
  cJSON_Delete((cJSON *)q.ids);
}

static void feed_queries(const struct cs_params *p)
{
  struct cs_feed_query q;
  struct cs_resp r = {0};
  cJSON *scope = cJSON_Parse("[\"aws-*\"]");
  enum cs_err e = cs_parse_audit_query(p, &q, &r);

  if (e)
    refused(e, &r, "cs_parse_audit_query");
  else if (q.limit < 1 || q.limit > CS_AUDIT_LIST_MAX || q.since == UINT64_MAX ||
           (q.cred && !cs_name_valid(q.cred, strlen(q.cred))))
    cs_fuzz_fail("cs_parse_audit_query accepted limit %" PRIu64, q.limit);
  memset(&r, 0, sizeof r);
  e = cs_parse_events_query(p, scope, &q, &r);
  if (e)
    refused(e, &r, "cs_parse_events_query");
  else if (q.wait > CS_EVENTS_WAIT_MAX || q.since == UINT64_MAX ||
           (q.cred && (!cs_name_valid(q.cred, strlen(q.cred)) || !cs_scope_allows(scope, q.cred))))
    cs_fuzz_fail("cs_parse_events_query accepted wait %" PRIu64, q.wait);
  cJSON_Delete(scope);
}

static void deliveries_query(const struct cs_params *p)
{
  static const char *const states[] = {"pending", "dead", "all"};
  struct cs_delivery_query q;
  struct cs_resp r = {0};
  enum cs_err e = cs_parse_deliveries_query(p, &q, &r);
  const char *s = p->get(p->arg, "state");

  if (e) {
    refused(e, &r, "cs_parse_deliveries_query");
    return;
  }
  if (q.limit < 1 || q.limit > CS_LIST_LIMIT_MAX || q.offset > CS_LIST_OFFSET_MAX || q.scope ||
      q.state > CS_DELIVERY_ALL || (s && strcmp(s, states[q.state]) != 0) ||
      (!s && q.state != CS_DELIVERY_ALL))
    cs_fuzz_fail("cs_parse_deliveries_query accepted state %d limit %" PRIu64, (int)q.state,
                 q.limit);
}

/* The common parsers each parameter goes through, with the server's bounds;
 * every one on parameters it does not know, since the caller picks the names. */
static void param(const char *k, const char *v)
{
  if (!strcmp(k, "offset")) {
    u64(v, CS_LIST_OFFSET_MAX);
  } else if (!strcmp(k, "limit")) {
    u64(v, CS_LIST_LIMIT_MAX);
    u64(v, CS_AUDIT_LIST_MAX);
  } else if (!strcmp(k, "since")) {
    u64(v, UINT64_MAX - 1);
  } else if (!strcmp(k, "wait")) {
    u64(v, CS_EVENTS_WAIT_MAX);
  } else if (!strcmp(k, "credential") || !strcmp(k, "ids")) {
    (void)cs_name_valid(v, strlen(v));
  } else if (!strcmp(k, "expiresAt")) {
    rfc3339(v);
  } else if (!strcmp(k, "type")) {
    type(v);
  } else if (!strcmp(k, "If-Match")) {
    if_match(v);
  } else {
    u64(v, UINT64_MAX);
    (void)cs_id_valid(v, strlen(v));
    (void)cs_name_valid(v, strlen(v));
    rfc3339(v);
    type(v);
    if_match(v);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *qs = cs_fuzz_cstr(data, size); /* MHD's query is a C string */
  char *save = NULL;
  struct table t = {{NULL}, {NULL}, 0};
  struct cs_params p = {table_get, &t, table_get_all};

  for (char *pair = strtok_r(qs, "&", &save); pair && t.n < MAX_PARAMS;
       pair = strtok_r(NULL, "&", &save)) {
    char *v = strchr(pair, '=');
    if (!v)
      continue; /* MHD gives "name" without '=' a NULL value: absent to cs_req_query */
    *v++ = '\0';
    unescape(pair);
    unescape(v);
    t.name[t.n] = pair;
    t.value[t.n++] = v;
    param(pair, v);
  }
  cred_query(&p);
  feed_queries(&p);
  deliveries_query(&p);
  free(qs);
  return 0;
}
