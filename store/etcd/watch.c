/*
 * etcd backend: the watch thread (one stream from the applied revision + 1,
 * each reply applied to the local copy in one LMDB txn, then published and
 * reported to the change callback), the health thread, and waiting for a
 * revision.
 */
#include "etcd.h"

#include <stdlib.h>
#include <string.h>

#define CS_ETCD_LINE_MAX ((size_t)512 << 20) /* one watch reply: up to 1000 revisions */
#define CS_ETCD_HEALTH_EVERY_MS 1000
#define CS_ETCD_HEALTH_TIMEOUT_MS 1000  /* per endpoint */
#define CS_ETCD_HEALTH_DEADLINE_MS 2500 /* for one check, over every endpoint */
#define CS_ETCD_HEALTHY_MS 3000         /* a success this recent counts as healthy */
#define CS_ETCD_STALL_MS                                                                           \
  2000 /* a writer waiting on a watch silent this long moves it                                    \
        * (or half the request timeout, if longer) */
#define CS_ETCD_BACKOFF_MAX_MS 1000

/* Why one watch stream ended. */
enum wend { W_BROKEN, W_COMPACTED, W_STOP };

struct wstream {
  struct cs_etcd *e;
  struct cs_buf line;
  enum wend end;
};

static long next_backoff(long ms)
{
  if (ms == 0)
    return 50;
  return ms * 2 > CS_ETCD_BACKOFF_MAX_MS ? CS_ETCD_BACKOFF_MAX_MS : ms * 2;
}

int64_t cs_etcd_applied(struct cs_etcd *e) { return atomic_load(&e->applied_pub); }

static void publish(struct cs_etcd *e, int64_t rev)
{
  pthread_mutex_lock(&e->mu);
  if (rev > e->applied) {
    e->applied = rev;
    atomic_store(&e->applied_pub, rev);
  }
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

/* Sleep up to @p ms unless stopping. @return false when stopping. */
static bool nap(struct cs_etcd *e, long ms)
{
  struct timespec ts;

  cs_deadline_in_ms(ms, &ts);
  pthread_mutex_lock(&e->mu);
  if (!atomic_load(&e->stop))
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
  pthread_mutex_unlock(&e->mu);
  return !atomic_load(&e->stop);
}

/* ----------------------------------------------------------- callbacks */

void cs_etcd_on_change(struct cs_etcd *e, cs_store_change_fn fn, void *arg)
{
  pthread_mutex_lock(&e->cb_mu);
  e->cb = fn;
  e->cb_arg = arg;
  pthread_mutex_unlock(&e->cb_mu);
}

/* Tell the callback about each record of @p events (NULL: every table). */
static void notify(struct cs_etcd *e, const cJSON *events)
{
  const cJSON *ev;

  pthread_mutex_lock(&e->cb_mu);
  if (e->cb && !events)
    for (int t = 0; t < CS_TBL__COUNT; t++)
      e->cb(e->cb_arg, (enum cs_table)t, NULL, 0);
  if (e->cb && events)
    cJSON_ArrayForEach(ev, events)
    {
      const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
      uint8_t *key;
      const uint8_t *rk;
      size_t klen, rlen;
      int t;

      if (cs_etcd_unb64(cJSON_GetObjectItemCaseSensitive(kv, "key"), &key, &klen) != CS_OK)
        continue;
      t = cs_etcd_split_key(e, key, klen, &rk, &rlen);
      if (t >= 0)
        e->cb(e->cb_arg, (enum cs_table)t, rk, rlen);
      free(key);
    }
  pthread_mutex_unlock(&e->cb_mu);
}

/* --------------------------------------------------------------- apply */

/* One watch reply's events, in one LMDB txn, then published. */
static enum cs_err apply_events(struct cs_etcd *e, const cJSON *events)
{
  enum cs_err r;
  int64_t max;
  int rc;

  pthread_mutex_lock(&e->st->write_mu);
  for (;;) {
    MDB_txn *txn;

    max = e->applied;
    rc = mdb_txn_begin(e->st->env, NULL, 0, &txn);
    if (rc) {
      r = cs_lmdb_fail(rc, "local copy update begin");
      break;
    }
    r = cs_etcd_apply_all(e, txn, events, true, &max);
    if (r != CS_OK) {
      mdb_txn_abort(txn);
    } else {
      rc = mdb_txn_commit(txn);
      r = rc == MDB_MAP_FULL ? CS_ERR_STORE_FULL : rc ? cs_lmdb_fail(rc, "local copy update") : r;
    }
    if (r != CS_ERR_STORE_FULL)
      break;
    r = cs_lmdb_grow_locked(e->st);
    if (r != CS_OK)
      break;
  }
  /* Published before write_mu is released: a writer holding it sees a copy
   * and a revision that agree. */
  if (r == CS_OK)
    publish(e, max);
  pthread_mutex_unlock(&e->st->write_mu);
  if (r == CS_OK)
    notify(e, events);
  return r;
}

/* One message of the stream. @return false to end the stream. */
static bool on_message(struct wstream *w, const char *s, size_t len)
{
  struct cs_etcd *e = w->e;
  const cJSON *res, *events;
  cJSON *j = NULL;
  bool go_on = false;

  if (cs_json_parse(s, len, CS_JSON_MAX_DEPTH, &j) != CS_OK) {
    CS_LOG(CS_LOG_WARN, "store: the etcd watch sent a message that is not JSON");
    goto out;
  }
  res = cJSON_GetObjectItemCaseSensitive(j, "result");
  if (!res) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "error");

    CS_LOG(CS_LOG_WARN, "store: the etcd watch failed: %.200s",
           cJSON_IsString(m) ? m->valuestring : "?");
    goto out;
  }
  if (cs_etcd_int(res, "compact_revision") > 0) {
    CS_LOG(CS_LOG_WARN, "store: etcd compacted past revision %lld: reloading the local copy",
           (long long)e->applied);
    w->end = W_COMPACTED;
    goto out;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "cancel_reason");

    CS_LOG(CS_LOG_WARN, "store: etcd ended the watch: %.200s",
           cJSON_IsString(m) ? m->valuestring : "no reason given");
    goto out;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"))) {
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->watch_ok, true);
    pthread_cond_broadcast(&e->cv); /* cs_etcd_start waits for it */
    pthread_mutex_unlock(&e->mu);
  }
  events = cJSON_GetObjectItemCaseSensitive(res, "events");
  go_on = !cJSON_IsArray(events) || apply_events(e, events) == CS_OK;
