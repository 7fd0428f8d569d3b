/* cmocka tests for common/: error registry, buffers, JSON, time, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static void test_err_registry(void **state)
{
  (void)state;
  assert_int_equal(cs_err_http_status(CS_OK), 200);
  assert_int_equal(cs_err_http_status(CS_ERR_BAD_JSON), 400);
  assert_int_equal(cs_err_http_status(CS_ERR_TOO_LARGE), 413);
  assert_int_equal(cs_err_http_status(CS_ERR_IN_USE), 409);
  assert_int_equal(cs_err_http_status(CS_ERR_UPSTREAM), 502);
  assert_string_equal(cs_err_code(CS_ERR_IN_USE), "credential_in_use");
  assert_string_equal(cs_err_code(CS_ERR_BAD_CREDENTIALS), "invalid_credentials");
  assert_true(cs_err_is_client(CS_ERR_NOT_FOUND));
  assert_false(cs_err_is_client(CS_ERR_STORE));
  /* Unknown values fall back to internal error rather than reading past the table. */
  assert_int_equal(cs_err_http_status((enum cs_err)9999), 500);
  assert_string_equal(cs_err_code((enum cs_err) - 1), "internal_error");
  /* Every code is distinct snake_case. */
  for (int a = 0; a < CS_ERR__COUNT; a++) {
    const char *c = cs_err_code((enum cs_err)a);
    for (const char *p = c; *p; p++)
      assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
    for (int b = a + 1; b < CS_ERR__COUNT; b++)
      assert_string_not_equal(c, cs_err_code((enum cs_err)b));
  }
}

static void test_buf_cap(void **state)
{
  struct cs_buf b;
  (void)state;
  cs_buf_init(&b, 10);
  assert_int_equal(cs_buf_append(&b, "12345", 5), CS_OK);
  assert_int_equal(cs_buf_append(&b, "67890", 5), CS_OK);
  assert_int_equal(b.len, 10);
  assert_int_equal(cs_buf_append(&b, "x", 1), CS_ERR_TOO_LARGE);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "1234567890");
  assert_int_equal(cs_buf_printf(&b, "%d", 1), CS_ERR_TOO_LARGE);
  cs_buf_wipe(&b);
  assert_null(b.data);

  /* A fixed buffer over a stack array takes exactly size - 1 bytes and
   * never reallocs it (ASan would catch a realloc of stack memory). */
  char mem[16];
  for (size_t cut = 0; cut < sizeof mem; cut++) {
    b = cs_buf_fixed(mem, sizeof mem);
    assert_int_equal(cs_buf_append(&b, "0123456789abcdefg", cut), CS_OK);
    assert_int_equal(cs_buf_append(&b, "0123456789abcdefg", sizeof mem - 1 - cut), CS_OK);
    assert_int_equal(b.len, sizeof mem - 1);
    assert_ptr_equal(b.data, mem);
    assert_int_equal(cs_buf_append(&b, "x", 1), CS_ERR_TOO_LARGE);
    assert_int_equal(cs_buf_printf(&b, "%d", 7), CS_ERR_TOO_LARGE);
    assert_int_equal(mem[sizeof mem - 1], '\0');
  }
  b = cs_buf_fixed(mem, sizeof mem);
  assert_int_equal(cs_buf_printf(&b, "%s", "0123456789abcde"), CS_OK);
  assert_string_equal(mem, "0123456789abcde");

  cs_buf_init(&b, 4096);
  char big[1000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(cs_buf_printf(&b, "%s|%s", big, big), CS_OK);
  assert_int_equal(b.len, 2 * (sizeof big - 1) + 1);
  assert_int_equal(b.data[sizeof big - 1], '|');
  cs_buf_free(&b);
  cs_buf_free(NULL);
}

static void test_json_escape(void **state)
{
  struct cs_buf b;
  (void)state;
  cs_buf_init(&b, 100);
  assert_int_equal(cs_buf_json_escape(&b, "a\"b\\c\n\x01", 7), CS_OK);
  assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u0001");
  cs_buf_free(&b);
}

