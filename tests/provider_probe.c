/* provider_probe: drive providers/ from the command line for the
 * integration tests (tests/integration/test_aws_core.py,
 * test_tokens.py), against loopback doubles of STS, IMDS, Entra, Google,
 * IBM IAM and a Kubernetes API server.
 *
 *   provider_probe [endpoints] [aws request | --type T ... | --post URL] [plan]
 *
 * endpoints: --sts URL --imds URL --azure-authority URL --gcp-token-url URL
 *            --ibm-iam URL --ca-file F --timeout-ms N
 * aws request (cs_broker_aws): --cred ID --version N --akid ID --secret S
 *            --instance-role --role ARN --external-id X --session-name X
 *            --duration N --region R --regional --session
 * --type T (cs_provider_find(T)): --meta JSON --secret-file F
 *            --format token|session --scope S --scopes "a b" [--test]
 * --url-test: cs_prov_test_url (basic/apiToken/certificate tests) with
 *            --meta JSON (its "url") and the secret as --basic-user U's
 *            password, or as the --bearer token, and/or --cert-file F
 *            --key-file F (mTLS)
 * --post URL: one webhook POST through a batch on the broker's client
 * plan:      --warm N sequential calls, then --parallel N threads (started
 *            together behind a barrier) each making --repeat calls; then,
 *            with --invalidate, cs_broker_invalidate(cred) and one call;
 *            then, with --then-version N, one call at that version.
 *
 * The secret may come from PROBE_SECRET (or AWS_PROBE_SECRET) instead of
 * argv. Prints {"results":[...],"stats":{...}} on stdout and exits with the
 * enum cs_err of the first failure (0 if every call succeeded).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_internal.h"

#define MAX_THREADS 256
#define MAX_SCOPES 33

enum mode { MODE_AWS, MODE_NET, MODE_TEST, MODE_URL, MODE_POST };

struct slot {
  enum cs_err rc;
  struct cs_aws_creds creds;
  struct cs_net_error err;
  cJSON *material;            /* MODE_NET */
  struct cs_test_result test; /* MODE_TEST */
  struct cs_http_result post; /* MODE_POST */
};

struct run {
  enum mode mode;
  struct cs_broker *b;
  struct cs_aws_request req;
  const struct cs_provider *prov;
  struct cs_prov_ctx ctx;
  struct cs_resolve_opts opts;
  struct cs_url_auth url_auth;
  const char *post_url;
  pthread_barrier_t barrier;
  long repeat;
  struct slot *slots;
};

struct worker {
  struct run *run;
  struct slot *first;
};

static void posted(void *tag, const struct cs_http_result *r, void *arg)
{
  (void)arg;
  ((struct slot *)tag)->post = *r;
}

static enum cs_err do_post(struct run *run, struct slot *s)
{
  struct cs_http_policy *p = NULL;
  struct cs_http_batch *batch = NULL;
  struct cs_http_post req = {run->post_url, NULL, "{}", 2, 5000};
  char err[128];
  const char *why = "";
  enum cs_err e;

  s->post.e = CS_ERR_INTERNAL;
  if ((e = cs_http_policy_create(NULL, NULL, &p, err, sizeof err)) ||
      (e = cs_http_batch_open(cs_broker_http(run->b), p, &batch)) ||
      (e = cs_http_batch_add(batch, &req, s, &why)))
    goto out;
  for (int i = 0; i < 100 && s->post.e == CS_ERR_INTERNAL; i++)
    if ((e = cs_http_batch_run(batch, 100, posted, NULL)))
      goto out;
  e = s->post.e;
out:
  cs_http_batch_free(batch);
  cs_http_policy_free(p);
  return e;
}

static void call(struct run *run, struct slot *s)
{
  switch (run->mode) {
  case MODE_AWS:
    s->rc = cs_broker_aws(run->b, &run->req, &s->creds, &s->err);
    break;
  case MODE_NET:
    s->rc = run->prov->resolve(&run->ctx, &s->material, &s->err);
    break;
  case MODE_TEST:
    s->rc = run->prov->test(&run->ctx, &s->test);
    if (s->rc == CS_OK && !s->test.ok)
      s->rc = CS_ERR_UPSTREAM;
    break;
  case MODE_URL:
    s->rc = cs_prov_test_url(&run->ctx, &run->url_auth, &s->test);
    if (s->rc == CS_OK && !s->test.ok)
      s->rc = CS_ERR_UPSTREAM;
    break;
  case MODE_POST:
    s->rc = do_post(run, s);
    break;
  }
}

