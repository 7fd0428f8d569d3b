-- GET with an Authorization header taken from the environment:
--   BENCH_AUTH="Bearer <jwt>" or "Basic <base64>"   (tests/bench/run.sh sets it)
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
