#pragma once
// Offline training of the agent on a Dataset: behaviour cloning on the best episodes (the
// critics learn alongside), then CQL with a SAC-style actor.
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