static void test_json_parse(void **state)
{
  cJSON *j = NULL;
  (void)state;
  assert_int_equal(cs_json_parse("{\"a\":1}", 7, 4, &j), CS_OK);
  cJSON_Delete(j);
  assert_int_equal(cs_json_parse("{\"a\":1} x", 9, 4, &j), CS_ERR_BAD_JSON);
  assert_int_equal(cs_json_parse("{\"a\":1}  \n", 10, 4, &j), CS_OK);
  cJSON_Delete(j);
  assert_int_equal(cs_json_parse("", 0, 4, &j), CS_ERR_BAD_JSON);
  assert_int_equal(cs_json_parse("{\"a\"\0:1}", 8, 4, &j), CS_ERR_BAD_JSON);
  assert_int_equal(cs_json_parse("[[[[[1]]]]]", 11, 4, &j), CS_ERR_TOO_DEEP);
  assert_int_equal(cs_json_parse("[[[[1]]]]", 9, 4, &j), CS_OK);
  cJSON_Delete(j);
  /* Brackets inside strings don't count. */
  assert_int_equal(cs_json_parse("[\"[[[[[[\"]", 10, 2, &j), CS_OK);
  cJSON_Delete(j);
  /* A very deep document is refused before the recursive parser sees it. */
  size_t n = 100000;
  char *deep = malloc(2 * n);
  memset(deep, '[', n);
  memset(deep + n, ']', n);
  assert_int_equal(cs_json_parse(deep, 2 * n, CS_JSON_MAX_DEPTH, &j), CS_ERR_TOO_DEEP);
  free(deep);
}

