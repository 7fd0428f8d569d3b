/* Unit tests of what "broader" means between access keys (server/core/scope.c):
 * cs_pattern_covers, cs_scope_within, cs_key_within, cs_key_spec_bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

static cJSON *scope(const char *json)
{
  cJSON *j = cJSON_Parse(json);
  assert_non_null(j);
  return j;
}

static void test_covers_examples(void **state)
{
  (void)state;
  /* Equal patterns, literals, literal prefix + '*'. */
  assert_true(cs_pattern_covers("aws-*", "aws-*"));
  assert_true(cs_pattern_covers("aws-*", "aws-prod"));
  assert_true(cs_pattern_covers("a?s-*", "aws-prod"));
  assert_true(cs_pattern_covers("[a]ws-*", "aws-prod"));
  assert_true(cs_pattern_covers("kube-staging", "kube-staging"));
  assert_true(cs_pattern_covers("aws-*", "aws-prod-*"));
  assert_true(cs_pattern_covers("aws-*", "aws-[!x]*"));
  assert_true(cs_pattern_covers("aws-*", "aws-?"));
  assert_true(cs_pattern_covers("*", "*"));
  assert_true(cs_pattern_covers("*", "[!a]?x*"));
  assert_true(cs_pattern_covers("*", "anything"));
  /* Broader ones. */
  assert_false(cs_pattern_covers("aws-*", "*"));
  assert_false(cs_pattern_covers("aws-*", "aws*"));
  assert_false(cs_pattern_covers("aws-*", "a?s-*"));
  assert_false(
      cs_pattern_covers("aws-*", "[a]ws-*")); /* equal sets, refused: sound, not complete */
  assert_false(cs_pattern_covers("aws-*", "aws"));
  assert_false(cs_pattern_covers("aws-*", "gcp-prod"));
  assert_false(cs_pattern_covers("kube-staging", "kube-*"));
  /* fnmatch(p, q as text) would say yes here, yet q matches "abc". */
  assert_false(cs_pattern_covers("a?", "a*"));
  assert_false(cs_pattern_covers("a*b", "a*"));
  assert_false(cs_pattern_covers("a[*]", "a*"));
  /* An escape is never read as a plain character. */
  assert_false(cs_pattern_covers("a\\*", "a\\*x"));
}

/* Every pattern of up to three tokens over a small alphabet. */
static const char *const tokens[] = {"a", "b", "-", "*", "?", "[a]", "[!a]", "[a-b]"};
#define NTOK (sizeof tokens / sizeof tokens[0])
#define MAXPAT 4096

static size_t all_patterns(char pats[][16])
{
  size_t n = 0;
  for (size_t len = 1; len <= 3; len++) {
    size_t total = 1;
    for (size_t i = 0; i < len; i++)
      total *= NTOK;
    for (size_t code = 0; code < total; code++) {
      size_t c = code, off = 0;
      for (size_t i = 0; i < len; i++, c /= NTOK)
        off += (size_t)snprintf(pats[n] + off, 16 - off, "%s", tokens[c % NTOK]);
      n++;
    }
  }
  return n;
}

/* Every id of up to five characters over "ab-c". */
static size_t all_ids(char ids[][8])
{
  static const char alpha[] = "ab-c";
  size_t n = 0;
  for (size_t len = 1; len <= 5; len++) {
    size_t total = 1;
    for (size_t i = 0; i < len; i++)
      total *= 4;
    for (size_t code = 0; code < total; code++) {
      size_t c = code;
      for (size_t i = 0; i < len; i++, c /= 4)
        ids[n][i] = alpha[c % 4];
      ids[n][len] = '\0';
      n++;
    }
  }
  return n;
}

/* Soundness, exhaustively on a small universe: whenever p covers q, every id
 * q matches is matched by p. Also counts the yes answers, so a function that
 * always says no cannot pass as "sound". */
static void test_covers_is_sound(void **state)
{
  static char pats[MAXPAT][16];
  static char ids[1400][8];
  size_t np = all_patterns(pats), ni = all_ids(ids), yes = 0;

  (void)state;
  assert_true(np < MAXPAT && ni < 1400);
  for (size_t i = 0; i < np; i++) {
    for (size_t j = 0; j < np; j++) {
      if (!cs_pattern_covers(pats[i], pats[j]))
        continue;
      yes++;
      for (size_t k = 0; k < ni; k++) {
        if (fnmatch(pats[j], ids[k], 0) == 0 && fnmatch(pats[i], ids[k], 0) != 0)
          fail_msg("%s covers %s, but %s matches only the latter", pats[i], pats[j], ids[k]);
      }
    }
  }
  assert_true(yes > np); /* at least every p covers itself, and more */
}

