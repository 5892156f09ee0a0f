#!/usr/bin/env bash
# Compiles and links dma (the proxy, agent and comm code: dma_orchestrate, dma_agent, proxy_check
# and comm_probe) against PyPI's CUDA LibTorch 2.x and its NCCL, pinned in
# tools/cuda-requirements.txt. Nothing of it runs here: the point is that a break of the
# LibTorch 2.x branches (fused attention, autocast by device, NCCL's headers) fails the test
# suite instead of a first cluster build.
#
#   tools/cuda-build.sh [BUILD_DIR]      (default build-cuda; the test suite runs it as gpu.cuda_build)
#
# Steps and where they keep their results:
#   1. wheels  ~/.cache/dma/wheels (DMA_CACHE_DIR moves it), downloaded once per machine (755 MB)
#   2. .venv-cuda: a venv holding those wheels, installed --no-deps (1.5 GB; rebuilt when the pins
#      change); only its headers, CMake files and libraries are used
#   3. BUILD_DIR: dma configured with CMAKE_PREFIX_PATH=torch.utils.cmake_prefix_path,
#      CMAKE_LIBRARY_PATH=torch/lib and NCCL_HOME=nvidia/nccl, compiled at -O0 (the check is
#      that it compiles and links; code generation is the CPU build's business)
#   4. checks on the result: the executables need the CUDA LibTorch, comm_probe the wheel's libnccl.so.2,
#      and the objects call the LibTorch 2.x entry points (scaled_dot_product_attention,
#      autocast by device type, the GPU's compute capability)
# The CUDA toolkit's libraries are on this machine but cuSPARSELt, NVSHMEM and cuFile (which
# libtorch_cuda.so needs at run time) come with further wheels that are not installed: the link
# allows undefined symbols inside shared libraries, never in dma's own code.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
requirements=tools/cuda-requirements.txt
wheels=${DMA_CACHE_DIR:-$HOME/.cache/dma}/wheels
venv=.venv-cuda
stamp=$venv/dma-requirements.txt
say() { echo "cuda-build.sh: $*"; }
fail() { echo "cuda-build.sh: $*" >&2; exit 1; }
seconds() { echo $(( $(date +%s) - $1 )); }

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  fail "no CUDA toolkit (nvcc) on this machine: install CUDA 12.8 or later, or put its bin/ on PATH"
export PATH=$PATH:/usr/local/cuda/bin

# 1 + 2. The wheels and the environment.
t=$(date +%s)
if ! { [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; }; then
  pip=(/usr/bin/python3 -m pip --disable-pip-version-check --quiet)
  mkdir -p "$wheels"
  if ! "${pip[@]}" download --no-deps --only-binary=:all: --no-index --find-links "$wheels" \
    -d "$wheels" -r "$requirements" >/dev/null 2>&1; then
    say "downloading $(grep -v '^#' "$requirements" | xargs) into $wheels"
    "${pip[@]}" download --no-deps --only-binary=:all: --retries 2 --timeout 60 -d "$wheels" \
      -r "$requirements" || fail "cannot fetch $requirements from PyPI (see above); retry with network access"
  fi
  trap 'rm -rf "$venv"' ERR
  rm -rf "$venv"
  /usr/bin/python3 -m venv --without-pip "$venv"
  "${pip[@]}" --python "$venv/bin/python" install --no-deps --no-index --find-links "$wheels" -r "$requirements"
  cp "$requirements" "$stamp"
  trap - ERR
  say "$venv ready in $(seconds "$t") s"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_cmake=$site/torch/share/cmake
[ -f "$torch_cmake/Torch/TorchConfig.cmake" ] || fail "$venv has no LibTorch CMake files: remove $venv and rerun"
torch_version=$(sed -n 's/^__version__ = .\([^"'\'']*\).*/\1/p' "$site/torch/version.py")
say "torch $torch_version ($site/torch), NCCL $(ls "$site"/nvidia/nccl/lib/libnccl.so.* | head -1)"

# 3. Configure and build.
t=$(date +%s)
mkdir -p "$build"
NCCL_HOME=$site/nvidia/nccl TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} \
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O0 -DNDEBUG" \
  -DCMAKE_PREFIX_PATH="$torch_cmake" -DCMAKE_LIBRARY_PATH="$site/torch/lib" -DDMA_WITH_NCCL=ON \
  -DDMA_BUILD_TESTS=ON -DDMA_BUILD_BENCH=OFF -DCMAKE_EXE_LINKER_FLAGS="-Wl,--allow-shlib-undefined" \
  >"$build/configure.log" 2>&1 || { tail -n 20 "$build/configure.log" >&2; fail "configure failed (log: $build/configure.log)"; }
targets=(dma_orchestrate dma_agent_cli proxy_check comm_probe)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" ||
  fail "dma does not build against torch $torch_version (errors above)"
say "configured and built ${targets[*]} in $(seconds "$t") s"

# 4. What was built is the CUDA path.
# (grep reads whole outputs: with pipefail, grep -q in a pipe fails when the writer gets SIGPIPE)
needs() { grep -qF "[$2" <<<"$(readelf -d "$build/bin/$1" | grep NEEDED)" || fail "$1 does not link $2"; }
for exe in dma_orchestrate gpu/proxy_check; do needs "$exe" libtorch_cuda.so; done
needs comm_probe libnccl.so.2  # the collectives comm_probe checks on a cluster; the step path needs no NCCL
nccl=$(sed -n 's/^NCCL_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt")
[[ $nccl == "$site"/nvidia/nccl/* ]] || fail "the comm code links $nccl, not the NCCL of torch's environment"
calls() {
  grep -qF "$2" <<<"$(nm -C --undefined-only "$build/src/$1.o")" || fail "$1.o does not call $2 (its LibTorch 2.x branch was not compiled)"
}
calls proxy/CMakeFiles/dma_proxy.dir/attention.cpp scaled_dot_product_attention
calls proxy/CMakeFiles/dma_proxy.dir/device.cpp "at::autocast::set_autocast_dtype(c10::DeviceType"
calls proxy/CMakeFiles/dma_proxy.dir/device.cpp "at::cuda::getDeviceProperties"
calls comm/CMakeFiles/dma_comm.dir/collective_nccl.cpp ncclCommInitRankConfig
say "PASS: proxy, agent and comm compile and link against torch $torch_version with CUDA and its NCCL"
