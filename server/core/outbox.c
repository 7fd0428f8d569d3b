/* Webhook delivery (API.md §4 "Propagation"). Entries are written to
 * CS_TBL_OUTBOX in the same transaction as the change; this worker POSTs
 * {"type":"updated","credentialId","version","usageId"} signed with the
 * usage's callback secret (X-Credstore-Signature: sha256=<hex HMAC>) and
 * retries with exponential backoff until a 2xx, across restarts, for at
 * most --webhook-max-age: then the entry moves to CS_TBL_DEAD, a dead
 * letter, until an operator requeues it (deliveries.c lists and requeues).
 *
 * Entry: u64 BE seq → {"usageId","credentialId","version","attempts","nextAt",
 * "createdAt"?,"target"?,"lastError"?} with nextAt and createdAt in epoch
 * milliseconds (wall clock, so they survive restarts), target the
 * "scheme://host:port" of the usage's URL (a hint for the scan; absent in
 * entries written before it existed) and lastError why the last attempt
 * failed. A dead letter is its entry with "deadAt" (epoch ms) added, under
 * the same seq: the delivery's id. An entry without createdAt (written
 * before it existed) gets one at its first failure.
 *
 * One thread drives every delivery through one libcurl multi handle, so a
 * target that hangs holds only its own slots: at most PER_TARGET_MAX
 * deliveries per target and IN_FLIGHT_MAX in all are in flight. A cycle is
 * scan (due entries not in flight, whose target has room) → start →
 * finish (settle: delete on a 2xx, else reschedule). An entry is in flight
 * in one job at a time, and its job ends only after its settle committed,
 * so no scan can start it twice. */
#include "core_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define IN_FLIGHT_MAX 32
#define PER_TARGET_MAX 2
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define DELIVERY_TIMEOUT_MS 5000
#define IDLE_WAIT_MS 1000 /* also how soon a stop or a clock jump is seen */

/* One delivery in flight. */
struct job {
  bool busy;
  uint64_t seq;
  cJSON *entry; /* as stored; rewritten on failure */
  char target[CS_HTTP_TARGET_MAX];
};

struct cs_outbox {
  struct cs_core *core;
  struct cs_http_policy *policy;
  struct cs_http_batch *batch;
  pthread_t thread;
  atomic_bool stop;
  atomic_bool kicked;
  bool blocked;     /* the last scan left due entries waiting for a slot */
  int64_t next_due; /* earliest nextAt of the entries not in flight */
  unsigned finished;
  atomic_uint_fast64_t deliveries, failures, dead; /* for /metrics */
  struct job jobs[IN_FLIGHT_MAX];
};

