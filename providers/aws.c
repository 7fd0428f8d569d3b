/* aws: static access keys, or the instance role (useAWSRole), optionally
 * assuming roleArn through STS. Only static keys without a role resolve
 * here; everything that needs STS or IMDS is providers/aws/'s job. */
#include "prov_internal.h"

#include "aws/aws_internal.h"

#include <stdlib.h>
#include <string.h>

#define AWS_KEY_ID_MIN 16
#define AWS_KEY_ID_MAX 128
#define AWS_SECRET_MAX 128
#define AWS_ROLE_PATH_MAX 512
#define AWS_EXTERNAL_ID_MIN 2
#define AWS_EXTERNAL_ID_MAX 1224
#define AWS_REGION_MAX 32
#define AWS_DURATION_MIN 900
#define AWS_DURATION_MAX 43200

static bool is_upper_alnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

static bool is_word(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* IAM's own AccessKeyId constraint is 16-128 word characters; real ids are
 * uppercase (AKIA…, ASIA…), and lowercase almost always means a pasted
 * secret key or a user name. The prefix is not checked: S3-compatible
 * stores and test doubles mint ids without it. */
static bool key_id_ok(const char *s)
{
  size_t n = strlen(s);

  if (n < AWS_KEY_ID_MIN || n > AWS_KEY_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_upper_alnum(s[i]))
      return false;
  return true;
}

static bool skip_prefix(const char **s, const char *prefix)
{
  size_t n = strlen(prefix);

  if (strncmp(*s, prefix, n) != 0)
    return false;
  *s += n;
  return true;
}

/* arn:(aws|aws-cn|aws-us-gov):iam::<12 digits>:role/<path/name> */
static bool role_arn_ok(const char *s)
{
  size_t n;

  if (!skip_prefix(&s, "arn:"))
    return false;
  if (!skip_prefix(&s, "aws:") && !skip_prefix(&s, "aws-cn:") && !skip_prefix(&s, "aws-us-gov:"))
    return false;
  if (!skip_prefix(&s, "iam::"))
    return false;
  for (int i = 0; i < 12; i++, s++)
    if (*s < '0' || *s > '9')
      return false;
  if (!skip_prefix(&s, ":role/"))
    return false;
  n = strlen(s);
  if (n == 0 || n > AWS_ROLE_PATH_MAX || s[0] == '/' || s[n - 1] == '/')
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_word(s[i]) && !strchr("+=,.@/-", s[i]))
      return false;
  return true;
}

static bool external_id_ok(const char *s)
{
  size_t n = strlen(s);

  if (n < AWS_EXTERNAL_ID_MIN || n > AWS_EXTERNAL_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_word(s[i]) && !strchr("+=,.@:/-", s[i]))
      return false;
  return true;
}

/* AWS region names as botocore's partitions spell them: 2-4 letters, one or
 * more "-word" groups, then "-" and 1-2 digits (us-east-1, us-gov-west-1,
 * us-isob-east-1, eusc-de-east-1). Strict because the name becomes the host
 * sts.<region>.amazonaws.com and the SigV4 scope: no dots, slashes, '@',
 * '#', uppercase or anything else that could steer a URL. */
bool cs_aws_region_valid(const char *s)
{
  size_t n = s ? strlen(s) : 0, i = 0, groups = 0, digits = 0;

  if (n == 0 || n > AWS_REGION_MAX)
    return false;
  while (i < n && s[i] >= 'a' && s[i] <= 'z')
    i++;
  if (i < 2 || i > 4)
    return false;
  while (i + 1 < n && s[i] == '-' && s[i + 1] >= 'a' && s[i + 1] <= 'z') {
    for (i++; i < n && s[i] >= 'a' && s[i] <= 'z'; i++)
      ;
    groups++;
  }
  if (groups == 0 || i >= n || s[i++] != '-')
    return false;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
    digits++;
  return i == n && digits >= 1 && digits <= 2;
}

