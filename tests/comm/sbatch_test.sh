#!/usr/bin/env bash
# slurm/dma.sbatch on the local one-node cluster, with a stand-in for dma_orchestrate (the
# script's mechanics, not dma's): a run that ends on its own completes without requeue; on the
# near-time-limit SIGUSR1 (sent to the batch shell, as --signal=B:USR1 does) every rank gets
# SIGUSR1, exits 0, and the job is requeued with --resume. Exit 77 = skipped (as slurm_test.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
if [ "$(id -u)" -ne 0 ] && ! "$src/tools/slurm/cluster.sh" status >/dev/null 2>&1; then
  echo "sbatch_test: SKIP: not root and no local cluster running"; exit 77
fi
work=$(mktemp -d /tmp/dma_sbatch_XXXXXX)
trap 'rm -rf "$work"' EXIT
# The local node has no GPUs and 8 CPUs: drop the GPU line, shrink the shape on the command line.
sed '/--gpus-per-task/d' "$src/slurm/dma.sbatch" >"$work/dma.sbatch"
export SBT_WORK=$work SBT_STUB=$here/stub_orchestrate.sh

scenario() {
  set -euo pipefail
  cd "$SBT_WORK"
  local shape=(--parsable --nodes=1 --ntasks-per-node=3 --cpus-per-task=1 --time=5)
  field() { scontrol show job "$1" | grep -o "$2=[^ ]*" | cut -d= -f2; }
  wait_state() {  # job, regex of states, seconds
    local s
    for _ in $(seq 1 $(( $3 * 5 ))); do s=$(field "$1" JobState); [[ $s =~ $2 ]] && return 0; sleep 0.2; done
    echo "sbatch_test: FAIL: job $1 is $s, expected $2 within $3 s"; cat "dma-$1.out" || true; return 1
  }
  # 1. A run that completes: exit 0, no requeue.
  local a; a=$(STUB_MODE=finish DMA_ORCHESTRATE=$SBT_STUB sbatch "${shape[@]}" dma.sbatch cfg.ini collect --run.dir r)
  wait_state "$a" '^COMPLETED$' 60
  [ "$(field "$a" Restarts)" = 0 ] || { echo "sbatch_test: FAIL: finished job $a was requeued"; return 1; }
  grep -q 'stub rank 2 start 0: --config cfg.ini --mode collect --resume --run.dir r' "dma-$a.out"
  # 2. Near the time limit: SIGUSR1 to the batch shell -> ranks save, exit 0 -> requeued.
  local b; b=$(DMA_ORCHESTRATE=$SBT_STUB sbatch "${shape[@]}" dma.sbatch cfg.ini collect)
  wait_state "$b" '^RUNNING$' 60
  for _ in $(seq 50); do [ "$(grep -c '^stub rank .* start 0' "dma-$b.out" 2>/dev/null)" = 3 ] && break; sleep 0.2; done
  scancel --batch --signal=USR1 "$b"
  wait_state "$b" '^(PENDING|REQUEUED)$' 60
  [ "$(field "$b" Restarts)" = 1 ] || { echo "sbatch_test: FAIL: job $b not requeued"; cat "dma-$b.out"; return 1; }
  scancel "$b"  # Slurm holds a requeued job ~2 min (BeginTime) before its next start
  for r in 0 1 2; do grep -q "stub rank $r: got SIGUSR1, saved" "dma-$b.out" || { echo "sbatch_test: FAIL: rank $r missed SIGUSR1"; cat "dma-$b.out"; return 1; }; done
  grep -q 'requeueing so that the next start continues with --resume' "dma-$b.out"
  cat "dma-$b.out"
  echo "sbatch_test: PASS"
}
export -f scenario
"$src/tools/slurm/with-cluster.sh" bash -c scenario
