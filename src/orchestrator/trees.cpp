// Trajectory trees: the shared rows come from the store (so a resumed run finds them as a
// fresh one does) and the shared trainer state from the file each root's worker kept.
#include "trees.hpp"

#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "dma/progress.hpp"
#include "dma/store.hpp"
#include "learner.hpp"

namespace dma {

void place_in_trees(std::vector<EpisodePlan>& plans, const Config& config) {
  const int branches = config.collect.branches;
  if (branches == 0) return;
  const int shared = config.collect.shared_steps(config.train.horizon);
  const std::int64_t tree = branches + 1;
  for (auto& p : plans) {
    const std::int64_t root = p.id - p.id % tree;
    if (p.id == root) {
      if (root + 1 < static_cast<std::int64_t>(plans.size())) p.keep_state_after = shared;  // a root with branches
    } else {
      p.parent = root;
      p.branch_step = shared;
    }
  }
}

namespace {

/// The first branch_step rows of each root that `branches` continue, for roots that ended
/// (complete, or failed after those steps) with their state kept; the others are left out.
PrefixRows read_shared_rows(const RunContext& ctx, const std::vector<EpisodePlan>& branches) {
  std::map<std::int64_t, int> wanted;  // root id -> rows shared
  for (const auto& b : branches) wanted[b.parent] = b.branch_step;
  PrefixRows prefixes;
  const auto store = StoreReader::open(ctx.store_path());
  for (const auto& e : store.episodes()) {
    const auto it = wanted.find(e.id);
    if (it == wanted.end() || e.status == EpisodeStatus::kRunning || e.status == EpisodeStatus::kInterrupted ||
        e.length < it->second || !std::filesystem::exists(ctx.kept_state_path(e.id)))
      continue;
    prefixes[e.id] = store.read_rows(e.start, it->second);
  }
  return prefixes;
}

}  // namespace

bool collect_branches(RunContext& ctx, const std::vector<EpisodePlan>& plans) {
  std::vector<EpisodePlan> branches;
  for (const auto& p : plans)
    if (p.parent >= 0) branches.push_back(p);
  if (branches.empty()) return true;
  bool finished = false;
  {
    auto store = open_store(ctx, ctx.store_path(), /*resume=*/true);
    const auto pending = pending_plans(branches, store, ctx.store_path(), ctx.config.run.seed);
    const PrefixRows prefixes = read_shared_rows(ctx, pending);
    std::vector<EpisodePlan> runnable;
    for (const auto& b : pending)
      if (prefixes.count(b.parent)) runnable.push_back(b);
    if (runnable.size() < pending.size())
      log_line(
          fmt::format("collect: {} branches left out: their root kept no state (it failed before the shared "
                      "steps, or the store was written without trees)",
                      pending.size() - runnable.size()));
    log_line(fmt::format("collect: {} branches to run from {} roots' kept states", runnable.size(), prefixes.size()));
    finished = run_episodes(ctx, store, runnable, "collect branches", prefixes);
  }
  if (finished) std::filesystem::remove_all(ctx.kept_state_dir());
  return finished;
}

}  // namespace dma
