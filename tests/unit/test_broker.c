/* Unit tests for the broker's parts that need no upstream: the cache
 * (single-flight, renewal when due, fallback when a renewal fails,
 * invalidation, bounds), the AWS refresh-window rule, the token-response
 * parser, the outbound client's reach rules (refused before any packet is
 * sent) and the network entries' request checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aws/aws_internal.h"
#include "prov_internal.h"

#include <pthread.h>
#include <unistd.h>

/* ---------------------------------------------------------------- cache */

struct fake {
  pthread_mutex_t lock;
  int calls;
  int fail;          /* fail the next N fetches */
  int64_t lifetime;  /* expires_at = now + lifetime */
  int64_t serve_for; /* serve_until = now + serve_for */
  useconds_t delay;
  char value[8];
};

static enum cs_err fake_fetch(void *arg, struct cs_cache_val *out, struct cs_net_error *err)
{
  struct fake *f = arg;
  int n;

  pthread_mutex_lock(&f->lock);
  n = ++f->calls;
  pthread_mutex_unlock(&f->lock);
  if (f->delay)
    usleep(f->delay);
  if (f->fail > 0) {
    f->fail--;
    return cs_net_fail(err, CS_ERR_UPSTREAM, "Down", "upstream is down (call %d)", n);
  }
  out->data = calloc(1, 32);
  assert_non_null(out->data);
  snprintf(out->data, 32, "%.7s-%d", f->value, n % 100000);
  out->len = 32;
  out->expires_at = cs_now() + f->lifetime;
  out->serve_until = cs_now() + f->serve_for;
  return CS_OK;
}

static enum cs_err get(struct cs_cache *c, struct fake *f, const char *key, const char *cred,
                       char *got, enum cs_cache_how *how)
{
  struct cs_cache_req r = {key, strlen(key), cred, fake_fetch, f, 32};
  struct cs_cache_val v = {0};
  struct cs_net_error err = {0};
  enum cs_err e = cs_cache_get(c, &r, &v, &err, how);

  if (e == CS_OK)
    snprintf(got, 32, "%.31s", (char *)v.data);
  else
    snprintf(got, 32, "%.31s", err.code);
  cs_cache_val_wipe(&v);
  return e;
}

static struct fake new_fake(int64_t lifetime, int64_t serve_for)
{
  struct fake f = {.lifetime = lifetime, .serve_for = serve_for};
  pthread_mutex_init(&f.lock, NULL);
  snprintf(f.value, sizeof f.value, "v");
  return f;
}

static void test_cache_hit_miss_and_keys(void **state)
{
  struct cs_cache *c;
  struct fake f = new_fake(3600, 3000);
  enum cs_cache_how how;
  char got[32];
  (void)state;

  assert_int_equal(cs_cache_create(0, 0, &c), CS_OK);
  assert_int_equal(get(c, &f, "k1", "cred-a", got, &how), CS_OK);
  assert_string_equal(got, "v-1");
  assert_int_equal(how, CS_CACHE_MISS);
  assert_int_equal(get(c, &f, "k1", "cred-a", got, &how), CS_OK);
  assert_string_equal(got, "v-1");
  assert_int_equal(how, CS_CACHE_HIT);
  /* Another key, even a prefix of it, is another entry. */
  assert_int_equal(get(c, &f, "k", "cred-a", got, &how), CS_OK);
  assert_string_equal(got, "v-2");
  assert_int_equal(f.calls, 2);
  /* Invalidation by credential id drops both; another id's entry stays. */
  assert_int_equal(get(c, &f, "other", "cred-b", got, &how), CS_OK);
  cs_cache_invalidate(c, "cred-a");
  assert_int_equal(get(c, &f, "k1", "cred-a", got, &how), CS_OK);
  assert_string_equal(got, "v-4");
  assert_int_equal(how, CS_CACHE_MISS);
  assert_int_equal(get(c, &f, "other", "cred-b", got, &how), CS_OK);
  assert_string_equal(got, "v-3");
  assert_int_equal(how, CS_CACHE_HIT);
  cs_cache_free(c);
}

