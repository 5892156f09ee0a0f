#pragma once
// Offline training of the agent on a Dataset.
//  1. Warm start (bc_steps): the actor clones the top bc_top_q episodes (KL of the stored
//     weights to the softmax of its mean logits); the critics already learn (step 2).
//  2. Critics, every step: TD on rewards centred and scaled to unit std, backup with the
//     target critics at the actor's mean action plus clipped logit noise (TD3 smoothing);
//     the last step of the horizon backs up 0 (nothing is earned after it); plus
//     cql_alpha * CQL(H): logsumexp over uniform logits in the box and policy samples at o
//     and o' (importance-weighted by their densities) minus Q at the stored action. With
//     cql_calibrate (Cal-QL) a sampled action's Q enters as max(Q, return of the stored
//     episode from o), so conservatism cannot drag Q down without bound.
//  3. Actor, after the warm start: maximise min(Q1, Q2) at reparameterised samples (Q
//     divided by its mean magnitude), minus a SAC entropy term with a tuned temperature,
//     plus actor_bc_weight * the cloning loss on the top episodes (TD3+BC).
#include <cstdint>

#include "checkpoint.hpp"
#include "dataset.hpp"
#include "dma/agent.hpp"
#include "dma/config.hpp"

namespace dma::agent {

struct TrainPlan {
  int bc_steps = 0;
  int cql_steps = 0;
  std::uint64_t seed = 1;
  double progress_seconds = 10;
};

/// Trains `state` in place (normaliser and reward scale must be set) and returns the losses.
AgentTrainReport train_on(AgentState& state, const Dataset& data, const AgentConfig& config, const TrainPlan& plan);

}  // namespace dma::agent
