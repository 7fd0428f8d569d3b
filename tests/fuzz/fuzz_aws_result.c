#include "fuzz_aws_result.h"

#include "fuzz_common.h"

void cs_fuzz_check_token(const char *what, const char *s, size_t cap)
{
  cs_fuzz_check_terminated(what, s, cap);
  if (!*s)
    cs_fuzz_fail("%s is empty on success", what);
  for (; *s; s++)
    if (*s < 0x21 || *s > 0x7e)
      cs_fuzz_fail("%s holds a byte outside printable ASCII", what);
}

void cs_fuzz_check_net_error(const char *parser, const struct cs_net_error *err)
{
  cs_fuzz_check_terminated("err.code", err->code, sizeof err->code);
  cs_fuzz_check_terminated("err.message", err->message, sizeof err->message);
  if (!err->code[0])
    cs_fuzz_fail("%s: failure without an error code", parser);
}

void cs_fuzz_check_aws_result(const char *parser, enum cs_err e, const struct cs_aws_creds *out,
                              const struct cs_net_error *err)
{
  switch (e) {
  case CS_OK:
    cs_fuzz_check_token("AccessKeyId", out->access_key_id, sizeof out->access_key_id);
    cs_fuzz_check_token("SecretAccessKey", out->secret_access_key, sizeof out->secret_access_key);
    cs_fuzz_check_token("SessionToken", out->session_token, sizeof out->session_token);
    if (out->expiration <= 0)
      cs_fuzz_fail("Expiration %lld accepted", (long long)out->expiration);
    break;
  case CS_ERR_UPSTREAM:
  case CS_ERR_INVALID:
    cs_fuzz_check_net_error(parser, err);
    break;
  default:
    cs_fuzz_fail("%s returned %s", parser, cs_err_code(e));
  }
}
