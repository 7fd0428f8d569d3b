/*
 * A credential request body of each type: the first byte picks the
 * provider ((byte - 'A') % 8 indexes cs_providers[]: 'A' aws, 'B' azure,
 * 'C' gcp, 'D' ibmCloud, 'E' kubeconfig, 'F' basic, 'G' apiToken,
 * 'H' certificate), the rest is the JSON body as a client sends it. The
 * body's _id goes through cs_name_valid, whose every yes must be a name
 * the rules of API.md §3 "Names" admit. Parsed with the server's depth cap, validated, and, when
 * validation accepts it, resolved from what validation produced: a payload
 * that passed validate must resolve (aws with a role or the instance role
 * excepted, which needs STS/IMDS), since resolve treats anything else as a
 * corrupted store.
 */
#include "fuzz_common.h"
#include "providers.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

static size_t provider_count(void)
{
  size_t n = 0;
  while (cs_providers[n])
    n++;
  return n;
}

static void check_resolve(const struct cs_provider *p, const struct cs_prov_result *r)
{
  struct cs_resolve_opts opts = {0};
  cJSON *out = NULL;
  struct cs_prov_ctx ctx = {NULL, "fuzz", 1, r->meta, r->secret, r->secret_len, &opts};
  struct cs_net_error err = {"", "", ""};
  enum cs_err e = p->resolve(&ctx, &out, &err);

  if (e == CS_ERR_UNAVAILABLE && strcmp(p->type, "aws") == 0)
    return; /* role or instance identity: needs the network state (STS, IMDS) */
  if (e != CS_OK)
    cs_fuzz_fail("%s: validate accepted a body whose payload resolve refuses (%s)", p->type,
                 cs_err_code(e));
  if (!cJSON_IsObject(out))
    cs_fuzz_fail("%s: resolve returned no object", p->type);
  cJSON_Delete(out);
}

/* What cs_json_parse accepts is echoed back (errors, GET): printed, it must
 * be UTF-8 JSON that parses again. */
static void check_echo(const cJSON *body)
{
  char *txt = cs_json_print(body);
  cJSON *again = NULL;

  if (!txt)
    return; /* out of memory */
  if (!cs_utf8_valid(txt, strlen(txt)))
    cs_fuzz_fail("an accepted body prints as invalid UTF-8: %s", txt);
  if (cs_json_parse(txt, strlen(txt), CS_JSON_MAX_DEPTH, &again) != CS_OK)
    cs_fuzz_fail("an accepted body prints as JSON that does not parse: %s", txt);
  cJSON_Delete(again);
  cs_memzero(txt, strlen(txt));
  free(txt);
}

/* A name cs_name_valid accepts: 1-128 characters in at most 384 bytes of
 * UTF-8, none a control character, '/' or '\\', no space at either end,
 * not "." or "..". */
static void check_name(const cJSON *id)
{
  if (!cJSON_IsString(id))
    return;
  const char *s = id->valuestring;
  size_t n = strlen(s), chars = 0;
  if (!cs_name_valid(s, n))
    return;
  if (n == 0 || n > CS_NAME_MAX || !cs_utf8_valid(s, n) || s[0] == ' ' || s[n - 1] == ' ' ||
      !strcmp(s, ".") || !strcmp(s, "..") || strpbrk(s, "/\\\x7f"))
    cs_fuzz_fail("cs_name_valid accepted a name the rules refuse");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || (c == 0xc2 && (unsigned char)s[i + 1] < 0xa0))
      cs_fuzz_fail("cs_name_valid accepted a control character");
    chars += (c & 0xc0) != 0x80;
  }
  if (chars > CS_NAME_CHARS)
    cs_fuzz_fail("cs_name_valid accepted %zu characters", chars);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const struct cs_provider *p;
  struct cs_prov_result res = {0};
  struct cs_prov_error err;
  cJSON *body = NULL;
  enum cs_err e;

  if (size < 1)
    return 0;
  p = cs_providers[(uint8_t)(data[0] - 'A') % provider_count()];
  if (cs_provider_find(p->type) != p)
    cs_fuzz_fail("cs_provider_find(%s) does not find it", p->type);

  e = cs_json_parse((const char *)data + 1, size - 1, CS_JSON_MAX_DEPTH, &body);
  if (e != CS_OK) {
    if (body)
      cs_fuzz_fail("cs_json_parse wrote *out on failure");
    return 0;
  }
  check_echo(body);
  check_name(cJSON_GetObjectItemCaseSensitive(body, "_id"));
  memset(&err, 0x5a, sizeof err); /* unterminated unless validate fills it */
  e = p->validate(body, &res, &err);
  if (e == CS_OK) {
    if (!res.meta || !res.secret || strlen(res.secret) != res.secret_len)
      cs_fuzz_fail("%s: validate succeeded with meta=%p secret=%p", p->type, (void *)res.meta,
                   (void *)res.secret);
    check_resolve(p, &res);
  } else {
    if (res.meta || res.secret)
      cs_fuzz_fail("%s: validate wrote outputs on failure", p->type);
    if (e == CS_ERR_INVALID || e == CS_ERR_MISSING) {
      cs_fuzz_check_terminated("err.field", err.field, sizeof err.field);
      cs_fuzz_check_terminated("err.msg", err.msg, sizeof err.msg);
    } else if (e != CS_ERR_NOMEM) {
      cs_fuzz_fail("%s: validate returned %s", p->type, cs_err_code(e));
    }
  }
  cs_prov_result_free(&res);
  cJSON_Delete(body);
  return 0;
}
