#!/usr/bin/env bash
# One prepared device check of dma's GPU path, in one call of a few minutes on a machine with
# CUDA, nvcc, Python's torch 2.x (with its NCCL), CMake and ninja, but no MPI and no network.
#
#   tools/gpu/pack-deps.sh build/gpu-deps       # here, once: Open MPI + fmt headers (~7 MB packed)
#   tools/gpu/check.sh [--device cuda|cpu] [--deps DIR] [--build DIR] [--preset 50m|tiny] [--jobs N]
#                                                # there, with build/gpu-deps carried along
#
# It builds the proxy's compute, the comm code and their two probes against the torch of
# `python3` (torch.utils.cmake_prefix_path) and the NCCL of the same environment, then prints:
#  - that one libnccl.so.2 serves both torch and dma's comm code;
#  - CPU-vs-device parity of the proxy's loss and gradients (float32, bf16), step time and MFU
#    of a ~50M-parameter proxy in bf16 against a measured bf16 matmul, evaluation throughput
#    before/after and per re-weighting step, and the peak GPU memory (nvidia-smi);
#  - comm.backend=auto on 2 ranks that share the GPU (must choose MPI), the NCCL collectives
#    across 2 ranks on one GPU posing as 2 hosts (NCCL_HOSTID), and the watchdog turning a
#    rank that never joins into an error.
# --device cpu runs the same steps where there is no GPU (Debian's LibTorch, CUDA headers for
# the build): parity against itself, the tiny preset, and NCCL refused with its reason.
# Ends with "check.sh: N passed, M failed"; exit 1 when anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
device=cuda deps=$root/build/gpu-deps build=$root/build/gpu-check preset="" jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --deps) deps=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "check.sh: unknown option $1: use --device cuda|cpu, --deps DIR, --build DIR, --preset 50m|tiny, --jobs N" >&2; exit 2 ;;
  esac
done
[[ $device == cuda || $device == cpu ]] || { echo "check.sh: --device $device: use cuda or cpu" >&2; exit 2; }
preset=${preset:-$([ "$device" = cuda ] && echo 50m || echo tiny)}
passed=0 failed=0
say() { echo "check.sh: $*"; }
verdict() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); say "PASS $2"; else failed=$((failed + 1)); say "FAIL $2"; fi; }
expect=$root/tests/comm/expect.sh

# 1. Dependencies: the carried MPI and fmt, torch and NCCL of python3 (Debian's on --device cpu).
if command -v mpirun >/dev/null && [ ! -f "$deps/env.sh" ]; then
  say "using this machine's MPI ($(command -v mpirun))"
else
  [ -f "$deps/env.sh" ] || { say "no MPI here and no $deps/env.sh: run tools/gpu/pack-deps.sh $deps where Debian's Open MPI is installed, and carry it"; exit 1; }
  # shellcheck source=/dev/null
  . "$deps/env.sh"
fi
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release ${MPI_HOME:+-DMPI_HOME=$MPI_HOME} ${DMA_FMT_INCLUDE:+-DDMA_FMT_INCLUDE=$DMA_FMT_INCLUDE})
if [ "$device" = cuda ]; then
  read -r torch_prefix torch_version < <(python3 -c 'import torch; print(torch.utils.cmake_prefix_path, torch.__version__)') ||
    { say "python3 cannot import torch: install the CUDA torch 2.x wheel"; exit 1; }
  site=$(dirname "$(dirname "$(dirname "$torch_prefix")")")   # .../site-packages/torch/share/cmake
  nccl_home=$site/nvidia/nccl
  [ -f "$nccl_home/include/nccl.h" ] || nccl_home=""
  say "torch $torch_version at $site/torch; NCCL ${nccl_home:-not in the Python environment}"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$torch_prefix" -DCMAKE_LIBRARY_PATH="$site/torch/lib")
  [ -n "$nccl_home" ] && export NCCL_HOME=$nccl_home
  # The GPU's compute capability: LibTorch's CMake files then skip their own detection probe.
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)}
  export TORCH_CUDA_ARCH_LIST
