/* X.509 and RSA through GnuTLS (the library libmicrohttpd already links):
 * RS256 signatures for GCP's JWT-bearer assertions and the description of
 * a certificate-and-key credential. Parsing, signing and key ids are all
 * GnuTLS's; this file only bounds inputs, maps errors and copies results. */
#include "crypto.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A borrowed view of caller text, for the GnuTLS calls that take a datum. */
static gnutls_datum_t view(const void *p, size_t n)
{
  gnutls_datum_t d = {(unsigned char *)(uintptr_t)p, (unsigned int)n};
  return d;
}

static enum cs_err import_key(const char *pem, size_t len, gnutls_privkey_t *out, const char **why)
{
  gnutls_privkey_t k = NULL;
  gnutls_datum_t d = view(pem, len);
  int rc;

  if (!pem || len == 0 || len > CS_PKI_PEM_MAX) {
    *why = "private key: missing or larger than 64 KiB";
    return CS_ERR_INVALID;
  }
  if (gnutls_privkey_init(&k) < 0)
    return CS_ERR_NOMEM;
  /* No password: an encrypted key fails here, as it must (none is stored). */
  rc = gnutls_privkey_import_x509_raw(k, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
  if (rc < 0) {
    gnutls_privkey_deinit(k);
    if (rc == GNUTLS_E_MEMORY_ERROR)
      return CS_ERR_NOMEM;
    /* The label says it better than GnuTLS's code for a missing password. */
    *why = memmem(pem, len, "ENCRYPTED PRIVATE KEY", 21) || memmem(pem, len, "4,ENCRYPTED", 11)
               ? "private key: encrypted keys are not accepted; store it unencrypted"
               : "private key: no unencrypted PEM private key (BEGIN PRIVATE KEY, BEGIN RSA "
                 "PRIVATE KEY or BEGIN EC PRIVATE KEY) that parses";
    return CS_ERR_INVALID;
  }
  *out = k;
  return CS_OK;
}

enum cs_err cs_rs256_sign(const char *pem, size_t pem_len, const void *data, size_t len,
                          uint8_t **sig, size_t *sig_len, const char **why)
{
  const char *dummy;
  gnutls_privkey_t k = NULL;
  gnutls_datum_t msg = view(data, len), s = {NULL, 0};
  unsigned int bits = 0;
  uint8_t *copy;
  enum cs_err e;

  why = why ? why : &dummy;
  if ((e = import_key(pem, pem_len, &k, why)) != CS_OK)
    return e;
  e = CS_ERR_INVALID;
  if (gnutls_privkey_get_pk_algorithm(k, &bits) != GNUTLS_PK_RSA) {
    *why = "private key: RS256 needs an RSA key";
    goto out;
  }
  if (bits < CS_RSA_MIN_BITS) {
    *why = "private key: RSA keys shorter than 2048 bits are refused";
    goto out;
  }
  e = CS_ERR_INTERNAL;
  if (gnutls_privkey_sign_data2(k, GNUTLS_SIGN_RSA_SHA256, 0, &msg, &s) < 0 || !s.data)
    goto out;
  e = CS_ERR_NOMEM;
  if (!(copy = malloc(s.size)))
    goto out;
  memcpy(copy, s.data, s.size);
  *sig = copy;
  *sig_len = s.size;
  e = CS_OK;
out:
  gnutls_free(s.data);
  gnutls_privkey_deinit(k); /* GnuTLS zeroes the key's numbers */
  return e;
}

/* ------------------------------------------------------------ certificates */

static enum cs_err fail(struct cs_pki_error *err, enum cs_pki_fault fault, const char *msg)
{
  if (err) {
    err->fault = fault;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
  }
  return CS_ERR_INVALID;
}

/* Copy a GnuTLS string into @p dst, cut at a UTF-8 character boundary. */
static void copy_text(char *dst, size_t cap, const gnutls_datum_t *d)
{
  size_t n = d->size < cap - 1 ? d->size : cap - 1;

  if (n < d->size)
    while (n > 0 && (d->data[n] & 0xC0) == 0x80)
      n--;
  memcpy(dst, d->data, n);
  dst[n] = '\0';
}

static enum cs_err dn_of(gnutls_x509_crt_t crt, bool issuer, char *dst, size_t cap)
{
  gnutls_datum_t d = {NULL, 0};
  int rc =
      issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) : gnutls_x509_crt_get_dn3(crt, &d, 0);

  if (rc == GNUTLS_E_MEMORY_ERROR)
    return CS_ERR_NOMEM;
  dst[0] = '\0';
  if (rc >= 0 && d.data)
    copy_text(dst, cap, &d);
  gnutls_free(d.data);
  return CS_OK; /* an empty DN is legal (SAN-only certificates) */
}

