/* `credstore audit-verify --data DIR [--master-key-file F | --passphrase-env VAR]`
 * (API.md §5): the chain is keyed, so verifying it needs the master key;
 * exit 0 only if it is intact. */
#include "cli.h"

#include <stdio.h>

/* What audit-verify says when the data dir could not be opened with a key
 * (cs_data_open has said why). */
static void key_hint(const struct cs_config *cfg, enum cs_err e)
{
  if (e == CS_ERR_MASTER_KEY)
    fprintf(stderr, "credstore audit-verify: wrong master key: the audit chain is keyed with "
                    "a key derived from this data dir's master key; give that key\n");
  else if ((e == CS_ERR_IO || e == CS_ERR_INVALID) && !cfg->master_key_file && !cfg->passphrase_env)
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
  uint64_t count = 0, bad = 0;
  struct cs_audit_anchor anchor = {0};
  char hex[2 * CS_HASH_BYTES + 1];
  enum cs_err e;

  if (!cfg->data_dir) {
    fprintf(stderr, "credstore audit-verify: --data DIR is required\n");
    return 2;
  }
  if ((e = cs_data_open(cfg, CS_STORE_READONLY, &data))) {
    key_hint(cfg, e);
    return 1;
  }
  cs_core_init(&core, data.store, data.keyring, NULL);
  e = cs_audit_verify(&core, &count, &bad, &anchor);
  cs_data_close(&data);
  if (e == CS_ERR_CRYPTO) {
    fprintf(stderr,
            "credstore audit-verify: the audit chain is broken at entry %llu "
            "(modified, removed, or rehashed without the key)\n",
            (unsigned long long)bad);
    return 1;
  }
  if (e) {
    fprintf(stderr, "credstore audit-verify: %s\n", cs_err_message(e));
    return 1;
  }
  cs_hex(anchor.hash, CS_HASH_BYTES, hex);
  /* After audit-prune the chain is checked from its anchor: say which. */
  if (anchor.seq)
    printf("{\"entries\":%llu,\"intact\":true,\"anchor\":{\"seq\":%llu,\"hash\":\"%s\"}}\n",
           (unsigned long long)count, (unsigned long long)anchor.seq, hex);
  else
    printf("{\"entries\":%llu,\"intact\":true}\n", (unsigned long long)count);
  return 0;
}