static void test_cache_due_entry_is_renewed(void **state)
{
  struct cs_cache *c;
  struct fake f = new_fake(3600, 0); /* due at once: every lookup renews */
  enum cs_cache_how how;
  char got[32];
  (void)state;

  assert_int_equal(cs_cache_create(0, 0, &c), CS_OK);
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_OK);
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_OK);
  assert_string_equal(got, "v-2");
  assert_int_equal(how, CS_CACHE_MISS);
  /* Renewal fails while the old value still has an hour: it is served... */
  f.fail = 1;
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_OK);
  assert_string_equal(got, "v-2");
  assert_int_equal(how, CS_CACHE_FALLBACK);
  assert_int_equal(f.calls, 3);
  /* ...and renewal is not retried at once, but after CS_CACHE_RETRY_S. */
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_OK);
  assert_string_equal(got, "v-2");
  assert_int_equal(f.calls, 3);
  cs_cache_free(c);

  /* Too close to its end to fall back on: the error comes through, and is
   * not cached. */
  f = new_fake(CS_CACHE_FALLBACK_MIN, 0);
  assert_int_equal(cs_cache_create(0, 0, &c), CS_OK);
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_OK);
  f.fail = 1;
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_ERR_UPSTREAM);
  assert_string_equal(got, "Down");
  assert_int_equal(get(c, &f, "k", NULL, got, &how), CS_OK);
  assert_string_equal(got, "v-3");
  cs_cache_free(c);

  /* An invalidated credential never falls back on its old value. */
  f = new_fake(3600, 0);
  assert_int_equal(cs_cache_create(0, 0, &c), CS_OK);
  assert_int_equal(get(c, &f, "k", "cred", got, &how), CS_OK);
  cs_cache_invalidate(c, "cred");
  f.fail = 1;
  assert_int_equal(get(c, &f, "k", "cred", got, &how), CS_ERR_UPSTREAM);
  cs_cache_free(c);
}

struct racer {
  struct cs_cache *c;
  struct fake *f;
  pthread_barrier_t *start;
  enum cs_err rc;
  char got[32];
};

static void *race(void *arg)
{
  struct racer *r = arg;
  enum cs_cache_how how;

  pthread_barrier_wait(r->start);
  r->rc = get(r->c, r->f, "hot", "cred", r->got, &how);
  return NULL;
}

static void run_racers(struct cs_cache *c, struct fake *f, struct racer *rs, int n)
{
  pthread_t t[64];
  pthread_barrier_t start;

  pthread_barrier_init(&start, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    rs[i] = (struct racer){c, f, &start, CS_ERR_INTERNAL, ""};
    assert_int_equal(pthread_create(&t[i], NULL, race, &rs[i]), 0);
  }
  for (int i = 0; i < n; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&start);
}

static void test_cache_single_flight(void **state)
{
  struct cs_cache *c;
  struct fake f = new_fake(3600, 3000);
  struct racer rs[50];
  (void)state;

  f.delay = 200000;
  assert_int_equal(cs_cache_create(0, 0, &c), CS_OK);
  run_racers(c, &f, rs, 50);
  assert_int_equal(f.calls, 1);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(rs[i].rc, CS_OK);
    assert_string_equal(rs[i].got, "v-1");
  }
  /* A due entry is renewed once, however many ask together. */
  cs_cache_invalidate(c, "cred");
  f.serve_for = 0;
  run_racers(c, &f, rs, 1);
  f.serve_for = 3000;
  run_racers(c, &f, rs, 50);
  assert_int_equal(f.calls, 3);
  for (int i = 0; i < 50; i++)
    assert_string_equal(rs[i].got, "v-3");
  /* Concurrent callers share an error, and it is not cached. */
  cs_cache_invalidate(c, "cred");
  f.fail = 1;
  run_racers(c, &f, rs, 20);
  assert_int_equal(f.calls, 4);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(rs[i].rc, CS_ERR_UPSTREAM);
    assert_string_equal(rs[i].got, "Down");
  }
  cs_cache_free(c);
}

