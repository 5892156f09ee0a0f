// Open-loop baselines, the policy registry and its errors.
#include <gtest/gtest.h>

#include "dma/error.hpp"
#include "policy_helpers.hpp"

namespace dma {
namespace {

using test::make_context;
using test::run_episodes;
using test::target_share;

constexpr double kTol = 1e-12;

std::vector<double> first_action(const std::string& spec, const DomainContext& ctx) {
  auto p = test::make_builtin_policy(spec, ctx, PolicySettings{});
  EXPECT_EQ(p->name(), spec);
  return run_episodes(*p, ctx, {0})[0][0];
}

TEST(Baselines, UniformAndNatural) {
  const auto ctx = make_context(3, 2, 4);
  for (double w : first_action("uniform", ctx)) EXPECT_NEAR(w, 0.2, kTol);
  const auto natural = first_action("natural", ctx);
  for (size_t d = 0; d < natural.size(); ++d) EXPECT_NEAR(natural[d], ctx.token_shares[d], kTol);
}

TEST(Baselines, FieldOnlyUsesNaturalSharesWithinTheField) {
  const auto ctx = make_context(3, 2, 4);  // shares proportional to 1..5
  const auto source = first_action("source-only", ctx);
  EXPECT_NEAR(source[0], 1.0 / 6, kTol);
  EXPECT_NEAR(source[2], 3.0 / 6, kTol);
  EXPECT_NEAR(target_share(ctx, source), 0.0, kTol);
  const auto target = first_action("target-only", ctx);
  EXPECT_NEAR(target[3], 4.0 / 9, kTol);
  EXPECT_NEAR(target[4], 5.0 / 9, kTol);
  EXPECT_NEAR(target_share(ctx, target), 1.0, kTol);
}

TEST(Baselines, FixedTargetShare) {
  const auto ctx = make_context(3, 2, 4);
  const auto w = first_action("fixed:0.3", ctx);
  EXPECT_NEAR(target_share(ctx, w), 0.3, kTol);
  EXPECT_NEAR(w[3] / w[4], 4.0 / 5, kTol);  // natural shares within the target field
  EXPECT_NEAR(w[0] / w[1], 1.0 / 2, kTol);
  const auto mix = mixture_from_target_share(ctx, 0.3);
  for (size_t d = 0; d < w.size(); ++d) EXPECT_NEAR(w[d], mix[d], kTol);
}

TEST(Baselines, FixedSourceTargetRatio) {
  const auto ctx = make_context(3, 2, 4);
  EXPECT_NEAR(target_share(ctx, first_action("fixed:3:1", ctx)), 0.25, kTol);
  EXPECT_NEAR(target_share(ctx, first_action("fixed:0:2", ctx)), 1.0, kTol);
  // In a mix the last ':' still holds the probability.
  EXPECT_EQ(to_string(parse_policy_mix("fixed:3:1:1").specs[0]), "fixed:3:1");
  EXPECT_THROW(test::make_builtin_policy("fixed:3:-1", ctx, PolicySettings{}), PolicyError);
  EXPECT_THROW(test::make_builtin_policy("fixed:0:0", ctx, PolicySettings{}), PolicyError);
}

TEST(Baselines, FixedExplicitWeightsAreNormalised) {
  const auto ctx = make_context(3, 2, 4);
  const auto w = first_action("fixed:1/1/2/0/4", ctx);
  const std::vector<double> want = {0.125, 0.125, 0.25, 0.0, 0.5};
  for (size_t d = 0; d < w.size(); ++d) EXPECT_NEAR(w[d], want[d], kTol);
}

TEST(Baselines, ScheduleMovesLinearlyOverTheHorizon) {
  const auto ctx = make_context(3, 2, 8);
  auto p = test::make_builtin_policy("schedule:0.9>0.2", ctx, PolicySettings{});
  const auto actions = run_episodes(*p, ctx, {0, 1});
  for (const auto& episode : actions)
    for (int t = 0; t < 8; ++t)
      EXPECT_NEAR(target_share(ctx, episode[static_cast<size_t>(t)]), 0.9 - 0.7 * t / 7.0, 1e-12);
  auto q = test::make_builtin_policy("schedule:1/0/0/0/0>0/0/0/0/1", ctx, PolicySettings{});
  const auto path = run_episodes(*q, ctx, {0})[0];
  EXPECT_NEAR(path.front()[0], 1.0, kTol);
  EXPECT_NEAR(path.back()[4], 1.0, kTol);
  EXPECT_NEAR(path[2][0], 5.0 / 7, kTol);
}

TEST(Baselines, ScheduleWithOneStepPlaysItsStart) {
  const auto ctx = make_context(2, 2, 1);
  EXPECT_NEAR(target_share(ctx, first_action("schedule:0.25>0.75", ctx)), 0.25, kTol);
}

TEST(Baselines, MixtureFromTargetShareChecksFields) {
  const auto no_target = make_context(3, 0, 4);
  EXPECT_NEAR(mixture_from_target_share(no_target, 0.0)[0], 1.0 / 6, kTol);
  EXPECT_THROW(mixture_from_target_share(no_target, 0.5), PolicyError);
  EXPECT_THROW(mixture_from_target_share(make_context(2, 2, 4), 1.2), PolicyError);
  EXPECT_THROW(test::make_builtin_policy("target-only", no_target, Config{}), PolicyError);
}

/// The message of the PolicyError that building `spec` throws ("" when none).
std::string error_of(const std::string& spec, const DomainContext& ctx) {
  try {
    test::make_builtin_policy(spec, ctx, PolicySettings{});
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "";
}

TEST(Baselines, UnknownSpecListsTheValidOnes) {
  const auto ctx = make_context(2, 2, 4);
  EXPECT_EQ(error_of("foo", ctx),
            "unknown policy 'foo': use uniform|natural|source-only|target-only|fixed:<share>|schedule:<a>><b>|"
            "tuned-fixed[:<share>]|tuned-schedule[:<a>><b>]|random|online-eg|replay:<store>#<id>|regmix[:<store>]|"
            "agent:<ckpt>");
  EXPECT_NE(error_of("Uniform", ctx).find("unknown policy 'Uniform'"), std::string::npos);
  EXPECT_NE(error_of("", ctx).find("unknown policy ''"), std::string::npos);
}

TEST(Baselines, BadArgumentsNameTheSpecAndTheFix) {
  const auto ctx = make_context(4, 2, 4);
  const auto share = error_of("fixed:1.5", ctx);
  EXPECT_NE(share.find("'fixed:1.5'"), std::string::npos) << share;
  EXPECT_NE(share.find("[0, 1]"), std::string::npos) << share;
  const auto count = error_of("fixed:0.2/0.8", ctx);
  EXPECT_NE(count.find("gives 2 weights for 6 domains"), std::string::npos) << count;
  EXPECT_NE(error_of("fixed:abc", ctx).find("not a number"), std::string::npos);
  EXPECT_NE(error_of("fixed:1/1/-1/1/1/1", ctx).find("non-negative"), std::string::npos);
  EXPECT_NE(error_of("fixed:0/0/0/0/0/0", ctx).find("all 0"), std::string::npos);
  EXPECT_NE(error_of("fixed", ctx).find("'fixed'"), std::string::npos);
  EXPECT_NE(error_of("schedule:0.9", ctx).find("schedule:<from>><to>"), std::string::npos);
  EXPECT_NE(error_of("schedule:0.9>1.2", ctx).find("1.2"), std::string::npos);
  EXPECT_NE(error_of("random:3", ctx).find("takes no argument"), std::string::npos);
  EXPECT_NE(error_of("replay:store.h5", ctx).find("replay:<store>#<id>"), std::string::npos);
  EXPECT_NE(error_of("regmix:", ctx).find("names no store"), std::string::npos);
  EXPECT_NE(error_of("agent:x.pt", ctx).find("cannot build 'agent' policies"), std::string::npos);
  for (const char* spec : {"fixed:1.5", "fixed:0.2/0.8", "schedule:0.9", "foo"})
    EXPECT_EQ(error_of(spec, ctx).find('\n'), std::string::npos) << spec;
}

TEST(Baselines, ActChecksTheBatch) {
  const auto ctx = make_context(2, 2, 4);
  auto p = test::make_builtin_policy("uniform", ctx, PolicySettings{});
  std::vector<std::int64_t> ids = {0};
  std::vector<std::int32_t> steps = {4};  // past the horizon
  std::vector<float> obs(static_cast<size_t>(obs::dim(4)));
  std::vector<double> w(4);
  EXPECT_THROW(p->act({1, obs::dim(4), ids, steps, obs}, w), PolicyError);
  steps[0] = 0;
  std::vector<double> short_w(3);
  EXPECT_THROW(p->act({1, obs::dim(4), ids, steps, obs}, short_w), PolicyError);
  EXPECT_NO_THROW(p->act({1, obs::dim(4), ids, steps, obs}, w));
}

/// All weight on the third domain, named after its spec.
std::unique_ptr<Policy> constant_third(const PolicySpec& spec, const DomainContext& ctx, const PolicySettings&) {
  std::vector<double> w(ctx.names.size(), 0.0);
  w[2] = 1.0;
  const PolicySpec fixed(PolicyKind::kFixed, {{MixtureArg::Form::kWeights, w}});
  auto inner = PolicyRegistry::builtin().make(fixed, ctx, PolicySettings{});
  struct Named final : Policy {
    std::string spec;
    std::unique_ptr<Policy> inner;
    std::string name() const override { return spec; }
    void act(const ActBatch& b, std::span<double> out) override { inner->act(b, out); }
  };
  auto p = std::make_unique<Named>();
  p->spec = to_string(spec);
  p->inner = std::move(inner);
  return p;
}

TEST(PolicyRegistry, DispatchesByKind) {
  const auto ctx = make_context(2, 2, 4);
  const PolicySpec agent = parse_policy_spec("agent:x.pt");
  EXPECT_THROW(PolicyRegistry::builtin().make(agent, ctx, PolicySettings{}), PolicyError);
  auto p = PolicyRegistry::builtin().add(PolicyKind::kAgent, &constant_third).make(agent, ctx, PolicySettings{});
  EXPECT_EQ(p->name(), "agent:x.pt");
  EXPECT_NEAR(run_episodes(*p, ctx, {0})[0][3][2], 1.0, kTol);
}

TEST(PolicyRegistry, AMissingKindIsOneLineListingTheKnownKinds) {
  const auto ctx = make_context(2, 2, 4);
  EXPECT_EQ(error_of("agent:x.pt", ctx),
            "policy 'agent:x.pt': this program cannot build 'agent' policies: use one of uniform, natural, "
            "source-only, target-only, random, online-eg, fixed, schedule, tuned-fixed, tuned-schedule, replay, "
            "regmix");
  PolicyRegistry only_uniform;
  only_uniform.add(PolicyKind::kUniform,
                   [](const PolicySpec& spec, const DomainContext& c, const PolicySettings& settings) {
                     return PolicyRegistry::builtin().make(spec, c, settings);
                   });
  EXPECT_EQ(only_uniform.kinds(), std::vector<PolicyKind>{PolicyKind::kUniform});
  try {
    only_uniform.make(parse_policy_spec("random"), ctx, PolicySettings{});
    FAIL() << "an empty registry built a random policy";
  } catch (const PolicyError& e) {
    EXPECT_STREQ(e.what(), "policy 'random': this program cannot build 'random' policies: use one of uniform");
  }
  EXPECT_THROW(only_uniform.add(PolicyKind::kRandom, nullptr), PolicyError);
  EXPECT_EQ(PolicyRegistry::builtin().kinds().size(), std::size(kPolicyKinds) - 1);  // all but agent
}

}  // namespace
}  // namespace dma
