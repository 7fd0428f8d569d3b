/* The audit trail (API.md §5): every change, resolve, key change and failed
 * authentication, hash-chained so a modified or removed entry is detected.
 *
 * CS_TBL_AUDIT: u64 BE seq → hash[32] | entry JSON
 * entry JSON:   {"seq","at","actor","role","action","target","result",
 *                "remote","prevHash"}
 * hash:         keyed BLAKE2b-256(prevHash || entry JSON), keyed with the
 *               keyring's audit-chain key (cs_chain_hash): a store writer
 *               without the master key cannot recompute the chain.
 * META "audit_head": u64 BE seq | hash[32] of the last entry, so removing
 * the newest entries is detected too.
 *
 * Readers with a scope see only entries about credentials their scope
 * allows; entries about access keys, logins and the keyring are about no
 * credential and are hidden from them. */
#include "svc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_KEY "audit_head"
#define HEAD_LEN (8 + CS_HASH_BYTES)
#define LIST_MAX 1000
/* Entries one listing examines at most, whatever its filter: a reader whose
 * scope matches little must not walk the whole trail per request. */
#define SCAN_MAX 10000

struct cs_actor cs_actor_of(const struct cs_req *req)
{
  struct cs_actor a = {req->who.key_id, req->authenticated ? cs_role_name(req->who.role) : "",
                       req->remote};
  return a;
}

static enum cs_err read_head(struct cs_txn *txn, uint64_t *seq, uint8_t hash[CS_HASH_BYTES])
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_META, HEAD_KEY, strlen(HEAD_KEY), &v);
  if (e == CS_ERR_NOT_FOUND) {
    *seq = 0;
    memset(hash, 0, CS_HASH_BYTES);
    return CS_OK;
  }
  if (e)
    return e;
  if (v.len != HEAD_LEN)
    return CS_ERR_STORE;
  *seq = cs_store_seq_from_key(v.data, 8);
  memcpy(hash, (const uint8_t *)v.data + 8, CS_HASH_BYTES);
  return CS_OK;
}

enum cs_err cs_audit_append(struct cs_txn *txn, const struct cs_keyring *kr,
                            const struct cs_actor *a, const char *action, const char *target,
                            const char *result)
{
  uint8_t prev[CS_HASH_BYTES], hash[CS_HASH_BYTES], key[8], head[HEAD_LEN];
  char prev_hex[2 * CS_HASH_BYTES + 1], when[32];
  uint64_t seq;
  cJSON *j = NULL;
  char *text = NULL;
  uint8_t *val = NULL;
  enum cs_err e;

  if ((e = read_head(txn, &seq, prev)))
    return e;
  seq++;
  cs_hex(prev, sizeof prev, prev_hex);
  cs_time_format(cs_now(), when);
  e = CS_ERR_NOMEM;
  j = cJSON_CreateObject();
  if (!j || !cJSON_AddNumberToObject(j, "seq", (double)seq) ||
      !cJSON_AddStringToObject(j, "at", when) ||
      !cJSON_AddStringToObject(j, "actor", a && a->key_id ? a->key_id : "") ||
      !cJSON_AddStringToObject(j, "role", a && a->role ? a->role : "") ||
      !cJSON_AddStringToObject(j, "action", action) ||
      !cJSON_AddStringToObject(j, "target", target ? target : "") ||
      !cJSON_AddStringToObject(j, "result", result) ||
      !cJSON_AddStringToObject(j, "remote", a && a->remote ? a->remote : "") ||
      !cJSON_AddStringToObject(j, "prevHash", prev_hex) || !(text = cs_json_print(j)))
    goto out;
  size_t len = strlen(text);
  cs_chain_hash(kr, prev, text, len, hash);
  if (!(val = malloc(CS_HASH_BYTES + len)))
    goto out;
  memcpy(val, hash, CS_HASH_BYTES);
  memcpy(val + CS_HASH_BYTES, text, len);
  cs_store_seq_key(seq, key);
  if ((e = cs_txn_put(txn, CS_TBL_AUDIT, key, 8, val, CS_HASH_BYTES + len, CS_PUT_NO_OVERWRITE)))
    goto out;
  memcpy(head, key, 8);
  memcpy(head + 8, hash, CS_HASH_BYTES);
  e = cs_txn_put(txn, CS_TBL_META, HEAD_KEY, strlen(HEAD_KEY), head, sizeof head, 0);
out:
  cJSON_Delete(j);
  free(text);
  free(val);
  return e;
}

struct record_ctx {
  const struct cs_keyring *kr;
  const struct cs_actor *a;
  const char *action, *target, *result;
};

static enum cs_err record_txn(struct cs_txn *txn, void *arg)
{
  struct record_ctx *c = arg;
  return cs_audit_append(txn, c->kr, c->a, c->action, c->target, c->result);
}

enum cs_err cs_audit_record(struct cs_app *app, const struct cs_actor *a, const char *action,
                            const char *target, const char *result)
{
  struct record_ctx c = {app->keyring, a, action, target, result};
  return cs_writer_submit(app->writer, record_txn, &c);
}

