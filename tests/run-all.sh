#!/usr/bin/env bash
# README command 2: install what tests need, build, run every test (ctest).
# Runs the suite twice: under ASan+UBSan (build-asan/), then the Release
# build (build/), whose ctest summary ends the output.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/deps.sh
# shellcheck disable=SC2086
cs_ensure_packages $CS_BUILD_PKGS $CS_TEST_PKGS
jobs=$(nproc)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCS_SANITIZE=ON -DCS_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