out:
  cJSON_Delete(j);
  return go_on;
}

/* The stream is alive: it connected, sent bytes, or is applying them. */
static void heard(struct cs_etcd *e, bool busy)
{
  atomic_store(&e->watch_heard_ms, cs_mono_ms());
  atomic_store(&e->watch_busy, busy);
}

/* The gateway sends one JSON object per line. */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
  struct wstream *w = arg;
  size_t len = size * n, used = 0, ret = 0;

  if (atomic_load(&w->e->stop) || atomic_load(&w->e->reconnect))
    return 0;
  heard(w->e, true);
  for (char *nl; (nl = memchr(p + used, '\n', len - used)) != NULL; used = (size_t)(nl + 1 - p)) {
    size_t part = (size_t)(nl - (p + used));
    bool ok;

    if (w->line.len == 0) {
      ok = part == 0 || on_message(w, p + used, part);
    } else {
      ok = cs_buf_append(&w->line, p + used, part) == CS_OK &&
           on_message(w, w->line.data, w->line.len);
      cs_buf_free(&w->line);
      cs_buf_init(&w->line, CS_ETCD_LINE_MAX);
    }
    if (!ok)
      goto out;
  }
  ret = cs_buf_append(&w->line, p + used, len - used) == CS_OK ? len : 0;
out:
  heard(w->e, false);
  return ret;
}

/* ---------------------------------------------------------------- watch */

static enum cs_err watch_body(struct cs_etcd *e, struct cs_buf *b)
{
  enum cs_err r = CS_BUF_LIT(b, "{\"create_request\":{");

  if (r == CS_OK)
    r = cs_etcd_store_range(b, e, NULL, 0);
  if (r == CS_OK)
    r = cs_buf_printf(b, ",\"start_revision\":\"%lld\"}}", (long long)cs_etcd_applied(e) + 1);
  return r;
}

/* Drive the transfer until it ends, the store stops or a reconnect is asked. */
static void pump(struct cs_etcd *e, CURL *h)
{
  int running = 1;

  curl_multi_add_handle(e->multi, h);
  while (running && !atomic_load(&e->stop) && !atomic_load(&e->reconnect)) {
    if (curl_multi_perform(e->multi, &running) != CURLM_OK)
      break;
    if (running)
      curl_multi_poll(e->multi, NULL, 0, 1000, NULL);
  }
  curl_multi_remove_handle(e->multi, h);
}

