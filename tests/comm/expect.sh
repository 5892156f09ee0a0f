#!/usr/bin/env bash
# Runs a command and checks its exit status, its output and its duration, so that a ctest
# case fails on a wrong exit code even when the expected message is there (and vice versa).
# Usage: expect.sh [--exit zero|nonzero] [--match REGEX]... [--once REGEX]... [--max-seconds S (integer)] -- CMD...
#   --match: REGEX (grep -E) occurs in stdout+stderr;  --once: it occurs on exactly one line.
set -uo pipefail
want_exit=zero max_seconds=0
matches=() onces=()
while [ $# -gt 0 ]; do
  case "$1" in
    --exit) want_exit=$2; shift 2 ;;
    --match) matches+=("$2"); shift 2 ;;
    --once) onces+=("$2"); shift 2 ;;
    --max-seconds) max_seconds=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "expect.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "expect.sh: no command after --" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
start_ns=$(date +%s%N)
"$@" >"$out" 2>&1
rc=$?
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
cat "$out"
echo "expect.sh: exit code $rc after ${elapsed_ms} ms"

fail=0
case "$want_exit" in
  zero) [ "$rc" -eq 0 ] || { echo "expect.sh: FAIL: expected exit code 0, got $rc"; fail=1; } ;;
  nonzero) [ "$rc" -ne 0 ] || { echo "expect.sh: FAIL: expected a non-zero exit code, got 0"; fail=1; } ;;
esac
for re in "${matches[@]}"; do
  grep -Eq -- "$re" "$out" || { echo "expect.sh: FAIL: output lacks /$re/"; fail=1; }
done
for re in "${onces[@]}"; do
  n=$(grep -Ec -- "$re" "$out")
  [ "$n" -eq 1 ] || { echo "expect.sh: FAIL: /$re/ on $n lines, expected exactly 1"; fail=1; }
done
if [ "$max_seconds" -gt 0 ] && [ "$elapsed_ms" -gt $(( max_seconds * 1000 )) ]; then
  echo "expect.sh: FAIL: took ${elapsed_ms} ms, limit ${max_seconds} s"; fail=1
fi
[ $fail -eq 0 ] && echo "expect.sh: PASS"
exit $fail
