#include "common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scan nesting depth outside strings before cJSON recurses into it, and
 * refuse "\u0000" in strings: decoded, it would cut a C string short (an id,
 * a description, a secret) without anyone noticing. */
static enum cs_err prescan(const char *buf, size_t len, int max_depth)
{
  int depth = 0;
  bool in_str = false;

  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    if (in_str) {
      if (c == '\\') {
        if (i + 5 < len && buf[i + 1] == 'u' && !memcmp(buf + i + 2, "0000", 4))
          return CS_ERR_BAD_JSON;
        i++;
      } else if (c == '"') {
        in_str = false;
      }
      continue;
    }
    if (c == '"')
      in_str = true;
    else if (c == '{' || c == '[') {
      if (++depth > max_depth)
        return CS_ERR_TOO_DEEP;
    } else if (c == '}' || c == ']')
      depth--;
  }
  return CS_OK;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past
 * U+10FFFF. cJSON copies bytes through unchecked, so a body that is not
 * UTF-8 would be stored and echoed as invalid JSON text. */
bool cs_utf8_valid(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p;
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
      p++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if ((size_t)(end - p) <= n)
      return false;
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
  }
  return true;
}

enum cs_err cs_json_parse(const char *buf, size_t len, int max_depth, cJSON **out)
{
  const char *end = NULL;
  cJSON *j;

  if (!buf || len == 0)
    return CS_ERR_BAD_JSON;
  if (memchr(buf, '\0', len) || !cs_utf8_valid(buf, len))
    return CS_ERR_BAD_JSON;
  enum cs_err e = prescan(buf, len, max_depth);
  if (e)
    return e;
  j = cJSON_ParseWithLengthOpts(buf, len, &end, false);
  if (!j)
    return CS_ERR_BAD_JSON;
  /* Allow trailing whitespace only. */
  while (end && end < buf + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
    end++;
  if (end != buf + len) {
    cJSON_Delete(j);
    return CS_ERR_BAD_JSON;
  }
  *out = j;
  return CS_OK;
}

enum cs_err cs_json_opt_string(const cJSON *obj, const char *name, size_t max_len, const char **out)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!v || cJSON_IsNull(v)) {
    *out = NULL;
    return CS_OK;
  }
  if (!cJSON_IsString(v) || !v->valuestring || strlen(v->valuestring) > max_len)
    return CS_ERR_INVALID;
  *out = v->valuestring;
  return CS_OK;
}

enum cs_err cs_json_req_string(const cJSON *obj, const char *name, size_t max_len, const char **out)
{
  const char *s = NULL;
  enum cs_err e = cs_json_opt_string(obj, name, max_len, &s);
  if (e)
    return e;
  if (!s)
    return CS_ERR_MISSING;
  *out = s;
  return CS_OK;
}

enum cs_err cs_json_opt_int(const cJSON *obj, const char *name, int64_t min, int64_t max,
                            int64_t *out)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!v || cJSON_IsNull(v))
    return CS_OK;
  if (!cJSON_IsNumber(v))
    return CS_ERR_INVALID;
  double d = v->valuedouble;
  if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
    return CS_ERR_INVALID;
  *out = (int64_t)d;
  return CS_OK;
}

enum cs_err cs_json_opt_bool(const cJSON *obj, const char *name, bool *out)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!v || cJSON_IsNull(v))
    return CS_OK;
  if (!cJSON_IsBool(v))
    return CS_ERR_INVALID;
  *out = cJSON_IsTrue(v);
  return CS_OK;
}

char *cs_json_print(const cJSON *j) { return cJSON_PrintUnformatted(j); }

/* cJSON_Delete frees without clearing, so secrets parsed out of a payload
 * or built for a response would linger in freed heap: every value and
 * member name is wiped first. Referenced items belong to another tree and
 * constant names are not ours to write. Recursion depth is the tree's,
 * which every parser here caps. */
static void wipe_node(cJSON *j)
{
  if (j->type & cJSON_IsReference)
    return;
  if (j->valuestring)
    cs_memzero(j->valuestring, strlen(j->valuestring));
  if (j->string && !(j->type & cJSON_StringIsConst))
    cs_memzero(j->string, strlen(j->string));
  for (cJSON *c = j->child; c; c = c->next)
    wipe_node(c);
}

void cs_json_wipe(cJSON *j)
{
  if (j)
    wipe_node(j);
}

void cs_json_wipe_delete(cJSON *j)
{
  cs_json_wipe(j);
  cJSON_Delete(j);
}

bool cs_id_valid(const char *s, size_t len)
{
  if (!s || len == 0 || len > CS_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Is the code point at @p p (valid UTF-8, lead byte >= 0x80) a C1 control? */
static bool c1_control(const unsigned char *p) { return p[0] == 0xc2 && p[1] < 0xa0; }

bool cs_name_valid(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t chars = 0;

  if (!s || len == 0 || len > CS_NAME_MAX || !cs_utf8_valid(s, len) || s[0] == ' ' ||
      s[len - 1] == ' ' || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
    return false;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/' || p[i] == '\\')
      return false;
    if (p[i] >= 0xc0 && c1_control(p + i))
      return false;
    chars += (p[i] & 0xc0) != 0x80; /* count lead bytes, not continuations */
  }
  return chars <= CS_NAME_CHARS;
}

enum cs_err cs_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  if (!s || !*s || strlen(s) > 20)
    return CS_ERR_INVALID;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return CS_ERR_INVALID;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return CS_ERR_INVALID;
    v = v * 10 + d;
  }
  if (v > max)
    return CS_ERR_INVALID;
  *out = v;
  return CS_OK;
}
