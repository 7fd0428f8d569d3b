/**
 * @file conn.h
 * @brief Connection tracking under libmicrohttpd: the whole-request
 *        deadline (headers and body must arrive within --conn-timeout) and
 *        the per-address connection limit. One set per process.
 */
#ifndef CS_CONN_H
#define CS_CONN_H

#include "netaddr.h"
#include "common.h"

#include <microhttpd.h>

/**
 * Start the deadline reaper for requests that must arrive within
 * @p timeout_s seconds, and admit at most @p per_address connections per
 * address group (netaddr.h) except from @p trusted proxies (borrowed until
 * cs_conn_stop), among at most @p max_connections in all.
 * @return CS_ERR_NOMEM, CS_ERR_INTERNAL (no thread).
 */
enum cs_err cs_conn_start(int64_t timeout_s, int64_t max_connections, int64_t per_address,
                          const struct cs_cidr_list *trusted) CS_WUR;

/** Stop the reaper and free the tables (after MHD_stop_daemon). */
void cs_conn_stop(void);

/** MHD_OPTION_NOTIFY_CONNECTION callback: track, count, refuse over the limit. */
void cs_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe);

/** The tracker of @p c (NULL if it has none). */
void *cs_conn_tracker(struct MHD_Connection *c);

/**
 * The peer of the connection @p track, and that address as text (formatted
 * once, when the connection started; borrowed while the connection lives).
 * @return CS_ERR_NOT_FOUND when @p track is NULL (an untracked connection).
 */
enum cs_err cs_conn_peer(const void *track, struct cs_addr *peer, const char **text) CS_WUR;

/** Longest request path (without the query) that is kept raw; longer ones are refused. */
#define CS_RAW_PATH_MAX 2047 /* a whole name percent-encoded (3 x CS_NAME_MAX) and more */

/**
 * Keep the path of the request line @p uri (up to '?', still percent-encoded)
 * on @p track, for the request that follows. Called from MHD's URI callback,
 * before MHD decodes the path. NULL @p track ok.
 */
void cs_conn_set_raw_path(void *track, const char *uri);

/** The raw path kept for the current request; NULL if none or too long. */
const char *cs_conn_raw_path(void *track);

/** The request on @p track has fully arrived: its deadline no longer runs. NULL ok. */
void cs_conn_request_in(void *track);

/** The request on @p track is done: the next one must arrive in time. NULL ok. */
void cs_conn_request_done(void *track);

#endif /* CS_CONN_H */
