/* Brute-force limiting (ratelimit.h). Open addressing with bounded linear
 * probing from a SipHash-keyed home bucket: an insert takes the first slot
 * in its probe window that is unused or holds an expired subject, so a live
 * counter is never given away, whatever ids or addresses arrive. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PROBE 32     /* slots a subject may live in, from its home bucket */
#define WAIT_MS 1000 /* longest wait for attempts in flight to finish */

struct slot {
  struct cs_addr key;
  int64_t window_start;  /* 0: never used (ends every probe chain) */
  int64_t blocked_until; /* 0: not cooling off */
  uint32_t failures;
  uint32_t inflight;
  bool refused; /* a refusal of this cool-off was reported */
};

struct cs_ratelimit {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t mask;
  int64_t max_failures, cooloff;
  unsigned waiters;
  struct slot slots[];
};

enum cs_err cs_rl_create(size_t capacity, int64_t max_failures, int64_t cooloff,
                         struct cs_ratelimit **out)
{
  size_t n = 1;
  if (!capacity || max_failures <= 0 || cooloff <= 0)
    return CS_ERR_INVALID;
  while (n < capacity)
    n <<= 1;
  struct cs_ratelimit *rl = calloc(1, sizeof *rl + n * sizeof rl->slots[0]);
  if (!rl)
    return CS_ERR_NOMEM;
  pthread_mutex_init(&rl->mu, NULL);
  pthread_cond_init(&rl->cv, NULL);
  rl->mask = n - 1;
  rl->max_failures = max_failures;
  rl->cooloff = cooloff;
  *out = rl;
  return CS_OK;
}

void cs_rl_destroy(struct cs_ratelimit *rl)
{
  if (!rl)
    return;
  pthread_cond_destroy(&rl->cv);
  pthread_mutex_destroy(&rl->mu);
  free(rl);
}

/* Nothing worth keeping: no attempt running, and no failures, or only
 * failures of a finished window or cool-off. */
static bool spent(const struct slot *s, int64_t now)
{
  if (s->inflight)
    return false;
  if (s->blocked_until)
    return s->blocked_until <= now;
  return s->failures == 0 || now - s->window_start >= CS_RL_WINDOW;
}

static void claim(struct slot *s, const struct cs_addr *key, int64_t now)
{
  memset(s, 0, sizeof *s);
  s->key = *key;
  s->window_start = now;
}

/* The subject's slot, starting afresh if its last window is spent; with
 * @p create a new one when it has none. NULL: none, and no room. */
static struct slot *find(struct cs_ratelimit *rl, const struct cs_addr *key, int64_t now,
                         bool create)
{
  uint64_t h = cs_addr_hash(key);
  struct slot *room = NULL;
  for (size_t i = 0; i < PROBE; i++) {
    struct slot *s = &rl->slots[(h + i) & rl->mask];
    if (s->window_start == 0) {
      room = room ? room : s;
      break;
    }
    if (cs_addr_equal(&s->key, key)) {
      if (spent(s, now))
        claim(s, key, now);
      return s;
    }
    if (!room && spent(s, now))
      room = s;
  }
  if (!create || !room)
    return NULL;
  claim(room, key, now);
  return room;
}

enum cs_rl_verdict cs_rl_begin(struct cs_ratelimit *rl, const struct cs_addr *subject, int64_t now)
{
  enum cs_rl_verdict v;
  struct timespec until;
  cs_deadline_in_ms(WAIT_MS, &until);
  pthread_mutex_lock(&rl->mu);
  for (;;) {
    struct slot *s = find(rl, subject, now, true);
    if (!s) {
      v = CS_RL_FULL;
      break;
    }
    if (s->blocked_until > now || s->failures >= rl->max_failures) {
      v = s->refused ? CS_RL_COOLING : CS_RL_COOLING_FIRST;
      s->refused = true;
      break;
    }
    if (s->failures + s->inflight < rl->max_failures) {
      s->inflight++;
      v = CS_RL_GO;
      break;
    }
    /* The rest of the budget is held by attempts still running. */
    rl->waiters++;
    int rc = pthread_cond_timedwait(&rl->cv, &rl->mu, &until);
    rl->waiters--;
    if (rc) {
      v = CS_RL_COOLING;
      break;
    }
  }
  pthread_mutex_unlock(&rl->mu);
  return v;
}

bool cs_rl_end(struct cs_ratelimit *rl, const struct cs_addr *subject, bool failed, int64_t now)
{
  bool started = false;
  pthread_mutex_lock(&rl->mu);
  struct slot *s = find(rl, subject, now, failed);
  if (s && s->inflight)
    s->inflight--;
  if (s && failed) {
    if (s->failures < UINT32_MAX)
      s->failures++;
    if (s->failures >= rl->max_failures && !s->blocked_until) {
      s->blocked_until = now + rl->cooloff;
      started = true;
    }
  }
  if (rl->waiters)
    pthread_cond_broadcast(&rl->cv);
  pthread_mutex_unlock(&rl->mu);
  return started;
}
