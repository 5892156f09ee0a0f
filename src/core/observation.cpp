#include "dma/observation.hpp"

#include <cmath>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::obs {

void build(const Inputs& in, std::span<float> out) {
  const size_t D = in.losses.size();
  if (out.size() != static_cast<size_t>(dim(static_cast<int>(D))) || in.prev_weights.size() != D ||
      in.prev_losses.size() != D || in.base_losses.size() != D || in.fields.size() != D || in.token_shares.size() != D)
    throw Error(fmt::format("obs::build: inconsistent sizes for {} domains", D));
  const FieldScores s = field_scores(in.losses, in.base_losses, in.fields);
  out[kProgress] = static_cast<float>(in.step) / static_cast<float>(in.horizon);
  out[kSourceScore] = static_cast<float>(s.source);
  out[kTargetScore] = static_cast<float>(s.target);
  for (size_t d = 0; d < D; ++d) {
    float* f = out.data() + kNumGlobal + kNumPerDomain * d;
    f[kPrevWeight] = in.prev_weights[d];
    f[kLoss] = in.losses[d];
    f[kDeltaBase] = (in.losses[d] - in.base_losses[d]) / in.base_losses[d];
    f[kDeltaLast] = (in.losses[d] - in.prev_losses[d]) / in.prev_losses[d];
    f[kIsTarget] = in.fields[d] == Field::kTarget ? 1.0f : 0.0f;
    f[kLogShare] = static_cast<float>(std::log(std::max(in.token_shares[d], 1e-12)));
  }
}

std::vector<std::string> layout(const std::vector<std::string>& domain_names) {
  std::vector<std::string> names = {"progress", "source_score", "target_score"};
  static const char* per[kNumPerDomain] = {"prev_weight", "loss", "delta_base", "delta_last", "is_target", "log_share"};
  for (const auto& d : domain_names)
    for (const char* p : per) names.push_back(fmt::format("{}.{}", d, p));
  return names;
}

std::vector<float> base_mixture(std::span<const Field> fields, std::span<const double> token_shares) {
  std::vector<float> w(fields.size(), 0.0f);
  double total = 0;
  for (size_t d = 0; d < fields.size(); ++d)
    if (fields[d] == Field::kSource) total += token_shares[d];
  for (size_t d = 0; d < fields.size(); ++d)
    if (fields[d] == Field::kSource) w[d] = static_cast<float>(total > 0 ? token_shares[d] / total : 0.0);
  if (total <= 0)
    for (auto& x : w) x = 1.0f / static_cast<float>(w.size());
  return w;
}

}  // namespace dma::obs
