/* "Test connection" (API.md §8): prove a stored credential works through
 * its provider's test, and audit every test. The provider makes the calls
 * and keeps secrets out of the result; the core reads, opens and records. */
#include "core_internal.h"

#include <string.h>

static enum cs_err load(struct cs_core *c, const char *id, struct cs_cred_snapshot *s)
{
  struct cs_txn *txn;
  struct cs_cred_view v;
  enum cs_err e = cs_store_read_begin(c->store, &txn);

  memset(s, 0, sizeof *s);
  if (e)
    return e;
  if (!(e = cs_cred_load(txn, id, &v)))
    e = cs_cred_snapshot(cs_core_keyring_for(c, cs_sealed_version(v.sealed, v.sealed_len)), &v, s);
  cs_store_read_end(txn);
  return e;
}

enum cs_err cs_creds_test(struct cs_core *c, const struct cs_actor *a, const char *id,
                          struct cs_test_result *out)
{
  struct cs_cred_snapshot s;
  struct cs_test_result r;
  enum cs_err e;

  if (!c->broker)
    return CS_ERR_UNAVAILABLE;
  if ((e = load(c, id, &s)))
    return e;
  struct cs_prov_ctx ctx = {c->broker,   id,  s.version, s.meta, (const char *)s.plain,
                            s.plain_len, NULL};
  e = s.prov->test(&ctx, &r);
  cs_cred_snapshot_free(&s);
  if (e) {
    /* Not a verdict on the credential (unopenable, out of memory), but a
     * test was attempted: it is audited as a failure all the same. */
    if (cs_audit_record(c, a, "test", id, "failure"))
      CS_LOG(CS_LOG_WARN, "test of %s: its audit entry could not be recorded", id);
    return e;
  }
  if ((e = cs_audit_record(c, a, "test", id, r.ok ? "success" : "failure")))
    return e;
  *out = r;
  return CS_OK;
}
