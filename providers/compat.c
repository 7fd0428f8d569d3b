/* The pre-broker AWS API (struct cs_aws_resolver), kept only so server/
 * builds unchanged while issue 12 restructures it; phase B holds a
 * cs_broker instead and deletes this file. */
#include "prov_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cs_aws_resolver {
  struct cs_broker *b;
};

enum cs_err cs_aws_resolver_create(const struct cs_aws_config *cfg, struct cs_aws_resolver **out)
{
  struct cs_broker_config bc = {0};
  struct cs_aws_resolver *r;
  char err[256];
  enum cs_err e;

  if (cfg)
    bc = (struct cs_broker_config){.sts_endpoint = cfg->sts_endpoint,
                                   .imds_endpoint = cfg->imds_endpoint,
                                   .timeout_ms = cfg->timeout_ms};
  if (!(r = calloc(1, sizeof *r)))
    return CS_ERR_NOMEM;
  if ((e = cs_broker_create(&bc, &r->b, err, sizeof err)) != CS_OK) {
    if (e == CS_ERR_INVALID)
      CS_LOG(CS_LOG_ERROR, "%s", err);
    free(r);
    return e;
  }
  *out = r;
  return CS_OK;
}

void cs_aws_resolver_free(struct cs_aws_resolver *r)
{
  if (!r)
    return;
  cs_broker_free(r->b);
  free(r);
}

enum cs_err cs_aws_resolve(struct cs_aws_resolver *r, const struct cs_aws_request *req,
                           struct cs_aws_creds *out, struct cs_aws_error *err)
{
  struct cs_net_error ne = {0};
  enum cs_err e;

  if (!r)
    return CS_ERR_INTERNAL;
  e = cs_broker_aws(r->b, req, out, &ne);
  if (e != CS_OK && err) {
    snprintf(err->code, sizeof err->code, "%s", ne.code);
    snprintf(err->message, sizeof err->message, "%s", ne.message);
  }
  return e;
}

void cs_aws_invalidate(struct cs_aws_resolver *r, const char *cred_id)
{
  if (r)
    cs_broker_invalidate(r->b, cred_id);
}

void cs_aws_get_stats(struct cs_aws_resolver *r, struct cs_aws_stats *out)
{
  struct cs_broker_stats st;

  memset(out, 0, sizeof *out);
  if (!r)
    return;
  cs_broker_get_stats(r->b, &st);
  out->sts_calls = st.kind[CS_KIND_STS].calls;
  out->imds_calls = st.kind[CS_KIND_IMDS].calls;
  out->cache_hits = st.kind[CS_KIND_STS].cache_hits + st.kind[CS_KIND_IMDS].cache_hits;
  out->cache_misses = st.kind[CS_KIND_STS].cache_misses + st.kind[CS_KIND_IMDS].cache_misses;
}

struct cs_broker *cs_aws_resolver_broker(struct cs_aws_resolver *r) { return r ? r->b : NULL; }
