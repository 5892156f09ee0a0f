// The tuned baselines' search: budgets, convergence on known optima, determinism, and the
// specs it hands to the policy registry.
#include "dma/tuning.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "dma/error.hpp"
#include "policy_helpers.hpp"

namespace dma {
namespace {

/// The two target shares of tuned-schedule:a>b (or one of tuned-fixed:a).
std::vector<double> shares(const PolicySpec& spec) {
  std::vector<double> out;
  for (const auto& m : spec.mixtures) out.push_back(m.values.at(0));
  return out;
}

/// A score with one peak at the schedule 0.8 > 0.3; a constant share is the schedule a > a, so
/// constants peak at 0.55.
ScoreBatch peaked(int& calls, std::vector<std::string>& seen) {
  return [&calls, &seen](const std::vector<PolicySpec>& specs) {
    ++calls;
    std::vector<double> out;
    for (const auto& s : specs) {
      seen.push_back(to_string(s));
      const auto x = shares(s);
      out.push_back(-std::pow(x.front() - 0.8, 2) - std::pow(x.back() - 0.3, 2));
    }
    return out;
  };
}

TEST(Tuning, ConstantShareConvergesToThePeakWithinTheFinestStep) {
  int calls = 0;
  std::vector<std::string> seen;
  const auto r = tune_family(TunedFamily::kFixed, 1000, 4, 0.2, peaked(calls, seen));
  EXPECT_NEAR(shares(r.best)[0], 0.55, 1.0 / 80);
  EXPECT_EQ(r.best.kind, PolicyKind::kTunedFixed);
  EXPECT_EQ(r.rollouts, 4 * static_cast<int>(r.candidates.size()));
  EXPECT_LT(r.rollouts, 1000);  // it converged before the budget ran out
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size()) << "a candidate was scored twice";
  EXPECT_DOUBLE_EQ(r.best_score, *std::max_element(r.scores.begin(), r.scores.end()));
}

TEST(Tuning, ScheduleFindsBothEnds) {
  int calls = 0;
  std::vector<std::string> seen;
  const auto r = tune_family(TunedFamily::kSchedule, 1000, 1, 0.2, peaked(calls, seen));
  const auto x = shares(r.best);
  ASSERT_EQ(x.size(), 2u);
  EXPECT_NEAR(x[0], 0.8, 2.0 / 80);
  EXPECT_NEAR(x[1], 0.3, 2.0 / 80);
  // The search starts from the constant middle share.
  EXPECT_EQ(to_string(r.candidates.front()), "tuned-schedule:0.5>0.5");
}

TEST(Tuning, ScheduleRefinesTheTunedConstant) {
  int calls = 0;
  std::vector<std::string> seen;
  const auto constant = tune_family(TunedFamily::kFixed, 1000, 4, 0.2, peaked(calls, seen));
  EXPECT_TRUE(constant.converged);
  const auto known = schedule_scores(constant);
  EXPECT_EQ(known.size(), constant.candidates.size());
  EXPECT_DOUBLE_EQ(known.at("tuned-schedule:0.55>0.55"), constant.best_score);
  const auto r =
      tune_family(TunedFamily::kSchedule, 1000, 1, 0.2, peaked(calls, seen), schedule_start(constant), known);
  // It starts at the tuned constant without tilt, rolls out none of the constants again, and
  // still finds both ends.
  for (const auto& c : r.candidates) EXPECT_EQ(known.count(to_string(c)), 0u) << to_string(c);

  const auto x = shares(r.best);
  EXPECT_NEAR(x[0], 0.8, 2.0 / 80);
  EXPECT_NEAR(x[1], 0.3, 2.0 / 80);
  EXPECT_TRUE(r.converged);
  EXPECT_THROW(schedule_start(r), Error);
  EXPECT_THROW(CompassSearch(2, 0.2, {0.5}), ConfigError);
}

TEST(Tuning, StaysWithinTheBudgetAndCutsTheLastBatch) {
  int calls = 0;
  std::vector<std::string> seen;
  const auto r = tune_family(TunedFamily::kSchedule, 7, 2, 0.2, peaked(calls, seen));
  // 7 rollouts at 2 seeds: 3 candidates (the centre, then 2 of its 4 neighbours)
  EXPECT_EQ(r.candidates.size(), 3u);
  EXPECT_EQ(r.rollouts, 6);
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(r.converged);
}

TEST(Tuning, IsDeterministicGivenTheScores) {
  int calls = 0;
  std::vector<std::string> a, b;
  const auto r1 = tune_family(TunedFamily::kSchedule, 40, 2, 0.2, peaked(calls, a));
  const auto r2 = tune_family(TunedFamily::kSchedule, 40, 2, 0.2, peaked(calls, b));
  EXPECT_EQ(a, b);
  EXPECT_EQ(r1.best, r2.best);
}

TEST(Tuning, RefusesABudgetThatCannotScoreOneCandidate) {
  int calls = 0;
  std::vector<std::string> seen;
  try {
    tune_family(TunedFamily::kFixed, 3, 4, 0.2, peaked(calls, seen));
    FAIL() << "accepted 3 rollouts at 4 seeds";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tune.rollouts = 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(calls, 0);
}

TEST(Tuning, SpecsAreWhatMakePolicyBuilds) {
  const auto ctx = test::make_context(3, 2, 4);
  EXPECT_EQ(to_string(tuned_spec(TunedFamily::kFixed, {0.5375})), "tuned-fixed:0.5375");
  // mean 0.55, tilt 0.6: from 0.65 to 0.45; ends clamp to [0, 1]
  EXPECT_EQ(to_string(tuned_spec(TunedFamily::kSchedule, {0.55, 0.6})), "tuned-schedule:0.65>0.45");
  EXPECT_EQ(to_string(tuned_spec(TunedFamily::kSchedule, {0.9, 0.9})), "tuned-schedule:1>0.5");
  for (const auto* spec : {"tuned-fixed:0.5375", "tuned-schedule:0.65>0.45"}) {
    auto p = test::make_builtin_policy(spec, ctx, Config{});
    EXPECT_EQ(p->name(), spec);
    const auto steps = test::run_episodes(*p, ctx, {0})[0];
    EXPECT_NEAR(test::target_share(ctx, steps.front()), shares(parse_policy_spec(spec))[0], 1e-9);
    EXPECT_NEAR(test::target_share(ctx, steps.back()), shares(parse_policy_spec(spec)).back(), 1e-9);
  }
  EXPECT_EQ(tuned_family("tuned-fixed"), TunedFamily::kFixed);
  EXPECT_EQ(tuned_family("tuned-schedule:0.6>0.4"), TunedFamily::kSchedule);
  EXPECT_FALSE(tuned_family("fixed:0.5").has_value());
  // Bare, it must be tuned first; a schedule needs both ends.
  for (const auto* spec : {"tuned-fixed", "tuned-schedule", "tuned-schedule:", "tuned-schedule:0.6", "tuned-fixed:1.5"})
    EXPECT_THROW(test::make_builtin_policy(spec, ctx, Config{}), PolicyError) << spec;
}

}  // namespace
}  // namespace dma
