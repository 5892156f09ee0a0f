#pragma once
/// The learner's episode loop: receive records → absorb → write → seal → decide → send →
/// flush. It reaches the workers only through a StepLink (rank 0 is the learner), so it runs
/// the same over MPI or an in-process transport (the scale benchmark drives it against
/// simulated workers).
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

/// Seconds the learner spent in each part of its work (accumulated), not counting the
/// workers' own time: `exchange` is packing plus the transport's time at the root, waiting
/// for records included.
struct RoundTimes {
  double decide = 0;    ///< policies' batched act calls
  double exchange = 0;  ///< command packing, sends, waiting for records
  double absorb = 0;    ///< records -> transitions (rewards, observations)
  double write = 0;     ///< transition rows into the store
  double seal = 0;      ///< ending episodes (status, length, return, checksum)
  double flush = 0;     ///< making the rows durable and visible to SWMR readers
  double total() const { return decide + exchange + absorb + write + seal + flush; }
  RoundTimes& operator+=(const RoundTimes& o);
};

/// Reads the error text a failing worker sent (called after its record raised the error flag).
using WorkerErrorReader = std::function<std::string(int rank)>;

/// What one batch of records changed, for progress lines.
struct BatchReport {
  std::int64_t transitions = 0;  ///< rows written by this batch
  std::int64_t tokens = 0;       ///< tokens the batch's steps trained
  std::int64_t ended = 0;        ///< episodes ended so far (complete or failed)
  int workers = 0;               ///< workers whose records made the batch
};

/// The learner's episode loop. Every worker slot takes the next plan as soon as its previous
/// episode ends, and every worker gets its next command as soon as its record is in (with the
/// others that arrive within a short window, decided in one batched call per policy): a slow
/// worker holds up only its own episodes. Decisions depend only on each episode's own history
/// and seeds, so the store does not depend on rank counts or arrival order.
class EpisodeRunner {
 public:
  /// Requires link.size() - 1 workers with config.orchestrator.slots slots each; every plan's
  /// policy in `policies`.
  EpisodeRunner(const Config& config, const DomainContext& domains, StoreWriter& store, PolicySet& policies,
                StepLink& link, WorkerErrorReader read_worker_error);
  ~EpisodeRunner();
  EpisodeRunner(const EpisodeRunner&) = delete;
  EpisodeRunner& operator=(const EpisodeRunner&) = delete;

  /// Runs the plans in order of their index, each registered in the store (status running)
  /// when a slot takes it; a branch's parent must be in `prefixes` (its rows are copied and
  /// the branch starts after them). Every worker ends the call released (a shutdown command).
  /// Returns false when a stop was requested: the steps under way were finished and written,
  /// running episodes marked interrupted. Throws on a worker error (after marking them).
  bool run(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes,
           const std::function<void(const BatchReport&)>& on_batch = {});
  const RoundTimes& times() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Seconds a record that arrived waits for others before its episodes are decided.
inline constexpr double kDecisionWindowSeconds = 0.02;

}  // namespace dma