static void *work(void *arg)
{
  struct worker *w = arg;

  pthread_barrier_wait(&w->run->barrier);
  for (long i = 0; i < w->run->repeat; i++)
    call(w->run, &w->first[i]);
  return NULL;
}

static void usage(void)
{
  fprintf(stderr, "usage: provider_probe [options] (see tests/provider_probe.c)\n");
  exit(64);
}

static long num(const char *s)
{
  char *end;
  long v = strtol(s, &end, 10);

  if (!*s || *end)
    usage();
  return v;
}

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf = malloc(1 << 20);
  size_t n;

  if (!f || !buf)
    usage();
  n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = '\0';
  fclose(f);
  *len = n;
  return buf;
}

static cJSON *slot_json(const struct run *run, struct slot *s)
{
  cJSON *o = cJSON_CreateObject();
  char ts[32];

  cJSON_AddBoolToObject(o, "ok", s->rc == CS_OK);
  cJSON_AddStringToObject(o, "rc", cs_err_code(s->rc));
  cJSON_AddNumberToObject(o, "errno", (double)s->rc);
  cJSON_AddNumberToObject(o, "http_status", cs_err_http_status(s->rc));
  if (run->mode == MODE_TEST || run->mode == MODE_URL) {
    cJSON *t = cJSON_AddObjectToObject(o, "test");
    cJSON_AddBoolToObject(t, "ok", s->test.ok);
    cJSON_AddStringToObject(t, "code", s->test.code);
    cJSON_AddStringToObject(t, "message", s->test.message);
    cJSON_AddStringToObject(t, "identity", s->test.identity);
    cJSON_AddNumberToObject(t, "latencyMs", (double)s->test.latency_ms);
  } else if (run->mode == MODE_POST) {
    cJSON_AddNumberToObject(o, "status", (double)s->post.status);
    cJSON_AddStringToObject(o, "error", s->post.error);
  } else if (s->rc != CS_OK) {
    cJSON_AddStringToObject(o, "code", s->err.code);
    cJSON_AddStringToObject(o, "message", s->err.message);
    cJSON_AddStringToObject(o, "field", s->err.field);
  } else if (run->mode == MODE_NET) {
    cJSON_AddItemToObject(o, "material", s->material);
    s->material = NULL;
  } else {
    cJSON_AddStringToObject(o, "AccessKeyId", s->creds.access_key_id);
    cJSON_AddStringToObject(o, "SecretAccessKey", s->creds.secret_access_key);
    if (s->creds.session_token[0])
      cJSON_AddStringToObject(o, "SessionToken", s->creds.session_token);
    if (s->creds.expiration) {
      cs_time_format(s->creds.expiration, ts);
      cJSON_AddStringToObject(o, "Expiration", ts);
    }
  }
  return o;
}

static cJSON *stats_json(struct cs_broker *b)
{
  struct cs_broker_stats st;
  cJSON *o = cJSON_CreateObject(), *kinds = cJSON_AddObjectToObject(o, "kinds");

  cs_broker_get_stats(b, &st);
  for (int k = 0; k < CS_KIND__COUNT; k++) {
    cJSON *e = cJSON_AddObjectToObject(kinds, cs_broker_kind_name(k));
    cJSON_AddNumberToObject(e, "calls", (double)st.kind[k].calls);
    cJSON_AddNumberToObject(e, "hits", (double)st.kind[k].cache_hits);
    cJSON_AddNumberToObject(e, "misses", (double)st.kind[k].cache_misses);
    cJSON_AddNumberToObject(e, "errors", (double)st.kind[k].errors);
    cJSON_AddNumberToObject(e, "fallbacks", (double)st.kind[k].fallbacks);
  }
  /* The aws_probe names test_aws_core.py reads. */
  cJSON_AddNumberToObject(o, "sts_calls", (double)st.kind[CS_KIND_STS].calls);
  cJSON_AddNumberToObject(o, "imds_calls", (double)st.kind[CS_KIND_IMDS].calls);
  cJSON_AddNumberToObject(
      o, "cache_hits",
      (double)(st.kind[CS_KIND_STS].cache_hits + st.kind[CS_KIND_IMDS].cache_hits));
  cJSON_AddNumberToObject(
      o, "cache_misses",
      (double)(st.kind[CS_KIND_STS].cache_misses + st.kind[CS_KIND_IMDS].cache_misses));
  return o;
}

