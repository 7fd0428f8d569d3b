/* `credstore audit-export --store URL --out FILE` and `credstore audit-prune
 * --store URL --before SEQ` (API.md §11; --data DIR is --store lmdb:DIR),
 * with the key option serve uses: the trail is never silently cut. Export
 * writes every entry (of every chain: a cluster has one per node) as one
 * JSON line with its hash, in feed order (FILE is created 0600 and must not
 * exist), and records the entries as exported only once FILE is fsynced;
 * prune removes only exported entries, moving each chain's keyed anchor so
 * audit-verify checks what remains. Both may run beside serve (LMDB
 * serialises the writers; over etcd a prune's Txn re-reads the anchors it
 * moves) and on LMDB take serve.lock shared, so they refuse only while
 * rotate-key runs. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cs_actor cli_actor = {"cli", "", "cli"};

/* LMDB: serve.lock shared (refused while rotate-key runs). etcd has no
 * data dir: a cluster's rotate-key runs while the nodes serve. */
static enum cs_err lock_data(const struct cs_config *cfg, int *fd)
{
  *fd = -1;
  return cfg->data_dir ? cs_data_lock(cfg->data_dir, false, fd) : CS_OK;
}

static enum cs_err write_line(void *arg, const char *json, size_t len)
{
  FILE *f = arg;
  return fwrite(json, 1, len, f) == len && fputc('\n', f) != EOF ? CS_OK : CS_ERR_IO;
}

/* Export into @p path; the entries count as exported once they are on disk. */
static int export_to(struct cs_core *core, const char *path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  uint64_t count = 0, last = 0;
  enum cs_err e;

  if (!f) {
    fprintf(stderr, "credstore audit-export: cannot create %s: %s\n", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return 1;
  }
  e = cs_audit_export(core, write_line, f, &count, &last);
  if (fflush(f) || fsync(fd) || cs_fsync_parent(path))
    e = e ? e : CS_ERR_IO;
  if (fclose(f))
    e = e ? e : CS_ERR_IO;
  if (!e)
    e = cs_audit_mark_exported(core, last);
  if (e) {
    fprintf(stderr, "credstore audit-export: %s (%s is incomplete)\n", cs_err_message(e), path);
    return 1;
  }
  printf("{\"out\":\"%s\",\"entries\":%llu,\"last\":%llu}\n", path, (unsigned long long)count,
         (unsigned long long)last);
  return 0;
}

int cs_cmd_audit_export(const struct cs_config *cfg)
{
  struct cs_data data = {0};
  struct cs_core core;
  int lock_fd = -1, rc = 1;

  if (!cfg->store || !cfg->out) {
    fprintf(stderr, "credstore audit-export: --store URL (or --data DIR) and --out FILE are "
                    "required\n");
    return 2;
  }
  if (!lock_data(cfg, &lock_fd) && !cs_data_open(cfg, 0, &data)) {
    cs_core_init(&core, data.store, data.keyring, NULL);
    rc = export_to(&core, cfg->out);
  }
  cs_data_close(&data);
  cs_data_unlock(lock_fd);
  return rc;
}

/* LMDB: the chain's anchor; a cluster: every pruned chain's. */
static void print_anchor(struct cs_core *core, bool etcd, const struct cs_audit_anchor *a,
                         uint64_t removed)
{
  char hex[2 * CS_HASH_BYTES + 1];
  char *all = etcd ? cs_cli_anchors_json(core) : NULL;

  cs_hex(a->hash, CS_HASH_BYTES, hex);
  if (etcd)
    printf("{\"removed\":%llu,\"anchors\":%s}\n", (unsigned long long)removed, all ? all : "{}");
  else
    printf("{\"removed\":%llu,\"anchor\":{\"seq\":%llu,\"hash\":\"%s\"}}\n",
           (unsigned long long)removed, (unsigned long long)a->seq, hex);
  free(all);
}

int cs_cmd_audit_prune(const struct cs_config *cfg)
{
  struct cs_data data = {0};
  struct cs_core core;
  struct cs_audit_anchor anchor;
  uint64_t removed = 0, limit = 0;
  int lock_fd = -1, rc = 1;
  enum cs_err e;

  if (!cfg->store || !cfg->before) {
    fprintf(stderr, "credstore audit-prune: --store URL (or --data DIR) and --before SEQ are "
                    "required\n");
    return 2;
  }
  if (lock_data(cfg, &lock_fd) || cs_data_open(cfg, 0, &data))
    goto out;
  cs_core_init(&core, data.store, data.keyring, NULL);
  e = cs_audit_prune(&core, &cli_actor, (uint64_t)cfg->before, &removed, &limit, &anchor);
  if (e == CS_ERR_PRECONDITION)
    fprintf(stderr,
            "credstore audit-prune: --before %lld would remove entries not yet exported (or the "
            "newest); run audit-export first; --before may be at most %llu now\n",
            (long long)cfg->before, (unsigned long long)limit);
  else if (e)
    fprintf(stderr, "credstore audit-prune: %s (%llu removed)\n",
            e == CS_ERR_UNAVAILABLE ? "another audit-prune moved an anchor meanwhile; run it again"
                                    : cs_err_message(e),
            (unsigned long long)removed);
  else
    rc = 0;
  if (!e || removed)
    print_anchor(&core, cfg->etcd, &anchor, removed);
out:
  cs_data_close(&data);
  cs_data_unlock(lock_fd);
  return rc;
}
