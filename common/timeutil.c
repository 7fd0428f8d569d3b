#include "common.h"

#include <stdio.h>
#include <string.h>

int64_t cs_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}

int64_t cs_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cs_deadline_in_ms(int64_t ms, struct timespec *out)
{
  clock_gettime(CLOCK_REALTIME, out);
  out->tv_sec += ms / 1000;
  out->tv_nsec += (ms % 1000) * 1000000;
  if (out->tv_nsec >= 1000000000) {
    out->tv_sec++;
    out->tv_nsec -= 1000000000;
  }
}

static void put_digits(char *out, unsigned v, int n)
{
  while (n-- > 0) {
    out[n] = (char)('0' + v % 10);
    v /= 10;
  }
}

/* gmtime_r and strftime were a tenth of a GET that renders two times. The
 * calendar from the day count (H. Hinnant's days_from_civil, inverted) gives
 * the same text for years 1970 to 9999; times outside, which strftime
 * writes with another number of year digits, still take the libc path. */
#define CS_TIME_FAST_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

static void time_format_fast(int64_t t, char out[static 32])
{
  int64_t days = t / 86400, sec = t % 86400;
  int64_t z = days + 719468; /* days since 0000-03-01 */
  int64_t era = z / 146097;
  unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
  unsigned mp = (5 * doy + 2) / 153;                                    /* March = 0 */
  unsigned d = doy - (153 * mp + 2) / 5 + 1;
  unsigned m = mp < 10 ? mp + 3 : mp - 9;
  unsigned y = (unsigned)(era * 400 + yoe) + (m <= 2);

  memcpy(out, "0000-00-00T00:00:00Z", 21);
  put_digits(out, y, 4);
  put_digits(out + 5, m, 2);
  put_digits(out + 8, d, 2);
  put_digits(out + 11, (unsigned)(sec / 3600), 2);
  put_digits(out + 14, (unsigned)(sec / 60 % 60), 2);
  put_digits(out + 17, (unsigned)(sec % 60), 2);
}

void cs_time_format(int64_t t, char out[static 32])
{
  struct tm tm;
  time_t tt = (time_t)t;
  if (t >= 0 && t <= CS_TIME_FAST_MAX) {
    time_format_fast(t, out);
    return;
  }
  if (!gmtime_r(&tt, &tm)) {
    snprintf(out, 32, "1970-01-01T00:00:00Z");
    return;
  }
  if (strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static int digits(const char *s, int n)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

enum cs_err cs_time_parse(const char *s, int64_t *out)
{
  size_t len = strlen(s);
  struct tm tm = {0};
  int off = 0;

  if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':')
    return CS_ERR_INVALID;
  int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
  int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
  if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
      mi > 59 || se < 0 || se > 60)
    return CS_ERR_INVALID;
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return CS_ERR_INVALID;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
    off = 0;
  } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
    int oh = digits(p + 1, 2), om = digits(p + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59)
      return CS_ERR_INVALID;
    off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
  } else {
    return CS_ERR_INVALID;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  if (t == (time_t)-1)
    return CS_ERR_INVALID;
  /* timegm normalises 31 Feb into March; refuse such dates. */
  struct tm back;
  gmtime_r(&t, &back);
  if (back.tm_mday != d || back.tm_mon != mo - 1)
    return CS_ERR_INVALID;
  *out = (int64_t)t - off;
  return CS_OK;
}
