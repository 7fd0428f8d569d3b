#include "common.h"

struct err_entry {
  int status;
  const char *code;
  const char *msg;
};

static const struct err_entry registry[] = {
#define CS_ERR_ROW(name, status, code, msg) [name] = {status, code, msg},
    CS_ERR_LIST(CS_ERR_ROW)
#undef CS_ERR_ROW
};

static const struct err_entry *entry(enum cs_err e)
{
  if ((unsigned)e >= CS_ERR__COUNT)
    return &registry[CS_ERR_INTERNAL];
  return &registry[e];
}

int cs_err_http_status(enum cs_err e) { return entry(e)->status; }
const char *cs_err_code(enum cs_err e) { return entry(e)->code; }
const char *cs_err_message(enum cs_err e) { return entry(e)->msg; }

bool cs_err_is_client(enum cs_err e)
{
  int s = cs_err_http_status(e);
  return s >= 400 && s < 500;
}
