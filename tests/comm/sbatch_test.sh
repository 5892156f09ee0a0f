#!/usr/bin/env bash
# slurm/dma.sbatch on the local one-node cluster (its stand-in GPUs included), with a stand-in
# for dma_orchestrate (the script's mechanics, not dma's):
#  1. a run that ends on its own completes without requeue; srun gave every task its CPUs
#     (--cpus-per-task) and a GPU of its own (--gpus-per-task, --gpu-bind);
#  2. on the near-time-limit SIGUSR1 (sent to the batch shell, as --signal=B:USR1 does) every
#     rank gets SIGUSR1, exits 0, and the job is requeued with --resume;
#  3. a failure that left a store in run.dir is requeued; 4. once the failure requeues are
#     spent, or 5. without a store, a failure stays failed.
# Exit 77 = skipped (as slurm_test.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
if [ "$(id -u)" -ne 0 ] && ! "$src/tools/slurm/cluster.sh" status >/dev/null 2>&1; then
  echo "sbatch_test: SKIP: not root and no local cluster running"; exit 77
fi
work=$(mktemp -d /tmp/dma_sbatch_XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$src/slurm/dma.sbatch" "$work/dma.sbatch"
export SBT_WORK=$work SBT_STUB=$here/stub_orchestrate.sh

scenario() {
  set -euo pipefail
  cd "$SBT_WORK"
  if ! sinfo -h -o '%G' | grep -q 'gpu:'; then
    echo "sbatch_test: FAIL: the local cluster declares no GPUs: restart it (tools/slurm/cluster.sh stop && tools/slurm/cluster.sh start)"
    return 1
  fi
  # The script's own #SBATCH lines (GPUs included) stand; only the size shrinks to one node.
  local shape=(--parsable --nodes=1 --ntasks-per-node=3 --cpus-per-task=2 --time=5)
  field() { scontrol show job "$1" | grep -o "$2=[^ ]*" | cut -d= -f2; }
  wait_state() {  # job, regex of states, seconds
    local s
    for _ in $(seq 1 $(( $3 * 5 ))); do s=$(field "$1" JobState); [[ $s =~ $2 ]] && return 0; sleep 0.2; done
    echo "sbatch_test: FAIL: job $1 is $s, expected $2 within $3 s"; cat "dma-$1.out" || true; return 1
  }
  wait_requeued() {  # job, seconds: a pending job counts only once it has restarted
    for _ in $(seq 1 $(( $2 * 5 ))); do [ "$(field "$1" Restarts)" = 1 ] && return 0; sleep 0.2; done
    fail "job $1 was not requeued within $2 s" "$1"
  }
  fail() { echo "sbatch_test: FAIL: $1"; cat "dma-$2.out"; return 1; }
  # 1. A run that completes: exit 0, no requeue; 2 CPUs and one distinct GPU per task.
  local a; a=$(STUB_MODE=finish DMA_ORCHESTRATE=$SBT_STUB sbatch "${shape[@]}" dma.sbatch cfg.ini collect --run.dir r)
  wait_state "$a" '^COMPLETED$' 120
  [ "$(field "$a" Restarts)" = 0 ] || fail "finished job $a was requeued" "$a"
  grep -q 'stub rank 2 start 0: --config cfg.ini --mode collect --resume --run.dir r' "dma-$a.out"
  grep -q '^stub step TRES=cpu=6,' "dma-$a.out" || fail "the step of 3 tasks did not get 2 CPUs each" "$a"
  local gpus; gpus=$(sed -n "s/^stub rank [0-9] sees GPU '\(.*\)'$/\1/p" "dma-$a.out" | sort -u | tr '\n' ' ')
  [ "$gpus" = "0 1 2 " ] || fail "tasks saw GPUs '$gpus', expected one each: '0 1 2 '" "$a"
  # 2. Near the time limit: SIGUSR1 to the batch shell -> ranks save, exit 0 -> requeued.
  local b; b=$(DMA_ORCHESTRATE=$SBT_STUB sbatch "${shape[@]}" dma.sbatch cfg.ini collect)
  wait_state "$b" '^RUNNING$' 120
  for _ in $(seq 50); do [ "$(grep -c '^stub rank .* start 0' "dma-$b.out" 2>/dev/null)" = 3 ] && break; sleep 0.2; done
  scancel --batch --signal=USR1 "$b"
  wait_state "$b" '^(PENDING|REQUEUED)$' 120
  [ "$(field "$b" Restarts)" = 1 ] || fail "job $b not requeued" "$b"
  scancel "$b"  # Slurm holds a requeued job ~2 min (BeginTime) before its next start
  for r in 0 1 2; do grep -q "stub rank $r: got SIGUSR1, saved" "dma-$b.out" || fail "rank $r missed SIGUSR1" "$b"; done
  grep -q 'saved; requeueing so that the next start continues with --resume' "dma-$b.out"
  # 3. A failure that left a store: requeued (the first of two).
  local c; c=$(STUB_MODE=fail STUB_STORE=1 DMA_ORCHESTRATE=$SBT_STUB sbatch "${shape[@]}" dma.sbatch cfg.ini collect --run.dir rc)
  wait_requeued "$c" 120
  scancel "$c"
  grep -q 'srun failed with [0-9]* and rc holds a store (failure requeue 1 of 2); requeueing' "dma-$c.out" ||
    fail "no failure requeue line" "$c"
  # 4. The failure requeues spent (as after two earlier failures of this job): stays failed.
  local d; d=$(STUB_MODE=fail STUB_STORE=1 DMA_FAILURE_REQUEUES=1 DMA_ORCHESTRATE=$SBT_STUB sbatch --hold "${shape[@]}" dma.sbatch cfg.ini collect --run.dir rd)
  mkdir -p rd && echo 1 >"rd/.failure-requeues-$d" && scontrol release "$d"
  wait_state "$d" '^FAILED$' 120
  [ "$(field "$d" Restarts)" = 0 ] || fail "job $d was requeued beyond DMA_FAILURE_REQUEUES" "$d"
  grep -q 'failed with [0-9]* again after 1 failure requeues: not requeueing' "dma-$d.out" || fail "no give-up line" "$d"
  # 5. A failure before any store exists: nothing to resume, stays failed.
  local e; e=$(STUB_MODE=fail DMA_ORCHESTRATE=$SBT_STUB sbatch "${shape[@]}" dma.sbatch cfg.ini collect --run.dir re)
  wait_state "$e" '^FAILED$' 120
  [ "$(field "$e" Restarts)" = 0 ] || fail "job $e without a store was requeued" "$e"
  cat "dma-$a.out" "dma-$c.out"
  echo "sbatch_test: PASS"
}
export -f scenario
"$src/tools/slurm/with-cluster.sh" bash -c scenario