/* What a client presents as a key id is recorded only if it has the shape
 * of one: a client that swapped id and secret must not get its secret
 * written to the log and the audit trail. */
static const char *loggable_key_id(const char *id)
{
  size_t n = strlen(id);
  if (n != 3 + 2 * CS_KEY_ID_HEX || strncmp(id, "ak-", 3) != 0)
    return "(not a key id)";
  for (size_t i = 3; i < n; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return "(not a key id)";
  return id;
}

void cs_audit_auth(struct cs_req *req, const char *key_id, const char *result)
{
  char fields[256];
  key_id = loggable_key_id(key_id);
  struct cs_buf b = {fields, 0, sizeof fields, sizeof fields, false};
  struct cs_actor a = {key_id, req->authenticated ? cs_role_name(req->who.role) : "",
                       req->remote};

  if (strcmp(result, "failure") == 0 &&
      !cs_buf_printf(&b, "\"audit\":\"login\",\"result\":\"%s\",\"remote\":\"%s\",\"actor\":\"",
                     result, req->remote) &&
      !cs_buf_json_escape(&b, key_id, strnlen(key_id, 64)) && !cs_buf_append(&b, "\"", 1))
    cs_log_fields(CS_LOG_WARN, fields, "authentication %s", result);
  if (req->app->writer && cs_audit_record(req->app, &a, "auth", key_id, result))
    CS_LOG(CS_LOG_ERROR, "could not record an audit entry");
}

/* Decode one stored entry: its hash and JSON. */
static enum cs_err entry_parts(const struct cs_val *v, const uint8_t **hash, const char **json,
                               size_t *len)
{
  if (v->len <= CS_HASH_BYTES)
    return CS_ERR_CRYPTO;
  *hash = v->data;
  *json = (const char *)v->data + CS_HASH_BYTES;
  *len = v->len - CS_HASH_BYTES;
  return CS_OK;
}

enum cs_err cs_audit_verify(struct cs_txn *txn, const struct cs_keyring *kr, uint64_t *count,
                            uint64_t *bad_seq)
{
  uint8_t prev[CS_HASH_BYTES] = {0}, calc[CS_HASH_BYTES], head_hash[CS_HASH_BYTES];
  uint64_t expect = 1, head_seq;
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  enum cs_err e;

  *count = 0;
  *bad_seq = 0;
  if ((e = read_head(txn, &head_seq, head_hash)) || (e = cs_cursor_open(txn, CS_TBL_AUDIT, &c)))
    return e;
  for (e = cs_cursor_seek(c, NULL, 0, &k, &v); e == CS_OK; e = cs_cursor_next(c, &k, &v)) {
    const uint8_t *hash;
    const char *json;
    size_t len;
    cJSON *j = NULL;
    char prev_hex[2 * CS_HASH_BYTES + 1];
    bool ok = cs_store_seq_from_key(k.data, k.len) == expect &&
              entry_parts(&v, &hash, &json, &len) == CS_OK;
    if (ok) {
      cs_chain_hash(kr, prev, json, len, calc);
      cs_hex(prev, sizeof prev, prev_hex);
      const cJSON *p, *s;
      ok = cs_hash_equal(calc, hash) &&
           cs_json_parse(json, len, CS_JSON_MAX_DEPTH, &j) == CS_OK &&
           cJSON_IsString(p = cJSON_GetObjectItemCaseSensitive(j, "prevHash")) &&
           strcmp(p->valuestring, prev_hex) == 0 &&
           cJSON_IsNumber(s = cJSON_GetObjectItemCaseSensitive(j, "seq")) &&
           (uint64_t)s->valuedouble == expect;
      cJSON_Delete(j);
    }
    if (!ok) {
      *bad_seq = expect;
      cs_cursor_close(c);
      return CS_ERR_CRYPTO;
    }
    memcpy(prev, hash, CS_HASH_BYTES);
    expect++;
  }
  cs_cursor_close(c);
  if (e != CS_ERR_NOT_FOUND)
    return e;
  *count = expect - 1;
  /* The head names the newest entry: entries removed from the end show here. */
  if (head_seq != *count || !cs_hash_equal(head_hash, prev)) {
    *bad_seq = *count + 1;
    return CS_ERR_CRYPTO;
  }
  return CS_OK;
}

/* Actions whose target is a credential id; anything else (access keys,
 * logins, the keyring, actions added later) is about no credential. */
static bool about_credential(const char *action)
{
  static const char *const actions[] = {"create",       "update",       "delete",
                                        "usage_create", "usage_delete", "resolve"};
  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (strcmp(action, actions[i]) == 0)
      return true;
  return false;
}

struct audit_page {
  const char *cred;   /* ?credential=, or NULL */
  const cJSON *scope; /* the caller's scope, NULL = everything */
  uint64_t limit;
  uint64_t scanned;
  uint64_t next; /* the last seq examined: where the next page starts */
  cJSON *arr;
};

static bool entry_visible(const struct audit_page *p, const cJSON *j)
{
  if (!p->cred && !p->scope)
    return true;
  const cJSON *action = cJSON_GetObjectItemCaseSensitive(j, "action");
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "target");
  if (!cJSON_IsString(action) || !cJSON_IsString(t) || !about_credential(action->valuestring))
    return false;
  if (p->cred && strcmp(t->valuestring, p->cred) != 0)
    return false;
  return cs_scope_allows(p->scope, t->valuestring);
}

