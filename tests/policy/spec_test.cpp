// The policy spec grammar: every kind survives text -> value -> text, and every malformed
// spec is one line that names it, says what is wrong and how to write it.
#include "dma/policy_spec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dma/error.hpp"
#include "dma/tuning.hpp"

namespace dma {
namespace {

/// The message of the PolicyError that parsing `text` throws ("" when none).
std::string parse_error(const std::string& text) {
  try {
    parse_policy_spec(text);
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "";
}

TEST(PolicySpec, EveryKindRoundTrips) {
  const std::vector<std::string> texts = {
      "uniform",
      "natural",
      "source-only",
      "target-only",
      "random",
      "online-eg",
      "fixed:0.5",
      "fixed:0",
      "fixed:1",
      "fixed:3:1",
      "fixed:1/2/0/4.5",
      "schedule:0.65>0.45",
      "schedule:3:1>1/0/2",
      "tuned-fixed",
      "tuned-fixed:0.5375",
      "tuned-schedule",
      "tuned-schedule:0.7>0.4",
      "replay:/tmp/a:b.h5#3",
      "replay:runs/demo/store.h5#0",
      "regmix",
      "regmix:runs/demo/store.h5",
      "agent",
      "agent:a.pt",
      "agent:runs/x/a.pt+/abs/b.pt+c.pt",
      "agent:runs/demo/agent.pt?noise=0.3",
  };
  std::vector<PolicyKind> seen;
  for (const auto& text : texts) {
    const PolicySpec spec = parse_policy_spec(text);
    EXPECT_EQ(to_string(spec), text);
    EXPECT_EQ(parse_policy_spec(to_string(spec)), spec) << text;
    EXPECT_EQ(text.substr(0, text.find(':')), policy_kind_name(spec.kind));
    seen.push_back(spec.kind);
  }
  for (const PolicyKind kind : kPolicyKinds)
    EXPECT_NE(std::find(seen.begin(), seen.end(), kind), seen.end()) << policy_kind_name(kind);
}

TEST(PolicySpec, NamesKeepTheirSpellingWhileTheyDescribeTheValue) {
  // Stores hold names as the user wrote them; a resumed run matches them by text.
  for (const std::string text : {"fixed:0.50", "fixed:3.0:1", "schedule:.9>0.20", "agent:a.pt?noise=0.30",
                                 "replay:s.h5#3.0", "tuned-fixed:1e-1"})
    EXPECT_EQ(to_string(parse_policy_spec(text)), text);
  EXPECT_EQ(parse_policy_spec("fixed:0.50"), parse_policy_spec("fixed:0.5"));
  // A value changed after parsing is written from its fields.
  PolicySpec agent = parse_policy_spec("agent");
  agent.checkpoints = {"runs/demo/agent.pt"};
  EXPECT_EQ(to_string(agent), "agent:runs/demo/agent.pt");
  PolicySpec fixed = parse_policy_spec("fixed:0.50");
  fixed.mixtures[0].values[0] = 0.25;
  EXPECT_EQ(to_string(fixed), "fixed:0.25");
}

TEST(PolicySpec, HoldsTheArgumentsTyped) {
  const auto ratio = parse_policy_spec("fixed:3:1");
  ASSERT_EQ(ratio.mixtures.size(), 1u);
  EXPECT_EQ(ratio.mixtures[0], (MixtureArg{MixtureArg::Form::kRatio, {3, 1}}));
  const auto schedule = parse_policy_spec("schedule:0.9>1/0/2");
  EXPECT_EQ(schedule.mixtures,
            (std::vector<MixtureArg>{{MixtureArg::Form::kShare, {0.9}}, {MixtureArg::Form::kWeights, {1, 0, 2}}}));
  const auto replay = parse_policy_spec("replay:/tmp/a#b.h5#7");
  EXPECT_EQ(replay.store, "/tmp/a#b.h5");
  EXPECT_EQ(replay.episode, 7);
  const auto agent = parse_policy_spec("agent:a.pt+b.pt?noise=0.25");
  EXPECT_EQ(agent.checkpoints, (std::vector<std::string>{"a.pt", "b.pt"}));
  EXPECT_EQ(agent.noise, 0.25);
  EXPECT_FALSE(parse_policy_spec("agent:a.pt").noise.has_value());
  EXPECT_TRUE(needs_tuning(parse_policy_spec("tuned-fixed")));
  EXPECT_FALSE(needs_tuning(parse_policy_spec("tuned-fixed:0.5")));
  EXPECT_FALSE(needs_tuning(parse_policy_spec("fixed:0.5")));
}

TEST(PolicySpec, BuiltValuesWriteTheTextTheyParseFrom) {
  // What iterate builds for a generation's rollouts.
  const PolicySpec explore = agent_spec({"runs/demo/agent-gen-1.pt"}, 0.3);
  EXPECT_EQ(to_string(explore), "agent:runs/demo/agent-gen-1.pt?noise=0.3");
  EXPECT_EQ(parse_policy_spec(to_string(explore)), explore);
  EXPECT_EQ(to_string(agent_spec({"a.pt", "b.pt"})), "agent:a.pt+b.pt");
  for (const auto& spec : {tuned_spec(TunedFamily::kFixed, {0.5375}), tuned_spec(TunedFamily::kSchedule, {0.55, 0.6}),
                           tuned_spec(TunedFamily::kSchedule, {0.1, 0.03})})
    EXPECT_EQ(parse_policy_spec(to_string(spec)), spec) << to_string(spec);
}

TEST(PolicySpec, EveryMalformedSpecSaysWhatIsWrongOnOneLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "unknown policy '': use uniform|natural|"},
      {"foo", "unknown policy 'foo': use uniform|natural|"},
      {"Uniform", "unknown policy 'Uniform'"},
      {"uniform:1", "policy 'uniform:1': uniform takes no argument: write uniform"},
      {"random:3", "random takes no argument: write random"},
      {"online-eg:0.1", "online-eg takes no argument"},
      {"fixed", "policy 'fixed' needs a mixture: write fixed:<target share>"},
      {"fixed:", "'' is not a number: give a target share in [0, 1]"},
      {"fixed:abc", "'abc' is not a number"},
      {"fixed:nan", "'nan' is not a number"},
      {"fixed:1.5", "target share 1.5 is outside [0, 1]"},
      {"fixed:-0.1", "target share -0.1 is outside [0, 1]"},
      {"fixed:3:-1", "'3:-1' is not a source:target ratio of two non-negative numbers, e.g. 3:1"},
      {"fixed:0:0", "'0:0' is not a source:target ratio"},
      {"fixed:1/-1/1", "weight '-1' is not a non-negative number: write w1/.../wD"},
      {"fixed:1//1", "weight '' is not a non-negative number"},
      {"fixed:0/0/0", "the weights are all 0: give at least one positive weight"},
      {"schedule", "policy 'schedule' needs two ends: write schedule:<from>><to>"},
      {"schedule:0.9", "needs two ends: write schedule:<from>><to>"},
      {"schedule:0.9>0.2>0.1", "needs two ends"},
      {"schedule:0.9>1.2", "target share 1.2 is outside [0, 1]"},
      {"tuned-fixed:", "'' is not a number"},
      {"tuned-fixed:1.5", "target share 1.5 is outside [0, 1]"},
      {"tuned-schedule:", "needs two ends: write tuned-schedule:<from>><to>"},
      {"tuned-schedule:0.6", "needs two ends: write tuned-schedule:<from>><to>"},
      {"replay:store.h5", "needs a store and an episode id: write replay:<store>#<id>"},
      {"replay:#3", "write replay:<store>#<id>"},
      {"replay:s.h5#1.5", "write replay:<store>#<id>"},
      {"replay", "write replay:<store>#<id>"},
      {"regmix:", "policy 'regmix:' names no store: write regmix or regmix:<store>"},
      {"agent:", "policy 'agent:': no checkpoint: write agent:<checkpoint>"},
      {"agent:?noise=1", "no checkpoint"},
      {"agent:a.pt+", "'a.pt+' has an empty checkpoint name"},
      {"agent:+b.pt?noise=0.1", "'+b.pt' has an empty checkpoint name"},
      {"agent:a.pt?noise=-1", "noise must be a number >= 0, not '-1'"},
      {"agent:a.pt?noise=x", "noise must be a number >= 0, not 'x'"},
      {"agent:a.pt?noise", "unknown option 'noise'"},
      {"agent:a.pt?temp=1", "unknown option 'temp=1'"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string message = parse_error(text);
    EXPECT_NE(message.find(expected), std::string::npos) << text << " gave: " << message;
    EXPECT_NE(message.find("'" + text + "'"), std::string::npos) << "names the spec: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace dma
