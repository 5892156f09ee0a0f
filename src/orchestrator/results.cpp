#include "results.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "dma/paired.hpp"
#include "dma/policy.hpp"
#include "dma/score.hpp"

namespace dma {
namespace {

struct Acc {
  std::vector<double> source, target, balanced, math;
  std::map<std::uint64_t, double> balanced_by_seed;
  int failed = 0;
};

void mean_std(const std::vector<double>& v, double& mean, double& sd) {
  mean = sd = 0;
  if (v.empty()) return;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    for (double x : v) sd += (x - mean) * (x - mean);
    sd = std::sqrt(sd / static_cast<double>(v.size() - 1));
  }
}

bool labelled_oracle(const PolicyResult& r) { return r.oracle && !r.listed; }

/// The first agent row: the table compares every other row with it.
const PolicyResult* agent_row(const std::vector<PolicyResult>& rows) {
  for (const auto& r : rows)
    if (policy_kind(r.policy) == "agent" && r.episodes > 0) return &r;
  return nullptr;
}

/// agent − row for every compared row (paired by seed), Holm-corrected over the listed
/// baselines; oracle-only rows are reported but stay out of the family.
std::map<const PolicyResult*, PairedDiff> agent_differences(const std::vector<PolicyResult>& rows) {
  std::map<const PolicyResult*, PairedDiff> out;
  const PolicyResult* agent = agent_row(rows);
  if (!agent) return out;
  std::vector<const PolicyResult*> family;
  std::vector<PairedDiff> diffs;
  for (const auto& r : rows) {
    if (&r == agent || r.episodes == 0) continue;
    out[&r] = paired_difference(agent->balanced_by_seed, r.balanced_by_seed);
    if (!labelled_oracle(r)) {
      family.push_back(&r);
      diffs.push_back(out[&r]);
    }
  }
  holm_adjust(diffs);
  for (size_t i = 0; i < family.size(); ++i) out[family[i]].p_holm = diffs[i].p_holm;
  return out;
}

std::string p_text(double p) { return p < 1e-4 ? "<1e-4" : fmt::format("{:.2g}", p); }

/// The agent's columns of one row: the difference with its 95 % interval, d_z, Holm's p.
std::vector<std::string> agent_columns(const std::map<const PolicyResult*, PairedDiff>& diffs, const PolicyResult& r) {
  const auto it = diffs.find(&r);
  if (it == diffs.end()) return {"", "", ""};
  const PairedDiff& d = it->second;
  return {format_interval(d), d.n > 1 && std::isfinite(d.effect) ? fmt::format("{:+.2f}", d.effect) : "-",
          labelled_oracle(r) ? "-" : p_text(d.p_holm)};
}

/// Footer lines: what the agent's columns mean, and the best of the oracle grid.
std::string footer(const std::vector<PolicyResult>& rows) {
  std::string out;
  if (agent_row(rows))
    out +=
        "agent − policy: mean difference over the seeds both ran [95 % t interval], paired by seed; d_z: that mean "
        "over the differences' standard deviation; p: two-sided, Holm-corrected over the listed baselines\n";
  const PolicyResult* best = nullptr;
  for (const auto& r : rows)
    if (r.oracle && r.episodes > 0 && (!best || r.balanced_mean > best->balanced_mean)) best = &r;
  if (best) out += fmt::format("best of the oracle grid: {} {:+.4f}\n", best->policy, best->balanced_mean);
  return out;
}

}  // namespace

