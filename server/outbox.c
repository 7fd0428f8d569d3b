/* Webhook delivery (API.md §4 "Propagation"). Entries are written to
 * CS_TBL_OUTBOX in the same transaction as the change; this worker POSTs
 * {"type":"updated","credentialId","version","usageId"} signed with the
 * usage's callback secret (X-Credstore-Signature: sha256=<hex HMAC>) and
 * retries with exponential backoff until a 2xx, across restarts.
 *
 * Entry: u64 BE seq → {"usageId","credentialId","version","attempts","nextAt"}
 * with nextAt in epoch milliseconds (wall clock, so it survives restarts). */
#include "svc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define SCAN_MAX 64
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define DELIVERY_TIMEOUT_MS 5000

struct cs_outbox {
  struct cs_app *app;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  bool kicked;
};

struct delivery {
  uint64_t seq;
  cJSON *entry;
};

static int64_t wall_ms(void)
{
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct due_scan {
  struct delivery *out;
  size_t n;
  int64_t now;
  int64_t *next_due;
};

static enum cs_err collect_due(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct due_scan *d = arg;
  cJSON *j;

  if (cs_json_parse(v->data, v->len, 4, &j))
    return CS_OK; /* an unreadable entry is skipped, not fatal to the others */
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "nextAt");
  int64_t due = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
  if (due > d->now) {
    if (due < *d->next_due)
      *d->next_due = due;
    cJSON_Delete(j);
    return CS_OK;
  }
  d->out[d->n].seq = seq;
  d->out[d->n++].entry = j;
  *stop = d->n == SCAN_MAX;
  return CS_OK;
}

/* Up to SCAN_MAX due entries; *next_due = the earliest not-yet-due time. */
static size_t scan(struct cs_app *app, struct delivery *out, int64_t now, int64_t *next_due)
{
  struct due_scan d = {out, 0, now, next_due};
  *next_due = now + 60000;
  if (cs_seq_each(app->store, CS_TBL_OUTBOX, 0, collect_due, &d))
    CS_LOG(CS_LOG_ERROR, "cannot read the webhook outbox");
  return d.n;
}

struct settle_ctx {
  uint64_t seq;
  const char *replacement; /* NULL: delete the entry */
};

static enum cs_err settle_txn(struct cs_txn *txn, void *arg)
{
  struct settle_ctx *s = arg;
  uint8_t key[8];
  cs_store_seq_key(s->seq, key);
  if (!s->replacement) {
    enum cs_err e = cs_txn_del(txn, CS_TBL_OUTBOX, key, 8);
    return e == CS_ERR_NOT_FOUND ? CS_OK : e;
  }
  return cs_txn_put(txn, CS_TBL_OUTBOX, key, 8, s->replacement, strlen(s->replacement), 0);
}

/* POST one delivery. @return true on a 2xx. */
static bool deliver(struct cs_app *app, const cJSON *entry, bool *gone)
{
  const cJSON *uid = cJSON_GetObjectItemCaseSensitive(entry, "usageId");
  const cJSON *cid = cJSON_GetObjectItemCaseSensitive(entry, "credentialId");
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(entry, "version");
  struct cs_txn *txn = NULL;
  char *url = NULL, *secret = NULL, *body = NULL;
  char mac[65], header[96];
  long status = 0;
  bool ok = false;

  *gone = false;
  if (!cJSON_IsString(uid) || !cJSON_IsString(cid) || !cJSON_IsNumber(ver)) {
    *gone = true;
    return false;
  }
  if (cs_store_read_begin(app->store, &txn))
    return false;
  enum cs_err e = cs_usage_callback(app, txn, uid->valuestring, &url, &secret);
  cs_store_read_end(txn);
  if (e == CS_ERR_NOT_FOUND) {
    *gone = true; /* the usage was removed: nobody to tell */
    return false;
  }
  if (e)
    return false;
  cJSON *b = cJSON_CreateObject();
  if (b && cJSON_AddStringToObject(b, "type", "updated") &&
      cJSON_AddStringToObject(b, "credentialId", cid->valuestring) &&
      cJSON_AddNumberToObject(b, "version", ver->valuedouble) &&
      cJSON_AddStringToObject(b, "usageId", uid->valuestring))
    body = cs_json_print(b);
  cJSON_Delete(b);
  if (body) {
    cs_hmac_sha256_hex(secret, strlen(secret), body, strlen(body), mac);
    snprintf(header, sizeof header, "X-Credstore-Signature: sha256=%s", mac);
    const char *headers[] = {header, NULL};
    e = cs_http_post_json(url, headers, body, strlen(body), DELIVERY_TIMEOUT_MS, &status, NULL);
    ok = e == CS_OK && status >= 200 && status < 300;
    cs_metrics_webhook(ok);
    CS_LOG(ok ? CS_LOG_INFO : CS_LOG_WARN, "webhook for usage %s of %s: %s %ld",
           uid->valuestring, cid->valuestring, e ? "transport error" : "HTTP", status);
  }
  free(body);
  free(url);
  cs_free_secret_str(secret);
  return ok;
}

