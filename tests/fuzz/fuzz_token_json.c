/* A token endpoint's answer (Entra, Google, IBM IAM): the OAuth 2.0
 * success document, or an error document in OAuth's or IBM's shape. */
#include "fuzz_aws_result.h"
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct cs_token t;
  struct cs_net_error err;
  cJSON *j = NULL;

  memset(&t, 0x5a, sizeof t);
  memset(&err, 0x5a, sizeof err);
  enum cs_err e = cs_token_parse((const char *)data, size, CS_FUZZ_NOW, &t, &err);
  if (e == CS_OK) {
    if (!t.access_token || strlen(t.access_token) != t.len || t.len > CS_TOKEN_MAX)
      cs_fuzz_fail("access token length does not match");
    cs_fuzz_check_token("access_token", t.access_token, t.len + 1);
    cs_fuzz_check_token("token_type", t.token_type, sizeof t.token_type);
    if (t.expires_at <= CS_FUZZ_NOW)
      cs_fuzz_fail("a token that has already expired was accepted");
    cs_token_wipe(&t);
  } else if (e == CS_ERR_INVALID) {
    cs_fuzz_check_net_error("cs_token_parse", &err);
    for (size_t i = 0; i < sizeof t; i++)
      if (((unsigned char *)&t)[i] != 0x5a)
        cs_fuzz_fail("cs_token_parse wrote its output on failure");
  } else if (e != CS_ERR_NOMEM) {
    cs_fuzz_fail("cs_token_parse returned %s", cs_err_code(e));
  }
  /* The error readers on whatever JSON object this is. */
  if (cs_json_parse((const char *)data, size, 8, &j) == CS_OK && cJSON_IsObject(j)) {
    memset(&err, 0, sizeof err);
    cs_token_oauth_error(j, &err);
    cs_fuzz_check_terminated("err.code", err.code, sizeof err.code);
    cs_fuzz_check_terminated("err.message", err.message, sizeof err.message);
  }
  cJSON_Delete(j);
  return 0;
}
