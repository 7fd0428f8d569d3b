#!/usr/bin/env bash
# credstore benchmarks (tests/bench/README.md): a bare libmicrohttpd server
# with credstore's daemon settings (baseline.c) and credstore, side by side,
# under wrk; then tests/bench/scale.py (single-flight STS, RSS and list
# latency at 100,000 credentials). Not a ctest: nothing here has a pass/fail
# time limit; it prints numbers.
#
#   tests/bench/run.sh [--quick] [--threads N] [--connections C] [--duration S]
#                      [--rounds R] [--wrk-threads T] [--log-level L]
#                      [--records N] [--cold N] [--profile] [--no-build]
#                      [--no-scale] [--keep] [--only get_bearer,get_basic,resolve,create]
#
# --quick: 3 s runs, 1 round, scale.py with 10,000 records and 200 cold
# resolves (about 1 minute instead of about 5).
# CREDSTORE_BIN=path uses an existing binary instead of building build-bench/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$ROOT/tests/bench
PY=/usr/bin/python3 # Debian's python3: botocore for the STS double

THREADS=32 # credstore serve's default pool (server/api/api.h CS_DEFAULT_THREADS); the baseline gets the same
CONNS=64
DURATION=10
ROUNDS=3
WRK_THREADS=2
LOG_LEVEL=info # the shipped default: one access-log line per request
RECORDS=100000
COLD=1000
PROFILE=0
BUILD=1
SCALE=1
KEEP=0
ONLY=get_bearer,get_basic,resolve,create

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
  --quick) DURATION=3 ROUNDS=1 RECORDS=10000 COLD=200 ;;
  --threads) THREADS=$2; shift ;;
  --connections) CONNS=$2; shift ;;
  --duration) DURATION=$2; shift ;;
  --rounds) ROUNDS=$2; shift ;;
  --wrk-threads) WRK_THREADS=$2; shift ;;
  --log-level) LOG_LEVEL=$2; shift ;;
  --records) RECORDS=$2; shift ;;
  --cold) COLD=$2; shift ;;
  --profile) PROFILE=1 ;;
  --no-build) BUILD=0 ;;
  --no-scale) SCALE=0 ;;
  --keep) KEEP=1 ;;
  --only) ONLY=$2; shift ;;
  -h | --help) usage ;;
  *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done

for tool in wrk curl cc pkg-config cmake; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
[ -x $PY ] || { echo "run.sh: $PY (with botocore) is required" >&2; exit 1; }

W=$(mktemp -d /tmp/credstore-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ $KEEP = 1 ]; then echo "work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
log() { echo "[bench] $*" >&2; }

# ------------------------------------------------------------------ build
TREE=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "?") # what gets built
if [ -n "${CREDSTORE_BIN:-}" ]; then
  BIN=$CREDSTORE_BIN
  TREE="binary $BIN"
elif [ $BUILD = 1 ]; then
  log "building credstore (Release) in build-bench/"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-bench" -j"$(nproc)" --target credstore >"$W/build.log" 2>&1 ||
    { cat "$W/build.log" >&2; exit 1; }
  BIN=$ROOT/build-bench/credstore
else
  BIN=$ROOT/build-bench/credstore
fi
[ -x "$BIN" ] || { echo "run.sh: no credstore binary at $BIN" >&2; exit 1; }
log "building the baseline (cc -O2)"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -o "$W/baseline" "$BENCH/baseline.c" \
  $(pkg-config --cflags --libs libmicrohttpd) -lpthread

# ------------------------------------------------------------------ start
# wait_port LOGFILE REGEX: the port a server printed, or fail.
wait_port() {
  local _ port
  for _ in $(seq 1 500); do
    port=$(sed -n -E "s/.*$2.*/\1/p" "$1" | head -1)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    sleep 0.02
  done
  echo "run.sh: no port in $1:" >&2
  cat "$1" >&2
  return 1
}

