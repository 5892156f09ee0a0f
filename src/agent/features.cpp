#include "features.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dma/error.hpp"
#include "dma/observation.hpp"

namespace dma::agent {
namespace {

enum StepFeature : int {
  kWeightRel = 0,  // w_prev * D: 1 is uniform, whatever D is (transfer across domain counts)
  kLogWeightRel,   // log(w_prev * D + 0.01): resolves small weights
  kLogLoss,
  kDeltaBase,
  kDeltaLast,
  kIsTarget,
  kLogShareRel,  // log(share * D)
  kProgress,
  kSourceScore,
  kTargetScore,
  kPrevTargetShare,  // sum of w_prev over target domains: the quantity that matters most
};
static_assert(kPrevTargetShare + 1 == kStepFeatures);

}  // namespace

const std::vector<std::string>& step_feature_names() {
  static const std::vector<std::string> names = {"weight_rel",   "log_weight_rel", "log_loss",         "delta_base",
                                                 "delta_last",   "is_target",      "log_share_rel",    "progress",
                                                 "source_score", "target_score",   "prev_target_share"};
  return names;
}

int step_feature_column(const std::string& name) {
  const auto& names = step_feature_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) throw Error(fmt::format("agent: no step feature is called '{}'", name));
  return static_cast<int>(it - names.begin());
}

std::string feature_layout(int history) {
  std::string s = fmt::format("history={};", history);
  for (size_t i = 0; i < step_feature_names().size(); ++i) s += (i ? "," : "") + step_feature_names()[i];
  return s;
}

void step_features(std::span<const float> observation, int num_domains, std::span<float> out) {
  const int D = num_domains;
  if (observation.size() != static_cast<size_t>(obs::dim(D)) || out.size() != static_cast<size_t>(D * kStepFeatures))
    throw Error(fmt::format("agent: an observation of {} floats does not fit {} domains (expected {})",
                            observation.size(), D, obs::dim(D)));
  const float dd = static_cast<float>(D);
  float target_share = 0;
  for (int d = 0; d < D; ++d)
    if (observation[obs::index(d, obs::kIsTarget)] > 0.5f) target_share += observation[obs::index(d, obs::kPrevWeight)];
  for (int d = 0; d < D; ++d) {
    const float* o = observation.data() + obs::index(d, obs::kPrevWeight);
    float* f = out.data() + d * kStepFeatures;
    f[kWeightRel] = o[obs::kPrevWeight] * dd;
    f[kLogWeightRel] = std::log(std::max(o[obs::kPrevWeight], 0.0f) * dd + 0.01f);
    f[kLogLoss] = std::log(std::max(o[obs::kLoss], 1e-6f));
    f[kDeltaBase] = o[obs::kDeltaBase];
    f[kDeltaLast] = o[obs::kDeltaLast];
    f[kIsTarget] = o[obs::kIsTarget];
    f[kLogShareRel] = o[obs::kLogShare] + std::log(dd);
    f[kProgress] = observation[obs::kProgress];
    f[kSourceScore] = observation[obs::kSourceScore];
    f[kTargetScore] = observation[obs::kTargetScore];
    f[kPrevTargetShare] = target_share;
  }
}

torch::Tensor episode_tokens(std::span<const float> observations, int steps, int num_domains, int history) {
  const int D = num_domains, T = steps, H = history, od = obs::dim(D);
  if (observations.size() != static_cast<size_t>(T) * od)
    throw Error(fmt::format("agent: {} floats are not {} observations of {} domains", observations.size(), T, D));
  auto per_step = torch::empty({T, D, kStepFeatures});  // (T, D, kStepFeatures)
  float* p = per_step.data_ptr<float>();
  for (int t = 0; t < T; ++t)
    step_features(observations.subspan(static_cast<size_t>(t) * od, od), D,
                  std::span<float>(p + static_cast<size_t>(t) * D * kStepFeatures, D * kStepFeatures));
  std::vector<torch::Tensor> parts;  // newest first
  for (int h = 0; h < H; ++h) {
    auto idx = (torch::arange(T, torch::kLong) - h).clamp_min(0);
    parts.push_back(per_step.index_select(0, idx));
  }
  return torch::cat(parts, /*dim=*/-1);  // (T, D, H * kStepFeatures)
}

torch::Tensor actor_input_mask(int history, const std::string& features) {
  const auto& names = step_feature_names();
  std::vector<float> step(names.size(), features == "all" ? 1.0f : 0.0f);
  std::stringstream list(features == "all" ? "" : features);
  for (std::string name; std::getline(list, name, ',');) {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end())
      throw ConfigError(fmt::format("agent.actor_features names '{}', which is not a feature: use 'all' or some of {}",
                                    name, fmt::join(names, ",")));
    step[static_cast<size_t>(it - names.begin())] = 1.0f;
  }
  return torch::tensor(step).repeat({history});
}

torch::Tensor field_log_counts(const torch::Tensor& is_target) {
  const auto targets = is_target.sum(/*dim=*/-1, /*keepdim=*/true);
  const auto sources = static_cast<double>(is_target.size(-1)) - targets;
  return (is_target * targets + (1 - is_target) * sources).clamp_min(1).log();
}

void target_mask_into(std::span<const float> observation, int num_domains, std::span<float> out) {
  for (int d = 0; d < num_domains; ++d) out[d] = observation[obs::index(d, obs::kIsTarget)] > 0.5f ? 1.0f : 0.0f;
}

torch::Tensor target_mask(std::span<const float> observation, int num_domains) {
  auto m = torch::empty({num_domains});
  target_mask_into(observation, num_domains, {m.data_ptr<float>(), static_cast<size_t>(num_domains)});
  return m;
}

Normalizer Normalizer::fit(const torch::Tensor& tokens) {
  auto flat = tokens.reshape({-1, tokens.size(-1)});
  Normalizer n;
  // torch::quantile refuses more than 2^24 rows: a strided subsample estimates them as well.
  constexpr std::int64_t kMaxRows = std::int64_t{1} << 22;
  const auto rows =
      flat.size(0) > kMaxRows ? flat.slice(0, 0, flat.size(0), (flat.size(0) + kMaxRows - 1) / kMaxRows) : flat;
  const auto q = torch::quantile(rows, torch::tensor({0.25, 0.5, 0.75}, flat.options()), /*dim=*/0);  // (3, F)
  n.mean = q[1];
  n.std = (q[2] - q[0]) / 1.349;
  // A column with a narrow middle (a binary field flag, a rarely moving weight) falls back
  // to its std; a constant column carries no information: leave it centred.
  auto sd = flat.std(/*dim=*/0, /*unbiased=*/false);
  n.std = torch::where(n.std < 1e-6, sd, n.std);
  n.std = torch::where(n.std < 1e-6, torch::ones_like(n.std), n.std);
  return n;
}

}  // namespace dma::agent
