/* cmocka tests of issue 17's record codecs against a real LMDB store in a
 * temporary directory, no daemon: the usage index entry that carries a
 * usage's resolve stats (round trip, every truncation and corruption
 * refused, the old "" / "t" entries read and converted on their next stats
 * write, a stats write leaving the JSON record's bytes alone), the audit
 * entry printer (byte for byte what cJSON printed, the oracle kept here
 * only), and the store's append put flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_test.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------- usage index entry codec */

static void test_usage_idx_round_trip(void **state)
{
  static const struct cs_usage_stats cases[] = {
      {0, 0, 0}, {1, 1, 1764590000}, {UINT64_MAX, UINT64_MAX, INT64_MAX}, {4001, 7, 1}};
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int t = 0; t < 2; t++) {
      enum cs_usage_material m = t ? CS_MATERIAL_TOKEN : CS_MATERIAL_SECRET, got_m;
      struct cs_usage_stats got;
      uint8_t buf[CS_USAGE_IDX_LEN];
      bool has = false;
      cs_usage_idx_encode(m, &cases[i], buf);
      assert_int_equal(cs_usage_idx_decode(buf, sizeof buf, &got_m, &got, &has), CS_OK);
      assert_true(has);
      assert_int_equal(got_m, m);
      assert_true(got.count == cases[i].count && got.seen == cases[i].seen &&
                  got.last == cases[i].last);
    }
}

/* Every prefix of a valid entry is refused, except the empty one, which is
 * the old format's "secret" entry and reads as such (no stats). */
static void test_usage_idx_truncations(void **state)
{
  struct cs_usage_stats s = {12, 3, 1764590000}, out = {99, 99, 99};
  enum cs_usage_material m = CS_MATERIAL_TOKEN;
  uint8_t buf[CS_USAGE_IDX_LEN + 1];
  bool has = true;

  (void)state;
  cs_usage_idx_encode(CS_MATERIAL_TOKEN, &s, buf);
  for (size_t len = 1; len < CS_USAGE_IDX_LEN; len++) {
    assert_int_equal(cs_usage_idx_decode(buf, len, &m, &out, &has), CS_ERR_STORE);
    assert_true(out.count == 99 && has); /* outputs untouched */
  }
  /* One byte too many is refused too. */
  buf[CS_USAGE_IDX_LEN] = 0;
  assert_int_equal(cs_usage_idx_decode(buf, CS_USAGE_IDX_LEN + 1, &m, &out, &has), CS_ERR_STORE);
  assert_int_equal(cs_usage_idx_decode(buf, 0, &m, &out, &has), CS_OK);
  assert_false(has);
  assert_int_equal(m, CS_MATERIAL_SECRET);
}

static void test_usage_idx_old_and_corrupt(void **state)
{
  struct cs_usage_stats s = {5, 2, 1764590000}, out;
  enum cs_usage_material m;
  uint8_t good[CS_USAGE_IDX_LEN], bad[CS_USAGE_IDX_LEN];
  bool has = true;

  (void)state;
  assert_int_equal(cs_usage_idx_decode("t", 1, &m, &out, &has), CS_OK);
  assert_int_equal(m, CS_MATERIAL_TOKEN);
  assert_false(has);
  assert_true(out.count == 0 && out.seen == 0 && out.last == 0);
  has = true;
  assert_int_equal(cs_usage_idx_decode("", 0, &m, &out, &has), CS_OK);
  assert_int_equal(m, CS_MATERIAL_SECRET);
  assert_false(has);
  /* A one-byte entry other than "t" was never written. */
  assert_int_equal(cs_usage_idx_decode("s", 1, &m, &out, &has), CS_ERR_STORE);
  assert_int_equal(cs_usage_idx_decode("S", 1, &m, &out, &has), CS_ERR_STORE);

  cs_usage_idx_encode(CS_MATERIAL_SECRET, &s, good);
  /* Header bytes: magic, version, material; and a negative time. */
  static const struct {
    size_t at;
    uint8_t v;
  } flips[] = {{0, 's'}, {0, 0}, {1, 0}, {1, 2}, {1, 0xff}, {2, 'x'}, {2, 0}, {2, 'T'}, {19, 0x80}};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    memcpy(bad, good, sizeof bad);
    bad[flips[i].at] = flips[i].v;
    assert_int_equal(cs_usage_idx_decode(bad, sizeof bad, &m, &out, &has), CS_ERR_STORE);
  }
}