fi

# 2. Build.
start=$(date +%s)
cmake -S "$root/tools/gpu" -B "$build" "${cmake_args[@]}" >"$build.configure.log" 2>&1 &&
  cmake --build "$build" -j "$jobs" >"$build.build.log" 2>&1
rc=$?
verdict $rc "build of proxy_check and comm_probe in $(( $(date +%s) - start )) s (logs: $build.*.log)"
[ $rc -eq 0 ] || { tail -n 30 "$build.configure.log" "$build.build.log"; say "$passed passed, $failed failed"; exit 1; }
bin=$build/bin

# 3. One NCCL library for torch and the comm code.
ncclA=$(ldd "$bin/comm_probe" | awk '/libnccl/ { print $3 }')
ncclB=$(ldd "$bin/proxy_check" | awk '/libnccl/ { print $3 }')
say "libnccl of comm_probe: ${ncclA:-none}; of proxy_check (through torch): ${ncclB:-none}"
[ -z "$ncclB" ] || [ "$ncclA" = "$ncclB" ]; verdict $? "one libnccl.so.2"

# 4. The proxy's compute, with the GPU's peak memory sampled alongside.
mem_log=$build/memory.log
: >"$mem_log"
if [ "$device" = cuda ] && command -v nvidia-smi >/dev/null; then
  ( while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >>"$mem_log" 2>/dev/null; sleep 0.2; done ) &
  sampler=$!
fi
"$bin/proxy_check" --device "$device" --preset "$preset"
verdict $? "proxy_check --device $device --preset $preset (parity within docs/gpu.md's tolerances)"
if [ -n "${sampler:-}" ]; then
  kill "$sampler" 2>/dev/null
  say "peak GPU memory used while proxy_check ran: $(sort -n "$mem_log" | tail -1) MiB"
fi

# 5. Collectives: 2 ranks on one GPU.
mpirun_n2=(mpirun -n 2 --oversubscribe)
posing=(bash -c 'NCCL_HOSTID=dma-check-$OMPI_COMM_WORLD_RANK exec "$@"' _)
if [ "$device" = cuda ]; then
  "$expect" --exit zero --once 'comm\.backend=auto chose MPI: NCCL needs a GPU per rank: ranks 0 and 1 on host .* share GPU' \
    --match 'comm_probe: ok backend=mpi ranks=2' -- "${mpirun_n2[@]}" "$bin/comm_probe" --backend auto --timeout 60
  verdict $? "auto on 2 ranks sharing the GPU chose MPI"
  "$expect" --exit zero --match 'comm_probe: ok backend=nccl ranks=2' --max-seconds 120 -- \
    "${mpirun_n2[@]}" "${posing[@]}" "$bin/comm_probe" --backend nccl --rounds 8 --count 1000 --timeout 60
  verdict $? "NCCL collectives across 2 ranks on one GPU (NCCL_HOSTID)"
  "$expect" --exit nonzero --max-seconds 90 --match 'rank 0: .*did not complete within 5 s' -- \
    "${mpirun_n2[@]}" "${posing[@]}" "$bin/comm_probe" --backend nccl --timeout 5 --skip-rank 1
  verdict $? "NCCL watchdog: a rank that never joins is an error"
else
  "$expect" --exit zero --once 'comm\.backend=auto chose MPI: NCCL needs a CUDA device' \
    --match 'comm_probe: ok backend=mpi ranks=2' -- "${mpirun_n2[@]}" "$bin/comm_probe" --backend auto --timeout 60
  verdict $? "auto without a GPU chose MPI"
  "$expect" --exit nonzero --max-seconds 60 --match 'comm\.backend=nccl needs a CUDA device.*use comm\.backend=mpi or auto' -- \
    "${mpirun_n2[@]}" "${posing[@]}" "$bin/comm_probe" --backend nccl --timeout 30
  verdict $? "nccl without a GPU is a one-line error"
fi
say "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
