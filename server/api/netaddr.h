/**
 * @file netaddr.h
 * @brief Client addresses as the HTTP layer counts them: one 16-byte form
 *        for IPv4 and IPv6, the group a client is limited by (IPv4 whole,
 *        IPv6 by /64), CIDR lists, and X-Forwarded-For behind trusted
 *        proxies. No libmicrohttpd here: unit-tested without a daemon.
 */
#ifndef CS_NETADDR_H
#define CS_NETADDR_H

#include "common.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define CS_ADDR_STR_MAX 46 /* INET6_ADDRSTRLEN */
#define CS_XFF_MAX_HOPS 32 /* X-Forwarded-For entries walked at most */

/** An IPv6 address; IPv4 is held IPv4-mapped (::ffff:a.b.c.d). */
struct cs_addr {
  uint8_t b[16];
};

/** Trusted proxies (--trusted-proxies); opaque. */
struct cs_cidr_list;

/**
 * @p sa (AF_INET or AF_INET6) as a cs_addr; an IPv4-mapped IPv6 address is
 * the same value as the IPv4 address.
 * @return CS_ERR_INVALID for any other family or NULL.
 */
enum cs_err cs_addr_from_sockaddr(const struct sockaddr *sa, struct cs_addr *out) CS_WUR;

/**
 * Parse one address as proxies write it in X-Forwarded-For: "a.b.c.d",
 * "a.b.c.d:port", "v6", "[v6]" or "[v6]:port", with optional blanks around.
 * @return CS_ERR_INVALID for anything else (zone ids, host names, junk).
 */
enum cs_err cs_addr_parse(const char *s, size_t len, struct cs_addr *out) CS_WUR;

/** Text of @p a: dotted quad for IPv4 (mapped or not), RFC 5952 for IPv6. */
void cs_addr_format(const struct cs_addr *a, char out[CS_ADDR_STR_MAX]);

/** @return true for an IPv4 (IPv4-mapped) address. */
bool cs_addr_is_v4(const struct cs_addr *a);

/**
 * The group a client is counted in for rate limits and connection limits:
 * an IPv4 address is its own group; an IPv6 address counts as its /64, the
 * smallest prefix a site or subscriber is given.
 */
struct cs_addr cs_addr_group(const struct cs_addr *a);

/** @return true if @p a and @p b are the same address. */
bool cs_addr_equal(const struct cs_addr *a, const struct cs_addr *b);

/**
 * SipHash of @p a under a random key made once per process, so no client
 * can choose addresses that collide in a table.
 */
uint64_t cs_addr_hash(const struct cs_addr *a);

/**
 * Parse "CIDR[,CIDR...]" (e.g. "10.0.0.0/8,::1/128,192.0.2.7"; a bare
 * address is a /32 or /128; blanks around items are allowed). Caller frees
 * *out with cs_cidr_list_free().
 * @return CS_ERR_INVALID, CS_ERR_NOMEM.
 */
enum cs_err cs_cidr_list_parse(const char *spec, struct cs_cidr_list **out) CS_WUR;

/** Free a list from cs_cidr_list_parse(). NULL ok. */
void cs_cidr_list_free(struct cs_cidr_list *l);

/** @return true if @p a is inside one of @p l's networks (false for a NULL list). */
bool cs_cidr_list_match(const struct cs_cidr_list *l, const struct cs_addr *a);

/**
 * Who the client is. Without a trusted @p peer, the peer itself: a client
 * cannot name itself with X-Forwarded-For. When @p peer is a trusted proxy,
 * the right-most address of the X-Forwarded-For chain that is not a trusted
 * proxy (nginx's real_ip_recursive): every header value in @p xff, in the
 * order received, is one comma-separated part of the chain. A malformed
 * entry ends the walk at the last trusted hop; so does the hop limit.
 */
struct cs_addr cs_client_addr(const struct cs_cidr_list *trusted, const struct cs_addr *peer,
                              const char *const *xff, size_t nxff);

#endif /* CS_NETADDR_H */
