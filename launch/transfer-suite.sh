#!/usr/bin/env bash
# The transfer suite, fixed in advance: four settings the recipe never touched, each run with
# launch/transfer.sh (no retraining; the tuned baselines of the agent's own run carried over
# unchanged, RegMix and the constant tuned in the new space as the references).
#   other-categories  source field of six other fortunes categories
#   base-seed         another draw of the default space and another base model (seed 2)
#   larger-proxy      the default space with a 3-layer, 96-wide proxy
#   code-target       a second target field: code (Python, C headers, shell) found on the machine
# Usage: AGENT=runs/study/pipeline-1/agent.pt launch/transfer-suite.sh
# Env: RUN_DIR (runs/transfer), EVAL_SEED_OFFSET (16000080), SEEDS (16); TRANSFERRED as transfer.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AGENT:?set AGENT to a trained agent checkpoint, e.g. AGENT=runs/study/pipeline-1/agent.pt}"
RUN_DIR=${RUN_DIR:-runs/transfer}
export AGENT EVAL_SEED_OFFSET=${EVAL_SEED_OFFSET:-16000080} SEEDS=${SEEDS:-16}
start=$(date +%s)
# The oracle constant tuned in each new space gets the study's tuning budget.
tune=(--tune.rollouts=48 --tune.seeds=4)

PREPARE_ARGS="--categories art,definitions,linux,people,riddles,wisdom" RUN_DIR="$RUN_DIR/other-categories" \
  launch/transfer.sh "${tune[@]}"
PREPARE_ARGS="--seed 2" RUN_DIR="$RUN_DIR/base-seed" launch/transfer.sh --run.seed=2 "${tune[@]}"
RUN_DIR="$RUN_DIR/larger-proxy" launch/transfer.sh --proxy.n_layers=3 --proxy.d_model=96 "${tune[@]}"

# Code as the target field: each domain one directory of files Debian installs everywhere.
code="$RUN_DIR/code-target"
if [ ! -f "$code/data.space" ]; then
  mkdir -p "$code/text"
  domains=()
  for category in computers education food law literature love medicine politics science sports; do
    mkdir -p "$code/text/$category"
    cp /usr/share/games/fortunes/"$category" "$code/text/$category/$category.txt"
    domains+=(--domain "$category=$code/text/$category:source")
  done
  domains+=(--domain "python-json=/usr/lib/python3.11/json:target"
            --domain "python-http=/usr/lib/python3.11/http:target"
            --domain "c-netfilter=/usr/include/linux/netfilter:target"
            --domain "shell-completion=/usr/share/bash-completion/completions:target")
  build/bin/dma_prepare text --out "$code/data.space" "${domains[@]}"
fi
RUN_DIR="$code" launch/transfer.sh --eval.bench_problems=0 "${tune[@]}"

build/bin/dma_replay compare "$RUN_DIR"/*/eval.h5 --format markdown | tee "$RUN_DIR/suite.md"
echo "transfer-suite: $RUN_DIR/suite.md; took $(( $(date +%s) - start )) s"
