#!/usr/bin/env bash
# Long libFuzzer runs that grow the committed corpus (tests/fuzz/README.md).
#
#   tests/fuzz/run-long.sh [-t SECONDS] [-j JOBS] [-b BUILD_DIR] [-n] [HARNESS...]
#
#   -t SECONDS   how long each harness runs (default 600)
#   -j JOBS      parallel fuzzing processes per harness (-jobs/-workers; default 1)
#   -b DIR       build dir configured with -DCS_FUZZ=ON (default build-fuzz)
#   -n           don't merge new inputs into tests/fuzz/corpus/
#   HARNESS...   names like fuzz_jwt (default: every harness)
#
# Each harness fuzzes a scratch copy of its corpus. Afterwards the inputs
# that add coverage are merged (-merge=1) into a scratch copy of the
# committed corpus, and only the files that merge added are copied back, so
# an interrupted run never leaves the corpus half-written. Crashes land in
# tests/fuzz/crashes/<harness>-crash-<sha1>; the script exits 1 if any did.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
seconds=600 jobs=1 build="$repo/build-fuzz" merge=1

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts "t:j:b:nh" o; do
  case $o in
    t) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    b) build=$(cd "$OPTARG" && pwd) ;;
    n) merge=0 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))

all=(fuzz_cred_body fuzz_kubeconfig fuzz_sts_xml fuzz_imds_json fuzz_jwt fuzz_basic fuzz_query
     fuzz_keyring)
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
common=(-rss_limit_mb=2048 -timeout=10)
crashes="$here/crashes"
mkdir -p "$crashes"
failed=0

for h in "${harnesses[@]}"; do
  bin="$build/tests/fuzz/$h"
  corpus="$here/corpus/$h"
  if [ ! -x "$bin" ]; then
    echo "no $bin: build it with" >&2
    echo "  CC=clang cmake -S $repo -B $build -DCS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug" >&2
    echo "  cmake --build $build --target fuzz_all" >&2
    exit 2
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/cs-fuzz-long-$h.XXXXXX")
  mkdir -p "$work/corpus" "$work/merged" "$corpus"
  cp -R "$corpus/." "$work/corpus/"
  dict=()
  [ -f "$here/dict/$h.dict" ] && dict=(-dict="$here/dict/$h.dict")

  echo "== $h: ${seconds}s x $jobs job(s)"
  before=$(find "$crashes" -type f | wc -l)
  status=0
  if [ "$jobs" -le 1 ]; then
    "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$seconds" -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$crashes/$h-" "$work/corpus" \
      >"$work/fuzz.log" 2>&1 || status=$?
    grep -E '^#[0-9]+.*(DONE|cov:)' "$work/fuzz.log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
      "$work/fuzz.log" || true
  else
    # -jobs writes fuzz-N.log into the working directory.
    (cd "$work" && "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$seconds" \
      -max_len=16384 -print_final_stats=1 -jobs="$jobs" -workers="$jobs" \
      -artifact_prefix="$crashes/$h-" "$work/corpus" >"$work/fuzz.log" 2>&1) || status=$?
    for log in "$work"/fuzz-*.log; do
      [ -f "$log" ] || continue
      echo "$(basename "$log"): $(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1)"
      grep -E '^stat::average_exec_per_sec' "$log" || true
    done
  fi
  after=$(find "$crashes" -type f | wc -l)
  if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "$h: libFuzzer exited $status; crash inputs in $crashes/ (log: $work/fuzz.log)" >&2
    tail -n 60 "$work/fuzz.log" "$work"/fuzz-*.log 2>/dev/null >&2 || true
    failed=1
  fi

  if [ "$merge" -eq 1 ]; then
    cp -R "$corpus/." "$work/merged/"
    "$bin" "${common[@]}" -merge=1 "$work/merged" "$work/corpus" >"$work/merge.log" 2>&1 || {
      echo "$h: merge failed (log: $work/merge.log)" >&2
      failed=1
      continue
    }
    added=0
    for f in "$work/merged"/*; do
      [ -f "$f" ] || continue
      b=$(basename "$f")
      if [ ! -e "$corpus/$b" ]; then
        cp "$f" "$corpus/$b"
        added=$((added + 1))
      fi
    done
    echo "$h: merged $added new input(s) into tests/fuzz/corpus/$h ($(du -sk --apparent-size "$corpus" | cut -f1) KiB)"
  fi
  [ "$status" -eq 0 ] && [ "$after" -eq "$before" ] && rm -rf "$work"
done
exit "$failed"
