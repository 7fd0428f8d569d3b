/* certificate (API.md §3 v2; mTLS clients): a PEM certificate (optionally
 * followed by its chain) and its PEM private key in secret.plain. GnuTLS
 * (crypto/pki.c) parses both and checks that the key is the certificate's;
 * the derived, output-only certificate{subject, issuer, notAfter, sha256}
 * is what a metadata read shows. An expired certificate is stored: whether
 * to use it is the consumer's decision, and notAfter says when it ended. */
#include "crypto.h"
#include "prov_internal.h"

#include <string.h>

/* Append to @p b every PEM block of @p pem that is a certificate (or with
 * @p key, a private key), each followed by a newline. */
static enum cs_err pem_blocks(const char *pem, size_t len, bool key, struct cs_buf *b)
{
  const char *p = pem, *end = pem + len;
  enum cs_err e = CS_OK;

  while (!e && (p = memmem(p, (size_t)(end - p), "-----BEGIN ", 11))) {
    const char *label = p + 11, *close = memmem(label, (size_t)(end - label), "-----", 5);
    if (!close)
      break;
    size_t ln = (size_t)(close - label);
    bool is_key = ln >= 11 && memcmp(close - 11, "PRIVATE KEY", 11) == 0;
    bool is_cert = ln == 11 && memcmp(label, "CERTIFICATE", 11) == 0;
    const char *stop = memmem(close, (size_t)(end - close), "-----END ", 9);
    const char *tail = stop ? memmem(stop + 9, (size_t)(end - stop - 9), "-----", 5) : NULL;
    if (!tail)
      break;
    tail += 5;
    if (key ? is_key : is_cert)
      e = cs_buf_append(b, p, (size_t)(tail - p));
    if (!e && (key ? is_key : is_cert))
      e = cs_buf_append(b, "\n", 1);
    p = tail;
  }
  return e;
}

/* The certificate blocks and the private-key block of @p pem, each into its
 * buffer (initialised here; free @p crt, wipe @p key, also on failure): the
 * one split that validation and resolve share, so whatever is stored
 * resolves. @return CS_ERR_INVALID (no certificate block or no key block),
 * CS_ERR_TOO_LARGE, CS_ERR_NOMEM. */
static enum cs_err split_pem(const char *pem, size_t len, struct cs_buf *crt, struct cs_buf *key)
{
  enum cs_err e;

  cs_buf_init(crt, CS_PKI_PEM_MAX + 64);
  cs_buf_init_secret(key, CS_PKI_PEM_MAX + 64);
  if ((e = pem_blocks(pem, len, false, crt)) || (e = pem_blocks(pem, len, true, key)))
    return e;
  return crt->len && key->len ? CS_OK : CS_ERR_INVALID;
}

static enum cs_err info_meta(const struct cs_cert_info *ci, cJSON **out)
{
  cJSON *m = cJSON_CreateObject(), *c = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  if (m && (e = cs_prov_add_item(m, "certificate", c = cJSON_CreateObject())) == CS_OK &&
      (e = cs_prov_add_str(c, "subject", ci->subject)) == CS_OK &&
      (e = cs_prov_add_str(c, "issuer", ci->issuer)) == CS_OK &&
      (e = cs_prov_add_str(c, "notAfter", ci->not_after)) == CS_OK &&
      (e = cs_prov_add_str(c, "sha256", ci->sha256)) == CS_OK) {
    *out = m;
    return CS_OK;
  }
  cJSON_Delete(m);
  return e;
}

static enum cs_err cert_validate(const cJSON *body, struct cs_prov_result *out,
                                 struct cs_prov_error *err)
{
  const char *plain = NULL;
  struct cs_cert_info ci;
  struct cs_pki_error pe = {CS_PKI_FAULT_NONE, ""};
  cJSON *meta = NULL;
  char *secret = NULL;
  size_t len;
  enum cs_err e;

