/* The credential record (core_internal.h): its binary layout, the
 * associated data of its sealed secret (the credential id), its fingerprint
 * and the codec. The only file that knows the layout; credentials, usages,
 * resolve and the rewrap pass all go through it. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "CSC1"
#define HDR_LEN (4 + 1 + 8 + 8 + 8 + 4)
#define FP_HEX 32 /* hex chars of the sealed blob's digest shown as secret.encrypted */

static void put_be(uint8_t *p, uint64_t v, int n)
{
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static int type_index(const struct cs_provider *p)
{
  for (int i = 0; cs_providers[i]; i++)
    if (cs_providers[i] == p)
      return i;
  return -1;
}

enum cs_err cs_cred_decode(const char *id, const struct cs_val *v, struct cs_cred_view *out)
{
  const uint8_t *p = v->data;
  size_t n = v->len;
  int ntypes = 0;

  while (cs_providers[ntypes])
    ntypes++;
  if (n < HDR_LEN || memcmp(p, MAGIC, 4) != 0 || p[4] >= ntypes)
    return CS_ERR_STORE;
  uint64_t meta_len = get_be(p + 29, 4);
  if (meta_len > n - HDR_LEN - 1)
    return CS_ERR_STORE;
  size_t fp_off = HDR_LEN + (size_t)meta_len;
  size_t fp_len = p[fp_off];
  if (fp_len > n - fp_off - 1)
    return CS_ERR_STORE;
  out->id = id;
  out->prov = cs_providers[p[4]];
  out->version = get_be(p + 5, 8);
  out->created = (int64_t)get_be(p + 13, 8);
  out->modified = (int64_t)get_be(p + 21, 8);
  out->meta = (const char *)p + HDR_LEN;
  out->meta_len = (size_t)meta_len;
  out->fp = (const char *)p + fp_off + 1;
  out->fp_len = fp_len;
  out->sealed = p + fp_off + 1 + fp_len;
  out->sealed_len = n - fp_off - 1 - fp_len;
  return CS_OK;
}

enum cs_err cs_cred_encode(const struct cs_cred_view *c, uint8_t **out, size_t *out_len)
{
  size_t n = HDR_LEN + c->meta_len + 1 + c->fp_len + c->sealed_len;
  uint8_t *p;

  if (c->fp_len > 255 || c->meta_len > UINT32_MAX || type_index(c->prov) < 0)
    return CS_ERR_INTERNAL;
  if (!(p = malloc(n)))
    return CS_ERR_NOMEM;
  memcpy(p, MAGIC, 4);
  p[4] = (uint8_t)type_index(c->prov);
  put_be(p + 5, c->version, 8);
  put_be(p + 13, (uint64_t)c->created, 8);
  put_be(p + 21, (uint64_t)c->modified, 8);
  put_be(p + 29, c->meta_len, 4);
  memcpy(p + HDR_LEN, c->meta, c->meta_len);
  p[HDR_LEN + c->meta_len] = (uint8_t)c->fp_len;
  memcpy(p + HDR_LEN + c->meta_len + 1, c->fp, c->fp_len);
  if (c->sealed_len) /* aws with useAWSRole stores no secret */
    memcpy(p + HDR_LEN + c->meta_len + 1 + c->fp_len, c->sealed, c->sealed_len);
  *out = p;
  *out_len = n;
  return CS_OK;
}

static bool add_time(cJSON *o, const char *name, int64_t t)
{
  char buf[32];
  cs_time_format(t, buf);
  return cJSON_AddStringToObject(o, name, buf) != NULL;
}

const char *cs_cred_secret_field(const cJSON *meta)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(meta, "authType");
  return cJSON_IsString(a) && strcmp(a->valuestring, "apiToken") == 0 ? "apiToken" : "secret";
}