/* ----------------------------------------------- usage stats in the store */

/* Register a usage of a new ibmCloud credential @p cred; its id to @p uid. */
static void add_usage(struct fx *f, const char *cred, enum cs_usage_material mat, char uid[32])
{
  cJSON *b = cJSON_Parse("{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
                         "\"secret\":{\"plain\":\"k\"}}");
  struct cs_cred_put in = {cred, b, false, false, 0, &f->who, &f->actor, false, false, NULL};
  struct cs_cred_put_result r;
  struct cs_usage_new un = {cred, "Registry Scan", "nightly", NULL, mat};
  cJSON *u = NULL;

  assert_non_null(b);
  assert_int_equal(cs_creds_put(&f->core, &in, &r), CS_OK);
  cJSON_Delete(b);
  free(r.json);
  assert_int_equal(cs_usages_create(&f->core, &f->actor, &un, &u), CS_OK);
  snprintf(uid, 32, "%s", cJSON_GetObjectItem(u, "id")->valuestring);
  cJSON_Delete(u);
}

/* The raw value of @p key in table @p t (copied; caller frees), length to *len. */
static char *raw_get(struct fx *f, enum cs_table t, const void *key, size_t klen, size_t *len)
{
  struct cs_txn *txn;
  struct cs_val v;
  char *out = NULL;

  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  if (cs_txn_get(txn, t, key, klen, &v) == CS_OK) {
    out = malloc(v.len + 1);
    assert_non_null(out);
    memcpy(out, v.data, v.len);
    out[v.len] = '\0';
    *len = v.len;
  }
  cs_store_read_end(txn);
  return out;
}

struct raw_put {
  enum cs_table t;
  const void *key, *val;
  size_t klen, vlen;
  unsigned flags;
};

static enum cs_err raw_put_txn(struct cs_txn *txn, void *arg)
{
  struct raw_put *p = arg;
  return cs_txn_put(txn, p->t, p->key, p->klen, p->val, p->vlen, p->flags);
}

static enum cs_err raw_put(struct fx *f, enum cs_table t, const void *key, size_t klen,
                           const void *val, size_t vlen, unsigned flags)
{
  struct raw_put p = {t, key, val, klen, vlen, flags};
  return cs_core_write(&f->core, raw_put_txn, &p);
}

static size_t ikey(const char *cred, const char *uid, char out[128])
{
  size_t a = strlen(cred), b = strlen(uid);
  memcpy(out, cred, a + 1);
  memcpy(out + a + 1, uid, b);
  return a + 1 + b;
}

/* Record one resolve of @p cred for @p uid at @p version: its audit entry
 * and stats, as the resolve's queued write does. */
static enum cs_err record_resolve(struct fx *f, const char *cred, const char *uid, uint64_t version)
{
  struct cs_usage_seen s;
  cs_usage_seen_init(&s, &f->core, &f->actor, cred, uid, version, "success");
  return cs_core_write(&f->core, cs_usage_seen_txn, &s);
}

/* The one usage of @p cred as listed (caller deletes). */
static cJSON *listed(struct fx *f, const char *cred)
{
  cJSON *arr = NULL, *u;
  assert_int_equal(cs_usages_list(&f->core, cred, &arr), CS_OK);
  assert_int_equal(cJSON_GetArraySize(arr), 1);
  u = cJSON_DetachItemFromArray(arr, 0);
  cJSON_Delete(arr);
  return u;
}

static double num(const cJSON *o, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  assert_true(cJSON_IsNumber(v));
  return v->valuedouble;
}

/* A stats write rewrites the index entry only: the JSON record's bytes stay
 * as they were, and hold no stats member. */
