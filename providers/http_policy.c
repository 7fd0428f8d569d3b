/* Which webhook targets credstore connects to (API.md §4 "Propagation",
 * DESIGN "Providers and brokering"). Addresses are kept as 16 bytes with
 * IPv4 as ::ffff:a.b.c.d, so an IPv4-mapped IPv6 spelling is the same
 * address and meets the same rules; NAT64 (64:ff9b::/96) is unwrapped the
 * same way. URLs are parsed by libcurl's own parser, so the host judged here
 * is the host libcurl will use (it already turns 2852039166, 0xa9fea9fe and
 * 0251.0376.0251.0376 into 169.254.169.254). */
#include "prov_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 128 /* entries per option */
#define HOST_MAX CS_HTTP_HOST_MAX
#define URL_MAX 2048 /* = CS_URL_MAX of the usage records */

/* At equal prefix length the higher rank wins. */
enum rank { BUILTIN_DENY, OP_ALLOW, OP_DENY };

struct cidr {
  uint8_t addr[16];
  unsigned bits; /* of the 128 */
  enum rank rank;
};

struct name {
  char host[HOST_MAX + 1]; /* lower case, without the "*." of a wildcard */
  bool wildcard;
  bool allow;
};

enum verdict { NO_VERDICT, ALLOWED, DENIED };

/* Denied unless an operator allows them: addresses that reach the machine's
 * own link or its cloud's control plane rather than a webhook receiver. */
static const char *const builtin_deny[] = {
    "0.0.0.0/8",          /* "this network": 0.0.0.0 reaches the local host */
    "169.254.0.0/16",     /* link-local: AWS, GCP, Azure, OCI metadata, ECS task metadata */
    "100.100.100.200/32", /* Alibaba Cloud metadata */
    "168.63.129.16/32",   /* Azure WireServer */
    "224.0.0.0/4",        /* multicast */
    "240.0.0.0/4",        /* reserved, and the 255.255.255.255 broadcast */
    "::/128",             /* unspecified */
    "fe80::/10",          /* link-local */
    "fd00:ec2::254/128",  /* AWS instance metadata over IPv6 */
    "ff00::/8",           /* multicast */
};
#define NBUILTIN (sizeof builtin_deny / sizeof builtin_deny[0])

struct cs_http_policy {
  struct cidr cidrs[NBUILTIN + 2 * LIST_MAX];
  size_t ncidrs;
  struct name names[2 * LIST_MAX];
  size_t nnames;
};

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

static void from_v4(const struct in_addr *a, uint8_t out[16])
{
  memcpy(out, v4_mapped, 12);
  memcpy(out + 12, &a->s_addr, 4);
}

/* NAT64 (64:ff9b::/96) carries an IPv4 address: judge it as that one. */
static void unwrap_nat64(uint8_t a[16])
{
  if (memcmp(a, nat64, 12) == 0)
    memcpy(a, v4_mapped, 12);
}

/* "a.b.c.d" or an IPv6 address, strictly (inet_pton), for list entries.
 * *max is the prefix length of a single address. */
static bool parse_addr(const char *s, uint8_t out[16], unsigned *max)
{
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, s, &a4) == 1) {
    from_v4(&a4, out);
    *max = 32;
    return true;
  }
  if (inet_pton(AF_INET6, s, &a6) == 1) {
    memcpy(out, a6.s6_addr, 16);
    *max = 128;
    return true;
  }
  return false;
}

static bool parse_cidr(const char *item, enum rank rank, struct cidr *c)
{
  char addr[64];
  const char *slash = strchr(item, '/');
  size_t n = slash ? (size_t)(slash - item) : strlen(item);
  unsigned max, bits = 0;

  if (n >= sizeof addr)
    return false;
  memcpy(addr, item, n);
  addr[n] = '\0';
  if (!parse_addr(addr, c->addr, &max))
    return false;
  if (!slash) {
    bits = max;
  } else {
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3)
      return false;
    for (; *p; p++) {
      if (!isdigit((unsigned char)*p))
        return false;
      bits = bits * 10 + (unsigned)(*p - '0');
    }
    if (bits > max)
      return false;
  }
  c->bits = bits + (128 - max);
  c->rank = rank;
  /* Host bits are ignored, as in "10.1.2.3/8". */
  for (unsigned i = c->bits; i < 128; i++)
    c->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
  return true;
}

/* A host name as a list entry or a URL host: lower-cased, one trailing dot
 * dropped, letters, digits, '-', '_' and non-empty labels only. */
