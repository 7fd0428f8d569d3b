/* An IMDS role-credentials body ({"Code":"Success","AccessKeyId",...}). */
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
  struct cs_aws_creds out;
  struct cs_net_error err;

  memset(&out, 0x5a, sizeof out);
  memset(&err, 0x5a, sizeof err);
  /* Exactly size bytes, no NUL after them: the parser must not read past. */
  enum cs_err e = cs_aws_parse_imds_credentials((const char *)data, size, &out, &err);
  cs_fuzz_check_aws_result("cs_aws_parse_imds_credentials", e, &out, &err);
  cs_aws_creds_wipe(&out);
  return 0;
}
