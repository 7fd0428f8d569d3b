/* The core's two store primitives: committing a change (through the group
 * committer when serving, on its own otherwise), and walking a table keyed
 * by 8-byte big-endian sequence numbers (audit, events, outbox) in one
 * short read snapshot. */
#include "core_internal.h"

enum cs_err cs_seq_each_txn(struct cs_txn *txn, enum cs_table t, uint64_t from, cs_seq_fn fn,
                            void *arg)
{
  struct cs_cursor *c = NULL;
  struct cs_val k, v;
  uint8_t key[8];
  bool stop = false;
  enum cs_err e;

  if ((e = cs_cursor_open(txn, t, &c)))
    return e;
  cs_store_seq_key(from, key);
  for (e = cs_cursor_seek(c, key, 8, &k, &v); e == CS_OK && !stop; e = cs_cursor_next(c, &k, &v))
    if ((e = fn(cs_store_seq_from_key(k.data, k.len), &v, arg, &stop)))
      break;
  if (e == CS_ERR_NOT_FOUND)
    e = CS_OK;
  cs_cursor_close(c);
  return e;
}

enum cs_err cs_seq_each(struct cs_store *st, enum cs_table t, uint64_t from, cs_seq_fn fn,
                        void *arg)
{
  struct cs_txn *txn = NULL;
  enum cs_err e = cs_store_read_begin(st, &txn);

  if (!e)
    e = cs_seq_each_txn(txn, t, from, fn, arg);
  cs_store_read_end(txn);
  return e;
}

enum cs_err cs_core_write(struct cs_core *c, cs_store_write_fn fn, void *ctx)
{
  return c->writer ? cs_writer_submit(c->writer, fn, ctx) : cs_store_write(c->store, fn, ctx);
}