static enum cs_err collect_entry(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct audit_page *p = arg;
  const uint8_t *hash;
  const char *json;
  size_t len;
  cJSON *j;
  char hex[2 * CS_HASH_BYTES + 1];

  p->next = seq;
  *stop = ++p->scanned >= SCAN_MAX;
  if (entry_parts(v, &hash, &json, &len) || cs_json_parse(json, len, CS_JSON_MAX_DEPTH, &j))
    return CS_ERR_STORE;
  if (!entry_visible(p, j)) {
    cJSON_Delete(j);
    return CS_OK;
  }
  cs_hex(hash, CS_HASH_BYTES, hex);
  if (!cJSON_AddStringToObject(j, "hash", hex)) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  cJSON_AddItemToArray(p->arr, j);
  *stop = *stop || (uint64_t)cJSON_GetArraySize(p->arr) >= p->limit;
  return CS_OK;
}

/* GET /api/v1/audit?since&limit&credential: up to limit entries the caller
 * may see, after examining at most SCAN_MAX. Next-Since names the last
 * entry examined, so a caller pages on with since=Next-Since until it stops
 * moving. A credential outside the caller's scope filters like one without
 * entries: the same empty page, no oracle. */
enum cs_err cs_h_audit(struct cs_req *req, struct cs_resp *resp)
{
  struct audit_page p = {cs_req_query(req, "credential"), req->who.scope, 100, 0, 0, NULL};
  uint64_t since = 0;
  const char *v;
  enum cs_err e;

  if ((v = cs_req_query(req, "since")) && cs_parse_u64(v, UINT64_MAX - 1, &since))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "since must be a sequence number");
  if ((v = cs_req_query(req, "limit")) && (cs_parse_u64(v, LIST_MAX, &p.limit) || p.limit == 0))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "limit must be an integer from 1 to %d", LIST_MAX);
  if (p.cred && !cs_id_valid(p.cred, strlen(p.cred)))
    return cs_fail(resp, CS_ERR_BAD_QUERY, "credential must be a credential id");
  if (!(p.arr = cJSON_CreateArray()))
    return CS_ERR_NOMEM;
  p.next = since;
  if ((e = cs_seq_each(req->app->store, CS_TBL_AUDIT, since + 1, collect_entry, &p))) {
    cJSON_Delete(p.arr);
    return e;
  }
  cs_resp_header(resp, "Next-Since", "%" PRIu64, p.next);
  return cs_resp_json(resp, 200, p.arr);
}

/* What audit-verify says when the data dir could not be opened with a key
 * (cs_app_open has said why). */
static void key_hint(const struct cs_config *cfg, enum cs_err e)
{
  if (e == CS_ERR_MASTER_KEY)
    fprintf(stderr, "credstore audit-verify: wrong master key: the audit chain is keyed with "
                    "a key derived from this data dir's master key; give that key\n");
  else if ((e == CS_ERR_IO || e == CS_ERR_INVALID) && !cfg->master_key_file &&
           !cfg->passphrase_env)
    fprintf(stderr, "credstore audit-verify: the audit chain is keyed with a key derived from "
                    "the master key: give the key option serve uses (--master-key-file F or "
                    "--passphrase-env VAR; %s/master.key serves only a development data dir)\n",
            cfg->data_dir);
}

/* credstore audit-verify --data DIR [--master-key-file F | --passphrase-env VAR]:
 * the chain is keyed, so verifying it needs the master key. */
int cs_cmd_audit_verify(const struct cs_config *cfg)
{
  struct cs_app app = {0};
  struct cs_txn *txn = NULL;
  uint64_t count = 0, bad = 0;
  enum cs_err e;

  if (!cfg->data_dir) {
    fprintf(stderr, "credstore audit-verify: --data DIR is required\n");
    return 2;
  }
  app.cfg = *cfg;
  if ((e = cs_app_open(&app, CS_STORE_READONLY))) {
    key_hint(cfg, e);
    return 1;
  }
  if (!(e = cs_store_read_begin(app.store, &txn))) {
    e = cs_audit_verify(txn, app.keyring, &count, &bad);
    cs_store_read_end(txn);
  }
  cs_app_close(&app);
  if (e == CS_ERR_CRYPTO) {
    fprintf(stderr, "credstore audit-verify: the audit chain is broken at entry %llu "
                    "(modified, removed, or rehashed without the key)\n",
            (unsigned long long)bad);
    return 1;
  }
  if (e) {
    fprintf(stderr, "credstore audit-verify: %s\n", cs_err_message(e));
    return 1;
  }
  printf("{\"entries\":%llu,\"intact\":true}\n", (unsigned long long)count);
  return 0;
}
