#!/usr/bin/env bash
# One bounded libFuzzer run for ctest (tests/fuzz/CMakeLists.txt):
#   run-short.sh HARNESS CORPUS_DIR SECONDS ARTIFACT_DIR
# Fuzzes a temporary copy of CORPUS_DIR plus tests/fuzz/crashes/<harness>-*,
# so the committed corpus is never changed; a crash is kept as
# ARTIFACT_DIR/<harness>-crash-<sha1> and fails the test.
set -euo pipefail
harness=$1 corpus=$2 seconds=$3 artifacts=$4
name=$(basename "$harness")

work=$(mktemp -d "${TMPDIR:-/tmp}/cs-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
if [ -d "$corpus" ]; then
  cp -R "$corpus/." "$work/corpus/"
fi
# Inputs that once found a bug (crashes/<harness>-*) run first, as regressions.
for f in "$(dirname "$0")/crashes/$name"-*; do
  [ -f "$f" ] && cp "$f" "$work/corpus/"
done

# UBSan only reports by default; make it fatal so libFuzzer keeps the input.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
dict=()
[ -f "$(dirname "$0")/dict/$name.dict" ] && dict=(-dict="$(dirname "$0")/dict/$name.dict")
status=0
"$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  "${dict[@]}" -artifact_prefix="$artifacts/$name-" "$work/corpus" >"$work/log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 150 "$work/log"
  echo "$name: libFuzzer exited $status; inputs kept in $artifacts/" >&2
  exit "$status"
fi
# Keep the output short: the last status line and the final stats.
grep -E '^#[0-9]+.*(DONE|cov:)' "$work/log" | tail -n 1
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$work/log" || true