static void test_stats_write_leaves_json(void **state)
{
  struct fx *f = *state;
  char uid[32], k[128];
  size_t len0 = 0, len1 = 0, ilen = 0;
  struct cs_usage_stats s;
  enum cs_usage_material m;
  bool has = false;

  add_usage(f, "st-1", CS_MATERIAL_TOKEN, uid);
  char *before = raw_get(f, CS_TBL_USAGES, uid, strlen(uid), &len0);
  assert_non_null(before);
  assert_null(strstr(before, "resolveCount"));
  assert_null(strstr(before, "lastResolvedAt"));
  for (int i = 0; i < 3; i++)
    assert_int_equal(record_resolve(f, "st-1", uid, 1), CS_OK);
  char *after = raw_get(f, CS_TBL_USAGES, uid, strlen(uid), &len1);
  assert_true(len0 == len1 && memcmp(before, after, len0) == 0);
  char *idx = raw_get(f, CS_TBL_USAGES_BY_CRED, k, ikey("st-1", uid, k), &ilen);
  assert_int_equal(ilen, CS_USAGE_IDX_LEN);
  assert_int_equal(cs_usage_idx_decode(idx, ilen, &m, &s, &has), CS_OK);
  assert_true(has && m == CS_MATERIAL_TOKEN && s.count == 3 && s.seen == 1 && s.last > 0);
  cJSON *u = listed(f, "st-1");
  assert_int_equal(num(u, "resolveCount"), 3);
  assert_int_equal(num(u, "seenVersion"), 1);
  assert_string_equal(cJSON_GetObjectItem(u, "material")->valuestring, "token");
  assert_true(cJSON_IsString(cJSON_GetObjectItem(u, "lastResolvedAt")));
  cJSON_Delete(u);
  free(before);
  free(after);
  free(idx);
}

/* A usage stored before the stats moved (stats in its JSON, index entry ""
 * or "t") lists as it was, and its next stats write converts it: counts go
 * on from the old ones, the JSON loses its stats members. */
static void test_old_format_read_and_converted(void **state)
{
  struct fx *f = *state;
  static const char *const olds[] = {"", "t"};
  char uid[32], k[128], rec[512];

  for (int t = 0; t < 2; t++) {
    char cred[16];
    size_t len = 0, klen;
    snprintf(cred, sizeof cred, "old-%d", t);
    add_usage(f, cred, t ? CS_MATERIAL_TOKEN : CS_MATERIAL_SECRET, uid);
    klen = ikey(cred, uid, k);
    snprintf(rec, sizeof rec,
             "{\"id\":\"%s\",\"credentialId\":\"%s\",\"type\":\"Registry Scan\","
             "\"description\":\"nightly\"%s,\"createdAt\":1700000000,\"owner\":\"k\","
             "\"seenVersion\":1,\"resolveCount\":41,\"lastResolvedAt\":1700000100}",
             uid, cred, t ? ",\"material\":\"token\"" : "");
    assert_int_equal(raw_put(f, CS_TBL_USAGES, uid, strlen(uid), rec, strlen(rec), 0), CS_OK);
    assert_int_equal(raw_put(f, CS_TBL_USAGES_BY_CRED, k, klen, olds[t], t, 0), CS_OK);

    cJSON *u = listed(f, cred);
    assert_int_equal(num(u, "resolveCount"), 41);
    assert_string_equal(cJSON_GetObjectItem(u, "lastResolvedAt")->valuestring,
                        "2023-11-14T22:15:00Z");
    assert_string_equal(cJSON_GetObjectItem(u, "material")->valuestring, t ? "token" : "secret");
    cJSON_Delete(u);

    assert_int_equal(record_resolve(f, cred, uid, 2), CS_OK);
    u = listed(f, cred);
    assert_int_equal(num(u, "resolveCount"), 42);
    assert_int_equal(num(u, "seenVersion"), 2);
    assert_string_equal(cJSON_GetObjectItem(u, "material")->valuestring, t ? "token" : "secret");
    cJSON_Delete(u);
    char *json = raw_get(f, CS_TBL_USAGES, uid, strlen(uid), &len);
    assert_non_null(json);
    assert_null(strstr(json, "resolveCount"));
    assert_non_null(strstr(json, "\"owner\":\"k\""));
    free(json);
    char *idx = raw_get(f, CS_TBL_USAGES_BY_CRED, k, klen, &len);
    assert_int_equal(len, CS_USAGE_IDX_LEN);
    free(idx);
  }
}