struct aws_input {
  const char *key_id, *secret, *role_arn, *external_id, *region;
  bool use_role, regional;
  bool has_duration;
  int64_t duration;
};

static enum cs_err read_bool(const cJSON *body, const char *name, bool *out,
                             struct cs_prov_error *err)
{
  if (cs_json_opt_bool(body, name, out) != CS_OK)
    return cs_prov_fail(err, CS_ERR_INVALID, name, "%s must be true or false", name);
  return CS_OK;
}

/* Identity: exactly one of static keys or the instance role. */
static enum cs_err read_identity(const cJSON *body, struct aws_input *in, struct cs_prov_error *err)
{
  enum cs_err e;

  if ((e = read_bool(body, "useAWSRole", &in->use_role, err)) != CS_OK)
    return e;
  if ((e = cs_prov_opt_str(body, "accountID", CS_PROV_PLAIN_MAX, &in->key_id, err)) != CS_OK)
    return e;
  if ((e = cs_prov_plain(body, "secret", &in->secret, err)) != CS_OK)
    return e;

  if (in->use_role) {
    if (in->key_id)
      return cs_prov_fail(err, CS_ERR_INVALID, "accountID",
                          "accountID must be empty with useAWSRole: the identity comes from "
                          "the instance role");
    if (in->secret)
      return cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                          "secret.plain must be empty with useAWSRole: the identity comes from "
                          "the instance role");
    return CS_OK;
  }
  if (!in->key_id)
    return cs_prov_fail(err, CS_ERR_MISSING, "accountID",
                        "accountID (the access key id) is required unless useAWSRole is true");
  if (!key_id_ok(in->key_id))
    return cs_prov_fail(err, CS_ERR_INVALID, "accountID",
                        "accountID must be an access key id: 16-128 characters of A-Z and 0-9");
  if (!in->secret)
    return cs_prov_fail(err, CS_ERR_MISSING, "secret.plain",
                        "secret.plain (the secret access key) is required unless useAWSRole "
                        "is true");
  if (!cs_prov_token_ok(in->secret, 1, AWS_SECRET_MAX))
    return cs_prov_fail(err, CS_ERR_INVALID, "secret.plain",
                        "secret.plain must be a secret access key: 1-128 printable characters "
                        "without whitespace");
  return CS_OK;
}

static enum cs_err read_options(const cJSON *body, struct aws_input *in, struct cs_prov_error *err)
{
  const cJSON *d;
  enum cs_err e;

  if ((e = cs_prov_opt_str(body, "roleArn", CS_PROV_PLAIN_MAX, &in->role_arn, err)) != CS_OK)
    return e;
  if (in->role_arn && !role_arn_ok(in->role_arn))
    return cs_prov_fail(err, CS_ERR_INVALID, "roleArn",
                        "roleArn must be an IAM role ARN like arn:aws:iam::123456789012:role/name");

  if ((e = cs_prov_opt_str(body, "externalID", CS_PROV_PLAIN_MAX, &in->external_id, err)) != CS_OK)
    return e;
  if (in->external_id && !external_id_ok(in->external_id))
    return cs_prov_fail(err, CS_ERR_INVALID, "externalID",
                        "externalID must be 2-1224 characters of A-Z a-z 0-9 _+=,.@:/-");

  d = cJSON_GetObjectItemCaseSensitive(body, "durationSeconds");
  if (d && !cJSON_IsNull(d)) {
    if (cs_json_opt_int(body, "durationSeconds", AWS_DURATION_MIN, AWS_DURATION_MAX,
                        &in->duration) != CS_OK)
      return cs_prov_fail(err, CS_ERR_INVALID, "durationSeconds",
                          "durationSeconds must be an integer from 900 to 43200");
    in->has_duration = true;
  }

  if ((e = cs_prov_opt_str(body, "region", CS_PROV_PLAIN_MAX, &in->region, err)) != CS_OK)
    return e;
  if (in->region && !cs_aws_region_valid(in->region))
    return cs_prov_fail(err, CS_ERR_INVALID, "region",
                        "region must be an AWS region name like us-east-1");