static bool normalize_name(const char *s, size_t n, char out[HOST_MAX + 1])
{
  if (n && s[n - 1] == '.')
    n--;
  if (!n || n > HOST_MAX || s[n - 1] == '.')
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = (char)tolower((unsigned char)s[i]);
    bool label_start = i == 0 || s[i - 1] == '.';
    if (ch == '.' ? label_start : !(isalnum((unsigned char)ch) || ch == '-' || ch == '_'))
      return false;
    out[i] = ch;
  }
  out[n] = '\0';
  return true;
}

static enum cs_err add_item(struct cs_http_policy *p, const char *item, bool allow)
{
  if (parse_cidr(item, allow ? OP_ALLOW : OP_DENY, &p->cidrs[p->ncidrs])) {
    p->ncidrs++;
    return CS_OK;
  }
  struct name *nm = &p->names[p->nnames];
  nm->wildcard = strncmp(item, "*.", 2) == 0;
  nm->allow = allow;
  const char *h = item + (nm->wildcard ? 2 : 0);
  if (strchr(h, '/') || !normalize_name(h, strlen(h), nm->host))
    return CS_ERR_INVALID;
  p->nnames++;
  return CS_OK;
}

static enum cs_err add_list(struct cs_http_policy *p, const char *list, bool allow, char *err,
                            size_t errlen)
{
  const char *opt = allow ? "--webhook-allow" : "--webhook-deny";
  size_t count = 0;

  for (const char *s = list; s && *s;) {
    const char *end = strchr(s, ',');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    char item[HOST_MAX + 3];
    while (n && isspace((unsigned char)*s))
      s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
      n--;
    if (n) {
      if (++count > LIST_MAX) {
        snprintf(err, errlen, "%s: at most %d entries", opt, LIST_MAX);
        return CS_ERR_INVALID;
      }
      if (n >= sizeof item) {
        snprintf(err, errlen, "%s: entry too long: %.40s...", opt, s);
        return CS_ERR_INVALID;
      }
      memcpy(item, s, n);
      item[n] = '\0';
      if (add_item(p, item, allow)) {
        snprintf(err, errlen, "%s: '%s' is neither a CIDR, an address nor a host name", opt, item);
        return CS_ERR_INVALID;
      }
    }
    s = end ? end + 1 : s + n;
  }
  return CS_OK;
}

enum cs_err cs_http_policy_create(const char *allow, const char *deny, struct cs_http_policy **out,
                                  char *err, size_t errlen)
{
  struct cs_http_policy *p = calloc(1, sizeof *p);
  enum cs_err e;

  if (!p)
    return CS_ERR_NOMEM;
  for (size_t i = 0; i < NBUILTIN; i++)
    if (!parse_cidr(builtin_deny[i], BUILTIN_DENY, &p->cidrs[p->ncidrs++])) {
      free(p);
      return CS_ERR_INTERNAL;
    }
  if ((e = add_list(p, allow, true, err, errlen)) || (e = add_list(p, deny, false, err, errlen))) {
    free(p);
    return e;
  }
  *out = p;
  return CS_OK;
}

void cs_http_policy_free(struct cs_http_policy *p) { free(p); }

