/* cmocka tests of server/core/ against a real LMDB store in a temporary
 * directory, no daemon: the credential put rules (kept secret, If-Match,
 * type change), delete against usages, usage stats, the audit chain
 * (append, verify, tampering), event paging and long-poll wake-ups, outbox
 * queueing, scope checks, keys and tokens, and the rewrap pass. Each case
 * gets a fresh store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AWS_KEY "AKIAIOSFODNN7EXAMPLE"
#define AWS_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

/* ------------------------------------------------------------- helpers */

static cJSON *json(const char *text)
{
  cJSON *j = cJSON_Parse(text);
  assert_non_null(j);
  return j;
}

static enum cs_err put_full(struct fx *f, const char *id, const char *body, bool must_exist,
                            const uint64_t *if_match, struct cs_cred_put_result *r)
{
  cJSON *b = json(body);
  struct cs_cred_put in = {
      id,    b,     must_exist, if_match != NULL, if_match ? *if_match : 0, &f->who, &f->actor,
      false, false, NULL};
  enum cs_err e = cs_creds_put(&f->core, &in, r);
  cJSON_Delete(b);
  return e;
}

/* A put's rendered text as a tree (caller deletes); the text is freed, and
 * must be byte for byte what cJSON prints of it (today's response) and
 * what GET sends. */
static cJSON *put_tree(struct fx *f, struct cs_cred_put_result *r)
{
  char *get = NULL, *printed;
  size_t get_len = 0;
  cJSON *t;

  assert_non_null(r->json);
  assert_int_equal(strlen(r->json), r->json_len);
  t = json(r->json);
  printed = cJSON_PrintUnformatted(t);
  assert_string_equal(r->json, printed);
  if (cs_creds_get(&f->core, r->id, &get, &get_len) == CS_OK) /* unless since deleted */
    assert_string_equal(r->json, get);
  free(get);
  free(printed);
  free(r->json);
  r->json = NULL;
  return t;
}

/* Create or update; the rendered credential is returned (caller deletes). */
static cJSON *put_ok(struct fx *f, const char *id, const char *body)
{
  struct cs_cred_put_result r;
  assert_int_equal(put_full(f, id, body, false, NULL, &r), CS_OK);
  return put_tree(f, &r);
}

/* cs_creds_get as a tree; the text must be exactly what it says it is. */
static enum cs_err get_cred(struct fx *f, const char *id, cJSON **out)
{
  char *text = NULL;
  size_t len = 0;
  enum cs_err e = cs_creds_get(&f->core, id, &text, &len);
  if (e)
    return e;
  assert_int_equal(strlen(text), len);
  *out = json(text);
  free(text);
  return CS_OK;
}

/* cs_creds_list as a tree. */
static enum cs_err list_creds(struct fx *f, const struct cs_cred_query *q, cJSON **page,
                              uint64_t *total)
{
  char *text = NULL;
  size_t len = 0;
  enum cs_err e = cs_creds_list(&f->core, q, &text, &len, total);
  if (e)
    return e;
  assert_int_equal(strlen(text), len);
  *page = json(text);
  assert_true(cJSON_IsArray(*page));
  free(text);
  return CS_OK;
}

static const char *str(const cJSON *o, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  assert_true(cJSON_IsNumber(v));
  return v->valuedouble;
}

/* Does the printed @p j contain @p text? */
static bool contains(const cJSON *j, const char *text)
{
  char *p = cJSON_PrintUnformatted(j);
  bool found;
  assert_non_null(p);
  found = strstr(p, text) != NULL;
  free(p);
  return found;
}

static const char *fingerprint(const cJSON *cred)
{
  return str(cJSON_GetObjectItemCaseSensitive(cred, "secret"), "encrypted");
}

static const char *ibm_body(const char *secret)
{
  static char buf[256];
  snprintf(buf, sizeof buf,
           "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\""
           "%s%s%s}",
           secret ? ",\"secret\":{\"plain\":\"" : "", secret ? secret : "", secret ? "\"}" : "");
  return buf;
}

/* Register a usage; its id goes to @p uid. */
static void add_usage(struct fx *f, const char *cred, const char *url, char uid[32])
{
  struct cs_usage_new in = {cred, "Registry Scan", "nightly", url, CS_MATERIAL_SECRET};
  cJSON *u = NULL;
  assert_int_equal(cs_usages_create(&f->core, &f->actor, &in, &u), CS_OK);
  snprintf(uid, 32, "%s", str(u, "id"));
  assert_int_equal(cJSON_IsString(cJSON_GetObjectItem(u, "callbackSecret")), url != NULL);
  cJSON_Delete(u);
}

static enum cs_err resolve(struct fx *f, const char *cred, const char *uid,
                           const struct cs_resolve_opts *o, cJSON **m, struct cs_net_error *fail)
{
  struct cs_resolve_req in = {cred, uid, NULL, {0}};
  if (o)
    in.opts = *o;
  return cs_resolve(&f->core, &f->actor, &in, m, fail);
}

/* The usage @p uid of @p cred as listed. */
static cJSON *usage_of(struct fx *f, const char *cred, const char *uid)
{
  cJSON *arr = NULL, *u, *found = NULL;
  assert_int_equal(cs_usages_list(&f->core, cred, &arr), CS_OK);
  cJSON_ArrayForEach(u, arr)
  {
    if (strcmp(str(u, "id"), uid) == 0)
      found = cJSON_Duplicate(u, true);
  }
  cJSON_Delete(arr);
  assert_non_null(found);
  return found;
}

static uint64_t audit_count(struct fx *f)
{
  uint64_t n = 0, bad = 0;
  struct cs_audit_anchor anchor;
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_OK);
  return n;
}

/* ------------------------------------------------------------ credentials */

static void test_put_create_and_update(void **state)
{
  struct fx *f = *state;
  cJSON *c = put_ok(f, "ibm-1", ibm_body("key-one"));

  assert_string_equal(str(c, "_id"), "ibm-1");
  assert_string_equal(str(c, "type"), "ibmCloud");
  assert_int_equal(num(c, "version"), 1);
  assert_string_equal(str(c, "owner"), f->who.key_id);
  assert_non_null(fingerprint(c));
  assert_false(contains(c, "key-one"));
  cJSON_Delete(c);
  c = put_ok(f, "ibm-1", ibm_body("key-two"));
  assert_int_equal(num(c, "version"), 2);
  cJSON_Delete(c);
  /* create, update: two audit entries besides none from init. */
  assert_int_equal(audit_count(f), 2);
}

static void test_put_keeps_secret(void **state)
{
  struct fx *f = *state;
  struct cs_cred_put_result r;
  char uid[32], body[512];
  cJSON *c = put_ok(f, "ibm-k", ibm_body("kept-secret"));
  char fp[64];
  snprintf(fp, sizeof fp, "%s", fingerprint(c));
  cJSON_Delete(c);

  /* Omitted on update: the stored secret stays, and so does its fingerprint. */
  c = put_ok(f, "ibm-k", ibm_body(NULL));
  assert_string_equal(fingerprint(c), fp);
  cJSON_Delete(c);
  /* Sent back as secret.encrypted: the same. */
  snprintf(body, sizeof body,
           "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
           "\"secret\":{\"encrypted\":\"%s\"}}",
           fp);
  c = put_ok(f, "ibm-k", body);
  assert_string_equal(fingerprint(c), fp);
  cJSON_Delete(c);
  add_usage(f, "ibm-k", NULL, uid);
  cJSON *m = NULL;
  struct cs_net_error fail;
  assert_int_equal(resolve(f, "ibm-k", uid, NULL, &m, &fail), CS_OK);
  assert_string_equal(str(m, "apiKey"), "kept-secret");
  cs_json_wipe_delete(m);
  /* Another credential's (or a made-up) encrypted value is refused. */
  snprintf(body, sizeof body,
           "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
           "\"secret\":{\"encrypted\":\"v1.00000000000000000000000000000000\"}}");
  assert_int_equal(put_full(f, "ibm-k", body, false, NULL, &r), CS_ERR_INVALID);
  assert_string_equal(r.perr.field, "secret.encrypted");
  /* On create there is nothing to keep. */
  snprintf(body, sizeof body,
           "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
           "\"secret\":{\"encrypted\":\"%s\"}}",
           fp);
  assert_int_equal(put_full(f, "ibm-new", body, false, NULL, &r), CS_ERR_INVALID);
  assert_string_equal(r.perr.field, "secret.encrypted");
  /* A new plain secret gets a new fingerprint. */
  c = put_ok(f, "ibm-k", ibm_body("rotated"));
  assert_string_not_equal(fingerprint(c), fp);
  cJSON_Delete(c);
}

/* The /prisma upsert (skip_unchanged): the same secret and fields write only
 * an audit entry; the native upsert still bumps the version. Empty secret
 * objects keep the secret; a new plain wins over an echo beside it. */
