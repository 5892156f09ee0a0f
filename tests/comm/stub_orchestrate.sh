#!/bin/bash
# Stands in for dma_orchestrate in sbatch_test.sh. --print-config prints run.dir as the real
# one does; otherwise each rank reports its step (GPU it sees; rank 0: the step's CPUs) and:
# STUB_MODE=finish exits 0 at once (a run that completes); STUB_MODE=fail writes a store into
# run.dir (when STUB_STORE=1) and exits 3 (a failing run); otherwise it runs until SIGUSR1,
# then "saves" and exits 0 as dma does.
run_dir=r
args=("$@")
for i in "${!args[@]}"; do [ "${args[$i]}" = --run.dir ] && run_dir=${args[$((i + 1))]}; done
if [[ " $* " == *" --print-config "* ]]; then printf '[data]\ndir = not-this-one\n\n[run]\ndir = %s\n' "$run_dir"; exit 0; fi
echo "stub rank ${SLURM_PROCID:-?} start ${SLURM_RESTART_COUNT:-0}: $*"
echo "stub rank ${SLURM_PROCID:-?} sees GPU '${CUDA_VISIBLE_DEVICES:-}'"
if [ "${SLURM_PROCID:-}" = 0 ]; then
  echo "stub step $(scontrol show step "$SLURM_JOB_ID.$SLURM_STEP_ID" | grep -o 'TRES=[^ ]*' | head -1)"
fi
[ "${STUB_MODE:-}" = finish ] && { echo "stub rank ${SLURM_PROCID:-?}: complete"; exit 0; }
if [ "${STUB_MODE:-}" = fail ]; then
  mkdir -p "$run_dir"
  [ "${STUB_STORE:-0}" = 1 ] && touch "$run_dir/store.h5"
  echo "stub rank ${SLURM_PROCID:-?}: failing"; exit 3
fi
trap 'echo "stub rank ${SLURM_PROCID:-?}: got SIGUSR1, saved"; exit 0' USR1
for _ in $(seq 1200); do sleep 0.1; done
echo "stub rank ${SLURM_PROCID:-?}: no SIGUSR1 within 120 s"
exit 5
