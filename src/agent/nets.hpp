#pragma once
// The agent's networks. Nothing depends on a domain's position: no positional encoding,
// per-domain weights shared, pooling by mean and max. So the actor is permutation-
// equivariant over domains, the critics invariant, and both run on any number of domains.
// Dimension letters: B batch, D domains, K actions per state, F token features, d width.
#include <torch/torch.h>

namespace dma::agent {

struct NetShape {
  int in_features = 0;  // F
  int d_token = 64;
  int n_layers = 2;
  int n_heads = 4;
};

/// Pre-LayerNorm transformer block over the domain axis.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int d, int heads);
  /// key_bias (B, D), if defined, is added to every query's attention logit for that key.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& key_bias = {});  // (B, D, d) -> (B, D, d)

 private:
  int heads_;
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Block);

/// Tokens (B, D, F) -> encodings (B, D, d).
class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const NetShape& shape);
  torch::Tensor forward(torch::Tensor tokens, const torch::Tensor& key_bias = {});

 private:
  torch::nn::Linear in_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_{nullptr};
};
TORCH_MODULE(Encoder);

/// Gaussian over per-domain logits with a learned state-independent log-std; weights are
/// the softmax of the logits.
class ActorImpl : public torch::nn::Module {
 public:
  explicit ActorImpl(const NetShape& shape);
  torch::Tensor forward(torch::Tensor tokens, const torch::Tensor& key_bias = {});  // mean logits (B, D)
  torch::Tensor log_std() const;                                                    // scalar, clamped
  /// K reparameterised logit samples (B, K, D) and their Gaussian log-density (B, K).
  std::pair<torch::Tensor, torch::Tensor> sample(const torch::Tensor& mean, int k, at::Generator& gen) const;

 private:
  Encoder encoder_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::Tensor log_std_;
};
TORCH_MODULE(Actor);

/// Q(o, a): the state is encoded once, then each of K actions joins every domain token
/// (its weight) and the tokens are pooled (mean, max) with the action's target share.
class CriticImpl : public torch::nn::Module {
 public:
  explicit CriticImpl(const NetShape& shape);
  torch::Tensor encode(torch::Tensor tokens);  // (B, D, d)
  /// encoded (B, D, d), is_target (B, D), actions (B, K, D) on the simplex -> Q (B, K).
  torch::Tensor q(const torch::Tensor& encoded, const torch::Tensor& is_target, const torch::Tensor& actions);

 private:
  Encoder encoder_{nullptr};
  torch::nn::Linear state_proj_{nullptr}, action_embed_{nullptr}, token_fc_{nullptr}, out1_{nullptr}, out2_{nullptr};
};
TORCH_MODULE(Critic);

/// Uniform logits in [-box, box]^D: K samples (B, K, D) and their log-density (scalar).
std::pair<torch::Tensor, double> uniform_logits(int batch, int k, int domains, double box, at::Generator& gen);

}  // namespace dma::agent
