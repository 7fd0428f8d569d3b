/* A kubeconfig YAML document, as pasted into secret.plain. */
#include "fuzz_common.h"
#include "providers.h"

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
  struct cs_prov_error err;
  cJSON *meta = NULL;
  enum cs_err e;

  memset(&err, 0x5a, sizeof err);
  /* Exactly size bytes, no NUL after them: the parser must not read past. */
  e = cs_kubeconfig_describe((const char *)data, size, &meta, &err);
  if (e == CS_OK) {
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(meta, "currentContext");
    const cJSON *clusters = cJSON_GetObjectItemCaseSensitive(meta, "clusters");
    if (!cJSON_IsString(cur) || !cur->valuestring[0] || !cJSON_IsArray(clusters) ||
        cJSON_GetArraySize(clusters) < 1)
      cs_fuzz_fail("kubeconfig accepted without currentContext and clusters");
    cJSON_Delete(meta);
  } else {
    if (meta)
      cs_fuzz_fail("cs_kubeconfig_describe wrote *meta on failure");
    if (e != CS_ERR_NOMEM) {
      if (e != CS_ERR_INVALID && e != CS_ERR_MISSING)
        cs_fuzz_fail("cs_kubeconfig_describe returned %s", cs_err_code(e));
      cs_fuzz_check_terminated("err.field", err.field, sizeof err.field);
      cs_fuzz_check_terminated("err.msg", err.msg, sizeof err.msg);
    }
  }
  return 0;
}
