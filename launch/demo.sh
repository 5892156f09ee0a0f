#!/usr/bin/env bash
# README command 1: installs what is missing, builds, prepares the embedded default domain
# space and runs the whole job on it (pretrain -> collect -> train-agent -> evaluate) with
# mpirun: 1 learner + 2 workers. Ends with the comparison table and SVG plots.
# Usage: launch/demo.sh [extra dma_orchestrate options, e.g. --evaluate.seeds=8]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
RUN_DIR=${RUN_DIR:-runs/demo}
RANKS=${RANKS:-3}

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" --target dma_prepare dma_orchestrate dma_replay

mkdir -p "$RUN_DIR"
if [ ! -f "$RUN_DIR/data.space" ]; then
  build/bin/dma_prepare demo --out "$RUN_DIR/data.space" --seed 1
fi
launch/mpirun.sh "$RANKS" --config configs/demo.ini --mode pipeline \
  --run.dir="$RUN_DIR" --data.space="$RUN_DIR/data.space" "$@"

build/bin/dma_replay plot "$RUN_DIR/eval.h5" --out "$RUN_DIR/plots"
echo
echo "demo: comparison table: $RUN_DIR/eval.md; plots: $RUN_DIR/plots/*.svg"
echo "demo: took $(( $(date +%s) - start )) s"