/* One watch stream on endpoint @p ep, until it breaks. Sets *created if
 * etcd accepted it. */
static enum wend watch_once(struct cs_etcd *e, CURL *h, int ep, bool *created)
{
  struct wstream w = {.e = e, .end = W_BROKEN};
  struct curl_slist *hdrs = NULL, *l;
  struct cs_buf body, url;

  cs_buf_init(&body, 4096);
  cs_buf_init(&url, 1024);
  cs_buf_init(&w.line, CS_ETCD_LINE_MAX);
  if (watch_body(e, &body) != CS_OK || cs_buf_printf(&url, "%s/v3/watch", e->cli.ep[ep]) ||
      cs_etcd_handle_setup(&e->cli, h, &hdrs, 0) != CS_OK)
    goto out;
  /* gRPC metadata: a member that loses its leader cancels the watch. */
  l = curl_slist_append(hdrs, "Grpc-Metadata-hasleader: true");
  if (!l)
    goto out;
  hdrs = l;
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
  atomic_fetch_add(&e->cli.n_bg, 1);
  heard(e, false);
  pump(e, h);
out:
  *created = atomic_exchange(&e->watch_ok, false);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdrs);
  cs_buf_free(&body);
  cs_buf_free(&url);
  cs_buf_free(&w.line);
  return atomic_load(&e->stop) ? W_STOP : w.end;
}

static void *watch_main(void *arg)
{
  struct cs_etcd *e = arg;
  CURL *h = curl_easy_init();
  long backoff = 0;
  bool reload = false;

  while (h && !atomic_load(&e->stop)) {
    unsigned ep = atomic_load(&e->cli.preferred) % (unsigned)e->cli.n_ep;
    bool created = false;
    enum wend end;

    if (reload && cs_etcd_load(e) != CS_OK) {
      nap(e, backoff = next_backoff(backoff));
      continue;
    }
    if (reload)
      notify(e, NULL);
    reload = false;
    atomic_store(&e->watch_ep, (int)ep);
    atomic_store(&e->reconnect, false);
    end = watch_once(e, h, (int)ep, &created);
    if (end == W_STOP)
      break;
    reload = end == W_COMPACTED;
    /* Move on to the next endpoint, unless the health thread already
     * pointed preferred at one that answers. */
    atomic_compare_exchange_strong(&e->cli.preferred, &ep, (ep + 1) % (unsigned)e->cli.n_ep);
    backoff = created ? 0 : next_backoff(backoff);
    if (backoff)
      nap(e, backoff);
  }
  curl_easy_cleanup(h);
  return NULL;
}

/* --------------------------------------------------------------- health */

/* One linearizable read, on the watch's endpoint first: a member that cannot
 * serve one is partitioned or has no quorum, so the watch moves off it. */
static void health_check(struct cs_etcd *e, CURL *h)
{
  struct cs_etcd_call r = {.path = "/v3/kv/range",
                           .idempotent = true,
                           .background = true,
                           .timeout_ms = CS_ETCD_HEALTH_TIMEOUT_MS,
                           .abort = &e->stop,
                           .deadline_ms = cs_mono_ms() + CS_ETCD_HEALTH_DEADLINE_MS};
  bool watching = atomic_load(&e->watch_ok);
  int wep = atomic_load(&e->watch_ep);
  struct cs_buf b;
  cJSON *j = NULL;

  cs_buf_init(&b, 4096);
  r.ep = watching ? wep : -1;
  if (CS_BUF_LIT(&b, "{\"key\":\"") == CS_OK &&
      cs_etcd_key_b64(&b, e, CS_TBL_META, "schema", 6) == CS_OK &&
      CS_BUF_LIT(&b, "\",\"count_only\":true}") == CS_OK) {
    r.body = b.data;
    r.len = b.len;
    if (cs_etcd_post(&e->cli, h, &r, &j) == CS_OK) {
      atomic_store(&e->last_ok_ms, cs_mono_ms());
      if (watching && r.ep_used != wep) {
        CS_LOG(CS_LOG_INFO, "store: etcd %s did not answer: moving the watch to %s", e->cli.ep[wep],
               e->cli.ep[r.ep_used]);
        atomic_store(&e->reconnect, true);
        curl_multi_wakeup(e->multi);
      }
    }
  }
  cJSON_Delete(j);
  cs_buf_free(&b);
}

