#pragma once
/// The learner's generation of lockstep rounds (DESIGN §2): decide → exchange → absorb →
/// write → seal → flush. It reaches the workers only through a Collective (rank 0 is the
/// learner), so it runs the same over MPI, NCCL or an in-process transport (the scale
/// benchmark drives it against simulated workers).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dma/comm.hpp"
#include "dma/config.hpp"
#include "dma/policy.hpp"
#include "dma/store.hpp"

namespace dma {

/// One trajectory to run: its id (unique in the store), the id its seed derives from (the
/// same seed_id across policies gives paired comparisons), and its policy. In a trajectory
/// tree the root keeps its trained state after `keep_state_after` steps and a branch starts
/// from its parent's kept state at `branch_step`.
struct EpisodePlan {
  std::int64_t id = 0;
  std::int64_t seed_id = 0;
  PolicySpec policy;
  std::int64_t parent = -1;  ///< the root a branch continues (-1: none)
  int branch_step = 0;       ///< rows a branch shares with its parent
  int keep_state_after = 0;  ///< > 0: a root; its worker saves the trainer state after this step count
};

/// The shared rows of each tree's root (its first branch_step transitions), by root id.
using PrefixRows = std::map<std::int64_t, std::vector<Transition>>;

/// Policies by name (to_string of their spec), built once per episode phase and shared by its
/// generations.
using PolicySet = std::map<std::string, std::unique_ptr<Policy>>;

/// Seconds the learner spent in each part of its rounds (accumulated), not counting the
/// workers' own time: `exchange` is packing plus the transport's time at the root.
struct RoundTimes {
  double decide = 0;    ///< policies' batched act calls
  double exchange = 0;  ///< command packing, scatter, gather
  double absorb = 0;    ///< records -> transitions (rewards, observations)
  double write = 0;     ///< transition rows into the store
  double seal = 0;      ///< ending episodes (status, length, return, checksum)
  double flush = 0;     ///< making the round durable and visible to SWMR readers
  double total() const { return decide + exchange + absorb + write + seal + flush; }
  RoundTimes& operator+=(const RoundTimes& o);
};

/// Reads the error text a failing worker sent (called after its record raised the error flag).
using WorkerErrorReader = std::function<std::string(int rank)>;

/// One generation: every planned episode runs on its worker slot (plan i on rank 1 + i /
/// slots, slot i % slots) for up to `domains.horizon` lockstep rounds.
class Generation {
 public:
  /// Requires collective.size() - 1 workers with config.orchestrator.slots slots each, enough
  /// for the plans passed to start(); every plan's policy in `policies`.
  Generation(const Config& config, const DomainContext& domains, StoreWriter& store, PolicySet& policies,
             Collective& collective, WorkerErrorReader read_worker_error);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;
  Generation(Generation&&) noexcept;
  Generation& operator=(Generation&&) noexcept;

  /// Registers the plans' episodes in the store (status running) and with their policies. A
  /// branch's parent must be in `prefixes`: its rows are copied and the branch starts after them.
  void start(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes = {});
  /// One round; returns transitions written. Throws on a worker error (after marking the
  /// running episodes interrupted).
  std::int64_t round();
  bool done() const;
  std::int64_t tokens_this_round() const;
  const RoundTimes& times() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dma