static void test_put_unchanged_and_empty_secrets(void **state)
{
  struct fx *f = *state;
  struct cs_cred_put_result r;
  cJSON *c = put_ok(f, "pr-1", ibm_body("s-1")), *b;
  char fp[64], body[512];
  uint64_t audits;
  snprintf(fp, sizeof fp, "%s", fingerprint(c));
  cJSON_Delete(c);

  /* Native: the same body again is an update with a new version, same encrypted. */
  c = put_ok(f, "pr-1", ibm_body("s-1"));
  assert_int_equal((int)num(c, "version"), 2);
  assert_string_equal(fingerprint(c), fp);
  cJSON_Delete(c);
  /* Mount: the same again changes nothing but the audit trail. */
  audits = audit_count(f);
  b = json(ibm_body("s-1"));
  struct cs_cred_put in = {"pr-1", b, false, false, 0, &f->who, &f->actor, true, false, NULL};
  assert_int_equal(cs_creds_put(&f->core, &in, &r), CS_OK);
  assert_true(r.unchanged);
  assert_null(r.json);
  assert_int_equal(audit_count(f), audits + 1);
  cJSON_Delete(b);
  /* Mount: a changed field is an update. */
  b = json("{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
           "\"secret\":{\"plain\":\"s-1\"},\"url\":\"https://x\"}");
  in.body = b;
  assert_int_equal(cs_creds_put(&f->core, &in, &r), CS_OK);
  assert_false(r.unchanged);
  c = put_tree(f, &r);
  assert_int_equal((int)num(c, "version"), 3);
  assert_string_equal(str(c, "url"), "https://x");
  cJSON_Delete(c);
  cJSON_Delete(b);
  /* Every empty spelling keeps the secret, in either field. */
  const char *empties[] = {"{}", "{\"encrypted\":\"\"}", "{\"plain\":\"\",\"encrypted\":\"\"}"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(body, sizeof body,
             "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\",\"secret\":%s,"
             "\"apiToken\":%s}",
             empties[i], empties[(i + 1) % 3]);
    c = put_ok(f, "pr-1", body);
    assert_string_equal(fingerprint(c), fp);
    cJSON_Delete(c);
  }
  /* A new plain beside a stale echo: the plain wins. */
  snprintf(body, sizeof body,
           "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
           "\"secret\":{\"encrypted\":\"v1.stale\",\"plain\":\"s-2\"}}");
  c = put_ok(f, "pr-1", body);
  assert_string_not_equal(fingerprint(c), fp);
  cJSON_Delete(c);
  /* A Prisma field of the wrong type names itself. */
  assert_int_equal(put_full(f, "pr-1",
                            "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\","
                            "\"skipVerify\":\"yes\"}",
                            false, NULL, &r),
                   CS_ERR_INVALID);
  assert_string_equal(r.perr.field, "skipVerify");
}

/* A put's response is the text GET renders, byte for byte what cJSON
 * printed of it before (put_tree checks both), whatever the fields hold:
 * escapes, unicode, nested values, numbers; without a body to answer
 * (no_render) it writes as before and renders nothing. */
static void test_put_renders_text(void **state)
{
  struct fx *f = *state;
  struct cs_cred_put_result r;
  const char *bodies[] = {
      "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\",\"url\":\"h/\\\"q\\\\"
      "\\n\\t\\u0001\\u001f\\u007f\",\"secret\":{\"plain\":\"s\"}}",
      "{\"type\":\"ibmCloud\",\"accountGUID\":\"0123456789abcdef\",\"url\":"
      "\"caf\\u00e9-\xe6\x97\xa5\xe6\x9c\xac-\\ud83d\\udd11\",\"skipVerify\":true,"
      "\"useAWSRole\":false,\"secret\":{\"plain\":\"s\"}}",
  };
  cJSON *c;

  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    c = put_ok(f, "ibm-text", bodies[i]);
    assert_int_equal(num(c, "version"), (double)(i + 1));
    cJSON_Delete(c);
  }
  c = put_ok(f, "caf\xc3\xa9-\xe6\x97\xa5", ibm_body("s"));
  assert_string_equal(str(c, "_id"), "caf\xc3\xa9-\xe6\x97\xa5");
  cJSON_Delete(c);

  cJSON *b = json(ibm_body("t"));
  struct cs_cred_put in = {"ibm-text", b, false, false, 0, &f->who, &f->actor, false, true, NULL};
  assert_int_equal(cs_creds_put(&f->core, &in, &r), CS_OK);
  assert_null(r.json);
  assert_false(r.created);
  cJSON_Delete(b);
  assert_int_equal(get_cred(f, "ibm-text", &c), CS_OK);
  assert_int_equal(num(c, "version"), 3);
  cJSON_Delete(c);
}

/* given_body: the job takes the tree on CS_OK (ASan/valgrind see it freed
 * once, with the job) and leaves it the caller's on a refusal. */
static void test_put_given_body(void **state)
{
  struct fx *f = *state;
  struct cs_cred_put_result r;
  struct cs_core_job *job = NULL;
  struct cs_cred_put in = {"ibm-given", NULL,      false, false, 0,
                           &f->who,     &f->actor, false, false, json(ibm_body("s"))};
  cJSON *c;

  assert_int_equal(cs_creds_put_start(&f->core, &in, NULL, &job, &r), CS_OK);
  assert_int_equal(cs_creds_put_finish(job, &r), CS_OK);
  assert_true(r.created);
  c = put_tree(f, &r);
  assert_int_equal(num(c, "version"), 1);
  cJSON_Delete(c);
  cs_core_job_free(job); /* frees the given tree */
  /* Refused (a stale If-Match, an unknown type): still the caller's. */
  in.has_if_match = true;
  in.if_match = 7;
  in.given_body = json(ibm_body("t"));
  job = NULL;
  assert_int_equal(cs_creds_put_start(&f->core, &in, NULL, &job, &r), CS_ERR_PRECONDITION);
  assert_null(job);
  assert_string_equal(str(in.given_body, "type"), "ibmCloud");
  cJSON_Delete(in.given_body);
  in.has_if_match = false;
  in.given_body = json("{\"type\":\"nope\"}");
  assert_int_equal(cs_creds_put_start(&f->core, &in, NULL, &job, &r), CS_ERR_INVALID);
  assert_null(job);
  assert_string_equal(str(in.given_body, "type"), "nope");
  cJSON_Delete(in.given_body);
}

static void test_put_if_match_and_must_exist(void **state)
{
  struct fx *f = *state;
  struct cs_cred_put_result r;
  uint64_t v1 = 1, v5 = 5;

  cJSON_Delete(put_ok(f, "ibm-m", ibm_body("s")));
  assert_int_equal(put_full(f, "ibm-m", ibm_body("t"), true, &v5, &r), CS_ERR_PRECONDITION);
  assert_null(r.json);
  assert_int_equal(put_full(f, "ibm-m", ibm_body("t"), true, &v1, &r), CS_OK);
  cJSON *cj = put_tree(f, &r);
  assert_int_equal(num(cj, "version"), 2);
  cJSON_Delete(cj);
  /* The version it named is gone now. */
  assert_int_equal(put_full(f, "ibm-m", ibm_body("u"), true, &v1, &r), CS_ERR_PRECONDITION);
  /* PUT on a missing id. */
  assert_int_equal(put_full(f, "nope", ibm_body("t"), true, NULL, &r), CS_ERR_NOT_FOUND);
  cJSON *c = NULL;
  assert_int_equal(get_cred(f, "nope", &c), CS_ERR_NOT_FOUND);
}

static void test_put_refusals_name_fields(void **state)
{
  struct fx *f = *state;
  struct cs_cred_put_result r;
  uint64_t before;
  char long_desc[1100 + 64], x[1026];

  cJSON_Delete(put_ok(f, "t-1", ibm_body("s")));
  before = audit_count(f);
  /* The type of an existing credential cannot change. */
  assert_int_equal(put_full(f, "t-1",
                            "{\"type\":\"aws\",\"accountID\":\"" AWS_KEY
                            "\",\"secret\":{\"plain\":\"" AWS_SECRET "\"}}",
                            false, NULL, &r),
                   CS_ERR_INVALID);
  assert_string_equal(r.perr.field, "type");
  assert_non_null(strstr(r.perr.msg, "ibmCloud"));
  assert_int_equal(put_full(f, "t-2", "{\"type\":\"ftp\"}", false, NULL, &r), CS_ERR_INVALID);
  assert_string_equal(r.perr.field, "type");
  assert_string_equal(
      r.perr.msg,
      "type must be one of aws, azure, gcp, ibmCloud, kubeconfig, basic, apiToken, certificate");
  memset(x, 'x', sizeof x - 1);
  x[sizeof x - 1] = '\0';
  snprintf(long_desc, sizeof long_desc, "{\"type\":\"ibmCloud\",\"description\":\"%s\"}", x);
  assert_int_equal(put_full(f, "t-2", long_desc, false, NULL, &r), CS_ERR_INVALID);
  assert_string_equal(r.perr.field, "description");
  assert_int_equal(put_full(f, "bad/id", ibm_body("s"), false, NULL, &r), CS_ERR_BAD_ID);
  assert_string_equal(r.perr.field, "_id");
  assert_int_equal(put_full(f, " lead", ibm_body("s"), false, NULL, &r), CS_ERR_BAD_ID);
  assert_int_equal(put_full(f, "..", ibm_body("s"), false, NULL, &r), CS_ERR_BAD_ID);
  /* A provider's own refusal names its field. */
  assert_int_equal(
      put_full(f, "t-3", "{\"type\":\"ibmCloud\",\"secret\":{\"plain\":\"k\"}}", false, NULL, &r),
      CS_ERR_MISSING);
  assert_string_equal(r.perr.field, "accountGUID");
  /* Refused requests change nothing. */
  assert_int_equal(audit_count(f), before);
  cJSON *c = NULL;
  assert_int_equal(get_cred(f, "t-1", &c), CS_OK);
  assert_string_equal(str(c, "type"), "ibmCloud");
  assert_int_equal(num(c, "version"), 1);
  cJSON_Delete(c);
}

static void test_delete_refused_while_in_use(void **state)
{
  struct fx *f = *state;
  cJSON *usages = NULL;
  char uid[32];

  cJSON_Delete(put_ok(f, "d-1", ibm_body("s")));
  add_usage(f, "d-1", NULL, uid);
  assert_int_equal(cs_creds_delete(&f->core, &f->actor, "d-1", &usages), CS_ERR_IN_USE);
  assert_int_equal(cJSON_GetArraySize(usages), 1);
  assert_string_equal(str(cJSON_GetArrayItem(usages, 0), "id"), uid);
  cJSON_Delete(usages);
  /* Another credential's usage id does not remove it. */
  cJSON_Delete(put_ok(f, "d-2", ibm_body("s")));
  assert_int_equal(cs_usages_delete(&f->core, &f->actor, "d-2", uid), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_usages_delete(&f->core, &f->actor, "d-1", uid), CS_OK);
  assert_int_equal(cs_usages_delete(&f->core, &f->actor, "d-1", uid), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_creds_delete(&f->core, &f->actor, "d-1", &usages), CS_OK);
  assert_null(usages);
  assert_int_equal(cs_creds_delete(&f->core, &f->actor, "d-1", &usages), CS_ERR_NOT_FOUND);
  /* No usage of a credential that is gone. */
  struct cs_usage_new in = {"d-1", "x", NULL, NULL, CS_MATERIAL_SECRET};
  cJSON *u = NULL;
  assert_int_equal(cs_usages_create(&f->core, &f->actor, &in, &u), CS_ERR_NOT_FOUND);
  assert_null(u);
}

