/* credstore credential-process --url URL --credential ID --usage UID
 * (API.md §1): resolve an aws credential through a running credstore and
 * print AWS credential_process JSON on stdout. Errors go to stderr without
 * secrets, exit 1. The access key comes from CREDSTORE_ACCESS_KEY_ID and
 * CREDSTORE_ACCESS_KEY_SECRET. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_MAX (64 * 1024)

static int fail(const char *msg, const char *detail)
{
  fprintf(stderr, "credstore credential-process: %s%s%s\n", msg, detail ? ": " : "",
          detail ? detail : "");
  return 1;
}

/* {"Version":1,"AccessKeyId","SecretAccessKey","SessionToken"?,"Expiration"?} */
static char *to_process_json(const cJSON *m)
{
  const cJSON *ak = cJSON_GetObjectItemCaseSensitive(m, "AccessKeyId");
  const cJSON *sk = cJSON_GetObjectItemCaseSensitive(m, "SecretAccessKey");
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(m, "SessionToken");
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(m, "Expiration");
  cJSON *o = NULL;
  char *text = NULL;

  if (!cJSON_IsString(ak) || !cJSON_IsString(sk))
    return NULL;
  if ((o = cJSON_CreateObject()) && cJSON_AddNumberToObject(o, "Version", 1) &&
      cJSON_AddStringToObject(o, "AccessKeyId", ak->valuestring) &&
      cJSON_AddStringToObject(o, "SecretAccessKey", sk->valuestring) &&
      (!cJSON_IsString(tok) || cJSON_AddStringToObject(o, "SessionToken", tok->valuestring)) &&
      (!cJSON_IsString(exp) || cJSON_AddStringToObject(o, "Expiration", exp->valuestring)))
    text = cs_json_print(o);
  cs_json_wipe_delete(o);
  return text;
}

/* The resolve URL of --url and --credential. @return nonzero (said) when unusable. */
static int resolve_url(const struct cs_config *cfg, char url[2048])
{
  size_t ul = strlen(cfg->url);
  struct cs_buf b = cs_buf_fixed(url, 2048);

  if (!cs_name_valid(cfg->credential, strlen(cfg->credential)))
    return fail("--credential is not a credential name", NULL);
  while (ul && cfg->url[ul - 1] == '/')
    ul--;
  /* The name may hold spaces, '%', '?', UTF-8: one path segment, encoded. */
  if (cs_buf_printf(&b, "%.*s/api/v1/credentials/", (int)ul, cfg->url) ||
      cs_buf_url_escape(&b, cfg->credential, strlen(cfg->credential)) ||
      cs_buf_printf(&b, "/resolve"))
    return fail("--url is too long", NULL);
  return 0;
}

/* POST {"usageId"} to @p url with Basic @p id:@p secret; the answer into @p resp. */
static enum cs_err post_resolve(const char *url, const char *id, const char *secret,
                                const char *usage, long *status, struct cs_buf *resp)
{
  char header[1200], *auth_b64 = NULL, *body = NULL;
  struct cs_buf pair;
  cJSON *req = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  cs_buf_init(&pair, 1024);
  if (cs_buf_printf(&pair, "%s:%s", id, secret) ||
      !(auth_b64 = cs_base64_encode((const uint8_t *)pair.data, pair.len)) ||
      !(req = cJSON_CreateObject()) || !cJSON_AddStringToObject(req, "usageId", usage) ||
      !(body = cs_json_print(req)))
    goto out;
  snprintf(header, sizeof header, "Authorization: Basic %s", auth_b64);
  const char *headers[] = {header, NULL};
  e = cs_http_post_json(url, headers, body, strlen(body), 15000, status, resp);
  cs_memzero(header, sizeof header);
out:
  cs_buf_wipe(&pair);
  cs_free_secret_str(auth_b64);
  cJSON_Delete(req);
  free(body);
  return e;
}

/* An answer other than 200: error bodies carry no secrets, so pass the
 * server's message on. */
static int refused(long status, const struct cs_buf *resp)
{
  cJSON *err = NULL;
  const cJSON *msg = NULL;
  char what[64];
  int rc;

  if (resp->data && !cs_json_parse(resp->data, resp->len, 8, &err))
    msg = cJSON_GetObjectItemCaseSensitive(err, "err");
  snprintf(what, sizeof what, "credstore answered HTTP %ld", status);
  rc = fail(what, cJSON_IsString(msg) ? msg->valuestring : NULL);
  cJSON_Delete(err);
  return rc;
}

int cs_cmd_credential_process(const struct cs_config *cfg)
{
  const char *id = getenv("CREDSTORE_ACCESS_KEY_ID");
  const char *secret = getenv("CREDSTORE_ACCESS_KEY_SECRET");
  char url[2048], *out = NULL;
  struct cs_buf resp;
  cJSON *m = NULL;
  long status = 0;
  int rc = 1;
  enum cs_err e;

  if (!cfg->url || !cfg->credential || !cfg->usage)
    return fail("--url, --credential and --usage are required", NULL);
  if (!id || !id[0] || !secret || !secret[0])
    return fail("set CREDSTORE_ACCESS_KEY_ID and CREDSTORE_ACCESS_KEY_SECRET", NULL);
  if (resolve_url(cfg, url))
    return 1;
  cs_buf_init(&resp, RESPONSE_MAX);
  if ((e = post_resolve(url, id, secret, cfg->usage, &status, &resp)) == CS_ERR_NOMEM)
    goto out;
  if (e)
    rc = fail("cannot reach credstore at", cfg->url);
  else if (status != 200)
    rc = refused(status, &resp);
  else if (!resp.data || cs_json_parse(resp.data, resp.len, 8, &m) || !(out = to_process_json(m)))
    rc = fail("unexpected answer (is the credential of type aws?)", NULL);
  else {
    fputs(out, stdout);
    fputc('\n', stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
  }
out:
  cs_free_secret_str(out);
  cs_json_wipe_delete(m);
  cs_buf_wipe(&resp);
  return rc;
}
