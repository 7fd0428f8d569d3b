/* Client addresses, their groups, CIDR lists and X-Forwarded-For. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct cidr {
  struct cs_addr net;
  unsigned bits; /* prefix length over the 128-bit form */
};

struct cs_cidr_list {
  size_t n;
  struct cidr v[];
};

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_v4(struct cs_addr *a, const void *in4)
{
  memcpy(a->b, v4_prefix, sizeof v4_prefix);
  memcpy(a->b + 12, in4, 4);
}

bool cs_addr_is_v4(const struct cs_addr *a)
{
  return memcmp(a->b, v4_prefix, sizeof v4_prefix) == 0;
}

enum cs_err cs_addr_from_sockaddr(const struct sockaddr *sa, struct cs_addr *out)
{
  if (sa && sa->sa_family == AF_INET) {
    set_v4(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
    return CS_OK;
  }
  if (sa && sa->sa_family == AF_INET6) {
    memcpy(out->b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    return CS_OK;
  }
  return CS_ERR_INVALID;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* A port after an address: ":" and 1-5 digits up to 65535. */
static bool port_ok(const char *p, size_t len)
{
  uint64_t v;
  char buf[8];
  if (len < 2 || len > 6 || p[0] != ':')
    return false;
  memcpy(buf, p + 1, len - 1);
  buf[len - 1] = '\0';
  return cs_parse_u64(buf, 65535, &v) == CS_OK;
}

static bool pton(int family, const char *s, size_t len, struct cs_addr *out)
{
  char buf[CS_ADDR_STR_MAX];
  uint8_t raw[16];
  if (len == 0 || len >= sizeof buf)
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (inet_pton(family, buf, raw) != 1)
    return false;
  if (family == AF_INET)
    set_v4(out, raw);
  else
    memcpy(out->b, raw, 16);
  return true;
}

enum cs_err cs_addr_parse(const char *s, size_t len, struct cs_addr *out)
{
  struct cs_addr a;
  while (len && is_blank(*s))
    s++, len--;
  while (len && is_blank(s[len - 1]))
    len--;
  const char *colon = memchr(s, ':', len);
  bool ok;
  if (len && s[0] == '[') {
    const char *end = memchr(s, ']', len);
    size_t rest = end ? len - (size_t)(end + 1 - s) : 0;
    ok = end && pton(AF_INET6, s + 1, (size_t)(end - s - 1), &a) &&
         (rest == 0 || port_ok(end + 1, rest));
  } else if (!colon) {
    ok = pton(AF_INET, s, len, &a);
  } else if (!memchr(colon + 1, ':', len - (size_t)(colon + 1 - s))) {
    ok = pton(AF_INET, s, (size_t)(colon - s), &a) && port_ok(colon, len - (size_t)(colon - s));
  } else {
    ok = pton(AF_INET6, s, len, &a);
  }
  if (!ok)
    return CS_ERR_INVALID;
  *out = a;
  return CS_OK;
}

void cs_addr_format(const struct cs_addr *a, char out[CS_ADDR_STR_MAX])
{
  if (cs_addr_is_v4(a))
    inet_ntop(AF_INET, a->b + 12, out, CS_ADDR_STR_MAX);
  else
    inet_ntop(AF_INET6, a->b, out, CS_ADDR_STR_MAX);
}

struct cs_addr cs_addr_group(const struct cs_addr *a)
{
  struct cs_addr g = *a;
  if (!cs_addr_is_v4(a))
    memset(g.b + 8, 0, 8);
  return g;
}

bool cs_addr_equal(const struct cs_addr *a, const struct cs_addr *b)
{
  return memcmp(a->b, b->b, sizeof a->b) == 0;
}

static uint8_t hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
  if (sodium_init() < 0)
    abort(); /* no randomness: nothing here can be made safe */
  randombytes_buf(hash_key, sizeof hash_key);
}

uint64_t cs_addr_hash(const struct cs_addr *a)
{
  uint8_t out[crypto_shorthash_BYTES];
  uint64_t h;
  pthread_once(&hash_once, hash_key_init);
  crypto_shorthash(out, a->b, sizeof a->b, hash_key);
  memcpy(&h, out, sizeof h);
  return h;
}

/* ----------------------------------------------------------- CIDR lists */

static bool prefix_match(const struct cs_addr *a, const struct cidr *c)
{
  unsigned full = c->bits / 8, rest = c->bits % 8;
  if (memcmp(a->b, c->net.b, full) != 0)
    return false;
  if (!rest)
    return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a->b[full] & mask) == (c->net.b[full] & mask);
}

static void mask_to_prefix(struct cidr *c)
{
  for (unsigned i = 0; i < 16; i++) {
    unsigned keep = c->bits > i * 8 ? c->bits - i * 8 : 0;
    if (keep < 8)
      c->net.b[i] &= (uint8_t)(keep ? 0xff << (8 - keep) : 0);
  }
}

/* One "ADDR" or "ADDR/BITS" item of the list. */
static bool parse_cidr(const char *s, size_t len, struct cidr *out)
{
  const char *slash = memchr(s, '/', len);
  size_t alen = slash ? (size_t)(slash - s) : len;
  bool v4 = !memchr(s, ':', alen);
  char bits[4];
  uint64_t n;

  if (!pton(v4 ? AF_INET : AF_INET6, s, alen, &out->net))
    return false;
  out->bits = 128;
  if (slash) {
    size_t blen = len - alen - 1;
    if (blen == 0 || blen >= sizeof bits)
      return false;
    memcpy(bits, slash + 1, blen);
    bits[blen] = '\0';
    if (cs_parse_u64(bits, v4 ? 32 : 128, &n))
      return false;
    out->bits = (unsigned)n + (v4 ? 96 : 0);
  }
  mask_to_prefix(out);
  return true;
}

enum cs_err cs_cidr_list_parse(const char *spec, struct cs_cidr_list **out)
{
  size_t n = 1;
  for (const char *p = spec; *p; p++)
    n += *p == ',';
  struct cs_cidr_list *l = calloc(1, sizeof *l + n * sizeof l->v[0]);
  if (!l)
    return CS_ERR_NOMEM;
  for (const char *p = spec;; p++) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    while (len && is_blank(*p))
      p++, len--;
    while (len && is_blank(p[len - 1]))
      len--;
    if (!parse_cidr(p, len, &l->v[l->n])) {
      free(l);
      return CS_ERR_INVALID;
    }
    l->n++;
    if (!end)
      break;
    p = end;
  }
  *out = l;
  return CS_OK;
}