  if ((e = read_bool(body, "useSTSRegionalEndpoint", &in->regional, err)) != CS_OK)
    return e;
  if (in->regional && !in->region)
    return cs_prov_fail(err, CS_ERR_MISSING, "region",
                        "region is required with useSTSRegionalEndpoint");
  return CS_OK;
}

static enum cs_err build_meta(const struct aws_input *in, cJSON **out)
{
  cJSON *m = cJSON_CreateObject();
  enum cs_err e = CS_ERR_NOMEM;

  if (!m)
    goto out;
  if (in->key_id && (e = cs_prov_add_str(m, "accountID", in->key_id)) != CS_OK)
    goto out;
  if (in->role_arn && (e = cs_prov_add_str(m, "roleArn", in->role_arn)) != CS_OK)
    goto out;
  if (in->external_id && (e = cs_prov_add_str(m, "externalID", in->external_id)) != CS_OK)
    goto out;
  if (in->region && (e = cs_prov_add_str(m, "region", in->region)) != CS_OK)
    goto out;
  e = CS_ERR_NOMEM;
  if (!cJSON_AddBoolToObject(m, "useAWSRole", in->use_role) ||
      !cJSON_AddBoolToObject(m, "useSTSRegionalEndpoint", in->regional))
    goto out;
  if (in->has_duration && !cJSON_AddNumberToObject(m, "durationSeconds", (double)in->duration))
    goto out;
  *out = m;
  m = NULL;
  e = CS_OK;
out:
  cJSON_Delete(m);
  return e;
}

static enum cs_err aws_validate(const cJSON *body, struct cs_prov_result *out,
                                struct cs_prov_error *err)
{
  struct aws_input in = {0};
  cJSON *meta = NULL;
  char *secret = NULL;
  size_t len;
  enum cs_err e;

  if ((e = read_identity(body, &in, err)) != CS_OK)
    goto out;
  if ((e = read_options(body, &in, err)) != CS_OK)
    goto out;
  if ((e = build_meta(&in, &meta)) != CS_OK)
    goto out;
  /* useAWSRole keeps an empty payload so every credential has one sealed blob. */
  len = in.secret ? strlen(in.secret) : 0;
  if ((e = cs_prov_dup_secret(in.secret ? in.secret : "", len, &secret)) != CS_OK)
    goto out;
  out->meta = meta;
  out->secret = secret;
  out->secret_len = len;
  meta = NULL;
out:
  cJSON_Delete(meta);
  return e;
}

/* ------------------------------------------- network resolves and tests */

static const char *meta_str(const cJSON *meta, const char *name)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, name);
  return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

static bool meta_bool(const cJSON *meta, const char *name)
{
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, name));
}

/* Static keys without a role: handed out as stored. */
static enum cs_err aws_material(const struct cs_prov_ctx *ctx, cJSON **out,
                                struct cs_net_error *err)
{
  const char *id = meta_str(ctx->meta, "accountID");
  cJSON *r = NULL;
  enum cs_err e;

  (void)err;
  if (!id)
    return CS_ERR_INTERNAL;
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  if (ctx->secret_len == 0)
    return CS_ERR_CRYPTO;

  e = CS_ERR_NOMEM;
  if (!(r = cJSON_CreateObject()))
    goto out;
  if ((e = cs_prov_add_str(r, "type", "aws")) != CS_OK ||
      (e = cs_prov_add_str(r, "AccessKeyId", id)) != CS_OK ||
      (e = cs_prov_add_secret(r, "SecretAccessKey", ctx->secret, ctx->secret_len)) != CS_OK)
    goto out;
  *out = r;
  r = NULL;
out:
  cs_json_wipe_delete(r);
  return e;
}

