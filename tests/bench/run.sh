#!/usr/bin/env bash
# credstore benchmarks (tests/bench/README.md): a bare libmicrohttpd server
# with credstore's daemon settings (baseline.c) and credstore, side by side,
# under wrk, and a private PostgreSQL cluster under pgbench (one durable
# one-row INSERT per transaction: the durable-write anchor); then
# tests/bench/scale.py (single-flight STS, RSS and list latency at 100,000
# credentials). Not a ctest: nothing here has a pass/fail time limit; it
# prints numbers.
#
#   tests/bench/run.sh [--quick] [--threads N] [--connections C] [--duration S]
#                      [--rounds R] [--wrk-threads T] [--log-level L]
#                      [--records N] [--cold N] [--profile] [--no-build]
#                      [--no-scale] [--no-pg] [--keep]
#                      [--only get_bearer,get_basic,resolve,create]
#
# --quick: 3 s runs, 1 round, scale.py with 10,000 records and 200 cold
# resolves (about 1 minute instead of about 6).
# --no-pg: no PostgreSQL anchor (it runs in the rounds of the resolve scenario).
# --profile: perf of credstore under GET, resolve and create (cpu-clock
# samples, then syscall and wake-up counts per request).
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
PG=1
ONLY=get_bearer,get_basic,resolve,create

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
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
  --no-pg) PG=0 ;;
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
PG_PID='' PGW=''
log() { echo "[bench] $*" >&2; }
# pg_stop: fast shutdown of the private PostgreSQL cluster, by its postmaster's PID.
pg_stop() {
  [ -n "$PG_PID" ] || return 0
  local _
  kill -INT "$PG_PID" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$PG_PID" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$PG_PID" 2>/dev/null; then
    log "PostgreSQL (pid $PG_PID) did not stop in 10 s: SIGKILL"
    kill -KILL "$PG_PID" 2>/dev/null || true
  fi
  PG_PID=
}
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  pg_stop
  if [ $KEEP = 1 ]; then
    echo "work dirs kept: $W ${PGW:-}" >&2
  else
    rm -rf "$W"
    [ -z "$PGW" ] || rm -rf "$PGW"
  fi
}
trap cleanup EXIT

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

# ------------------------------------------------------------- PostgreSQL
# The durable-write anchor: what a user gets from the standard database for
# one durable one-row INSERT, on the same cores and disk, at the same number
# of clients. A private cluster: initdb into a temp dir (as the postgres user
# when run as root: initdb refuses root), TCP on 127.0.0.1 only, no Unix
# socket, fsync and synchronous_commit on (PostgreSQL's defaults, stated),
# wal_sync_method left at its default.
PG_IN=''
pg_start() {
  local bindir as=()
  bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || ! command -v pgbench >/dev/null ||
    ! command -v psql >/dev/null; then
    log "PostgreSQL server or pgbench not installed (postgresql, postgresql-contrib): no anchor"
    PG=0
    return 0
  fi
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      log "running as root and there is no postgres user to run initdb as: no anchor"
      PG=0
      return 0
    fi
    as=(runuser -u postgres --)
  fi
  PGW=$(mktemp -d /tmp/credstore-bench-pg.XXXXXX)
  [ ${#as[@]} = 0 ] || chown postgres: "$PGW"
  "${as[@]}" "$bindir/initdb" -D "$PGW/data" -A trust -U bench -E UTF8 --no-locale \
    --no-instructions >"$W/pg-initdb.log" 2>&1 || { cat "$W/pg-initdb.log" >&2; exit 1; }
  PG_PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local opts="-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=''"
  opts+=" -c fsync=on -c synchronous_commit=on -c max_connections=$((CONNS + 20))"
  "${as[@]}" "$bindir/pg_ctl" -D "$PGW/data" -l "$PGW/postgres.log" -w -t 60 -o "$opts" \
    start >"$W/pg-ctl.log" 2>&1 || { cat "$W/pg-ctl.log" "$PGW/postgres.log" >&2; exit 1; }
  PG_PID=$(head -1 "$PGW/data/postmaster.pid")
  PSQL=(psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U bench -d postgres -v ON_ERROR_STOP=1)
  # An audit-like row: a sequence key, a time, and a JSON text of the size
  # of a credstore audit entry (≈ 250 bytes).
  "${PSQL[@]}" -c 'CREATE TABLE audit (seq bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), entry text NOT NULL)'
  cat >"$W/pg-insert.sql" <<'SQL'
INSERT INTO audit (entry) VALUES ('{"seq":1,"at":"2026-12-01T09:00:00Z","actor":"k-0123456789abcdef0123","role":"admin","action":"resolve","target":"bench-role","result":"success","remote":"127.0.0.1","prevHash":"0000000000000000000000000000000000000000000000000000000000000000"}');
SQL
  PG_VERSION=$("${PSQL[@]}" -Atc 'SHOW server_version' | cut -d' ' -f1)
  PG_SETTINGS=$("${PSQL[@]}" -Atc "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
                                    'full_page_writes', 'commit_delay')")
  log "PostgreSQL $PG_VERSION 127.0.0.1:$PG_PORT (postmaster pid $PG_PID, data $PGW/data): $PG_SETTINGS"
}
if [ $PG = 1 ]; then
  case ",$ONLY," in
  *,resolve,*) PG_IN=resolve ;;
  *,create,*) PG_IN=create ;;
  *) PG=0 ;;
  esac
