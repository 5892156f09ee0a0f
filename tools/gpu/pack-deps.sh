#!/usr/bin/env bash
# Copies what tools/gpu/check.sh needs beyond a CUDA image with Python's torch into DIR: this
# machine's Debian Open MPI (programs, headers, libraries, plugins, PMIx), the libraries they
# load that a bare image may lack, and fmt's headers. The tree runs from wherever it is put:
# DIR/env.sh sets OPAL_PREFIX, OPAL_SYSCONFDIR, PATH, LD_LIBRARY_PATH, MPI_HOME and
# DMA_FMT_INCLUDE. (PMIx's plugins and help texts keep their Debian paths: without them it
# warns and carries on.)
#   tools/gpu/pack-deps.sh DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
out=$1
command -v dpkg-query >/dev/null || { echo "pack-deps.sh: needs Debian's dpkg-query" >&2; exit 1; }
packages=(openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libfmt-dev)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "pack-deps.sh: package $p is not installed: run tools/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$out/usr"
# Files of the packages (not docs, man pages, Java or Fortran bindings), links kept as links.
dpkg-query -L "${packages[@]}" | grep -E '^/usr/(bin|lib|share/openmpi|share/pmix|include/fmt/)' |
  grep -Ev '/(man|doc|fortran)/|java|mpifh|usempi|oshmem|openshmem|/p?shmem[a-z-]*\.f?h$|mca_(spml|sshmem|scoll|memheap|atomic)_|/mpif|/include/openmpi/(opal|orte)/|/cmake/fmt/|libfmt|pkgconfig/fmt|\.a$' |
  while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then echo "${f#/}"; fi; done >"$out/.files"
tar -C / -cf - -T "$out/.files" | tar -C "$out" -xf -
rm "$out/.files"
# Debian's MCA defaults (e.g. pml = ^ucx: without them Open MPI picks transports that fail in
# containers); Open MPI reads them from OPAL_SYSCONFDIR.
mkdir -p "$out/etc/openmpi"
cp /etc/openmpi/openmpi-mca-params.conf "$out/etc/openmpi/"
# mpirun, mpicc, ...: Debian names them through alternatives (mpirun -> mpirun.openmpi).
for f in "$out"/usr/bin/*.openmpi; do
  [ -e "${f%.openmpi}" ] || ln -s "$(basename "$f")" "${f%.openmpi}"
done
# Libraries they load from outside the packages, except the C/C++ runtime every image has.
lib=$out/usr/lib/x86_64-linux-gnu
# (ldd fails on scripts among the programs: its status says nothing here.)
needed=$(find "$out/usr" -type f \( -name '*.so*' -o -perm -u+x \) -print0 | { xargs -0 ldd 2>/dev/null || true; } |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' || true)
for f in $needed; do
    case $f in "$out"/*) continue ;; esac
    [ -e "$lib/$(basename "$f")" ] || cp -L "$f" "$lib/"
  done
cat >"$out/env.sh" <<'ENV'
# Sourced: puts the relocated Open MPI of this folder first.
dma_mpi_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/usr
export OPAL_PREFIX=$dma_mpi_root
export OPAL_SYSCONFDIR=$dma_mpi_root/../etc/openmpi
export PATH=$dma_mpi_root/bin:$PATH
export LD_LIBRARY_PATH=$dma_mpi_root/lib/x86_64-linux-gnu/openmpi/lib:$dma_mpi_root/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export MPI_HOME=$dma_mpi_root  # FindMPI looks for bin/mpicc here
export DMA_FMT_INCLUDE=$dma_mpi_root/include
ENV
echo "pack-deps.sh: $(du -sh "$out" | cut -f1) in $out; source $out/env.sh to use it"
