#pragma once
// What every mode needs on every rank: config, MPI, the domain space, paths.
#include <cstdint>
#include <memory>
#include <string>

#include "dma/comm.hpp"
#include "dma/config.hpp"
#include "dma/domain_space.hpp"
#include "dma/policy.hpp"

namespace dma {

struct RunContext {
  Config config;  // effective config (proxy.threads resolved)
  MpiSession& mpi;
  DomainSpace space;
  bool auto_threads = true;  // proxy.threads was 0: this rank's share of the cores
  PolicyRegistry policies;   // the kinds this program builds (the built-in ones and the agent)

  bool is_learner() const { return mpi.rank() == 0; }
  int workers() const { return mpi.size() - 1; }
  std::string path(const std::string& name) const { return config.run.dir + "/" + name; }
  std::string base_path() const { return path("base.pt"); }
  std::string store_path() const { return config.collect.store.empty() ? path("store.h5") : config.collect.store; }
  std::string agent_path() const { return path("agent.pt"); }
  /// Where a tree's root keeps its trainer state for its branches (run.dir is shared by all ranks).
  std::string kept_state_dir() const { return path("tree-states"); }
  std::string kept_state_path(std::int64_t root) const { return kept_state_dir() + "/" + std::to_string(root) + ".pt"; }
};

/// Control over MPI: the learner announces the next phase to every
/// worker. Workers may wait a long time here (the learner trains an agent, pretrains).
int broadcast_phase(RunContext& ctx, int phase);

}  // namespace dma