static void process(struct cs_outbox *ob, struct delivery *d)
{
  struct settle_ctx s = {d->seq, NULL};
  bool gone = false;
  char *text = NULL;

  if (!deliver(ob->app, d->entry, &gone) && !gone) {
    cJSON *a = cJSON_GetObjectItemCaseSensitive(d->entry, "attempts");
    double attempts = cJSON_IsNumber(a) ? a->valuedouble + 1 : 1;
    int64_t delay = ob->app->cfg.webhook_retry_ms;
    for (int i = 1; i < (int)attempts && delay < BACKOFF_MAX_MS; i++)
      delay *= 2;
    if (delay > BACKOFF_MAX_MS)
      delay = BACKOFF_MAX_MS;
    cJSON_ReplaceItemInObjectCaseSensitive(d->entry, "attempts", cJSON_CreateNumber(attempts));
    cJSON_ReplaceItemInObjectCaseSensitive(d->entry, "nextAt",
                                           cJSON_CreateNumber((double)(wall_ms() + delay)));
    if (!(text = cs_json_print(d->entry)))
      return;
    s.replacement = text;
  }
  if (cs_writer_submit(ob->app->writer, settle_txn, &s))
    CS_LOG(CS_LOG_ERROR, "could not update outbox entry %llu", (unsigned long long)d->seq);
  free(text);
}

static void *outbox_main(void *arg)
{
  struct cs_outbox *ob = arg;
  struct delivery batch[SCAN_MAX];

  for (;;) {
    int64_t next_due;
    size_t n = scan(ob->app, batch, wall_ms(), &next_due);
    for (size_t i = 0; i < n; i++) {
      pthread_mutex_lock(&ob->mu);
      bool stop = ob->stop;
      pthread_mutex_unlock(&ob->mu);
      if (!stop)
        process(ob, &batch[i]);
      cJSON_Delete(batch[i].entry);
    }
    pthread_mutex_lock(&ob->mu);
    if (n == SCAN_MAX)
      ob->kicked = true; /* more may be due */
    if (!ob->kicked && !ob->stop) {
      int64_t ms = next_due - wall_ms();
      if (ms < 10)
        ms = 10;
      if (ms > 1000)
        ms = 1000;
      struct timespec ts;
      cs_deadline_in_ms(ms, &ts);
      pthread_cond_timedwait(&ob->cv, &ob->mu, &ts);
    }
    ob->kicked = false;
    bool stop = ob->stop;
    pthread_mutex_unlock(&ob->mu);
    if (stop)
      break;
  }
  return NULL;
}

enum cs_err cs_outbox_start(struct cs_app *app)
{
  struct cs_outbox *ob = calloc(1, sizeof *ob);
  if (!ob)
    return CS_ERR_NOMEM;
  ob->app = app;
  pthread_mutex_init(&ob->mu, NULL);
  pthread_cond_init(&ob->cv, NULL);
  if (pthread_create(&ob->thread, NULL, outbox_main, ob)) {
    free(ob);
    return CS_ERR_INTERNAL;
  }
  app->outbox = ob;
  return CS_OK;
}

void cs_outbox_kick(struct cs_app *app)
{
  struct cs_outbox *ob = app->outbox;
  if (!ob)
    return;
  pthread_mutex_lock(&ob->mu);
  ob->kicked = true;
  pthread_cond_signal(&ob->cv);
  pthread_mutex_unlock(&ob->mu);
}

void cs_outbox_stop(struct cs_app *app)
{
  struct cs_outbox *ob = app->outbox;
  if (!ob)
    return;
  pthread_mutex_lock(&ob->mu);
  ob->stop = true;
  pthread_cond_signal(&ob->cv);
  pthread_mutex_unlock(&ob->mu);
  pthread_join(ob->thread, NULL);
  pthread_mutex_destroy(&ob->mu);
  pthread_cond_destroy(&ob->cv);
  free(ob);
  app->outbox = NULL;
}
