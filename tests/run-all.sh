#!/usr/bin/env bash
# README command 2: install what tests need, check the format, build, run
# every test (ctest).
# Runs the suite under ASan+UBSan (build-asan/), the fuzz harnesses' short
# runs (build-fuzz/, clang), the valgrind leg (build-vg/), then the Release
# build (build/), whose ctest summary ends the output.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/deps.sh
# shellcheck disable=SC2086
cs_ensure_packages $CS_BUILD_PKGS $CS_TEST_PKGS
jobs=$(nproc)

# Style first: every C file as clang-format 14 formats it (.clang-format).
tests/format-check.sh

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCS_SANITIZE=ON -DCS_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

# libFuzzer harnesses (clang): a bounded run of each on its committed corpus
# (tests/fuzz/README.md; tests/fuzz/run-long.sh for long runs).
CC=clang cmake -S . -B build-fuzz -DCS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_all
ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$jobs"

# Valgrind memcheck (leak check) over the unit tests and the daemon of the
# integration suites that tolerate its slowdown.
cmake -S . -B build-vg -DCMAKE_BUILD_TYPE=Debug -DCS_VALGRIND=ON -DCS_TESTS=ON >/dev/null
cmake --build build-vg -j"$jobs"
ctest --test-dir build-vg -L valgrind --output-on-failure -j"$jobs"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
