/* Cluster mode (API.md §9): what one process keeps of the shared store is
 * kept current from the store's change feed (cs_store_on_change), which
 * reports every applied change, this node's own included:
 *
 *   CS_TBL_CREDS   → the STS and token caches of that credential are dropped
 *                    (an edit on any node reaches every node's caches);
 *   CS_TBL_EVENTS  → long-polls are woken to read again (their own filter
 *                    decides whether the new events concern them);
 *   CS_TBL_OUTBOX  → the webhook worker rescans (a new entry, or a claim
 *                    released or expired: META "claim/...");
 *   META "keyring" → a newer keyring (rotate-key run while nodes serve) is
 *                    unwrapped and swapped in; older ones stay valid until
 *                    stop, since a request may still hold one.
 *
 * Access keys need nothing: every request reads the key record from the
 * local copy, which the same watch keeps within 1 s of etcd.
 * LMDB (one process) never reports changes; the writer's after-commit hook
 * covers them. */
#include "core_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define META_KEYRING "keyring"
#define CLAIM_PREFIX "claim/"

/* One core per process: reloads from the watch thread and from requests
 * that met a newer version first take turns. */
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;

/* A newer stored keyring replaces the current one; the old one is retired
 * (kept, freed at stop). Call with reload_mu held. */
static void reload_keyring(struct cs_core *c)
{
  struct cs_stored_keyring k = {0};
  struct cs_keyring *kr = NULL, *cur = c->keyring;
  enum cs_err e;

  if (c->n_retired == CS_CORE_KEYRINGS_MAX) {
    CS_LOG(CS_LOG_ERROR, "keyring changed too often while serving; restart to load it");
    return;
  }
  if ((e = cs_meta_read_keyring(c->store, &k)) || (e = cs_keyring_reload(cur, k.blob, k.len, &kr)))
    CS_LOG(CS_LOG_ERROR, "cannot load the store's new keyring: %s", cs_err_message(e));
  cs_stored_keyring_free(&k);
  if (!kr || cs_keyring_current_version(kr) <= cs_keyring_current_version(cur)) {
    cs_keyring_free(kr);
    return;
  }
  c->retired[c->n_retired++] = kr;
  c->keyring = kr;
  CS_LOG(CS_LOG_INFO, "data-key version %u is current (rotated by another process)",
         (unsigned)cs_keyring_current_version(kr));
}

static bool is_meta(const void *key, size_t klen, const char *name, bool prefix)
{
  size_t n = strlen(name);
  return key && (prefix ? klen >= n : klen == n) && memcmp(key, name, n) == 0;
}

static void on_change(void *arg, enum cs_table t, const void *key, size_t klen)
{
  struct cs_core *c = arg;
  char id[CS_ID_MAX + 1];

  switch (t) {
  case CS_TBL_CREDS:
    if (key && klen <= CS_ID_MAX) {
      memcpy(id, key, klen);
      id[klen] = '\0';
      cs_broker_invalidate(c->broker, id);
    }
    break;
  case CS_TBL_EVENTS:
    cs_events_notify(c);
    break;
  case CS_TBL_OUTBOX:
    cs_outbox_kick(c);
    break;
  case CS_TBL_META:
    if (!key || is_meta(key, klen, META_KEYRING, false)) {
      pthread_mutex_lock(&reload_mu);
      reload_keyring(c);
      pthread_mutex_unlock(&reload_mu);
    }
    if (!key || is_meta(key, klen, CLAIM_PREFIX, true))
      cs_outbox_kick(c);
    break;
  default:
    break;
  }
}

const struct cs_keyring *cs_core_keyring_for(struct cs_core *c, uint32_t version)
{
  const struct cs_keyring *kr = c->keyring;

  /* The watch applies a rotation's records and then reports them: a read
   * in between meets a version this node has not loaded yet. */
  if (version <= cs_keyring_current_version(kr) || !cs_store_shared(c->store))
    return kr;
  pthread_mutex_lock(&reload_mu);
  if (version > cs_keyring_current_version(c->keyring))
    reload_keyring(c);
  kr = c->keyring;
  pthread_mutex_unlock(&reload_mu);
  return kr;
}

void cs_cluster_start(struct cs_core *c) { cs_store_on_change(c->store, on_change, c); }

void cs_cluster_stop(struct cs_core *c)
{
  cs_store_on_change(c->store, NULL, NULL); /* returns once no callback runs */
  c->keyring = c->keyring_given;
  for (size_t i = 0; i < c->n_retired; i++)
    cs_keyring_free(c->retired[i]);
  c->n_retired = 0;
}
