-- tests/bench/soak.py: POST .../resolve alternating between two
-- credentials (BENCH_PATH_A + BENCH_USAGE_A, BENCH_PATH_B + BENCH_USAGE_B);
-- each wrk thread stops after its share of BENCH_COUNT answers and then
-- creates the file BENCH_DONE_DIR/<thread>; soak.py ends wrk (SIGINT: wrk
-- then reports as at the end of -d) once every thread has. A run is thus a
-- fixed number of resolves, plus the at most -c requests in flight when the
-- threads stop, which the server still answers and audits.
local nthreads = 0
local threads = {}
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function init(args)
  local total = tonumber(os.getenv("BENCH_COUNT") or "100000")
  local n = tonumber(os.getenv("BENCH_THREADS") or "1")
  quota = math.floor(total / n) + ((tid <= total % n) and 1 or 0)
  answered = 0
  sent = 0
  local hdr = {["Content-Type"] = "application/json", ["Authorization"] = os.getenv("BENCH_AUTH")}
  reqs = {
    wrk.format("POST", os.getenv("BENCH_PATH_A"), hdr,
               string.format('{"usageId":"%s"}', os.getenv("BENCH_USAGE_A"))),
    wrk.format("POST", os.getenv("BENCH_PATH_B"), hdr,
               string.format('{"usageId":"%s"}', os.getenv("BENCH_USAGE_B"))),
  }
end

function request()
  sent = sent + 1
  return reqs[sent % 2 + 1]
end

function response(status, headers, body)
  answered = answered + 1
  if answered == quota then
    local f = io.open(os.getenv("BENCH_DONE_DIR") .. "/" .. tid, "w")
    if f then
      f:close()
    end
    wrk.thread:stop()
  end
end
