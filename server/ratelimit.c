/* Brute-force protection: failed logins and Basic attempts are counted per
 * client address and per access key id; past the limit within a window, the
 * subject gets 429 for a cooling-off period. A fixed table, no allocation. */
#include "auth.h"

#include <pthread.h>
#include <string.h>

#define RL_SLOTS 4096
#define RL_WINDOW 300 /* seconds over which failures add up */

struct rl_slot {
  uint64_t h;
  int64_t window_start;
  int64_t blocked_until;
  uint32_t failures;
};

static struct rl_slot slots[RL_SLOTS];
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t subject_hash(char kind, const char *subject)
{
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)(unsigned char)kind;
  for (const char *p = subject; *p; p++) {
    h ^= (unsigned char)*p;
    h *= 1099511628211ULL;
  }
  return h ? h : 1;
}

static struct rl_slot *slot_for(uint64_t h)
{
  return &slots[h % RL_SLOTS];
}

bool cs_rl_blocked(char kind, const char *subject, int64_t now)
{
  uint64_t h = subject_hash(kind, subject);
  bool blocked;
  pthread_mutex_lock(&rl_mu);
  struct rl_slot *s = slot_for(h);
  blocked = s->h == h && s->blocked_until > now;
  pthread_mutex_unlock(&rl_mu);
  return blocked;
}

void cs_rl_fail(char kind, const char *subject, int64_t now, int64_t max_failures,
                int64_t cooloff)
{
  uint64_t h = subject_hash(kind, subject);
  pthread_mutex_lock(&rl_mu);
  struct rl_slot *s = slot_for(h);
  if (s->h != h || now - s->window_start > RL_WINDOW) {
    /* A new subject (or an old window) takes the slot over. */
    if (s->h != h || s->blocked_until <= now) {
      s->h = h;
      s->window_start = now;
      s->failures = 0;
      s->blocked_until = 0;
    }
  }
  if (s->failures < UINT32_MAX)
    s->failures++;
  if ((int64_t)s->failures >= max_failures)
    s->blocked_until = now + cooloff;
  pthread_mutex_unlock(&rl_mu);
}

void cs_rl_success(char kind, const char *subject)
{
  uint64_t h = subject_hash(kind, subject);
  pthread_mutex_lock(&rl_mu);
  struct rl_slot *s = slot_for(h);
  if (s->h == h && s->blocked_until == 0)
    memset(s, 0, sizeof *s);
  pthread_mutex_unlock(&rl_mu);
}