struct opts {
  struct cs_broker_config cfg;
  long parallel, warm, then_version;
  bool invalidate;
  const char *type, *meta, *secret_file, *scopes, *basic_user, *cert_file, *key_file;
  bool bearer;
  char *scope_buf;
  const char *scope_list[MAX_SCOPES];
};

static void parse_args(int argc, char **argv, struct run *run, struct opts *o)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
#define FLAG(name) (strcmp(a, name) == 0)
    if (OPT("--sts"))
      o->cfg.sts_endpoint = v;
    else if (OPT("--imds"))
      o->cfg.imds_endpoint = v;
    else if (OPT("--azure-authority"))
      o->cfg.azure_authority_host = v;
    else if (OPT("--gcp-token-url"))
      o->cfg.gcp_token_url = v;
    else if (OPT("--ibm-iam"))
      o->cfg.ibm_iam_endpoint = v;
    else if (OPT("--ca-file"))
      o->cfg.outbound_ca_file = v;
    else if (OPT("--timeout-ms"))
      o->cfg.timeout_ms = num(v);
    else if (OPT("--cred"))
      run->req.cred_id = run->ctx.cred_id = v;
    else if (OPT("--version"))
      run->req.version = run->ctx.version = (uint64_t)num(v);
    else if (OPT("--akid"))
      run->req.access_key_id = v;
    else if (OPT("--secret"))
      run->req.secret_key = v;
    else if (FLAG("--instance-role"))
      run->req.use_instance_role = true;
    else if (OPT("--role"))
      run->req.role_arn = v;
    else if (OPT("--external-id"))
      run->req.external_id = v;
    else if (OPT("--session-name"))
      run->req.session_name = run->opts.session_name = v;
    else if (OPT("--duration"))
      run->req.duration_seconds = run->opts.duration_seconds = num(v);
    else if (OPT("--region"))
      run->req.region = run->opts.region = v;
    else if (FLAG("--regional"))
      run->req.regional_endpoint = true;
    else if (FLAG("--session"))
      run->req.session = true;
    else if (OPT("--type"))
      o->type = v;
    else if (OPT("--meta"))
      o->meta = v;
    else if (OPT("--secret-file"))
      o->secret_file = v;
    else if (OPT("--format"))
      run->opts.format = strcmp(v, "token") == 0     ? CS_FORMAT_TOKEN
                         : strcmp(v, "session") == 0 ? CS_FORMAT_SESSION
                                                     : CS_FORMAT_DEFAULT;
    else if (OPT("--scope"))
      run->opts.scope = v;
    else if (OPT("--scopes"))
      o->scopes = v;
    else if (FLAG("--test"))
      run->mode = MODE_TEST;
    else if (FLAG("--url-test"))
      run->mode = MODE_URL;
    else if (OPT("--basic-user"))
      o->basic_user = v;
    else if (FLAG("--bearer"))
      o->bearer = true;
    else if (OPT("--cert-file"))
      o->cert_file = v;
    else if (OPT("--key-file"))
      o->key_file = v;
    else if (OPT("--post")) {
      run->mode = MODE_POST;
      run->post_url = v;
    } else if (OPT("--repeat"))
      run->repeat = num(v);
    else if (OPT("--parallel"))
      o->parallel = num(v);
    else if (OPT("--warm"))
      o->warm = num(v);
    else if (FLAG("--invalidate"))
      o->invalidate = true;
    else if (OPT("--then-version"))
      o->then_version = num(v);
    else
      usage();
#undef OPT
#undef FLAG
  }
  if (o->parallel < 1 || o->parallel > MAX_THREADS || run->repeat < 1 || run->repeat > 1000 ||
      o->warm < 0 || o->warm > 1000)
    usage();
}

/* --type: the ctx the core would build from a stored record. */
static void build_ctx(struct run *run, struct opts *o, cJSON **meta, char **secret)
{
  size_t len = 0;
  const char *env = getenv("PROBE_SECRET");

  if (run->mode != MODE_URL && !(run->prov = cs_provider_find(o->type)))
    usage();
  if (run->mode != MODE_TEST && run->mode != MODE_URL)
    run->mode = MODE_NET;
  if (!(*meta = cJSON_Parse(o->meta ? o->meta : "{}")))
    usage();
  *secret = o->secret_file ? slurp(o->secret_file, &len) : strdup(env ? env : "");
  if (!o->secret_file)
    len = strlen(*secret);
  if (o->scopes) {
    size_t n = 0;
    o->scope_buf = strdup(o->scopes);
    for (char *t = strtok(o->scope_buf, " "); t && n < MAX_SCOPES - 1; t = strtok(NULL, " "))
      o->scope_list[n++] = t;
    o->scope_list[n] = NULL;
    run->opts.scopes = o->scope_list;
  }
  run->ctx = (struct cs_prov_ctx){run->b, run->ctx.cred_id, run->ctx.version, *meta, *secret,
                                  len,    &run->opts};
}

