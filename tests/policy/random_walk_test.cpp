// The covering random walk (DESIGN §1): coverage of target shares, within-field draws,
// smoothness, concentration and determinism. D = 12 domains (8 source, 4 target), T = 16.
#include <algorithm>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "policy_helpers.hpp"

namespace dma {
namespace {

using test::Actions;
using test::make_context;
using test::run_episodes;
using test::target_share;

std::vector<std::int64_t> ids(int n, std::int64_t first = 0) {
  std::vector<std::int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<double> mean_target_shares(const DomainContext& ctx, const Actions& actions) {
  std::vector<double> means;
  for (const auto& episode : actions) {
    double m = 0;
    for (const auto& row : episode) m += target_share(ctx, row) / static_cast<double>(episode.size());
    means.push_back(m);
  }
  return means;
}

TEST(RandomWalk, MeanTargetSharesCoverTheWholeRange) {
  const auto ctx = make_context(8, 4, 16);
  auto p = test::make_builtin_policy("random", ctx, Config{});
  const auto means = mean_target_shares(ctx, run_episodes(*p, ctx, ids(500)));
  EXPECT_LT(*std::min_element(means.begin(), means.end()), 0.1);
  EXPECT_GT(*std::max_element(means.begin(), means.end()), 0.9);
  // Roughly uniform: each tenth of 0..1 holds 50 +- 25 of the 500 episodes.
  std::vector<int> bins(10, 0);
  for (double m : means) ++bins[std::min<size_t>(9, static_cast<size_t>(m * 10))];
  for (int b = 0; b < 10; ++b) {
    EXPECT_GE(bins[static_cast<size_t>(b)], 25) << "bin " << b;
    EXPECT_LE(bins[static_cast<size_t>(b)], 75) << "bin " << b;
  }
}

TEST(RandomWalk, FlatDirichletDoesNotCover) {
  // The failure the walk exists to fix: a flat 12-way Dirichlet per step (4 target domains).
  const auto ctx = make_context(8, 4, 16);
  std::mt19937_64 rng(3);
  std::gamma_distribution<double> gamma(1.0);
  double lo = 1, hi = 0;
  for (int e = 0; e < 500; ++e) {
    double mean = 0;
    for (int t = 0; t < 16; ++t) {
      std::vector<double> w(12);
      for (auto& x : w) x = gamma(rng);
      const double total = std::accumulate(w.begin(), w.end(), 0.0);
      for (auto& x : w) x /= total;
      mean += target_share(ctx, w) / 16;
    }
    lo = std::min(lo, mean), hi = std::max(hi, mean);
  }
  EXPECT_GT(lo, 0.1);
  EXPECT_LT(hi, 0.9);
}

TEST(RandomWalk, SharesVaryWithinEpisodesInBothDirections) {
  const auto ctx = make_context(8, 4, 16);
  auto p = test::make_builtin_policy("random", ctx, Config{});
  int rising = 0, falling = 0, per_step_low = 0, per_step_high = 0;
  for (const auto& episode : run_episodes(*p, ctx, ids(300))) {
    const double first = target_share(ctx, episode.front()), last = target_share(ctx, episode.back());
    rising += last - first > 0.3;
    falling += first - last > 0.3;
    for (const auto& row : episode) {
      per_step_low += target_share(ctx, row) < 0.05;
      per_step_high += target_share(ctx, row) > 0.95;
    }
  }
  EXPECT_GT(rising, 15);
  EXPECT_GT(falling, 15);
  EXPECT_GT(per_step_low, 50);
  EXPECT_GT(per_step_high, 50);
}

/// Within-source weights of domain 0 at step t, over episodes.
std::vector<double> within_source(const DomainContext& ctx, const Actions& actions, size_t t, size_t domain = 0) {
  std::vector<double> v;
  for (const auto& episode : actions) {
    const double source = 1.0 - target_share(ctx, episode[t]);
    if (source > 1e-3) v.push_back(episode[t][domain] / source);
  }
  return v;
}

TEST(RandomWalk, WithinFieldWeightsStayDirichletUnderSmoothing) {
  // Without concentration each step is an exact Dirichlet(alpha) within the field, however
  // smooth: the 8-way share of one domain has mean 1/8 and variance (1/8)(7/8)/(8 alpha + 1).
  const auto ctx = make_context(8, 4, 16);
  Config config;
  config.random.concentrate_prob = 0.0;
  config.random.smoothness = 0.8;
  auto p = test::make_builtin_policy("random", ctx, config);
  const auto actions = run_episodes(*p, ctx, ids(600));
  for (size_t t : {size_t{0}, size_t{15}}) {
    const auto v = within_source(ctx, actions, t);
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean) / static_cast<double>(v.size());
    EXPECT_NEAR(mean, 0.125, 0.015) << "step " << t;
    EXPECT_NEAR(var, 0.125 * 0.875 / 9, 0.004) << "step " << t;  // 0.0122; an averaged walk would shrink it
  }
}

double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / static_cast<double>(a.size());
  const double mb = std::accumulate(b.begin(), b.end(), 0.0) / static_cast<double>(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

double lag_one_correlation(const DomainContext& ctx, const Actions& actions) {
  std::vector<double> a, b;
  for (size_t t = 0; t + 1 < actions[0].size(); ++t) {
    const auto x = within_source(ctx, actions, t), y = within_source(ctx, actions, t + 1);
    if (x.size() != y.size()) continue;
    a.insert(a.end(), x.begin(), x.end());
    b.insert(b.end(), y.begin(), y.end());
  }
  return correlation(a, b);
}

// Correlation of the target share at step t with the share at t+1, over episodes and steps.
double target_share_lag_one(const DomainContext& ctx, const Actions& actions) {
  std::vector<double> a, b;
  for (const auto& episode : actions)
    for (size_t t = 0; t + 1 < episode.size(); ++t) {
      a.push_back(target_share(ctx, episode[t]));
      b.push_back(target_share(ctx, episode[t + 1]));
    }
  return correlation(a, b);
}

TEST(RandomWalk, SmoothnessSetsStepToStepCorrelation) {
  const auto ctx = make_context(8, 4, 16);
  Config config;
  config.random.concentrate_prob = 0.0;
  std::vector<double> corr;
  for (double s : {0.0, 0.5, 0.9}) {
    config.random.smoothness = s;
    auto p = test::make_builtin_policy("random", ctx, config);
    corr.push_back(lag_one_correlation(ctx, run_episodes(*p, ctx, ids(150))));
  }
  EXPECT_NEAR(corr[0], 0.0, 0.08);
  EXPECT_NEAR(corr[1], 0.5, 0.1);
  EXPECT_NEAR(corr[2], 0.9, 0.08);
}

TEST(RandomWalk, TheLastTargetShareForetellsTheNext) {
  const auto ctx = make_context(8, 4, 16);
  auto p = test::make_builtin_policy("random", ctx, Config{});
  const auto episodes = run_episodes(*p, ctx, ids(150));
  EXPECT_GT(target_share_lag_one(ctx, episodes), 0.9) << "smooth walks: the last share predicts the next";
  for (const auto& episode : episodes)
    for (const auto& row : episode) {
      EXPECT_GE(target_share(ctx, row), 0.0);
      EXPECT_LE(target_share(ctx, row), 1.0 + 1e-12);
    }
}

TEST(RandomWalk, SometimesConcentratesOnOneOrTwoDomains) {
  const auto ctx = make_context(8, 4, 16);
  Config config;
  config.random.concentrate_prob = 0.3;
  auto p = test::make_builtin_policy("random", ctx, config);
  int concentrated = 0;
  const auto actions = run_episodes(*p, ctx, ids(400));
  for (const auto& episode : actions) {
    // Mean within-source weights over the episode; the top two domains hold >= 0.9 of it.
    std::vector<double> mean(8, 0.0);
    for (const auto& row : episode) {
      const double source = 1.0 - target_share(ctx, row);
      if (source <= 1e-9) continue;
      for (size_t d = 0; d < 8; ++d) mean[d] += row[d] / source;
    }
    const double total = std::accumulate(mean.begin(), mean.end(), 0.0);
    std::sort(mean.begin(), mean.end(), std::greater<>());
    concentrated += (mean[0] + mean[1]) / total >= 0.9;
  }
  // 30% of episodes concentrate; an unconcentrated 8-way Dirichlet walk almost never does.
  EXPECT_GT(concentrated, 0.2 * 400);
  EXPECT_LT(concentrated, 0.4 * 400);
}

TEST(RandomWalk, DeterministicGivenTheEpisodeSeed) {
  const auto ctx = make_context(8, 4, 16);
  auto p = test::make_builtin_policy("random", ctx, Config{});
  auto q = test::make_builtin_policy("random", ctx, Config{});
  const auto a = run_episodes(*p, ctx, ids(5));
  // Same episodes, acted alone and in another batch composition: the same weights.
  EXPECT_EQ(a[3], run_episodes(*q, ctx, {3})[0]);
  EXPECT_EQ(a[0], run_episodes(*q, ctx, {9, 0, 11})[1]);
  // Another run seed gives another walk.
  EXPECT_NE(a[0], run_episodes(*q, ctx, {0}, /*run_seed=*/8)[0]);
  EXPECT_NE(a[0], a[1]);
}

TEST(RandomWalk, ActBeforeBeginIsAnError) {
  const auto ctx = make_context(2, 2, 4);
  auto p = test::make_builtin_policy("random", ctx, Config{});
  std::vector<std::int64_t> id = {5};
  std::vector<std::int32_t> step = {0};
  std::vector<double> w(4);
  EXPECT_THROW(p->act({1, 0, id, step, {}}, w), PolicyError);
}

TEST(RandomWalk, SingleFieldSpaces) {
  for (const auto& ctx : {make_context(5, 0, 6), make_context(0, 3, 6), make_context(1, 1, 6)}) {
    auto p = test::make_builtin_policy("random", ctx, Config{});
    for (const auto& episode : run_episodes(*p, ctx, ids(20)))
      for (const auto& row : episode) {
        EXPECT_NEAR(std::accumulate(row.begin(), row.end(), 0.0), 1.0, 1e-12);
        if (ctx.fields.front() == ctx.fields.back()) {
          EXPECT_NEAR(target_share(ctx, row), ctx.fields[0] == Field::kTarget ? 1.0 : 0.0, 1e-12);
        }
      }
  }
}

}  // namespace
}  // namespace dma