/* ------------------------------------------------------------- usages */

static void test_usage_stats(void **state)
{
  struct fx *f = *state;
  struct cs_net_error fail;
  char uid[32];
  cJSON *m = NULL, *u;

  cJSON_Delete(put_ok(f, "aws-s",
                      "{\"type\":\"aws\",\"accountID\":\"" AWS_KEY
                      "\",\"secret\":{\"plain\":\"" AWS_SECRET "\"}}"));
  add_usage(f, "aws-s", NULL, uid);
  u = usage_of(f, "aws-s", uid);
  assert_int_equal(num(u, "resolveCount"), 0);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(u, "stale"))); /* resolved nothing yet */
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(u, "lastResolvedAt")));
  cJSON_Delete(u);

  assert_int_equal(resolve(f, "aws-s", uid, NULL, &m, &fail), CS_OK);
  assert_string_equal(str(m, "AccessKeyId"), AWS_KEY);
  assert_string_equal(str(m, "SecretAccessKey"), AWS_SECRET);
  assert_int_equal(num(m, "version"), 1);
  cs_json_wipe_delete(m);
  u = usage_of(f, "aws-s", uid);
  assert_int_equal(num(u, "resolveCount"), 1);
  assert_int_equal(num(u, "seenVersion"), 1);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(u, "stale")));
  assert_non_null(str(u, "lastResolvedAt"));
  cJSON_Delete(u);

  /* An edit makes it stale until it resolves again. */
  cJSON_Delete(put_ok(f, "aws-s", "{\"type\":\"aws\",\"accountID\":\"" AWS_KEY "\"}"));
  u = usage_of(f, "aws-s", uid);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(u, "stale")));
  cJSON_Delete(u);
  assert_int_equal(resolve(f, "aws-s", uid, NULL, &m, &fail), CS_OK);
  cs_json_wipe_delete(m);
  u = usage_of(f, "aws-s", uid);
  assert_int_equal(num(u, "resolveCount"), 2);
  assert_int_equal(num(u, "seenVersion"), 2);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(u, "stale")));
  cJSON_Delete(u);
}

static void test_resolve_refusals_record_nothing(void **state)
{
  struct fx *f = *state;
  struct cs_net_error fail;
  char uid[32], other[32];
  cJSON *m = NULL;
  uint64_t before;

  cJSON_Delete(put_ok(f, "r-1", ibm_body("s")));
  cJSON_Delete(put_ok(f, "r-2", ibm_body("s")));
  add_usage(f, "r-1", NULL, uid);
  add_usage(f, "r-2", NULL, other);
  before = audit_count(f);
  assert_int_equal(resolve(f, "r-1", other, NULL, &m, &fail), CS_ERR_INVALID);
  assert_string_equal(fail.field, "usageId");
  assert_int_equal(resolve(f, "gone", uid, NULL, &m, &fail), CS_ERR_NOT_FOUND);
  struct cs_resolve_opts longer = {.duration_seconds = 7200};
  assert_int_equal(resolve(f, "r-1", uid, &longer, &m, &fail), CS_ERR_INVALID);
  assert_string_equal(fail.field, "durationSeconds");
  struct cs_resolve_opts named = {.session_name = "credstore-someone-else"};
  assert_int_equal(resolve(f, "r-1", uid, &named, &m, &fail), CS_ERR_INVALID);
  assert_string_equal(fail.field, "sessionName");
  struct cs_resolve_req typed = {"r-1", uid, "aws", {0}};
  assert_int_equal(cs_resolve(&f->core, &f->actor, &typed, &m, &fail), CS_ERR_INVALID);
  assert_string_equal(fail.field, "");
  assert_non_null(strstr(fail.message, "ibmCloud"));
  assert_null(m);
  assert_int_equal(audit_count(f), before);
  cJSON *u = usage_of(f, "r-1", uid);
  assert_int_equal(num(u, "resolveCount"), 0);
  cJSON_Delete(u);
  /* Its own derived session name is accepted. */
  char sess[64];
  snprintf(sess, sizeof sess, "credstore-%s", uid);
  struct cs_resolve_opts own = {.session_name = sess};
  assert_int_equal(resolve(f, "r-1", uid, &own, &m, &fail), CS_OK);
  cs_json_wipe_delete(m);
  assert_int_equal(audit_count(f), before + 1);
}

/* A "token" usage: its material is kept across loads and shown; the stored
 * secret is refused before anything is recorded; a format the type has not
 * is the request's fault (recorded nothing either); a test without the
 * network state is unavailable but audited. */
static void test_token_only_usage(void **state)
{
  struct fx *f = *state;
  struct cs_usage_new in = {"t-1", "Cloud Scan", NULL, NULL, CS_MATERIAL_TOKEN};
  struct cs_net_error fail;
  struct cs_test_result tr;
  cJSON *u = NULL, *m = NULL;
  char uid[32], plain[32];

  cJSON_Delete(put_ok(f, "t-1", ibm_body("k")));
  assert_int_equal(cs_usages_create(&f->core, &f->actor, &in, &u), CS_OK);
  assert_string_equal(str(u, "material"), "token");
  snprintf(uid, sizeof uid, "%s", str(u, "id"));
  cJSON_Delete(u);
  add_usage(f, "t-1", NULL, plain);
  u = usage_of(f, "t-1", uid);
  assert_string_equal(str(u, "material"), "token");
  cJSON_Delete(u);
  u = usage_of(f, "t-1", plain);
  assert_string_equal(str(u, "material"), "secret");
  cJSON_Delete(u);
  uint64_t before = audit_count(f);
  assert_int_equal(resolve(f, "t-1", uid, NULL, &m, &fail), CS_ERR_TOKEN_ONLY);
  assert_null(m);
  assert_non_null(strstr(fail.message, uid));
  struct cs_resolve_opts session = {.format = CS_FORMAT_SESSION};
  assert_int_equal(resolve(f, "t-1", uid, &session, &m, &fail), CS_ERR_TOKEN_ONLY);
  assert_int_equal(resolve(f, "t-1", plain, &session, &m, &fail), CS_ERR_INVALID);
  assert_string_equal(fail.field, "format");
  assert_int_equal(audit_count(f), before);
  u = usage_of(f, "t-1", uid);
  assert_int_equal(num(u, "resolveCount"), 0);
  cJSON_Delete(u);
  /* The same usage of secret material resolves. */
  assert_int_equal(resolve(f, "t-1", plain, NULL, &m, &fail), CS_OK);
  assert_string_equal(str(m, "apiKey"), "k");
  cs_json_wipe_delete(m);
  assert_int_equal(audit_count(f), before + 1);
  assert_int_equal(cs_creds_test(&f->core, &f->actor, "t-1", &tr), CS_ERR_UNAVAILABLE);
  assert_int_equal(cs_usage_material_parse("Token", &in.material), CS_ERR_INVALID);
}

/* A role needs STS: without the network state the resolve is attempted,
 * fails, and is audited as a failure. */
static void test_network_resolve_without_network(void **state)
{
  struct fx *f = *state;
  struct cs_net_error fail;
  char uid[32];
  cJSON *m = NULL;

  cJSON_Delete(put_ok(f, "aws-r",
                      "{\"type\":\"aws\",\"accountID\":\"" AWS_KEY
                      "\",\"secret\":{\"plain\":\"" AWS_SECRET
                      "\"},\"roleArn\":\"arn:aws:iam::123456789012:role/x\"}"));
  add_usage(f, "aws-r", NULL, uid);
  uint64_t before = audit_count(f);
  assert_int_equal(resolve(f, "aws-r", uid, NULL, &m, &fail), CS_ERR_UNAVAILABLE);
  assert_null(m);
  assert_int_equal(audit_count(f), before + 1);
  cJSON *entries = NULL;
  uint64_t next = 0;
  struct cs_view all = {NULL, NULL};
  assert_int_equal(cs_audit_read(&f->core, &all, before, 10, &entries, &next), CS_OK);
  assert_int_equal(cJSON_GetArraySize(entries), 1);
  assert_string_equal(str(cJSON_GetArrayItem(entries, 0), "action"), "resolve");
  assert_string_equal(str(cJSON_GetArrayItem(entries, 0), "result"), "failure");
  cJSON_Delete(entries);
}

/* --------------------------------------------------------------- audit */

/* Rewrite audit entry @p seq (or delete it with @p text NULL). */
struct tamper {
  uint64_t seq;
  const char *text;
};

static enum cs_err tamper_txn(struct cs_txn *txn, void *arg)
{
  struct tamper *t = arg;
  uint8_t key[8];
  struct cs_val v;
  enum cs_err e;
  cs_store_seq_key(t->seq, key);
  if (!t->text)
    return cs_txn_del(txn, CS_TBL_AUDIT, key, 8);
  if ((e = cs_txn_get(txn, CS_TBL_AUDIT, key, 8, &v)))
    return e;
  uint8_t *rec = malloc(CS_HASH_BYTES + strlen(t->text));
  memcpy(rec, v.data, CS_HASH_BYTES); /* the old hash, new text */
  memcpy(rec + CS_HASH_BYTES, t->text, strlen(t->text));
  e = cs_txn_put(txn, CS_TBL_AUDIT, key, 8, rec, CS_HASH_BYTES + strlen(t->text), 0);
  free(rec);
  return e;
}

