#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) on the C++ files changed against a base revision, with the
# build's compile commands. Slow (LibTorch headers): run it on what you changed.
# Usage: tools/tidy.sh [BASE]   (default BASE: main; the build directory: build/)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-main}
[ -f build/compile_commands.json ] || cmake -S . -B build -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > /dev/null
mapfile -t files < <(git diff --name-only --diff-filter=ACMR "$base" -- '*.cpp')
[ ${#files[@]} -gt 0 ] || { echo "tidy.sh: no C++ source changed against $base"; exit 0; }
clang-tidy -p build --quiet "${files[@]}"
