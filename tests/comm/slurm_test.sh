#!/usr/bin/env bash
# comm under Slurm, on the local one-node cluster of tools/slurm/cluster.sh:
#  1. `srun --mpi=pmix -n 3 comm_probe`: direct launch through PMIx, every value checked;
#  2. `srun -n 1 mpirun -n 3 comm_probe`: mpirun inside a step, where SLURM_NTASKS=1 describes
#     mpirun's step, not the ranks: the task-count check must not fire.
# Skipped (exit 77) when not root and no cluster is running (it cannot start one then).
# Usage: slurm_test.sh COMM_PROBE
set -euo pipefail
probe=$1
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/../../tools/slurm" && pwd)
if [ "$(id -u)" -ne 0 ] && ! "$tools/cluster.sh" status >/dev/null 2>&1; then
  echo "slurm_test: SKIP: not root and no local cluster running (start one: sudo $tools/cluster.sh start)"
  exit 77
fi

# Runs under tools/slurm/with-cluster.sh (a child process): it gets its paths by environment.
check() {
  "$COMM_TEST_DIR/expect.sh" --exit zero --max-seconds 120 --once 'comm_probe: ok backend=mpi ranks=3 ' -- \
    timeout 150 srun --mpi=pmix -n 3 "$COMM_PROBE" --rounds 4 --count 7 --timeout 60 &&
  "$COMM_TEST_DIR/expect.sh" --exit zero --max-seconds 120 --once 'comm_probe: ok backend=mpi ranks=3 ' -- \
    timeout 150 srun -n 1 mpirun -n 3 --oversubscribe "$COMM_PROBE" --timeout 60
}
export -f check
export COMM_TEST_DIR=$here COMM_PROBE=$probe
t0=$(date +%s)
rc=0
"$tools/with-cluster.sh" bash -c check || rc=$?
echo "slurm_test: $([ $rc -eq 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - t0 )) s (cluster start/stop included)"
exit $rc
