#pragma once
/// The Data Mixing Agent (LibTorch lives in src/agent only): an actor-critic equivariant
/// over domains, trained offline (behaviour cloning then CQL) on trajectory stores, and
/// served as the `agent:<checkpoint>` policy.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dma/config.hpp"
#include "dma/policy.hpp"
#include "dma/store.hpp"

namespace dma {

inline constexpr const char* kAgentFormat = "dma-agent";
inline constexpr int kAgentFormatVersion = 3;        // 2: actor_mask; 3: field_balanced
inline constexpr int kAgentOldestFormatVersion = 2;  // read as per-domain (not field-balanced) actors

/// Summary of an offline training run.
struct AgentTrainReport {
  std::int64_t transitions = 0;
  std::int64_t episodes = 0;
  double bc_loss = 0;
  double critic_loss = 0;
  double actor_loss = 0;
  double val_bc_loss = 0;
  double seconds = 0;
  std::int64_t val_episodes = 0;
  std::int64_t bc_episodes = 0;  ///< episodes cloned (top bc_top_q of the training split)
  double val_td_loss = 0;        ///< TD error on the validation episodes (normalised rewards)
  double reward_mean = 0;        ///< rewards were centred by this (their mean) ...
  double reward_scale = 1;       ///< ... and divided by this (their std)
  double source_scale = 1;       ///< `normalized` scales used for the rewards
  double target_scale = 1;
  double q_data_minus_random = 0;  ///< mean Q(o, a_data) - Q(o, a_uniform-logit): the CQL gap
};

/// `--mode train-agent`: trains on `stores`, writes `out_checkpoint`. When `init_checkpoint`
/// is not empty, continues from it (iterate): no behaviour-cloning phase, and the feature
/// normalisation and reward scales of the checkpoint are kept. `steps_override` >= 0
/// replaces agent.cql_steps. Learner only.
AgentTrainReport train_agent(const Config& config, const std::vector<std::string>& stores,
                             const std::string& out_checkpoint, const std::string& init_checkpoint = "",
                             int steps_override = -1);

/// A store held in memory: what train_agent reads from a file (tests and simulators fill it
/// directly). rows[i] are the transitions of episodes[i], in step order.
struct OfflineStore {
  std::string name;  ///< for messages (the path)
  StoreHeader header;
  std::vector<EpisodeRecord> episodes;
  std::vector<std::vector<Transition>> rows;
};

/// Reads every complete or interrupted episode of a store file.
OfflineStore load_offline_store(const std::string& path);

/// train_agent on stores already in memory.
AgentTrainReport train_agent_offline(const Config& config, const std::vector<OfflineStore>& stores,
                                     const std::string& out_checkpoint, const std::string& init_checkpoint = "",
                                     int steps_override = -1);

/// A trained agent, loaded from a checkpoint (torch-free interface). Works for any number
/// of domains D. Observation rows follow observation.hpp (obs::dim(D) floats each).
class AgentModel {
 public:
  /// Throws CheckpointError (one line) for a missing, corrupt, foreign or mismatched file.
  static AgentModel load(const std::string& checkpoint);
  ~AgentModel();
  AgentModel(AgentModel&&) noexcept;
  AgentModel& operator=(AgentModel&&) noexcept;

  /// Steps of features per domain token (agent.history at training time).
  int history() const;
  /// The config the agent was trained with (INI text).
  const std::string& config_ini() const;
  /// How the rewards were normalised: {reward_scale, source_scale, target_scale, reward_mean}.
  std::vector<double> scales() const;

  /// Mean logits (B, D) for B observation histories: `histories` is (B, history(), obs_dim),
  /// oldest first, the last row is now (repeat the first row when fewer steps exist).
  std::vector<float> mean_logits(std::span<const float> histories, int batch, int num_domains) const;
  /// min(Q1, Q2)(o, a) for K actions (K, D) at one observation history (history(), obs_dim).
  std::vector<float> q_values(std::span<const float> history_rows, std::span<const float> actions, int num_actions,
                              int num_domains) const;

 private:
  struct Impl;
  explicit AgentModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// How an agent answers the source score at one step of an episode: the observed history with
/// its source score moved by each shift, the actor's target share there, and the target share
/// (uniform within each field, on a grid 0.05..0.95) that the critics value most.
struct SourceResponse {
  int step = 0;
  double progress = 0, source_score = 0;  ///< as observed
  std::vector<double> shifts, actor_share, critic_best_share;
};
/// `episode` holds an episode's rows (Transition::observation) in step order; throws Error
/// for a step outside it.
SourceResponse probe_source_response(const AgentModel& model, const std::vector<Transition>& episode, int step,
                                     const std::vector<double>& shifts);

/// How well an agent's critics predict realised returns: for every step of every complete
/// episode of a store, min(Q1, Q2) at the stored history and action, in score units, against
/// the discounted return-to-go of the rewards training would compute (the checkpoint's score,
/// scales and [eval] settings). n-step backups estimate the same return, so only the discount
/// matters.
struct CriticAccuracy {
  std::int64_t pairs = 0;        ///< (state history, stored action) pairs scored
  std::int64_t episodes = 0;     ///< complete episodes they come from
  double discount = 0;           ///< of the return-to-go
  double spearman = 0;           ///< rank correlation of Q and the return-to-go over all pairs
  double spearman_per_step = 0;  ///< mean over steps of the rank correlation among one step's pairs
  int steps_correlated = 0;      ///< steps in that mean (at least 3 pairs, neither side all tied)
  double rmse_affine = 0;        ///< RMSE of the return-to-go about its least-squares affine fit on Q
  double return_std = 0;         ///< the return-to-go's std (the RMSE of a constant fit)
  std::vector<double> per_step;  ///< the rank correlation at each step (NaN where undefined)
};
/// Throws CheckpointError or StoreError (one line) for a bad checkpoint, a store the agent
/// cannot read, or fewer than 3 pairs. `discount` < 0: the recipe's (agent.discount).
CriticAccuracy critic_accuracy(const std::string& checkpoint, const OfflineStore& store, double discount = -1);

/// The `agent:<checkpoint>[?noise=<std>]` policy: the deterministic mean action, or the mean
/// logits plus Gaussian noise of that std (default agent.exploration_std; iterate passes
/// ?noise=<iterate.exploration_std>). Noise derives from the episode seed only.
std::unique_ptr<Policy> make_agent_policy(const PolicySpec& spec, const DomainContext& domains,
                                          const PolicySettings& settings);
/// The deterministic agent policy (mean action, no noise) over an agent already loaded, named
/// `name`: policies of several runs share one model (its mean_logits is safe to call from
/// several threads at once).
std::unique_ptr<Policy> make_agent_policy(std::shared_ptr<const AgentModel> model, const std::string& name,
                                          const DomainContext& domains);
/// LibTorch's intra-op threads for the agent's forward passes (n <= 0 leaves them as they are).
void set_agent_threads(int threads);
/// Every built-in policy kind and the agent's: what a program that runs trained agents builds
/// its policies from.
PolicyRegistry agent_policy_registry();

}  // namespace dma