std::vector<PolicyResult> policy_results(const StoreReader& store, const EvalConfig& eval,
                                         const std::vector<std::string>& order, const std::vector<std::string>& oracle,
                                         const std::vector<std::string>& listed) {
  const auto& h = store.header();
  std::map<std::string, Acc> acc;
  std::vector<std::string> seen = order;
  for (const auto& e : store.episodes()) {
    if (std::find(seen.begin(), seen.end(), e.policy) == seen.end()) seen.push_back(e.policy);
    Acc& a = acc[e.policy];
    if (e.status == EpisodeStatus::kFailed) ++a.failed;
    if (e.status != EpisodeStatus::kComplete || e.length <= 0) continue;
    const auto last = store.read_rows(e.start + e.length - 1, 1).at(0);
    const FieldScores s = field_scores(last.eval_loss, h.base_eval_loss, h.domain_fields);
    a.source.push_back(s.source);
    a.target.push_back(s.target);
    a.balanced.push_back(balanced_score(s, eval));
    a.balanced_by_seed.emplace(e.seed, a.balanced.back());
    if (last.math_accuracy >= 0) a.math.push_back(last.math_accuracy);
  }
  std::vector<PolicyResult> out;
  for (const auto& p : seen) {
    const Acc& a = acc[p];
    PolicyResult r;
    r.policy = p;
    r.oracle = std::find(oracle.begin(), oracle.end(), p) != oracle.end();
    r.listed = std::find(listed.begin(), listed.end(), p) != listed.end();
    r.episodes = static_cast<int>(a.balanced.size());
    r.failed = a.failed;
    r.balanced_by_seed = a.balanced_by_seed;
    mean_std(a.source, r.source_mean, r.source_std);
    mean_std(a.target, r.target_mean, r.target_std);
    mean_std(a.balanced, r.balanced_mean, r.balanced_std);
    if (!a.math.empty()) {
      double sd = 0;
      mean_std(a.math, r.math_mean, sd);
    }
    out.push_back(r);
  }
  return out;
}

std::string results_text(const std::vector<PolicyResult>& rows, const std::string& score_name) {
  size_t width = 6;
  for (const auto& r : rows) width = std::max(width, r.policy.size() + (labelled_oracle(r) ? 9 : 0));
  const auto diffs = agent_differences(rows);
  const bool agent = agent_row(rows) != nullptr;
  std::string out =
      fmt::format("{:<{}}  {:>3}  {:>17}  {:>17}  {:>17}  {:>6}{}\n", "policy", width, "n", "source", "target",
                  "balanced (" + score_name + ")", "math",
                  agent ? fmt::format("  {:>28}  {:>6}  {:>6}", "agent − policy [95% CI]", "d_z", "p") : "");
  for (const auto& r : rows) {
    const std::string name = labelled_oracle(r) ? r.policy + " (oracle)" : r.policy;
    const auto a = agent_columns(diffs, r);
    out += fmt::format("{:<{}}  {:>3}  {:>+8.4f} ± {:<6.4f}  {:>+8.4f} ± {:<6.4f}  {:>+8.4f} ± {:<6.4f}  {:>6}{}{}\n",
                       name, width, r.episodes, r.source_mean, r.source_std, r.target_mean, r.target_std,
                       r.balanced_mean, r.balanced_std, r.math_mean >= 0 ? fmt::format("{:.3f}", r.math_mean) : "-",
                       agent ? fmt::format("  {:>26}  {:>6}  {:>6}", a[0], a[1], a[2]) : "",
                       r.failed ? fmt::format("  ({} failed)", r.failed) : "");
  }
  return out + footer(rows);
}

std::string results_csv(const std::vector<PolicyResult>& rows) {
  std::string out =
      "policy,oracle,episodes,failed,source_mean,source_std,target_mean,target_std,balanced_mean,balanced_std,math_"
      "accuracy\n";
  for (const auto& r : rows)
    out += fmt::format("\"{}\",{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{}\n", r.policy, r.oracle ? 1 : 0,
                       r.episodes, r.failed, r.source_mean, r.source_std, r.target_mean, r.target_std, r.balanced_mean,
                       r.balanced_std, r.math_mean >= 0 ? fmt::format("{:.4f}", r.math_mean) : "");
  return out;
}

std::string results_markdown(const std::vector<PolicyResult>& rows, const std::string& score_name) {
  const auto diffs = agent_differences(rows);
  std::string out = fmt::format(
      "| policy | n | source | target | balanced ({}) | math | agent − policy [95% CI] | d_z | p "
      "(Holm) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      score_name);
  for (const auto& r : rows) {
    const auto a = agent_columns(diffs, r);
    out += fmt::format("| {}{} | {} | {:+.4f} ± {:.4f} | {:+.4f} ± {:.4f} | {:+.4f} ± {:.4f} | {} | {} | {} | {} |\n",
                       r.policy, labelled_oracle(r) ? " *(oracle)*" : "", r.episodes, r.source_mean, r.source_std,
                       r.target_mean, r.target_std, r.balanced_mean, r.balanced_std,
                       r.math_mean >= 0 ? fmt::format("{:.3f}", r.math_mean) : "-", a[0], a[1], a[2]);
  }
  return out + "\n" + footer(rows);
}

}  // namespace dma