/* A corrupt index entry fails the listing and the resolve's check (never a
 * usage with made-up stats), and a stats write refuses to touch it. */
static void test_corrupt_index_refused(void **state)
{
  struct fx *f = *state;
  char uid[32], k[128];
  size_t klen;
  enum cs_usage_material m;
  struct cs_txn *txn;
  cJSON *arr = NULL;

  add_usage(f, "bad-1", CS_MATERIAL_SECRET, uid);
  klen = ikey("bad-1", uid, k);
  assert_int_equal(raw_put(f, CS_TBL_USAGES_BY_CRED, k, klen, "Sx", 2, 0), CS_OK);
  assert_int_equal(cs_usages_list(&f->core, "bad-1", &arr), CS_ERR_STORE);
  assert_null(arr);
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_usage_check(txn, "bad-1", uid, &m), CS_ERR_STORE);
  cs_store_read_end(txn);
  assert_int_equal(record_resolve(f, "bad-1", uid, 1), CS_ERR_STORE);
}

/* ------------------------------------------------------ audit entry print */

/* The entry JSON as audit.c built it with cJSON before: the oracle. */
static char *entry_cjson(const char *chain, uint64_t seq, const uint8_t prev[CS_HASH_BYTES],
                         int64_t at, const struct cs_actor *a, const char *action,
                         const char *target, const char *result)
{
  char prev_hex[2 * CS_HASH_BYTES + 1], when[32];
  char *text = NULL;
  cJSON *j = cJSON_CreateObject();

  cs_hex(prev, CS_HASH_BYTES, prev_hex);
  cs_time_format(at, when);
  bool ok = j && (chain[0] ? cJSON_AddStringToObject(j, "node", chain) &&
                                 cJSON_AddNumberToObject(j, "chainSeq", (double)seq)
                           : cJSON_AddNumberToObject(j, "seq", (double)seq) != NULL);
  if (ok && cJSON_AddStringToObject(j, "at", when) &&
      cJSON_AddStringToObject(j, "actor", a && a->key_id ? a->key_id : "") &&
      cJSON_AddStringToObject(j, "role", a && a->role ? a->role : "") &&
      cJSON_AddStringToObject(j, "action", action) &&
      cJSON_AddStringToObject(j, "target", target ? target : "") &&
      cJSON_AddStringToObject(j, "result", result) &&
      cJSON_AddStringToObject(j, "remote", a && a->remote ? a->remote : "") &&
      cJSON_AddStringToObject(j, "prevHash", prev_hex))
    text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  assert_non_null(text);
  return text;
}

static void same_entry(const char *chain, uint64_t seq, int64_t at, const struct cs_actor *a,
                       const char *action, const char *target, const char *result)
{
  uint8_t prev[CS_HASH_BYTES];
  struct cs_buf b;

  for (size_t i = 0; i < sizeof prev; i++)
    prev[i] = (uint8_t)(seq * 31 + i * 7);
  cs_buf_init(&b, 1u << 16);
  char *want = entry_cjson(chain, seq, prev, at, a, action, target, result);
  assert_int_equal(cs_audit_entry_print(&b, chain, seq, prev, at, a, action, target, result),
                   CS_OK);
  assert_string_equal(b.data, want);
  assert_int_equal(b.len, strlen(want));
  free(want);
  cs_buf_free(&b);
}

