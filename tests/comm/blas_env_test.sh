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

# coretype REPORT FLAGS [preset]: OPENBLAS_CORETYPE after sourcing, with python3 reporting
# REPORT on a CPU with FLAGS
coretype() {
  printf '#!/bin/sh\n%s\n' "$1" > "$fake/python3"
  chmod +x "$fake/python3"
  printf 'flags\t\t: %s\n' "$2" > "$fake/cpuinfo"
  env -u OPENBLAS_CORETYPE ${3:+OPENBLAS_CORETYPE=$3} PATH="$fake:$PATH" DMA_CPUINFO="$fake/cpuinfo" \
    bash -c 'set -euo pipefail; . "$1" 2>/dev/null; echo "${OPENBLAS_CORETYPE:-unset}"' _ "$blas_env"
}
generic='echo "Core: Prescott" >&2'
avx512='fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl'
avx2='fpu sse2 avx avx2 fma'
expect() {  # expect WANT REPORT FLAGS [preset]
  local got
  got=$(coretype "$2" "$3" "${4:-}")
  [ "$got" = "$1" ] || fail "report '$2', flags '$3', preset '${4:-}': got '$got', expected '$1'"
}
expect SkylakeX "$generic" "$avx512"
expect Haswell "$generic" "$avx2"
expect Haswell "$generic" "fpu sse2 avx avx2 fma avx512f"  # AVX-512 without bw/vl/dq
expect unset "$generic" "fpu sse2 sse4_2 avx"              # nothing better than generic
expect unset 'echo "Core: Haswell" >&2' "$avx512"          # OpenBLAS knew the CPU
expect Zen "$generic" "$avx512" Zen                        # a preset value is kept
expect unset 'exit 1' "$avx512"                            # python3 fails: nothing, no exit
echo "blas_env_test: PASS"
