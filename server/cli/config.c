/* Command-line and CREDSTORE_* environment options (API.md §1). */
#include "api.h"
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_STR, OPT_INT, OPT_DURATION, OPT_BOOL, OPT_LEVEL };

struct opt {
  const char *name; /* without the leading "--" */
  enum opt_kind kind;
  size_t offset;
  int64_t min, max;
};

/* clang-format off */
#define O_STR(n, f) {n, OPT_STR, offsetof(struct cs_config, f), 0, 0}
#define O_INT(n, f, lo, hi) {n, OPT_INT, offsetof(struct cs_config, f), lo, hi}
#define O_DUR(n, f, lo, hi) {n, OPT_DURATION, offsetof(struct cs_config, f), lo, hi}
/* clang-format on */

static const struct opt opts[] = {
    O_STR("data", data_dir),
    O_STR("store", store),
    O_STR("etcd-cacert", etcd_cacert),
    O_STR("etcd-cert", etcd_cert),
    O_STR("etcd-key", etcd_key),
    O_STR("etcd-user", etcd_user),
    O_STR("node-id", node_id),
    O_STR("to", to),
    O_STR("listen", listen),
    O_STR("master-key-file", master_key_file),
    O_STR("passphrase-env", passphrase_env),
    O_STR("tls-cert", tls_cert),
    O_STR("tls-key", tls_key),
    O_STR("sts-endpoint", sts_endpoint),
    O_STR("imds-endpoint", imds_endpoint),
    O_STR("azure-authority-host", azure_authority_host),
    O_STR("gcp-token-url", gcp_token_url),
    O_STR("ibm-iam-endpoint", ibm_iam_endpoint),
    O_STR("outbound-ca-file", outbound_ca_file),
    O_STR("out", out),
    O_STR("from", from),
    O_STR("url", url),
    O_STR("credential", credential),
    O_STR("usage", usage),
    O_STR("name", name),
    O_STR("webhook-allow", webhook_allow),
    O_STR("webhook-deny", webhook_deny),
    O_INT("token-ttl", token_ttl, 1, 86400),
    O_INT("prisma-token-ttl", prisma_token_ttl, 1, 86400),
    O_STR("customer-name", customer_name),
    O_STR("prisma-id", prisma_id),
    O_INT("threads", threads, 1, 256),
    O_INT("max-connections", max_connections, 1, 100000),
    O_INT("conn-timeout", conn_timeout, 1, 3600),
    O_INT("outbound-timeout", outbound_timeout, 1, 300),
    O_INT("auth-max-failures", auth_max_failures, 1, 1000000),
    O_INT("auth-cooloff", auth_cooloff, 1, 86400),
    O_INT("webhook-retry-ms", webhook_retry_ms, 1, 3600000),
    O_INT("max-connections-per-address", max_conns_per_address, 1, 100000),
    O_STR("trusted-proxies", trusted_proxies),
    O_DUR("events-retention", events_retention, 1, 3650 * 86400),
    O_INT("events-max-count", events_max, 1, 1000000000000),
    O_DUR("webhook-max-age", webhook_max_age, 1, 3650 * 86400),
    O_INT("before", before, 1, INT64_MAX),
    {"log-level", OPT_LEVEL, offsetof(struct cs_config, log_level), 0, 0},
    {"insecure-http", OPT_BOOL, offsetof(struct cs_config, insecure_http), 0, 0},
};

/* "90", "90s", "15m", "36h", "7d": whole seconds, minutes, hours or days. */
static enum cs_err parse_duration(const char *val, int64_t max, int64_t *out)
{
  static const char units[] = "smhd";
  static const int64_t scale[] = {1, 60, 3600, 86400};
  char num[24];
  size_t len = strlen(val);
  int64_t mul = 1;
  uint64_t v;

  if (len == 0 || len >= sizeof num)
    return CS_ERR_INVALID;
  const char *u = strchr(units, val[len - 1]);
  if (u && *u) {
    mul = scale[u - units];
    len--;
  }
  memcpy(num, val, len);
  num[len] = '\0';
  if (cs_parse_u64(num, (uint64_t)(max / mul), &v))
    return CS_ERR_INVALID;
  *out = (int64_t)v * mul;
  return CS_OK;
}