int64_t cs_wall_ms(void)
{
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

enum cs_err cs_outbox_next_id(struct cs_txn *txn, uint64_t *out)
{
  uint64_t a = 0, b = 0;
  enum cs_err e;

  /* Above both tables: a dead letter keeps its id, and a requeued one
   * returns under it, so no two deliveries share one. */
  if ((e = cs_txn_last_seq(txn, CS_TBL_OUTBOX, &a)) || (e = cs_txn_last_seq(txn, CS_TBL_DEAD, &b)))
    return e;
  *out = (a > b ? a : b) + 1;
  return CS_OK;
}

static const char *entry_str(const cJSON *entry, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static size_t in_flight_to(const struct cs_outbox *ob, const char *target)
{
  size_t n = 0;
  for (size_t i = 0; i < IN_FLIGHT_MAX; i++)
    n += ob->jobs[i].busy && strcmp(ob->jobs[i].target, target) == 0;
  return n;
}

static bool in_flight(const struct cs_outbox *ob, uint64_t seq)
{
  for (size_t i = 0; i < IN_FLIGHT_MAX; i++)
    if (ob->jobs[i].busy && ob->jobs[i].seq == seq)
      return true;
  return false;
}

/* ----------------------------------------------------------------- queue */

struct outbox_ctx {
  struct cs_txn *txn;
  const char *cred_id;
  uint64_t version;
};

static enum cs_err queue_one(cJSON *rec, void *arg)
{
  struct outbox_ctx *o = arg;
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(rec, "callbackUrl");
  const cJSON *uid = cJSON_GetObjectItemCaseSensitive(rec, "id");
  uint64_t seq;
  uint8_t key[8];
  char *text = NULL, target[CS_HTTP_TARGET_MAX];
  const char *why;
  enum cs_err e;

  if (!cJSON_IsString(url) || !cJSON_IsString(uid))
    return CS_OK;
  if ((e = cs_outbox_next_id(o->txn, &seq)))
    return e;
  /* The target lets the delivery scan pass over a busy target's entries
   * without opening their usages; delivery checks the URL itself. */
  bool hint = cs_http_check_url(NULL, url->valuestring, target, &why) == CS_OK;
  cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "usageId", uid->valuestring) ||
      !cJSON_AddStringToObject(j, "credentialId", o->cred_id) ||
      !cJSON_AddNumberToObject(j, "version", (double)o->version) ||
      !cJSON_AddNumberToObject(j, "attempts", 0) || !cJSON_AddNumberToObject(j, "nextAt", 0) ||
      !cJSON_AddNumberToObject(j, "createdAt", (double)cs_wall_ms()) ||
      (hint && !cJSON_AddStringToObject(j, "target", target)) || !(text = cs_json_print(j))) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  cJSON_Delete(j);
  cs_store_seq_key(seq, key);
  e = cs_txn_put(o->txn, CS_TBL_OUTBOX, key, 8, text, strlen(text), CS_PUT_NO_OVERWRITE);
  free(text);
  return e;
}

enum cs_err cs_outbox_queue_update(struct cs_txn *txn, const char *cred_id, uint64_t version)
{
  struct outbox_ctx o = {txn, cred_id, version};
  return cs_usage_each(txn, cred_id, queue_one, &o);
}

/* ---------------------------------------------------------------- settle */

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

static double num_field(const cJSON *entry, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, name);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void set_field(cJSON *entry, const char *name, cJSON *v)
{
  if (!v)
    return;
  if (cJSON_HasObjectItem(entry, name))
    cJSON_ReplaceItemInObjectCaseSensitive(entry, name, v);
  else
    cJSON_AddItemToObject(entry, name, v);
}

static enum cs_err bury_txn(struct cs_txn *txn, void *arg)
{
  struct settle_ctx *s = arg;
  uint8_t key[8];
  enum cs_err e;

  cs_store_seq_key(s->seq, key);
  if ((e = cs_txn_del(txn, CS_TBL_OUTBOX, key, 8)))
    return e == CS_ERR_NOT_FOUND ? CS_OK : e; /* gone meanwhile: nothing to keep */
  return cs_txn_put(txn, CS_TBL_DEAD, key, 8, s->replacement, strlen(s->replacement), 0);
}

/* Past --webhook-max-age since it was queued? An entry without createdAt
 * (older than it) starts its clock now. */
static bool past_max_age(const struct cs_outbox *ob, cJSON *entry, int64_t now)
{
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(entry, "createdAt");

  if (!cJSON_IsNumber(c)) {
    set_field(entry, "createdAt", cJSON_CreateNumber((double)now));
    return false;
  }
  return now - (int64_t)c->valuedouble >= ob->core->opts.webhook_max_age * 1000;
}

/* Give up on the entry: it becomes a dead letter. Takes @p entry. */
static void bury(struct cs_outbox *ob, uint64_t seq, cJSON *entry)
{
  struct settle_ctx s = {seq, NULL};
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(entry, "attempts");
  char *text = NULL;

  if (!cJSON_HasObjectItem(entry, "lastError"))
    set_field(entry, "lastError", cJSON_CreateString("not attempted within --webhook-max-age"));
  set_field(entry, "deadAt", cJSON_CreateNumber((double)cs_wall_ms()));
  if ((s.replacement = text = cs_json_print(entry)) && !cs_core_write(ob->core, bury_txn, &s)) {
    atomic_fetch_add_explicit(&ob->dead, 1, memory_order_relaxed);
    CS_LOG(CS_LOG_WARN, "webhook for usage %s of %s given up after %d attempts: dead letter %llu",
           entry_str(entry, "usageId"), entry_str(entry, "credentialId"),
           cJSON_IsNumber(a) ? (int)a->valuedouble : 0, (unsigned long long)seq);
  } else {
    CS_LOG(CS_LOG_ERROR, "could not move outbox entry %llu to the dead letters",
           (unsigned long long)seq);
  }
  free(text);
  cJSON_Delete(entry);
}

