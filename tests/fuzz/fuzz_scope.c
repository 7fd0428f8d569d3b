/*
 * What "broader" means between access keys (server/core/scope.c). The input is
 * NUL-separated: pattern p, pattern q, then candidate ids. Whenever
 * cs_pattern_covers(p, q) says yes, every candidate q matches must match p,
 * including ids made from q itself (each '*' read as "", "a" or "-", each '?'
 * and bracket as the next byte of the input). A counterexample aborts, so
 * libFuzzer keeps it. The same holds one level up for cs_scope_within over
 * the scopes [p] and [q, p].
 */
#include "core.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PART_MAX 64
#define IDS_MAX 16

static void check(const char *p, const char *q, const char *id)
{
  if (fnmatch(q, id, 0) == 0 && fnmatch(p, id, 0) != 0) {
    fprintf(stderr, "%s covers %s, yet %s matches only the latter\n", p, q, id);
    abort();
  }
}

/* One id q matches, more or less: wildcards filled from @p seed. */
static void instantiate(const char *q, const char *seed, size_t seed_len, char *out, size_t cap)
{
  static const char *const star[] = {"", "a", "-"};
  size_t n = 0, s = 0;

  for (const char *c = q; *c && n + 2 < cap; c++) {
    unsigned char b = seed_len ? (unsigned char)seed[s++ % seed_len] : 'a';
    if (*c == '*') {
      const char *fill = star[b % 3];
      size_t l = strlen(fill);
      if (n + l + 1 >= cap)
        break;
      memcpy(out + n, fill, l);
      n += l;
    } else if (*c == '?') {
      out[n++] = (char)(b ? b : 'a');
    } else if (*c == '[') {
      const char *end = strchr(c + 1, ']');
      out[n++] = (char)(b ? b : 'a');
      if (end)
        c = end;
    } else if (*c == '\\' && c[1]) {
      out[n++] = *++c;
    } else {
      out[n++] = *c;
    }
  }
  out[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char parts[2 + IDS_MAX][PART_MAX + 1];
  size_t np = 0, len = 0;

  for (size_t i = 0; i <= size && np < 2 + IDS_MAX; i++) {
    if (i == size || data[i] == '\0') {
      parts[np++][len] = '\0';
      len = 0;
    } else if (len < PART_MAX) {
      parts[np][len++] = (char)data[i];
    }
  }
  if (np < 2)
    return 0;
  const char *p = parts[0], *q = parts[1];
  if (!cs_pattern_covers(p, q))
    return 0;
  char made[3 * PART_MAX + 1];
  for (size_t i = 2; i < np; i++) {
    check(p, q, parts[i]);
    instantiate(q, parts[i], strlen(parts[i]), made, sizeof made);
    check(p, q, made);
  }
  instantiate(q, "", 0, made, sizeof made);
  check(p, q, made);

  /* [q, p] within [p] follows from p covering q and p covering itself. */
  cJSON *kp = cJSON_CreateArray(), *jq = cJSON_CreateArray();
  if (kp && jq && cJSON_AddItemToArray(kp, cJSON_CreateString(p)) &&
      cJSON_AddItemToArray(jq, cJSON_CreateString(q)) &&
      cJSON_AddItemToArray(jq, cJSON_CreateString(p)) && !cs_scope_within(jq, kp))
    abort();
  cJSON_Delete(kp);
  cJSON_Delete(jq);
  return 0;
}
