/*
 * A query string ("offset=10&limit=50&type=aws&search=prod&sort=_id") and
 * the request headers parsed like one value (If-Match). MHD splits on '&'
 * and the first '=', turns '+' into a space, and hands each name and value
 * to the server's unescape callback (server/http.c: %XX decoded except %00,
 * which stays encoded) as C strings; this harness does the same and
 * runs each value through the parser the server uses for that parameter
 * (server/h_credentials.c, audit.c, events.c, h_access_keys.c), and every
 * parser on parameters it does not know, since the caller picks the names.
 * (search, sort and reverse are only compared against fixed strings there.)
 * Keep the bounds in step with those files.
 */
#include "fuzz_common.h"
#include "providers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFFSET_MAX 1000000000ULL /* h_credentials.c */
#define LIMIT_MAX 500            /* h_credentials.c */
#define LIST_MAX 1000            /* audit.c */
#define WAIT_MAX 60              /* events.c */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* MHD_unescape_plus, then the server's callback (server/http.c unescape), in place. */
static void unescape(char *s)
{
  char *w = s;

  for (char *p = s; *p; p++)
    if (*p == '+')
      *p = ' ';
  for (const char *r = s; *r; r++) {
    int hi, lo;
    if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo)) {
      *w++ = (char)(hi << 4 | lo);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
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

/* h_credentials.c parse_if_match: 3 or "3". */
static void if_match(const char *v)
{
  char buf[32];
  size_t n = strlen(v);

  if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
    if (n - 2 >= sizeof buf)
      return;
    memcpy(buf, v + 1, n - 2);
    buf[n - 2] = '\0';
    v = buf;
  }
  u64(v, UINT64_MAX);
}

static void type(const char *v)
{
  const struct cs_provider *p = v[0] ? cs_provider_find(v) : NULL;
  if (p && strcmp(p->type, v) != 0)
    cs_fuzz_fail("cs_provider_find(\"%s\") found %s", v, p->type);
}

static void param(const char *k, const char *v)
{
  if (!strcmp(k, "offset")) {
    u64(v, OFFSET_MAX);
  } else if (!strcmp(k, "limit")) {
    u64(v, LIMIT_MAX);
    u64(v, LIST_MAX);
  } else if (!strcmp(k, "since")) {
    u64(v, UINT64_MAX - 1);
  } else if (!strcmp(k, "wait")) {
    u64(v, WAIT_MAX);
  } else if (!strcmp(k, "credential")) {
    (void)cs_id_valid(v, strlen(v));
  } else if (!strcmp(k, "expiresAt")) {
    rfc3339(v);
  } else if (!strcmp(k, "type")) {
    type(v);
  } else if (!strcmp(k, "If-Match")) {
    if_match(v);
  } else {
    u64(v, UINT64_MAX);
    (void)cs_id_valid(v, strlen(v));
    rfc3339(v);
    type(v);
    if_match(v);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *qs = cs_fuzz_cstr(data, size); /* MHD's query is a C string */
  char *save = NULL;

  for (char *pair = strtok_r(qs, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
    char *v = strchr(pair, '=');
    if (!v)
      continue; /* MHD gives "name" without '=' a NULL value: absent to cs_req_query */
    *v++ = '\0';
    unescape(pair);
    unescape(v);
    param(pair, v);
  }
  free(qs);
  return 0;
}