static void test_audit_chain(void **state)
{
  struct fx *f = *state;
  uint64_t n = 0, bad = 0;
  struct cs_audit_anchor anchor;

  for (int i = 0; i < 5; i++)
    assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", "x", "failure"), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_OK);
  assert_int_equal(n, 5);

  /* Another data dir's keyring: the keyed chain does not verify. */
  struct cs_master_key *mk = NULL;
  struct cs_keyring *other = NULL;
  char path[128];
  snprintf(path, sizeof path, "%s/other.key", f->dir);
  assert_int_equal(cs_master_key_generate_file(path), CS_OK);
  assert_int_equal(cs_master_key_from_file(path, &mk), CS_OK);
  assert_int_equal(cs_keyring_create(mk, &other), CS_OK);
  struct cs_core c2;
  cs_core_init(&c2, f->st, other, NULL);
  assert_int_equal(cs_audit_verify(&c2, &n, &bad, &anchor), CS_ERR_CRYPTO);
  assert_int_equal(bad, 1);
  cs_keyring_free(other);
  cs_master_key_free(mk);

  /* A modified entry is found. */
  struct tamper t = {3, "{\"seq\":3,\"action\":\"nothing\"}"};
  assert_int_equal(cs_store_write(f->st, tamper_txn, &t), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_ERR_CRYPTO);
  assert_int_equal(bad, 3);
}

static void test_audit_truncation(void **state)
{
  struct fx *f = *state;
  uint64_t n = 0, bad = 0;
  struct cs_audit_anchor anchor;

  for (int i = 0; i < 3; i++)
    assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", "x", "failure"), CS_OK);
  /* Removing the newest entry is found through the head record. */
  struct tamper t = {3, NULL};
  assert_int_equal(cs_store_write(f->st, tamper_txn, &t), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_ERR_CRYPTO);
  assert_int_equal(bad, 3);
}

/* -------------------------------------------------------------- events */

struct many_events {
  int n;
};

static enum cs_err many_txn(struct cs_txn *txn, void *arg)
{
  struct many_events *m = arg;
  enum cs_err e = CS_OK;
  for (int i = 0; i < m->n && !e; i++)
    e = cs_event_append(txn, "updated", i % 2 ? "aws-odd" : "gcp-even", (uint64_t)i);
  return e;
}

static void test_event_paging(void **state)
{
  struct fx *f = *state;
  struct cs_view all = {NULL, NULL}, odd = {"aws-odd", NULL};
  cJSON *scope = json("[\"aws-*\"]");
  struct cs_view scoped = {NULL, scope};
  cJSON *ev = NULL;
  uint64_t next = 0, oldest = 0;
  bool more = true;

  struct many_events m = {10050};
  assert_int_equal(cs_store_write(f->st, many_txn, &m), CS_OK);
  /* At most 1000 per page, 10,000 examined per read. */
  assert_int_equal(cs_events_read(&f->core, &all, 0, &ev, &next, &more, &oldest), CS_OK);
  assert_int_equal(cJSON_GetArraySize(ev), 1000);
  assert_int_equal(next, 1000);
  assert_false(more);
  assert_int_equal(num(cJSON_GetArrayItem(ev, 0), "seq"), 1);
  cJSON_Delete(ev);
  /* A filter: the page is what it may see, next the last seq examined. */
  assert_int_equal(cs_events_read(&f->core, &odd, 0, &ev, &next, &more, &oldest), CS_OK);
  assert_int_equal(cJSON_GetArraySize(ev), 1000);
  assert_int_equal(next, 2000);
  cJSON_Delete(ev);
  assert_int_equal(cs_events_read(&f->core, &scoped, 2000, &ev, &next, &more, &oldest), CS_OK);
  assert_string_equal(str(cJSON_GetArrayItem(ev, 0), "credentialId"), "aws-odd");
  assert_int_equal(num(cJSON_GetArrayItem(ev, 0), "seq"), 2002);
  cJSON_Delete(ev);
  /* Nothing visible in the examined window: an empty page with more. */
  struct cs_view none = {"nothing-here", NULL};
  assert_int_equal(cs_events_read(&f->core, &none, 0, &ev, &next, &more, &oldest), CS_OK);
  assert_int_equal(cJSON_GetArraySize(ev), 0);
  assert_int_equal(next, 10000);
  assert_true(more);
  cJSON_Delete(ev);
  assert_int_equal(cs_events_read(&f->core, &none, next, &ev, &next, &more, &oldest), CS_OK);
  assert_int_equal(next, 10050);
  assert_false(more);
  cJSON_Delete(ev);
  /* At the end: nothing, next unchanged. */
  assert_int_equal(cs_events_read(&f->core, &all, 10050, &ev, &next, &more, &oldest), CS_OK);
  assert_int_equal(cJSON_GetArraySize(ev), 0);
  assert_int_equal(next, 10050);
  cJSON_Delete(ev);
  cJSON_Delete(scope);
}

static void test_events_of_changes(void **state)
{
  struct fx *f = *state;
  struct cs_view all = {NULL, NULL};
  cJSON *ev = NULL, *usages = NULL;
  uint64_t next = 0, oldest = 0;
  bool more;
  char uid[32];
  const char *want[] = {"created", "updated", "usage_added", "usage_removed", "deleted"};

  cJSON_Delete(put_ok(f, "e-1", ibm_body("s")));
  cJSON_Delete(put_ok(f, "e-1", ibm_body("t")));
  add_usage(f, "e-1", NULL, uid);
  assert_int_equal(cs_usages_delete(&f->core, &f->actor, "e-1", uid), CS_OK);
  assert_int_equal(cs_creds_delete(&f->core, &f->actor, "e-1", &usages), CS_OK);
  assert_int_equal(cs_events_read(&f->core, &all, 0, &ev, &next, &more, &oldest), CS_OK);
  assert_int_equal(cJSON_GetArraySize(ev), 5);
  for (int i = 0; i < 5; i++) {
    assert_string_equal(str(cJSON_GetArrayItem(ev, i), "type"), want[i]);
    assert_string_equal(str(cJSON_GetArrayItem(ev, i), "credentialId"), "e-1");
  }
  cJSON_Delete(ev);
}

/* The long-poll waker: the core parks under its lock and wakes once. */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static int parked_n, woken_n;

static void park_cb(void *w)
{
  (void)w;
  pthread_mutex_lock(&wake_mu);
  parked_n++;
  pthread_mutex_unlock(&wake_mu);
}

static void wake_cb(void *w)
{
  pthread_mutex_lock(&wake_mu);
  woken_n++;
  *(int *)w += 1;
  pthread_cond_broadcast(&wake_cv);
  pthread_mutex_unlock(&wake_mu);
}

static void wait_woken(int n)
{
  struct timespec ts;
  pthread_mutex_lock(&wake_mu);
  cs_deadline_in_ms(5000, &ts);
  while (woken_n < n && pthread_cond_timedwait(&wake_cv, &wake_mu, &ts) == 0)
    ;
  pthread_mutex_unlock(&wake_mu);
}

static void test_long_poll_wake(void **state)
{
  struct fx *f = *state;
  char err[256];
  bool parked = false;
  int w1 = 0, w2 = 0, w3 = 0;

  parked_n = woken_n = 0;
  assert_int_equal(cs_core_start(&f->core, err, sizeof err), CS_OK);
  uint64_t gen = cs_events_generation(&f->core);
  /* Without a waker nothing parks. */
  assert_int_equal(cs_events_park(&f->core, &w1, cs_mono_ms() + 60000, gen, &parked),
                   CS_ERR_UNAVAILABLE);
  assert_false(parked);
  cs_events_set_waker(&f->core, park_cb, wake_cb);
  assert_int_equal(cs_events_park(&f->core, &w1, cs_mono_ms() + 60000, gen, &parked), CS_OK);
  assert_true(parked);
  assert_int_equal(parked_n, 1);
  /* A commit wakes it (the group committer's after-commit hook). */
  cJSON_Delete(put_ok(f, "w-1", ibm_body("s")));
  wait_woken(1);
  assert_int_equal(w1, 1);
  /* A generation read before that commit: read again instead of parking. */
  assert_int_equal(cs_events_park(&f->core, &w2, cs_mono_ms() + 60000, gen, &parked), CS_OK);
  assert_false(parked);
  /* A deadline wakes it without a commit. */
  gen = cs_events_generation(&f->core);
  assert_int_equal(cs_events_park(&f->core, &w2, cs_mono_ms() + 50, gen, &parked), CS_OK);
  assert_true(parked);
  wait_woken(2);
  assert_int_equal(w2, 1);
  /* Stopping wakes what waits, once, and refuses new waiters. */
  assert_int_equal(cs_events_park(&f->core, &w3, cs_mono_ms() + 60000, gen, &parked), CS_OK);
  assert_true(parked);
  cs_events_stop(&f->core);
  assert_int_equal(w3, 1);
  assert_int_equal(cs_events_park(&f->core, &w3, cs_mono_ms() + 60000, gen, &parked), CS_OK);
  assert_false(parked);
  cs_events_stop(&f->core); /* twice is fine */
  assert_int_equal(w1 + w2 + w3, 3);
}

/* -------------------------------------------------------------- outbox */

struct outbox_rows {
  cJSON *arr;
};

static enum cs_err collect_outbox(uint64_t seq, const struct cs_val *v, void *arg, bool *stop)
{
  struct outbox_rows *r = arg;
  cJSON *j = NULL;
  (void)seq, (void)stop;
  if (cs_json_parse(v->data, v->len, 8, &j))
    return CS_ERR_STORE;
  cJSON_AddItemToArray(r->arr, j);
  return CS_OK;
}

static cJSON *outbox(struct fx *f)
{
  struct outbox_rows r = {cJSON_CreateArray()};
  assert_int_equal(cs_seq_each(f->st, CS_TBL_OUTBOX, 0, collect_outbox, &r), CS_OK);
  return r.arr;
}

