// Paired differences, Holm's correction and score specs, against values worked by hand
// (Student t with 2 degrees of freedom has the closed form F(t) = 1/2 + t / (2 sqrt(2 + t^2))).
#include "dma/paired.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "dma/error.hpp"
#include "dma/score.hpp"

namespace dma {
namespace {

TEST(Paired, DifferenceOverSharedSeedsWithItsStudentInterval) {
  // a − b = 1, 2, 4 on seeds 1..3; seed 9 is b's alone and seed 8 a's alone: both are left out.
  const SeedScores a{{1, 1.5}, {2, 2.0}, {3, 4.25}, {8, 100.0}};
  const SeedScores b{{1, 0.5}, {2, 0.0}, {3, 0.25}, {9, -100.0}};
  const PairedDiff d = paired_difference(a, b);
  EXPECT_EQ(d.n, 3);
  EXPECT_NEAR(d.mean, 7.0 / 3, 1e-12);
  EXPECT_NEAR(d.sd, std::sqrt(7.0 / 3), 1e-12);
  EXPECT_NEAR(d.se, std::sqrt(7.0 / 9), 1e-12);
  const double t975 = std::sqrt(2 * 0.95 * 0.95 / (1 - 0.95 * 0.95));  // F(t) = 0.975 at 2 degrees of freedom
  EXPECT_NEAR(d.ci_low, 7.0 / 3 - t975 * std::sqrt(7.0 / 9), 1e-9);
  EXPECT_NEAR(d.ci_high, 7.0 / 3 + t975 * std::sqrt(7.0 / 9), 1e-9);
  EXPECT_NEAR(d.p, 1 - std::sqrt(7.0) / 3, 1e-9);  // t = sqrt(7)
  EXPECT_NEAR(d.effect, (7.0 / 3) / std::sqrt(7.0 / 3), 1e-12);
  EXPECT_FALSE(d.ci_excludes_zero());  // t = 2.65 < 4.30 at 3 seeds
  // Reversed, everything flips sign but the p-value.
  const PairedDiff r = paired_difference(b, a);
  EXPECT_NEAR(r.mean, -d.mean, 1e-12);
  EXPECT_NEAR(r.ci_high, -d.ci_low, 1e-9);
  EXPECT_NEAR(r.p, d.p, 1e-12);
}

TEST(Paired, TooFewSeedsGiveNoInterval) {
  const PairedDiff one = paired_difference({{1, 2.0}}, {{1, 1.0}});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 1.0);
  EXPECT_TRUE(std::isinf(one.ci_low) && std::isinf(one.ci_high));
  EXPECT_FALSE(one.ci_excludes_zero());
  EXPECT_EQ(paired_difference({{1, 2.0}}, {{2, 1.0}}).n, 0);
  EXPECT_EQ(format_interval(one), "+1.0000 [n=1]");
}

TEST(Paired, ConstantDifferencesAreCertainUnlessZero) {
  const PairedDiff same = paired_difference({{1, 1.0}, {2, 2.0}}, {{1, 1.0}, {2, 2.0}});
  EXPECT_DOUBLE_EQ(same.p, 1.0);
  EXPECT_DOUBLE_EQ(same.effect, 0.0);
  const PairedDiff shifted = paired_difference({{1, 1.5}, {2, 2.5}}, {{1, 1.0}, {2, 2.0}});
  EXPECT_DOUBLE_EQ(shifted.p, 0.0);
  EXPECT_TRUE(shifted.ci_excludes_zero());
}

TEST(Paired, HolmStepsDownAndStaysMonotone) {
  // Sorted: 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06.
  const auto adjusted = holm({0.01, 0.04, 0.03});
  ASSERT_EQ(adjusted.size(), 3u);
  EXPECT_NEAR(adjusted[0], 0.03, 1e-12);
  EXPECT_NEAR(adjusted[1], 0.06, 1e-12);
  EXPECT_NEAR(adjusted[2], 0.06, 1e-12);
  EXPECT_NEAR(holm({0.5, 0.9})[1], 1.0, 1e-12);  // raised to the smaller p's 2 x 0.5
  EXPECT_NEAR(holm({0.5, 0.6})[0], 1.0, 1e-12);  // capped at 1
  EXPECT_TRUE(holm({}).empty());
  std::vector<PairedDiff> family(2);
  family[0].p = 0.02;
  family[1].p = 0.5;
  holm_adjust(family);
  EXPECT_NEAR(family[0].p_holm, 0.04, 1e-12);
  EXPECT_NEAR(family[1].p_holm, 0.5, 1e-12);
}

TEST(ScoreSpec, NamesAndArguments) {
  const EvalConfig base;
  EXPECT_EQ(with_score(base, "mean").score, "mean");
  const EvalConfig tight = with_score(base, "budget:0.01");
  EXPECT_EQ(tight.score, "budget");
  EXPECT_DOUBLE_EQ(tight.budget_tolerance, 0.01);
  EXPECT_DOUBLE_EQ(with_score(base, "weighted:0.7").target_weight, 0.7);
  // budget:0.01 penalises a source score of -0.02 that the default tolerance lets pass
  const FieldScores s{-0.02, 0.5};
  EXPECT_DOUBLE_EQ(balanced_score(s, with_score(base, "budget")), 0.5);
  EXPECT_NEAR(balanced_score(s, tight), 0.5 - 4 * 0.01, 1e-12);
  for (const char* bad : {"bogus", "budget:x", "budget:-0.1", "budget:", "mean:1", "weighted:2", ""}) {
    try {
      with_score(base, bad);
      ADD_FAILURE() << "accepted score '" << bad << "'";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("score"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace dma
