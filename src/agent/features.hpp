#pragma once
// Domain tokens: what the equivariant networks read. Each domain's token holds, for the
// last H steps (newest first), its per-domain features and the broadcast global ones.
// Dimension letters: T steps, D domains, H history, F = H * kStepFeatures.
#include <span>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace dma::agent {

/// Features of one domain at one step (see step_feature_names()).
inline constexpr int kStepFeatures = 11;

/// Names of the kStepFeatures features, in token order (the checkpoint's feature layout).
const std::vector<std::string>& step_feature_names();
/// The token column of the newest step's feature `name` (one of step_feature_names()).
int step_feature_column(const std::string& name);
/// "history=H;name,name,..." — compared on load, so a checkpoint never runs on other features.
std::string feature_layout(int history);

/// (F) 1 for the token columns of the step features named in `features` (comma-separated
/// step_feature_names(), or "all"), at every history step; 0 for the others. The critics read
/// every column. Throws ConfigError naming an unknown feature.
torch::Tensor actor_input_mask(int history, const std::string& features);

/// Per-step features of an observation row (obs::dim(D) floats) into out (D, kStepFeatures).
void step_features(std::span<const float> observation, int num_domains, std::span<float> out);

/// Tokens (T, D, F) for steps 0..T-1 of a sequence of T observation rows (T, obs_dim):
/// step t holds steps t, t-1, ..., t-H+1, the missing ones before 0 padded with step 0.
torch::Tensor episode_tokens(std::span<const float> observations, int steps, int num_domains, int history);

/// log of the number of domains in each domain's field, (B, D) from is_target (B, D) 0/1.
/// The field-balanced actor subtracts it from its attention logits (keys) and its output
/// logits, so a field's total attention and total weight do not grow with its number of
/// domains: where the domains of a field look alike, the actor gives the same target share on
/// a space with 6 source domains as on one with 10 (an unbalanced one measured 0.66 against
/// 0.51 at the first step).
torch::Tensor field_log_counts(const torch::Tensor& is_target);

/// is_target (D) from an observation row, as 0/1 floats.
torch::Tensor target_mask(std::span<const float> observation, int num_domains);
/// The same mask written into `out` (D floats), for batches built in one tensor.
void target_mask_into(std::span<const float> observation, int num_domains, std::span<float> out);

/// Per-column standardisation of tokens, fitted on the training transitions.
/// Robust standardisation: centre on the median, divide by the interquartile range / 1.349
/// (the std of a normal), clip to +-kClip. The collected store holds a few extreme episodes
/// (target-only forgets the source 30x more than the best mixtures do): with mean and std they
/// squeeze the range where decisions are made (source score -0.05..0.03) into 0.4 std units.
struct Normalizer {
  static constexpr double kClip = 8.0;
  torch::Tensor mean;                                  // (F) the centre (median)
  torch::Tensor std;                                   // (F) the scale
  static Normalizer fit(const torch::Tensor& tokens);  // tokens (N, D, F)
  torch::Tensor apply(const torch::Tensor& tokens) const { return ((tokens - mean) / std).clamp(-kClip, kClip); }
};

}  // namespace dma::agent