static void test_outbox_queueing(void **state)
{
  struct fx *f = *state;
  char hooked[32], plain[32];
  cJSON *rows;

  cJSON_Delete(put_ok(f, "o-1", ibm_body("s")));
  add_usage(f, "o-1", "http://127.0.0.1:9/hook", hooked);
  add_usage(f, "o-1", NULL, plain);
  rows = outbox(f);
  assert_int_equal(cJSON_GetArraySize(rows), 0); /* registering queues nothing */
  cJSON_Delete(rows);
  cJSON_Delete(put_ok(f, "o-1", ibm_body("t")));
  cJSON_Delete(put_ok(f, "o-1", ibm_body("u")));
  rows = outbox(f);
  /* One entry per update for the usage with a callback, none for the other. */
  assert_int_equal(cJSON_GetArraySize(rows), 2);
  for (int i = 0; i < 2; i++) {
    cJSON *r = cJSON_GetArrayItem(rows, i);
    assert_string_equal(str(r, "usageId"), hooked);
    assert_string_equal(str(r, "credentialId"), "o-1");
    assert_int_equal(num(r, "version"), 2 + i);
    assert_int_equal(num(r, "attempts"), 0);
    assert_string_equal(str(r, "target"), "http://127.0.0.1:9");
    assert_false(contains(r, "callbackSecret"));
  }
  cJSON_Delete(rows);
  /* The callback secret opens for the worker, and only for its usage. */
  struct cs_txn *txn = NULL;
  char *url = NULL, *secret = NULL;
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_usage_callback(f->kr, txn, hooked, &url, &secret), CS_OK);
  assert_string_equal(url, "http://127.0.0.1:9/hook");
  assert_int_equal(strlen(secret), 64);
  assert_int_equal(cs_usage_callback(f->kr, txn, plain, &url, &secret), CS_ERR_NOT_FOUND);
  cs_store_read_end(txn);
  free(url);
  cs_free_secret_str(secret);
}

/* ------------------------------------------------------- audit prune */

static void test_audit_anchor_codec(void **state)
{
  struct fx *f = *state;
  struct cs_audit_anchor a = {12345, {0}}, b;
  uint8_t rec[CS_AUDIT_ANCHOR_LEN + 1];

  for (size_t i = 0; i < CS_HASH_BYTES; i++)
    a.hash[i] = (uint8_t)(i * 7 + 1);
  cs_audit_anchor_encode(f->kr, "", &a, rec);
  struct cs_val v = {rec, CS_AUDIT_ANCHOR_LEN};
  assert_int_equal(cs_audit_anchor_decode(f->kr, "", &v, &b), CS_OK);
  assert_true(b.seq == a.seq && memcmp(b.hash, a.hash, CS_HASH_BYTES) == 0);
  /* Every truncation, and a longer record, is refused and writes nothing. */
  for (size_t len = 0; len <= CS_AUDIT_ANCHOR_LEN + 1; len++) {
    if (len == CS_AUDIT_ANCHOR_LEN)
      continue;
    struct cs_val t = {rec, len};
    memset(&b, 0x5a, sizeof b);
    assert_int_equal(cs_audit_anchor_decode(f->kr, "", &t, &b), CS_ERR_STORE);
    assert_true(b.seq == 0x5a5a5a5a5a5a5a5aULL);
  }
  /* Another chain's anchor, and every flipped bit, fail the MAC. */
  assert_int_equal(cs_audit_anchor_decode(f->kr, "node-2", &v, &b), CS_ERR_CRYPTO);
  for (size_t i = 0; i < CS_AUDIT_ANCHOR_LEN; i++) {
    rec[i] ^= 0x10;
    assert_int_equal(cs_audit_anchor_decode(f->kr, "", &v, &b), CS_ERR_CRYPTO);
    rec[i] ^= 0x10;
  }
}

static enum cs_err count_line(void *arg, const char *json, size_t len)
{
  cJSON *j = NULL;
  assert_int_equal(cs_json_parse(json, len, 8, &j), CS_OK);
  assert_int_equal(strlen(str(j, "hash")), 64);
  assert_int_equal(strlen(str(j, "prevHash")), 64);
  cJSON_Delete(j);
  (*(uint64_t *)arg)++;
  return CS_OK;
}

static void test_audit_export_prune_verify(void **state)
{
  struct fx *f = *state;
  struct cs_audit_anchor anchor;
  uint64_t n = 0, last = 0, lines = 0, removed = 0, limit = 0, bad = 0, base;

  base = audit_count(f); /* what setup recorded */
  for (int i = 0; i < 250; i++)
    assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", "x", "failure"), CS_OK);
  /* Nothing exported yet: nothing may be pruned. */
  assert_int_equal(cs_audit_prune(&f->core, &f->actor, 2, &removed, &limit, &anchor),
                   CS_ERR_PRECONDITION);
  assert_int_equal(limit, 1);
  assert_int_equal(cs_audit_export(&f->core, count_line, &lines, &n, &last), CS_OK);
  assert_int_equal(n, base + 250);
  assert_int_equal(lines, n);
  assert_int_equal(last, n);
  assert_int_equal(cs_audit_mark_exported(&f->core, last), CS_OK);
  /* The newest entry stays: the head is checked against it. */
  assert_int_equal(cs_audit_prune(&f->core, &f->actor, last + 1, &removed, &limit, &anchor),
                   CS_ERR_PRECONDITION);
  assert_int_equal(limit, last);
  assert_int_equal(cs_audit_prune(&f->core, &f->actor, 221, &removed, &limit, &anchor), CS_OK);
  assert_int_equal(removed, 220); /* in batches of CS_TRIM_BATCH */
  assert_int_equal(anchor.seq, 220);
  struct cs_audit_anchor seen;
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &seen), CS_OK);
  assert_int_equal(seen.seq, 220);
  assert_memory_equal(seen.hash, anchor.hash, CS_HASH_BYTES);
  assert_int_equal(n, base + 250 + 1 - 220); /* with the audit_prune entry */
  /* Pruning again from the anchor goes on where it stopped. */
  assert_int_equal(cs_audit_prune(&f->core, &f->actor, 225, &removed, &limit, &anchor), CS_OK);
  assert_int_equal(removed, 4);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &seen), CS_OK);
  assert_int_equal(seen.seq, 224);
  /* A tampered remaining entry still fails, at its seq. */
  struct tamper t = {230, "{\"seq\":230,\"action\":\"nothing\"}"};
  assert_int_equal(cs_store_write(f->st, tamper_txn, &t), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &seen), CS_ERR_CRYPTO);
  assert_int_equal(bad, 230);
}

static void test_audit_prune_needs_the_key(void **state)
{
  struct fx *f = *state;
  struct cs_audit_anchor anchor;
  uint64_t n = 0, last = 0, lines = 0, removed = 0, limit = 0, bad = 0;

  for (int i = 0; i < 10; i++)
    assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", "x", "failure"), CS_OK);
  /* Removing old entries without moving the keyed anchor is found at once. */
  struct tamper t = {1, NULL};
  assert_int_equal(cs_store_write(f->st, tamper_txn, &t), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_ERR_CRYPTO);
  assert_int_equal(bad, 1);
  assert_int_equal(cs_audit_export(&f->core, count_line, &lines, &n, &last), CS_OK);
  assert_int_equal(cs_audit_mark_exported(&f->core, last), CS_OK);
  /* ...and so is an anchor from another master key. */
  struct cs_master_key *mk = NULL;
  struct cs_keyring *other = NULL;
  char path[128];
  snprintf(path, sizeof path, "%s/other.key", f->dir);
  assert_int_equal(cs_master_key_generate_file(path), CS_OK);
  assert_int_equal(cs_master_key_from_file(path, &mk), CS_OK);
  assert_int_equal(cs_keyring_create(mk, &other), CS_OK);
  struct cs_core c2;
  cs_core_init(&c2, f->st, other, NULL);
  assert_int_equal(cs_audit_prune(&c2, &f->actor, 5, &removed, &limit, &anchor), CS_OK);
  assert_int_equal(cs_audit_verify(&f->core, &n, &bad, &anchor), CS_ERR_CRYPTO);
  assert_int_equal(bad, 1);
  cs_keyring_free(other);
  cs_master_key_free(mk);
}

/* A node chain's anchor record (cluster mode's key, here on LMDB) is
 * checked like chain ""'s: one keyed for another chain, or with a flipped
 * byte, breaks that chain by name; a good one for a chain with no entries
 * breaks it at its head. */
struct anchor_put {
  const char *key;
  const uint8_t *rec;
};

static enum cs_err anchor_put_txn(struct cs_txn *txn, void *arg)
{
  const struct anchor_put *a = arg;
  return cs_txn_put(txn, CS_TBL_META, a->key, strlen(a->key), a->rec, CS_AUDIT_ANCHOR_LEN, 0);
}

static void test_audit_node_chain_anchor_checked(void **state)
{
  struct fx *f = *state;
  struct cs_audit_anchor a = {7, {0}}, seen;
  struct cs_audit_break bad;
  uint8_t rec[CS_AUDIT_ANCHOR_LEN];
  uint64_t n = 0;
  size_t chains = 0;
  char key[CS_AUDIT_META_KEY_MAX];

  assert_int_equal(cs_audit_meta_key(CS_AUDIT_ANCHOR_KEY, "node-x", key), 19);
  assert_string_equal(key, "audit_anchor/node-x");
  assert_int_equal(cs_audit_meta_key(CS_AUDIT_ANCHOR_KEY, "", key), 12);
  struct anchor_put put = {"audit_anchor/node-x", rec};
  cs_audit_anchor_encode(f->kr, "node-y", &a, rec); /* keyed for another chain */
  assert_int_equal(cs_store_write(f->st, anchor_put_txn, &put), CS_OK);
  assert_int_equal(cs_audit_verify_chains(&f->core, &n, &chains, &bad, &seen), CS_ERR_CRYPTO);
  assert_string_equal(bad.chain, "node-x");
  cs_audit_anchor_encode(f->kr, "node-x", &a, rec);
  rec[9] ^= 1;
  assert_int_equal(cs_store_write(f->st, anchor_put_txn, &put), CS_OK);
  assert_int_equal(cs_audit_verify_chains(&f->core, &n, &chains, &bad, &seen), CS_ERR_CRYPTO);
  assert_string_equal(bad.chain, "node-x");
  rec[9] ^= 1;
  assert_int_equal(cs_store_write(f->st, anchor_put_txn, &put), CS_OK);
  assert_int_equal(cs_audit_verify_chains(&f->core, &n, &chains, &bad, &seen), CS_ERR_CRYPTO);
  assert_string_equal(bad.chain, "node-x");
  assert_int_equal(bad.seq, 8);
}

