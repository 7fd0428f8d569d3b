/* cmocka tests for the HTTP layer's guards in server/: client addresses and
 * their groups (netaddr.c), X-Forwarded-For behind trusted proxies, the
 * brute-force table (ratelimit.c) and the Basic credential parser. */
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
#include <pthread.h>
#include <time.h>

#include "auth.h"
#include "netaddr.h"
#include "ratelimit.h"

static struct cs_addr addr(const char *s)
{
  struct cs_addr a;
  assert_int_equal(cs_addr_parse(s, strlen(s), &a), CS_OK);
  return a;
}

static void assert_text(const struct cs_addr *a, const char *want)
{
  char text[CS_ADDR_STR_MAX];
  cs_addr_format(a, text);
  assert_string_equal(text, want);
}

/* ------------------------------------------------------------ addresses */

static void test_addr_parse_forms(void **state)
{
  (void)state;
  struct cs_addr a = addr("192.0.2.1"), m = addr("::ffff:192.0.2.1");
  assert_true(cs_addr_equal(&a, &m)); /* IPv4-mapped IPv6 is IPv4 */
  assert_true(cs_addr_is_v4(&m));
  assert_text(&m, "192.0.2.1");
  struct cs_addr p = addr(" 192.0.2.1:8080\t");
  assert_true(cs_addr_equal(&a, &p));
  struct cs_addr b = addr("[2001:db8::1]:443"), c = addr("2001:DB8:0::1");
  struct cs_addr d = addr("[2001:db8::1]");
  assert_true(cs_addr_equal(&b, &c) && cs_addr_equal(&b, &d));
  assert_false(cs_addr_is_v4(&b));
  assert_text(&b, "2001:db8::1");

  const char *bad[] = {"",
                       " ",
                       "1.2.3",
                       "01.2.3.4",
                       "1.2.3.4:",
                       "1.2.3.4:99999",
                       "1.2.3.4:80:81",
                       "fe80::1%eth0",
                       "[::1",
                       "::1]:80",
                       "[::1]x",
                       "host.example",
                       "1.2.3.4 5",
                       "256.1.1.1",
                       "[1.2.3.4]",
                       "::1::2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct cs_addr out = addr("198.51.100.77"), before = out;
    assert_int_equal(cs_addr_parse(bad[i], strlen(bad[i]), &out), CS_ERR_INVALID);
    assert_true(cs_addr_equal(&out, &before)); /* untouched on failure */
  }
  /* Only @p len bytes are read. */
  struct cs_addr cut;
  assert_int_equal(cs_addr_parse("10.0.0.1junk", 8, &cut), CS_OK);
  assert_text(&cut, "10.0.0.1");
}

static void test_addr_from_sockaddr(void **state)
{
  (void)state;
  struct sockaddr_in s4 = {.sin_family = AF_INET};
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  struct cs_addr a4, a6;
  inet_pton(AF_INET, "203.0.113.5", &s4.sin_addr);
  inet_pton(AF_INET6, "::ffff:203.0.113.5", &s6.sin6_addr);
  assert_int_equal(cs_addr_from_sockaddr((struct sockaddr *)&s4, &a4), CS_OK);
  assert_int_equal(cs_addr_from_sockaddr((struct sockaddr *)&s6, &a6), CS_OK);
  assert_true(cs_addr_equal(&a4, &a6));
  struct sockaddr unix_sa = {.sa_family = AF_UNIX};
  assert_int_equal(cs_addr_from_sockaddr(&unix_sa, &a4), CS_ERR_INVALID);
  assert_int_equal(cs_addr_from_sockaddr(NULL, &a4), CS_ERR_INVALID);
}

