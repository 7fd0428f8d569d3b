/* credstore: one binary, one command per word (API.md §1). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#ifndef CS_VERSION
#define CS_VERSION "0.0.0"
#endif

static void usage(FILE *f)
{
  fputs(
      "usage: credstore <command> [options]\n"
      "\n"
      "commands:\n"
      "  init     --data DIR [--master-key-file F | --passphrase-env VAR]\n"
      "  init     --store etcd://H:P[,H:P...][/PREFIX] (--master-key-file F | --passphrase-env "
      "VAR)\n"
      "  serve    --data DIR [--listen HOST:PORT] [--master-key-file F | --passphrase-env VAR]\n"
      "           [--tls-cert F --tls-key F] [--insecure-http] [--sts-endpoint URL]\n"
      "           [--imds-endpoint URL] [--token-ttl SECONDS] [--log-level LEVEL]\n"
      "           [--threads N] [--max-connections N] [--conn-timeout SECONDS] [--outbound-timeout "
      "S]\n"
      "           [--prisma-token-ttl SECONDS] [--customer-name NAME] [--prisma-id ID]\n"
      "           (the /prisma mount: Prisma Cloud's clients, API.md §7)\n"
      "           [--events-retention DURATION] [--events-max-count N]\n"
      "           [--webhook-max-age DURATION]\n"
      "  audit-verify --data DIR [--master-key-file F | --passphrase-env VAR]\n"
      "           (the audit chain is keyed with a key derived from the master key;\n"
      "           without a key option DIR/master.key, the development key, is used)\n"
      "  audit-export --data DIR --out FILE [key option]\n"
      "           every audit entry (every node's chain) as one JSON line with its hash, in\n"
      "           feed order; records them as exported\n"
      "  audit-prune --data DIR --before SEQ [key option]\n"
      "           removes exported entries below SEQ; each chain goes on from its anchor\n"
      "  backup   --data DIR --out FILE\n"
      "  restore  --from FILE --data NEWDIR [--master-key-file F | --passphrase-env VAR]\n"
      "  rotate-key --data DIR [--master-key-file F | --passphrase-env VAR]\n"
      "  admin-key --data DIR [--master-key-file F | --passphrase-env VAR] [--name NAME]\n"
      "           mints a new unscoped admin key (recovery; audited; may run beside serve)\n"
      "  migrate  --from STORE --to STORE [--master-key-file F | --passphrase-env VAR]\n"
      "           copies a whole store into an empty one, then checks counts and the audit chain\n"
      "  credential-process --url URL --credential ID --usage UID\n"
      "           (access key from CREDSTORE_ACCESS_KEY_ID / CREDSTORE_ACCESS_KEY_SECRET)\n"
      "  version\n"
      "\n"
      "--data DIR is --store lmdb:DIR; every command takes --store URL instead: lmdb:DIR,\n"
      "etcd://H:P[,H:P...][/PREFIX] or etcds://... (--etcd-cacert F, --etcd-cert F --etcd-key F;\n"
      "CREDSTORE_ETCD_USER / CREDSTORE_ETCD_PASSWORD). serve --node-id NAME (default\n"
      "hostname:port) names the node in logs, metrics and audit entries.\n"
      "Every option may also come from CREDSTORE_<OPTION> (e.g. CREDSTORE_DATA).\n",
      f);
}

int main(int argc, char **argv)
{
  struct cs_config cfg;

  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("credstore %s\n", CS_VERSION);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (cs_crypto_init()) {
    fprintf(stderr, "credstore: libsodium failed to initialise\n");
    return 1;
  }
  if (cs_config_parse(argc - 2, argv + 2, &cfg))
    return 2;
  if (strcmp(cmd, "init") == 0)
    return cs_cmd_init(&cfg);
  if (strcmp(cmd, "serve") == 0)
    return cs_cmd_serve(&cfg);
  if (strcmp(cmd, "audit-verify") == 0)
    return cs_cmd_audit_verify(&cfg);
  if (strcmp(cmd, "audit-export") == 0)
    return cs_cmd_audit_export(&cfg);
  if (strcmp(cmd, "audit-prune") == 0)
    return cs_cmd_audit_prune(&cfg);
  if (strcmp(cmd, "backup") == 0)
    return cs_cmd_backup(&cfg);
  if (strcmp(cmd, "restore") == 0)
    return cs_cmd_restore(&cfg);
  if (strcmp(cmd, "rotate-key") == 0)
    return cs_cmd_rotate_key(&cfg);
  if (strcmp(cmd, "admin-key") == 0)
    return cs_cmd_admin_key(&cfg);
  if (strcmp(cmd, "migrate") == 0)
    return cs_cmd_migrate(&cfg);
  if (strcmp(cmd, "credential-process") == 0)
    return cs_cmd_credential_process(&cfg);
  fprintf(stderr, "credstore: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
