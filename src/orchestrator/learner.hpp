#pragma once
// The learner's side of an episode phase: plans onto worker slots as they free up.
#include <cstdint>
#include <string>
#include <vector>

#include "dma/learner.hpp"
#include "dma/policy.hpp"
#include "dma/store.hpp"
#include "run_context.hpp"

namespace dma {

/// Drops plans whose id is already complete or failed in the store (never redone); throws
/// ConfigError when such an episode ran under another policy or trajectory seed than the plan's.
std::vector<EpisodePlan> pending_plans(const std::vector<EpisodePlan>& plans, const StoreWriter& store,
                                       const std::string& store_path, std::uint64_t run_seed);

/// The store's fixed header for this run (domain space, base losses, horizon, config).
StoreHeader make_store_header(const RunContext& ctx);

/// Opens `path` for a run: creates it, or resumes it when `resume` (refusing a mismatch).
StoreWriter open_store(const RunContext& ctx, const std::string& path, bool resume);

/// The policies' view of the domain space.
DomainContext domain_context(const RunContext& ctx);

/// Runs `plans` on the workers into `store`. Returns false when a stop was requested (the
/// steps under way were finished, running episodes marked interrupted, the store flushed).
/// Tree branches among the plans need their parents' shared rows in `prefixes`.
bool run_episodes(RunContext& ctx, StoreWriter& store, const std::vector<EpisodePlan>& plans, const std::string& label,
                  const PrefixRows& prefixes = {});

}  // namespace dma