static void test_cache_bounded(void **state)
{
  struct cs_cache *c;
  struct fake f = new_fake(3600, 3000);
  enum cs_cache_how how;
  char key[16], got[32];
  (void)state;

  assert_int_equal(cs_cache_create(3, 0, &c), CS_OK);
  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(get(c, &f, key, NULL, got, &how), CS_OK);
  }
  /* The three most recent stay; the oldest went. */
  assert_int_equal(get(c, &f, "k9", NULL, got, &how), CS_OK);
  assert_int_equal(how, CS_CACHE_HIT);
  assert_int_equal(get(c, &f, "k0", NULL, got, &how), CS_OK);
  assert_int_equal(how, CS_CACHE_MISS);
  cs_cache_free(c);
  /* A byte bound too: entries of 32 + key bytes, at most ~100 bytes. */
  assert_int_equal(cs_cache_create(0, 100, &c), CS_OK);
  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(get(c, &f, key, NULL, got, &how), CS_OK);
  }
  assert_int_equal(get(c, &f, "k0", NULL, got, &how), CS_OK);
  assert_int_equal(how, CS_CACHE_MISS);
  cs_cache_free(c);
}

/* ----------------------------------------------------- refresh windows */

static void test_aws_refresh_window(void **state)
{
  const int64_t now = 1763826400;
  (void)state;

  /* Long durations: renewed once fewer than 16 minutes are left. */
  assert_int_equal(cs_aws_serve_until(now + 3600, 3600, now), now + 3600 - 960);
  assert_int_equal(cs_aws_serve_until(now + 43200, 43200, now), now + 43200 - 960);
  /* STS gave 14 minutes although an hour was asked: due at once. */
  assert_true(cs_aws_serve_until(now + 840, 3600, now) < now);
  /* 50 minutes left: served for the next 34. */
  assert_int_equal(cs_aws_serve_until(now + 3000, 3600, now), now + 3000 - 960);
  /* Durations of 16 minutes or less cannot leave the window: served until
   * 11 minutes remain (out of botocore's mandatory 10). */
  assert_int_equal(cs_aws_serve_until(now + 900, 900, now), now + 900 - 660);
  assert_int_equal(cs_aws_serve_until(now + 960, 960, now), now + 960 - 660);
  assert_int_equal(cs_aws_serve_until(now + 961, 961, now), now + 1);
  /* IMDS (no duration asked): its lifetime left decides. */
  assert_int_equal(cs_aws_serve_until(now + 6 * 3600, 0, now), now + 6 * 3600 - 960);
  assert_int_equal(cs_aws_serve_until(now + 700, 0, now), now + 40);
}

/* --------------------------------------------------------- token parser */

static void test_token_parse(void **state)
{
  const int64_t now = 1763826400;
  struct cs_token t;
  struct cs_net_error err;
  static const char *const bad[] = {
      "",
      "[]",
      "{}",
      "{\"access_token\":\"x\"}",
      "{\"access_token\":\"x\",\"token_type\":\"Bearer\"}",
      "{\"access_token\":\"x y\",\"token_type\":\"Bearer\",\"expires_in\":60}",
      "{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":60}",
      "{\"access_token\":\"x\",\"token_type\":\"Bearer\",\"expires_in\":0}",
      "{\"access_token\":\"x\",\"token_type\":\"Bearer\",\"expires_in\":-5}",
      "{\"access_token\":\"x\",\"token_type\":\"Bearer\",\"expires_in\":\"soon\"}",
      "{\"access_token\":5,\"token_type\":\"Bearer\",\"expires_in\":60}",
      "{\"access_token\":\"x\",\"token_type\":\"Bear er\",\"expires_in\":60}",
      "{\"access_token\":\"x\",\"token_type\":\"Bearer\",\"expires_in\":60", /* truncated */
  };
  (void)state;

  const char *entra = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                      "\"access_token\":\"eyJ0.eyJ1.c2ln\"}";
  assert_int_equal(cs_token_parse(entra, strlen(entra), now, &t, &err), CS_OK);
  assert_string_equal(t.access_token, "eyJ0.eyJ1.c2ln");
  assert_int_equal(t.len, 14);
  assert_string_equal(t.token_type, "Bearer");
  assert_int_equal(t.expires_at, now + 3599);
  cs_token_wipe(&t);
  /* Google's lower-case "bearer", expires_in as a string. */
  const char *google =
      "{\"access_token\":\"ya29.x\",\"expires_in\":\"3599\",\"token_type\":\"bearer\"}";
  assert_int_equal(cs_token_parse(google, strlen(google), now, &t, &err), CS_OK);
  assert_string_equal(t.token_type, "Bearer");
  assert_int_equal(t.expires_at, now + 3599);
  cs_token_wipe(&t);
  /* IBM's expiration (epoch) wins over expires_in. */
  char ibm[256];
  snprintf(ibm, sizeof ibm,
           "{\"access_token\":\"a.b.c\",\"token_type\":\"Bearer\","
           "\"expires_in\":3600,\"expiration\":%lld}",
           (long long)now + 1800);
  assert_int_equal(cs_token_parse(ibm, strlen(ibm), now, &t, &err), CS_OK);
  assert_int_equal(t.expires_at, now + 1800);
  cs_token_wipe(&t);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&t, 'S', sizeof t);
    if (cs_token_parse(bad[i], strlen(bad[i]), now, &t, &err) != CS_ERR_INVALID)
      fail_msg("accepted: %s", bad[i]);
    assert_string_equal(err.code, "MalformedResponse");
    assert_int_equal(((unsigned char *)&t)[0], 'S');
  }
  /* Error documents: OAuth's, with Entra's error_codes, and IBM's. */
  cJSON *j = cJSON_Parse("{\"error\":\"invalid_client\",\"error_description\":\"bad secret\","
                         "\"error_codes\":[7000215]}");
  memset(&err, 0, sizeof err);
  cs_token_oauth_error(j, &err);
  assert_string_equal(err.code, "invalid_client");
  assert_string_equal(err.message, "AADSTS7000215: bad secret");
  cJSON_Delete(j);
}

