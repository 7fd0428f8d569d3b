/* An STS answer body: AssumeRole, GetSessionToken and GetCallerIdentity
 * responses and the two ErrorResponse shapes. Every input is parsed as the
 * answer to each of the three actions. */
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

static void untouched(const struct cs_sts_result *r)
{
  for (size_t i = 0; i < sizeof *r; i++)
    if (((const unsigned char *)r)[i] != 0x5a)
      cs_fuzz_fail("cs_aws_parse_sts wrote its output on failure");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const enum cs_sts_action actions[] = {CS_STS_ASSUME_ROLE, CS_STS_GET_SESSION_TOKEN,
                                               CS_STS_GET_CALLER_IDENTITY};
  struct cs_sts_result out;
  struct cs_net_error err;

  for (size_t k = 0; k < sizeof actions / sizeof actions[0]; k++) {
    memset(&out, 0x5a, sizeof out);
    memset(&err, 0x5a, sizeof err);
    /* Exactly size bytes, no NUL after them: the parser must not read past. */
    enum cs_err e = cs_aws_parse_sts((const char *)data, size, actions[k], &out, &err);
    if (e != CS_OK)
      untouched(&out);
    else
      cs_fuzz_check_terminated("arn", out.arn, sizeof out.arn);
    if (actions[k] != CS_STS_GET_CALLER_IDENTITY || e != CS_OK) {
      cs_fuzz_check_aws_result("cs_aws_parse_sts", e, &out.creds, &err);
    } else {
      cs_fuzz_check_token("Arn", out.arn, sizeof out.arn);
      cs_fuzz_check_token("Account", out.account, sizeof out.account);
      cs_fuzz_check_terminated("UserId", out.user_id, sizeof out.user_id);
    }
    cs_sts_result_wipe(&out);
  }
  return 0;
}
