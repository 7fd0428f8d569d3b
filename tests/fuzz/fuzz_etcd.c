/*
 * What the etcd backend reads from outside: byte 0 picks the mode
 * (byte % 3). 0: a store URL (`etcd://H:P,.../PREFIX`, `lmdb:DIR`, DIR), as
 * an operator types it: cs_store_url_parse, whose promises are checked.
 * 1: a range reply ({"kvs":[...]}) and 2: a watch reply
 * ({"result":{"events":[...]}}), as etcd's JSON gateway sends them, applied
 * to a real local copy (an LMDB env under the store prefix "/f/") the way
 * the load and the watch apply them: cs_json_parse, then cs_etcd_apply_all
 * (base64 keys and values, int64 strings, keys outside the tables), in a
 * write txn that is then aborted.
 */
#include "etcd/etcd.h"
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

static struct cs_store *st;

static void close_store(void) { cs_store_close(st); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  struct cs_store_url u;

  (void)argc;
  (void)argv;
  cs_fuzz_init();
  cs_log_min_level = CS_LOG_OFF;
  if (cs_store_url_parse("etcd://127.0.0.1:1/f", &u) != CS_OK ||
      cs_etcd_open_local(&u, NULL, &st) != CS_OK)
    abort();
  atexit(close_store);
  return 0;
}

static void check_url(const char *s)
{
  struct cs_store_url u;

  if (cs_store_url_parse(s, &u) != CS_OK)
    return;
  if (!u.etcd) {
    if (!u.dir || !*u.dir)
      abort();
    return;
  }
  if (u.n_ep == 0 || u.n_ep > CS_ETCD_MAX_EP)
    abort();
  for (size_t i = 0; i < u.n_ep; i++)
    if (strncmp(u.ep[i], u.tls ? "https://" : "http://", u.tls ? 8 : 7) != 0)
      abort();
  if (u.prefix[0] != '/' || u.prefix[strlen(u.prefix) - 1] != '/' || strstr(u.prefix, "//"))
    abort();
}

static void apply(const char *s, size_t len, bool events)
{
  const cJSON *list;
  cJSON *j = NULL;
  MDB_txn *txn;
  int64_t max = 0;

  if (cs_json_parse(s, len, CS_JSON_MAX_DEPTH, &j) != CS_OK)
    return;
  list = events ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "result"),
                                                   "events")
                : cJSON_GetObjectItemCaseSensitive(j, "kvs");
  if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
    abort();
  if (cs_etcd_apply_all(st->etcd, txn, list, events, &max) == CS_OK && max < 0)
    abort();
  mdb_txn_abort(txn);
  cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s;

  if (size < 1)
    return 0;
  s = malloc(size);
  if (!s)
    return 0;
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';
  switch (data[0] % 3) {
  case 0:
    check_url(s);
    break;
  default:
    apply(s, size - 1, data[0] % 3 == 2);
    break;
  }
  free(s);
  return 0;
}