static void *health_main(void *arg)
{
  struct cs_etcd *e = arg;
  CURL *h = curl_easy_init();

  while (h && nap(e, CS_ETCD_HEALTH_EVERY_MS))
    health_check(e, h);
  curl_easy_cleanup(h);
  return NULL;
}

bool cs_etcd_healthy(struct cs_etcd *e)
{
  return atomic_load(&e->watch_ok) &&
         cs_mono_ms() - atomic_load(&e->last_ok_ms) < CS_ETCD_HEALTHY_MS;
}

/* ----------------------------------------------------------- lifecycle */

/* A store just opened is healthy once its watch runs: wait for that a
 * little, so callers do not see a moment of "unavailable" (not fatal: the
 * watch keeps trying by itself). */
static void wait_watching(struct cs_etcd *e)
{
  struct timespec ts;

  cs_deadline_in_ms(e->cli.timeout_ms, &ts);
  pthread_mutex_lock(&e->mu);
  while (!atomic_load(&e->watch_ok) && pthread_cond_timedwait(&e->cv, &e->mu, &ts) == 0)
    ;
  pthread_mutex_unlock(&e->mu);
}

enum cs_err cs_etcd_start(struct cs_etcd *e)
{
  e->multi = curl_multi_init();
  if (!e->multi)
    return CS_ERR_NOMEM;
  atomic_store(&e->last_ok_ms, cs_mono_ms()); /* the load just succeeded */
  if (pthread_create(&e->watch_thr, NULL, watch_main, e))
    return CS_ERR_INTERNAL;
  if (pthread_create(&e->health_thr, NULL, health_main, e)) {
    atomic_store(&e->stop, true);
    curl_multi_wakeup(e->multi);
    pthread_join(e->watch_thr, NULL);
    return CS_ERR_INTERNAL;
  }
  e->threads = true;
  wait_watching(e);
  return CS_OK;
}

void cs_etcd_stop(struct cs_store *st)
{
  struct cs_etcd *e = st->etcd;

  if (!e)
    return;
  cs_etcd_retire(e);
  if (!e->threads)
    return;
  pthread_mutex_lock(&e->mu);
  atomic_store(&e->stop, true);
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
  pthread_join(e->watch_thr, NULL);
  pthread_join(e->health_thr, NULL);
  e->threads = false;
}

/* The watch has said nothing since @p since for the stall time (longer
 * with a longer request timeout: a slow environment). A stream still
 * receiving or applying a large reply is not stuck, however slow (a loaded
 * machine, valgrind): moving it would throw that work away. */
static bool watch_silent(struct cs_etcd *e, int64_t since, int64_t now)
{
  int64_t heard_ms = atomic_load(&e->watch_heard_ms);
  long stall = e->cli.timeout_ms / 2 > CS_ETCD_STALL_MS ? e->cli.timeout_ms / 2 : CS_ETCD_STALL_MS;

  return !atomic_load(&e->watch_busy) && now - (heard_ms > since ? heard_ms : since) > stall;
}

enum cs_err cs_etcd_wait_applied(struct cs_etcd *e, int64_t rev, int64_t deadline)
{
  int64_t start = cs_mono_ms(), now;
  bool moved = false, ok;

  pthread_mutex_lock(&e->mu);
  while (e->applied < rev && (now = cs_mono_ms()) < deadline && !atomic_load(&e->stop)) {
    struct timespec ts;

    /* The watch should deliver within milliseconds; a silent stream is
     * stuck on a member that fell behind: move it. */
    if (!moved && watch_silent(e, start, now)) {
      CS_LOG(CS_LOG_WARN, "store: the etcd watch is %lld revisions behind: reconnecting",
             (long long)(rev - e->applied));
      atomic_store(&e->reconnect, true);
      curl_multi_wakeup(e->multi);
      moved = true;
    }
    cs_deadline_in_ms(deadline - now < 200 ? deadline - now : 200, &ts);
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
  }
  ok = e->applied >= rev;
  pthread_mutex_unlock(&e->mu);
  return ok ? CS_OK : CS_ERR_STORE_UNAVAILABLE;
}
