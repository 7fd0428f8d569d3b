/*
 * Issue 17's record codecs (server/core/, core_internal.h). The first byte
 * picks one:
 *   bit 2 set (4, 6): the event printer. The rest is 8 bytes of seq, 8 of
 *     version, then NUL-separated type and credential id (bit 1: without
 *     seq, a shared store's); cs_event_print must print what cJSON printed.
 *   other even: the audit entry printer. The rest is 8 bytes of seq, then
 *     NUL-separated chain, actor, role, remote, action, target, result;
 *     cs_audit_entry_print must print byte for byte what cJSON printed for
 *     the same members (the chains written before it), and its text must
 *     parse back to those members.
 *   odd: the usage index entry. The rest is a stored value; a value that
 *     decodes with stats must encode back to the same bytes, one without
 *     must be the old "" or "t".
 * A difference aborts, so libFuzzer keeps it.
 */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS 7
#define FIELD_MAX 512

static char *oracle(const char *f[FIELDS], uint64_t seq, const uint8_t prev[CS_HASH_BYTES],
                    int64_t at)
{
  char prev_hex[2 * CS_HASH_BYTES + 1], when[32];
  char *text = NULL;
  cJSON *j = cJSON_CreateObject();

  cs_hex(prev, CS_HASH_BYTES, prev_hex);
  cs_time_format(at, when);
  bool ok = j && (f[0][0] ? cJSON_AddStringToObject(j, "node", f[0]) &&
                                cJSON_AddNumberToObject(j, "chainSeq", (double)seq)
                          : cJSON_AddNumberToObject(j, "seq", (double)seq) != NULL);
  if (ok && cJSON_AddStringToObject(j, "at", when) && cJSON_AddStringToObject(j, "actor", f[1]) &&
      cJSON_AddStringToObject(j, "role", f[2]) && cJSON_AddStringToObject(j, "action", f[4]) &&
      cJSON_AddStringToObject(j, "target", f[5]) && cJSON_AddStringToObject(j, "result", f[6]) &&
      cJSON_AddStringToObject(j, "remote", f[3]) &&
      cJSON_AddStringToObject(j, "prevHash", prev_hex))
    text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return text;
}

static void audit_entry(const uint8_t *data, size_t size)
{
  char buf[FIELDS][FIELD_MAX + 1];
  const char *f[FIELDS];
  uint8_t prev[CS_HASH_BYTES] = {0};
  uint64_t seq = 0;
  size_t at = 0;
  struct cs_buf b;

  for (size_t i = 0; i < 8 && at < size; i++)
    seq = seq << 8 | data[at++];
  for (int k = 0; k < FIELDS; k++) {
    size_t n = 0;
    while (at < size && data[at] && n < FIELD_MAX)
      buf[k][n++] = (char)data[at++];
    buf[k][n] = '\0';
    at += at < size; /* the separator */
    f[k] = buf[k];
  }
  memcpy(prev, &seq, sizeof seq);
  struct cs_actor a = {f[1], f[2], f[3]};
  char *want = oracle(f, seq, prev, 1764590000);
  if (!want)
    return;
  cs_buf_init(&b, 1u << 16);
  if (cs_audit_entry_print(&b, f[0], seq, prev, 1764590000, &a, f[4], f[5], f[6]) != CS_OK ||
      strcmp(b.data, want) != 0) {
    fprintf(stderr, "printer:\n%s\ncJSON:\n%s\n", b.data ? b.data : "(error)", want);
    abort();
  }
  cJSON *back = cJSON_Parse(b.data);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(back, "target");
  if (!cJSON_IsString(t) || strcmp(t->valuestring, f[5]) != 0)
    abort();
  cJSON_Delete(back);
  cs_buf_free(&b);
  free(want);
}

static char *event_oracle(bool with_seq, uint64_t seq, const char *type, const char *id,
                          uint64_t version)
{
  char when[32], *text = NULL;
  cJSON *j = cJSON_CreateObject();

  cs_time_format(1764590000, when);
  if (j && (!with_seq || cJSON_AddNumberToObject(j, "seq", (double)seq)) &&
      cJSON_AddStringToObject(j, "type", type) && cJSON_AddStringToObject(j, "credentialId", id) &&
      cJSON_AddNumberToObject(j, "version", (double)version) &&
      cJSON_AddStringToObject(j, "at", when))
    text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return text;
}

static void event_entry(bool with_seq, const uint8_t *data, size_t size)
{
  char buf[2][FIELD_MAX + 1];
  uint64_t num[2] = {0, 0};
  size_t at = 0;
  struct cs_buf b;

  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < 8 && at < size; i++)
      num[k] = num[k] << 8 | data[at++];
  for (int k = 0; k < 2; k++) {
    size_t n = 0;
    while (at < size && data[at] && n < FIELD_MAX)
      buf[k][n++] = (char)data[at++];
    buf[k][n] = '\0';
    at += at < size; /* the separator */
  }
  char *want = event_oracle(with_seq, num[0], buf[0], buf[1], num[1]);
  if (!want)
    return;
  cs_buf_init(&b, 1u << 16);
  if (cs_event_print(&b, with_seq, num[0], buf[0], buf[1], num[1], 1764590000) != CS_OK ||
      strcmp(b.data, want) != 0) {
    fprintf(stderr, "printer:\n%s\ncJSON:\n%s\n", b.data ? b.data : "(error)", want);
    abort();
  }
  cs_buf_free(&b);
  free(want);
}

static void usage_idx(const uint8_t *data, size_t size)
{
  enum cs_usage_material m;
  struct cs_usage_stats s;
  uint8_t again[CS_USAGE_IDX_LEN];
  bool has = false;

  if (cs_usage_idx_decode(data, size, &m, &s, &has) != CS_OK)
    return;
  if (!has) {
    if (!(size == 0 || (size == 1 && data[0] == 't')))
      abort();
    return;
  }
  cs_usage_idx_encode(m, &s, again);
  if (size != sizeof again || memcmp(again, data, size) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (data[0] & 1)
    usage_idx(data + 1, size - 1);
  else if (data[0] & 4)
    event_entry(!(data[0] & 2), data + 1, size - 1);
  else
    audit_entry(data + 1, size - 1);
  return 0;
}