BENCH_STS_DELAY=0 $PY "$BENCH/stsd.py" >"$W/sts.out" 2>"$W/sts.err" &
PIDS+=($!)
STS_PORT=$(wait_port "$W/sts.out" 'port ([0-9]+)')

"$W/baseline" --listen-port 0 --threads "$THREADS" 2>"$W/baseline.log" &
BASE_PID=$!
PIDS+=("$BASE_PID")
BASE_PORT=$(wait_port "$W/baseline.log" 'listening on port ([0-9]+)')

"$BIN" init --data "$W/data" >"$W/admin.json" 2>"$W/init.log"
# The access log goes to a file opened O_APPEND, truncated after every run.
# A free port chosen here: below --log-level info the port is not logged.
CS_PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --data "$W/data" --listen "127.0.0.1:$CS_PORT" --threads "$THREADS" \
  --token-ttl 86400 --log-level "$LOG_LEVEL" --sts-endpoint "http://127.0.0.1:$STS_PORT" \
  2>>"$W/serve.log" &
CS_PID=$!
PIDS+=("$CS_PID")
for _ in $(seq 1 500); do
  curl -sf -o /dev/null "http://127.0.0.1:$CS_PORT/healthz" && break
  kill -0 $CS_PID 2>/dev/null || { cat "$W/serve.log" >&2; exit 1; }
  sleep 0.02
done
BASE=http://127.0.0.1:$BASE_PORT
CS=http://127.0.0.1:$CS_PORT
log "baseline $BASE (pid $BASE_PID), credstore $CS (pid $CS_PID), STS double :$STS_PORT"

