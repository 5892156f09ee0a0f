#!/usr/bin/env bash
# Transfer without retraining: a trained agent steers a setting it never saw (a larger
# target model, a domain space with other categories or another target field). Prepares the
# space (unless DIR/data.space exists), pretrains that setting's base model, collects a few
# random trajectories for RegMix (launch/space.sh; the agent does not train on them), then
# evaluates on equal footing: the agent gets no rollouts in the new space, so it is compared
# with the constant and the schedule tuned on its training setting and used unchanged, and with
# RegMix fitted in the new space; the constant tuned *in* the new space (on its selection
# seeds) is the oracle reference.
#
# Usage: AGENT=runs/study/pipeline-1/agent.pt RUN_DIR=runs/transfer-large launch/transfer.sh \
#          [dma_orchestrate options for the new setting, e.g. --proxy.n_layers=3 --proxy.d_model=96]
# Env: TRANSFERRED (the tuned baselines carried over, default: read from the agent's run's
#      tuning.md, e.g. "fixed:0.55,schedule:0.7>0.4"),
#      PREPARE_ARGS (extra `dma_prepare demo` options, e.g. "--categories art,linux,wisdom"),
#      SEEDS (evaluation seeds, default 16), EVAL_SEED_OFFSET (required: a block not yet looked
#      at), REGMIX_TRAJECTORIES (default 32), RANKS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
: "${AGENT:?set AGENT to a trained agent checkpoint, e.g. AGENT=runs/study/agent.pt}"
: "${RUN_DIR:?set RUN_DIR to a new run directory, e.g. RUN_DIR=runs/transfer-large}"
[ -f "$AGENT" ] || { echo "transfer: agent checkpoint '$AGENT' not found: run launch/study.sh or launch/demo.sh first" >&2; exit 2; }
: "${EVAL_SEED_OFFSET:?set EVAL_SEED_OFFSET to a block of evaluation seeds not yet looked at (docs/study.md)}"
RANKS=${RANKS:-3}
SEEDS=${SEEDS:-16}
tuning="$(dirname "$AGENT")/tuning.md"
if [ -z "${TRANSFERRED:-}" ]; then
  [ -f "$tuning" ] || { echo "transfer: no $tuning to read the tuned baselines from: set TRANSFERRED" >&2; exit 2; }
  TRANSFERRED=$(sed -n 's/^## tuned-[a-z]*: \([^ ]*\) .*/\1/p' "$tuning" | paste -sd, -)
fi
# Carried over as the plain mixtures they stand for (tuned-fixed:0.55 is fixed:0.55), so that the
# store tells them from the constant tuned in this space and a suite matches them across settings.
TRANSFERRED=$(echo "$TRANSFERRED" | sed 's/tuned-fixed:/fixed:/g; s/tuned-schedule:/schedule:/g')
policies="agent,$TRANSFERRED,regmix,tuned-fixed,uniform,fixed:0.5"

COLLECT_POLICIES=random launch/space.sh "$RUN_DIR" "${REGMIX_TRAJECTORIES:-32}" "$@"
cp "$AGENT" "$RUN_DIR/agent.pt"  # the same weights: nothing is trained in this setting
launch/mpirun.sh "$RANKS" --config configs/demo.ini --run.dir="$RUN_DIR" --data.space="$RUN_DIR/data.space" \
  --mode evaluate --resume --evaluate.policies="$policies" \
  --evaluate.seeds="$SEEDS" --evaluate.seed_offset="$EVAL_SEED_OFFSET" "$@"
build/bin/dma_replay plot "$RUN_DIR/eval.h5" --out "$RUN_DIR/plots"
echo "transfer: table $RUN_DIR/eval.md; plots $RUN_DIR/plots/*.svg; took $(( $(date +%s) - start )) s"
