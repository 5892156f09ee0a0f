// `random`: the covering random walk of DESIGN §1, drawn whole at begin_episode from the
// episode seed (so it is the same whatever the ranks, slots or batch it is acted in).
//
// 1. Target-field share curve. A level m ~ U(0, 1) is the episode's mean share; a shape
//    from `knots` uniform control points, linearly interpolated over the horizon, is
//    centred and scaled by a random amplitude (the square root of a uniform, so wide
//    swings are common) times the room the level leaves, so the curve stays in [0, 1]
//    and its mean is the level. Interpolated uniform knots alone would average out (4
//    knots: episode means with std 0.15 around 0.5), the flat Dirichlet's failure at a
//    smaller scale; the level makes the episode mean uniform over 0..1 while the shape
//    still varies the timing.
// 2. Weights within each field: Dirichlet(within_alpha) at every step, smoothed with the
//    beta-gamma AR(1) process G_t = B_t G_{t-1} + E_t, B_t ~ Beta(s a, (1-s) a),
//    E_t ~ Gamma((1-s) a): every step is an exact Dirichlet(a) draw with lag-one
//    correlation s (smoothness), so smoothing never shrinks the mixtures toward uniform
//    as an exponential average of draws would. s = 0 draws afresh each step.
// 3. With probability concentrate_prob a field sits on one or two random domains: they
//    hold 1 - leak of its weight (leak ~ U(0, 0.1)), the rest shares the leak.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "internal.hpp"
#include "rng.hpp"

namespace dma::policy_detail {
namespace {

/// One group of domains whose within-group weights follow the smoothed Dirichlet walk.
class GammaWalk {
 public:
  GammaWalk(std::vector<int> members, double alpha, double smoothness)
      : members_(std::move(members)), alpha_(alpha), s_(smoothness), g_(members_.size()) {}

  void start(Rng& rng) {
    for (auto& g : g_) g = rng.gamma(alpha_);
  }
  void advance(Rng& rng) {
    for (auto& g : g_) {
      const double keep = s_ > 0 ? rng.beta(s_ * alpha_, (1.0 - s_) * alpha_) : 0.0;
      g = keep * g + rng.gamma((1.0 - s_) * alpha_);
    }
  }
  /// Adds mass * (normalised weights) to `row` (D).
  void add_to(std::span<double> row, double mass, std::vector<double>& last) const {
    double total = 0;
    for (double g : g_) total += g;
    // Every gamma underflowed (tiny alpha): keep the previous weights of the group.
    if (total > 0)
      for (size_t i = 0; i < g_.size(); ++i) last[i] = g_[i] / total;
    for (size_t i = 0; i < g_.size(); ++i) row[static_cast<size_t>(members_[i])] += mass * last[i];
  }
  size_t size() const { return members_.size(); }

 private:
  std::vector<int> members_;
  double alpha_, s_;
  std::vector<double> g_;  // (members)
};

/// The field's walk: one group, or a concentrated group plus a leak group.
struct FieldWalk {
  std::vector<GammaWalk> groups;
  std::vector<double> masses;
  std::vector<std::vector<double>> last;  // previous weights per group (underflow fallback)
};

FieldWalk draw_field(const std::vector<int>& members, const RandomPolicyConfig& cfg, Rng& rng) {
  FieldWalk f;
  const bool concentrate = members.size() > 1 && rng.uniform() < cfg.concentrate_prob;
  if (!concentrate) {
    f.groups.emplace_back(members, cfg.within_alpha, cfg.smoothness);
    f.masses.push_back(1.0);
  } else {
    std::vector<int> pool = members, chosen;
    const size_t k = std::min<size_t>(rng.uniform() < 0.5 ? 1 : 2, members.size() - 1);
    for (size_t i = 0; i < k; ++i) {
      const size_t j = rng.index(pool.size());
      chosen.push_back(pool[j]);
      pool.erase(pool.begin() + static_cast<long>(j));
    }
    const double leak = 0.1 * rng.uniform();
    f.groups.emplace_back(chosen, cfg.within_alpha, cfg.smoothness);
    f.groups.emplace_back(pool, cfg.within_alpha, cfg.smoothness);
    f.masses = {1.0 - leak, leak};
  }
  for (auto& g : f.groups) {
    f.last.emplace_back(g.size(), 1.0 / static_cast<double>(g.size()));
    g.start(rng);
  }
  return f;
}

/// The target share at each of T steps; mean exactly the drawn level.
std::vector<double> share_curve(int T, const RandomPolicyConfig& cfg, Rng& rng) {
  const double level = rng.uniform();
  const double amplitude = std::sqrt(rng.uniform());  // leans to wide swings: timing is what the agent learns
  const int K = std::max(1, cfg.knots);
  std::vector<double> knots(static_cast<size_t>(K));
  for (auto& k : knots) k = rng.uniform();
  std::vector<double> shape(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) {
    const double x = (K > 1 && T > 1) ? static_cast<double>(t) * (K - 1) / (T - 1) : 0.0;
    const int i = std::min(static_cast<int>(x), K - 1);
    const double f = x - i;
    shape[static_cast<size_t>(t)] =
        i + 1 < K ? (1 - f) * knots[static_cast<size_t>(i)] + f * knots[static_cast<size_t>(i) + 1]
                  : knots[static_cast<size_t>(i)];
  }
  double mean = 0, up = 0, down = 0;
  for (double v : shape) mean += v / T;
  for (double v : shape) up = std::max(up, v - mean), down = std::max(down, mean - v);
  // At amplitude 1 the curve touches 0 or 1; the mean stays the level (deviations sum to 0).
  double room = 1e300;
  if (up > 1e-12) room = std::min(room, (1.0 - level) / up);
  if (down > 1e-12) room = std::min(room, level / down);
  const double scale = room < 1e300 ? amplitude * room : 0.0;
  std::vector<double> curve(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t)
    curve[static_cast<size_t>(t)] = std::clamp(level + scale * (shape[static_cast<size_t>(t)] - mean), 0.0, 1.0);
  return curve;
}

class RandomWalkPolicy final : public Policy {
 public:
  RandomWalkPolicy(std::string name, const DomainContext& ctx, const RandomPolicyConfig& cfg)
      : name_(std::move(name)), ctx_(ctx), cfg_(cfg) {
    for (int d = 0; d < ctx.num_domains(); ++d)
      (ctx.fields[static_cast<size_t>(d)] == Field::kTarget ? target_ : source_).push_back(d);
  }