static void test_scope_within(void **state)
{
  cJSON *aws = scope("[\"aws-*\"]"), *two = scope("[\"aws-*\",\"kube-staging\"]");
  cJSON *prod = scope("[\"aws-prod\",\"aws-dev-*\"]"), *star = scope("[\"*\"]");
  cJSON *empty = scope("[]"), *wider = scope("[\"aws-prod\",\"gcp-prod\"]");
  cJSON *junk = scope("[1]");

  (void)state;
  /* NULL is every credential; [] is none. */
  assert_true(cs_scope_within(NULL, NULL));
  assert_true(cs_scope_within(aws, NULL));
  assert_true(cs_scope_within(empty, NULL));
  assert_false(cs_scope_within(NULL, aws));
  assert_true(cs_scope_within(NULL, star)); /* ["*"] admits every id */
  assert_true(cs_scope_within(star, NULL));
  assert_true(cs_scope_within(empty, aws));
  assert_false(cs_scope_within(aws, empty));
  assert_true(cs_scope_within(empty, empty));
  /* Every pattern must be covered by some pattern. */
  assert_true(cs_scope_within(aws, aws));
  assert_true(cs_scope_within(prod, aws));
  assert_true(cs_scope_within(aws, two));
  assert_false(cs_scope_within(two, aws));
  assert_false(cs_scope_within(wider, aws));
  assert_false(cs_scope_within(star, aws));
  /* A stored pattern that is not a string is never taken as narrow. */
  assert_false(cs_scope_within(junk, aws));
  assert_true(cs_scope_within(junk, NULL)); /* an unscoped key still reaches it */
  cJSON *mixed = scope("[1,\"aws-*\"]");
  assert_true(cs_scope_within(aws, mixed));
  cJSON_Delete(mixed);
  cJSON *all[] = {aws, two, prod, star, empty, wider, junk};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    cJSON_Delete(all[i]);
}

static void test_key_within_lifetime(void **state)
{
  cJSON *aws = scope("[\"aws-*\"]");
  struct cs_key_bounds root = {NULL, 0}, temp = {NULL, 1000}, later = {NULL, 2000};
  struct cs_key_bounds scoped = {aws, 0}, scoped_temp = {aws, 1000};

  (void)state;
  assert_true(cs_key_within(&root, &root));
  assert_true(cs_key_within(&temp, &root));
  assert_false(cs_key_within(&root, &temp)); /* never expires: outlives temp */
  assert_true(cs_key_within(&temp, &temp));
  assert_false(cs_key_within(&later, &temp));
  assert_true(cs_key_within(&temp, &later));
  assert_true(cs_key_within(&scoped_temp, &scoped));
  assert_false(cs_key_within(&scoped, &scoped_temp));
  assert_false(cs_key_within(&temp, &scoped_temp)); /* lifetime fine, scope not */
  assert_true(cs_key_within(&scoped_temp, &temp));
  cJSON_Delete(aws);
}

static void test_spec_bound(void **state)
{
  cJSON *aws = scope("[\"aws-*\"]"), *prod = scope("[\"aws-prod\"]"), *all = scope("[\"*\"]");
  struct cs_key_bounds by = {aws, 5000};
  const char *field = NULL;

  (void)state;
  /* Omitted limits are the creator's. */
  struct cs_key_spec s = {.name = "x", .role = CS_ROLE_ADMIN};
  assert_int_equal(cs_key_spec_bound(&s, &by, &field), CS_OK);
  assert_ptr_equal(s.scope, aws);
  assert_int_equal(s.expires_at, 5000);
  /* Narrower ones stay. */
  struct cs_key_spec n = {.name = "x", .role = CS_ROLE_CI, .scope = prod, .expires_at = 4000};
  assert_int_equal(cs_key_spec_bound(&n, &by, &field), CS_OK);
  assert_ptr_equal(n.scope, prod);
  assert_int_equal(n.expires_at, 4000);
  /* Broader ones are refused, naming the field. */
  struct cs_key_spec b = {.name = "x", .role = CS_ROLE_CI, .scope = all};
  assert_int_equal(cs_key_spec_bound(&b, &by, &field), CS_ERR_FORBIDDEN);
  assert_string_equal(field, "scope");
  struct cs_key_spec l = {.name = "x", .role = CS_ROLE_CI, .expires_at = 6000};
  field = NULL;
  assert_int_equal(cs_key_spec_bound(&l, &by, &field), CS_ERR_FORBIDDEN);
  assert_string_equal(field, "expiresAt");
  /* An unbounded creator changes nothing. */
  struct cs_key_bounds root = {NULL, 0};
  struct cs_key_spec u = {.name = "x", .role = CS_ROLE_ADMIN};
  assert_int_equal(cs_key_spec_bound(&u, &root, &field), CS_OK);
  assert_null(u.scope);
  assert_int_equal(u.expires_at, 0);
  cJSON_Delete(aws);
  cJSON_Delete(prod);
  cJSON_Delete(all);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_covers_examples), cmocka_unit_test(test_covers_is_sound),
      cmocka_unit_test(test_scope_within),    cmocka_unit_test(test_key_within_lifetime),
      cmocka_unit_test(test_spec_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
