/* Unit tests for the webhook target policy (providers/http_policy.c): the
 * static URL check at registration, the address check the client applies to
 * every connection, the operator's allow and deny lists and their
 * precedence, and option parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "providers.h"

static struct cs_http_policy *policy(const char *allow, const char *deny)
{
  struct cs_http_policy *p = NULL;
  char err[256] = "";
  assert_int_equal(cs_http_policy_create(allow, deny, &p, err, sizeof err), CS_OK);
  assert_non_null(p);
  return p;
}

static enum cs_err check(const struct cs_http_policy *p, const char *url)
{
  const char *why = NULL;
  char target[CS_HTTP_TARGET_MAX];
  enum cs_err e = cs_http_check_url(p, url, target, &why);
  if (e) {
    assert_non_null(why);
    assert_true(strstr(why, "callbackUrl") != NULL);
  }
  return e;
}

/* May a connection for @p host go to the literal address @p addr? */
static bool allows(const struct cs_http_policy *p, const char *host, const char *addr)
{
  struct sockaddr_in s4 = {0};
  struct sockaddr_in6 s6 = {0};
  if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
    s4.sin_family = AF_INET;
    return cs_http_policy_allows_addr(p, host, (struct sockaddr *)&s4);
  }
  assert_int_equal(inet_pton(AF_INET6, addr, &s6.sin6_addr), 1);
  s6.sin6_family = AF_INET6;
  return cs_http_policy_allows_addr(p, host, (struct sockaddr *)&s6);
}

/* Every spelling of a link-local, metadata or otherwise non-destination
 * address that libcurl or libc would connect to. */
static const char *const denied_urls[] = {
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254./latest/meta-data/",
    "http://169.254.169.254%2e/",
    "http://2852039166/",
    "http://2852039166./",
    "http://0251.0376.0251.0376/",
    "http://0251.0376.0251.0376./",
    "http://0xa9fea9fe/",
    "http://0xa9fea9fe./",
    "http://0xA9.0xFE.0xA9.0xFE/",
    "http://169.254.43518/",
    "http://169.16689662/",
    "http://%31%36%39.254.169.254/",
    "https://169.254.170.2/v2/credentials",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]:80/",
    "http://[64:ff9b::169.254.169.254]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[FEBF::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://168.63.129.16/machine",
    "http://0.0.0.0:8080/",
    "http://0/",
    "http://0.0.0.0./",
    "http://[::]/",
    "http://[::ffff:0.0.0.0]/",
    "http://224.0.0.1/",
    "http://239.255.255.250:1900/",
    "http://255.255.255.255/",
    "http://[ff02::1]/",
};

static void test_denied_spellings(void **state)
{
  (void)state;
  struct cs_http_policy *p = policy(NULL, NULL);
  for (size_t i = 0; i < sizeof denied_urls / sizeof denied_urls[0]; i++) {
    if (check(p, denied_urls[i]) != CS_ERR_FORBIDDEN)
      fail_msg("not refused: %s", denied_urls[i]);
  }
  /* Without a policy (credential-process) only the URL's form is checked. */
  assert_int_equal(check(NULL, "http://169.254.169.254/"), CS_OK);
  cs_http_policy_free(p);
}

static void test_allowed_by_default(void **state)
{
  (void)state;
  static const char *const ok[] = {
      "http://127.0.0.1:8080/hook",
      "http://127.0.0.2/",
      "http://[::1]:9/",
      "http://localhost/",
      "http://10.1.2.3/",
      "http://192.168.0.10:81/x?y=1",
      "http://172.16.0.1/",
      "http://[fd00::1]/",
      "http://[fd00:ec2::253]/",
      "https://hooks.example.com/credstore",
      "http://100.100.100.201/",
      "http://169.253.255.255/",
      "http://169.255.0.1/",
      "http://metadata.google.internal/"}; /* a name: judged where it connects */
  struct cs_http_policy *p = policy(NULL, NULL);
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (check(p, ok[i]) != CS_OK)
      fail_msg("refused: %s", ok[i]);
  cs_http_policy_free(p);
}