/* ------------------------------------------------------- reach rules */

static void expect_refused(const struct cs_http_client *c, enum cs_http_reach reach,
                           const char *url, enum cs_err want)
{
  struct cs_http_req req = {.method = "GET", .url = url, .reach = reach, .timeout_ms = 2000};
  struct cs_http_resp r;
  enum cs_err e = cs_http_do(c, &req, &r);

  if (e != want)
    fail_msg("%s: got %s (%s), want %s", url, cs_err_code(e), r.error, cs_err_code(want));
  assert_true(r.error[0] != '\0');
  assert_null(r.body);
}

static void test_reach_rules(void **state)
{
  struct cs_http_client *c;
  char err[128];
  (void)state;

  assert_int_equal(cs_http_client_create(NULL, &c, err, sizeof err), CS_OK);
  /* Plain http to anything but loopback, in any spelling, is refused
   * before a connection is tried. */
  static const char *const api_bad[] = {
      "http://10.0.0.1/token",         "http://192.168.1.1/",      "http://[fe80::1]/",
      "http://169.254.169.254/latest", "http://0x0a000001/",       "http://167772161/",
      "http://[::ffff:10.0.0.1]/",     "http://login.example.com/"};
  for (size_t i = 0; i < sizeof api_bad / sizeof api_bad[0]; i++)
    expect_refused(c, CS_HTTP_API, api_bad[i], CS_ERR_FORBIDDEN);
  /* Not http(s), or with user info. */
  expect_refused(c, CS_HTTP_API, "ftp://127.0.0.1/", CS_ERR_INVALID);
  expect_refused(c, CS_HTTP_API, "http://user:pw@127.0.0.1:1/", CS_ERR_INVALID);
  expect_refused(c, CS_HTTP_API, "file:///etc/passwd", CS_ERR_INVALID);
  /* Metadata: only link-local or loopback addresses, at connect time. */
  expect_refused(c, CS_HTTP_METADATA, "http://10.0.0.1:9/", CS_ERR_FORBIDDEN);
  expect_refused(c, CS_HTTP_METADATA, "http://192.0.2.1:9/", CS_ERR_FORBIDDEN);
  /* Loopback over http is allowed: here nothing listens, so it is a
   * transport failure, not a refusal. */
  expect_refused(c, CS_HTTP_API, "http://127.0.0.1:1/", CS_ERR_UPSTREAM);
  expect_refused(c, CS_HTTP_METADATA, "http://127.0.0.1:1/", CS_ERR_UPSTREAM);
  cs_http_client_free(c);

  /* The extra CA file must be PEM certificates. */
  struct cs_http_client_config cfg = {.extra_ca_file = "/etc/hostname"};
  assert_int_equal(cs_http_client_create(&cfg, &c, err, sizeof err), CS_ERR_INVALID);
  assert_non_null(strstr(err, "--outbound-ca-file"));
}