static enum cs_err set_opt(struct cs_config *cfg, const struct opt *o, const char *val,
                           const char *from)
{
  char *field = (char *)cfg + o->offset;
  uint64_t v;

  switch (o->kind) {
  case OPT_STR:
    if (!val[0]) {
      fprintf(stderr, "credstore: %s: --%s needs a value\n", from, o->name);
      return CS_ERR_INVALID;
    }
    *(const char **)field = val;
    return CS_OK;
  case OPT_INT:
    if (cs_parse_u64(val, (uint64_t)o->max, &v) || (int64_t)v < o->min) {
      fprintf(stderr, "credstore: %s: --%s must be an integer from %lld to %lld\n", from, o->name,
              (long long)o->min, (long long)o->max);
      return CS_ERR_INVALID;
    }
    *(int64_t *)field = (int64_t)v;
    return CS_OK;
  case OPT_DURATION:
    if (parse_duration(val, o->max, (int64_t *)(void *)field) || *(int64_t *)field < o->min) {
      fprintf(stderr, "credstore: %s: --%s must be a duration such as 30s, 15m, 24h or 7d\n", from,
              o->name);
      return CS_ERR_INVALID;
    }
    return CS_OK;
  case OPT_BOOL:
    if (strcmp(val, "1") && strcmp(val, "true") && strcmp(val, "0") && strcmp(val, "false")) {
      fprintf(stderr, "credstore: %s: --%s takes true or false\n", from, o->name);
      return CS_ERR_INVALID;
    }
    *(bool *)field = val[0] == '1' || val[0] == 't';
    return CS_OK;
  case OPT_LEVEL:
    if (cs_log_parse_level(val, (enum cs_log_level *)(void *)field)) {
      fprintf(stderr, "credstore: %s: --%s must be debug, info, warn, error or off\n", from,
              o->name);
      return CS_ERR_INVALID;
    }
    return CS_OK;
  }
  return CS_ERR_INTERNAL;
}

/* CREDSTORE_MASTER_KEY_FILE for "master-key-file". */
static void env_name(const char *opt, char *out, size_t n)
{
  size_t i = 0;
  const char *prefix = "CREDSTORE_";
  for (; prefix[i] && i + 1 < n; i++)
    out[i] = prefix[i];
  for (const char *p = opt; *p && i + 1 < n; p++, i++)
    out[i] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  out[i] = '\0';
}

/* --data DIR is --store lmdb:DIR: one of the two names the store, and
 * data_dir is set exactly when it is an LMDB dir (its master.key, its
 * serve.lock). */
static enum cs_err store_option(struct cs_config *cfg)
{
  if (cfg->node_id && strlen(cfg->node_id) > CS_NODE_ID_MAX) {
    fprintf(stderr, "credstore: --node-id is longer than %d characters\n", CS_NODE_ID_MAX);
    return CS_ERR_INVALID;
  }
  if (cfg->store && cfg->data_dir) {
    fprintf(stderr, "credstore: give either --data DIR or --store URL, not both\n");
    return CS_ERR_INVALID;
  }
  if (!cfg->store) {
    cfg->store = cfg->data_dir;
    return CS_OK;
  }
  cfg->etcd = strncmp(cfg->store, "etcd://", 7) == 0 || strncmp(cfg->store, "etcds://", 8) == 0;
  if (!cfg->etcd)
    cfg->data_dir = strncmp(cfg->store, "lmdb:", 5) == 0 ? cfg->store + 5 : cfg->store;
  if (cfg->data_dir && !cfg->data_dir[0]) {
    fprintf(stderr, "credstore: --store lmdb:DIR needs a DIR\n");
    return CS_ERR_INVALID;
  }
  return CS_OK;
}

enum cs_err cs_config_parse(int argc, char **argv, struct cs_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = CS_LOG_INFO;
  cfg->token_ttl = CS_DEFAULT_TOKEN_TTL;
  cfg->prisma_token_ttl = CS_DEFAULT_PRISMA_TOKEN_TTL;
  cfg->auth_max_failures = CS_DEFAULT_AUTH_MAX_FAILURES;
  cfg->auth_cooloff = CS_DEFAULT_AUTH_COOLOFF;
  cfg->webhook_retry_ms = CS_DEFAULT_WEBHOOK_RETRY_MS;

  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    char name[64];
    env_name(opts[i].name, name, sizeof name);
    const char *v = getenv(name);
    if (v && set_opt(cfg, &opts[i], v, name))
      return CS_ERR_INVALID;
  }

  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    const char *val = NULL;
    const struct opt *o = NULL;

    if (strncmp(arg, "--", 2) != 0) {
      fprintf(stderr, "credstore: unexpected argument '%s'\n", arg);
      return CS_ERR_INVALID;
    }
    arg += 2;
    const char *eq = strchr(arg, '=');
    size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
      if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, arg, nlen) == 0)
        o = &opts[k];
    }
    if (!o) {
      fprintf(stderr, "credstore: unknown option '%s'\n", argv[i]);
      return CS_ERR_INVALID;
    }
    if (eq) {
      val = eq + 1;
    } else if (o->kind == OPT_BOOL) {
      val = "true";
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(stderr, "credstore: --%s needs a value\n", o->name);
      return CS_ERR_INVALID;
    }
    if (set_opt(cfg, o, val, "command line"))
      return CS_ERR_INVALID;
  }
  cs_log_min_level = cfg->log_level;
  return store_option(cfg);
}