/* ------------------------------------------------------------ retention */

static void test_events_floor_codec(void **state)
{
  (void)state;
  uint8_t rec[9];
  uint64_t v = 0;
  const uint64_t samples[] = {0, 1, 255, 256, 0x0102030405060708ULL, UINT64_MAX};

  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    cs_events_floor_encode(samples[i], rec);
    struct cs_val val = {rec, 8};
    assert_int_equal(cs_events_floor_decode(&val, &v), CS_OK);
    assert_true(v == samples[i]);
  }
  /* Every truncation, and a longer record, is refused and writes nothing. */
  for (size_t len = 0; len <= 9; len++) {
    if (len == 8)
      continue;
    struct cs_val val = {rec, len};
    v = 42;
    assert_int_equal(cs_events_floor_decode(&val, &v), CS_ERR_STORE);
    assert_int_equal(v, 42);
  }
}

static void expect_expired(struct fx *f, uint64_t after, uint64_t want_oldest)
{
  struct cs_view all = {NULL, NULL};
  cJSON *ev = NULL;
  uint64_t next = 0, oldest = 0;
  bool more;

  assert_int_equal(cs_events_read(&f->core, &all, after, &ev, &next, &more, &oldest),
                   CS_ERR_EVENTS_EXPIRED);
  assert_null(ev);
  assert_int_equal(oldest, want_oldest);
}

static uint64_t first_seq(struct fx *f, uint64_t after)
{
  struct cs_view all = {NULL, NULL};
  cJSON *ev = NULL;
  uint64_t next = 0, oldest = 0, seq;
  bool more;

  assert_int_equal(cs_events_read(&f->core, &all, after, &ev, &next, &more, &oldest), CS_OK);
  seq = cJSON_GetArraySize(ev) ? (uint64_t)num(cJSON_GetArrayItem(ev, 0), "seq") : 0;
  cJSON_Delete(ev);
  return seq;
}

static void test_events_trim_count_cap(void **state)
{
  struct fx *f = *state;
  struct many_events m = {250};
  uint64_t n = 0, count = 0;
  struct cs_txn *txn;

  assert_int_equal(cs_store_write(f->st, many_txn, &m), CS_OK);
  f->core.opts.events_max = 10;
  /* Bounded batches: 100, 100, 40, then nothing; never one big transaction. */
  const uint64_t want[] = {CS_TRIM_BATCH, CS_TRIM_BATCH, 40, 0};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(cs_events_trim_batch(&f->core, cs_now(), &n), CS_OK);
    assert_int_equal(n, want[i]);
  }
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_txn_count(txn, CS_TBL_EVENTS, &count), CS_OK);
  assert_int_equal(cs_events_floor(txn, &n), CS_OK);
  cs_store_read_end(txn);
  assert_int_equal(count, 10);
  assert_int_equal(n, 240);
  for (uint64_t after = 1; after < 240; after += 37)
    expect_expired(f, after, 241);
  assert_int_equal(first_seq(f, 240), 241); /* oldest - 1: nothing missed */
  assert_int_equal(first_seq(f, 0), 241);   /* a fresh reader */
  assert_int_equal(first_seq(f, 245), 246);
}

static void test_events_trim_age_and_empty_feed(void **state)
{
  struct fx *f = *state;
  struct many_events m = {30};
  uint64_t n = 0;

  assert_int_equal(cs_store_write(f->st, many_txn, &m), CS_OK);
  f->core.opts.events_retention = 60;
  assert_int_equal(cs_events_trim_batch(&f->core, cs_now(), &n), CS_OK);
  assert_int_equal(n, 0); /* all younger than a minute */
  assert_int_equal(cs_events_trim_batch(&f->core, cs_now() + 61, &n), CS_OK);
  assert_int_equal(n, 30);
  assert_int_equal(first_seq(f, 0), 0);
  expect_expired(f, 29, 31);
  assert_int_equal(first_seq(f, 30), 0);
  /* Numbering goes on after the floor, also with the table empty. */
  m.n = 1;
  assert_int_equal(cs_store_write(f->st, many_txn, &m), CS_OK);
  assert_int_equal(first_seq(f, 30), 31);
}

/* ------------------------------------------------------------ dead letters */

static enum cs_err put_dead_txn(struct cs_txn *txn, void *arg)
{
  const char *rec = "{\"usageId\":\"u-1\",\"credentialId\":\"aws-dl\",\"version\":2,"
                    "\"attempts\":7,\"nextAt\":99,\"createdAt\":1000,\"deadAt\":2000,"
                    "\"lastError\":\"HTTP 500\"}";
  uint8_t key[8];
  cs_store_seq_key(*(uint64_t *)arg, key);
  return cs_txn_put(txn, CS_TBL_DEAD, key, 8, rec, strlen(rec), 0);
}

static cJSON *list_deliveries(struct fx *f, enum cs_delivery_state st, const cJSON *scope)
{
  struct cs_delivery_query q = {st, 0, 50, scope};
  cJSON *page = NULL;
  uint64_t total = 0;
  assert_int_equal(cs_deliveries_list(&f->core, &q, &page, &total), CS_OK);
  assert_int_equal(total, cJSON_GetArraySize(page));
  return page;
}

static void test_dead_letter_retry(void **state)
{
  struct fx *f = *state;
  uint64_t id = 5;
  cJSON *scope = json("[\"gcp-*\"]"), *page;
  char hooked[32];

  assert_int_equal(cs_store_write(f->st, put_dead_txn, &id), CS_OK);
  page = list_deliveries(f, CS_DELIVERY_DEAD, NULL);
  assert_int_equal(cJSON_GetArraySize(page), 1);
  assert_int_equal(num(cJSON_GetArrayItem(page, 0), "id"), 5);
  assert_string_equal(str(cJSON_GetArrayItem(page, 0), "state"), "dead");
  assert_int_equal(num(cJSON_GetArrayItem(page, 0), "attempts"), 7);
  cJSON_Delete(page);
  /* Out of scope is not found; unknown ids too. */
  assert_int_equal(cs_delivery_retry(&f->core, &f->actor, scope, 5), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_delivery_retry(&f->core, &f->actor, NULL, 6), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_delivery_retry(&f->core, &f->actor, NULL, 0), CS_ERR_NOT_FOUND);
  assert_int_equal(cs_delivery_retry(&f->core, &f->actor, NULL, 5), CS_OK);
  assert_int_equal(cs_delivery_retry(&f->core, &f->actor, NULL, 5), CS_ERR_NOT_DEAD);
  page = list_deliveries(f, CS_DELIVERY_PENDING, NULL);
  cJSON *p = cJSON_GetArrayItem(page, 0);
  assert_int_equal(cJSON_GetArraySize(page), 1);
  assert_int_equal(num(p, "id"), 5);
  assert_int_equal(num(p, "attempts"), 7);
  assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "nextAttemptAt"))); /* due now */
  cJSON_Delete(page);
  page = list_deliveries(f, CS_DELIVERY_DEAD, NULL);
  assert_int_equal(cJSON_GetArraySize(page), 0);
  cJSON_Delete(page);
  /* A new delivery's id is above every pending and dead one. */
  id = 9;
  assert_int_equal(cs_store_write(f->st, put_dead_txn, &id), CS_OK);
  cJSON_Delete(put_ok(f, "o-dl", ibm_body("s")));
  add_usage(f, "o-dl", "http://127.0.0.1:9/hook", hooked);
  cJSON_Delete(put_ok(f, "o-dl", ibm_body("t")));
  page = list_deliveries(f, CS_DELIVERY_ALL, NULL);
  assert_int_equal(cJSON_GetArraySize(page), 3);
  assert_int_equal(num(cJSON_GetArrayItem(page, 0), "id"), 5);
  assert_int_equal(num(cJSON_GetArrayItem(page, 1), "id"), 10);
  assert_int_equal(num(cJSON_GetArrayItem(page, 2), "id"), 9); /* dead ones after pending */
  cJSON_Delete(page);
  cJSON_Delete(scope);
}

/* --------------------------------------------------------------- scopes */

static void test_scope_views(void **state)
{
  struct fx *f = *state;
  cJSON *scope = json("[\"aws-*\"]"), *page = NULL, *entries = NULL;
  struct cs_cred_query q = {.limit = 50, .sort = CS_SORT_ID, .scope = scope};
  uint64_t total = 0, next = 0;

  cJSON_Delete(put_ok(f, "aws-a", ibm_body("s")));
  cJSON_Delete(put_ok(f, "gcp-b", ibm_body("s")));
  cJSON_Delete(put_ok(f, "aws-c", ibm_body("s")));
  assert_int_equal(cs_audit_record(&f->core, &f->actor, "auth", f->who.key_id, "failure"), CS_OK);
  assert_true(cs_scope_allows(scope, "aws-a"));
  assert_false(cs_scope_allows(scope, "gcp-b"));
  assert_true(cs_scope_allows(NULL, "gcp-b"));
  assert_int_equal(list_creds(f, &q, &page, &total), CS_OK);
  assert_int_equal(total, 2);
  assert_string_equal(str(cJSON_GetArrayItem(page, 0), "_id"), "aws-a");
  assert_string_equal(str(cJSON_GetArrayItem(page, 1), "_id"), "aws-c");
  cJSON_Delete(page);
  q.scope = NULL;
  assert_int_equal(list_creds(f, &q, &page, &total), CS_OK);
  assert_int_equal(total, 3);
  cJSON_Delete(page);
  /* The audit trail as a scoped reader sees it: its credentials only, no
   * login or key entries; a credential outside the scope is an empty page. */
  struct cs_view scoped = {NULL, scope}, outside = {"gcp-b", scope}, all = {NULL, NULL};
  assert_int_equal(cs_audit_read(&f->core, &scoped, 0, 100, &entries, &next), CS_OK);
  assert_int_equal(cJSON_GetArraySize(entries), 2);
  assert_string_equal(str(cJSON_GetArrayItem(entries, 1), "target"), "aws-c");
  assert_int_equal(next, 4); /* every entry examined */
  cJSON_Delete(entries);
  assert_int_equal(cs_audit_read(&f->core, &outside, 0, 100, &entries, &next), CS_OK);
  assert_int_equal(cJSON_GetArraySize(entries), 0);
  cJSON_Delete(entries);
  assert_int_equal(cs_audit_read(&f->core, &all, 0, 2, &entries, &next), CS_OK);
  assert_int_equal(cJSON_GetArraySize(entries), 2);
  assert_int_equal(next, 2); /* limit: the next page starts after seq 2 */
  assert_non_null(str(cJSON_GetArrayItem(entries, 0), "hash"));
  cJSON_Delete(entries);
  cJSON_Delete(scope);
}

