#!/usr/bin/env bash
# Runs dma_orchestrate on this machine (or a hostfile's machines) as N MPI ranks:
# rank 0 is the learner, ranks 1..N-1 are workers, so N must be at least 2.
#
#   launch/mpirun.sh N --config FILE --mode MODE [--run.dir DIR] [--resume] [--section.key=value ...]
#   launch/mpirun.sh 4 --config configs/test-tiny.ini --mode collect
#
# Everything after N goes to dma_orchestrate unchanged. Environment:
#   DMA_BIN          folder of dma_orchestrate (default: build/bin of this checkout)
#   DMA_MPIRUN_ARGS  extra mpirun options, e.g. "--hostfile hosts --map-by node"
# As root it sets Open MPI's run-as-root variables; with more ranks than CPUs it adds
# --oversubscribe (and lets idle ranks yield their core). OpenMP and BLAS variables set here
# (OMP_*, OPENBLAS_*, MKL_NUM_THREADS) reach the ranks on every host (mpirun -x).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DMA_BIN:-$root/build/bin}/dma_orchestrate

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 N --config FILE --mode MODE [dma_orchestrate options]  (N ranks, at least 2)" >&2
  exit 2
fi
n=$1; shift
[ -x "$bin" ] || { echo "mpirun.sh: $bin not found: build first (tools/test.sh, or cmake -S . -B build -G Ninja && cmake --build build)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpirun.sh: mpirun not found: install openmpi-bin (tools/install-deps.sh)" >&2; exit 1; }

args=(-n "$n")
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ "$n" -gt "$(nproc)" ]; then
  args+=(--oversubscribe)
  export OMPI_MCA_mpi_yield_when_idle=1
fi
# Idle OpenMP threads must sleep, not spin: ranks share cores, and a spinning team made a
# 2-thread proxy step 5-25x slower on a busy 2-core machine (measured).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# shellcheck source=launch/blas-env.sh
. "$root/launch/blas-env.sh"
# Ranks that mpirun starts on other hosts (a hostfile) get the remote shell's environment,
# not this one: forward the thread and BLAS settings that are set here.
for name in OMP_NUM_THREADS OMP_WAIT_POLICY OMP_PROC_BIND OMP_PLACES OPENBLAS_NUM_THREADS \
            OPENBLAS_CORETYPE MKL_NUM_THREADS; do
  [ -n "${!name:-}" ] && args+=(-x "$name")
done
# shellcheck disable=SC2206  # DMA_MPIRUN_ARGS is a list of words on purpose
extra=(${DMA_MPIRUN_ARGS:-})
exec mpirun "${args[@]}" "${extra[@]}" "$bin" "$@"
