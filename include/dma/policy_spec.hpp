#pragma once
/// A mixing policy's spec as a typed value (DESIGN §4). Config and command-line strings are
/// parsed once, where they enter; code that picks a policy builds the value itself.
///
/// Grammar (to_string writes it back):
///   uniform | natural | source-only | target-only | random | online-eg
///   fixed:<mixture> | tuned-fixed[:<mixture>]
///   schedule:<mixture>><mixture> | tuned-schedule[:<mixture>><mixture>]
///   replay:<store>#<episode> | regmix[:<store>] | agent[:<checkpoint>[+<checkpoint>...][?noise=<std>]]
/// where <mixture> is a target share in [0, 1], a source:target ratio "3:1" or weights "w1/.../wD".
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dma {

enum class PolicyKind {
  kUniform,
  kNatural,
  kSourceOnly,
  kTargetOnly,
  kRandom,
  kOnlineEg,
  kFixed,
  kSchedule,
  kTunedFixed,
  kTunedSchedule,
  kReplay,
  kRegmix,
  kAgent,
};

/// Every kind, in the order errors list them.
inline constexpr PolicyKind kPolicyKinds[] = {
    PolicyKind::kUniform,    PolicyKind::kNatural,       PolicyKind::kSourceOnly, PolicyKind::kTargetOnly,
    PolicyKind::kRandom,     PolicyKind::kOnlineEg,      PolicyKind::kFixed,      PolicyKind::kSchedule,
    PolicyKind::kTunedFixed, PolicyKind::kTunedSchedule, PolicyKind::kReplay,     PolicyKind::kRegmix,
    PolicyKind::kAgent,
};

/// The kind's name in specs: "uniform", "source-only", "tuned-fixed", ...
std::string_view policy_kind_name(PolicyKind kind);
/// The kind called `name` ("tuned-fixed"), or nothing.
std::optional<PolicyKind> policy_kind_named(std::string_view name);

/// One mixture of fixed:/schedule: as written; resolved against a domain space when the
/// policy is built (a share spreads over domains by natural shares within fields).
struct MixtureArg {
  enum class Form { kShare, kRatio, kWeights };
  Form form = Form::kShare;
  std::vector<double> values;  ///< kShare: {share}; kRatio: {source, target}; kWeights: {w1, ..., wD}
  bool operator==(const MixtureArg&) const = default;
};

struct PolicySpec {
  PolicySpec() = default;
  explicit PolicySpec(PolicyKind spec_kind, std::vector<MixtureArg> spec_mixtures = {})
      : kind(spec_kind), mixtures(std::move(spec_mixtures)) {}

  PolicyKind kind = PolicyKind::kUniform;
  /// fixed, tuned-fixed: one; schedule, tuned-schedule: two (from, to). None for a bare
  /// tuned-fixed / tuned-schedule: a baseline still to be tuned by rollouts.
  std::vector<MixtureArg> mixtures;
  std::string store;                     ///< replay; regmix (empty: the run's own store)
  std::int64_t episode = 0;              ///< replay
  std::vector<std::string> checkpoints;  ///< agent: one, or an ensemble; none: this run's agent
  std::optional<double> noise;           ///< agent: exploration std (none: agent.exploration_std)
  /// The text parse_policy_spec read (empty for values built in code). to_string writes it
  /// while it still describes this value, so a name keeps its spelling ("fixed:0.50").
  std::string written;

  /// Same policy, however written.
  bool operator==(const PolicySpec& other) const {
    return kind == other.kind && mixtures == other.mixtures && store == other.store && episode == other.episode &&
           checkpoints == other.checkpoints && noise == other.noise;
  }
};

/// Parses a spec (see the grammar above). Throws PolicyError, one line naming the spec, what is
/// wrong and how to write it. Checks what needs no domain space: kinds, numbers, ranges.
PolicySpec parse_policy_spec(std::string_view text);
/// The spec's text, as written when it was parsed (to_string(parse_policy_spec(t)) == t), else
/// with numbers in their shortest form; parse_policy_spec(to_string(s)) == s. Stored in
/// /episodes/policy.
std::string to_string(const PolicySpec& spec);

/// `agent:<checkpoint>` (an ensemble when several), with exploration noise when given.
PolicySpec agent_spec(std::vector<std::string> checkpoints, std::optional<double> noise = std::nullopt);
/// True for a bare tuned-fixed / tuned-schedule: a baseline still to be tuned by rollouts.
bool needs_tuning(const PolicySpec& spec);

}  // namespace dma
