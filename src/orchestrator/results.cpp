#include "results.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

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

bool is_random(const PolicyResult& r) { return policy_kind(r.policy) == "random"; }
bool labelled_oracle(const PolicyResult& r) { return r.oracle && !r.listed; }

/// Standard error of the balanced score pooled over policies (for "beats by more than").
/// `random` draws a new policy per episode: its spread is not seed noise and stays out.
double pooled_se(const std::vector<PolicyResult>& rows) {
  double num = 0, den = 0, inv_n = 0;
  int k = 0;
  for (const auto& r : rows)
    if (r.episodes > 1 && !is_random(r)) {
      num += (r.episodes - 1) * r.balanced_std * r.balanced_std;
      den += r.episodes - 1;
      inv_n += 1.0 / r.episodes;
      ++k;
    }
  if (den <= 0 || k == 0) return 0;
  return std::sqrt(num / den) * std::sqrt(inv_n / k);
}

/// The first agent row: the table compares every other row with it.
const PolicyResult* agent_row(const std::vector<PolicyResult>& rows) {
  for (const auto& r : rows)
    if (policy_kind(r.policy) == "agent" && r.episodes > 0) return &r;
  return nullptr;
}

/// "agent - row" and the standard error of that difference, or "" without an agent. Paired by
/// seed over the seeds both ran: the policies of one evaluation share seeds (the same data
/// order and proxy noise), so the seed's effect cancels. Welch's unpaired error where fewer
/// than two seeds are shared.
std::string agent_minus(const PolicyResult* agent, const PolicyResult& r) {
  if (!agent || agent == &r || r.episodes == 0) return "";
  std::vector<double> diffs;
  for (const auto& [seed, score] : r.balanced_by_seed)
    if (const auto it = agent->balanced_by_seed.find(seed); it != agent->balanced_by_seed.end())
      diffs.push_back(it->second - score);
  if (diffs.size() >= 2) {
    double mean = 0, sd = 0;
    mean_std(diffs, mean, sd);
    return fmt::format("{:+.4f} ± {:.4f}", mean, sd / std::sqrt(static_cast<double>(diffs.size())));
  }
  const double se = std::sqrt(agent->balanced_std * agent->balanced_std / agent->episodes +
                              r.balanced_std * r.balanced_std / r.episodes);
  return fmt::format("{:+.4f} ± {:.4f}", agent->balanced_mean - r.balanced_mean, se);
}

/// Footer lines: the pooled standard error, and the best of the oracle grid.
std::string footer(const std::vector<PolicyResult>& rows) {
  std::string out = fmt::format("pooled standard error of the balanced score (all policies but random): {:.4f}\n",
                                pooled_se(rows));
  if (agent_row(rows))
    out += "agent - policy: the mean difference over the seeds both ran, ± its standard error (paired by seed)\n";
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
  const PolicyResult* agent = agent_row(rows);
  std::string out = fmt::format("{:<{}}  {:>3}  {:>17}  {:>17}  {:>17}  {:>6}{}\n", "policy", width, "n", "source",
                                "target", "balanced (" + score_name + ")", "math", agent ? "      agent - policy" : "");
  for (const auto& r : rows) {
    const std::string name = labelled_oracle(r) ? r.policy + " (oracle)" : r.policy;
    out += fmt::format("{:<{}}  {:>3}  {:>+8.4f} ± {:<6.4f}  {:>+8.4f} ± {:<6.4f}  {:>+8.4f} ± {:<6.4f}  {:>6}  {:>18}{}\n",
                       name, width, r.episodes, r.source_mean, r.source_std, r.target_mean, r.target_std,
                       r.balanced_mean, r.balanced_std, r.math_mean >= 0 ? fmt::format("{:.3f}", r.math_mean) : "-",
                       agent_minus(agent, r), r.failed ? fmt::format("  ({} failed)", r.failed) : "");
  }
  return out + footer(rows);
}

std::string results_csv(const std::vector<PolicyResult>& rows) {
  std::string out =
      "policy,oracle,episodes,failed,source_mean,source_std,target_mean,target_std,balanced_mean,balanced_std,math_accuracy\n";
  for (const auto& r : rows)
    out += fmt::format("\"{}\",{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{}\n", r.policy, r.oracle ? 1 : 0,
                       r.episodes, r.failed, r.source_mean, r.source_std, r.target_mean, r.target_std, r.balanced_mean,
                       r.balanced_std, r.math_mean >= 0 ? fmt::format("{:.4f}", r.math_mean) : "");
  return out;
}

std::string results_markdown(const std::vector<PolicyResult>& rows, const std::string& score_name) {
  const PolicyResult* agent = agent_row(rows);
  std::string out = fmt::format("| policy | n | source | target | balanced ({}) | math | agent − policy |\n"
                                "|---|---:|---:|---:|---:|---:|---:|\n",
                                score_name);
  for (const auto& r : rows)
    out += fmt::format("| {}{} | {} | {:+.4f} ± {:.4f} | {:+.4f} ± {:.4f} | {:+.4f} ± {:.4f} | {} | {} |\n", r.policy,
                       labelled_oracle(r) ? " *(oracle)*" : "", r.episodes, r.source_mean, r.source_std, r.target_mean,
                       r.target_std, r.balanced_mean, r.balanced_std,
                       r.math_mean >= 0 ? fmt::format("{:.3f}", r.math_mean) : "-", agent_minus(agent, r));
  return out + "\n" + footer(rows);
}

}  // namespace dma