# ---------------------------------------------------------------- prepare
json_field() { $PY -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
ADMIN_ID=$(json_field id <"$W/admin.json")
ADMIN_SECRET=$(json_field secret <"$W/admin.json")
BASIC="Basic $(printf '%s:%s' "$ADMIN_ID" "$ADMIN_SECRET" | base64 -w0)"
TOKEN=$(curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"username\":\"$ADMIN_ID\",\"password\":\"$ADMIN_SECRET\"}" "$CS/api/v1/login" |
  json_field token)
BEARER="Bearer $TOKEN"

# call EXPECTED-STATUS METHOD PATH [BODY]: fail unless the status matches.
call() {
  local want=$1 method=$2 path=$3 body=${4:-} st
  st=$(curl -s -o "$W/last.json" -w '%{http_code}' -X "$method" -H "Authorization: $BEARER" \
    -H 'Content-Type: application/json' ${body:+-d "$body"} "$CS$path")
  if [ "$st" != "$want" ]; then
    echo "run.sh: $method $path: HTTP $st, expected $want: $(cat "$W/last.json")" >&2
    exit 1
  fi
}
KEYS='"accountID":"AKIAIOSFODNN7EXAMPLE","secret":{"plain":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}'
call 201 POST /api/v1/credentials "{\"_id\":\"bench-aws\",\"type\":\"aws\",\"description\":\"benchmark read\",$KEYS}"
call 201 POST /api/v1/credentials "{\"_id\":\"bench-role\",\"type\":\"aws\",\"roleArn\":\"arn:aws:iam::123456789012:role/bench\",$KEYS}"
call 201 POST /api/v1/credentials/bench-role/usages '{"type":"Cloud Scan","description":"bench"}'
USAGE=$(json_field id <"$W/last.json")
call 200 POST /api/v1/credentials/bench-role/resolve "{\"usageId\":\"$USAGE\"}" # warms the cache
call 200 GET /api/v1/credentials/bench-aws
STS_WARM=$(curl -sf "http://127.0.0.1:$STS_PORT/_calls" | json_field calls)

# ------------------------------------------------------------------- runs
ms() { # wrk latency (123.4us / 1.2ms / 1.01s) → milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000;
                         else if (v ~ /m$/) n *= 60000; printf "%.2f", n }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, all threads
TIMEFORMAT='%U %S' # `time wrk`: wrk's own CPU
TCK=$(getconf CLK_TCK)

# one_run NAME SERVER-URL PATH SCRIPT PID [ENV...]: one wrk run; appends
# "name rps p50ms p99ms requests non2xx sockerr server_cpu_us/req wrk_cpu_us/req"
# to $W/results.
one_run() {
  local name=$1 url=$2 path=$3 script=$4 pid=$5
  shift 5
  local c0 c1 out
  c0=$(cpu_ticks "$pid")
  out=$( { time env "$@" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
    -s "$BENCH/$script" "$url$path"; } 2>"$W/wrk.time")
  c1=$(cpu_ticks "$pid")
  echo "$out" >>"$W/wrk.log"
  local rps p50 p99 n non2xx serr
  rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
  p50=$(ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
  p99=$(ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  non2xx=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
  serr=$(echo "$out" | awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }')
  local cpu wcpu
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v t="$TCK" 'BEGIN { printf "%.1f", n ? (b - a) * 1e6 / t / n : 0 }')
  wcpu=$(tail -1 "$W/wrk.time" | awk -v n="$n" '{ printf "%.1f", n ? ($1 + $2) * 1e6 / n : 0 }')
  echo "$name $rps $p50 $p99 $n ${non2xx:-0} ${serr:-0} $cpu $wcpu" >>"$W/results"
  log "$(printf '%-22s %9s req/s  p50 %7s ms  p99 %7s ms  server %6s us/req  wrk %5s us/req  non2xx %s  sockerr %s' \
    "$name" "$rps" "$p50" "$p99" "$cpu" "$wcpu" "${non2xx:-0}" "${serr:-0}")"
  : >"$W/serve.log" # the access log of this run is not kept
}

# scenario KEY PATH SCRIPT [ENV...]: ROUNDS alternating pairs of runs.
scenario() {
  local key=$1 path=$2 script=$3 r
  shift 3
  case ",$ONLY," in *",$key,"*) ;; *) return 0 ;; esac
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
      one_run "$key.baseline" "$BASE" "$path" "$script" "$BASE_PID" "$@" BENCH_RUN="b$r"
      one_run "$key.credstore" "$CS" "$path" "$script" "$CS_PID" "$@" BENCH_RUN="c$r"
    else
      one_run "$key.credstore" "$CS" "$path" "$script" "$CS_PID" "$@" BENCH_RUN="c$r"
      one_run "$key.baseline" "$BASE" "$path" "$script" "$BASE_PID" "$@" BENCH_RUN="b$r"
    fi
  done
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
log "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds, --threads $THREADS, load average $LOAD0"
scenario get_bearer /api/v1/credentials/bench-aws get.lua BENCH_AUTH="$BEARER"
scenario get_basic /api/v1/credentials/bench-aws get.lua BENCH_AUTH="$BASIC"
scenario resolve /api/v1/credentials/bench-role/resolve resolve.lua BENCH_AUTH="$BEARER" BENCH_USAGE="$USAGE"
scenario create /api/v1/credentials create.lua BENCH_AUTH="$BEARER"
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
STS_AFTER=$(curl -sf "http://127.0.0.1:$STS_PORT/_calls" | json_field calls)
CREATED=$(curl -s -D - -o /dev/null -H "Authorization: $BEARER" "$CS/api/v1/credentials?limit=1" |
  awk 'tolower($1) == "total-count:" { print $2 + 0 }')

# ------------------------------------------------------------------ table
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }
col() { awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$W/results" | median; }
sum() { awk -v k="$1" -v c="$2" '$1 == k { s += $c } END { print s + 0 }' "$W/results"; }

row() { # row KEY LABEL
  local k=$1 label=$2 b c
  grep -q "^$k\." "$W/results" || return 0
  b=$(col "$k.baseline" 2)
  c=$(col "$k.credstore" 2)
  local ratio
  ratio=$(awk -v b="$b" -v c="$c" 'BEGIN { printf "%.2f", (b > 0 ? c / b : 0) }')
  local bad
  bad=$(($(sum "$k.credstore" 6) + $(sum "$k.baseline" 6)))
  printf '| %s | %.0f | %.0f | %s | %s | %s | %s | %s / %s | %s / %s |%s\n' "$label" "$b" "$c" \
    "$ratio" "$(col "$k.credstore" 3)" "$(col "$k.credstore" 4)" "$(col "$k.baseline" 4)" \
    "$(col "$k.baseline" 8)" "$(col "$k.credstore" 8)" \
    "$(col "$k.baseline" 9)" "$(col "$k.credstore" 9)" \
    "$([ "$bad" = 0 ] || echo " $bad non-2xx!")"
}

{
  echo
  echo "$("$BIN" version 2>/dev/null | head -1) (tree $TREE), $(nproc) cores, $(uname -r); wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency;"
  echo "median of $ROUNDS alternating rounds; server --threads $THREADS; credstore --log-level $LOG_LEVEL;"
  echo "load average before $LOAD0, after $LOAD1; wrk runs on the same cores as the servers."
  echo
  echo "| scenario | baseline req/s | credstore req/s | ratio | credstore p50 ms | credstore p99 ms | baseline p99 ms | server CPU µs/req (baseline / credstore) | wrk CPU µs/req (vs baseline / vs credstore) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  row get_bearer "GET /api/v1/credentials/{id} (Bearer)"
  row get_basic "GET /api/v1/credentials/{id} (Basic)"
  row resolve "POST …/resolve (cached AWS role)"
  row create "POST /api/v1/credentials (create; credstore = writes/s)"
  echo
  echo "STS calls during the resolve runs: $((STS_AFTER - STS_WARM)) (cache warmed before: $STS_WARM call)."
  echo "Credentials in the store after the create runs: $CREATED; wrk phase took $(($(date +%s) - T0)) s."
} | tee "$W/table.md"

# ---------------------------------------------------------------- profile
set +o pipefail # `| head` below ends perf report early
if [ $PROFILE = 1 ]; then
  if ! command -v perf >/dev/null; then
    log "perf not found: no profile"
  else
    log "profiling credstore under GET (Bearer): perf record -e cpu-clock --call-graph dwarf"
    env BENCH_AUTH="$BEARER" wrk -t"$WRK_THREADS" -c"$CONNS" -d8s -s "$BENCH/get.lua" \
      "$CS/api/v1/credentials/bench-aws" >"$W/wrk-profile.log" &
    WRKP=$!
    sleep 1
    perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$CS_PID" -o "$W/perf.data" \
      -- sleep 5 >/dev/null 2>&1 || true
    wait $WRKP || true
    : >"$W/serve.log"
    {
      echo
      echo "perf (cpu-clock, credstore process), self time by library:"
      perf report -i "$W/perf.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -8
      echo
      echo "self time, top symbols:"
      perf report -i "$W/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -25
      echo
      echo "inclusive time of credstore's own functions (and what they call):"
      perf report -i "$W/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+% +[0-9.]+% +\[\.\] (on_|cs_|auth_|log_|render|queue|dispatch|req_|crypto_|cJSON_Parse|cJSON_Print|mdb_|sodium_b|__libc_(write|sendmsg|recv)|__memset)' |
        head -40
    } | tee "$W/profile.txt"
  fi
fi

set -o pipefail

# ------------------------------------------------------------------ scale
kill "$CS_PID" "$BASE_PID" 2>/dev/null || true
wait "$CS_PID" "$BASE_PID" 2>/dev/null || true
if [ $SCALE = 1 ]; then
  log "scale.py: $COLD concurrent cold resolves, $RECORDS credentials"
  $PY "$BENCH/scale.py" --bin "$BIN" --threads "$THREADS" --records "$RECORDS" --cold "$COLD" \
    --work "$W/scale" | tee "$W/scale.md"
fi
