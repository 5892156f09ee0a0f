#!/usr/bin/env bash
# comm.backend=nccl: where NCCL cannot run (no GPU, or built without it) every rank must stop
# with one clear line and a non-zero exit; where it can, the probe must pass on it.
# Usage: nccl_test.sh COMM_PROBE MPIEXEC NUMPROC_FLAG
set -euo pipefail
probe=$1 mpiexec=$2 np_flag=$3
here=$(cd "$(dirname "$0")" && pwd)

check=$("$probe" --nccl-check)
echo "nccl_test: $check"
if [[ $check == "nccl: available" ]]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  n=$(( gpus < 1 ? 1 : (gpus > 4 ? 4 : gpus) ))   # NCCL wants one GPU per rank
  exec "$here/expect.sh" --exit zero --match 'comm_probe: ok backend=nccl' --max-seconds 120 -- \
    "$mpiexec" "$np_flag" "$n" --oversubscribe "$probe" --backend nccl --timeout 60
fi
# Any rank may be first to print: mpirun stops the others when one exits (seen: rank 1).
exec "$here/expect.sh" --exit nonzero --max-seconds 60 \
  --match 'rank [0-9]+: comm\.backend=nccl (needs a CUDA device: cudaGetDeviceCount says|is unavailable: built without NCCL \(DMA_WITH_NCCL=OFF or NCCL not found\))' \
  --match 'use comm\.backend=mpi or auto' -- \
  "$mpiexec" "$np_flag" 2 --oversubscribe "$probe" --backend nccl --timeout 30
