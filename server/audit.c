/* The audit trail's entry points. Until the hash-chained store trail
 * exists, events go to the log (never secrets). */
#include "http.h"

#include <stdio.h>
#include <string.h>

void cs_audit_auth(struct cs_req *req, const char *key_id, const char *result)
{
  char fields[256];
  struct cs_buf b = {fields, 0, sizeof fields, sizeof fields};
  if (cs_buf_printf(&b, "\"audit\":\"login\",\"result\":\"%s\",\"remote\":\"%s\",\"actor\":\"",
                    result, req->remote) ||
      cs_buf_json_escape(&b, key_id, strnlen(key_id, 64)) || cs_buf_append(&b, "\"", 1))
    return;
  cs_log_fields(CS_LOG_WARN, fields, "authentication %s", result);
}
