/* `credstore audit-verify --store URL [--master-key-file F | --passphrase-env VAR]`
 * (API.md §5; --data DIR is --store lmdb:DIR): the chain is keyed, so
 * verifying it needs the master key; exit 0 only if every chain is intact,
 * each checked from its anchor after audit-prune. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum cs_err add_anchor(void *arg, const char *chain, const struct cs_audit_anchor *a)
{
  char hex[2 * CS_HASH_BYTES + 1];
  cJSON *o = cJSON_CreateObject();

  cs_hex(a->hash, CS_HASH_BYTES, hex);
  if (!o || !cJSON_AddNumberToObject(o, "seq", (double)a->seq) ||
      !cJSON_AddStringToObject(o, "hash", hex) || !cJSON_AddItemToObject(arg, chain, o)) {
    cJSON_Delete(o);
    return CS_ERR_NOMEM;
  }
  return CS_OK;
}

char *cs_cli_anchors_json(struct cs_core *core)
{
  cJSON *j = cJSON_CreateObject();
  char *text = NULL;

  if (j && !cs_audit_anchors(core, add_anchor, j))
    text = cs_json_print(j);
  cJSON_Delete(j);
  return text;
}

/* What audit-verify says when the data dir could not be opened with a key
 * (cs_data_open has said why). */
static void key_hint(const struct cs_config *cfg, enum cs_err e)
{
  if (e == CS_ERR_MASTER_KEY)
    fprintf(stderr, "credstore audit-verify: wrong master key: the audit chain is keyed with "
                    "a key derived from this data dir's master key; give that key\n");
  else if ((e == CS_ERR_IO || e == CS_ERR_INVALID) && !cfg->master_key_file &&
           !cfg->passphrase_env && cfg->data_dir)
    fprintf(stderr,
            "credstore audit-verify: the audit chain is keyed with a key derived from "
            "the master key: give the key option serve uses (--master-key-file F or "
            "--passphrase-env VAR; %s/master.key serves only a development data dir)\n",
            cfg->data_dir);
}

/* credstore audit-verify --data DIR [--master-key-file F | --passphrase-env VAR]:
 * the chain is keyed, so verifying it needs the master key. */
int cs_cmd_audit_verify(const struct cs_config *cfg)
{
  struct cs_data data = {0};
  struct cs_core core;
  struct cs_audit_break bad;
  struct cs_audit_anchor anchor = {0};
  char hex[2 * CS_HASH_BYTES + 1];
  uint64_t count = 0;
  size_t chains = 0;
  enum cs_err e;

  if (!cfg->store) {
    fprintf(stderr, "credstore audit-verify: --data DIR or --store URL is required\n");
    return 2;
  }
  if ((e = cs_data_open(cfg, CS_STORE_READONLY, &data))) {
    key_hint(cfg, e);
    return 1;
  }
  cs_core_init(&core, data.store, data.keyring, NULL);
  e = cs_audit_verify_chains(&core, &count, &chains, &bad, &anchor);
  char *anchors = !e && cfg->etcd ? cs_cli_anchors_json(&core) : NULL;
  cs_data_close(&data);
  if (e == CS_ERR_CRYPTO) {
    fprintf(stderr,
            "credstore audit-verify: the audit chain%s%s%s is broken at entry %llu "
            "(modified, removed, or rehashed without the key)\n",
            bad.chain[0] ? " of node \"" : "", bad.chain, bad.chain[0] ? "\"" : "",
            (unsigned long long)bad.seq);
    return 1;
  }
  if (e) {
    fprintf(stderr, "credstore audit-verify: %s\n", cs_err_message(e));
    return 1;
  }
  cs_hex(anchor.hash, CS_HASH_BYTES, hex);
  /* A cluster: every chain, and where each pruned one started. */
  if (cfg->etcd) {
    printf("{\"entries\":%llu,\"chains\":%zu,\"intact\":true,\"anchors\":%s}\n",
           (unsigned long long)count, chains, anchors ? anchors : "{}");
    free(anchors);
  }
  /* After audit-prune LMDB's chain is checked from its anchor: say which. */
  else if (anchor.seq)
    printf("{\"entries\":%llu,\"intact\":true,\"anchor\":{\"seq\":%llu,\"hash\":\"%s\"}}\n",
           (unsigned long long)count, (unsigned long long)anchor.seq, hex);
  /* LMDB: one chain, the output as it always was. */
  else
    printf("{\"entries\":%llu,\"intact\":true}\n", (unsigned long long)count);
  return 0;
}
