/**
 * @file ratelimit.h
 * @brief Brute-force limiting of access-key attempts (login and Basic) per
 *        client address group (netaddr.h): past the limit within a window
 *        the group cools off. A fixed table that no client can steer or
 *        flush: a keyed hash picks the bucket, live counters are never
 *        evicted, expired ones are reused, and a subject that finds no room
 *        is refused (fail closed).
 */
#ifndef CS_RATELIMIT_H
#define CS_RATELIMIT_H

#include "netaddr.h"

#define CS_RL_CAPACITY 65536 /* subjects counted at once (48 bytes each) */
#define CS_RL_WINDOW 300     /* seconds over which failures add up */

struct cs_ratelimit;

/** What cs_rl_begin() decided. */
enum cs_rl_verdict {
  CS_RL_GO,            /**< try; report the outcome with cs_rl_end() */
  CS_RL_COOLING_FIRST, /**< cooling off: the first refusal of this cool-off */
  CS_RL_COOLING,       /**< cooling off, refused before */
  CS_RL_FULL,          /**< no room to count a new subject: refused */
};

/**
 * A table of @p capacity subjects (rounded up to a power of two): at most
 * @p max_failures failed attempts, then @p cooloff seconds of refusals.
 * Free with cs_rl_destroy().
 * @return CS_ERR_NOMEM, CS_ERR_INVALID (a zero argument).
 */
enum cs_err cs_rl_create(size_t capacity, int64_t max_failures, int64_t cooloff,
                         struct cs_ratelimit **out) CS_WUR;

/** Free a table. NULL ok. */
void cs_rl_destroy(struct cs_ratelimit *rl);

/**
 * May @p subject try once more at @p now (seconds, > 0)? A CS_RL_GO
 * attempt is counted as a failure while it runs, so concurrent attempts
 * cannot overrun the limit: once failures plus attempts in flight reach it,
 * the next attempt waits (at most a second) for one of them to finish.
 */
enum cs_rl_verdict cs_rl_begin(struct cs_ratelimit *rl, const struct cs_addr *subject, int64_t now);

/**
 * The outcome of an attempt cs_rl_begin() let through: a success takes
 * back only its own reservation (it does not clear earlier failures), a
 * failure is kept and, at the limit, starts the cool-off.
 * @return true if this failure started a cool-off.
 */
bool cs_rl_end(struct cs_ratelimit *rl, const struct cs_addr *subject, bool failed, int64_t now);

#endif /* CS_RATELIMIT_H */
