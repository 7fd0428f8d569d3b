-- POST /api/v1/credentials with a new _id every request (creates, not
-- updates): "b<BENCH_RUN>-t<thread>-<n>". BENCH_RUN must differ between runs
-- against the same store; BENCH_AUTH is the Authorization header.
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

local run = os.getenv("BENCH_RUN") or "0"
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")

function request()
  n = n + 1
  local body = string.format(
    '{"_id":"b%s-t%d-%d","type":"aws","description":"bench create",' ..
    '"accountID":"AKIAIOSFODNN7EXAMPLE",' ..
    '"secret":{"plain":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}', run, tid, n)
  return wrk.format(nil, nil, nil, body)
end
