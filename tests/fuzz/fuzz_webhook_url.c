/*
 * A callbackUrl as a client registers it, or (byte 0 odd) the text of the
 * --webhook-allow and --webhook-deny options (split at the first newline)
 * followed by a URL on the next line. Code under test: cs_http_policy_create
 * and cs_http_check_url (providers/http_policy.c) on libcurl's URL parser.
 * Promises checked: an option error is a NUL-terminated message naming the
 * option and leaves no policy; a URL the policy accepts is also accepted
 * without one, with the same target key; the target key is
 * "http(s)://host:port" and, parsed again, names the same target and is
 * accepted again (the host judged is the host used); whatever the built-in
 * rules refuse, a policy that adds only deny entries refuses too.
 */
#include "fuzz_common.h"
#include "providers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

static struct cs_http_policy *builtin_only;

static void check_target(const struct cs_http_policy *p, const char *target)
{
  char again[CS_HTTP_TARGET_MAX + 2], t2[CS_HTTP_TARGET_MAX];
  const char *why;
  if (strncmp(target, "http://", 7) && strncmp(target, "https://", 8))
    abort();
  if (!strrchr(target, ':') || strrchr(target, ':') < target + 6)
    abort();
  snprintf(again, sizeof again, "%s/", target);
  if (cs_http_check_url(p, again, t2, &why) != CS_OK || strcmp(target, t2) != 0)
    abort();
}

static void one_url(const struct cs_http_policy *p, bool only_denies, const char *url)
{
  char target[CS_HTTP_TARGET_MAX], plain[CS_HTTP_TARGET_MAX];
  const char *why = NULL;
  enum cs_err e = cs_http_check_url(p, url, target, &why);

  if (e != CS_OK) {
    if ((e != CS_ERR_INVALID && e != CS_ERR_FORBIDDEN) || !why || !why[0])
      abort();
    return;
  }
  if (cs_http_check_url(NULL, url, plain, &why) != CS_OK || strcmp(plain, target) != 0)
    abort();
  if (only_denies && cs_http_check_url(builtin_only, url, NULL, &why) != CS_OK)
    abort();
  check_target(p, target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char err[256];
  struct cs_http_policy *p = NULL;

  if (size < 1 || size > 8192)
    return 0;
  if (!builtin_only && cs_http_policy_create(NULL, NULL, &builtin_only, err, sizeof err))
    abort();
  char *text = malloc(size);
  if (!text)
    return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  if (!(data[0] & 1)) {
    one_url(builtin_only, false, text);
    free(text);
    return 0;
  }
  char *allow = text, *deny = strchr(text, '\n'), *url = NULL;
  if (deny) {
    *deny++ = '\0';
    if ((url = strchr(deny, '\n')))
      *url++ = '\0';
  }
  bool no_allow = data[0] & 2;
  memset(err, 'x', sizeof err);
  enum cs_err e = cs_http_policy_create(no_allow ? NULL : allow, deny, &p, err, sizeof err);
  if (e != CS_OK) {
    if (e != CS_ERR_INVALID || p || !memchr(err, '\0', sizeof err) || !strstr(err, "--webhook-"))
      abort();
  } else {
    one_url(p, no_allow, url ? url : allow);
  }
  cs_http_policy_free(p);
  free(text);
  return 0;
}
