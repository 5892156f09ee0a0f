#include "nets.hpp"

#include <cmath>

namespace dma::agent {
namespace nn = torch::nn;

namespace {
constexpr double kLogStdMin = -5.0;
constexpr double kLogStdMax = 1.0;

// Per-token action features: weight relative to uniform, and its log (resolves small weights).
torch::Tensor action_features(const torch::Tensor& actions) {  // (B, K, D) -> (B, K, D, 2)
  const auto rel = actions * static_cast<double>(actions.size(-1));
  return torch::stack({rel, torch::log(rel + 0.01)}, /*dim=*/-1);
}
// In inference, a (B, D, in) input goes through the layer row by row in one fixed order of
// operations (each output accumulates its inputs in order), so a row's outputs are the same
// bits whatever batch it came in; a BLAS product over all B·D rows rounds a row differently
// by where it falls in the kernel's tiles. The rows are short (tens of inputs and outputs),
// where this loop also beats a BLAS call per episode. Training keeps the library's product.
torch::Tensor linear(nn::Linear& layer, const torch::Tensor& x) {
  if (!c10::InferenceMode::is_enabled() || x.dim() != 3) return layer(x);
  const auto in = x.contiguous();
  const auto weight_t = layer->weight.t().contiguous();  // (in, out)
  const std::int64_t rows = in.size(0) * in.size(1), n_in = in.size(2), n_out = weight_t.size(1);
  auto out = layer->options.bias() ? layer->bias.expand({rows, n_out}).contiguous() : torch::zeros({rows, n_out});
  const float* a = in.data_ptr<float>();
  const float* w = weight_t.data_ptr<float>();
  float* y = out.data_ptr<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * n_out;
    const float* ar = a + r * n_in;
    for (std::int64_t k = 0; k < n_in; ++k) {
      const float ak = ar[k];
      const float* wk = w + k * n_out;
      for (std::int64_t o = 0; o < n_out; ++o) yr[o] += ak * wk[o];
    }
  }
  return out.view({in.size(0), in.size(1), n_out});
}
}  // namespace

BlockImpl::BlockImpl(int d, int heads) : heads_(heads) {
  ln1_ = register_module("ln1", nn::LayerNorm(nn::LayerNormOptions({d})));
  ln2_ = register_module("ln2", nn::LayerNorm(nn::LayerNormOptions({d})));
  qkv_ = register_module("qkv", nn::Linear(d, 3 * d));
  proj_ = register_module("proj", nn::Linear(d, d));
  fc1_ = register_module("fc1", nn::Linear(d, 2 * d));
  fc2_ = register_module("fc2", nn::Linear(2 * d, d));
}

torch::Tensor BlockImpl::forward(torch::Tensor x, const torch::Tensor& key_bias) {
  const auto B = x.size(0), D = x.size(1), d = x.size(2), dh = d / heads_;
  auto qkv = linear(qkv_, ln1_(x)).view({B, D, 3, heads_, dh}).permute({2, 0, 3, 1, 4});  // (3, B, h, D, dh)
  auto scores = torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) / std::sqrt(static_cast<double>(dh));  // (B, h, D, D)
  if (key_bias.defined()) scores = scores + key_bias.view({B, 1, 1, D});
  auto att = torch::softmax(scores, /*dim=*/-1);
  auto mixed = torch::matmul(att, qkv[2]).transpose(1, 2).reshape({B, D, d});  // (B, D, d)
  x = x + linear(proj_, mixed);
  return x + linear(fc2_, torch::gelu(linear(fc1_, ln2_(x))));
}

EncoderImpl::EncoderImpl(const NetShape& shape) {
  in_ = register_module("input", nn::Linear(shape.in_features, shape.d_token));
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int i = 0; i < shape.n_layers; ++i) blocks_->push_back(Block(shape.d_token, shape.n_heads));
  ln_ = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({shape.d_token})));
}

torch::Tensor EncoderImpl::forward(torch::Tensor tokens, const torch::Tensor& key_bias) {
  auto x = linear(in_, tokens);
  for (const auto& b : *blocks_) x = b->as<Block>()->forward(x, key_bias);
  return ln_(x);
}

ActorImpl::ActorImpl(const NetShape& shape) {
  encoder_ = register_module("encoder", Encoder(shape));
  head_ = register_module("head", nn::Linear(shape.d_token, 1));
  // Start near the uniform mixture so early CQL samples are spread out.
  torch::NoGradGuard no_grad;
  head_->weight.mul_(0.1);
  head_->bias.zero_();
  log_std_ = register_parameter("log_std", torch::full({1}, std::log(0.3)));
}

torch::Tensor ActorImpl::forward(torch::Tensor tokens, const torch::Tensor& key_bias) {
  return linear(head_, encoder_(tokens, key_bias)).squeeze(-1);
}

torch::Tensor ActorImpl::log_std() const { return log_std_.clamp(kLogStdMin, kLogStdMax); }

std::pair<torch::Tensor, torch::Tensor> ActorImpl::sample(const torch::Tensor& mean, int k, at::Generator& gen) const {
  const auto B = mean.size(0), D = mean.size(1);
  const auto ls = log_std();
  auto eps = torch::randn({B, k, D}, gen);
  auto logits = mean.unsqueeze(1) + eps * ls.exp();  // (B, K, D)
  // Gaussian log-density of the logits, summed over domains.
  auto logp = (-0.5 * eps.pow(2) - ls - 0.5 * std::log(2 * M_PI)).sum(/*dim=*/-1);  // (B, K)
  return {logits, logp};
}

CriticImpl::CriticImpl(const NetShape& shape) {
  const int d = shape.d_token;
  encoder_ = register_module("encoder", Encoder(shape));
  state_proj_ = register_module("state_proj", nn::Linear(d, d));
  action_embed_ = register_module("action_embed", nn::Linear(2, d));
  token_fc_ = register_module("token_fc", nn::Linear(d, d));
  out1_ = register_module("out1", nn::Linear(2 * d + 1, d));
  out2_ = register_module("out2", nn::Linear(d, 1));
}

torch::Tensor CriticImpl::encode(torch::Tensor tokens) { return state_proj_(encoder_(tokens)); }

torch::Tensor CriticImpl::q(const torch::Tensor& encoded, const torch::Tensor& is_target,
                            const torch::Tensor& actions) {
  auto z = torch::relu(encoded.unsqueeze(1) + action_embed_(action_features(actions)));  // (B, K, D, d)
  z = torch::relu(token_fc_(z));
  auto pooled = torch::cat({z.mean(/*dim=*/2), std::get<0>(z.max(/*dim=*/2))}, /*dim=*/-1);  // (B, K, 2d)
  auto share = (actions * is_target.unsqueeze(1)).sum(/*dim=*/-1, /*keepdim=*/true);         // (B, K, 1)
  return out2_(torch::relu(out1_(torch::cat({pooled, share}, /*dim=*/-1)))).squeeze(-1);
}

std::pair<torch::Tensor, double> uniform_logits(int batch, int k, int domains, double box, at::Generator& gen) {
  auto u = (torch::rand({batch, k, domains}, gen) * 2 - 1) * box;
  return {u, -domains * std::log(2 * box)};
}

}  // namespace dma::agent
