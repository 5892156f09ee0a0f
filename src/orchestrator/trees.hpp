#pragma once
// Trajectory trees in collect mode: a root runs the whole horizon and keeps its trainer state
// after k steps; B branches copy its first k rows and continue from that state on their own
// seeds and policies. Roots run first, then every branch whose root got that far.
#include <vector>

#include "dma/learner.hpp"
#include "run_context.hpp"

namespace dma {

/// Places collection plans (ids 0, 1, ...) in trees of 1 + collect.branches: each tree's first
/// id is its root, the others its branches. Leaves the plans flat when collect.branches is 0.
void place_in_trees(std::vector<EpisodePlan>& plans, const Config& config);

/// Runs the pending branches of `plans` into the store at ctx.store_path() (roots already run),
/// then removes the kept states. False when a signal stopped it (the run resumes).
bool collect_branches(RunContext& ctx, const std::vector<EpisodePlan>& plans);

}  // namespace dma
