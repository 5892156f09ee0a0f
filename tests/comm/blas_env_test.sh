#!/usr/bin/env bash
# launch/blas-env.sh names OpenBLAS's kernel family only when OpenBLAS falls back to its
# generic Prescott kernels on a CPU with AVX2 or AVX-512, keeps a value already set, and
# never stops a `set -e` script (a stand-in python3 plays OpenBLAS's start-up report).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
blas_env=$(cd "$here/../.." && pwd)/launch/blas-env.sh
fake=$(mktemp -d /tmp/dma_blas_env_XXXXXX)
trap 'rm -rf "$fake"' EXIT
fail() { echo "blas_env_test: FAIL: $*"; exit 1; }

# coretype REPORT [preset]: OPENBLAS_CORETYPE after sourcing, with python3 reporting REPORT
coretype() {
  printf '#!/bin/sh\n%s\n' "$1" > "$fake/python3"
  chmod +x "$fake/python3"
  env -u OPENBLAS_CORETYPE ${2:+OPENBLAS_CORETYPE=$2} PATH="$fake:$PATH" \
    bash -c 'set -euo pipefail; . "$1" 2>/dev/null; echo "${OPENBLAS_CORETYPE:-unset}"' _ "$blas_env"
}

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
expected=unset
if [[ $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512vl "* && $flags == *" avx512dq "* ]]; then
  expected=SkylakeX
elif [[ $flags == *" avx2 "* && $flags == *" fma "* ]]; then
  expected=Haswell
fi
got=$(coretype 'echo "Core: Prescott" >&2')
[ "$got" = "$expected" ] || fail "generic kernels on this CPU gave '$got', expected '$expected'"
got=$(coretype 'echo "Core: Haswell" >&2')
[ "$got" = unset ] || fail "OpenBLAS that knows the CPU was overridden with '$got'"
got=$(coretype 'echo "Core: Prescott" >&2' Zen)
[ "$got" = Zen ] || fail "a preset OPENBLAS_CORETYPE became '$got'"
got=$(coretype 'exit 1')
[ "$got" = unset ] || fail "a python3 that fails gave '$got'"
echo "blas_env_test: PASS (this CPU: $expected)"