static void test_addr_groups(void **state)
{
  (void)state;
  /* IPv6: one /64 is one client; the next /64 is another. */
  struct cs_addr x = addr("2001:db8:1:2:aaaa::1"), y = addr("2001:db8:1:2:ffff:ffff:ffff:ffff"),
                 z = addr("2001:db8:1:3::1");
  struct cs_addr gx = cs_addr_group(&x), gy = cs_addr_group(&y), gz = cs_addr_group(&z);
  assert_true(cs_addr_equal(&gx, &gy));
  assert_false(cs_addr_equal(&gx, &gz));
  assert_text(&gx, "2001:db8:1:2::");
  assert_int_equal(cs_addr_hash(&gx), cs_addr_hash(&gy));
  /* IPv4, mapped or not, is grouped by the whole address. */
  struct cs_addr a = addr("192.0.2.1"), b = addr("192.0.2.2"), m = addr("::ffff:192.0.2.1");
  struct cs_addr ga = cs_addr_group(&a), gb = cs_addr_group(&b), gm = cs_addr_group(&m);
  assert_true(cs_addr_equal(&ga, &a) && cs_addr_equal(&ga, &gm));
  assert_false(cs_addr_equal(&ga, &gb));
  assert_text(&gm, "192.0.2.1");
}

/* ----------------------------------------------------------- CIDR lists */

static void test_cidr_lists(void **state)
{
  (void)state;
  struct cs_cidr_list *l = NULL;
  assert_int_equal(cs_cidr_list_parse("10.0.0.0/8, 192.0.2.7 ,fd00::/8,::ffff:172.16.0.0/108", &l),
                   CS_OK);
  const char *in[] = {"10.255.1.2", "192.0.2.7", "fd12:3456::1", "172.16.5.5", "::ffff:10.0.0.1"};
  const char *out[] = {"11.0.0.1", "192.0.2.8", "fe80::1", "172.32.0.1", "::1", "2001:db8::"};
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    struct cs_addr a = addr(in[i]);
    assert_true(cs_cidr_list_match(l, &a));
  }
  for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
    struct cs_addr a = addr(out[i]);
    assert_false(cs_cidr_list_match(l, &a));
  }
  cs_cidr_list_free(l);
  /* Host bits are masked off; /0 takes everything of its family. */
  assert_int_equal(cs_cidr_list_parse("10.1.2.3/8,0.0.0.0/0", &l), CS_OK);
  struct cs_addr v4 = addr("8.8.8.8"), v6 = addr("2001:db8::1");
  assert_true(cs_cidr_list_match(l, &v4));
  assert_false(cs_cidr_list_match(l, &v6));
  cs_cidr_list_free(l);
  cs_cidr_list_free(NULL);
  assert_false(cs_cidr_list_match(NULL, &v4));

  const char *bad[] = {"",           ",",         "10.0.0.0/8,",  "10.0.0.0/33",
                       "fd00::/129", "10.0.0.0/", "10.0.0.0/-1",  "abc",
                       "1.2.3.4:80", "[::1]/128", "10.0.0.0/8/8", "10.0.0.0/08x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    l = NULL;
    assert_int_equal(cs_cidr_list_parse(bad[i], &l), CS_ERR_INVALID);
    assert_null(l);
  }
}

/* ------------------------------------------------------- X-Forwarded-For */

static struct cs_addr client(const char *trusted, const char *peer, const char *const *xff,
                             size_t n)
{
  struct cs_cidr_list *l = NULL;
  if (trusted)
    assert_int_equal(cs_cidr_list_parse(trusted, &l), CS_OK);
  struct cs_addr p = addr(peer);
  struct cs_addr c = cs_client_addr(l, &p, xff, n);
  cs_cidr_list_free(l);
  return c;
}

