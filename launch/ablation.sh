#!/usr/bin/env bash
# Ablations of the recipe on the pipelines of launch/study.sh: each pipeline's agent is
# retrained on the pipeline's own store with one part of the method switched off (the keys of
# docs/options.md), and every variant is evaluated beside the pipeline's agent on the study's
# evaluation seeds. Ends with one table: each variant − the agent, paired by seed within a
# pipeline and averaged over the pipelines with a 95 % interval over them.
# Usage: launch/ablation.sh [extra dma_orchestrate options]   (50 min measured on 2 cores)
# Env: RUN_DIR (runs/study, where launch/study.sh left its pipelines), PIPELINES (3),
#      EVAL_SEEDS (16), EVAL_SEED_OFFSET (16000016), JOBS (2: variants trained at once).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
RUN_DIR=${RUN_DIR:-runs/study}
PIPELINES=${PIPELINES:-3}
JOBS=${JOBS:-2}
# Each variant: its name, then its training steps (the study's 300 + 1200 unless switched
# off) and the options that switch its part off.
variants=(
  "time-only --agent.bc_steps=300 --agent.cql_steps=1200 --agent.actor_features=is_target,progress --agent.source_gain=0"
  "no-gain --agent.bc_steps=300 --agent.cql_steps=1200 --agent.source_gain=0"
  "bc-only --agent.bc_steps=300 --agent.cql_steps=0"
  "cql-only --agent.bc_steps=0 --agent.cql_steps=1200"
)
common=(--config configs/demo.ini --evaluate.seeds="${EVAL_SEEDS:-16}" --evaluate.seed_offset="${EVAL_SEED_OFFSET:-16000016}")
# The binaries this run started with, so that a rebuild while it runs cannot mix versions.
bin="$RUN_DIR/ablation-bin"
mkdir -p "$bin"
cp build/bin/dma_orchestrate build/bin/dma_replay "$bin/"
export DMA_BIN="$bin"
stores=()
for k in $(seq 1 "$PIPELINES"); do
  dir="$RUN_DIR/pipeline-$k"
  abl="$dir/ablation"
  for f in store.h5 base.pt agent.pt data.space; do
    [ -f "$dir/$f" ] || { echo "ablation.sh: $dir/$f is missing: run launch/study.sh first (RUN_DIR=$RUN_DIR)" >&2; exit 1; }
  done
  mkdir -p "$abl"
  ln -sf ../base.pt "$abl/base.pt"
  ln -sf ../agent.pt "$abl/agent.pt"
  policies=agent
  running=0
  for v in "${variants[@]}"; do
    read -r name opts <<< "$v"
    policies+=",agent:$abl/$name.pt"
    [ -f "$abl/$name.pt" ] && continue
    echo "ablation: pipeline $k: training $name ($(( $(date +%s) - start )) s so far)"
    (
      launch/mpirun.sh 1 "${common[@]}" --mode train-agent --run.seed="$k" --run.dir="$abl/$name" \
        --data.space="$dir/data.space" --collect.store="$dir/store.h5" $opts "$@" > "$abl/$name.log" 2>&1
      mv "$abl/$name/agent.pt" "$abl/$name.pt"
    ) &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  done
  wait || true
  for v in "${variants[@]}"; do
    read -r name _ <<< "$v"
    [ -f "$abl/$name.pt" ] || { echo "ablation.sh: training $name failed: see $abl/$name.log" >&2; exit 1; }
  done
  echo "ablation: pipeline $k: evaluating ($(( $(date +%s) - start )) s so far)"
  launch/mpirun.sh 3 "${common[@]}" --mode evaluate --run.seed="$k" --run.dir="$abl" \
    --data.space="$dir/data.space" --evaluate.policies="$policies" "$@"
  stores+=("$abl/eval.h5")
done
"$bin/dma_replay" compare "${stores[@]}" --against agent --format markdown | tee "$RUN_DIR/ablation.md"
echo "ablation: $RUN_DIR/ablation.md; took $(( $(date +%s) - start )) s"
