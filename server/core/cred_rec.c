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

const char *cs_cred_secret_field(const cJSON *meta)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(meta, "authType");
  return cJSON_IsString(a) && strcmp(a->valuestring, "apiToken") == 0 ? "apiToken" : "secret";
}

/* ------------------------------------------------------------ rendering */

/* The stored meta is cJSON's compact print of an object (compose_meta), so
 * its members are copied as they are: splitting the text costs a fraction
 * of parsing it into a tree and printing that again, and yields the same
 * bytes. A span that does not split is a corrupt record. */
struct member {
  const char *key; /* with its quotes */
  size_t key_len;
  const char *val;
  size_t val_len;
};

/* Whitespace as cJSON reads it: every byte up to the space. */
static bool is_ws(char c) { return (unsigned char)c <= ' '; }

static size_t skip_ws(const char *s, size_t n, size_t i)
{
  while (i < n && is_ws(s[i]))
    i++;
  return i;
}

/* Past the string that opens at s[i] ('"'); 0 if it does not close. */
static size_t string_end(const char *s, size_t n, size_t i)
{
  for (i++; i < n; i++) {
    if (s[i] == '\\')
      i++;
    else if (s[i] == '"')
      return i + 1;
  }
  return 0;
}

/* Past the value that starts at s[i]; 0 if it does not end. */
static size_t value_end(const char *s, size_t n, size_t i)
{
  size_t depth = 0, j = i;

  if (i < n && s[i] == '"')
    return string_end(s, n, i);
  if (i < n && s[i] != '{' && s[i] != '[') { /* number, true, false, null */
    while (j < n && s[j] != ',' && s[j] != '}' && s[j] != ']' && !is_ws(s[j]))
      j++;
    return j > i ? j : 0;
  }
  for (; j < n; j++) {
    if (s[j] == '"') {
      if (!(j = string_end(s, n, j)))
        return 0;
      j--;
    } else if (s[j] == '{' || s[j] == '[') {
      depth++;
    } else if ((s[j] == '}' || s[j] == ']') && --depth == 0) {
      return j + 1;
    }
  }
  return 0;
}

/* The member at *pos of the object text s (*pos just past '{' or a member).
 * @return 1 with *m set, 0 at the closing brace, -1 if malformed. */
static int next_member(const char *s, size_t n, size_t *pos, struct member *m)
{
  size_t i = skip_ws(s, n, *pos), k;

  if (i < n && s[i] == '}')
    return 0;
  if (i < n && s[i] == ',')
    i = skip_ws(s, n, i + 1);
  if (i >= n || s[i] != '"' || !(k = string_end(s, n, i)))
    return -1;
  m->key = s + i;
  m->key_len = k - i;
  i = skip_ws(s, n, k);
  if (i >= n || s[i] != ':')
    return -1;
  i = skip_ws(s, n, i + 1);
  if (!(k = value_end(s, n, i)))
    return -1;
  m->val = s + i;
  m->val_len = k - i;
  *pos = k;
  return 1;
}

static bool key_is(const struct member *m, const char *quoted)
{
  size_t n = strlen(quoted);
  return m->key_len == n && memcmp(m->key, quoted, n) == 0;
}

static enum cs_err append_str(struct cs_buf *b, const char *s, size_t len)
{
  enum cs_err e = cs_buf_append(b, "\"", 1);
  if (!e)
    e = cs_buf_json_escape(b, s, len);
  return e ? e : cs_buf_append(b, "\"", 1);
}

/* What the meta holds apart from the members shown in stored order. */
struct meta_extras {
  struct member owner;
  bool has_owner, has_auth, api_token, has_role;
};

/* Copy the meta's members but the first owner and authType, noting those. */
static enum cs_err copy_members(const struct cs_cred_view *c, struct cs_buf *b,
                                struct meta_extras *x)
{
  const char *s = c->meta;
  size_t n = c->meta_len, pos = skip_ws(s, n, 0) + 1;
  struct member m;
  enum cs_err e = CS_OK;
  int r;

  if (pos > n || s[pos - 1] != '{')
    return CS_ERR_STORE;
  while (!e && (r = next_member(s, n, &pos, &m)) == 1) {
    if (!x->has_owner && key_is(&m, "\"owner\"")) {
      x->owner = m;
      x->has_owner = true;
    } else if (!x->has_auth && key_is(&m, "\"authType\"")) {
      x->has_auth = true;
      x->api_token = m.val_len == 10 && memcmp(m.val, "\"apiToken\"", 10) == 0;
    } else {
      x->has_role = x->has_role || key_is(&m, "\"useAWSRole\"");
      /* "key":value as one span, whatever spacing the meta had there. */
      if (!(e = cs_buf_append(b, ",", 1)))
        e = cs_buf_append(b, m.key, (size_t)(m.val + m.val_len - m.key));
    }
  }
  return e ? e : r < 0 ? CS_ERR_STORE : CS_OK;
}

/* The members after the stored ones: secret fingerprint, version, times, owner. */
static enum cs_err append_tail(const struct cs_cred_view *c, const struct meta_extras *x,
                               bool prisma, struct cs_buf *b)
{
  char created[32], modified[32];
  enum cs_err e = CS_OK;

  if (c->fp_len > 0) {
    e = cs_buf_append(
        b, x->api_token ? ",\"apiToken\":{\"encrypted\":" : ",\"secret\":{\"encrypted\":",
        x->api_token ? 25 : 23);
    if (!e && !(e = append_str(b, c->fp, strnlen(c->fp, c->fp_len))))
      e = cs_buf_append(b, "}", 1);
  }
  cs_time_format(c->created, created);
  cs_time_format(c->modified, modified);
  if (!e && !(e = cs_buf_append(b, ",\"version\":", 11)) &&
      !(e = cs_buf_append_int(b, (int64_t)c->version)) &&
      !(e = cs_buf_append(b, ",\"created\":", 11)) &&
      !(e = append_str(b, created, strlen(created))) &&
      !(e = cs_buf_append(b, ",\"lastModified\":", 16)))
    e = append_str(b, modified, strlen(modified));
  if (!e && x->has_owner && !(e = cs_buf_append(b, ",\"owner\":", 9)))
    e = cs_buf_append(b, x->owner.val, x->owner.val_len);
  if (!e && prisma && !x->has_role)
    e = cs_buf_append(b, ",\"useAWSRole\":false", 19);
  return e ? e : cs_buf_append(b, "}", 1);
}

enum cs_err cs_cred_render_text(const struct cs_cred_view *c, bool prisma, struct cs_buf *b)
{
  struct meta_extras x = {0};
  enum cs_err e = cs_buf_append(b, "{\"_id\":", 7);

  if (!e)
    e = append_str(b, c->id, strlen(c->id));
  if (!e && !(e = cs_buf_append(b, ",\"type\":", 8)))
    e = append_str(b, c->prov->type, strlen(c->prov->type));
  if (!e)
    e = copy_members(c, b, &x);
  return e ? e : append_tail(c, &x, prisma, b);
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
