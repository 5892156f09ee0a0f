#!/usr/bin/env bash
# launch/mpirun.sh starts N ranks of $DMA_BIN/dma_orchestrate and passes every argument after N
# through unchanged (a stand-in program prints what each rank got); a bad N is a usage error.
# With a hostfile, ranks on another host get the OpenMP and BLAS variables set here: Open MPI
# starts them through a stand-in for ssh that, like a remote login, gives a fresh environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
launch=$(cd "$here/../.." && pwd)/launch/mpirun.sh
bin=$(mktemp -d /tmp/dma_launch_XXXXXX)
trap 'rm -rf "$bin"' EXIT
cat >"$bin/dma_orchestrate" <<'STUB'
#!/bin/bash
echo "rank ${OMPI_COMM_WORLD_RANK:-?} of ${OMPI_COMM_WORLD_SIZE:-?}: $*"
STUB
chmod +x "$bin/dma_orchestrate"

out=$(DMA_BIN=$bin "$launch" 3 --config "a b.ini" --mode collect --resume --train.horizon=4)
echo "$out"
for r in 0 1 2; do
  grep -qx "rank $r of 3: --config a b.ini --mode collect --resume --train.horizon=4" <<<"$out" \
    || { echo "launch_test: FAIL: rank $r missing or got other arguments"; exit 1; }
done
cat >"$bin/remote-shell" <<'SHELL'
#!/bin/bash
shift  # the host name: every "host" is this machine
exec env -i PATH=/usr/bin:/bin HOME="$HOME" bash -c "$*"
SHELL
chmod +x "$bin/remote-shell"
cat >"$bin/dma_orchestrate" <<'STUB'
#!/bin/bash
echo "rank ${OMPI_COMM_WORLD_RANK:-?}: OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
STUB
echo "remote-node slots=2" >"$bin/hosts"
out=$(OMP_NUM_THREADS=3 OPENBLAS_CORETYPE=Haswell OMPI_MCA_plm_rsh_agent="$bin/remote-shell" DMA_BIN=$bin \
      DMA_MPIRUN_ARGS="--hostfile $bin/hosts" timeout 60 "$launch" 2 --mode collect)
echo "$out"
for r in 0 1; do
  grep -qx "rank $r: OMP_NUM_THREADS=3 OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE=Haswell" <<<"$out" \
    || { echo "launch_test: FAIL: rank $r on the hostfile's host lacks the OpenMP/BLAS variables"; exit 1; }
done
if DMA_BIN=$bin "$launch" two --config x 2>/dev/null; then echo "launch_test: FAIL: N=two accepted"; exit 1; fi
echo "launch_test: PASS"
