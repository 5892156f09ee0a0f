#!/usr/bin/env bash
# Runs one command against the local one-node Slurm cluster: starts it when it is not running
# (tools/slurm/cluster.sh start, installing Slurm if needed), sets SLURM_CONF, runs the command,
# and stops the cluster again only if this script started it. Exits with the command's status.
#   tools/slurm/with-cluster.sh srun --mpi=pmix -n 3 build/bin/dma_orchestrate --config F --mode collect
# ctest cases that use it should share RESOURCE_LOCK slurm, so that one does not stop the
# cluster under another.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster=$here/cluster.sh
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

started=0
if ! "$cluster" status >/dev/null 2>&1; then
  "$cluster" start || exit 1
  started=1
fi
eval "$("$cluster" env)"
"$@"
rc=$?
[ $started -eq 1 ] && "$cluster" stop
exit $rc
