#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum cs_log_level cs_log_min_level = CS_LOG_INFO;

static _Thread_local char request_id[32];
static char node_id[CS_NODE_ID_MAX + 1]; /* set once before any thread logs */
static atomic_bool buffered;             /* stderr is fully buffered, flushed by a thread */

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
  size_t n = rid ? strnlen(rid, sizeof request_id - 1) : 0;
  if (n)
    memcpy(request_id, rid, n);
  request_id[n] = '\0';
}

const char *cs_log_request_id(void) { return request_id; }

void cs_log_set_node(const char *node)
{
  snprintf(node_id, sizeof node_id, "%s", node ? node : "");
}

/* The access log writes a line per request, so a line is put together
 * with appends: the date part of the timestamp is formatted once a second
 * per thread, the milliseconds by hand, and a message without conversions
 * is not run through vsnprintf. */
static _Thread_local time_t ts_sec = -1;
static _Thread_local char ts_date[32]; /* "YYYY-MM-DDTHH:MM:SS" of ts_sec */
static _Thread_local size_t ts_len;

static void append_ts(struct cs_buf *b)
{
  struct timeval tv;

  gettimeofday(&tv, NULL);
  if (tv.tv_sec != ts_sec) {
    cs_time_format((int64_t)tv.tv_sec, ts_date);
    ts_len = strlen(ts_date) - 1; /* without its "Z": the milliseconds go first */
    ts_sec = tv.tv_sec;
  }
  unsigned ms = (unsigned)(tv.tv_usec / 1000);
  char frac[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                  'Z'};
  (void)!cs_buf_append(b, ts_date, ts_len);
  (void)!cs_buf_append(b, frac, sizeof frac);
}

static void append_quoted(struct cs_buf *b, const char *s)
{
  (void)!cs_buf_append(b, "\"", 1);
  (void)!cs_buf_json_escape(b, s, strlen(s));
  (void)!cs_buf_append(b, "\"", 1);
}

__attribute__((format(printf, 3, 0))) static void
log_v(enum cs_log_level level, const char *members, const char *fmt, va_list ap)
{
  char msg[2048];
  char line[8192];
  struct cs_buf b = cs_buf_fixed(line, sizeof line);
  const char *text = fmt;

  if (strchr(fmt, '%')) {
    vsnprintf(msg, sizeof msg, fmt, ap);
    text = msg;
  }
  /* The buffer is stack memory with a fixed cap: appends past it are dropped
   * and the line is closed below regardless. */
  (void)!cs_buf_append(&b, "{\"ts\":\"", 7);
  append_ts(&b);
  (void)!cs_buf_append(&b, "\",\"level\":", 10);
  append_quoted(&b, level_names[level]);
  if (node_id[0]) {
    (void)!cs_buf_append(&b, ",\"node\":", 8);
    append_quoted(&b, node_id);
  }
  if (request_id[0]) {
    (void)!cs_buf_append(&b, ",\"rid\":\"", 8);
    (void)!cs_buf_append(&b, request_id, strlen(request_id));
    (void)!cs_buf_append(&b, "\"", 1);
  }
  (void)!cs_buf_append(&b, ",\"msg\":", 7);
  append_quoted(&b, text);
  if (members && members[0]) {
    (void)!cs_buf_append(&b, ",", 1);
    (void)!cs_buf_append(&b, members, strlen(members));
  }
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