static void test_audit_entry_bytes(void **state)
{
  static const uint64_t seqs[] = {0,
                                  1,
                                  9,
                                  10,
                                  INT_MAX,
                                  (uint64_t)INT_MAX + 1,
                                  999999999999999ull,
                                  1000000000000000ull,
                                  1234567890123456789ull,
                                  (1ull << 53) + 1,
                                  UINT64_MAX};
  char ctl[64], *p = ctl;
  struct cs_actor a = {"ak-1", "admin", "127.0.0.1"}, odd = {"k\"\\/\x7f", "re\bad\fer", "::1"};
  struct cs_actor none = {NULL, NULL, NULL};

  (void)state;
  for (int c = 1; c < 0x20; c++)
    *p++ = (char)c;
  static const char tail[] = "\"\\/\x7f end";
  memcpy(p, tail, sizeof tail);
  for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
    same_entry("", seqs[i], 1764590000, &a, "resolve", "aws-role", "success");
    same_entry("node-a", seqs[i], 1764590000, &a, "resolve", "aws-role", "success");
  }
  same_entry("", 7, 0, &a, "create", ctl, "success");
  same_entry("n\"o\\de\n", 7, 1, &odd, "auth", ctl, "failure");
  same_entry("", 3, 1764590000, &a, "update",
             "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x94\x91", "unchanged");
  same_entry("", 3, 1764590000, &a, "auth", "\xff\xfe not utf-8", "failure");
  same_entry("", 4, 1764590000, NULL, "keyring_rotate", NULL, "success");
  same_entry("cli@host", 4, 1764590000, &none, "audit_prune", "", "success");
}

/* ------------------------------------------------------------ event print */

/* The event JSON as events.c built it with cJSON before: the oracle. */
static char *event_cjson(bool with_seq, uint64_t seq, const char *type, const char *cred_id,
                         uint64_t version, int64_t at)
{
  char when[32], *text = NULL;
  cJSON *j = cJSON_CreateObject();

  cs_time_format(at, when);
  if (j && (!with_seq || cJSON_AddNumberToObject(j, "seq", (double)seq)) &&
      cJSON_AddStringToObject(j, "type", type) &&
      cJSON_AddStringToObject(j, "credentialId", cred_id) &&
      cJSON_AddNumberToObject(j, "version", (double)version) &&
      cJSON_AddStringToObject(j, "at", when))
    text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  assert_non_null(text);
  return text;
}

static void same_event(bool with_seq, uint64_t seq, const char *type, const char *cred_id,
                       uint64_t version, int64_t at)
{
  struct cs_buf b;
  char *want = event_cjson(with_seq, seq, type, cred_id, version, at);

  cs_buf_init(&b, 1u << 16);
  assert_int_equal(cs_event_print(&b, with_seq, seq, type, cred_id, version, at), CS_OK);
  assert_string_equal(b.data, want);
  assert_int_equal(b.len, strlen(want));
  free(want);
  cs_buf_free(&b);
}

static void test_event_bytes(void **state)
{
  static const uint64_t nums[] = {0,
                                  1,
                                  10,
                                  (uint64_t)INT_MAX + 1,
                                  999999999999999ull,
                                  1000000000000000ull,
                                  (1ull << 53) + 1,
                                  UINT64_MAX};
  static const char *ids[] = {
      "aws-role",           "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x94\x91",
      "q\"u\\o/te\x7f",     "\x01\x1f\b\f\n\r\t",
      "\xff\xfe not utf-8", ""};
  char big[CS_NAME_MAX + 1], mem[6 * CS_NAME_MAX + 256];
  struct cs_buf fixed;

  (void)state;
  for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
    for (size_t k = 0; k < sizeof ids / sizeof *ids; k++) {
      same_event(true, nums[i], "created", ids[k], nums[(i + k) % 8], 1764590000);
      same_event(false, nums[i], "usage_removed", ids[k], nums[i], (int64_t)k);
    }
  /* The longest name, every byte escaped, fits the buffer cs_event_append uses. */
  memset(big, '\x01', CS_NAME_MAX);
  big[CS_NAME_MAX] = '\0';
  same_event(true, UINT64_MAX, "usage_removed", big, UINT64_MAX, INT64_MAX / 2);
  fixed = cs_buf_fixed(mem, sizeof mem);
  assert_int_equal(
      cs_event_print(&fixed, true, UINT64_MAX, "usage_removed", big, UINT64_MAX, 1764590000),
      CS_OK);
  fixed = cs_buf_fixed(mem, 64); /* past the buffer's max: refused, not cut */
  assert_int_equal(cs_event_print(&fixed, true, 1, "created", big, 1, 1764590000),
                   CS_ERR_TOO_LARGE);
}

