#!/usr/bin/env bash
# launch/mpirun.sh starts N ranks of $DMA_BIN/dma_orchestrate and passes every argument after N
# through unchanged (a stand-in program prints what each rank got); a bad N is a usage error.
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
if DMA_BIN=$bin "$launch" two --config x 2>/dev/null; then echo "launch_test: FAIL: N=two accepted"; exit 1; fi
echo "launch_test: PASS"
