#pragma once
// What the modes share: rollouts of policy lists on seed blocks, their tables, and the
// tuned baselines that evaluate and headroom resolve before their rollouts.
#include <cstdint>
#include <string>
#include <vector>

#include "results.hpp"
#include "run_context.hpp"

namespace dma {

/// Every policy once per seed into <stem>.h5: policy p's seed k is episode
/// indices[p] * seeds + k with seed id seed_offset + k (indices 0, 1, ... when empty).
/// False when a signal stopped the run (it resumes).
bool roll_out(RunContext& ctx, const std::string& stem, const std::vector<PolicySpec>& specs, int seeds,
              std::uint64_t seed_offset, bool resume, const std::vector<std::int64_t>& indices = {});

/// Prints the table of a store (and writes <stem>.csv/.md unless stem is empty); returns its rows.
std::vector<PolicyResult> print_results(const RunContext& ctx, const std::string& store_path,
                                        const std::vector<std::string>& order, const std::vector<std::string>& oracle,
                                        const std::vector<std::string>& listed, const std::string& stem);

/// Builds every spec once (before any rollout), so a bad one fails the run at once.
void check_policies(const RunContext& ctx, const std::vector<PolicySpec>& specs);

/// The policies' names as the stores hold them (to_string of each spec).
std::vector<std::string> policy_names(const std::vector<PolicySpec>& specs);

/// Throws ConfigError ("<what> overlap the evaluation seeds ...") when seed ids
/// offset..offset+count-1 meet the evaluation seeds: no evaluation seed may choose a policy.
void check_apart_from_evaluation(const RunContext& ctx, std::uint64_t offset, int count, const std::string& what);

/// Throws CheckpointError when the run has no base model.
void require_base(const RunContext& ctx);

/// Thrown when a signal stopped rollouts that a mode cannot go on without; the mode returns 0
/// and the rollouts resume with --resume.
struct RolloutsStopped {};

/// Replaces each bare `tuned-fixed` / `tuned-schedule` in `specs` by its tuned value,
/// tuning first (rollouts on the selection seeds into tune.h5, a report in tuning.md).
/// Throws RolloutsStopped when a signal stopped the tuning.
std::vector<PolicySpec> resolve_tuned(RunContext& ctx, const std::vector<PolicySpec>& specs);

/// --mode headroom: both families tuned, then rolled out on the evaluation seeds; prints
/// tuned-schedule − tuned-fixed paired by seed with its 95 % interval (headroom.md).
int headroom(RunContext& ctx, bool resume);

}  // namespace dma