static void test_json_nul_and_utf8(void **state)
{
  cJSON *j = NULL;
  (void)state;
  /* A decoded NUL would silently truncate strings: refused. */
  assert_int_equal(cs_json_parse("{\"a\":\"x\\u0000y\"}", strlen("{\"a\":\"x\\u0000y\"}"), 4, &j),
                   CS_ERR_BAD_JSON);
  /* An escaped backslash followed by "u0000" is text, not a NUL. */
  assert_int_equal(cs_json_parse("{\"a\":\"x\\\\u0000\"}", strlen("{\"a\":\"x\\\\u0000\"}"), 4, &j),
                   CS_OK);
  assert_string_equal(cJSON_GetObjectItem(j, "a")->valuestring, "x\\u0000");
  cJSON_Delete(j);
  assert_int_equal(cs_json_parse("{\"a\":\"\\u0001\"}", strlen("{\"a\":\"\\u0001\"}"), 4, &j),
                   CS_OK);
  cJSON_Delete(j);
  /* Strict UTF-8. */
  assert_true(cs_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", 15));
  assert_false(cs_utf8_valid("\xff", 1));
  assert_false(cs_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
  assert_false(cs_utf8_valid("\xed\xa0\x80", 3));     /* CESU surrogate */
  assert_false(cs_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  assert_false(cs_utf8_valid("\xe2\x82", 2));         /* truncated */
  assert_int_equal(cs_json_parse("{\"a\":\"\xc0\xaf\"}", strlen("{\"a\":\"\xc0\xaf\"}"), 4, &j),
                   CS_ERR_BAD_JSON);
}

static void test_json_fields(void **state)
{
  cJSON *j = NULL;
  const char *s = "unchanged";
  int64_t i = 7;
  bool b = false;
  (void)state;
  const char *doc = "{\"s\":\"abc\",\"n\":5,\"f\":1.5,\"b\":true,\"z\":null,\"big\":1e300}";
  assert_int_equal(cs_json_parse(doc, strlen(doc), 4, &j), CS_OK);
  assert_int_equal(cs_json_opt_string(j, "s", 3, &s), CS_OK);
  assert_string_equal(s, "abc");
  assert_int_equal(cs_json_opt_string(j, "s", 2, &s), CS_ERR_INVALID);
  assert_int_equal(cs_json_opt_string(j, "n", 10, &s), CS_ERR_INVALID);
  assert_int_equal(cs_json_opt_string(j, "z", 10, &s), CS_OK);
  assert_null(s);
  assert_int_equal(cs_json_req_string(j, "missing", 10, &s), CS_ERR_MISSING);
  assert_int_equal(cs_json_opt_int(j, "n", 0, 10, &i), CS_OK);
  assert_int_equal(i, 5);
  assert_int_equal(cs_json_opt_int(j, "n", 6, 10, &i), CS_ERR_INVALID);
  assert_int_equal(cs_json_opt_int(j, "f", 0, 10, &i), CS_ERR_INVALID);
  assert_int_equal(cs_json_opt_int(j, "big", 0, INT64_MAX, &i), CS_ERR_INVALID);
  assert_int_equal(cs_json_opt_int(j, "s", 0, 10, &i), CS_ERR_INVALID);
  assert_int_equal(cs_json_opt_int(j, "absent", 0, 10, &i), CS_OK);
  assert_int_equal(i, 5);
  assert_int_equal(cs_json_opt_bool(j, "b", &b), CS_OK);
  assert_true(b);
  assert_int_equal(cs_json_opt_bool(j, "n", &b), CS_ERR_INVALID);
  cJSON_Delete(j);
}

/* The one JSON wiper: every value and member name, nested, but not what a
 * reference points to (another tree's) nor constant names. */
static void test_json_wipe(void **state)
{
  cJSON *j = cJSON_Parse("{\"secret\":\"s3cr3t\",\"nested\":{\"token\":\"t0k\","
                         "\"list\":[\"a1\",{\"k\":\"v\"}]}}");
  cJSON *other = cJSON_CreateString("kept-elsewhere");
  (void)state;
  assert_non_null(j);
  assert_non_null(other);
  cJSON_AddItemReferenceToObject(j, "ref", other);
  cJSON *nested = cJSON_GetObjectItem(j, "nested");
  cJSON *sec = cJSON_GetObjectItem(j, "secret");
  cJSON *tok = cJSON_GetObjectItem(nested, "token");
  cJSON *list = cJSON_GetObjectItem(nested, "list");
  cJSON *a1 = cJSON_GetArrayItem(list, 0), *kv = cJSON_GetArrayItem(list, 1)->child;
  cs_json_wipe(j);
  assert_int_equal(sec->valuestring[0], 0);
  assert_int_equal(sec->string[0], 0);
  assert_int_equal(tok->valuestring[0], 0);
  assert_int_equal(tok->string[0], 0);
  assert_int_equal(nested->string[0], 0);
  assert_int_equal(a1->valuestring[0], 0);
  assert_int_equal(kv->valuestring[0], 0);
  assert_int_equal(kv->string[0], 0);
  assert_string_equal(other->valuestring, "kept-elsewhere");
  cJSON_Delete(j);
  cs_json_wipe(NULL);
  cs_json_wipe_delete(NULL);
  cs_json_wipe_delete(other);
}

/* What cs_time_format printed before its own calendar: libc's. */
static void time_reference(int64_t t, char out[32])
{
  struct tm tm;
  time_t tt = (time_t)t;
  assert_non_null(gmtime_r(&tt, &tm));
  assert_true(strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
}

static void time_same(int64_t t)
{
  char got[32], want[32];
  memset(got, 'x', sizeof got);
  cs_time_format(t, got);
  time_reference(t, want);
  if (strcmp(got, want) != 0)
    fail_msg("t=%lld: got %s, strftime %s", (long long)t, got, want);
}

static void test_time_format_matches_strftime(void **state)
{
  (void)state;
  /* Around every year boundary and every end of February, 1970 to 9999
   * (leap years by 4, the 100s that are not, the 400s that are). */
  for (int y = 1970; y <= 9999; y++) {
    struct tm jan1 = {.tm_year = y - 1900, .tm_mday = 1};
    int64_t t = (int64_t)timegm(&jan1);
    const int64_t day = 86400;
    const int64_t around[] = {-1,           0,        1,        58 * day - 1,  58 * day,
                              59 * day - 1, 59 * day, 60 * day, 365 * day - 1, 365 * day,
                              366 * day - 1};
    for (size_t i = 0; i < sizeof around / sizeof around[0]; i++)
      if (t + around[i] >= 0)
        time_same(t + around[i]);
  }
  /* Every day of the next century and more, at a second that moves
   * through the day, and times spread over the whole range. */
  for (int64_t d = 0; d < 366 * 140; d++)
    time_same(d * 86400 + (d * 7919) % 86400);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 50000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    time_same((int64_t)(x % 253402300800ull));
  }
  /* The edges of the fast range and past them (libc's path). */
  const int64_t edges[] = {0,
                           951782400 /* 2000-02-29 */,
                           4107542400 /* 2100-03-01 */,
                           253402300799,
                           253402300800,
                           -1,
                           -86401};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
    time_same(edges[i]);
  char out[32];
  cs_time_format(951782400, out);
  assert_string_equal(out, "2000-02-29T00:00:00Z");
  cs_time_format(4107542400, out);
  assert_string_equal(out, "2100-03-01T00:00:00Z");
  cs_time_format(253402300799, out);
  assert_string_equal(out, "9999-12-31T23:59:59Z");
  cs_time_format(-1, out);
  assert_string_equal(out, "1969-12-31T23:59:59Z");
}

static void test_time(void **state)
{
  char out[32];
  int64_t t = 0;
  (void)state;
  cs_time_format(0, out);
  assert_string_equal(out, "1970-01-01T00:00:00Z");
  cs_time_format(1795360930, out);
  assert_string_equal(out, "2026-11-22T15:22:10Z");
  assert_int_equal(cs_time_parse("2026-11-22T15:22:10Z", &t), CS_OK);
  assert_int_equal(t, 1795360930);
  assert_int_equal(cs_time_parse("2026-11-22T16:22:10.123+01:00", &t), CS_OK);
  assert_int_equal(t, 1795360930);
  assert_int_equal(cs_time_parse("2026-02-31T00:00:00Z", &t), CS_ERR_INVALID);
  assert_int_equal(cs_time_parse("2026-11-22 15:22:10Z", &t), CS_ERR_INVALID);
  assert_int_equal(cs_time_parse("2026-11-22T15:22:10", &t), CS_ERR_INVALID);
  assert_int_equal(cs_time_parse("yesterday", &t), CS_ERR_INVALID);
  assert_int_equal(cs_time_parse("2026-11-22T15:22:10Zjunk", &t), CS_ERR_INVALID);
  assert_true(cs_now() > 1700000000);
  assert_true(cs_mono_ms() > 0);
}

static void test_ids_and_numbers(void **state)
{
  uint64_t v = 0;
  char long_id[CS_ID_MAX + 2];
  (void)state;
  assert_true(cs_id_valid("aws-prod.1_x", 12));
  assert_false(cs_id_valid("", 0));
  assert_false(cs_id_valid("a/b", 3));
  assert_false(cs_id_valid("a b", 3));
  assert_false(cs_id_valid("ä", 2));
  memset(long_id, 'a', sizeof long_id);
  assert_true(cs_id_valid(long_id, CS_ID_MAX));
  assert_false(cs_id_valid(long_id, CS_ID_MAX + 1));
  assert_int_equal(cs_parse_u64("42", 100, &v), CS_OK);
  assert_int_equal(v, 42);
  assert_int_equal(cs_parse_u64("101", 100, &v), CS_ERR_INVALID);
  assert_int_equal(cs_parse_u64("-1", 100, &v), CS_ERR_INVALID);
  assert_int_equal(cs_parse_u64("", 100, &v), CS_ERR_INVALID);
  assert_int_equal(cs_parse_u64("1x", 100, &v), CS_ERR_INVALID);
  assert_int_equal(cs_parse_u64("99999999999999999999", UINT64_MAX, &v), CS_ERR_INVALID);
  assert_int_equal(cs_parse_u64("18446744073709551615", UINT64_MAX, &v), CS_OK);
  assert_true(v == UINT64_MAX);
}

#define NAME_OK(s) assert_true(cs_name_valid(s, strlen(s)))
#define NAME_BAD(s) assert_false(cs_name_valid(s, strlen(s)))

static void test_names(void **state)
{
  char n[CS_NAME_MAX + 2];
  struct cs_buf b;
  (void)state;
  NAME_OK("AWS prod account");
  NAME_OK("a+b");
  NAME_OK("100%");
  NAME_OK("q;,:@&=$?#");
  NAME_OK("x(1)!*'");
  NAME_OK("\xc3\xbc\xe2\x82\xac\xf0\x9f\x94\x91"); /* ü € and a 4-byte character */
  NAME_OK(".a");
  NAME_OK("...");
  NAME_BAD("");
  NAME_BAD(".");
  NAME_BAD("..");
  NAME_BAD(" lead");
  NAME_BAD("trail ");
  NAME_BAD("a/b");
  NAME_BAD("a\\b");
  NAME_BAD("tab\there");
  NAME_BAD("nl\n");
  NAME_BAD("del\x7f");
  NAME_BAD("c1\xc2\x85");       /* NEL */
  NAME_BAD("bad\xff");          /* what a path's %00 decodes to */
  NAME_BAD("over\xc0\xaf");     /* overlong '/' */
  NAME_BAD("surr\xed\xa0\x80"); /* a surrogate */
  NAME_BAD("cut\xc3");
  memset(n, 'a', sizeof n);
  assert_true(cs_name_valid(n, CS_NAME_CHARS));
  assert_false(cs_name_valid(n, CS_NAME_CHARS + 1));
  for (size_t i = 0; i + 1 < 2 * CS_NAME_CHARS; i += 2)
    memcpy(n + i, "\xc3\xbc", 2);
  assert_true(cs_name_valid(n, 2 * CS_NAME_CHARS)); /* 128 characters, 256 bytes */
  assert_false(cs_name_valid(n, 2 * CS_NAME_CHARS + 2));
  cs_buf_init(&b, 256);
  assert_int_equal(cs_buf_url_escape(&b, "a b+c/%\xc3\xbc~._-", 14), CS_OK);
  assert_string_equal(b.data, "a%20b%2Bc%2F%25%C3%BC~._-");
  cs_buf_wipe(&b);
}

static void test_log_level(void **state)
{
  enum cs_log_level l;
  (void)state;
  assert_int_equal(cs_log_parse_level("warn", &l), CS_OK);
  assert_int_equal(l, CS_LOG_WARN);
  assert_int_equal(cs_log_parse_level("loud", &l), CS_ERR_INVALID);
  cs_log_set_request_id("abc");
  assert_string_equal(cs_log_request_id(), "abc");
  cs_log_set_request_id(NULL);
  assert_string_equal(cs_log_request_id(), "");
}

static void test_buf_append_int(void **state)
{
  const int64_t v[] = {0, 7, -1, 200, 1234567890123LL, INT64_MAX, INT64_MIN};
  const char *want[] = {
      "0", "7", "-1", "200", "1234567890123", "9223372036854775807", "-9223372036854775808"};
  char small[4];
  struct cs_buf b;
  (void)state;
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    cs_buf_init(&b, 64);
    assert_int_equal(cs_buf_append_int(&b, v[i]), CS_OK);
    assert_string_equal(b.data, want[i]);
    cs_buf_free(&b);
  }
  b = cs_buf_fixed(small, sizeof small);
  assert_int_equal(cs_buf_append_int(&b, 1234), CS_ERR_TOO_LARGE);
  assert_int_equal(cs_buf_append_int(&b, -12), CS_OK);
  assert_string_equal(small, "-12");
}

/* Log lines written to stderr, read back: the members in their order. */
static char *capture_log(void (*emit)(void))
{
  char path[] = "/tmp/cs-test-log-XXXXXX", *out = calloc(1, 16384);
  int fd = mkstemp(path), saved = dup(2);
  assert_true(fd >= 0 && saved >= 0 && out);
  fflush(stderr);
  dup2(fd, 2);
  emit();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_true(pread(fd, out, 16383, 0) > 0);
  close(fd);
  unlink(path);
  return out;
}

static void emit_lines(void)
{
  cs_log_set_node("n\"1\\");
  cs_log_set_request_id("rid-1");
  cs_log_fields(CS_LOG_INFO, "\"route\":\"get\",\"status\":200", "request");
  cs_log_set_request_id(NULL);
  cs_log_set_node(NULL);
  cs_log_write(CS_LOG_WARN, "name %s: \"%d\"\t\x01 é", "a\\b", -5);
  cs_log_write(CS_LOG_ERROR, "100%% done");
}

static void test_log_lines(void **state)
{
  char *text = capture_log(emit_lines), *l2 = NULL, *l3 = NULL;
  (void)state;
  /* {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ", … */
  const char *p = text;
  for (int line = 0; line < 3; line++) {
    assert_memory_equal(p, "{\"ts\":\"", 7);
    for (int i = 0; i < 24; i++)
      assert_true(strchr("-T:.Z", p[7 + i]) ? strchr("0123456789", p[7 + i]) == NULL
                                            : p[7 + i] >= '0' && p[7 + i] <= '9');
    assert_memory_equal(p + 7 + 4, "-", 1);
    assert_memory_equal(p + 7 + 10, "T", 1);
    assert_memory_equal(p + 7 + 19, ".", 1);
    assert_memory_equal(p + 7 + 23, "Z\"", 2);
    p = strchr(p, '\n');
    assert_non_null(p);
    p++;
    if (line == 0)
      l2 = (char *)p;
    if (line == 1)
      l3 = (char *)p;
  }
  assert_string_equal(p, "");
  assert_memory_equal(text + 32,
                      ",\"level\":\"info\",\"node\":\"n\\\"1\\\\\",\"rid\":\"rid-1\","
                      "\"msg\":\"request\",\"route\":\"get\",\"status\":200}\n",
                      strlen(",\"level\":\"info\",\"node\":\"n\\\"1\\\\\",\"rid\":\"rid-1\","
                             "\"msg\":\"request\",\"route\":\"get\",\"status\":200}\n"));
  const char *w2 = ",\"level\":\"warn\",\"msg\":\"name a\\\\b: \\\"-5\\\"\\t\\u0001 é\"}\n";
  assert_memory_equal(l2 + 32, w2, strlen(w2));
  const char *w3 = ",\"level\":\"error\",\"msg\":\"100% done\"}\n";
  assert_memory_equal(l3 + 32, w3, strlen(w3));
  /* The timestamp's date part is the same clock's. */
  char now[32];
  cs_time_format(cs_now(), now);
  assert_memory_equal(text + 7, now, 10);
  free(text);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_err_registry),
      cmocka_unit_test(test_buf_cap),
      cmocka_unit_test(test_json_escape),
      cmocka_unit_test(test_json_parse),
      cmocka_unit_test(test_json_nul_and_utf8),
      cmocka_unit_test(test_json_fields),
      cmocka_unit_test(test_json_wipe),
      cmocka_unit_test(test_time),
      cmocka_unit_test(test_time_format_matches_strftime),
      cmocka_unit_test(test_ids_and_numbers),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_log_level),
      cmocka_unit_test(test_buf_append_int),
      cmocka_unit_test(test_log_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
