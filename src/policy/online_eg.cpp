// `online-eg`: exponentiated-gradient re-weighting on per-domain loss progress (the
// DoReMi / ODM family). Domains whose held-out loss improved least over the last step (or
// got worse, as a source domain does while it is being forgotten) gain weight:
//   log w_d += step_size * z_d,   z = standardised relative loss change since the last step,
//   w = (1 - smoothing) * softmax(log w) + smoothing / D.
// Standardising across domains makes step_size unit-free: raw relative changes are around
// 1e-2, so a raw step of 1 would leave the mixture uniform. Starts uniform (DoReMi).
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "internal.hpp"

namespace dma::policy_detail {
namespace {

class OnlineEgPolicy final : public Policy {
 public:
  OnlineEgPolicy(std::string name, const DomainContext& ctx, const OnlineEgConfig& cfg)
      : name_(std::move(name)), ctx_(ctx), cfg_(cfg) {}

  std::string name() const override { return name_; }

  void begin_episode(std::int64_t episode_id, std::uint64_t /*seed*/) override {
    states_[episode_id] = State{std::vector<double>(ctx_.names.size(), 0.0), -1};
  }
  void end_episode(std::int64_t episode_id) override { states_.erase(episode_id); }

  void act(const ActBatch& batch, std::span<double> weights) override {
    check_batch(name_, batch, weights, ctx_, /*needs_obs=*/true);
    const size_t D = ctx_.names.size();
    for (size_t b = 0; b < static_cast<size_t>(batch.batch); ++b) {
      const auto it = states_.find(batch.episode_ids[b]);
      if (it == states_.end())
        throw PolicyError(
            fmt::format("policy '{}': act() for episode {} before begin_episode", name_, batch.episode_ids[b]));
      State& s = it->second;
      // Update once per new step: acting twice on one step (a retried round) repeats it.
      if (batch.steps[b] > s.step) {
        if (batch.steps[b] > 0)
          update(s, batch.observations.subspan(b * static_cast<size_t>(batch.obs_dim),
                                               static_cast<size_t>(batch.obs_dim)));
        s.step = batch.steps[b];
      }
      write(s, weights.subspan(b * D, D));
    }
  }

 private:
  struct State {
    std::vector<double> log_w;  // (D)
    std::int32_t step = -1;     // last step acted on
  };

  void update(State& s, std::span<const float> o) const {
    const size_t D = s.log_w.size();
    std::vector<double> z(D, 0.0);
    double mean = 0, var = 0;
    for (size_t d = 0; d < D; ++d) {
      const double v = o[static_cast<size_t>(obs::index(static_cast<int>(d), obs::kDeltaLast))];
      z[d] = std::isfinite(v) ? v : 0.0;  // a diverged domain reads as no progress signal
      mean += z[d] / static_cast<double>(D);
    }
    for (double v : z) var += (v - mean) * (v - mean) / static_cast<double>(D);
    const double sd = std::sqrt(var);
    if (!(sd > 1e-12)) return;  // every domain moved alike: nothing to re-weight
    double top = -1e300;
    for (size_t d = 0; d < D; ++d) {
      s.log_w[d] += cfg_.step_size * (z[d] - mean) / sd;
      top = std::max(top, s.log_w[d]);
    }
    // Keep the log-weights bounded; smoothing already floors every weight.
    for (auto& l : s.log_w) l = std::max(l - top, -50.0);
  }

  void write(const State& s, std::span<double> row) const {
    const size_t D = row.size();
    double total = 0;
    for (size_t d = 0; d < D; ++d) total += (row[d] = std::exp(s.log_w[d]));
    for (size_t d = 0; d < D; ++d)
      row[d] = (1.0 - cfg_.smoothing) * row[d] / total + cfg_.smoothing / static_cast<double>(D);
    finish_row(row);
  }

  std::string name_;
  DomainContext ctx_;
  OnlineEgConfig cfg_;
  std::map<std::int64_t, State> states_;
};

}  // namespace

std::unique_ptr<Policy> make_online_eg_policy(const PolicySpec& online_eg, const DomainContext& ctx,
                                              const OnlineEgConfig& cfg) {
  const std::string spec = to_string(online_eg);
  if (!(cfg.step_size >= 0) || !(cfg.smoothing >= 0 && cfg.smoothing <= 1))
    throw PolicyError(
        fmt::format("policy '{}': online_eg.step_size must be >= 0 and online_eg.smoothing in [0, 1]", spec));
  return std::make_unique<OnlineEgPolicy>(spec, ctx, cfg);
}

}  // namespace dma::policy_detail
