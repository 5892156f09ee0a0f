#pragma once
// Final scores per policy from a store, as the comparison table of `evaluate` and the
// summary at the end of `collect`.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dma/config.hpp"
#include "dma/store.hpp"

namespace dma {

struct PolicyResult {
  std::string policy;
  bool oracle = false;  // in the oracle grid
  bool listed = false;  // in the policy list too (a baseline as well): not labelled oracle
  int episodes = 0;     // complete episodes
  int failed = 0;
  double source_mean = 0, source_std = 0;
  double target_mean = 0, target_std = 0;
  double balanced_mean = 0, balanced_std = 0;
  double math_mean = -1;                             // -1: not measured
  std::map<std::uint64_t, double> balanced_by_seed;  // complete episodes' balanced score by seed
};

/// Reads every complete episode's final row; policies in first-seen order (or `order`).
/// `listed` are the compared policies; an `oracle` policy that is not listed is labelled oracle.
std::vector<PolicyResult> policy_results(const StoreReader& store, const EvalConfig& eval,
                                         const std::vector<std::string>& order = {},
                                         const std::vector<std::string>& oracle = {},
                                         const std::vector<std::string>& listed = {});

/// The table as aligned text, CSV and Markdown. Balanced is the configured eval.score.
std::string results_text(const std::vector<PolicyResult>& rows, const std::string& score_name);
std::string results_csv(const std::vector<PolicyResult>& rows);
std::string results_markdown(const std::vector<PolicyResult>& rows, const std::string& score_name);

}  // namespace dma