static void test_xff(void **state)
{
  (void)state;
  const char *chain[] = {"203.0.113.9, 198.51.100.1, 10.0.0.2"};
  struct cs_addr c;
  /* An untrusted peer cannot name another client. */
  c = client(NULL, "127.0.0.1", chain, 1);
  assert_text(&c, "127.0.0.1");
  c = client("10.0.0.0/8", "192.0.2.1", chain, 1);
  assert_text(&c, "192.0.2.1");
  /* A trusted peer: the right-most hop that is not trusted. A client can
   * prepend anything; only what the trusted proxies appended counts. */
  c = client("127.0.0.1/32,10.0.0.0/8", "127.0.0.1", chain, 1);
  assert_text(&c, "198.51.100.1");
  /* Several headers are one chain, in order. */
  const char *two[] = {"203.0.113.9", "198.51.100.1 , 10.0.0.2"};
  c = client("127.0.0.1/32,10.0.0.0/8", "127.0.0.1", two, 2);
  assert_text(&c, "198.51.100.1");
  const char *two_b[] = {"198.51.100.1", "10.0.0.2"};
  c = client("127.0.0.1/32,10.0.0.0/8", "127.0.0.1", two_b, 2);
  assert_text(&c, "198.51.100.1");
  /* Every hop trusted: the left-most. */
  const char *inner[] = {"10.0.0.5, 10.0.0.2"};
  c = client("127.0.0.1/32,10.0.0.0/8", "127.0.0.1", inner, 1);
  assert_text(&c, "10.0.0.5");
  /* A malformed hop ends the walk at the last trusted address. */
  const char *junk[] = {"198.51.100.1, unknown, 10.0.0.2"};
  c = client("127.0.0.1/32,10.0.0.0/8", "127.0.0.1", junk, 1);
  assert_text(&c, "10.0.0.2");
  const char *empty[] = {""};
  c = client("127.0.0.1/32", "127.0.0.1", empty, 1);
  assert_text(&c, "127.0.0.1");
  /* Ports and brackets as some proxies write them; IPv6 peers. */
  const char *ported[] = {"[2001:db8::7]:51000, 192.0.2.44:443"};
  c = client("::1/128,192.0.2.0/24", "::1", ported, 1);
  assert_text(&c, "2001:db8::7");
  /* No header: the proxy itself. */
  c = client("127.0.0.1/32", "127.0.0.1", NULL, 0);
  assert_text(&c, "127.0.0.1");
  /* The walk is bounded: past CS_XFF_MAX_HOPS trusted hops it stops. */
  char longchain[CS_XFF_MAX_HOPS * 12 + 32];
  size_t len = (size_t)snprintf(longchain, sizeof longchain, "198.51.100.1");
  for (int i = 0; i < CS_XFF_MAX_HOPS + 1; i++)
    len += (size_t)snprintf(longchain + len, sizeof longchain - len, ", 10.0.0.9");
  const char *lc[] = {longchain};
  c = client("127.0.0.1/32,10.0.0.0/8", "127.0.0.1", lc, 1);
  assert_text(&c, "10.0.0.9");
}

/* ------------------------------------------------------------ rate limit */

static struct cs_addr nth(unsigned i)
{
  struct cs_addr a = addr("10.0.0.0");
  a.b[13] = (uint8_t)(i >> 16);
  a.b[14] = (uint8_t)(i >> 8);
  a.b[15] = (uint8_t)i;
  return a;
}

static void fail_once(struct cs_ratelimit *rl, const struct cs_addr *a, int64_t now)
{
  assert_int_equal(cs_rl_begin(rl, a, now), CS_RL_GO);
  cs_rl_end(rl, a, true, now);
}

static void test_rl_limit_and_cooloff(void **state)
{
  (void)state;
  struct cs_ratelimit *rl = NULL;
  struct cs_addr a = nth(1), b = nth(2);
  int64_t t = 1000;
  assert_int_equal(cs_rl_create(1024, 3, 60, &rl), CS_OK);
  fail_once(rl, &a, t);
  fail_once(rl, &a, t);
  assert_int_equal(cs_rl_begin(rl, &a, t), CS_RL_GO);
  assert_true(cs_rl_end(rl, &a, true, t)); /* the third starts the cool-off */
  assert_int_equal(cs_rl_begin(rl, &a, t + 1), CS_RL_COOLING_FIRST);
  assert_int_equal(cs_rl_begin(rl, &a, t + 2), CS_RL_COOLING);
  assert_int_equal(cs_rl_begin(rl, &a, t + 59), CS_RL_COOLING);
  /* Another subject is not held back. */
  assert_int_equal(cs_rl_begin(rl, &b, t + 2), CS_RL_GO);
  cs_rl_end(rl, &b, false, t + 2);
  /* After the cool-off, a fresh budget. */
  fail_once(rl, &a, t + 60);
  fail_once(rl, &a, t + 60);
  assert_int_equal(cs_rl_begin(rl, &a, t + 60), CS_RL_GO);
  assert_true(cs_rl_end(rl, &a, true, t + 60));
  assert_int_equal(cs_rl_begin(rl, &a, t + 61), CS_RL_COOLING_FIRST);
  cs_rl_destroy(rl);
  cs_rl_destroy(NULL);
  assert_int_equal(cs_rl_create(0, 3, 60, &rl), CS_ERR_INVALID);
  assert_int_equal(cs_rl_create(8, 0, 60, &rl), CS_ERR_INVALID);
}

