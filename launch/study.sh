#!/usr/bin/env bash
# The comparison that shows whether the agent works (issue 5), on the embedded default:
# the demo's pipeline with a larger collection, longer agent training and 8 online
# generations, every baseline plus an oracle grid of fixed target shares, over evaluation
# seeds that are never used for training or model selection (evaluate.seed_offset keeps
# them apart from collection ids, iterate's ids and selection seeds). About 45 min on 2 cores.
# Usage: launch/study.sh [extra dma_orchestrate options]
# Env: RUN_DIR, EVAL_SEEDS (default 32), EVAL_SEED_OFFSET (default 9000000).
# Why 32 seeds: timing is worth about 0.013 over the best fixed share here, and the standard
# error pooled over all 16 policies is 0.0145 at 8 seeds (target-only's penalty spreads
# widely); 32 seeds halve it. Seeds 5000000.. to 8000000.. were looked at while the agent's
# method was chosen (issue 5's notes); 9000000.. gave the gain-0 agent's table, 10000000..
# the transfer-robust recipe's, 11000000.. served development spaces, 12000000.. gave the
# README's table (agent.source_gain = 8): use 13000000.. for a new confirmatory run
# (EVAL_SEED_OFFSET=13000000).
set -euo pipefail
cd "$(dirname "$0")/.."
oracle=fixed:0.1,fixed:0.2,fixed:0.3,fixed:0.4,fixed:0.5,fixed:0.6,fixed:0.7,fixed:0.8,fixed:0.9
RUN_DIR=${RUN_DIR:-runs/study} exec launch/demo.sh \
  --collect.trajectories=192 --agent.bc_steps=400 --agent.cql_steps=1500 --agent.candidates=6 --agent.selection_seeds=6 \
  --iterate.generations=8 --iterate.trajectories=16 \
  --evaluate.policies=agent,uniform,natural,target-only,fixed:0.3,fixed:0.5,fixed:0.7,online-eg,regmix,random \
  --evaluate.oracle="$oracle" --evaluate.seeds="${EVAL_SEEDS:-32}" --evaluate.seed_offset="${EVAL_SEED_OFFSET:-9000000}" "$@"