  if ((e = cs_prov_plain(body, "secret", &plain, err)) != CS_OK)
    return e;
  if (!plain)
    return cs_prov_fail(err, CS_ERR_MISSING, "secret.plain",
                        "secret.plain (a PEM certificate followed by its PEM private key) is "
                        "required");
  if ((len = strlen(plain)) > CS_PKI_PEM_MAX)
    return cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                        "secret.plain is at most %zu bytes of PEM", CS_PKI_PEM_MAX);
  e = cs_cert_describe(plain, len, &ci, &pe);
  if (e == CS_ERR_INVALID)
    return cs_prov_fail(err, e, "secret.plain", "%s: %s",
                        pe.fault == CS_PKI_FAULT_MISMATCH ? "the private key is not the "
                                                            "certificate's"
                        : pe.fault == CS_PKI_FAULT_KEY    ? "the private key is unusable"
                                                          : "the certificate is unusable",
                        pe.msg);
  if (e)
    return e;
  /* GnuTLS reads more spellings than the resolve's split: accept only what
   * both read, so a stored certificate always resolves. */
  struct cs_buf crt, key;
  e = split_pem(plain, len, &crt, &key);
  cs_buf_free(&crt);
  cs_buf_wipe(&key);
  if (e == CS_ERR_INVALID)
    return cs_prov_fail(err, e, "secret.plain",
                        "secret.plain must hold \"-----BEGIN CERTIFICATE-----\" blocks and one "
                        "\"-----BEGIN ... PRIVATE KEY-----\" block");
  if (e || (e = info_meta(&ci, &meta)) || (e = cs_prov_dup_secret(plain, len, &secret))) {
    cJSON_Delete(meta);
    return e;
  }
  out->meta = meta;
  out->secret = secret;
  out->secret_len = len;
  return CS_OK;
}

static enum cs_err cert_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                 struct cs_net_error *err)
{
  struct cs_buf crt, key;
  cJSON *r = NULL;
  enum cs_err e;

  (void)err;
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  if ((e = split_pem(ctx->secret, ctx->secret_len, &crt, &key))) {
    if (e == CS_ERR_INVALID)
      e = CS_ERR_CRYPTO; /* validated on write: the payload is not ours */
    goto out;
  }
  e = CS_ERR_NOMEM;
  if (!(r = cJSON_CreateObject()) || (e = cs_prov_add_str(r, "type", "certificate")) ||
      (e = cs_prov_add_str(r, "certificate", crt.data)) ||
      (e = cs_prov_add_secret(r, "privateKey", key.data, key.len)))
    goto out;
  *out = r;
  r = NULL;
out:
  cs_json_wipe_delete(r);
  cs_buf_free(&crt);
  cs_buf_wipe(&key);
  return e;
}

static enum cs_err cert_resolve(const struct cs_prov_ctx *ctx, cJSON **out,
                                struct cs_net_error *err)
{
  return cs_prov_plain_resolve(cert_material, "certificate", ctx, out, err);
}

/* With a url: GET it presenting the certificate and key (mTLS). */
static enum cs_err cert_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  struct cs_buf crt, key;
  struct cs_url_auth auth = {0};
  enum cs_err e;

  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  if ((e = split_pem(ctx->secret, ctx->secret_len, &crt, &key))) {
    if (e == CS_ERR_INVALID)
      e = CS_ERR_CRYPTO; /* validated on write: the payload is not ours */
    goto out;
  }
  auth = (struct cs_url_auth){
      .cert_pem = crt.data, .cert_pem_len = crt.len, .key_pem = key.data, .key_pem_len = key.len};
  e = cs_prov_test_url(ctx, &auth, out);
out:
  cs_buf_free(&crt);
  cs_buf_wipe(&key);
  return e;
}

const struct cs_provider cs_provider_certificate = {
    .type = "certificate",
    .validate = cert_validate,
    .resolve = cert_resolve,
    .test = cert_test,
    .short_lived = cs_prov_never_short_lived,
};