/* ------------------------------------------------------- keys and tokens */

static void test_keys_and_tokens(void **state)
{
  struct fx *f = *state;
  struct cs_principal p = {0};
  struct cs_new_key k;
  cJSON *scope = json("[\"aws-*\"]"), *list = NULL;
  struct cs_key_spec spec = {"scanner", CS_ROLE_CI, scope, 0, f->who.key_id};
  char *token = NULL;

  assert_int_equal(cs_keys_add(&f->core, &f->actor, "access_key_create", &spec, &k), CS_OK);
  assert_int_equal(cs_keys_check_secret(&f->core, k.id, k.secret, &p), CS_OK);
  assert_string_equal(p.key_id, k.id);
  assert_int_equal(p.role, CS_ROLE_CI);
  assert_true(cJSON_IsArray(p.scope));
  assert_int_equal(cs_keys_check_secret(&f->core, k.id, "wrong", &p), CS_ERR_BAD_CREDENTIALS);
  assert_int_equal(cs_keys_check_secret(&f->core, NULL, k.secret, &p), CS_ERR_BAD_CREDENTIALS);
  assert_int_equal(cs_keys_check_secret(&f->core, "ak-nope", k.secret, &p), CS_ERR_BAD_CREDENTIALS);
  /* A scoped key lists only keys within it; the admin lists both. */
  struct cs_key_bounds by = {scope, 0}, everything = {NULL, 0};
  assert_int_equal(cs_keys_list(&f->core, &by, &list), CS_OK);
  assert_int_equal(cJSON_GetArraySize(list), 1);
  assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "hash"));
  cJSON_Delete(list);
  assert_int_equal(cs_keys_list(&f->core, &everything, &list), CS_OK);
  assert_int_equal(cJSON_GetArraySize(list), 2);
  cJSON_Delete(list);
  /* Tokens work until their key is deleted. */
  assert_int_equal(cs_token_issue(&f->core, &p, 0, &token), CS_OK);
  struct cs_principal t = {0};
  assert_int_equal(cs_token_check(&f->core, token, &t), CS_OK);
  assert_string_equal(t.key_id, k.id);
  assert_int_equal(cs_token_check(&f->core, "not.a.token", &t), CS_ERR_BAD_TOKEN);
  assert_int_equal(cs_keys_delete(&f->core, &f->actor, &everything, k.id), CS_OK);
  assert_int_equal(cs_token_check(&f->core, token, &t), CS_ERR_BAD_TOKEN);
  assert_int_equal(cs_keys_check_secret(&f->core, k.id, k.secret, &p), CS_ERR_BAD_CREDENTIALS);
  /* The last full admin stays. */
  assert_int_equal(cs_keys_delete(&f->core, &f->actor, &everything, f->who.key_id),
                   CS_ERR_LAST_ADMIN);
  free(token);
  cs_principal_clear(&p);
  cs_principal_clear(&t);
  cJSON_Delete(scope);
  cs_memzero(&k, sizeof k);
}

/* ------------------------------------------------------------- rewrap */

static void test_rotate_and_rewrap(void **state)
{
  struct fx *f = *state;
  struct cs_rewrap_result r;
  struct cs_net_error fail;
  char uid[32], fp[64];
  cJSON *m = NULL, *c;

  c = put_ok(f, "rw-1", ibm_body("before-rotation"));
  snprintf(fp, sizeof fp, "%s", fingerprint(c));
  cJSON_Delete(c);
  add_usage(f, "rw-1", "http://127.0.0.1:9/hook", uid);
  assert_int_equal(cs_keyring_rotate_commit(&f->core, &f->actor), CS_OK);
  assert_int_equal(cs_keyring_current_version(f->kr), 2);
  assert_int_equal(cs_rewrap_all(&f->core, &f->actor, NULL, NULL, &r), CS_OK);
  assert_int_equal(r.credentials, 1);
  assert_int_equal(r.usages, 1);
  assert_int_equal(r.failed, 0);
  /* Nothing left to do the second time. */
  assert_int_equal(cs_rewrap_all(&f->core, &f->actor, NULL, NULL, &r), CS_OK);
  assert_int_equal(r.credentials + r.usages, 0);
  /* The secret, its fingerprint and the version are unchanged. */
  assert_int_equal(get_cred(f, "rw-1", &c), CS_OK);
  assert_string_equal(fingerprint(c), fp);
  assert_int_equal(num(c, "version"), 1);
  cJSON_Delete(c);
  assert_int_equal(resolve(f, "rw-1", uid, NULL, &m, &fail), CS_OK);
  assert_string_equal(str(m, "apiKey"), "before-rotation");
  cs_json_wipe_delete(m);
  assert_int_equal(audit_count(f), 6); /* create, usage, rotate, rewrap x2, resolve */
}

/* ------------------------------------------------------ the renderer */

/* The cJSON renderer cs_cred_render_text replaced, kept as the reference:
 * the text must be byte for byte what this tree printed. */
static cJSON *tree_render(const struct cs_cred_view *c)
{
  cJSON *meta = NULL, *o = cJSON_CreateObject(), *item, *owner;
  char t[32], fp[256];

  assert_non_null(o);
  assert_int_equal(cs_json_parse(c->meta, c->meta_len, CS_JSON_MAX_DEPTH, &meta), CS_OK);
  cJSON_AddStringToObject(o, "_id", c->id);
  cJSON_AddStringToObject(o, "type", c->prov->type);
  const char *field = cs_cred_secret_field(meta);
  owner = cJSON_DetachItemFromObjectCaseSensitive(meta, "owner");
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "authType");
  while ((item = meta->child)) {
    cJSON_DetachItemViaPointer(meta, item);
    cJSON_AddItemToObject(o, item->string, item);
  }
  if (c->fp_len > 0) {
    snprintf(fp, sizeof fp, "%.*s", (int)c->fp_len, c->fp);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, field), "encrypted", fp);
  }
  cJSON_AddNumberToObject(o, "version", (double)c->version);
  cs_time_format(c->created, t);
  cJSON_AddStringToObject(o, "created", t);
  cs_time_format(c->modified, t);
  cJSON_AddStringToObject(o, "lastModified", t);
  if (owner)
    cJSON_AddItemToObject(o, "owner", owner);
  cJSON_Delete(meta);
  return o;
}

static char *render_text(const struct cs_cred_view *c, bool prisma)
{
  struct cs_buf b;
  cs_buf_init(&b, CS_CRED_RENDER_MAX);
  assert_int_equal(cs_cred_render_text(c, prisma, &b), CS_OK);
  return b.data;
}

static void test_render_matches_tree(void **state)
{
  (void)state;
  /* Each as compose_meta stores it: cJSON's compact print of the object. */
  const char *metas[] = {
      "{}",
      "{\"accountID\":\"123456789012\",\"description\":\"prod\"}",
      "{\"owner\":\"alice\",\"description\":\"q\\\"uote \\\\ back/slash\\n\\t\\u0001 é ☃\"}",
      "{\"authType\":\"apiToken\",\"projectId\":\"p\",\"owner\":\"k-1\"}",
      "{\"authType\":\"serviceAccount\",\"description\":\"\"}",
      "{\"useAWSRole\":true,\"roleArn\":\"arn:aws:iam::1:role/r\",\"externalId\":\"x,}]\"}",
      "{\"n\":-1.5e+300,\"i\":42,\"z\":0,\"t\":true,\"f\":false,\"nul\":null}",
      "{\"nested\":{\"a\":[1,{\"b\":\"}\"},[]],\"c\":{}},\"arr\":[\"[\",\"]\"],\"owner\":\"o\"}",
      "{\"clientId\":\"c\",\"owner\":{\"id\":\"k\"},\"authType\":\"apiToken\"}",
  };
  const char *ids[] = {"aws-1", "a.b_c-D~9", "x"};
  const char *fps[] = {"", "v1.00112233445566778899aabbccddeeff"};
  uint64_t versions[] = {1, 4001, 3000000000ull};

  for (size_t m = 0; m < sizeof metas / sizeof *metas; m++) {
    cJSON *stored = json(metas[m]);
    char *again = cs_json_print(stored);
    assert_string_equal(again, metas[m]); /* the test's input is what the store holds */
    free(again);
    cJSON_Delete(stored);
    for (size_t k = 0; k < 6; k++) {
      struct cs_cred_view c = {.id = ids[k % 3],
                               .prov = cs_providers[(m + k) % 8],
                               .version = versions[k % 3],
                               .created = 1700000000 + (int64_t)k,
                               .modified = 1800000000,
                               .meta = metas[m],
                               .meta_len = strlen(metas[m]),
                               .fp = fps[k % 2],
                               .fp_len = strlen(fps[k % 2])};
      cJSON *tree = tree_render(&c);
      char *want = cs_json_print(tree), *got = render_text(&c, false);
      assert_string_equal(got, want);
      free(got);
      /* Prisma's shape: useAWSRole as stored, else false at the end. */
      if (!cJSON_GetObjectItemCaseSensitive(tree, "useAWSRole"))
        cJSON_AddBoolToObject(tree, "useAWSRole", false);
      free(want);
      want = cs_json_print(tree);
      got = render_text(&c, true);
      assert_string_equal(got, want);
      free(got);
      free(want);
      cJSON_Delete(tree);
    }
  }
}