static void test_rl_success_does_not_clear_failures(void **state)
{
  (void)state;
  struct cs_ratelimit *rl = NULL;
  struct cs_addr a = nth(7);
  assert_int_equal(cs_rl_create(64, 4, 60, &rl), CS_OK);
  /* Wrong, right, wrong, right...: a valid key of one's own must not buy
   * more guesses at others. */
  int failures = 0;
  enum cs_rl_verdict v = CS_RL_GO;
  for (int i = 0; i < 20 && (v = cs_rl_begin(rl, &a, 500)) == CS_RL_GO; i++) {
    bool wrong = i % 2 == 0;
    cs_rl_end(rl, &a, wrong, 500);
    failures += wrong;
  }
  assert_int_equal(failures, 4);
  assert_int_equal(v, CS_RL_COOLING_FIRST);
  assert_int_equal(cs_rl_begin(rl, &a, 500), CS_RL_COOLING);
  cs_rl_destroy(rl);
}

static void test_rl_window_expires(void **state)
{
  (void)state;
  struct cs_ratelimit *rl = NULL;
  struct cs_addr a = nth(3);
  assert_int_equal(cs_rl_create(64, 3, 60, &rl), CS_OK);
  fail_once(rl, &a, 100);
  fail_once(rl, &a, 100);
  /* Failures older than the window are forgotten. */
  fail_once(rl, &a, 100 + CS_RL_WINDOW);
  fail_once(rl, &a, 100 + CS_RL_WINDOW);
  assert_int_equal(cs_rl_begin(rl, &a, 100 + CS_RL_WINDOW), CS_RL_GO);
  assert_true(cs_rl_end(rl, &a, true, 100 + CS_RL_WINDOW));
  cs_rl_destroy(rl);
}

/* No stream of other subjects evicts a live counter, and when there is no
 * room a new subject is refused rather than counted nowhere. */
static void test_rl_no_eviction_fail_closed(void **state)
{
  (void)state;
  struct cs_ratelimit *rl = NULL;
  struct cs_addr victim = nth(0);
  int64_t t = 2000;
  assert_int_equal(cs_rl_create(64, 5, 60, &rl), CS_OK);
  for (int i = 0; i < 4; i++)
    fail_once(rl, &victim, t);
  unsigned full = 0;
  for (unsigned i = 1; i <= 5000; i++) {
    struct cs_addr o = nth(i);
    enum cs_rl_verdict v = cs_rl_begin(rl, &o, t);
    if (v == CS_RL_FULL) {
      full++;
      continue;
    }
    assert_int_equal(v, CS_RL_GO);
    cs_rl_end(rl, &o, true, t);
  }
  assert_true(full > 4000); /* at most 64 subjects fit */
  /* The victim's four failures are still there: one more blocks it. */
  assert_int_equal(cs_rl_begin(rl, &victim, t), CS_RL_GO);
  assert_true(cs_rl_end(rl, &victim, true, t));
  assert_int_equal(cs_rl_begin(rl, &victim, t), CS_RL_COOLING_FIRST);
  /* A new subject needs a slot even for an attempt that would succeed. */
  struct cs_addr fresh = nth(99999);
  assert_int_equal(cs_rl_begin(rl, &fresh, t), CS_RL_FULL);
  /* Once the window has passed, expired subjects make room again. */
  assert_int_equal(cs_rl_begin(rl, &fresh, t + CS_RL_WINDOW + 61), CS_RL_GO);
  cs_rl_end(rl, &fresh, false, t + CS_RL_WINDOW + 61);
  cs_rl_destroy(rl);
}

/* A success leaves nothing behind: the slot is reusable at once. */
static void test_rl_successes_hold_no_slot(void **state)
{
  (void)state;
  struct cs_ratelimit *rl = NULL;
  assert_int_equal(cs_rl_create(8, 3, 60, &rl), CS_OK);
  for (unsigned i = 0; i < 1000; i++) {
    struct cs_addr o = nth(i);
    assert_int_equal(cs_rl_begin(rl, &o, 10), CS_RL_GO);
    cs_rl_end(rl, &o, false, 10);
  }
  cs_rl_destroy(rl);
}

