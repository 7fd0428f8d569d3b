/*
 * The credential renderer (cs_cred_render_text, server/core/cred_rec.c)
 * splits a record's stored meta text instead of parsing it. The input is
 * the meta: whatever it renders opens with _id; a meta that is a JSON
 * object (any spacing) must render to one JSON object; a meta as the store
 * holds it (cJSON's compact print of an object) must render, to text that
 * is itself cJSON's compact print (so member texts were copied whole), and
 * with each stored member but owner and authType present with its value.
 */
#include "core_internal.h"
#include "fuzz_common.h"
#include "providers.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  cs_fuzz_init();
  return 0;
}

static bool canonical(const char *meta, size_t len, cJSON **tree)
{
  char *again;
  bool yes;
  if (cs_json_parse(meta, len, CS_JSON_MAX_DEPTH, tree))
    return false;
  again = cs_json_print(*tree);
  yes = cJSON_IsObject(*tree) && again && strlen(again) == len && memcmp(again, meta, len) == 0;
  free(again);
  return yes;
}

/* Every stored member (authType aside) is in @p out as stored. */
static void check_members(const cJSON *stored, const cJSON *out)
{
  const cJSON *m;
  cJSON_ArrayForEach(m, stored)
  {
    bool twice = false;
    for (const cJSON *x = stored->child; x; x = x->next)
      twice = twice || (x != m && !strcmp(x->string, m->string));
    if (twice || !strcmp(m->string, "authType"))
      continue; /* a repeated name: which one a lookup finds is not the point */
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(out, m->string);
    if (!strcmp(m->string, "_id") || !strcmp(m->string, "type"))
      continue; /* shadowed by the record's own */
    if (!o || !cJSON_Compare(o, m, true))
      cs_fuzz_fail("stored member %s not rendered as stored", m->string);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct cs_cred_view c = {.id = "fuzz-1",
                           .prov = cs_providers[0],
                           .version = 7,
                           .created = 1700000000,
                           .modified = 1800000000,
                           .meta = (const char *)data,
                           .meta_len = size,
                           .fp = "v1.00",
                           .fp_len = 5};
  struct cs_buf b;
  cJSON *stored = NULL, *out = NULL;
  bool canon = canonical(c.meta, size, &stored);

  cs_buf_init(&b, CS_CRED_RENDER_MAX);
  enum cs_err e = cs_cred_render_text(&c, size % 2 == 0, &b);
  if (e && e != CS_ERR_STORE && e != CS_ERR_TOO_LARGE)
    cs_fuzz_fail("render: unexpected %s", cs_err_code(e));
  if (e && canon)
    cs_fuzz_fail("a stored meta did not render (%s)", cs_err_code(e));
  if (!e && strncmp(b.data, "{\"_id\":\"fuzz-1\",", 16) != 0)
    cs_fuzz_fail("rendered text does not open with _id: %s", b.data);
  /* A meta that is JSON (an object, any spacing) renders to JSON. Bytes no
   * store holds (not JSON at all) need only be refused or copied safely. */
  if (!e && cJSON_IsObject(stored)) {
    if (cs_json_parse(b.data, b.len, CS_JSON_MAX_DEPTH + 1, &out) || !cJSON_IsObject(out))
      cs_fuzz_fail("render of a JSON meta wrote no object: %s", b.data);
    if (!cJSON_GetObjectItemCaseSensitive(out, "lastModified"))
      cs_fuzz_fail("no lastModified");
  }
  if (!e && canon) {
    char *again = cs_json_print(out);
    if (!again || strcmp(again, b.data) != 0)
      cs_fuzz_fail("rendered text is not what a tree prints: %s", b.data);
    free(again);
    check_members(stored, out);
  }
  cJSON_Delete(out);
  cJSON_Delete(stored);
  cs_buf_free(&b);
  return 0;
}