/* The STS/IMDS request for @p ctx: stored fields, narrowed by the options. */
static struct cs_aws_request aws_request(const struct cs_prov_ctx *ctx)
{
  static const struct cs_resolve_opts none = {0};
  const struct cs_resolve_opts *o = ctx->opts ? ctx->opts : &none;
  const cJSON *dur = cJSON_GetObjectItemCaseSensitive(ctx->meta, "durationSeconds");
  struct cs_aws_request r = {
      .cred_id = ctx->cred_id,
      .version = ctx->version,
      .use_instance_role = meta_bool(ctx->meta, "useAWSRole"),
      .role_arn = meta_str(ctx->meta, "roleArn"),
      .external_id = meta_str(ctx->meta, "externalID"),
      .session_name = o->session_name,
      .region = o->region ? o->region : meta_str(ctx->meta, "region"),
      .regional_endpoint = meta_bool(ctx->meta, "useSTSRegionalEndpoint"),
      .duration_seconds = o->duration_seconds   ? o->duration_seconds
                          : cJSON_IsNumber(dur) ? (int64_t)dur->valuedouble
                                                : 0,
      .session = o->format == CS_FORMAT_SESSION,
  };
  if (!r.use_instance_role) {
    r.access_key_id = meta_str(ctx->meta, "accountID");
    r.secret_key = ctx->secret;
  }
  return r;
}

static bool aws_short_lived(const struct cs_prov_ctx *ctx)
{
  return meta_bool(ctx->meta, "useAWSRole") || meta_str(ctx->meta, "roleArn") ||
         cs_prov_format(ctx) == CS_FORMAT_SESSION;
}

static enum cs_err render_creds(const struct cs_aws_creds *c, cJSON **out)
{
  char when[32];
  cJSON *m = cJSON_CreateObject();
  enum cs_err e = CS_ERR_NOMEM;

  if (!m || (e = cs_prov_add_str(m, "type", "aws")) ||
      (e = cs_prov_add_str(m, "AccessKeyId", c->access_key_id)) ||
      (e = cs_prov_add_secret(m, "SecretAccessKey", c->secret_access_key,
                              strlen(c->secret_access_key))))
    goto out;
  if (c->session_token[0] &&
      (e = cs_prov_add_secret(m, "SessionToken", c->session_token, strlen(c->session_token))))
    goto out;
  if (c->expiration) {
    cs_time_format(c->expiration, when);
    if ((e = cs_prov_add_str(m, "Expiration", when)))
      goto out;
  }
  *out = m;
  m = NULL;
out:
  cs_json_wipe_delete(m);
  return e;
}

static enum cs_err aws_resolve(const struct cs_prov_ctx *ctx, cJSON **out, struct cs_net_error *err)
{
  struct cs_aws_request req;
  struct cs_aws_creds c;
  enum cs_err e;

  if (cs_prov_format(ctx) == CS_FORMAT_TOKEN)
    return cs_net_fail_field(err, CS_ERR_INVALID, "format",
                             "format \"token\" is for azure, gcp and ibmCloud credentials; aws "
                             "credentials resolve to STS credentials (or \"session\")");
  if (!aws_short_lived(ctx))
    return cs_prov_plain_resolve(aws_material, "aws", ctx, out, err);
  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  req = aws_request(ctx);
  if ((e = cs_broker_aws(ctx->broker, &req, &c, err)) != CS_OK)
    return e;
  e = render_creds(&c, out);
  cs_aws_creds_wipe(&c);
  return e;
}

static enum cs_err aws_test(const struct cs_prov_ctx *ctx, struct cs_test_result *out)
{
  struct cs_aws_request req;
  enum cs_err e;

  if ((e = cs_prov_payload_ok(ctx->secret, ctx->secret_len)) != CS_OK)
    return e;
  req = aws_request(ctx);
  return cs_aws_test(ctx->broker, &req, out);
}

const struct cs_provider cs_provider_aws = {
    .type = "aws",
    .validate = aws_validate,
    .resolve = aws_resolve,
    .test = aws_test,
    .short_lived = aws_short_lived,
};