/* An entry too long for the stack buffer (a long escaped target) is built
 * on the heap: still appended, chained and read back whole. */
static void test_audit_long_entry(void **state)
{
  struct fx *f = *state;
  char target[1500];
  uint64_t n = 0, bad = 0;
  struct cs_audit_anchor anchor;
  cJSON *entries = NULL;
  uint64_t next = 0;
  struct cs_view v = {0};

  memset(target, '\x01', sizeof target - 1); /* 6 bytes each escaped */
  target[sizeof target - 1] = '\0';
  assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", target, "failure"), CS_OK);
  assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", "short", "failure"), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_OK);
  assert_int_equal(n, 2);
  assert_int_equal(cs_audit_read(&f->core, &v, 0, 10, &entries, &next), CS_OK);
  assert_int_equal(cJSON_GetArraySize(entries), 2);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 0), "target")->valuestring,
                      target);
  cJSON_Delete(entries);
}

/* cs_buf_u64 prints what "%" PRIu64 prints (audit seqs, broker keys). */
static void test_buf_u64(void **state)
{
  static const uint64_t vals[] = {
      0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u, UINT64_MAX - 1, UINT64_MAX};
  char want[32], mem[8];
  struct cs_buf b;

  (void)state;
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    cs_buf_init(&b, 64);
    assert_int_equal(cs_buf_append(&b, "x", 1), CS_OK);
    assert_int_equal(cs_buf_u64(&b, vals[i]), CS_OK);
    snprintf(want, sizeof want, "x%" PRIu64, vals[i]);
    assert_string_equal(b.data, want);
    cs_buf_free(&b);
  }
  b = cs_buf_fixed(mem, sizeof mem); /* 7 bytes: 20 digits do not fit, nothing written */
  assert_int_equal(cs_buf_u64(&b, UINT64_MAX), CS_ERR_TOO_LARGE);
  assert_int_equal(b.len, 0);
}

/* ------------------------------------------------------------ append flag */

static void test_put_append(void **state)
{
  struct fx *f = *state;
  uint8_t k1[8], k2[8], k3[8];
  size_t len = 0;

  cs_store_seq_key(5, k1);
  cs_store_seq_key(6, k2);
  cs_store_seq_key(3, k3);
  assert_int_equal(raw_put(f, CS_TBL_DEAD, k1, 8, "a", 1, CS_PUT_APPEND), CS_OK);
  assert_int_equal(raw_put(f, CS_TBL_DEAD, k2, 8, "b", 1, CS_PUT_APPEND | CS_PUT_NO_OVERWRITE),
                   CS_OK);
  /* A key that does not sort last, or the last one again, is refused. */
  assert_int_equal(raw_put(f, CS_TBL_DEAD, k3, 8, "c", 1, CS_PUT_APPEND), CS_ERR_EXISTS);
  assert_int_equal(raw_put(f, CS_TBL_DEAD, k2, 8, "d", 1, CS_PUT_APPEND), CS_ERR_EXISTS);
  assert_null(raw_get(f, CS_TBL_DEAD, k3, 8, &len));
  char *v = raw_get(f, CS_TBL_DEAD, k2, 8, &len);
  assert_string_equal(v, "b");
  free(v);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_usage_idx_round_trip),
      cmocka_unit_test(test_usage_idx_truncations),
      cmocka_unit_test(test_usage_idx_old_and_corrupt),
      cmocka_unit_test_setup_teardown(test_stats_write_leaves_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_old_format_read_and_converted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_index_refused, setup, teardown),
      cmocka_unit_test(test_audit_entry_bytes),
      cmocka_unit_test(test_event_bytes),
      cmocka_unit_test_setup_teardown(test_audit_long_entry, setup, teardown),
      cmocka_unit_test(test_buf_u64),
      cmocka_unit_test_setup_teardown(test_put_append, setup, teardown),
  };
  if (cs_crypto_init())
    return 1;
  cs_log_min_level = CS_LOG_OFF;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
