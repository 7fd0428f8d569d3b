/* aws_probe: drive providers/aws/ from the command line for the
 * integration tests (tests/integration/test_aws_core.py), against the
 * loopback STS and IMDS doubles.
 *
 *   aws_probe [--sts URL] [--imds URL] [--timeout-ms N]
 *             [--cred ID] [--version N] [--akid ID] [--secret S] [--instance-role]
 *             [--role ARN] [--external-id X] [--session-name X] [--duration N]
 *             [--region R] [--regional]
 *             [--repeat N] [--parallel N] [--invalidate] [--then-version N]
 *
 * The secret may come from AWS_PROBE_SECRET instead of argv. One phase of
 * --parallel threads (started together behind a barrier) each resolving
 * --repeat times; then, with --invalidate, cs_aws_invalidate(cred) and one
 * more resolve; then, with --then-version, one resolve at that version.
 * Prints {"results":[...],"stats":{...}} on stdout and exits with the
 * enum cs_err of the first failure (0 if every resolve succeeded).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers.h"

#define MAX_THREADS 256

struct slot {
  enum cs_err rc;
  struct cs_aws_creds creds;
  struct cs_aws_error err;
};

struct run {
  struct cs_aws_resolver *r;
  struct cs_aws_request req;
  pthread_barrier_t barrier;
  long repeat;
  struct slot *slots; /* parallel * repeat, then the extra steps */
};

struct worker {
  struct run *run;
  long idx;
};

static void *work(void *arg)
{
  struct worker *w = arg;
  struct run *run = w->run;

  pthread_barrier_wait(&run->barrier);
  for (long i = 0; i < run->repeat; i++) {
    struct slot *s = &run->slots[w->idx * run->repeat + i];
    s->rc = cs_aws_resolve(run->r, &run->req, &s->creds, &s->err);
  }
  return NULL;
}

