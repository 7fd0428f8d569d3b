#!/usr/bin/env bash
# README command 1: install what is missing, build Release to build/credstore,
# initialise the development data dir .data/ on first use (printing the
# bootstrap admin key once), and serve on 127.0.0.1:8200.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/deps.sh
# shellcheck disable=SC2086
cs_ensure_packages $CS_BUILD_PKGS
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
DATA="${CREDSTORE_DATA:-$PWD/.data}"
if [ ! -f "$DATA/data.mdb" ]; then
  echo "initialising $DATA; the bootstrap admin key (shown only now):" >&2
  build/credstore init --data "$DATA"
fi
exec build/credstore serve --data "$DATA" "$@"