int main(int argc, char **argv)
{
  struct run run = {.repeat = 1, .mode = MODE_AWS};
  struct opts o = {.parallel = 1, .then_version = -1};
  cJSON *meta = NULL;
  char *secret = NULL, err[256];
  enum cs_log_level lvl;
  const char *env_lvl = getenv("PROBE_LOG") ? getenv("PROBE_LOG") : getenv("AWS_PROBE_LOG");

  run.req.secret_key = getenv("PROBE_SECRET") ? getenv("PROBE_SECRET") : getenv("AWS_PROBE_SECRET");
  run.req.cred_id = run.ctx.cred_id = "probe";
  parse_args(argc, argv, &run, &o);
  cs_log_min_level = CS_LOG_WARN;
  if (env_lvl && cs_log_parse_level(env_lvl, &lvl) == CS_OK)
    cs_log_min_level = lvl;
  if (cs_broker_create(&o.cfg, &run.b, err, sizeof err) != CS_OK) {
    cJSON *doc = cJSON_CreateObject();
    char *txt;
    cJSON_AddArrayToObject(doc, "results");
    cJSON_AddStringToObject(doc, "create_error", err);
    if ((txt = cJSON_PrintUnformatted(doc)))
      puts(txt);
    free(txt);
    cJSON_Delete(doc);
    return 78;
  }
  if (o.type || run.mode == MODE_URL)
    build_ctx(&run, &o, &meta, &secret);
  char *cert = NULL, *key = NULL;
  if (run.mode == MODE_URL) {
    run.url_auth.user = o.basic_user;
    run.url_auth.password = o.basic_user ? secret : NULL;
    run.url_auth.bearer = o.bearer ? secret : NULL;
    if (o.cert_file && o.key_file) {
      run.url_auth.cert_pem = cert = slurp(o.cert_file, &run.url_auth.cert_pem_len);
      run.url_auth.key_pem = key = slurp(o.key_file, &run.url_auth.key_pem_len);
    }
  }

  size_t nslots = (size_t)(o.warm + o.parallel * run.repeat) + 2, used = 0;
  pthread_t threads[MAX_THREADS];
  struct worker workers[MAX_THREADS];
  if (!(run.slots = calloc(nslots, sizeof *run.slots)))
    return 70;
  for (long k = 0; k < o.warm; k++)
    call(&run, &run.slots[used++]);
  pthread_barrier_init(&run.barrier, NULL, (unsigned)o.parallel);
  for (long t = 0; t < o.parallel; t++) {
    workers[t] = (struct worker){&run, &run.slots[used + (size_t)(t * run.repeat)]};
    if (pthread_create(&threads[t], NULL, work, &workers[t]) != 0)
      return 70;
  }
  for (long t = 0; t < o.parallel; t++)
    pthread_join(threads[t], NULL);
  pthread_barrier_destroy(&run.barrier);
  used += (size_t)(o.parallel * run.repeat);
  if (o.invalidate) {
    cs_broker_invalidate(run.b, run.req.cred_id);
    call(&run, &run.slots[used++]);
  }
  if (o.then_version >= 0) {
    run.req.version = run.ctx.version = (uint64_t)o.then_version;
    call(&run, &run.slots[used++]);
  }

  cJSON *out = cJSON_CreateObject(), *results = cJSON_AddArrayToObject(out, "results");
  int exit_code = 0;
  for (size_t k = 0; k < used; k++) {
    cJSON_AddItemToArray(results, slot_json(&run, &run.slots[k]));
    if (run.slots[k].rc != CS_OK && !exit_code)
      exit_code = (int)run.slots[k].rc;
    cs_aws_creds_wipe(&run.slots[k].creds);
    cs_json_wipe_delete(run.slots[k].material);
  }
  cJSON_AddItemToObject(out, "stats", stats_json(run.b));
  char *text = cJSON_PrintUnformatted(out);
  if (text)
    puts(text);
  free(text);
  cs_json_wipe_delete(out);
  free(run.slots);
  cJSON_Delete(meta);
  cs_free_secret_str(secret);
  free(o.scope_buf);
  free(cert);
  cs_free_secret_str(key);
  cs_broker_free(run.b);
  return exit_code;
}
