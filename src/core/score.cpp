#include "dma/score.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma {

FieldScores field_scores(std::span<const float> losses, std::span<const float> base_losses,
                         std::span<const Field> fields) {
  if (losses.size() != base_losses.size() || losses.size() != fields.size())
    throw Error(fmt::format("field_scores: {} losses, {} base losses, {} fields: all must be one per domain",
                            losses.size(), base_losses.size(), fields.size()));
  double sum[2] = {0, 0};
  int count[2] = {0, 0};
  for (size_t d = 0; d < losses.size(); ++d) {
    const int f = fields[d] == Field::kTarget ? 1 : 0;
    sum[f] += (static_cast<double>(base_losses[d]) - losses[d]) / static_cast<double>(base_losses[d]);
    ++count[f];
  }
  return {count[0] ? sum[0] / count[0] : 0.0, count[1] ? sum[1] / count[1] : 0.0};
}

double balanced_score(const FieldScores& s, const EvalConfig& eval) {
  const std::string& k = eval.score;
  if (k == "mean") return 0.5 * (s.source + s.target);
  if (k == "min") return std::min(s.source, s.target);
  if (k == "weighted") return (1.0 - eval.target_weight) * s.source + eval.target_weight * s.target;
  if (k == "normalized") return 0.5 * (s.source / eval.source_scale + s.target / eval.target_scale);
  if (k == "budget") {
    // Target gain, minus a penalty on source loss beyond a tolerance (source < 0 is forgetting).
    const double excess = std::max(0.0, -s.source - eval.budget_tolerance);
    return s.target - eval.budget_penalty * excess;
  }
  throw ConfigError(fmt::format("eval.score = '{}' is not valid: use mean|min|weighted|normalized|budget", k));
}

}  // namespace dma
