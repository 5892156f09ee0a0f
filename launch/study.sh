#!/usr/bin/env bash
# The comparison that shows whether the agent works, as a method and not as one checkpoint:
# PIPELINES independent pipelines of the shipped recipe (each its own run seed:
# its own base model, collection, agent and tuned baselines), each evaluated on the same
# block of evaluation seed ids, which training, tuning and model selection never touch. Ends
# with one table: every pipeline's agent − policy paired by seed, and the lead averaged over
# the pipelines with a 95 % interval over them.
# Usage: launch/study.sh [extra dma_orchestrate options]   (72 min measured on 2 cores)
# Env: RUN_DIR (runs/study), PIPELINES (3), EVAL_SEEDS (16), EVAL_SEED_OFFSET (16000016),
#      POLICIES (the agent against the tuned baselines, fixed:0.5 and RegMix).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
RUN_DIR=${RUN_DIR:-runs/study}
PIPELINES=${PIPELINES:-3}
POLICIES=${POLICIES:-agent,tuned-fixed,tuned-schedule,fixed:0.5,regmix}
stores=()
for k in $(seq 1 "$PIPELINES"); do
  dir="$RUN_DIR/pipeline-$k"
  echo "study: pipeline $k of $PIPELINES in $dir ($(( $(date +%s) - start )) s so far)"
  # demo.sh's build and pipeline, at the study's sizes: 96 trajectories, the recipe's agent
  # training and tuning budget, and the study's evaluation seeds.
  RUN_DIR="$dir" launch/demo.sh --run.seed="$k" --collect.trajectories=96 --agent.bc_steps=300 \
    --agent.cql_steps=1200 --tune.rollouts=48 --tune.seeds=4 \
    --evaluate.policies="$POLICIES" --evaluate.seeds="${EVAL_SEEDS:-16}" \
    --evaluate.seed_offset="${EVAL_SEED_OFFSET:-16000016}" "$@"
  stores+=("$dir/eval.h5")
done
build/bin/dma_replay compare "${stores[@]}" --format markdown | tee "$RUN_DIR/study.md"
echo "study: $RUN_DIR/study.md; took $(( $(date +%s) - start )) s"
