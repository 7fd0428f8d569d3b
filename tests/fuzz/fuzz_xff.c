/*
 * Client addresses behind proxies (server/api/netaddr.c). Input lines: 1, a
 * --trusted-proxies list (empty: none); 2, the peer's address; the rest,
 * X-Forwarded-For header values in order. Promises checked: a list that
 * fails to parse is not returned; every address that parses formats back
 * to text that parses to the same address; the client is the peer unless
 * the peer is trusted, and otherwise an address that appears in the chain;
 * its group is itself (IPv4) or its /64 (IPv6), and grouping is idempotent.
 */
#include "fuzz_common.h"
#include "netaddr.h"

#include <stdlib.h>
#include <string.h>

#define MAX_VALUES 8

static void round_trip(const struct cs_addr *a)
{
  char text[CS_ADDR_STR_MAX];
  struct cs_addr back;
  cs_addr_format(a, text);
  if (cs_addr_parse(text, strlen(text), &back) || !cs_addr_equal(a, &back))
    cs_fuzz_fail("%s does not parse back to the same address", text);
}

/* Is @p a one of the comma-separated entries of the values? */
static bool in_chain(const struct cs_addr *a, char *const *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    for (const char *p = v[i];;) {
      const char *end = strchr(p, ',');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      struct cs_addr x;
      if (!cs_addr_parse(p, len, &x)) {
        round_trip(&x);
        if (cs_addr_equal(&x, a))
          return true;
      }
      if (!end)
        break;
      p = end + 1;
    }
  return false;
}

static void check_group(const struct cs_addr *a)
{
  struct cs_addr g = cs_addr_group(a), gg = cs_addr_group(&g);
  static const uint8_t zero[8];
  if (!cs_addr_equal(&g, &gg) ||
      (cs_addr_is_v4(a) ? !cs_addr_equal(&g, a)
                        : memcmp(g.b + 8, zero, 8) != 0 || memcmp(g.b, a->b, 8) != 0))
    cs_fuzz_fail("bad group");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *in = cs_fuzz_cstr(data, size);
  char *lines[2 + MAX_VALUES];
  size_t n = 0;
  for (char *p = in; p && n < 2 + MAX_VALUES;) {
    lines[n++] = p;
    if ((p = strchr(p, '\n')))
      *p++ = '\0';
  }
  struct cs_cidr_list *trusted = NULL;
  struct cs_addr peer;
  if (lines[0][0] && cs_cidr_list_parse(lines[0], &trusted)) {
    if (trusted)
      cs_fuzz_fail("a list that failed to parse was returned");
    free(in);
    return 0;
  }
  if (n < 2 || cs_addr_parse(lines[1], strlen(lines[1]), &peer)) {
    cs_cidr_list_free(trusted);
    free(in);
    return 0;
  }
  round_trip(&peer);
  struct cs_addr c = cs_client_addr(trusted, &peer, (const char *const *)lines + 2, n - 2);
  bool is_peer = cs_addr_equal(&c, &peer);
  if (!is_peer && (!cs_cidr_list_match(trusted, &peer) || !in_chain(&c, lines + 2, n - 2)))
    cs_fuzz_fail("client is neither the peer nor a hop of a trusted peer's chain");
  check_group(&c);
  cs_cidr_list_free(trusted);
  free(in);
  return 0;
}
