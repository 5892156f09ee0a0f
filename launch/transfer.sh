#!/usr/bin/env bash
# Transfer without retraining: a trained agent steers a setting it never saw: a
# larger target model, or a domain space with other categories and another number of domains.
# Prepares the space, pretrains that setting's base model, collects a few random
# trajectories for the RegMix baseline (launch/space.sh; the agent does not train on them), then evaluates
# the agent against the demo's baselines and the oracle grid of fixed target shares.
#
# Usage: AGENT=runs/study/agent.pt RUN_DIR=runs/transfer-large launch/transfer.sh \
#          [dma_orchestrate options for the new setting, e.g. --proxy.n_layers=3 --proxy.d_model=96]
# Env: PREPARE_ARGS (extra `dma_prepare demo` options, e.g. "--categories art,linux,wisdom"),
#      SEEDS (evaluation seeds, default 8), EVAL_SEED_OFFSET (default 16000000, as study.sh),
#      REGMIX_TRAJECTORIES (default 32), RANKS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
: "${AGENT:?set AGENT to a trained agent checkpoint, e.g. AGENT=runs/study/agent.pt}"
: "${RUN_DIR:?set RUN_DIR to a new run directory, e.g. RUN_DIR=runs/transfer-large}"
[ -f "$AGENT" ] || { echo "transfer: agent checkpoint '$AGENT' not found: run launch/study.sh or launch/demo.sh first" >&2; exit 2; }
RANKS=${RANKS:-3}
SEEDS=${SEEDS:-8}
oracle=fixed:0.1,fixed:0.2,fixed:0.3,fixed:0.4,fixed:0.5,fixed:0.6,fixed:0.7,fixed:0.8,fixed:0.9
policies=agent,uniform,natural,target-only,fixed:0.3,fixed:0.5,fixed:0.7,online-eg,regmix,random

COLLECT_POLICIES=random launch/space.sh "$RUN_DIR" "${REGMIX_TRAJECTORIES:-32}" "$@"
cp "$AGENT" "$RUN_DIR/agent.pt"  # the same weights: nothing is trained in this setting
launch/mpirun.sh "$RANKS" --config configs/demo.ini --run.dir="$RUN_DIR" --data.space="$RUN_DIR/data.space" \
  --mode evaluate --resume --evaluate.policies="$policies" --evaluate.oracle="$oracle" \
  --evaluate.seeds="$SEEDS" --evaluate.seed_offset="${EVAL_SEED_OFFSET:-16000000}" "$@"
build/bin/dma_replay plot "$RUN_DIR/eval.h5" --out "$RUN_DIR/plots"
echo "transfer: table $RUN_DIR/eval.md; plots $RUN_DIR/plots/*.svg; took $(( $(date +%s) - start )) s"
