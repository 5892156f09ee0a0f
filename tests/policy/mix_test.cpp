// Policy mixes (collect.policies), lists (evaluate.policies) and assign_policy.
#include <cmath>

#include <gtest/gtest.h>

#include "dma/error.hpp"
#include "dma/policy.hpp"
#include "dma/seed.hpp"

namespace dma {
namespace {

std::string mix_error(const std::string& text) {
  try {
    parse_policy_mix(text);
  } catch (const PolicyError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    return e.what();
  }
  return "";
}

std::vector<std::string> names(const PolicyMix& mix) {
  std::vector<std::string> out;
  for (const auto& spec : mix.specs) out.push_back(to_string(spec));
  return out;
}

TEST(PolicyMix, ParsesSpecsAndProbabilities) {
  const auto mix = parse_policy_mix("random:0.8,uniform:0.1,target-only:0.1");
  EXPECT_EQ(names(mix), (std::vector<std::string>{"random", "uniform", "target-only"}));
  EXPECT_EQ(mix.probabilities, (std::vector<double>{0.8, 0.1, 0.1}));
}

TEST(PolicyMix, TheLastColonHoldsTheProbability) {
  const auto mix = parse_policy_mix("fixed:0.3:0.5, schedule:0.9>0.2 : 0.25,replay:/tmp/a:b.h5#3:0.25");
  EXPECT_EQ(names(mix), (std::vector<std::string>{"fixed:0.3", "schedule:0.9>0.2", "replay:/tmp/a:b.h5#3"}));
  EXPECT_EQ(mix.probabilities, (std::vector<double>{0.5, 0.25, 0.25}));
}

TEST(PolicyMix, ALoneSpecTakesEverything) {
  const auto mix = parse_policy_mix("random");
  EXPECT_EQ(names(mix), std::vector<std::string>{"random"});
  EXPECT_EQ(mix.probabilities, std::vector<double>{1.0});
}

TEST(PolicyMix, ErrorsSayWhatIsWrong) {
  EXPECT_NE(mix_error("random:0.5,uniform:0.4").find("sum to 0.9"), std::string::npos);
  EXPECT_NE(mix_error("random:0.9,uniform:0.2").find("sum to 1.1"), std::string::npos);
  EXPECT_NE(mix_error("fixed:0.3").find("sum to 0.3"), std::string::npos);
  EXPECT_NE(mix_error("random:1.5,uniform:-0.5").find("outside [0, 1]"), std::string::npos);
  EXPECT_NE(mix_error("random,uniform:0.1").find("<spec>:<probability>"), std::string::npos);
  EXPECT_NE(mix_error("random:0.9,,uniform:0.1").find("empty entry"), std::string::npos);
  EXPECT_NE(mix_error("").find("empty entry"), std::string::npos);
  EXPECT_NE(mix_error("random:x").find("<spec>:<probability>"), std::string::npos);
  EXPECT_NE(mix_error("foo:0.5,uniform:0.5").find("unknown policy 'foo'"), std::string::npos);
  EXPECT_NE(mix_error(":1").find("names no policy"), std::string::npos);
  EXPECT_EQ(mix_error("random:0.3333333,uniform:0.3333333,natural:0.3333334"), "");  // within 1e-6
}

TEST(PolicyList, SplitsAndTrims) {
  EXPECT_EQ(parse_policy_list("uniform, fixed:0.3 ,regmix,agent:a.pt"),
            (std::vector<std::string>{"uniform", "fixed:0.3", "regmix", "agent:a.pt"}));
  EXPECT_TRUE(parse_policy_list("").empty());  // evaluate.oracle's default
  EXPECT_TRUE(parse_policy_list("  ").empty());
  EXPECT_THROW(parse_policy_list("uniform,"), PolicyError);
  EXPECT_THROW(parse_policy_list("uniform,,natural"), PolicyError);
}

TEST(PolicyList, ParsesEachSpec) {
  const auto specs = parse_policy_specs("uniform, fixed:0.3 ,agent");
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[1], parse_policy_spec("fixed:0.3"));
  EXPECT_EQ(specs[2].kind, PolicyKind::kAgent);
  EXPECT_TRUE(specs[2].checkpoints.empty());
  EXPECT_TRUE(parse_policy_specs("").empty());
  EXPECT_THROW(parse_policy_specs("uniform,foo"), PolicyError);
}

TEST(AssignPolicy, FrequenciesMatchTheMix) {
  const auto mix = parse_policy_mix("random:0.7,uniform:0.2,target-only:0.1,natural:0");
  const int n = 40000;
  std::vector<int> counts(4, 0);
  for (int id = 0; id < n; ++id) ++counts[assign_policy(mix, 17, id)];
  for (size_t i = 0; i < 4; ++i) {
    const double p = mix.probabilities[i], sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(counts[i], n * p, 4 * sd + 1e-9) << to_string(mix.specs[i]);
  }
  EXPECT_EQ(counts[3], 0);
}

TEST(AssignPolicy, DependsOnRunSeedAndIdOnly) {
  const auto mix = parse_policy_mix("random:0.5,uniform:0.5");
  std::vector<size_t> forward, backward(200);
  for (int id = 0; id < 200; ++id) forward.push_back(assign_policy(mix, 3, id));
  for (int id = 199; id >= 0; --id) backward[static_cast<size_t>(id)] = assign_policy(mix, 3, id);
  EXPECT_EQ(forward, backward);
  int differ = 0;
  for (int id = 0; id < 200; ++id) differ += assign_policy(mix, 4, id) != forward[static_cast<size_t>(id)];
  EXPECT_GT(differ, 60);  // another run seed reshuffles about half
  // Not correlated with the policy stream of the same trajectory (its own stream).
  EXPECT_NE(kStreamAssign, kStreamPolicy);
}

}  // namespace
}  // namespace dma