static void test_render_rejects_corrupt_meta(void **state)
{
  (void)state;
  const char *full = "{\"a\":\"x\\\"}\",\"b\":[1,{\"c\":null}],\"d\":true,\"owner\":\"o\"}";
  const char *bad[] = {"", "[]", "x", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,,}", "\"s\""};
  struct cs_cred_view c = {.id = "t", .prov = cs_providers[0], .version = 1, .meta = full};
  struct cs_buf b;

  /* Every truncation of a record's meta is refused, never rendered short. */
  for (size_t n = 0; n < strlen(full); n++) {
    c.meta_len = n;
    cs_buf_init(&b, CS_CRED_RENDER_MAX);
    assert_int_equal(cs_cred_render_text(&c, false, &b), CS_ERR_STORE);
    cs_buf_free(&b);
  }
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    c.meta = bad[i];
    c.meta_len = strlen(bad[i]);
    cs_buf_init(&b, CS_CRED_RENDER_MAX);
    assert_int_equal(cs_cred_render_text(&c, false, &b), CS_ERR_STORE);
    cs_buf_free(&b);
  }
  /* A buffer too small for the object says so. */
  char small[32];
  b = cs_buf_fixed(small, sizeof small);
  c.meta = full;
  c.meta_len = strlen(full);
  assert_int_equal(cs_cred_render_text(&c, false, &b), CS_ERR_TOO_LARGE);
}

/* ---------------------------------------------- the key-record cache */

struct key_edit {
  const char *id;
  const char *from, *to; /* replace the first @from in the stored record; to NULL: raw = from */
};

static enum cs_err key_edit_txn(struct cs_txn *txn, void *arg)
{
  struct key_edit *k = arg;
  struct cs_val v;
  char rec[2048];
  enum cs_err e = cs_txn_get(txn, CS_TBL_KEYS, k->id, strlen(k->id), &v);
  if (e)
    return e;
  if (!k->to) {
    snprintf(rec, sizeof rec, "%s", k->from);
  } else {
    snprintf(rec, sizeof rec, "%.*s", (int)v.len, (const char *)v.data);
    char *at = strstr(rec, k->from), tail[2048];
    assert_non_null(at);
    snprintf(tail, sizeof tail, "%s", at + strlen(k->from));
    snprintf(at, sizeof rec - (size_t)(at - rec), "%s%s", k->to, tail);
  }
  return cs_txn_put(txn, CS_TBL_KEYS, k->id, strlen(k->id), rec, strlen(rec), 0);
}

static void read_key(struct fx *f, const char *id, char *out, size_t size)
{
  struct cs_txn *txn;
  struct cs_val v;
  assert_int_equal(cs_store_read_begin(f->st, &txn), CS_OK);
  assert_int_equal(cs_txn_get(txn, CS_TBL_KEYS, id, strlen(id), &v), CS_OK);
  assert_true(v.len < size);
  snprintf(out, size, "%.*s", (int)v.len, (const char *)v.data);
  cs_store_read_end(txn);
}

static void edit_key(struct fx *f, const char *id, const char *from, const char *to)
{
  struct key_edit k = {id, from, to};
  assert_int_equal(cs_store_write(f->st, key_edit_txn, &k), CS_OK);
}

static void expect_key(struct fx *f, const struct cs_new_key *k, enum cs_role role,
                       const char *scope)
{
  struct cs_principal p = {0};
  for (int i = 0; i < 3; i++) { /* the first decodes, the others hit the cache */
    assert_int_equal(cs_keys_check_secret(&f->core, k->id, k->secret, &p), CS_OK);
    assert_int_equal(p.role, role);
    char *s = p.scope ? cs_json_print(p.scope) : NULL;
    if (scope)
      assert_string_equal(s, scope);
    else
      assert_null(p.scope);
    free(s);
    cs_principal_clear(&p);
    assert_int_equal(cs_keys_load_live(&f->core, k->id, &p), CS_OK);
    assert_int_equal(p.role, role);
    cs_principal_clear(&p);
  }
}

static void test_key_cache_follows_the_record(void **state)
{
  struct fx *f = *state;
  struct cs_principal p = {0};
  struct cs_new_key k, k2;
  cJSON *scope = json("[\"aws-*\",\"gcp-1\"]");
  struct cs_key_spec spec = {"scanner", CS_ROLE_CI, scope, 0, f->who.key_id};
  struct cs_key_spec plain = {"other", CS_ROLE_AUDITOR, NULL, 0, f->who.key_id};
  struct cs_key_bounds everything = {NULL, 0};

  assert_int_equal(cs_keys_add(&f->core, &f->actor, "access_key_create", &spec, &k), CS_OK);
  assert_int_equal(cs_keys_add(&f->core, &f->actor, "access_key_create", &plain, &k2), CS_OK);
  expect_key(f, &k, CS_ROLE_CI, "[\"aws-*\",\"gcp-1\"]");
  expect_key(f, &k2, CS_ROLE_AUDITOR, NULL);
  /* A secret hashed once and checked by its stored form (Basic's cache). */
  char hex[CS_KEY_HASH_HEX + 1], long_secret[CS_KEY_SECRET_MAX + 2];
  assert_int_equal(cs_keys_secret_hash(&f->core, k.secret, hex), CS_OK);
  assert_int_equal(strlen(hex), CS_KEY_HASH_HEX);
  assert_int_equal(cs_keys_check_hash(&f->core, k.id, hex, &p), CS_OK);
  assert_int_equal(p.role, CS_ROLE_CI);
  assert_int_equal(cs_keys_check_hash(&f->core, k2.id, hex, &p), CS_ERR_BAD_CREDENTIALS);
  assert_int_equal(cs_keys_check_hash(&f->core, NULL, hex, &p), CS_ERR_BAD_CREDENTIALS);
  hex[0] = hex[0] == 'a' ? 'b' : 'a';
  assert_int_equal(cs_keys_check_hash(&f->core, k.id, hex, &p), CS_ERR_BAD_CREDENTIALS);
  memset(long_secret, 'x', sizeof long_secret - 1);
  long_secret[sizeof long_secret - 1] = '\0';
  assert_int_equal(cs_keys_secret_hash(&f->core, long_secret, hex), CS_ERR_BAD_CREDENTIALS);
  cs_principal_clear(&p);
  /* Every change of the stored bytes is seen on the next request. */
  edit_key(f, k.id, "\"role\":\"ci\"", "\"role\":\"auditor\"");
  expect_key(f, &k, CS_ROLE_AUDITOR, "[\"aws-*\",\"gcp-1\"]");
  edit_key(f, k.id, "\"gcp-1\"", "\"gcp-2\"");
  expect_key(f, &k, CS_ROLE_AUDITOR, "[\"aws-*\",\"gcp-2\"]");
  /* Expired: refused at once, cached or not. */
  edit_key(f, k.id, "\"hash\"", "\"expiresAt\":1000,\"hash\"");
  assert_int_equal(cs_keys_check_secret(&f->core, k.id, k.secret, &p), CS_ERR_BAD_CREDENTIALS);
  assert_int_equal(cs_keys_load_live(&f->core, k.id, &p), CS_ERR_NOT_FOUND);
  edit_key(f, k.id, "\"expiresAt\":1000,", "");
  expect_key(f, &k, CS_ROLE_AUDITOR, "[\"aws-*\",\"gcp-2\"]");
  /* Another secret's hash: the old secret stops working at once. */
  char rec[2048], *h;
  read_key(f, k.id, rec, sizeof rec);
  assert_non_null(h = strstr(rec, "\"hash\":\""));
  h[8] = h[8] == 'a' ? 'b' : 'a';
  edit_key(f, k.id, rec, NULL);
  assert_int_equal(cs_keys_check_secret(&f->core, k.id, k.secret, &p), CS_ERR_BAD_CREDENTIALS);
  assert_int_equal(cs_keys_load_live(&f->core, k.id, &p), CS_OK); /* the record itself is fine */
  cs_principal_clear(&p);
  /* A corrupt record is an error, not the cached copy. */
  edit_key(f, k2.id, "{\"id\"", NULL);
  assert_int_equal(cs_keys_load_live(&f->core, k2.id, &p), CS_ERR_STORE);
  /* Deleted: gone at once. */
  assert_int_equal(cs_keys_delete(&f->core, &f->actor, &everything, k.id), CS_OK);
  assert_int_equal(cs_keys_check_secret(&f->core, k.id, k.secret, &p), CS_ERR_BAD_CREDENTIALS);
  assert_int_equal(cs_keys_load_live(&f->core, k.id, &p), CS_ERR_NOT_FOUND);
  cs_principal_clear(&p);
  cJSON_Delete(scope);
  cs_memzero(&k, sizeof k);
  cs_memzero(&k2, sizeof k2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_render_matches_tree),
      cmocka_unit_test(test_render_rejects_corrupt_meta),
      cmocka_unit_test_setup_teardown(test_put_create_and_update, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_keeps_secret, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_unchanged_and_empty_secrets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_renders_text, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_given_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_if_match_and_must_exist, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_refusals_name_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_refused_while_in_use, setup, teardown),
      cmocka_unit_test_setup_teardown(test_usage_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resolve_refusals_record_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_network_resolve_without_network, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_only_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_truncation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_paging, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_of_changes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_poll_wake, setup, teardown),
      cmocka_unit_test_setup_teardown(test_outbox_queueing, setup, teardown),
      cmocka_unit_test(test_events_floor_codec),
      cmocka_unit_test_setup_teardown(test_audit_anchor_codec, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_export_prune_verify, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_prune_needs_the_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_audit_node_chain_anchor_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_trim_count_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_trim_age_and_empty_feed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dead_letter_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scope_views, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_and_tokens, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_cache_follows_the_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate_and_rewrap, setup, teardown),
  };
  if (cs_crypto_init())
    return 1;
  cs_log_min_level = CS_LOG_OFF;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
