#pragma once
/// Mixing policies (DESIGN §4). All run on the learner: one batched `act` per round over
/// every running episode that uses the policy. A policy is told when its episodes begin
/// and end so it can keep per-episode state (random walks, EG weights, agent history).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dma/config.hpp"
#include "dma/policy_spec.hpp"
#include "dma/types.hpp"

namespace dma {

/// What every policy may know about the domain space.
struct DomainContext {
  std::vector<std::string> names;
  std::vector<Field> fields;
  std::vector<double> token_shares;
  int horizon = 1;
  int num_domains() const { return static_cast<int>(names.size()); }
};

/// A batch of B decisions. Row b is episode `episode_ids[b]` about to take step `steps[b]`
/// (0-based) from observation row b (obs::dim(D) floats, see observation.hpp).
struct ActBatch {
  int batch = 0;
  int obs_dim = 0;
  std::span<const std::int64_t> episode_ids;  ///< (B)
  std::span<const std::int32_t> steps;        ///< (B)
  std::span<const float> observations;        ///< (B, obs_dim)
};

class Policy {
 public:
  virtual ~Policy() = default;
  /// The spec it was built from, e.g. "fixed:0.3" (stored in /episodes/policy).
  virtual std::string name() const = 0;
  virtual void begin_episode(std::int64_t episode_id, std::uint64_t seed) { (void)episode_id, (void)seed; }
  virtual void end_episode(std::int64_t episode_id) { (void)episode_id; }
  /// Writes B rows of D weights (row-major) into `weights`; each row on the simplex.
  virtual void act(const ActBatch& batch, std::span<double> weights) = 0;
};

/// What policies read of the configuration: their own sections, the balanced score, the
/// store RegMix fits on, the run's seed and how the agent acts.
struct PolicySettings {
  RandomPolicyConfig random;
  OnlineEgConfig online_eg;
  RegmixConfig regmix;
  EvalConfig eval;
  std::string collection_store = "store.h5";  ///< collect.store, or <run.dir>/store.h5
  std::uint64_t seed = 1;                     ///< run.seed
  double agent_noise = 0.0;                   ///< AgentConfig::exploration_std: an agent spec without ?noise=
  int agent_threads = 1;                      ///< agent.threads
};
/// The policy settings of a run's configuration.
PolicySettings policy_settings(const Config& config);

/// Builds a policy of one kind from its spec; throws PolicyError for arguments that do not fit
/// the domain space.
using PolicyFactory =
    std::function<std::unique_ptr<Policy>(const PolicySpec& spec, const DomainContext&, const PolicySettings&)>;

/// Which kinds a program can build, and how: a value built where the program starts and
/// handed to whoever makes policies. builtin() holds every kind of src/policy; the agent's
/// kind comes from src/agent (agent_policy_registry in agent.hpp).
class PolicyRegistry {
 public:
  /// uniform, natural, source-only, target-only, random, online-eg, fixed, schedule,
  /// tuned-fixed, tuned-schedule, replay, regmix: every kind but agent.
  static PolicyRegistry builtin();
  /// Adds `kind` (replacing its factory if it has one); returns *this.
  PolicyRegistry& add(PolicyKind kind, PolicyFactory factory);
  /// Builds `spec`'s policy. Throws PolicyError naming the spec and the known kinds when this
  /// registry has no factory for its kind.
  std::unique_ptr<Policy> make(const PolicySpec& spec, const DomainContext& domains,
                               const PolicySettings& settings) const;
  /// The kinds it can build, in kPolicyKinds order.
  std::vector<PolicyKind> kinds() const;

 private:
  std::map<PolicyKind, PolicyFactory> factories_;
};

/// The kind of a stored policy name: what precedes its first ':' ("fixed:0.3" -> "fixed",
/// "random" -> "random").
std::string policy_kind(const std::string& name);

/// A policy mix "spec:prob,spec:prob" (the last ':' of an entry holds its probability).
struct PolicyMix {
  std::vector<PolicySpec> specs;
  std::vector<double> probabilities;
};
/// Throws PolicyError when probabilities are not in [0, 1] or do not sum to 1 within 1e-6.
PolicyMix parse_policy_mix(const std::string& text);
/// A plain comma-separated list (evaluate.policies, agent.stores), entries trimmed; "" gives an
/// empty list; an empty entry ("a,,b") throws PolicyError.
std::vector<std::string> parse_policy_list(const std::string& text);
/// parse_policy_list, each entry parsed by parse_policy_spec.
std::vector<PolicySpec> parse_policy_specs(const std::string& text);
/// Seed stream (see seed.hpp) of the policy assignment draw; distinct from the per-trajectory streams.
inline constexpr std::uint64_t kStreamAssign = 0x61737367ULL;
/// Which spec of the mix trajectory `id` uses: a function of (run seed, id) only.
std::size_t assign_policy(const PolicyMix& mix, std::uint64_t run_seed, std::int64_t id);

/// A number in a policy spec: the whole string as a finite double, or nothing ("0.3" yes,
/// "0.3x", "", "nan" no).
std::optional<double> parse_number(std::string_view text);

/// Field-share helpers: spread a target share over domains by natural shares within fields.
std::vector<double> mixture_from_target_share(const DomainContext& domains, double target_share);

/// RegMix (torch-free): fit score ~ f(mean weights) on episodes and
/// return the best static mixture found by sampling the simplex.
struct RegmixFit {
  std::vector<double> best_weights;
  double predicted_score = 0;
  double r2 = 0;         ///< in-sample R^2 of the regression
  double r2_loo = 0;     ///< leave-one-out R^2 (out-of-sample)
  double ridge = 0;      ///< ridge penalty chosen by leave-one-out error
  int episodes = 0;      ///< mixtures fitted
  std::string features;  ///< regression features chosen by leave-one-out error: linear|squares|quadratic
};
RegmixFit fit_regmix(const std::vector<std::vector<double>>& mean_weights, const std::vector<double>& scores,
                     const DomainContext& domains, int samples, std::uint64_t seed);

/// RegMix's data: per complete `random` episode of a store, its mean weights (in `domains`'
/// order, matched by name) and its final balanced score under `eval`, recomputed from the
/// last row's eval_loss and the store's base losses. Throws StoreError / PolicyError.
struct RegmixData {
  std::vector<std::vector<double>> mean_weights;  ///< (n, D)
  std::vector<double> scores;                     ///< (n)
  std::vector<std::int64_t> episode_ids;          ///< (n)
};
RegmixData regmix_data(const std::string& store_path, const DomainContext& domains, const EvalConfig& eval);

}  // namespace dma
