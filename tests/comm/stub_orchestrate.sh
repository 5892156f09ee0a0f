#!/bin/bash
# Stands in for dma_orchestrate in sbatch_test.sh: STUB_MODE=finish exits 0 at once (a run
# that completes); otherwise it runs until SIGUSR1, then "saves" and exits 0 as dma does.
echo "stub rank ${SLURM_PROCID:-?} start ${SLURM_RESTART_COUNT:-0}: $*"
[ "${STUB_MODE:-}" = finish ] && { echo "stub rank ${SLURM_PROCID:-?}: complete"; exit 0; }
trap 'echo "stub rank ${SLURM_PROCID:-?}: got SIGUSR1, saved"; exit 0' USR1
for _ in $(seq 1200); do sleep 0.1; done
echo "stub rank ${SLURM_PROCID:-?}: no SIGUSR1 within 120 s"
exit 5
