#pragma once
/// The Data Mixing Agent (LibTorch lives in src/agent only): an actor-critic equivariant
/// over domains, trained offline (behaviour cloning then CQL) on trajectory stores, and
/// served as the `agent:<checkpoint>` policy.
#include <cstdint>
#include <string>
#include <vector>

#include "dma/config.hpp"

namespace dma {

/// Summary of an offline training run.
struct AgentTrainReport {
  std::int64_t transitions = 0;
  std::int64_t episodes = 0;
  double bc_loss = 0;
  double critic_loss = 0;
  double actor_loss = 0;
  double val_bc_loss = 0;
  double seconds = 0;
};

/// `--mode train-agent`: trains on `stores`, writes `out_checkpoint`. When `init_checkpoint`
/// is not empty, continues from it (iterate). Learner only.
AgentTrainReport train_agent(const Config& config, const std::vector<std::string>& stores,
                             const std::string& out_checkpoint, const std::string& init_checkpoint = "",
                             int steps_override = -1);

/// Makes `agent:<checkpoint>` specs available to make_policy (call once at start-up).
void register_agent_policy();

}  // namespace dma
