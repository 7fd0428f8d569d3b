/* `credstore backup --data DIR --out FILE` (API.md §1): a consistent,
 * compacted copy of the store. It copies sealed bytes only, so it needs no
 * master key; the copy holds the wrapped keyring, so opening a restored copy
 * needs the same master key. It may run beside serve: the copy is one read
 * snapshot. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int cs_cmd_backup(const struct cs_config *cfg)
{
  struct cs_store *st = NULL;
  struct stat sb;
  enum cs_err e;

  if (!cfg->store || !cfg->out) {
    fprintf(stderr, "credstore backup: --data DIR (or --store URL) and --out FILE are required\n");
    return 2;
  }
  if (lstat(cfg->out, &sb) == 0) {
    fprintf(stderr, "credstore backup: %s already exists; refusing to overwrite it\n", cfg->out);
    return 1;
  }
  /* Read-only: a backup never writes to the store it copies. */
  if (cs_cli_store_open(cfg, cfg->store, CS_STORE_READONLY, &st))
    return 1;
  e = cs_store_backup(st, cfg->out); /* creates 0600, O_EXCL, fsyncs the file */
  cs_store_close(st);
  if (e) {
    fprintf(stderr, "credstore backup: cannot write %s: %s\n", cfg->out,
            e == CS_ERR_EXISTS ? "it already exists; refusing to overwrite it" : cs_err_message(e));
    return 1;
  }
  if (cs_fsync_parent(cfg->out) != 0 || stat(cfg->out, &sb) != 0) {
    fprintf(stderr, "credstore backup: cannot flush %s: %s\n", cfg->out, strerror(errno));
    return 1;
  }
  cJSON *o = cJSON_CreateObject();
  if (o && (!cJSON_AddStringToObject(o, "backup", cfg->out) ||
            !cJSON_AddNumberToObject(o, "bytes", (double)sb.st_size))) {
    cJSON_Delete(o);
    o = NULL;
  }
  return cs_print_json(o);
}
