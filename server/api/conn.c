/* Connection tracking (conn.h).
 *
 * Slow requests: MHD's --conn-timeout counts idle time, so a client that
 * trickles one byte at a time, into its headers or its body, never times
 * out. Each connection is tracked from the moment it waits for a request; a
 * reaper thread shuts down connections whose request (headers and body) has
 * not fully arrived within the timeout. A request being handled, a
 * suspended long-poll included, is not on the clock.
 *
 * One address taking every slot: connections are counted per address group
 * in buckets chosen by a keyed hash; past the limit a new connection is shut
 * at once. Trusted proxies carry many clients and are not limited here. */
#include "conn.h"
#include "http.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn_track {
  int fd;
  atomic_int_fast64_t waiting_since_ms; /* 0 while a request is being handled */
  bool shut;
  bool counted; /* in a bucket: counts against its group's limit */
  struct cs_addr group;
  struct cs_addr peer;
  char peer_text[CS_ADDR_STR_MAX]; /* formatted once: every request logs it */
  bool raw_long;                   /* the current request's path did not fit raw_path */
  char raw_path[CS_RAW_PATH_MAX + 1];
  struct conn_track *prev, *next;   /* every connection, for the reaper */
  struct conn_track *bprev, *bnext; /* the same bucket */
};

static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn_track track_list = {.fd = -1, .prev = &track_list, .next = &track_list};
static struct conn_track **buckets;
static size_t bucket_mask;
static int64_t per_address_max;
static const struct cs_cidr_list *trusted_proxies;
static pthread_t reaper;
static atomic_bool reaper_stop;
static int64_t request_timeout_ms;
static int64_t refused_logged_ms;

static void *reaper_main(void *arg)
{
  while (!atomic_load(&reaper_stop)) {
    usleep(200 * 1000);
    int64_t now = cs_mono_ms();
    pthread_mutex_lock(&track_mu);
    for (struct conn_track *t = track_list.next; t != &track_list; t = t->next) {
      int64_t since = atomic_load(&t->waiting_since_ms);
      if (since && !t->shut && now - since > request_timeout_ms) {
        shutdown(t->fd, SHUT_RDWR); /* MHD sees the end and closes it */
        t->shut = true;
      }
    }
    pthread_mutex_unlock(&track_mu);
  }
  return NULL;
}

enum cs_err cs_conn_start(int64_t timeout_s, int64_t max_connections, int64_t per_address,
                          const struct cs_cidr_list *trusted)
{
  size_t n = 64;
  while ((int64_t)n < max_connections && n < ((size_t)1 << 20))
    n <<= 1;
  if (!(buckets = calloc(n, sizeof *buckets)))
    return CS_ERR_NOMEM;
  bucket_mask = n - 1;
  per_address_max = per_address;
  trusted_proxies = trusted;
  /* One second of grace past MHD's own idle timeout, which still closes
   * silent connections: the reaper only has to catch the trickling ones. */
  request_timeout_ms = 1000 * (timeout_s + 1);
  atomic_store(&reaper_stop, false);
  if (pthread_create(&reaper, NULL, reaper_main, NULL)) {
    free(buckets);
    buckets = NULL;
    return CS_ERR_INTERNAL;
  }
  return CS_OK;
}

void cs_conn_stop(void)
{
  atomic_store(&reaper_stop, true);
  pthread_join(reaper, NULL);
  free(buckets);
  buckets = NULL;
}

/* Under track_mu: count @p t against its group, unless the group is full. */
static bool admit(struct conn_track *t)
{
  struct conn_track **b = &buckets[cs_addr_hash(&t->group) & bucket_mask];
  int64_t same = 0;
  for (const struct conn_track *o = *b; o; o = o->bnext)
    same += cs_addr_equal(&o->group, &t->group);
  if (same >= per_address_max)
    return false;
  t->bnext = *b;
  t->bprev = NULL;
  if (*b)
    (*b)->bprev = t;
  *b = t;
  t->counted = true;
  return true;
}

static void unlink_bucket(struct conn_track *t)
{
  if (!t->counted)
    return;
  if (t->bprev)
    t->bprev->bnext = t->bnext;
  else
    buckets[cs_addr_hash(&t->group) & bucket_mask] = t->bnext;
  if (t->bnext)
    t->bnext->bprev = t->bprev;
}

static void refused_log(const struct conn_track *t, int64_t now)
{
  char a[CS_ADDR_STR_MAX];
  /* At most one line a second: the refusals themselves are the flood. */
  if (now - refused_logged_ms < 1000)
    return;
  refused_logged_ms = now;
  cs_addr_format(&t->group, a);
  CS_LOG(CS_LOG_WARN,
         "connection refused: %s already holds %lld connections "
         "(--max-connections-per-address)",
         a, (long long)per_address_max);
}

static struct conn_track *track_new(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *fd =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  const union MHD_ConnectionInfo *ca =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  struct cs_addr peer;
  struct conn_track *t;
  if (!fd)
    return NULL;
  if (!ca || cs_addr_from_sockaddr(ca->client_addr, &peer) || !(t = calloc(1, sizeof *t))) {
    shutdown(fd->connect_fd, SHUT_RDWR); /* untracked would mean unlimited */
    return NULL;
  }
  t->fd = fd->connect_fd;
  t->peer = peer;
  cs_addr_format(&peer, t->peer_text);
  t->group = cs_addr_group(&peer);
  atomic_store(&t->waiting_since_ms, cs_mono_ms());
  bool limited = !cs_cidr_list_match(trusted_proxies, &peer);
  pthread_mutex_lock(&track_mu);
  if (limited && !admit(t)) {
    shutdown(t->fd, SHUT_RDWR); /* MHD reads the end and closes it */
    t->shut = true;
    cs_metrics_connection_refused();
    refused_log(t, cs_mono_ms());
  }
  t->next = &track_list;
  t->prev = track_list.prev;
  track_list.prev->next = t;
  track_list.prev = t;
  pthread_mutex_unlock(&track_mu);
  return t;
}

void cs_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe)
{
  struct conn_track *t = *socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    *socket_context = track_new(c);
  } else if (t) {
    pthread_mutex_lock(&track_mu);
    t->prev->next = t->next;
    t->next->prev = t->prev;
    unlink_bucket(t);
    pthread_mutex_unlock(&track_mu);
    free(t);
    *socket_context = NULL;
  }
}

void *cs_conn_tracker(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

enum cs_err cs_conn_peer(const void *track, struct cs_addr *peer, const char **text)
{
  const struct conn_track *t = track;
  if (!t)
    return CS_ERR_NOT_FOUND;
  *peer = t->peer;
  *text = t->peer_text;
  return CS_OK;
}

/* MHD handles one request at a time per connection: the path kept here is
 * the one of the request whose headers come next. */
void cs_conn_set_raw_path(void *track, const char *uri)
{
  struct conn_track *t = track;
  if (!t)
    return;
  size_t n = strcspn(uri, "?");
  t->raw_long = n > CS_RAW_PATH_MAX;
  if (t->raw_long)
    n = 0;
  memcpy(t->raw_path, uri, n);
  t->raw_path[n] = '\0';
}

const char *cs_conn_raw_path(void *track)
{
  struct conn_track *t = track;
  return t && !t->raw_long ? t->raw_path : NULL;
}

void cs_conn_request_in(void *track)
{
  struct conn_track *t = track;
  if (t)
    atomic_store(&t->waiting_since_ms, 0);
}

void cs_conn_request_done(void *track)
{
  struct conn_track *t = track;
  if (t)
    atomic_store(&t->waiting_since_ms, cs_mono_ms());
}