static void usage(void)
{
  fprintf(stderr, "usage: aws_probe [options] (see tests/aws_probe.c)\n");
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

static cJSON *slot_json(const struct slot *s)
{
  cJSON *o = cJSON_CreateObject();
  char ts[32];

  cJSON_AddBoolToObject(o, "ok", s->rc == CS_OK);
  cJSON_AddStringToObject(o, "rc", cs_err_code(s->rc));
  cJSON_AddNumberToObject(o, "errno", (double)s->rc);
  cJSON_AddNumberToObject(o, "http_status", cs_err_http_status(s->rc));
  if (s->rc == CS_OK) {
    cJSON_AddStringToObject(o, "AccessKeyId", s->creds.access_key_id);
    cJSON_AddStringToObject(o, "SecretAccessKey", s->creds.secret_access_key);
    if (s->creds.session_token[0])
      cJSON_AddStringToObject(o, "SessionToken", s->creds.session_token);
    if (s->creds.expiration) {
      cs_time_format(s->creds.expiration, ts);
      cJSON_AddStringToObject(o, "Expiration", ts);
    }
  } else {
    cJSON_AddStringToObject(o, "code", s->err.code);
    cJSON_AddStringToObject(o, "message", s->err.message);
  }
  return o;
}

int main(int argc, char **argv)
{
  struct cs_aws_config cfg = {0};
  struct run run = {.repeat = 1};
  long parallel = 1, then_version = -1;
  bool invalidate = false;
  enum cs_log_level lvl;
  const char *env_lvl = getenv("AWS_PROBE_LOG");

  run.req.secret_key = getenv("AWS_PROBE_SECRET");
  run.req.cred_id = "probe";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
    if (OPT("--sts"))
      cfg.sts_endpoint = v;
    else if (OPT("--imds"))
      cfg.imds_endpoint = v;
    else if (OPT("--timeout-ms"))
      cfg.timeout_ms = num(v);
    else if (OPT("--cred"))
      run.req.cred_id = v;
    else if (OPT("--version"))
      run.req.version = (uint64_t)num(v);
    else if (OPT("--akid"))
      run.req.access_key_id = v;
    else if (OPT("--secret"))
      run.req.secret_key = v;
    else if (strcmp(a, "--instance-role") == 0)
      run.req.use_instance_role = true;
    else if (OPT("--role"))
      run.req.role_arn = v;
    else if (OPT("--external-id"))
      run.req.external_id = v;
    else if (OPT("--session-name"))
      run.req.session_name = v;
    else if (OPT("--duration"))
      run.req.duration_seconds = num(v);
    else if (OPT("--region"))
      run.req.region = v;
    else if (strcmp(a, "--regional") == 0)
      run.req.regional_endpoint = true;
    else if (OPT("--repeat"))
      run.repeat = num(v);
    else if (OPT("--parallel"))
      parallel = num(v);
    else if (strcmp(a, "--invalidate") == 0)
      invalidate = true;
    else if (OPT("--then-version"))
      then_version = num(v);
    else
      usage();
#undef OPT
  }
  if (parallel < 1 || parallel > MAX_THREADS || run.repeat < 1 || run.repeat > 1000)
    usage();
  cs_log_min_level = CS_LOG_WARN;
  if (env_lvl && cs_log_parse_level(env_lvl, &lvl) == CS_OK)
    cs_log_min_level = lvl;

  size_t nslots = (size_t)(parallel * run.repeat) + 2;
  size_t used = (size_t)(parallel * run.repeat);
  pthread_t threads[MAX_THREADS];
  struct worker workers[MAX_THREADS];
  run.slots = calloc(nslots, sizeof *run.slots);
  if (!run.slots || cs_aws_resolver_create(&cfg, &run.r) != CS_OK) {
    fprintf(stderr, "aws_probe: cannot create the resolver\n");
    return 70;
  }
  pthread_barrier_init(&run.barrier, NULL, (unsigned)parallel);
  for (long t = 0; t < parallel; t++) {
    workers[t] = (struct worker){&run, t};
    if (pthread_create(&threads[t], NULL, work, &workers[t]) != 0) {
      fprintf(stderr, "aws_probe: pthread_create failed\n");
      return 70;
    }
  }
  for (long t = 0; t < parallel; t++)
    pthread_join(threads[t], NULL);
  pthread_barrier_destroy(&run.barrier);

  if (invalidate) {
    struct slot *s = &run.slots[used++];
    cs_aws_invalidate(run.r, run.req.cred_id);
    s->rc = cs_aws_resolve(run.r, &run.req, &s->creds, &s->err);
  }
  if (then_version >= 0) {
    struct slot *s = &run.slots[used++];
    run.req.version = (uint64_t)then_version;
    s->rc = cs_aws_resolve(run.r, &run.req, &s->creds, &s->err);
  }

  struct cs_aws_stats st;
  cJSON *out = cJSON_CreateObject(), *results = cJSON_AddArrayToObject(out, "results");
  cJSON *stats = cJSON_AddObjectToObject(out, "stats");
  int exit_code = 0;

  cs_aws_get_stats(run.r, &st);
  for (size_t k = 0; k < used; k++) {
    cJSON_AddItemToArray(results, slot_json(&run.slots[k]));
    if (run.slots[k].rc != CS_OK && !exit_code)
      exit_code = (int)run.slots[k].rc;
    cs_aws_creds_wipe(&run.slots[k].creds);
  }
  cJSON_AddNumberToObject(stats, "sts_calls", (double)st.sts_calls);
  cJSON_AddNumberToObject(stats, "imds_calls", (double)st.imds_calls);
  cJSON_AddNumberToObject(stats, "cache_hits", (double)st.cache_hits);
  cJSON_AddNumberToObject(stats, "cache_misses", (double)st.cache_misses);
  char *text = cJSON_PrintUnformatted(out);
  if (text)
    puts(text);
  free(text);
  cJSON_Delete(out);
  free(run.slots);
  cs_aws_resolver_free(run.r);
  return exit_code;
}
