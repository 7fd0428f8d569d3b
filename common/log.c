#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
#include <sys/time.h>

enum cs_log_level cs_log_min_level = CS_LOG_INFO;

static _Thread_local char request_id[32];
static atomic_bool buffered; /* stderr is fully buffered, flushed by a thread */

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

enum cs_err cs_log_parse_level(const char *s, enum cs_log_level *out)
{
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum cs_log_level)i;
      return CS_OK;
    }
  }
  return CS_ERR_INVALID;
}

void cs_log_set_request_id(const char *rid)
{
  if (!rid) {
    request_id[0] = '\0';
    return;
  }
  snprintf(request_id, sizeof request_id, "%s", rid);
}

const char *cs_log_request_id(void) { return request_id; }

__attribute__((format(printf, 3, 0))) static void
log_v(enum cs_log_level level, const char *members, const char *fmt, va_list ap)
{
  char msg[2048];
  char line[8192];
  struct cs_buf b = cs_buf_fixed(line, sizeof line);
  struct timeval tv;
  struct tm tm;

  vsnprintf(msg, sizeof msg, fmt, ap);
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  /* The buffer is stack memory with a fixed cap: appends past it are dropped
   * and the line is closed below regardless. */
  (void)!cs_buf_printf(&b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level]);
  if (request_id[0])
    (void)!cs_buf_printf(&b, ",\"rid\":\"%s\"", request_id);
  (void)!cs_buf_printf(&b, ",\"msg\":\"");
  (void)!cs_buf_json_escape(&b, msg, strlen(msg));
  (void)!cs_buf_printf(&b, "\"");
  if (members && members[0])
    (void)!cs_buf_printf(&b, ",%s", members);
  if (b.len + 3 > sizeof line)
    b.len = sizeof line - 3;
  line[b.len++] = '}';
  line[b.len++] = '\n';
  fwrite(line, 1, b.len, stderr);
  /* Buffered (serve): warnings and errors still leave at once. */
  if (buffered && level >= CS_LOG_WARN)
    fflush(stderr);
}

/* ------------------------------------------------------------- buffering */

/* One unbuffered write(2) per access-log line was the largest single cost
 * of a request; serve buffers stderr and a thread flushes it often. */
static char stderr_buf[64 * 1024];
static atomic_bool flusher_stop;
static pthread_t flusher;

static void *flusher_main(void *arg)
{
  while (!atomic_load(&flusher_stop)) {
    usleep(100 * 1000);
    fflush(stderr);
  }
  return NULL;
}

void cs_log_buffer_start(void)
{
  if (atomic_load(&buffered))
    return;
  fflush(stderr);
  if (setvbuf(stderr, stderr_buf, _IOFBF, sizeof stderr_buf) != 0)
    return;
  atomic_store(&flusher_stop, false);
  if (pthread_create(&flusher, NULL, flusher_main, NULL) != 0) {
    setvbuf(stderr, NULL, _IONBF, 0);
    return;
  }
  atomic_store(&buffered, true);
}

void cs_log_buffer_stop(void)
{
  if (!atomic_load(&buffered))
    return;
  atomic_store(&flusher_stop, true);
  pthread_join(flusher, NULL);
  fflush(stderr);
  setvbuf(stderr, NULL, _IONBF, 0);
  atomic_store(&buffered, false);
}

void cs_log_write(enum cs_log_level level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  log_v(level, NULL, fmt, ap);
  va_end(ap);
}

void cs_log_fields(enum cs_log_level level, const char *json_members, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  log_v(level, json_members, fmt, ap);
  va_end(ap);
}
