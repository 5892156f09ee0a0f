#include "dma/observation.hpp"

#include <cmath>
#include <utility>

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

Tracker::Tracker(EpisodeFrame frame)
    : frame_(std::move(frame)),
      prev_weights_(base_mixture(frame_.fields, frame_.token_shares)),
      losses_(frame_.base_losses),
      prev_losses_(frame_.base_losses) {}

std::vector<float> Tracker::observation() const {
  std::vector<float> out(static_cast<size_t>(dim(frame_.num_domains())));
  build({step_, frame_.horizon, prev_weights_, losses_, prev_losses_, frame_.base_losses, frame_.fields,
         frame_.token_shares},
        out);
  return out;
}

void Tracker::advance(std::span<const double> weights, std::span<const float> losses) {
  const size_t D = frame_.fields.size();
  if (weights.size() != D || losses.size() != D)
    throw Error(fmt::format("obs::Tracker: {} weights and {} losses for {} domains", weights.size(), losses.size(), D));
  prev_weights_.assign(weights.begin(), weights.end());
  prev_losses_ = losses_;
  losses_.assign(losses.begin(), losses.end());
  ++step_;
}

}  // namespace dma::obs