cJSON *cs_cred_render(const struct cs_cred_view *c)
{
  cJSON *meta = NULL, *o = cJSON_CreateObject(), *item, *owner = NULL;

  if (!o || cs_json_parse(c->meta, c->meta_len, CS_JSON_MAX_DEPTH, &meta))
    goto fail;
  if (!cJSON_AddStringToObject(o, "_id", c->id) ||
      !cJSON_AddStringToObject(o, "type", c->prov->type))
    goto fail;
  const char *field = cs_cred_secret_field(meta);
  owner = cJSON_DetachItemFromObjectCaseSensitive(meta, "owner");
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "authType");
  /* Provider fields and description, in stored order. */
  while ((item = meta->child)) {
    cJSON_DetachItemViaPointer(meta, item);
    cJSON_AddItemToObject(o, item->string, item);
  }
  if (c->fp_len > 0) {
    char fp[256];
    cJSON *s = cJSON_AddObjectToObject(o, field);
    snprintf(fp, sizeof fp, "%.*s", (int)c->fp_len, c->fp);
    if (!s || !cJSON_AddStringToObject(s, "encrypted", fp))
      goto fail;
  }
  if (!cJSON_AddNumberToObject(o, "version", (double)c->version) ||
      !add_time(o, "created", c->created) || !add_time(o, "lastModified", c->modified))
    goto fail;
  if (owner)
    cJSON_AddItemToObject(o, "owner", owner);
  cJSON_Delete(meta);
  return o;
fail:
  cJSON_Delete(owner);
  cJSON_Delete(meta);
  cJSON_Delete(o);
  return NULL;
}

enum cs_err cs_cred_load(struct cs_txn *txn, const char *id, struct cs_cred_view *out)
{
  struct cs_val v;
  enum cs_err e = cs_txn_get(txn, CS_TBL_CREDS, id, strlen(id), &v);
  return e ? e : cs_cred_decode(id, &v, out);
}

enum cs_err cs_cred_open_secret(const struct cs_keyring *kr, const struct cs_cred_view *c,
                                uint8_t **plain, size_t *len)
{
  if (c->sealed_len == 0) {
    /* No secret stored (aws with useAWSRole): an empty plaintext. */
    if (!(*plain = calloc(1, 1)))
      return CS_ERR_NOMEM;
    *len = 0;
    return CS_OK;
  }
  return cs_open(kr, c->id, c->sealed, c->sealed_len, plain, len);
}

enum cs_err cs_cred_snapshot(const struct cs_keyring *kr, const struct cs_cred_view *c,
                             struct cs_cred_snapshot *out)
{
  enum cs_err e;

  memset(out, 0, sizeof *out);
  out->prov = c->prov;
  out->version = c->version;
  if (cs_json_parse(c->meta, c->meta_len, CS_JSON_MAX_DEPTH, &out->meta))
    return CS_ERR_STORE;
  if ((e = cs_cred_open_secret(kr, c, &out->plain, &out->plain_len)))
    cs_cred_snapshot_free(out);
  return e;
}

void cs_cred_snapshot_free(struct cs_cred_snapshot *s)
{
  if (!s)
    return;
  cJSON_Delete(s->meta);
  cs_open_free(s->plain, s->plain_len);
  memset(s, 0, sizeof *s);
}

enum cs_err cs_cred_seal_secret(const struct cs_keyring *kr, const char *id, const void *plain,
                                size_t len, uint8_t **sealed, size_t *sealed_len,
                                char fp[CS_CRED_FP_MAX])
{
  uint8_t digest[CS_HASH_BYTES];
  enum cs_err e = cs_seal(kr, id, plain, len, sealed, sealed_len);

  if (e)
    return e;
  cs_digest(*sealed, *sealed_len, digest);
  memcpy(fp, "v1.", 3);
  cs_hex(digest, FP_HEX / 2, fp + 3);
  return CS_OK;
}

enum cs_err cs_cred_reseal(const struct cs_keyring *kr, const char *id, const struct cs_val *v,
                           uint8_t **out, size_t *len)
{
  struct cs_cred_view c;
  uint8_t *sealed = NULL, *rec = NULL;
  size_t sealed_len = 0;
  enum cs_err e;

  if (cs_cred_decode(id, v, &c))
    return CS_ERR_CRYPTO;
  if (c.sealed_len == 0)
    return CS_ERR_NOT_FOUND; /* no secret stored (aws useAWSRole) */
  if ((e = cs_reseal(kr, id, c.sealed, c.sealed_len, &sealed, &sealed_len)))
    return e;
  /* Same header, meta and fingerprint; only the sealed tail changes. */
  size_t prefix = (size_t)(c.sealed - (const uint8_t *)v->data);
  if ((rec = malloc(prefix + sealed_len))) {
    memcpy(rec, v->data, prefix);
    memcpy(rec + prefix, sealed, sealed_len);
    *out = rec;
    *len = prefix + sealed_len;
  }
  free(sealed);
  return rec ? CS_OK : CS_ERR_NOMEM;
}
