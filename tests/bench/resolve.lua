-- POST /api/v1/credentials/{id}/resolve for one usage of a (cached) role
-- credential. BENCH_AUTH: Authorization header; BENCH_USAGE: the usage id.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.body = string.format('{"usageId":"%s"}', os.getenv("BENCH_USAGE"))
