#!/usr/bin/env bash
# Installs the Debian packages dma needs. Idempotent: does nothing when all are present.
# Usage: tools/install-deps.sh [extra-package ...]
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp          # LibTorch; OpenBLAS instead of the reference BLAS
  libopenmpi-dev openmpi-bin                # MPI
  libhdf5-dev hdf5-tools                    # HDF5 C API, h5clear/h5dump
  libboost-program-options-dev libfmt-dev   # options, formatting
  libgtest-dev libbenchmark-dev             # tests, benchmarks
  libcpp-httplib-dev nlohmann-json3-dev     # dma_agent serve: HTTP and JSON (also JSONL corpora)
  libsentencepiece-dev sentencepiece        # dma_prepare --tokenizer; spm_train/spm_encode in tests
  libzstd-dev zstd libssl-dev               # .zst corpora; SHA-256 of tokenizer models
  python3-h5py python3-numpy python3-torch  # Python side (tests, baselines)
  python3-yaml                              # tests read Foundry schedules back
  python3-venv python3-pip python3-setuptools python3-wheel  # tools/python-env.sh makes .venv
  python3-pygments python3-pil              # .venv: used by minari (rich, its HDF5 storage)
  fortunes fortunes-min                     # source-field text of the embedded default
  librsvg2-bin                              # rsvg-convert renders dma_replay's SVGs in tests
  clang libclang-rt-14-dev                  # libFuzzer for the store-reader fuzz target
  clang-format clang-tidy                   # tools/format.sh (a test checks the format), tools/tidy.sh
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: not root and no password-less sudo: run 'sudo apt-get install ${missing[*]}' and retry" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

# LibTorch calls whatever libblas.so.3 points to; make sure it is OpenBLAS, not the reference BLAS.
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
case "$blas" in
  *openblas*) ;;
  *) $SUDO update-alternatives --auto libblas.so.3-x86_64-linux-gnu || true ;;
esac
echo "install-deps: done"