static void test_url_form(void **state)
{
  (void)state;
  static const char *const bad[] = {"ftp://h/",
                                    "file:///etc/passwd",
                                    "gopher://h/",
                                    "http://",
                                    "https://",
                                    "http:///x",
                                    "http://a b/",
                                    "h/x",
                                    "//h/x",
                                    "http://h:99999/",
                                    "http://h\x01/",
                                    "http://h\xc3\xa9/",
                                    "http://ex..ample/",
                                    "http://h../",
                                    "http://.h/",
                                    "http://[::1/",
                                    ""};
  static const char *const userinfo[] = {
      "http://user:pass@127.0.0.1/", "http://user@127.0.0.1/",         "http://:pass@127.0.0.1/",
      "http://@127.0.0.1/",          "https://u:p@hooks.example.com/", "http://a%40b:c@h/",
      "http://u;auth=x@h/"};
  char longurl[2100];
  struct cs_http_policy *p = policy(NULL, NULL);

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (check(p, bad[i]) != CS_ERR_INVALID)
      fail_msg("accepted: %s", bad[i]);
  for (size_t i = 0; i < sizeof userinfo / sizeof userinfo[0]; i++) {
    const char *why = NULL;
    if (cs_http_check_url(p, userinfo[i], NULL, &why) != CS_ERR_INVALID)
      fail_msg("userinfo accepted: %s", userinfo[i]);
    assert_non_null(strstr(why, "user name or password"));
    assert_int_equal(cs_http_check_url(NULL, userinfo[i], NULL, &why), CS_ERR_INVALID);
  }
  memset(longurl, 'a', sizeof longurl - 1);
  memcpy(longurl, "http://h/", 9);
  longurl[sizeof longurl - 1] = '\0';
  assert_int_equal(check(p, longurl), CS_ERR_INVALID);
  cs_http_policy_free(p);
}

static void test_target_keys(void **state)
{
  (void)state;
  static const char *const pairs[][2] = {
      {"HTTP://Hooks.Example.COM/x", "http://hooks.example.com:80"},
      {"https://hooks.example.com./x?y", "https://hooks.example.com:443"},
      {"http://127.0.0.1:8080/a", "http://127.0.0.1:8080"},
      {"http://2130706433:81/", "http://127.0.0.1:81"},
      {"http://0x7f000001./", "http://127.0.0.1:80"},
      {"http://[0:0::1]:9/", "http://[::1]:9"},
      {"https://[::1]/", "https://[::1]:443"},
      {"http://[::FFFF:127.0.0.1]:9/", "http://[::ffff:127.0.0.1]:9"},
  };
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    char target[CS_HTTP_TARGET_MAX] = "";
    const char *why;
    assert_int_equal(cs_http_check_url(NULL, pairs[i][0], target, &why), CS_OK);
    assert_string_equal(target, pairs[i][1]);
  }
}

static void test_connect_addresses(void **state)
{
  (void)state;
  static const char *const denied[] = {"169.254.169.254",
                                       "169.254.0.1",
                                       "::ffff:169.254.169.254",
                                       "64:ff9b::a9fe:a9fe",
                                       "fe80::1",
                                       "febf:ffff::1",
                                       "fd00:ec2::254",
                                       "100.100.100.200",
                                       "168.63.129.16",
                                       "0.0.0.0",
                                       "0.1.2.3",
                                       "::",
                                       "::ffff:0.0.0.0",
                                       "224.0.0.251",
                                       "255.255.255.255",
                                       "240.0.0.1",
                                       "ff02::1"};
  static const char *const allowed[] = {
      "127.0.0.1", "127.0.0.2", "::1",     "::ffff:127.0.0.1", "10.0.0.1",   "192.168.1.1",
      "fd00::1",   "fec0::1",   "8.8.8.8", "2001:db8::1",      "169.255.0.0"};
  struct cs_http_policy *p = policy(NULL, NULL);
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
    if (allows(p, "hooks.example.com", denied[i]))
      fail_msg("connect allowed: %s", denied[i]);
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
    if (!allows(p, "hooks.example.com", allowed[i]))
      fail_msg("connect refused: %s", allowed[i]);
  cs_http_policy_free(p);
}