fi
[ $PG = 0 ] || pg_start

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

# pg_ticks: CPU ticks of the postmaster, of its live children, and of the
# children it has reaped (the backends of finished pgbench clients).
pg_ticks() {
  local t c
  t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$PG_PID/stat")
  for c in $(pgrep -P "$PG_PID"); do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# pg_run NAME: one pgbench run (a durable one-row INSERT per transaction,
# CONNS clients, WRK_THREADS threads, DURATION s); appends the same fields as
# one_run to $W/results. Latencies from pgbench's per-transaction log.
pg_run() {
  local name=$1 c0 c1 out n0 _
  n0=$(pgrep -c -P "$PG_PID")
  rm -f "$W"/pgtx.*
  c0=$(pg_ticks)
  out=$( { time pgbench -h 127.0.0.1 -p "$PG_PORT" -U bench -c "$CONNS" -j "$WRK_THREADS" \
    -T "$DURATION" -n -M prepared -f "$W/pg-insert.sql" -l --log-prefix="$W/pgtx" postgres; } \
    2>"$W/pgbench.time")
  for _ in $(seq 1 100); do # until the backends of this run have exited and been reaped
    [ "$(pgrep -c -P "$PG_PID")" -le "$n0" ] && break
    sleep 0.02
  done
  c1=$(pg_ticks)
  echo "$out" >>"$W/pgbench.log"
  local tps n failed lat p50 p99 cpu wcpu
  tps=$(echo "$out" | awk '/^tps = / { print $3 }')
  n=$(echo "$out" | awk '/transactions actually processed/ { print $NF }')
  failed=$(echo "$out" | awk '/number of failed transactions/ { print $5 }')
  lat=$(cat "$W"/pgtx.* | awk '{ print $3 }' | sort -n |
    awk '{ a[NR] = $1 } END { if (NR) printf "%.2f %.2f", a[int(NR * 0.5 + 0.5)] / 1000, a[int(NR * 0.99 + 0.5)] / 1000; else print "0 0" }')
  p50=${lat% *}
  p99=${lat#* }
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v t="$TCK" 'BEGIN { printf "%.1f", n ? (b - a) * 1e6 / t / n : 0 }')
  wcpu=$(tail -1 "$W/pgbench.time" | awk -v n="$n" '{ printf "%.1f", n ? ($1 + $2) * 1e6 / n : 0 }')
  echo "$name $tps $p50 $p99 $n ${failed:-0} 0 $cpu $wcpu" >>"$W/results"
  log "$(printf '%-22s %9s tx/s   p50 %7s ms  p99 %7s ms  server %6s us/tx   pgbench %5s us/tx  failed %s' \
    "$name" "$tps" "$p50" "$p99" "$cpu" "$wcpu" "${failed:-0}")"
}

# scenario KEY PATH SCRIPT [ENV...]: ROUNDS rounds of one run per server,
# the order rotating each round (baseline first, then credstore first, ...);
# the PostgreSQL anchor joins the rounds of scenario PG_IN.
scenario() {
  local key=$1 path=$2 script=$3 r i
  shift 3
  case ",$ONLY," in *",$key,"*) ;; *) return 0 ;; esac
  local who=(baseline credstore)
  [ $PG = 0 ] || [ "$key" != "$PG_IN" ] || who+=(postgres)
  for r in $(seq 1 "$ROUNDS"); do
    for i in $(seq 0 $((${#who[@]} - 1))); do
      case ${who[$(((i + r - 1) % ${#who[@]}))]} in
      baseline) one_run "$key.baseline" "$BASE" "$path" "$script" "$BASE_PID" "$@" BENCH_RUN="b$r" ;;
      credstore) one_run "$key.credstore" "$CS" "$path" "$script" "$CS_PID" "$@" BENCH_RUN="c$r" ;;
      postgres) pg_run pg.postgres ;;
      esac
    done
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

pg_ratio() { awk -v a="$(col "$1" 2)" -v b="$(col pg.postgres 2)" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
anchor() { # anchor KEY LABEL: one row of the durable-write table
  grep -q "^$1 " "$W/results" || return 0
  local bad
  bad=$(sum "$1" 6)
  printf '| %s | %.0f | %s | %s | %s | %s |%s\n' "$2" "$(col "$1" 2)" "$(col "$1" 3)" \
    "$(col "$1" 4)" "$(col "$1" 8)" "$(col "$1" 9)" "$([ "$bad" = 0 ] || echo " $bad failed!")"
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
  if grep -q '^pg\.postgres ' "$W/results"; then
    echo
    echo "Durable writes, $CONNS clients, the same 2 cores and disk (PostgreSQL runs in the rounds of the $PG_IN scenario):"
    echo
    echo "| durable write | writes/s | p50 ms | p99 ms | server CPU µs/write | client CPU µs/write |"
    echo "|---|---:|---:|---:|---:|---:|"
    anchor pg.postgres "PostgreSQL $PG_VERSION, pgbench -M prepared: one one-row INSERT per transaction"
    anchor resolve.credstore "credstore POST …/resolve (cached AWS role): usage stats + audit entry"
    anchor create.credstore "credstore POST /api/v1/credentials (create)"
    echo
    echo "PostgreSQL settings: $PG_SETTINGS."
    grep -q '^resolve\.credstore ' "$W/results" &&
      echo "credstore audited resolves/s ÷ PostgreSQL durable INSERTs/s: **$(pg_ratio resolve.credstore)**."
    grep -q '^create\.credstore ' "$W/results" &&
      echo "credstore creates/s ÷ PostgreSQL durable INSERTs/s: **$(pg_ratio create.credstore)**."
  fi
  echo
  echo "STS calls during the resolve runs: $((STS_AFTER - STS_WARM)) (cache warmed before: $STS_WARM call)."
  echo "Credentials in the store after the create runs: $CREATED; wrk phase took $(($(date +%s) - T0)) s."
} | tee "$W/table.md"

# ---------------------------------------------------------------- profile
# profile KEY PATH SCRIPT [ENV...]: perf record (cpu-clock, DWARF call
# graphs) of credstore during one wrk run, then, during another, the
# syscalls and scheduler events of the credstore process per request.
STAT_EVENTS=syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,syscalls:sys_enter_futex
STAT_EVENTS+=,context-switches,sched:sched_wakeup,syscalls:sys_enter_sendto
STAT_EVENTS+=,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait
profile() {
  local key=$1 path=$2 script=$3 wrkp perfp n
  shift 3
  case ",$ONLY," in *",$key,"*) ;; *) return 0 ;; esac
  log "profiling credstore under $key: perf record -e cpu-clock --call-graph dwarf"
  env "$@" BENCH_RUN=p1 wrk -t"$WRK_THREADS" -c"$CONNS" -d8s -s "$BENCH/$script" "$CS$path" \
    >"$W/wrk-profile.log" &
  wrkp=$!
  sleep 1
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$CS_PID" -o "$W/perf-$key.data" \
    -- sleep 5 >/dev/null 2>&1 || true
  wait $wrkp || true
  : >"$W/serve.log"
  perf stat -x, -o "$W/perf-stat-$key.csv" -e "$STAT_EVENTS" -p "$CS_PID" -- sleep 6 \
    >/dev/null 2>&1 &
  perfp=$!
  sleep 0.5
  $PY "$BENCH/taskstat.py" snap "$CS_PID" >"$W/tasks0"
  env "$@" BENCH_RUN=p2 wrk -t"$WRK_THREADS" -c"$CONNS" -d5s -s "$BENCH/$script" "$CS$path" \
    >"$W/wrk-stat.log"
  $PY "$BENCH/taskstat.py" snap "$CS_PID" >"$W/tasks1"
  wait $perfp || true
  : >"$W/serve.log"
  n=$(awk '/requests in/ { print $1 }' "$W/wrk-stat.log")
  local pd=$W/perf-$key.data
  {
    echo
    echo "### perf: $key ($CS$path)"
    echo
    echo "self time by library (cpu-clock, credstore process, all threads):"
    perf report -i "$pd" --no-children --sort dso --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -8
    echo
    echo "self time, top symbols:"
    perf report -i "$pd" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -30
    echo
    echo "inclusive time (children, self) of credstore's own functions and the calls that matter:"
    perf report -i "$pd" --children --sort symbol --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9.]+% +[0-9.]+% +\[[.k]\] (on_|cs_|auth_|log_|render|queue|dispatch|req_|seen_|save_|load_|put_|writer_|crypto_|cJSON_(Parse|Print|Delete|Create|Duplicate|Replace)|mdb_|sodium_|blake2b|__libc_|__memset|malloc|free|_int_|pthread_cond|futex|__x64_sys_(fdatasync|pwrite64|futex|sendto|sendmsg|recvfrom)|do_syscall_64|ext4_sync_file|file_write_and_wait|jbd2|schedule$|try_to_wake_up|tcp_sendmsg|tcp_recvmsg)' |
      head -60
    echo
    echo "per request ($n requests in 5 s; perf stat over a 6 s window around them):"
    awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ { printf "  %-36s %12d  %8.3f /request\n", $3, $1, n ? $1 / n : 0 }' \
      "$W/perf-stat-$key.csv"
    echo
    echo "per thread, per request (same run; /proc/$CS_PID/task/*/{stat,status}):"
    $PY "$BENCH/taskstat.py" diff "$W/tasks0" "$W/tasks1" "$n"
    echo
    grep -E 'Requests/sec|Latency  |99%' "$W/wrk-stat.log" | sed 's/^/  wrk: /'
  } | tee -a "$W/profile.txt"
}

set +o pipefail # `| head` below ends perf report early
if [ $PROFILE = 1 ]; then
  if ! command -v perf >/dev/null; then
    log "perf not found: no profile"
  else
    profile get_bearer /api/v1/credentials/bench-aws get.lua BENCH_AUTH="$BEARER"
    profile resolve /api/v1/credentials/bench-role/resolve resolve.lua BENCH_AUTH="$BEARER" \
      BENCH_USAGE="$USAGE"
    profile create /api/v1/credentials create.lua BENCH_AUTH="$BEARER"
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
