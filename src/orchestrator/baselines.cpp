// Tuned baselines (tuned-fixed, tuned-schedule) and the headroom measurement: how much a
// schedule of the target share can beat the best constant share on this setting, measured
// before any agent is trained.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/paired.hpp"
#include "dma/progress.hpp"
#include "dma/store.hpp"
#include "dma/tuning.hpp"
#include "modes.hpp"

namespace fs = std::filesystem;

namespace dma {
namespace {

constexpr const char* kTuneStem = "tune";

/// Candidate indices of the specs already in tune.h5 (episode id / tune.seeds), so a
/// resumed or repeated tuning reuses their rollouts and new candidates get new ids.
struct TuneIndex {
  std::map<std::string, std::int64_t> index;
  std::int64_t next = 0;
  std::int64_t of(const std::string& spec) {
    const auto [it, added] = index.emplace(spec, next);
    if (added) ++next;
    return it->second;
  }
};

TuneIndex read_tune_index(const RunContext& ctx) {
  TuneIndex t;
  const auto path = ctx.path(std::string(kTuneStem) + ".h5");
  if (!fs::exists(path)) return t;
  const auto store = StoreReader::open(path);
  for (const auto& e : store.episodes()) {
    const std::int64_t i = e.id / ctx.config.tune.seeds;
    t.index.emplace(e.policy, i);
    t.next = std::max(t.next, i + 1);
  }
  return t;
}

/// Mean balanced score of each spec over its complete tuning rollouts (-inf when none completed).
std::vector<double> score_in_tune_store(const RunContext& ctx, const std::vector<PolicySpec>& specs) {
  const auto store = StoreReader::open(ctx.path(std::string(kTuneStem) + ".h5"));
  const auto rows = policy_results(store, ctx.config.eval);
  std::vector<double> scores;
  for (const auto& spec : specs) {
    double score = -std::numeric_limits<double>::infinity();
    for (const auto& r : rows)
      if (r.policy == to_string(spec) && r.episodes > 0) score = r.balanced_mean;
    scores.push_back(score);
  }
  return scores;
}

TuningResult tune(RunContext& ctx, TunedFamily family, TuneIndex& index, std::vector<double> start = {},
                  const std::map<std::string, double>& known = {}) {
  const TuneConfig& tc = ctx.config.tune;
  auto score_batch = [&](const std::vector<PolicySpec>& specs) {
    std::vector<std::int64_t> indices;
    for (const auto& s : specs) indices.push_back(index.of(to_string(s)));
    const bool resume = fs::exists(ctx.path(std::string(kTuneStem) + ".h5"));
    if (!roll_out(ctx, kTuneStem, specs, tc.seeds, ctx.config.agent.selection_seed_offset, resume, indices))
      throw RolloutsStopped{};
    return score_in_tune_store(ctx, specs);
  };
  const auto result =
      tune_family(family, tc.rollouts, tc.seeds, kTuningFirstStep, score_batch, std::move(start), known);
  log_line(fmt::format("tuning: {} is {} ({:+.4f} on {} selection seeds; {} candidates, {} rollouts{})",
                       tuned_kind(family), to_string(result.best), result.best_score, tc.seeds,
                       result.candidates.size(), result.rollouts, result.converged ? ", converged" : ", budget spent"));
  return result;
}

std::string tuning_markdown(const RunContext& ctx, const std::vector<TuningResult>& results) {
  const TuneConfig& tc = ctx.config.tune;
  std::string out = fmt::format(
      "# Tuned baselines\n\nEach family spent at most {} rollouts ({} selection seeds from {} per candidate; "
      "balanced score: {}). A compass search, first step {}, halving down to 1/80: the constant share from 0.5, "
      "then the schedule (mean share and tilt) from the tuned constant's share with no tilt, on a budget of its "
      "own; it inherits the constant's scores for the schedules without tilt. A family that converged would not "
      "gain from more rollouts.\n",
      tc.rollouts, tc.seeds, ctx.config.agent.selection_seed_offset, ctx.config.eval.score, kTuningFirstStep);
  for (const auto& r : results) {
    out += fmt::format("\n## {}: {} ({:+.4f}, {} rollouts, {})\n\n| candidate | mean score |\n|---|---:|\n",
                       tuned_kind(r.family), to_string(r.best), r.best_score, r.rollouts,
                       r.converged ? "converged" : "the budget ran out first");
    for (size_t i = 0; i < r.candidates.size(); ++i)
      out += fmt::format("| {}{} | {:+.4f} |\n", to_string(r.candidates[i]), r.candidates[i] == r.best ? " (kept)" : "",
                         r.scores[i]);
  }
  return out;
}

void check_tuning_seeds(const RunContext& ctx) {
  const auto offset = ctx.config.agent.selection_seed_offset;
  check_apart_from_evaluation(ctx, offset, ctx.config.tune.seeds,
                              fmt::format("the tuning seeds {}..{} (agent.selection_seed_offset, tune.seeds)", offset,
                                          offset + static_cast<std::uint64_t>(ctx.config.tune.seeds) - 1));
}

}  // namespace

std::vector<PolicySpec> resolve_tuned(RunContext& ctx, const std::vector<PolicySpec>& specs) {
  auto wanted = [&](TunedFamily family) {
    return std::any_of(specs.begin(), specs.end(),
                       [&](const PolicySpec& s) { return needs_tuning(s) && tuned_family(s) == family; });
  };
  const bool want_schedule = wanted(TunedFamily::kSchedule);
  if (!want_schedule && !wanted(TunedFamily::kFixed)) return specs;
  check_tuning_seeds(ctx);
  TuneIndex index = read_tune_index(ctx);
  // The schedule's search starts from the tuned constant, so the constant is tuned first.
  std::vector<TuningResult> results{tune(ctx, TunedFamily::kFixed, index)};
  if (want_schedule)
    results.push_back(
        tune(ctx, TunedFamily::kSchedule, index, schedule_start(results.front()), schedule_scores(results.front())));
  std::ofstream(ctx.path("tuning.md")) << tuning_markdown(ctx, results);
  log_line(fmt::format("wrote {}", ctx.path("tuning.md")));
  std::vector<PolicySpec> out;
  for (const auto& s : specs) {
    const auto family = needs_tuning(s) ? tuned_family(s) : std::nullopt;
    out.push_back(!family ? s : results.at(*family == TunedFamily::kFixed ? 0 : 1).best);
  }
  return out;
}

int headroom(RunContext& ctx, bool resume) {
  require_base(ctx);
  const auto specs = resolve_tuned(ctx, {PolicySpec(PolicyKind::kTunedFixed), PolicySpec(PolicyKind::kTunedSchedule)});
  const auto& ev = ctx.config.evaluate;
  if (!roll_out(ctx, "headroom", specs, ev.seeds, ev.seed_offset, resume)) return 0;
  const auto names = policy_names(specs);
  const auto rows = print_results(ctx, ctx.path("headroom.h5"), names, {}, names, "");
  const PairedDiff d = paired_difference(rows.at(1).balanced_by_seed, rows.at(0).balanced_by_seed);
  const double ratio = d.se > 0 ? d.mean / d.se : 0.0;
  std::string report = fmt::format(
      "headroom: {} − {} = {} (95 % interval, paired by seed over {} evaluation seeds {}..; standard error {:.4f}, "
      "{:.1f} standard errors; d_z {:.2f}; p {:.2g})\n",
      names[1], names[0], format_interval(d), d.n, ev.seed_offset, d.se, ratio, d.effect, d.p);
  report += ratio >= 3 && d.mean > 0
                ? "timing matters on this setting: the tuned schedule beats the tuned constant by at least 3 paired "
                  "standard errors, so a dynamic agent has room to win here\n"
                : "timing matters little on this setting: the tuned schedule does not beat the tuned constant by 3 "
                  "paired standard errors, so a dynamic agent has little room to win here\n";
  std::fputs(report.c_str(), stdout);
  std::ofstream(ctx.path("headroom.md")) << "# Headroom\n\n"
                                         << results_markdown(rows, ctx.config.eval.score) << "\n"
                                         << report;
  log_line(fmt::format("wrote {}", ctx.path("headroom.md")));
  return 0;
}

}  // namespace dma
