// online-eg: exponentiated-gradient re-weighting on per-domain loss progress.
#include <numeric>

#include <gtest/gtest.h>

#include "policy_helpers.hpp"

namespace dma {
namespace {

using test::make_context;

/// One observation row for D domains whose losses changed by `rel_change` over the last step.
std::vector<float> observation(const DomainContext& ctx, int step, const std::vector<float>& rel_change) {
  const size_t D = ctx.names.size();
  std::vector<float> base(D, 3.0f), prev(D, 2.5f), now(D);
  for (size_t d = 0; d < D; ++d) now[d] = prev[d] * (1.0f + rel_change[d]);
  std::vector<float> prev_w(D, 1.0f / static_cast<float>(D));
  std::vector<float> o(static_cast<size_t>(obs::dim(static_cast<int>(D))));
  obs::build({step, ctx.horizon, prev_w, now, step == 0 ? now : prev, base, ctx.fields, ctx.token_shares}, o);
  return o;
}

/// Acts for episodes `ids` at `step` with per-episode loss changes; returns (B, D) rows.
std::vector<std::vector<double>> act(Policy& p, const DomainContext& ctx, const std::vector<std::int64_t>& ids,
                                     int step, const std::vector<std::vector<float>>& changes) {
  const int D = ctx.num_domains(), B = static_cast<int>(ids.size());
  std::vector<float> obs;
  for (int b = 0; b < B; ++b) {
    const auto o = observation(ctx, step, changes[static_cast<size_t>(b)]);
    obs.insert(obs.end(), o.begin(), o.end());
  }
  std::vector<std::int32_t> steps(static_cast<size_t>(B), step);
  std::vector<double> w(static_cast<size_t>(B * D));
  p.act({B, obs::dim(D), ids, steps, obs}, w);
  std::vector<std::vector<double>> rows;
  for (int b = 0; b < B; ++b) rows.emplace_back(w.begin() + b * D, w.begin() + (b + 1) * D);
  return rows;
}

TEST(OnlineEg, StartsUniformAndFavoursDomainsThatImproveLeast) {
  const auto ctx = make_context(2, 2, 8);
  auto p = test::make_builtin_policy("online-eg", ctx, Config{});
  p->begin_episode(1, 11);
  const std::vector<float> change = {+0.02f, -0.01f, -0.02f, -0.05f};  // domain 0 forgets, 3 learns most
  for (double w : std::vector<double>(act(*p, ctx, {1}, 0, {change})[0])) EXPECT_NEAR(w, 0.25, 1e-12);
  const auto w1 = act(*p, ctx, {1}, 1, {change})[0];
  EXPECT_GT(w1[0], w1[1]);
  EXPECT_GT(w1[1], w1[2]);
  EXPECT_GT(w1[2], w1[3]);
  EXPECT_GE(w1[3], 0.1 / 4);  // smoothing keeps every domain alive
  // The same signal again keeps moving weight the same way (state carries over steps).
  const auto w2 = act(*p, ctx, {1}, 2, {change})[0];
  EXPECT_GT(w2[0], w1[0]);
  EXPECT_LT(w2[3], w1[3]);
  // Acting twice on one step repeats the decision.
  EXPECT_EQ(act(*p, ctx, {1}, 2, {change})[0], w2);
}

TEST(OnlineEg, KeepsStatePerEpisode) {
  const auto ctx = make_context(2, 2, 8);
  auto p = test::make_builtin_policy("online-eg", ctx, Config{});
  p->begin_episode(1, 0);
  p->begin_episode(2, 0);
  const std::vector<float> a = {0.01f, -0.01f, -0.02f, -0.03f}, b = {-0.03f, -0.02f, -0.01f, 0.01f};
  act(*p, ctx, {1, 2}, 0, {a, b});
  const auto rows = act(*p, ctx, {1, 2}, 1, {a, b});
  EXPECT_GT(rows[0][0], rows[0][3]);
  EXPECT_LT(rows[1][0], rows[1][3]);
  // A new episode under an old id starts afresh.
  p->end_episode(1);
  p->begin_episode(1, 0);
  for (double w : std::vector<double>(act(*p, ctx, {1}, 0, {a})[0])) EXPECT_NEAR(w, 0.25, 1e-12);
}

TEST(OnlineEg, StepSizeZeroAndEqualProgressStayUniform) {
  const auto ctx = make_context(3, 1, 8);
  Config config;
  config.online_eg.step_size = 0.0;
  auto p = test::make_builtin_policy("online-eg", ctx, config);
  p->begin_episode(0, 0);
  for (int t = 0; t < 4; ++t)
    for (double w : std::vector<double>(act(*p, ctx, {0}, t, {{0.1f, -0.1f, 0.0f, 0.05f}})[0]))
      EXPECT_NEAR(w, 0.25, 1e-12);
  auto q = test::make_builtin_policy("online-eg", ctx, Config{});
  q->begin_episode(0, 0);
  for (int t = 0; t < 4; ++t)
    for (double w : std::vector<double>(act(*q, ctx, {0}, t, {{-0.02f, -0.02f, -0.02f, -0.02f}})[0]))
      EXPECT_NEAR(w, 0.25, 1e-12);
}

TEST(OnlineEg, NonFiniteObservationsStillGiveSimplexRows) {
  const auto ctx = make_context(2, 2, 8);
  auto p = test::make_builtin_policy("online-eg", ctx, Config{});
  p->begin_episode(0, 0);
  act(*p, ctx, {0}, 0, {{0, 0, 0, 0}});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto w = act(*p, ctx, {0}, 1, {{nan, 0.01f, -0.01f, std::numeric_limits<float>::infinity()}})[0];
  for (double x : w) EXPECT_TRUE(std::isfinite(x) && x >= 0);
  EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-12);
}

TEST(OnlineEg, RejectsMalformedObservations) {
  const auto ctx = make_context(2, 2, 8);
  auto p = test::make_builtin_policy("online-eg", ctx, Config{});
  p->begin_episode(0, 0);
  std::vector<std::int64_t> id = {0};
  std::vector<std::int32_t> step = {0};
  std::vector<float> o(5);
  std::vector<double> w(4);
  EXPECT_THROW(p->act({1, 5, id, step, o}, w), PolicyError);
}

}  // namespace
}  // namespace dma