/* Delete the entry (done, or nobody left to tell: @p error NULL), schedule
 * its next attempt with exponential backoff, or, past --webhook-max-age,
 * give up on it. Takes @p entry. */
static void settle(struct cs_outbox *ob, uint64_t seq, cJSON *entry, const char *error)
{
  struct settle_ctx s = {seq, NULL};
  char *text = NULL;

  if (error && past_max_age(ob, entry, cs_wall_ms())) {
    set_field(entry, "attempts", cJSON_CreateNumber(num_field(entry, "attempts") + 1));
    set_field(entry, "lastError", cJSON_CreateString(error));
    bury(ob, seq, entry);
    return;
  }
  if (error) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(entry, "attempts");
    double attempts = cJSON_IsNumber(a) ? a->valuedouble + 1 : 1;
    int64_t delay = ob->core->opts.webhook_retry_ms, next;
    for (int i = 1; i < (int)attempts && delay < BACKOFF_MAX_MS; i++)
      delay *= 2;
    if (delay > BACKOFF_MAX_MS)
      delay = BACKOFF_MAX_MS;
    next = cs_wall_ms() + delay;
    set_field(entry, "attempts", cJSON_CreateNumber(attempts));
    set_field(entry, "nextAt", cJSON_CreateNumber((double)next));
    set_field(entry, "lastError", cJSON_CreateString(error));
    if (!(text = cs_json_print(entry)))
      goto out;
    s.replacement = text;
    if (next < ob->next_due)
      ob->next_due = next;
  }
  if (cs_core_write(ob->core, settle_txn, &s))
    CS_LOG(CS_LOG_ERROR, "could not update outbox entry %llu", (unsigned long long)seq);
out:
  free(text);
  cJSON_Delete(entry);
}

/* ----------------------------------------------------------------- start */

/* The signed body for @p entry, or NULL (OOM). */
static char *signed_body(const cJSON *entry, const char *secret, char header[96])
{
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(entry, "version");
  char mac[65];
  char *body = NULL;
  cJSON *b = cJSON_CreateObject();

  if (b && cJSON_AddStringToObject(b, "type", "updated") &&
      cJSON_AddStringToObject(b, "credentialId", entry_str(entry, "credentialId")) &&
      cJSON_AddNumberToObject(b, "version", ver->valuedouble) &&
      cJSON_AddStringToObject(b, "usageId", entry_str(entry, "usageId")))
    body = cs_json_print(b);
  cJSON_Delete(b);
  if (body) {
    cs_hmac_sha256_hex(secret, strlen(secret), body, strlen(body), mac);
    snprintf(header, 96, "X-Credstore-Signature: sha256=%s", mac);
  }
  return body;
}

static void log_refused(const cJSON *entry, const char *why)
{
  CS_LOG(CS_LOG_WARN, "webhook for usage %s of %s refused: %s", entry_str(entry, "usageId"),
         entry_str(entry, "credentialId"), why);
}

