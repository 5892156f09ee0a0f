#!/usr/bin/env bash
# Formats the C++ sources with .clang-format, or checks them (--check: lists the files that
# differ and exits 1; the test suite runs it).
# Usage: tools/format.sh [--check] [FILE...]   (default: every tracked C++ file)
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
command -v clang-format >/dev/null || { echo "format.sh: clang-format not found: apt-get install clang-format" >&2; exit 2; }
if [ $# -eq 0 ]; then
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cu' 2>/dev/null || find src include tools tests -name '*.[ch]pp')
else
  files=("$@")
fi
if [ "$check" -eq 0 ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format.sh: not formatted: %s\n' "${bad[@]}" >&2
  echo "format.sh: run tools/format.sh ${bad[*]} to format them" >&2
  exit 1
fi