/* ---------------------------------------------------- request checks */

static void test_net_request_checks(void **state)
{
  struct cs_broker *b;
  char msg[256];
  struct cs_net_error err;
  cJSON *out = NULL, *meta = cJSON_Parse("{\"accountGUID\":\"abc\"}");
  struct cs_resolve_opts o = {.format = CS_FORMAT_SESSION};
  struct cs_prov_ctx ctx = {NULL, "c", 1, meta, "key", 3, &o};
  struct cs_broker_stats st;
  (void)state;

  assert_int_equal(cs_broker_create(NULL, &b, msg, sizeof msg), CS_OK);
  ctx.broker = b;
  /* A format the type has not is refused, naming "format". */
  assert_int_equal(cs_provider_find("ibmCloud")->resolve(&ctx, &out, &err), CS_ERR_INVALID);
  assert_string_equal(err.field, "format");
  o.format = CS_FORMAT_TOKEN;
  assert_int_equal(cs_provider_find("kubeconfig")->resolve(&ctx, &out, &err), CS_ERR_INVALID);
  assert_string_equal(err.field, "format");
  assert_int_equal(cs_provider_find("aws")->resolve(&ctx, &out, &err), CS_ERR_INVALID);
  /* Bad scopes never reach the network. */
  o.scope = "two words";
  cJSON_Delete(meta);
  meta = cJSON_Parse("{\"azureSPInfo\":{\"clientId\":\"x\"}}");
  ctx.meta = meta;
  assert_int_equal(cs_provider_find("azure")->resolve(&ctx, &out, &err), CS_ERR_INVALID);
  assert_string_equal(err.field, "scope");
  static const char *const scopes[] = {"https://www.googleapis.com/auth/cloud-platform",
                                       "bad scope", NULL};
  o.scopes = scopes;
  assert_int_equal(cs_provider_find("gcp")->resolve(&ctx, &out, &err), CS_ERR_INVALID);
  assert_string_equal(err.field, "scopes");
  /* A gcp API key has no token to exchange. */
  cJSON_Delete(meta);
  meta = cJSON_Parse("{\"authType\":\"apiToken\"}");
  ctx.meta = meta;
  o.scopes = NULL;
  assert_int_equal(cs_provider_find("gcp")->resolve(&ctx, &out, &err), CS_ERR_INVALID);
  assert_false(cs_provider_find("gcp")->short_lived(&ctx));
  /* Which resolves are short-lived (what a "token" usage may ask for). */
  o.format = CS_FORMAT_DEFAULT;
  assert_false(cs_provider_find("azure")->short_lived(&ctx));
  o.format = CS_FORMAT_TOKEN;
  assert_true(cs_provider_find("azure")->short_lived(&ctx));
  assert_true(cs_provider_find("ibmCloud")->short_lived(&ctx));
  assert_false(cs_provider_find("kubeconfig")->short_lived(&ctx));
  cJSON_Delete(meta);
  meta = cJSON_Parse("{\"accountID\":\"AKIAIOSFODNN7EXAMPLE\"}");
  ctx.meta = meta;
  o.format = CS_FORMAT_DEFAULT;
  assert_false(cs_provider_find("aws")->short_lived(&ctx));
  o.format = CS_FORMAT_SESSION;
  assert_true(cs_provider_find("aws")->short_lived(&ctx));
  assert_null(cs_provider_find("nope"));
  cs_broker_get_stats(b, &st);
  for (int k = 0; k < CS_KIND__COUNT; k++)
    assert_int_equal(st.kind[k].calls, 0);
  assert_string_equal(cs_broker_kind_name(CS_KIND_IBM), "ibm");
  cJSON_Delete(meta);
  cs_broker_free(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cache_hit_miss_and_keys),
      cmocka_unit_test(test_cache_due_entry_is_renewed),
      cmocka_unit_test(test_cache_single_flight),
      cmocka_unit_test(test_cache_bounded),
      cmocka_unit_test(test_aws_refresh_window),
      cmocka_unit_test(test_token_parse),
      cmocka_unit_test(test_reach_rules),
      cmocka_unit_test(test_net_request_checks),
  };
  cs_log_min_level = CS_LOG_ERROR;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