/* Start @p job (seq and entry set), or settle or drop its entry at once. */
static void start(struct cs_outbox *ob, struct job *job)
{
  const char *uid = entry_str(job->entry, "usageId"), *why = "";
  char *url = NULL, *secret = NULL, *body = NULL, header[96];
  const char *headers[] = {header, NULL};
  struct cs_http_post req = {NULL, headers, NULL, 0, DELIVERY_TIMEOUT_MS};
  struct cs_txn *txn = NULL;
  enum cs_err e = CS_ERR_NOT_FOUND;

  if (uid && entry_str(job->entry, "credentialId") &&
      cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(job->entry, "version")) &&
      (e = cs_store_read_begin(ob->core->store, &txn)) == CS_OK) {
    e = cs_usage_callback(ob->core->keyring, txn, uid, &url, &secret);
    cs_store_read_end(txn);
  }
  if (e == CS_ERR_NOT_FOUND) {
    settle(ob, job->seq, job->entry, NULL); /* usage removed, or unreadable: nobody to tell */
  } else if (past_max_age(ob, job->entry, cs_wall_ms())) {
    bury(ob, job->seq, job->entry); /* due, but too late to try again */
  } else if (e) {
    settle(ob, job->seq, job->entry, "cannot read the usage's callback");
  } else if (cs_http_check_url(ob->policy, url, job->target, &why)) {
    /* Checked again here: a record may predate the policy or its options. */
    log_refused(job->entry, why);
    settle(ob, job->seq, job->entry, why);
  } else if (in_flight_to(ob, job->target) >= PER_TARGET_MAX) {
    ob->blocked = true; /* an entry without a target hint; a later scan takes it */
    cJSON_Delete(job->entry);
  } else if (!(req.body = body = signed_body(job->entry, secret, header))) {
    cJSON_Delete(job->entry);
  } else {
    req.url = url;
    req.len = strlen(body);
    if ((e = cs_http_batch_add(ob->batch, &req, job, &why)))
      settle(ob, job->seq, job->entry, why[0] ? why : cs_err_message(e));
    else
      job->busy = true;
  }
  if (!job->busy)
    job->entry = NULL;
  free(body);
  free(url);
  cs_free_secret_str(secret);
}

/* ------------------------------------------------------------------ scan */

struct scan_ctx {
  struct cs_outbox *ob;
  int64_t now;
  struct job *picked[IN_FLIGHT_MAX];
  size_t n;
};

static struct job *free_job(struct cs_outbox *ob, const struct scan_ctx *s)
{
  for (size_t i = 0; i < IN_FLIGHT_MAX; i++) {
    struct job *j = &ob->jobs[i];
    bool taken = j->busy;
    for (size_t k = 0; k < s->n && !taken; k++)
      taken = s->picked[k] == j;
    if (!taken)
      return j;
  }
  return NULL;
}

static enum cs_err pick_due(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct scan_ctx *s = arg;
  struct cs_outbox *ob = s->ob;
  cJSON *j;

  if (in_flight(ob, seq) || cs_json_parse(v->data, v->len, 4, &j))
    return CS_OK; /* an unreadable entry is skipped, not fatal to the others */
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "nextAt");
  int64_t due = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
  const char *target = entry_str(j, "target");
  size_t to_target = 0;
  for (size_t k = 0; target && k < s->n; k++)
    to_target += strcmp(s->picked[k]->target, target) == 0;
  struct job *job = NULL;
  if (due > s->now) {
    if (due < ob->next_due)
      ob->next_due = due;
  } else if (target && to_target + in_flight_to(ob, target) >= PER_TARGET_MAX) {
    ob->blocked = true;
  } else if (!(job = free_job(ob, s))) {
    ob->blocked = true;
    *stop = true;
  }
  if (!job) {
    cJSON_Delete(j);
    return CS_OK;
  }
  job->seq = seq;
  job->entry = j;
  snprintf(job->target, sizeof job->target, "%s", target ? target : "");
  s->picked[s->n++] = job;
  return CS_OK;
}

/* Start what is due and has room; sets next_due and blocked. */
static void scan_and_start(struct cs_outbox *ob)
{
  struct scan_ctx s = {ob, cs_wall_ms(), {NULL}, 0};

  ob->blocked = false;
  ob->next_due = s.now + 60000;
  if (cs_seq_each(ob->core->store, CS_TBL_OUTBOX, 0, pick_due, &s))
    CS_LOG(CS_LOG_ERROR, "cannot read the webhook outbox");
  for (size_t i = 0; i < s.n; i++)
    start(ob, s.picked[i]);
}

/* ---------------------------------------------------------------- finish */