static void test_operator_lists(void **state)
{
  (void)state;
  /* An allow entry more specific than a built-in deny lets it through. */
  struct cs_http_policy *p = policy("169.254.169.254", NULL);
  assert_int_equal(check(p, "http://169.254.169.254/latest/"), CS_OK);
  assert_int_equal(check(p, "http://2852039166/"), CS_OK);
  assert_true(allows(p, "x", "::ffff:169.254.169.254"));
  assert_false(allows(p, "x", "169.254.169.253"));
  assert_int_equal(check(p, "http://169.254.169.253/"), CS_ERR_FORBIDDEN);
  cs_http_policy_free(p);

  /* An equally specific allow beats a built-in deny. */
  p = policy("fe80::/10", NULL);
  assert_true(allows(p, "x", "fe80::1"));
  assert_false(allows(p, "x", "169.254.1.1"));
  cs_http_policy_free(p);

  /* Restrict to a few targets: deny everything, allow what is more specific. */
  p = policy("127.0.0.1/32, hooks.example.com", "0.0.0.0/0,::/0");
  assert_true(allows(p, "localhost", "127.0.0.1"));
  assert_false(allows(p, "localhost", "127.0.0.2"));
  assert_false(allows(p, "localhost", "::1"));
  assert_false(allows(p, "other.example.com", "8.8.8.8"));
  assert_true(allows(p, "hooks.example.com", "8.8.8.8"));
  assert_int_equal(check(p, "http://127.0.0.2/"), CS_ERR_FORBIDDEN);
  assert_int_equal(check(p, "http://[::ffff:127.0.0.2]/"), CS_ERR_FORBIDDEN);
  assert_int_equal(check(p, "http://127.0.0.1/"), CS_OK);
  assert_int_equal(check(p, "https://Hooks.Example.com./"), CS_OK);
  assert_int_equal(check(p, "http://other.example.com/"), CS_OK); /* a name: judged at connect */
  cs_http_policy_free(p);

  /* At equal prefix length a deny beats an allow; a name deny beats a name allow. */
  p = policy("10.0.0.0/8,hooks.example.com,*.example.net", "10.0.0.0/8,hooks.example.com");
  assert_false(allows(p, "x", "10.1.1.1"));
  assert_int_equal(check(p, "http://hooks.example.com/"), CS_ERR_FORBIDDEN);
  assert_true(allows(p, "a.example.net", "169.254.169.254")); /* a name allow decides */
  assert_false(allows(p, "example.net", "169.254.169.254"));  /* *. means subdomains */
  cs_http_policy_free(p);

  /* Deny names and more specific ranges inside what is allowed. */
  p = policy("10.0.0.0/8", "10.9.0.0/16,localhost,*.internal.test");
  assert_true(allows(p, "x", "10.1.0.1"));
  assert_false(allows(p, "x", "10.9.0.1"));
  assert_int_equal(check(p, "http://localhost:8080/"), CS_ERR_FORBIDDEN);
  assert_int_equal(check(p, "http://LOCALHOST./"), CS_ERR_FORBIDDEN);
  assert_int_equal(check(p, "http://a.b.internal.test/"), CS_ERR_FORBIDDEN);
  assert_int_equal(check(p, "http://internal.test/"), CS_OK);
  assert_false(allows(p, "localhost", "127.0.0.1"));
  assert_true(allows(p, "localhost.example", "127.0.0.1"));
  cs_http_policy_free(p);
}

static void test_option_errors(void **state)
{
  (void)state;
  static const char *const bad[] = {
      "10.0.0.0/33", "1.2.3.4/x", "1.2.3.4/", "::/129", "bad host!",
      "a..b",        "/8",        "*.",       "host/8", "10.0.0.0/8,http://x/",
      "fe80::1/1000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct cs_http_policy *p = NULL;
    char err[256] = "";
    if (cs_http_policy_create(NULL, bad[i], &p, err, sizeof err) != CS_ERR_INVALID)
      fail_msg("accepted --webhook-deny %s", bad[i]);
    assert_null(p);
    assert_non_null(strstr(err, "--webhook-deny"));
    assert_int_equal(cs_http_policy_create(bad[i], NULL, &p, err, sizeof err), CS_ERR_INVALID);
    assert_non_null(strstr(err, "--webhook-allow"));
  }
  /* Blank items and spaces around items are fine. */
  struct cs_http_policy *p = policy(" 10.0.0.0/8 , ,fd00::/8,", "");
  cs_http_policy_free(p);
  cs_http_policy_free(NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_denied_spellings),  cmocka_unit_test(test_allowed_by_default),
      cmocka_unit_test(test_url_form),          cmocka_unit_test(test_target_keys),
      cmocka_unit_test(test_connect_addresses), cmocka_unit_test(test_operator_lists),
      cmocka_unit_test(test_option_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
