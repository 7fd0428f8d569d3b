/* Responses: JSON and empty bodies, headers, and the one renderer of
 * error bodies. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one place an error body is made: {"err","code"} plus context members. */
enum cs_err cs_resp_error(enum cs_err e, struct cs_resp *resp)
{
  struct cs_buf b;
  const char *msg = resp->err_msg[0] ? resp->err_msg : cs_err_message(e);
  enum cs_err r;

  cs_buf_init(&b, 64 * 1024);
  r = cs_buf_append(&b, "{\"err\":\"", 8);
  if (!r)
    r = cs_buf_json_escape(&b, msg, strlen(msg));
  if (!r)
    r = cs_buf_printf(&b, "\",\"code\":\"%s\"", cs_err_code(e));
  if (!r && resp->err_extra) {
    cJSON_DeleteItemFromObjectCaseSensitive(resp->err_extra, "err");
    cJSON_DeleteItemFromObjectCaseSensitive(resp->err_extra, "code");
    char *extra = cs_json_print(resp->err_extra);
    if (!extra)
      r = CS_ERR_NOMEM;
    else if (strlen(extra) > 2) /* skip "{}" */
      r = cs_buf_printf(&b, ",%.*s", (int)(strlen(extra) - 2), extra + 1);
    free(extra);
  }
  if (!r)
    r = cs_buf_append(&b, "}", 1);
  cJSON_Delete(resp->err_extra);
  resp->err_extra = NULL;
  if (r) {
    cs_buf_free(&b);
    return r;
  }
  free(resp->body);
  resp->body = b.data;
  resp->len = b.len;
  resp->status = cs_err_http_status(e);
  resp->content_type = "application/json";
  return CS_OK;
}

/* The i18nKey of x-redlock-status: the stable code, in Prisma's words
 * where Prisma has one. */
static const char *redlock_key(enum cs_err e)
{
  return e == CS_ERR_BAD_TOKEN ? "token_expired" : cs_err_code(e);
}

enum cs_err cs_resp_error_prisma(enum cs_err e, struct cs_resp *resp, bool redlock)
{
  const char *msg = resp->err_msg[0] ? resp->err_msg : cs_err_message(e);
  cJSON *j = cJSON_CreateObject();
  char *text = NULL;

  cJSON_Delete(resp->err_extra);
  resp->err_extra = NULL;
  if (!j || !cJSON_AddStringToObject(j, "err", msg) || !(text = cs_json_print(j))) {
    cJSON_Delete(j);
    return CS_ERR_NOMEM;
  }
  cJSON_Delete(j);
  free(resp->body);
  resp->body = text;
  resp->len = strlen(text);
  resp->status = cs_err_http_status(e);
  resp->content_type = "application/json";
  if (redlock)
    cs_resp_header(resp, "x-redlock-status",
                   "[{\"i18nKey\":\"%s\",\"severity\":\"error\",\"subject\":null}]",
                   redlock_key(e));
  return CS_OK;
}

static enum cs_err resp_json(struct cs_resp *resp, int status, cJSON *j, bool secret)
{
  char *text = j ? cs_json_print(j) : NULL;
  if (secret)
    cs_json_wipe_delete(j);
  else
    cJSON_Delete(j);
  if (!text)
    return CS_ERR_NOMEM;
  cs_resp_json_text(resp, status, text, strlen(text));
  resp->secret = secret;
  return CS_OK;
}

enum cs_err cs_resp_json_secret(struct cs_resp *resp, int status, cJSON *j)
{
  return resp_json(resp, status, j, true);
}

enum cs_err cs_resp_json(struct cs_resp *resp, int status, cJSON *j)
{
  return resp_json(resp, status, j, false);
}

void cs_resp_json_text(struct cs_resp *resp, int status, char *text, size_t len)
{
  free(resp->body);
  resp->body = text;
  resp->len = len;
  resp->status = status;
  resp->content_type = "application/json";
  resp->secret = false;
}

enum cs_err cs_resp_empty(struct cs_resp *resp, int status)
{
  free(resp->body);
  resp->body = malloc(1);
  if (!resp->body)
    return CS_ERR_NOMEM;
  resp->len = 0;
  resp->status = status;
  resp->content_type = NULL;
  return CS_OK;
}

void cs_resp_header(struct cs_resp *resp, const char *name, const char *fmt, ...)
{
  va_list ap;
  if (resp->nheaders >= CS_MAX_HEADERS)
    return;
  resp->headers[resp->nheaders].name = name;
  va_start(ap, fmt);
  vsnprintf(resp->headers[resp->nheaders].value, sizeof resp->headers[0].value, fmt, ap);
  va_end(ap);
  resp->nheaders++;
}

/* A message cut by vsnprintf may end inside a UTF-8 character (a long
 * name): drop that partial character, so the body stays valid UTF-8. */
static void utf8_tail_trim(char *s)
{
  size_t n = strlen(s), i = n, need;
  while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && n - i < 3)
    i--;
  if (i == 0 || ((unsigned char)s[i - 1] & 0x80) == 0)
    return; /* ASCII, or continuation bytes without a lead: left to the caller's input */
  unsigned char lead = (unsigned char)s[i - 1];
  need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  if (n - (i - 1) < need)
    s[i - 1] = '\0';
}

enum cs_err cs_fail(struct cs_resp *resp, enum cs_err e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(resp->err_msg, sizeof resp->err_msg, fmt, ap);
  va_end(ap);
  utf8_tail_trim(resp->err_msg);
  return e;
}

enum cs_err cs_fail_field(struct cs_resp *resp, enum cs_err e, const char *field, const char *fmt,
                          ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(resp->err_msg, sizeof resp->err_msg, fmt, ap);
  va_end(ap);
  utf8_tail_trim(resp->err_msg);
  cJSON_Delete(resp->err_extra);
  if ((resp->err_extra = cJSON_CreateObject()))
    cJSON_AddStringToObject(resp->err_extra, "field", field);
  return e;
}
