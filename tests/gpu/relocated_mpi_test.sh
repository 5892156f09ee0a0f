#!/usr/bin/env bash
# tools/gpu/pack-deps.sh's tree runs from another folder on a machine without MPI: with the
# system's Open MPI and PMIx hidden (a private mount namespace), the tree's mpirun starts 2
# ranks of comm_probe, and every Open MPI library and plugin they load comes from the tree.
# Usage: relocated_mpi_test.sh COMM_PROBE   (exit 77 = skipped: needs root for the namespace)
set -euo pipefail
probe=$1
pack=$(cd "$(dirname "$0")/../../tools/gpu" && pwd)/pack-deps.sh
work=$(mktemp -d /tmp/dma_mpi_pack_XXXXXX)
trap 'rm -rf "$work"' EXIT
"$pack" "$work/built" >/dev/null
mv "$work/built" "$work/moved"  # relocated after packing, as a carried copy is
# shellcheck source=/dev/null
. "$work/moved/env.sh"
[ "$(command -v mpirun)" = "$work/moved/usr/bin/mpirun" ] || { echo "relocated_mpi_test: FAIL: mpirun is $(command -v mpirun)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
  echo "relocated_mpi_test: SKIP: hiding the system's MPI needs root and unshare"; exit 77
fi
mkdir "$work/empty"
hide='for d in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi /etc/openmpi; do
        [ -d "$d" ] && mount --bind "$1" "$d"; done; shift; exec "$@"'
# The loader's log goes to one file per process: written to one pipe, the processes' lines interleave.
out=$(LD_DEBUG=files LD_DEBUG_OUTPUT="$work/ld" unshare -m bash -c "$hide" _ "$work/empty" \
  mpirun -n 2 --oversubscribe "$probe" --backend mpi --rounds 2 2>&1) ||
  { echo "$out"; echo "relocated_mpi_test: FAIL: mpirun of the moved tree failed"; exit 1; }
grep -q 'comm_probe: ok backend=mpi ranks=2 ' <<<"$out" || { echo "$out"; echo "relocated_mpi_test: FAIL: no ok line"; exit 1; }
loaded=$(cat "$work"/ld.* | grep -o 'calling init: [^ ]*\(libmpi\|libopen-\|libpmix\|mca_\)[^ ]*' | sort -u)
outside=$(grep -v "calling init: $work/moved/" <<<"$loaded" || true)
[ -n "$loaded" ] || { echo "relocated_mpi_test: FAIL: LD_DEBUG showed no MPI library loads"; exit 1; }
[ -z "$outside" ] || { echo "relocated_mpi_test: FAIL: loaded from outside the tree:"; echo "$outside"; exit 1; }
echo "relocated_mpi_test: $(wc -l <<<"$loaded") MPI libraries and plugins, all from the moved tree ($(du -sh "$work/moved" | cut -f1))"
echo "relocated_mpi_test: PASS"
