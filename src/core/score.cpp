#include "dma/score.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

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

EvalConfig with_score(const EvalConfig& eval, const std::string& spec) {
  EvalConfig out = eval;
  const size_t colon = spec.find(':');
  out.score = spec.substr(0, colon);
  try {
    balanced_score({}, out);  // the score names are balanced_score's
  } catch (const ConfigError&) {
    throw ConfigError(
        fmt::format("score '{}' does not exist: use mean, min, weighted[:<target weight>], normalized "
                    "or budget[:<tolerance>]",
                    spec));
  }
  if (colon == std::string::npos) return out;
  const std::string arg = spec.substr(colon + 1);
  char* end = nullptr;
  const double value = std::strtod(arg.c_str(), &end);
  const bool number = !arg.empty() && end == arg.c_str() + arg.size() && std::isfinite(value);
  if (out.score == "budget" && number && value >= 0 && value < 1) {
    out.budget_tolerance = value;
  } else if (out.score == "weighted" && number && value >= 0 && value <= 1) {
    out.target_weight = value;
  } else {
    throw ConfigError(fmt::format("score '{}': {} takes {}", spec, out.score,
                                  out.score == "budget"     ? "a tolerance in [0, 1), e.g. budget:0.01"
                                  : out.score == "weighted" ? "a target weight in [0, 1], e.g. weighted:0.7"
                                                            : "no argument"));
  }
  return out;
}

}  // namespace dma
