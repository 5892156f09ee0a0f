#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test with ctest.
# Usage: tools/test.sh [ctest arguments, e.g. -R store]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

tools/install-deps.sh
BUILD_DIR=${DMA_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"
built=$(date +%s)
echo "test.sh: build took $((built - start)) s"

# The offline-RL libraries the export tests load (.venv); without PyPI those tests fail and say so.
tools/python-env.sh || echo "test.sh: no Python environment for the export consumers: replay.export_consumers will fail"

# shellcheck source=launch/blas-env.sh
. launch/blas-env.sh  # tests train real models: OpenBLAS on its fast kernels
cd "$BUILD_DIR"
status=0
ctest --output-on-failure -j "$(nproc)" "$@" || status=$?
echo "test.sh: tests took $(( $(date +%s) - built )) s (total $(( $(date +%s) - start )) s)"
exit $status