static void finished(void *tag, const struct cs_http_result *r, void *arg)
{
  struct cs_outbox *ob = arg;
  struct job *job = tag;
  bool ok = r->e == CS_OK && r->status >= 200 && r->status < 300;
  char error[300];

  if (r->e == CS_OK)
    snprintf(error, sizeof error, "HTTP %ld", r->status);
  else
    snprintf(error, sizeof error, "%s", r->error);
  atomic_fetch_add_explicit(ok ? &ob->deliveries : &ob->failures, 1, memory_order_relaxed);
  CS_LOG(ok ? CS_LOG_INFO : CS_LOG_WARN, "webhook for usage %s of %s to %s: %s",
         entry_str(job->entry, "usageId"), entry_str(job->entry, "credentialId"), job->target,
         error);
  settle(ob, job->seq, job->entry, ok ? NULL : error);
  job->entry = NULL;
  job->busy = false; /* only now: the settle has committed */
  ob->finished++;
}

static void *outbox_main(void *arg)
{
  struct cs_outbox *ob = arg;
  bool rescan = true;

  while (!atomic_load(&ob->stop)) {
    if (atomic_exchange(&ob->kicked, false) || rescan || cs_wall_ms() >= ob->next_due)
      scan_and_start(ob);
    int64_t wait = ob->next_due - cs_wall_ms();
    wait = wait < 0 ? 0 : wait > IDLE_WAIT_MS ? IDLE_WAIT_MS : wait;
    unsigned before = ob->finished;
    if (cs_http_batch_run(ob->batch, (long)wait, finished, ob)) {
      CS_LOG(CS_LOG_ERROR, "webhook delivery: libcurl failed; retrying");
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    /* A freed slot may let a waiting entry go. */
    rescan = ob->finished != before && ob->blocked;
  }
  return NULL;
}

/* ------------------------------------------------------------- lifecycle */

enum cs_err cs_outbox_start(struct cs_core *c, char *err, size_t errlen)
{
  struct cs_outbox *ob = calloc(1, sizeof *ob);
  enum cs_err e;

  if (!ob)
    return CS_ERR_NOMEM;
  ob->core = c;
  if ((e = cs_http_policy_create(c->opts.webhook_allow, c->opts.webhook_deny, &ob->policy, err,
                                 errlen)))
    goto fail;
  if ((e = cs_http_batch_open(cs_broker_http(c->broker), ob->policy, &ob->batch)))
    goto fail;
  e = CS_ERR_INTERNAL;
  if (pthread_create(&ob->thread, NULL, outbox_main, ob))
    goto fail;
  c->outbox = ob;
  return CS_OK;
fail:
  cs_http_batch_free(ob->batch);
  cs_http_policy_free(ob->policy);
  free(ob);
  return e;
}

enum cs_err cs_webhook_check_url(struct cs_core *c, const char *url, const char **why)
{
  return cs_http_check_url(c->outbox ? c->outbox->policy : NULL, url, NULL, why);
}

void cs_outbox_kick(struct cs_core *c)
{
  struct cs_outbox *ob = c->outbox;
  if (!ob)
    return;
  atomic_store(&ob->kicked, true);
  cs_http_batch_wakeup(ob->batch);
}

void cs_outbox_counts(struct cs_core *c, uint64_t *deliveries, uint64_t *failures, uint64_t *dead)
{
  struct cs_outbox *ob = c->outbox;
  *deliveries = ob ? atomic_load(&ob->deliveries) : 0;
  *failures = ob ? atomic_load(&ob->failures) : 0;
  *dead = ob ? atomic_load(&ob->dead) : 0;
}

void cs_outbox_stop(struct cs_core *c)
{
  struct cs_outbox *ob = c->outbox;
  if (!ob)
    return;
  atomic_store(&ob->stop, true);
  cs_http_batch_wakeup(ob->batch);
  pthread_join(ob->thread, NULL);
  /* What was in flight stays in the store and is delivered after a restart. */
  cs_http_batch_free(ob->batch);
  for (size_t i = 0; i < IN_FLIGHT_MAX; i++)
    cJSON_Delete(ob->jobs[i].entry);
  cs_http_policy_free(ob->policy);
  free(ob);
  c->outbox = NULL;
}
