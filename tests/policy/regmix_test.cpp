// fit_regmix: the RegMix regression recovers the best static mixture of a known score.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "dma/error.hpp"
#include "policy_helpers.hpp"
#include "support/compare.hpp"

namespace dma {
namespace {

using test::make_context;

/// A quadratic score on the simplex with its maximum at the interior point `best`.
double quadratic_score(const std::vector<double>& w, const std::vector<double>& best) {
  double s = 0.4;
  for (size_t d = 0; d < w.size(); ++d) s -= (1.0 + 0.5 * d) * (w[d] - best[d]) * (w[d] - best[d]);
  // A cross term, so the fit needs the pairwise products.
  return s - 0.8 * (w[0] - best[0]) * (w[1] - best[1]);
}

std::vector<std::vector<double>> dirichlet_points(int n, size_t D, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gamma(1.0);
  std::vector<std::vector<double>> points;
  for (int i = 0; i < n; ++i) {
    std::vector<double> w(D);
    double total = 0;
    for (auto& x : w) total += (x = gamma(rng));
    for (auto& x : w) x /= total;
    points.push_back(w);
  }
  return points;
}

using dma::test::max_abs_diff;

TEST(Regmix, RecoversTheBestMixtureOfAQuadraticScore) {
  const auto ctx = make_context(3, 2, 8);
  const std::vector<double> best = {0.1, 0.3, 0.05, 0.35, 0.2};
  const auto points = dirichlet_points(200, 5, 1);
  std::vector<double> scores;
  std::mt19937_64 noise_rng(2);
  std::normal_distribution<double> noise(0.0, 0.002);
  for (const auto& w : points) scores.push_back(quadratic_score(w, best) + noise(noise_rng));
  const RegmixFit fit = fit_regmix(points, scores, ctx, 20000, 5);
  ASSERT_EQ(fit.best_weights.size(), 5u);
  EXPECT_LT(max_abs_diff(fit.best_weights, best), 0.03);
  EXPECT_NEAR(fit.predicted_score, 0.4, 0.01);
  EXPECT_GT(fit.r2, 0.97);
  EXPECT_GT(fit.r2_loo, 0.95);
  EXPECT_EQ(fit.episodes, 200);
  double total = 0;
  for (double w : fit.best_weights) total += w;
  EXPECT_NEAR(total, 1.0, 1e-12);
}

TEST(Regmix, FitsWithFewerEpisodesThanFeaturesAndStaysNearTheData) {
  // 12 domains (12 + 66 quadratic features) from 40 episodes. The score rewards domain 4;
  // its vertex lies far from every fitted mixture, so RegMix moves toward it only as far as
  // the data reaches: more of domain 4 than almost every episode, never an extrapolated vertex.
  const auto ctx = make_context(8, 4, 8);
  const auto points = dirichlet_points(40, 12, 3);
  std::vector<double> scores, w4;
  for (const auto& w : points) scores.push_back(2.0 * w[4] - 0.5 * w[0]), w4.push_back(w[4]);
  const RegmixFit fit = fit_regmix(points, scores, ctx, 5000, 1);
  std::sort(w4.begin(), w4.end());
  EXPECT_GT(fit.best_weights[4], w4[35]);
  EXPECT_LT(fit.best_weights[4], 0.9);
  EXPECT_EQ(std::max_element(fit.best_weights.begin(), fit.best_weights.end()) - fit.best_weights.begin(), 4);
  EXPECT_GT(fit.r2_loo, 0.9);
  EXPECT_EQ(fit.features, "linear");
}

/// A score like the measured ones: the target share matters most (best near 0.55), and
/// spreading the source weight protects the source field.
double field_score(const DomainContext& ctx, const std::vector<double>& w) {
  const double ts = test::target_share(ctx, w), src = 1.0 - ts;
  double herfindahl = 0;
  for (size_t d = 0; d < w.size(); ++d)
    if (ctx.fields[d] == Field::kSource && src > 1e-9) herfindahl += (w[d] / src) * (w[d] / src);
  return 0.33 - 1.2 * (ts - 0.55) * (ts - 0.55) - 0.03 * (herfindahl - 0.125) * src;
}

TEST(Regmix, OnRandomWalkEpisodesMatchesTheBestFixedShare) {
  // 43 episodes of the random walk (a demo collection's worth), seed noise 0.0015.
  const auto ctx = make_context(8, 4, 16);
  auto walk = test::make_builtin_policy("random", ctx, Config{});
  std::vector<std::int64_t> ids(43);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<std::vector<double>> means;
  std::vector<double> scores;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0.0, 0.0015);
  for (const auto& episode : test::run_episodes(*walk, ctx, ids)) {
    std::vector<double> mean(12, 0.0);
    for (const auto& row : episode)
      for (size_t d = 0; d < 12; ++d) mean[d] += row[d] / 16;
    means.push_back(mean);
    scores.push_back(field_score(ctx, mean) + noise(rng));
  }
  const RegmixFit fit = fit_regmix(means, scores, ctx, 20000, 2);
  double best_fixed = -1;
  for (int k = 0; k <= 100; ++k)
    best_fixed = std::max(best_fixed, field_score(ctx, mixture_from_target_share(ctx, k / 100.0)));
  EXPECT_GT(field_score(ctx, fit.best_weights), best_fixed - 0.002);
  EXPECT_NEAR(test::target_share(ctx, fit.best_weights), 0.55, 0.05);
}

TEST(Regmix, DeterministicGivenTheSeed) {
  const auto ctx = make_context(2, 2, 8);
  const std::vector<double> best = {0.4, 0.1, 0.3, 0.2};
  const auto points = dirichlet_points(60, 4, 4);
  std::vector<double> scores;
  for (const auto& w : points) scores.push_back(quadratic_score(w, best));
  EXPECT_EQ(fit_regmix(points, scores, ctx, 3000, 9).best_weights,
            fit_regmix(points, scores, ctx, 3000, 9).best_weights);
}

TEST(Regmix, RejectsBadInput) {
  const auto ctx = make_context(2, 2, 8);
  const auto points = dirichlet_points(10, 4, 4);
  EXPECT_THROW(fit_regmix(points, std::vector<double>(9, 0.0), ctx, 100, 1), PolicyError);
  EXPECT_THROW(fit_regmix(dirichlet_points(10, 3, 4), std::vector<double>(10, 0.0), ctx, 100, 1), PolicyError);
  std::vector<double> scores(10, 0.0);
  scores[3] = std::nan("");
  EXPECT_THROW(fit_regmix(points, scores, ctx, 100, 1), PolicyError);
  EXPECT_THROW(fit_regmix(points, std::vector<double>(10, 0.0), ctx, 0, 1), PolicyError);
}

}  // namespace
}  // namespace dma