  std::string name() const override { return name_; }

  void begin_episode(std::int64_t episode_id, std::uint64_t seed) override { plans_[episode_id] = draw(seed); }
  void end_episode(std::int64_t episode_id) override { plans_.erase(episode_id); }

  void act(const ActBatch& batch, std::span<double> weights) override {
    check_batch(name_, batch, weights, ctx_, /*needs_obs=*/false);
    const size_t D = source_.size() + target_.size();
    for (size_t b = 0; b < static_cast<size_t>(batch.batch); ++b) {
      const auto it = plans_.find(batch.episode_ids[b]);
      if (it == plans_.end())
        throw PolicyError(
            fmt::format("policy '{}': act() for episode {} before begin_episode", name_, batch.episode_ids[b]));
      const auto t = static_cast<size_t>(batch.steps[b]);
      std::copy_n(it->second.begin() + static_cast<long>(t * D), D, weights.begin() + static_cast<long>(b * D));
    }
  }

 private:
  /// The whole episode's weights, (T, D) row-major.
  std::vector<double> draw(std::uint64_t seed) const {
    Rng rng(seed);
    const int T = ctx_.horizon;
    const size_t D = source_.size() + target_.size();
    auto share = share_curve(T, cfg_, rng);
    if (target_.empty()) std::fill(share.begin(), share.end(), 0.0);  // a field without domains gets nothing
    if (source_.empty()) std::fill(share.begin(), share.end(), 1.0);
    std::vector<FieldWalk> fields;
    for (const auto* members : {&source_, &target_})
      if (!members->empty()) fields.push_back(draw_field(*members, cfg_, rng));
    std::vector<double> plan(static_cast<size_t>(T) * D, 0.0);
    for (int t = 0; t < T; ++t) {
      std::span<double> row(plan.data() + static_cast<size_t>(t) * D, D);
      const double target_share = share[static_cast<size_t>(t)];
      for (size_t f = 0; f < fields.size(); ++f) {
        const bool is_target = source_.empty() || f == 1;
        const double mass = is_target ? target_share : 1.0 - target_share;
        auto& field = fields[f];
        if (t > 0)
          for (auto& g : field.groups) g.advance(rng);
        for (size_t g = 0; g < field.groups.size(); ++g)
          field.groups[g].add_to(row, mass * field.masses[g], field.last[g]);
      }
      finish_row(row);
    }
    return plan;
  }

  std::string name_;
  DomainContext ctx_;
  RandomPolicyConfig cfg_;
  std::vector<int> source_, target_;                   // domain indices per field
  std::map<std::int64_t, std::vector<double>> plans_;  // episode id -> (T, D)
};

}  // namespace

std::unique_ptr<Policy> make_random_policy(const PolicySpec& random, const DomainContext& ctx,
                                           const RandomPolicyConfig& cfg) {
  const std::string spec = to_string(random);
  if (!(cfg.within_alpha > 0) || cfg.smoothness < 0 || cfg.smoothness >= 1 || cfg.concentrate_prob < 0 ||
      cfg.concentrate_prob > 1 || cfg.knots < 1)
    throw PolicyError(
        fmt::format("policy '{}': random.within_alpha must be > 0, random.smoothness in [0, 1), "
                    "random.concentrate_prob in [0, 1] and random.knots >= 1",
                    spec));
  return std::make_unique<RandomWalkPolicy>(spec, ctx, cfg);
}

}  // namespace dma::policy_detail
