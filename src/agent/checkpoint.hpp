#pragma once
// Everything an agent checkpoint holds, and its (atomic) save and checked load.
#include <string>

#include <torch/torch.h>

#include "features.hpp"
#include "nets.hpp"

namespace dma::agent {

struct AgentState {
  NetShape shape;
  int history = 1;
  Actor actor{nullptr};
  torch::Tensor actor_mask;     // (F) token columns the actor reads (features.hpp actor_input_mask)
  bool field_balanced = false;  // the actor weighs fields, not domains (features.hpp field_log_counts)
  Critic q1{nullptr}, q2{nullptr}, q1_target{nullptr}, q2_target{nullptr};
  torch::Tensor log_alpha;       // SAC entropy temperature (log)
  Normalizer norm;               // token standardisation fitted on the first training data
  double reward_mean = 0;        // rewards were centred by this (the same shift at every step:
                                 // the policy's optimum does not move) ...
  double reward_scale = 1;       // ... and divided by this (their std)
  std::string score = "budget";  // the balanced score the rewards used, with its scales
  double source_scale = 1, target_scale = 1;
  std::string config_ini;   // the training config
  torch::Tensor rng_state;  // the training generator's state

  /// Fresh networks (targets equal to the critics) for tokens of `history` steps.
  static AgentState create(int d_token, int n_layers, int n_heads, int history,
                           const std::string& actor_features = "all");

  /// The actor's mean logits (B, D) for normalised tokens (B, D, F) and is_target (B, D),
  /// through actor_mask.
  torch::Tensor actor_logits(const torch::Tensor& tokens, const torch::Tensor& is_target) {
    if (!field_balanced) return actor->forward(tokens * actor_mask);
    // Attention gives each field, and the softmax gives each field's logits, a total weight
    // that does not grow with the field's number of domains.
    const auto log_counts = field_log_counts(is_target);
    return actor->forward(tokens * actor_mask, -log_counts) - log_counts;
  }
};

/// Copies `from`'s parameters into `to` (same architecture).
void copy_parameters(torch::nn::Module& to, const torch::nn::Module& from);

/// Writes `path` through a temporary file and a rename, so a kill never leaves half a file.
void save_agent(const std::string& path, const AgentState& state);
/// Throws CheckpointError with one line for a missing, corrupt, foreign or mismatched file.
AgentState load_agent(const std::string& path);

}  // namespace dma::agent
