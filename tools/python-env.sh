#!/usr/bin/env bash
# Creates .venv: Debian's /usr/bin/python3 with its torch, numpy and h5py, plus the offline-RL
# libraries that read dma_replay's exports (minari, d3rlpy), pinned in
# tools/python-requirements.txt. Idempotent: returns at once when .venv already holds exactly
# those pins. Wheels are kept in .pip-wheels/, so a rebuilt .venv needs no network.
#
# Measured on the 2-core build machine (`time tools/python-env.sh`, Dec 2026):
#   download   5.4 MB from PyPI: 26 wheels and gym's 0.7 MB source, built here
#   cold       12.5 s and 54 s wall in two runs, 8 s CPU  (no .venv, no .pip-wheels; PyPI latency)
#   warm       12.0 s wall, 5.4 s CPU  (.venv removed, .pip-wheels kept: no network)
#   up to date 0.01 s
#   .venv      32 MB (no pip inside: Debian's pip installs into it with --python)
# Torch (Debian's python3-torch 1.13), numpy, h5py and PIL come from Debian: nothing of
# PyTorch's size is downloaded. A slow PyPI mirror dominates the cold time.
# Usage: tools/python-env.sh            (DMA_WHEEL_CACHE=DIR moves the wheel cache)
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=tools/python-requirements.txt
venv=.venv
wheels=${DMA_WHEEL_CACHE:-.pip-wheels}
stamp=$venv/dma-requirements.txt

if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
if ! /usr/bin/python3 -c "import torch, numpy, h5py, PIL, pygments, setuptools, wheel, ensurepip, pip" 2>/dev/null; then
  echo "python-env.sh: Debian's Python packages are missing: run tools/install-deps.sh first" >&2
  exit 1
fi

# A half-made environment is removed, so its users report it missing rather than broken.
trap 'rm -rf "$venv"' ERR
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages --without-pip "$venv"
pip=(/usr/bin/python3 -m pip --python "$venv/bin/python" --disable-pip-version-check --quiet)
install=("${pip[@]}" install --no-deps --no-index --find-links "$wheels" -r "$requirements")
mkdir -p "$wheels"
if ! "${install[@]}" 2>/dev/null; then
  # Fetch what the cache lacks; gym is only published as source and is built here with
  # Debian's setuptools instead of a downloaded build environment.
  if ! "${pip[@]}" wheel --no-deps --no-build-isolation --retries 2 --timeout 30 --no-cache-dir \
    --find-links "$wheels" --wheel-dir "$wheels" -r "$requirements"; then
    echo "python-env.sh: cannot fetch $requirements from PyPI (see above); retry with network access" >&2
    false
  fi
  "${install[@]}"
fi
if ! err=$("$venv/bin/python" -c "import minari, d3rlpy, PIL" 2>&1); then
  echo "$err" >&2
  echo "python-env.sh: minari or d3rlpy does not import in $venv (see above)" >&2
  false
fi
cp "$requirements" "$stamp"
echo "python-env.sh: $venv ready (minari, d3rlpy on Debian's torch)"