struct finisher {
  struct cs_ratelimit *rl;
  struct cs_addr a;
};

static void *finish_one_later(void *arg)
{
  struct finisher *f = arg;
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  cs_rl_end(f->rl, &f->a, false, 10);
  return NULL;
}

/* Attempts in flight count: concurrent guesses cannot overrun the limit. */
static void test_rl_inflight_counts(void **state)
{
  (void)state;
  struct cs_ratelimit *rl = NULL;
  struct finisher f;
  pthread_t th;
  assert_int_equal(cs_rl_create(64, 3, 60, &rl), CS_OK);
  f.rl = rl;
  f.a = nth(5);
  for (int i = 0; i < 3; i++)
    assert_int_equal(cs_rl_begin(rl, &f.a, 10), CS_RL_GO);
  /* The budget is held by running attempts: the next waits, then gives up. */
  time_t t0 = time(NULL);
  assert_int_equal(cs_rl_begin(rl, &f.a, 10), CS_RL_COOLING);
  assert_true(time(NULL) - t0 <= 3);
  /* One finishing in success lets a waiter through. */
  assert_int_equal(pthread_create(&th, NULL, finish_one_later, &f), 0);
  assert_int_equal(cs_rl_begin(rl, &f.a, 10), CS_RL_GO);
  pthread_join(th, NULL);
  /* All three remaining fail: cooling off, with no fourth failure possible. */
  for (int i = 0; i < 3; i++)
    cs_rl_end(rl, &f.a, true, 10);
  assert_int_equal(cs_rl_begin(rl, &f.a, 11), CS_RL_COOLING_FIRST);
  cs_rl_destroy(rl);
}

/* ----------------------------------------------------------------- Basic */

static void test_basic_split(void **state)
{
  (void)state;
  char buf[CS_BASIC_MAX + 1];
  const char *id = NULL, *secret = NULL;
  char *b64 = cs_base64_encode((const uint8_t *)"ak-1:s3:cret", 12);
  assert_int_equal(cs_auth_basic_split(b64, buf, &id, &secret), CS_OK);
  assert_string_equal(id, "ak-1");
  assert_string_equal(secret, "s3:cret"); /* split at the first colon */
  free(b64);
  /* Empty ids and secrets parse; authentication then refuses and counts them. */
  b64 = cs_base64_encode((const uint8_t *)":", 1);
  assert_int_equal(cs_auth_basic_split(b64, buf, &id, &secret), CS_OK);
  assert_string_equal(id, "");
  assert_string_equal(secret, "");
  free(b64);

  const char *bad[] = {"", "!!!notbase64", "bm9jb2xvbg==" /* nocolon */, "YQBiOmM=" /* "a\0b:c" */,
                       "YTpi"
                       "=" /* bad padding */};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    id = secret = NULL;
    assert_int_equal(cs_auth_basic_split(bad[i], buf, &id, &secret), CS_ERR_BAD_CREDENTIALS);
    assert_null(id);
    assert_null(secret);
  }
  uint8_t big[CS_BASIC_MAX + 1];
  memset(big, 'a', sizeof big);
  big[0] = ':';
  b64 = cs_base64_encode(big, sizeof big);
  assert_int_equal(cs_auth_basic_split(b64, buf, &id, &secret), CS_ERR_BAD_CREDENTIALS);
  free(b64);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_addr_parse_forms),
      cmocka_unit_test(test_addr_from_sockaddr),
      cmocka_unit_test(test_addr_groups),
      cmocka_unit_test(test_cidr_lists),
      cmocka_unit_test(test_xff),
      cmocka_unit_test(test_rl_limit_and_cooloff),
      cmocka_unit_test(test_rl_success_does_not_clear_failures),
      cmocka_unit_test(test_rl_window_expires),
      cmocka_unit_test(test_rl_no_eviction_fail_closed),
      cmocka_unit_test(test_rl_successes_hold_no_slot),
      cmocka_unit_test(test_rl_inflight_counts),
      cmocka_unit_test(test_basic_split),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
