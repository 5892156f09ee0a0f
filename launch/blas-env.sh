# Sourced by launch/mpirun.sh, tools/test.sh and slurm/dma.sbatch (not run on its own).
# Debian 12's OpenBLAS (0.3.21) does not recognise some newer x86 CPUs (seen: a Xeon with
# AVX-512 FP16) and falls back to its generic "Prescott" kernels: matrix products 5x slower,
# a proxy step 3-4x slower. When it does that on a CPU with AVX-512 or AVX2, name the kernel
# family the CPU supports. An OPENBLAS_CORETYPE already set is kept; nothing changes where
# OpenBLAS detects the CPU itself or where libblas.so.3 is not OpenBLAS. DMA_CPUINFO (default
# /proc/cpuinfo) lets the test give it another CPU's flags.
dma_blas_coretype() {
  [ -n "${OPENBLAS_CORETYPE:-}" ] && return 0
  local cpuinfo=${DMA_CPUINFO:-/proc/cpuinfo}
  [ -r "$cpuinfo" ] && command -v python3 > /dev/null || return 0
  local detected
  detected=$(OPENBLAS_VERBOSE=2 python3 -c "import ctypes; ctypes.CDLL('libblas.so.3')" 2>&1 | sed -n 's/^Core: //p') || return 0
  [ "$detected" = "Prescott" ] || return 0
  local flags
  flags=" $(grep -m1 '^flags' "$cpuinfo" | cut -d: -f2) " || return 0
  local want=""
  if [[ $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512vl "* && $flags == *" avx512dq "* ]]; then
    want=SkylakeX
  elif [[ $flags == *" avx2 "* && $flags == *" fma "* ]]; then
    want=Haswell
  fi
  [ -n "$want" ] || return 0
  export OPENBLAS_CORETYPE=$want
  echo "blas-env: OpenBLAS took this CPU for a generic one (Prescott kernels); using OPENBLAS_CORETYPE=$want" >&2
}
dma_blas_coretype