static bool in_cidr(const uint8_t a[16], const struct cidr *c)
{
  unsigned full = c->bits / 8, rest = c->bits % 8;
  if (memcmp(a, c->addr, full) != 0)
    return false;
  return !rest || ((a[full] ^ c->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool addr_allowed(const struct cs_http_policy *p, const uint8_t a[16])
{
  const struct cidr *best = NULL;
  for (size_t i = 0; i < p->ncidrs; i++) {
    const struct cidr *c = &p->cidrs[i];
    if (in_cidr(a, c) &&
        (!best || c->bits > best->bits || (c->bits == best->bits && c->rank > best->rank)))
      best = c;
  }
  return !best || best->rank == OP_ALLOW;
}

/* The operator's word on a host name: a deny entry beats an allow entry. */
static enum verdict name_verdict(const struct cs_http_policy *p, const char *host)
{
  enum verdict v = NO_VERDICT;
  size_t hl = strlen(host);
  for (size_t i = 0; i < p->nnames && v != DENIED; i++) {
    const struct name *nm = &p->names[i];
    size_t nl = strlen(nm->host);
    bool match = nm->wildcard ? hl > nl + 1 && host[hl - nl - 1] == '.' &&
                                    strcmp(host + hl - nl, nm->host) == 0
                              : strcmp(host, nm->host) == 0;
    if (match)
      v = nm->allow ? ALLOWED : DENIED;
  }
  return v;
}

/* A URL host (as parse_url leaves it: IPv4 already in dotted-quad form)
 * that is an address literal, as a rule sees it. */
static bool host_literal(const char *host, uint8_t out[16])
{
  unsigned max;
  if (!parse_addr(host, out, &max))
    return false;
  unwrap_nat64(out);
  return true;
}

bool cs_http_policy_allows_addr(const struct cs_http_policy *p, const char *host,
                                const struct sockaddr *sa)
{
  uint8_t a[16];
  enum verdict v = p ? name_verdict(p, host) : ALLOWED;

  if (v != NO_VERDICT)
    return v == ALLOWED;
  if (sa->sa_family == AF_INET)
    from_v4(&((const struct sockaddr_in *)(const void *)sa)->sin_addr, a);
  else if (sa->sa_family == AF_INET6) {
    memcpy(a, ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr, 16);
    unwrap_nat64(a);
  } else
    return false;
  return addr_allowed(p, a);
}

/* What a URL is made of, as libcurl reads it. */
struct url_parts {
  bool https;
  bool v6;
  char host[HOST_MAX + 1]; /* normalised; an IPv6 literal without brackets */
  long port;
};

static bool url_chars_ok(const char *url)
{
  size_t n = strnlen(url, URL_MAX + 1);
  const char *sep = strstr(url, "://");
  /* libcurl reads "http:///x" as host x; an empty authority is a mistake. */
  if (n == 0 || n > URL_MAX || !sep || sep[3] == '/')
    return false;
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return false;
  return true;
}

static bool has_part(CURLU *u, CURLUPart what)
{
  char *v = NULL;
  bool present = curl_url_get(u, what, &v, 0) == CURLUE_OK;
  curl_free(v);
  return present;
}

static enum cs_err parse_url(const char *url, struct url_parts *out, const char **why)
{
  char *scheme = NULL, *host = NULL, *port = NULL;
  enum cs_err e = CS_ERR_INVALID;
  CURLU *u = NULL;

  *why = "callbackUrl must be an http:// or https:// URL with a host";
  if (!url_chars_ok(url) || !(u = curl_url()) || curl_url_set(u, CURLUPART_URL, url, 0) ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) || curl_url_get(u, CURLUPART_HOST, &host, 0) ||
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
    goto out;
  if (strcmp(scheme, "http") && strcmp(scheme, "https"))
    goto out;
  if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
      has_part(u, CURLUPART_OPTIONS)) {
    /* libcurl would send it as Basic auth to whoever the host is. */
    *why = "callbackUrl must not carry a user name or password";
    goto out;
  }
  size_t hl = strlen(host);
  out->v6 = hl > 2 && host[0] == '[' && host[hl - 1] == ']';
  if (out->v6) {
    /* Canonical text, so one address is one target however it is written. */
    struct in6_addr a6;
    char lit[INET6_ADDRSTRLEN];
    if (hl - 2 >= sizeof lit)
      goto out;
    memcpy(lit, host + 1, hl - 2);
    lit[hl - 2] = '\0';
    if (inet_pton(AF_INET6, lit, &a6) != 1 || !inet_ntop(AF_INET6, &a6, out->host, HOST_MAX))
      goto out;
  } else if (!normalize_name(host, hl, out->host)) {
    goto out;
  } else {
    /* libcurl normalises "0xa9fea9fe" but not "0xa9fea9fe.": every spelling
     * inet_aton accepts (decimal, octal, hex, short forms) is judged, and
     * keyed, as the address it names. */
    struct in_addr a4;
    if (inet_aton(out->host, &a4) && !inet_ntop(AF_INET, &a4, out->host, HOST_MAX))
      goto out;
  }
  out->https = scheme[4] == 's';
  out->port = strtol(port, NULL, 10);
  e = CS_OK;
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return e;
}

enum cs_err cs_http_check_url_host(const struct cs_http_policy *p, const char *url,
                                   char target[CS_HTTP_TARGET_MAX], char host[CS_HTTP_HOST_MAX + 1],
                                   const char **why)
{
  struct url_parts u;
  uint8_t a[16];
  enum cs_err e;

  if ((e = parse_url(url, &u, why)))
    return e;
  if (p) {
    enum verdict v = name_verdict(p, u.host);
    if (v == DENIED || (v == NO_VERDICT && host_literal(u.host, a) && !addr_allowed(p, a))) {
      *why = "callbackUrl points at an address this server does not send webhooks to "
             "(link-local, cloud metadata, unspecified, multicast, or denied by the operator)";
      return CS_ERR_FORBIDDEN;
    }
  }
  if (target)
    snprintf(target, CS_HTTP_TARGET_MAX, "%s://%s%s%s:%ld", u.https ? "https" : "http",
             u.v6 ? "[" : "", u.host, u.v6 ? "]" : "", u.port);
  if (host)
    memcpy(host, u.host, strlen(u.host) + 1);
  return CS_OK;
}

enum cs_err cs_http_check_url(const struct cs_http_policy *p, const char *url,
                              char target[CS_HTTP_TARGET_MAX], const char **why)
{
  return cs_http_check_url_host(p, url, target, NULL, why);
}
