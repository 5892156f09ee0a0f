#pragma once
// The proxy language model: a Llama-style decoder (RMSNorm, causal multi-head attention with
// rotary embeddings, SwiGLU MLP, head tied to the embedding). Internal to src/proxy (and its
// tests): LibTorch types appear here and nowhere in include/dma.
//
// Shapes: B batch rows, T positions, d model width, H heads, hd = d / H, F SwiGLU hidden
// width, V vocabulary.
#include <cstdint>

#include <torch/torch.h>

namespace dma::proxy {

/// Architecture of one proxy (what a base checkpoint's config hash covers).
struct ModelShape {
  int vocab = 256;
  int seq_len = 128;
  int d_model = 64;
  int n_layers = 2;
  int n_heads = 4;
  int ffn_hidden = 128;
};

/// SwiGLU hidden width for ffn_mult * d_model, rounded to a multiple of 8 (at least 8).
int ffn_hidden_for(double ffn_mult, int d_model);

/// RMSNorm with a learned gain; forward and backward each in few passes (custom autograd).
class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(int dim, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);  // (..., d) -> (..., d)
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

/// Keys and values of earlier positions, for incremental greedy decoding (inference only).
/// Rows are left-padded: `key_bias` hides each row's padding columns.
struct DecodeCache {
  std::vector<torch::Tensor> k, v;  // per layer (B, H, capacity, hd)
  torch::Tensor key_bias;           // (B, 1, 1, capacity): 0, or -inf on a padding column
  std::int64_t length = 0;          // columns filled so far
};

/// One decoder block: x + attn(norm(x)), then x + mlp(norm(x)).
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelShape& shape);
  /// x (B, T, d); rope (2, 2, 1, T, hd/2) cos/sin tables of x's positions. Attention is
  /// causal; with a cache, x's keys and values are stored at columns [length, length + T) of
  /// layer `layer` and the queries attend to the filled columns (minus padding).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& rope, DecodeCache* cache = nullptr, int layer = 0);

  RMSNorm attn_norm{nullptr}, mlp_norm{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, gate_up{nullptr}, down{nullptr};

 private:
  torch::Tensor attention(const torch::Tensor& x, const torch::Tensor& rope, DecodeCache* cache, int layer);
  int n_heads_;
  int ffn_hidden_;
};
TORCH_MODULE(Block);

class ProxyLMImpl : public torch::nn::Module {
 public:
  explicit ProxyLMImpl(const ModelShape& shape);
  /// tokens (B, T') int64 with T' <= seq_len -> logits (B, T', V).
  torch::Tensor forward(const torch::Tensor& tokens);
  /// An empty cache for `pad` (B) left-padding columns per row and `capacity` <= seq_len.
  DecodeCache new_cache(const torch::Tensor& pad, std::int64_t capacity) const;
  /// Logits (B, T', V) of the next T' columns after those in `cache`, which it extends.
  /// Inference only (call under InferenceMode or NoGradGuard).
  torch::Tensor forward_cached(const torch::Tensor& tokens, DecodeCache& cache);
  /// Initialises weights (normal 0.02, residual projections scaled by 1/sqrt(2 n_layers),
  /// norms 1) from `gen`, so two trainers with the same seed start identical.
  void initialise(at::Generator& gen);
  /// Moves the cached rotary tables with the module.
  void to_device(const torch::Device& device);
  const ModelShape& shape() const { return shape_; }
  std::int64_t parameter_count() const;

  torch::nn::Embedding embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  RMSNorm final_norm{nullptr};

 private:
  ModelShape shape_;
  torch::Tensor rope_;  // (2, 2, 1, T, hd/2): [q|k][cos|sin], softmax scale folded into q
};
TORCH_MODULE(ProxyLM);

/// Rotary table (2, 2, 1, T, hd/2): [q|k][cos|sin]; q's carries the softmax scale 1/sqrt(hd).
torch::Tensor make_rope(int seq_len, int head_dim);

/// Per-row mean token NLL of `tokens` (B, T+1): inputs tokens[:, :-1], targets tokens[:, 1:].
/// Returns (B) losses; differentiable when grad mode is on.
torch::Tensor row_losses(ProxyLM& model, const torch::Tensor& tokens);

/// Float32 values of logits a blocked cross entropy up-casts at once (256 MiB).
inline constexpr std::int64_t kCrossEntropyBlockValues = std::int64_t{1} << 26;

/// Per-token NLL (N) of logits (N, V) against targets (N) int64, differentiable in logits.
/// CPU float32: the fused kernel; otherwise (CUDA, bf16) token_nll_blocked with blocks of
/// kCrossEntropyBlockValues / V rows. The result is float32.
torch::Tensor token_nll(const torch::Tensor& logits, const torch::Tensor& targets);

/// The same, computed in float32 `block_rows` rows at a time from logits of any float type.
torch::Tensor token_nll_blocked(const torch::Tensor& logits, const torch::Tensor& targets, std::int64_t block_rows);

}  // namespace dma::proxy