void cs_cidr_list_free(struct cs_cidr_list *l) { free(l); }

bool cs_cidr_list_match(const struct cs_cidr_list *l, const struct cs_addr *a)
{
  for (size_t i = 0; l && i < l->n; i++)
    if (prefix_match(a, &l->v[i]))
      return true;
  return false;
}

/* --------------------------------------------------------- X-Forwarded-For */

struct cs_addr cs_client_addr(const struct cs_cidr_list *trusted, const struct cs_addr *peer,
                              const char *const *xff, size_t nxff)
{
  struct cs_addr cur = *peer;
  unsigned hops = 0;

  if (!cs_cidr_list_match(trusted, &cur))
    return cur;
  /* Right to left: each proxy appends the address it received from. */
  for (size_t h = nxff; h-- > 0;) {
    const char *v = xff[h];
    size_t end = strlen(v);
    for (;;) {
      size_t start = end;
      while (start > 0 && v[start - 1] != ',')
        start--;
      struct cs_addr next;
      if (++hops > CS_XFF_MAX_HOPS || cs_addr_parse(v + start, end - start, &next))
        return cur;
      cur = next;
      if (!cs_cidr_list_match(trusted, &cur))
        return cur;
      if (start == 0)
        break;
      end = start - 1;
    }
  }
  return cur; /* every hop trusted: the left-most one */
}