static enum cs_err import_certs(const char *pem, size_t len, gnutls_x509_crt_t **certs, unsigned *n,
                                const char **why)
{
  gnutls_datum_t d = view(pem, len);
  int rc;

  *certs = NULL;
  *n = 0;
  rc = gnutls_x509_crt_list_import2(certs, n, &d, GNUTLS_X509_FMT_PEM, 0);
  if (rc == GNUTLS_E_MEMORY_ERROR)
    return CS_ERR_NOMEM;
  if (rc < 0 || *n == 0) {
    *why = rc == GNUTLS_E_BASE64_DECODING_ERROR || rc == GNUTLS_E_NO_CERTIFICATE_FOUND
               ? "no PEM certificate (-----BEGIN CERTIFICATE-----) found"
               : "a PEM certificate does not parse as X.509";
    return CS_ERR_INVALID;
  }
  return CS_OK;
}

static void free_certs(gnutls_x509_crt_t *certs, unsigned n)
{
  for (unsigned i = 0; i < n; i++)
    gnutls_x509_crt_deinit(certs[i]);
  gnutls_free(certs);
}

enum cs_err cs_pem_certs_count(const char *pem, size_t len, size_t max, size_t *count,
                               const char **why)
{
  const char *dummy;
  gnutls_x509_crt_t *certs;
  unsigned n;
  enum cs_err e;

  why = why ? why : &dummy;
  if (len > max || len > UINT32_MAX) {
    *why = "larger than allowed";
    return CS_ERR_TOO_LARGE;
  }
  if ((e = import_certs(pem, len, &certs, &n, why)) != CS_OK)
    return e;
  free_certs(certs, n);
  *count = n;
  return CS_OK;
}

/* Do @p crt and @p key hold the same public key? */
static enum cs_err same_key(gnutls_x509_crt_t crt, gnutls_privkey_t key, bool *same)
{
  unsigned char a[64], b[64];
  size_t na = sizeof a, nb = sizeof b;
  gnutls_pubkey_t pub = NULL;
  enum cs_err e = CS_ERR_NOMEM;

  *same = false;
  if (gnutls_pubkey_init(&pub) < 0)
    return e;
  if (gnutls_pubkey_import_privkey(pub, key, 0, 0) < 0 ||
      gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, b, &nb) < 0) {
    e = CS_ERR_INTERNAL;
    goto out;
  }
  /* A certificate whose key GnuTLS cannot read has no id: not the same. */
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &na) >= 0)
    *same = na == nb && cs_bytes_equal(a, b, na);
  e = CS_OK;
out:
  gnutls_pubkey_deinit(pub);
  return e;
}

static enum cs_err describe_leaf(gnutls_x509_crt_t crt, struct cs_cert_info *info)
{
  unsigned char fp[32];
  size_t fpn = sizeof fp;
  time_t na = gnutls_x509_crt_get_expiration_time(crt);
  enum cs_err e;

  if ((e = dn_of(crt, false, info->subject, sizeof info->subject)) ||
      (e = dn_of(crt, true, info->issuer, sizeof info->issuer)))
    return e;
  if (na == (time_t)-1 || gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fpn) < 0 ||
      fpn != sizeof fp)
    return CS_ERR_INVALID;
  info->not_after_epoch = (int64_t)na;
  cs_time_format(info->not_after_epoch, info->not_after);
  cs_hex(fp, sizeof fp, info->sha256);
  return CS_OK;
}

enum cs_err cs_cert_describe(const char *pem, size_t len, struct cs_cert_info *out,
                             struct cs_pki_error *err)
{
  struct cs_cert_info info = {0};
  gnutls_x509_crt_t *certs = NULL;
  gnutls_privkey_t key = NULL;
  const char *why = "";
  unsigned n = 0;
  bool same;
  enum cs_err e;

  if (!pem || len == 0 || len > CS_PKI_PEM_MAX)
    return fail(err, CS_PKI_FAULT_CERT, "certificate: missing or larger than 64 KiB");
  if ((e = import_certs(pem, len, &certs, &n, &why)) != CS_OK) {
    if (e == CS_ERR_INVALID)
      fail(err, CS_PKI_FAULT_CERT, why);
    goto out;
  }
  if ((e = describe_leaf(certs[0], &info)) != CS_OK) {
    if (e == CS_ERR_INVALID)
      fail(err, CS_PKI_FAULT_CERT, "certificate: no readable expiry or fingerprint");
    goto out;
  }
  if ((e = import_key(pem, len, &key, &why)) != CS_OK) {
    if (e == CS_ERR_INVALID)
      fail(err, CS_PKI_FAULT_KEY, why);
    goto out;
  }
  if ((e = same_key(certs[0], key, &same)) != CS_OK)
    goto out;
  if (!same) {
    e = fail(err, CS_PKI_FAULT_MISMATCH,
             "the private key does not belong to the (first) certificate");
    goto out;
  }
  *out = info;
out:
  gnutls_privkey_deinit(key);
  free_certs(certs, n);
  return e;
}
