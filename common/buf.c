#include "common.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_buf_init(struct cs_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
  b->secret = false;
}

void cs_buf_init_secret(struct cs_buf *b, size_t max)
{
  cs_buf_init(b, max);
  b->secret = true;
}

struct cs_buf cs_buf_fixed(char *mem, size_t size)
{
  /* cap = max + 1: reserve() never needs more than max + 1 bytes, so it
   * never reallocs the caller's array. */
  mem[0] = '\0';
  return (struct cs_buf){mem, 0, size, size - 1, false};
}

/* realloc() may move the bytes and leave the old block unwiped. */
static char *grow_wiped(struct cs_buf *b, size_t cap)
{
  char *p = malloc(cap);

  if (!p)
    return NULL;
  if (b->data) {
    memcpy(p, b->data, b->len + 1);
    cs_memzero(b->data, b->cap);
    free(b->data);
  }
  return p;
}

/* Make room for @p extra more bytes plus the terminating NUL. */
static enum cs_err reserve(struct cs_buf *b, size_t extra)
{
  size_t need;

  if (extra > b->max || b->len > b->max - extra)
    return CS_ERR_TOO_LARGE;
  need = b->len + extra + 1;
  if (need <= b->cap)
    return CS_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  char *p = b->secret ? grow_wiped(b, cap) : realloc(b->data, cap);
  if (!p)
    return CS_ERR_NOMEM;
  b->data = p;
  b->cap = cap;
  return CS_OK;
}

enum cs_err cs_buf_append(struct cs_buf *b, const void *data, size_t len)
{
  enum cs_err e = reserve(b, len);
  if (e)
    return e;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return CS_OK;
}

enum cs_err cs_buf_append_int(struct cs_buf *b, int64_t v)
{
  char d[20];
  size_t i = sizeof d;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

  do
    d[--i] = (char)('0' + u % 10);
  while ((u /= 10) != 0);
  if (v < 0)
    d[--i] = '-';
  return cs_buf_append(b, d + i, sizeof d - i);
}

enum cs_err cs_buf_printf(struct cs_buf *b, const char *fmt, ...)
{
  char small[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return CS_ERR_INTERNAL;
  if ((size_t)n < sizeof small)
    return cs_buf_append(b, small, (size_t)n);

  enum cs_err e = reserve(b, (size_t)n);
  if (e)
    return e;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return CS_OK;
}

enum cs_err cs_buf_url_escape(struct cs_buf *b, const char *s, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  enum cs_err e = CS_OK;

  for (size_t i = 0; i < len && !e; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        strchr("-._~", c)) {
      e = cs_buf_append(b, s + i, 1);
    } else {
      char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
      e = cs_buf_append(b, esc, 3);
    }
  }
  return e;
}

enum cs_err cs_buf_u64(struct cs_buf *b, uint64_t v)
{
  char rev[20], out[20];
  size_t n = 0;

  do
    rev[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  for (size_t i = 0; i < n; i++)
    out[i] = rev[n - 1 - i];
  return cs_buf_append(b, out, n);
}

enum cs_err cs_buf_json_escape(struct cs_buf *b, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  size_t start = 0;
  enum cs_err e;

  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    if ((e = cs_buf_append(b, s + start, i - start)))
      return e;
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"':
      esc[1] = '"';
      break;
    case '\\':
      esc[1] = '\\';
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      n = 6;
    }
    if ((e = cs_buf_append(b, esc, n)))
      return e;
    start = i + 1;
  }
  return cs_buf_append(b, s + start, len - start);
}

void cs_memzero(void *p, size_t len)
{
  if (p && len)
    explicit_bzero(p, len);
}

void cs_buf_wipe(struct cs_buf *b)
{
  if (!b)
    return;
  if (b->data)
    cs_memzero(b->data, b->cap);
  cs_buf_free(b);
}

void cs_buf_free(struct cs_buf *b)
{
  if (!b)
    return;
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void cs_free_secret_str(char *s)
{
  if (!s)
    return;
  cs_memzero(s, strlen(s));
  free(s);
}

enum cs_err cs_buf_json_u64(struct cs_buf *b, uint64_t v)
{
  char num[32];
  double d = (double)v;
  size_t n;

  if (d < 1e15)
    return cs_buf_u64(b, v);
  /* cJSON's test of "reads back": equal within DBL_EPSILON relative. */
  n = (size_t)snprintf(num, sizeof num, "%1.15g", d);
  double back = strtod(num, NULL), mx = back > d ? back : d;
  if (!((back > d ? back - d : d - back) <= mx * DBL_EPSILON))
    n = (size_t)snprintf(num, sizeof num, "%1.17g", d);
  return cs_buf_append(b, num, n);
}

enum cs_err cs_buf_json_str(struct cs_buf *b, const char *pre, size_t plen, const char *s)
{
  enum cs_err e;

  if ((e = cs_buf_append(b, pre, plen)) || (e = cs_buf_json_escape(b, s, strlen(s))))
    return e;
  return cs_buf_append(b, "\"", 1);
}
