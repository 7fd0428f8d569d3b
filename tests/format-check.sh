#!/usr/bin/env bash
# The house style, checked: every tracked C file (sources, headers, tests)
# must be as clang-format 14 formats it with the root .clang-format. Prints
# the files that differ and how to fix them; exit 1 if any does.
#
#   tests/format-check.sh          # check
#   tests/format-check.sh --fix    # reformat in place (what "clang-format: whole tree" ran)
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-/usr/bin/clang-format}
[ -x "$CF" ] || { echo "format-check: $CF not found (Debian: clang-format)" >&2; exit 2; }
case "$("$CF" --version)" in
*"version 14."*) ;;
*) echo "format-check: $CF is not clang-format 14; other versions format differently" >&2; exit 2 ;;
esac
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = --fix ]; then
  "$CF" -i --style=file "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$CF" --style=file --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format-check: not formatted: %s\n' "${bad[@]}" >&2
  echo "format-check: run tests/format-check.sh --fix (clang-format 14, .clang-format)" >&2
  exit 1
fi
echo "format-check: ${#files[@]} files formatted"
