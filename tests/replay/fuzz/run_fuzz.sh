#!/usr/bin/env bash
# Builds the store-reader fuzz target with clang (libFuzzer + ASan + UBSan) and runs it for a
# bounded time from a corpus of small stores written by make_store.
# Usage: run_fuzz.sh SECONDS WORK_DIR MAKE_STORE HDF5_INCLUDE_DIR HDF5_LIBS...
# Exit 0: no crash; 77: skipped (no clang with -fsanitize=fuzzer here); else: a crash (the
# reproducer is kept under WORK_DIR/artifacts).
set -euo pipefail
seconds=$1 work=$2 make_store=$3 hdf5_inc=$4
shift 4
src="$(cd "$(dirname "$0")/../../.." && pwd)"
cxx=${DMA_FUZZ_CXX:-clang++}

mkdir -p "$work"
if ! command -v "$cxx" >/dev/null ||
   ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
     "$cxx" -x c++ -fsanitize=fuzzer -o "$work/probe" - 2>/dev/null; then
  echo "run_fuzz: $cxx cannot build -fsanitize=fuzzer targets here (install clang and libclang-rt-dev): skipped"
  exit 77
fi

bin="$work/store_reader_fuzz"
sources=("$src/tests/replay/fuzz/store_reader_fuzz.cpp" "$src/src/core/h5.cpp"
         "$src/src/store/checksum.cpp" "$src/src/store/io.cpp" "$src/src/store/reader.cpp"
         "$src/src/store/schema.cpp" "$src/src/store/writer.cpp")
newest=$(ls -t "${sources[@]}" "$src"/include/dma/*.hpp "$src"/src/store/*.hpp | head -1)
if [ ! -x "$bin" ] || [ "$newest" -nt "$bin" ]; then
  echo "run_fuzz: building $bin"
  "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -DH5_USE_110_API -I"$src/include" -isystem "$hdf5_inc" "${sources[@]}" "$@" -lfmt -o "$bin"
fi

corpus="$work/corpus"
mkdir -p "$corpus" "$work/artifacts"
if [ -z "$(ls -A "$corpus")" ]; then
  "$make_store" "$corpus/tiny.h5" 3 2 1
  "$make_store" "$corpus/small.h5" 9 4 2
  head -c 4096 "$corpus/tiny.h5" > "$corpus/head.h5"
fi
max_len=$(( $(stat -c %s "$corpus/small.h5") + 4096 ))
export DMA_FUZZ_TMP="$work" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
# Corpus entries found earlier are kept in $corpus, so each run continues the last.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$corpus" 2>&1 | tail -n 25
