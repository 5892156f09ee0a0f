#!/usr/bin/env bash
# Prepares a domain space of the embedded demo kind in DIR, pre-trains its base model and
# collects random trajectories into DIR/store.h5: a setting the agent trains on besides the
# default one (launch/study.sh), or one it meets without retraining (launch/transfer.sh,
# where the trajectories serve RegMix). A finished stage is kept, so a rerun continues.
#
# Usage: launch/space.sh DIR TRAJECTORIES [dma_orchestrate options for this setting]
# Env:   PREPARE_ARGS (extra `dma_prepare demo` options, e.g. "--categories art,linux,wisdom"),
#        COLLECT_POLICIES (default: the config's collect.policies), RANKS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 DIR TRAJECTORIES [dma_orchestrate options]" >&2
  exit 2
fi
dir=$1 trajectories=$2
shift 2
mkdir -p "$dir"
if [ ! -f "$dir/data.space" ]; then
  # shellcheck disable=SC2086  # PREPARE_ARGS is a list of options
  seed=(--seed 1)  # the default space's draw unless PREPARE_ARGS names another
  [[ " ${PREPARE_ARGS:-} " == *" --seed "* ]] && seed=()
  build/bin/dma_prepare demo --out "$dir/data.space" "${seed[@]}" ${PREPARE_ARGS:-}
fi
collect_policies=()
[ -n "${COLLECT_POLICIES:-}" ] && collect_policies=(--collect.policies="$COLLECT_POLICIES")
orchestrate() {
  launch/mpirun.sh "${RANKS:-3}" --config configs/demo.ini --run.dir="$dir" --data.space="$dir/data.space" "$@"
}
orchestrate --mode pretrain --resume "$@"
orchestrate --mode collect --resume --collect.trajectories="$trajectories" "${collect_policies[@]}" "$@"
