// The proxy decoder. Speed at small sizes comes from few passes over memory and few
// dispatched ops: the softmax scale is folded into the rotary table of q; the rotary
// embedding and the head split are one custom autograd step that writes q, k, v in the
// layout attention reads; and on CPU float, attention (attention.cpp), RMSNorm, SwiGLU and
// the cross entropy are fused loops (cpu_kernels.cpp) with hand-written backwards. Other
// devices and dtypes run the same maths in tensor ops.
#include "model.hpp"

#include <cmath>

#include "attention.hpp"
#include "cpu_kernels.hpp"

namespace dma::proxy {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

int ffn_hidden_for(double ffn_mult, int d_model) {
  const auto rounded = static_cast<int>(std::lround(ffn_mult * d_model / 8.0)) * 8;
  return rounded < 8 ? 8 : rounded;
}

namespace {

bool cpu_float(const Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

// y = x / rms(x) * w over the last dim: a fused loop on CPU float (cpu_kernels.cpp), else
// tensor ops saving x_hat and 1/rms: dx = rstd (g w - x_hat mean(g w x_hat)), dw = sum g x_hat.
struct RMSNormFn : public torch::autograd::Function<RMSNormFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, double eps) {
    const auto d = x.size(-1);
    ctx->saved_data["fused"] = cpu_float(x) && cpu_float(w);
    if (ctx->saved_data["fused"].toBool()) {
      const auto xc = x.contiguous(), wc = w.contiguous();
      auto y = torch::empty_like(xc);
      auto rstd = torch::empty({xc.numel() / d}, xc.options());
      cpu::rmsnorm_forward(xc.data_ptr<float>(), wc.data_ptr<float>(), y.data_ptr<float>(), rstd.data_ptr<float>(),
                           rstd.numel(), d, static_cast<float>(eps));
      ctx->save_for_backward({xc, wc, rstd});
      return y;
    }
    auto rstd =
        at::linalg_vector_norm(x, 2, {-1}, /*keepdim=*/true).square_().div_(static_cast<double>(d)).add_(eps).rsqrt_();
    auto x_hat = x * rstd;
    ctx->save_for_backward({x_hat, w, rstd});
    return x_hat * w;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& w = saved[1];
    const auto& rstd = saved[2];
    const auto g = grads[0].contiguous();
    const auto d = g.size(-1);
    if (ctx->saved_data["fused"].toBool()) {
      const auto& x = saved[0];
      auto dx = torch::empty_like(x), dw = torch::empty_like(w);
      cpu::rmsnorm_backward(x.data_ptr<float>(), w.data_ptr<float>(), rstd.data_ptr<float>(), g.data_ptr<float>(),
                            dx.data_ptr<float>(), dw.data_ptr<float>(), rstd.numel(), d);
      return {dx, dw, Tensor()};
    }
    const auto& x_hat = saved[0];
    auto gw = g * w;
    auto dot = at::mul(gw, x_hat).sum(-1, /*keepdim=*/true).div_(static_cast<double>(d));
    auto dx = gw.sub_(x_hat * dot).mul_(rstd);
    auto dw = at::mul(g, x_hat).reshape({-1, d}).sum(0);
    return {dx, dw, Tensor()};
  }
};

// Splits qkv (B, T, 3d) into heads and applies the rotary embedding to q and k, writing
// (3, B, H, T, hd) contiguous so the score and value matmuls read it without copies.
// rope (2, 2, 1, T, hd/2) holds [q|k][cos|sin] (q's scaled by 1/sqrt(hd)). With x = [x1|x2]
// split in halves: out1 = x1 c - x2 s, out2 = x2 c + x1 s; the backward is the transpose.
struct RopeSplitFn : public torch::autograd::Function<RopeSplitFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& qkv, const Tensor& rope, int64_t heads) {
    const auto b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3, hd = d / heads, half = hd / 2;
    auto x = qkv.view({b, t, 3, heads, hd}).permute({2, 0, 3, 1, 4});  // (3, B, H, T, hd)
    auto out = at::empty({3, b, heads, t, hd}, qkv.options());
    auto c = rope.select(1, 0), s = rope.select(1, 1);  // (2, 1, T, hd/2)
    auto xqk = x.narrow(0, 0, 2), oqk = out.narrow(0, 0, 2);
    auto x1 = xqk.narrow(-1, 0, half), x2 = xqk.narrow(-1, half, half);
    auto o1 = oqk.narrow(-1, 0, half), o2 = oqk.narrow(-1, half, half);
    // c, s broadcast as (2, 1, 1, T, hd/2) against (2, B, H, T, hd/2).
    auto cb = c.unsqueeze(1), sb = s.unsqueeze(1);
    at::mul_out(o1, x1, cb).addcmul_(x2, sb, -1);
    at::mul_out(o2, x2, cb).addcmul_(x1, sb, 1);
    out.select(0, 2).copy_(x.select(0, 2));
    ctx->save_for_backward({rope});
    ctx->saved_data["heads"] = heads;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto rope = ctx->get_saved_variables()[0];
    const auto heads = ctx->saved_data["heads"].toInt();
    const auto& g = grads[0];  // (3, B, H, T, hd)
    const auto b = g.size(1), t = g.size(3), hd = g.size(4), half = hd / 2;
    auto gqkv = at::empty({b, t, 3 * heads * hd}, g.options());
    auto gx = gqkv.view({b, t, 3, heads, hd}).permute({2, 0, 3, 1, 4});
    auto cb = rope.select(1, 0).unsqueeze(1), sb = rope.select(1, 1).unsqueeze(1);
    auto gqk = g.narrow(0, 0, 2), xqk = gx.narrow(0, 0, 2);
    auto g1 = gqk.narrow(-1, 0, half), g2 = gqk.narrow(-1, half, half);
    auto r1 = xqk.narrow(-1, 0, half), r2 = xqk.narrow(-1, half, half);
    at::mul_out(r1, g1, cb).addcmul_(g2, sb, 1);
    at::mul_out(r2, g2, cb).addcmul_(g1, sb, -1);
    gx.select(0, 2).copy_(g.select(0, 2));
    return {gqkv, Tensor(), Tensor()};
  }
};

// SwiGLU on the fused gate|up projection gu (..., 2F): silu(gate) * up. A fused loop on CPU
// float; elsewhere tensor ops. Either way the backward writes both halves' gradients into one
// (..., 2F) buffer (autograd's chunk would cat them).
struct SwiGLUFn : public torch::autograd::Function<SwiGLUFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& gu) {
    const auto f = gu.size(-1) / 2;
    if (cpu_float(gu)) {
      const auto guc = gu.contiguous();
      auto sizes = guc.sizes().vec();
      sizes.back() = f;
      auto out = torch::empty(sizes, guc.options());
      cpu::swiglu_forward(guc.data_ptr<float>(), out.data_ptr<float>(), guc.numel() / (2 * f), f);
      ctx->save_for_backward({guc});
      return out;
    }
    ctx->save_for_backward({gu});
    return at::silu(gu.narrow(-1, 0, f)).mul_(gu.narrow(-1, f, f));
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto gu = ctx->get_saved_variables()[0];
    const auto f = gu.size(-1) / 2;
    auto dgu = at::empty_like(gu);
    if (cpu_float(gu)) {
      const auto go = grads[0].contiguous();
      cpu::swiglu_backward(gu.data_ptr<float>(), go.data_ptr<float>(), dgu.data_ptr<float>(), gu.numel() / (2 * f), f);
      return {dgu};
    }
    const auto gate = gu.narrow(-1, 0, f), up = gu.narrow(-1, f, f);
    const auto& g = grads[0];
    auto dgate = dgu.narrow(-1, 0, f), dup = dgu.narrow(-1, f, f);
    at::silu_out(dup, gate).mul_(g);             // d up = g silu(gate)
    at::silu_backward_out(dgate, g * up, gate);  // d gate = g up silu'(gate)
    return {dgu};
  }
};

// Per-token cross entropy of logits (N, V) on CPU float: one pass for the log-sum-exp, one
// for the gradient softmax - onehot (ATen: log_softmax, nll, and their two backwards).
struct CrossEntropyFn : public torch::autograd::Function<CrossEntropyFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& logits, const Tensor& targets) {
    const auto n = logits.size(0), v = logits.size(1);
    TORCH_CHECK(n == 0 || (targets.min().item<std::int64_t>() >= 0 && targets.max().item<std::int64_t>() < v),
                "token id outside the vocabulary of ", v);
    auto loss = torch::empty({n}, logits.options()), lse = torch::empty({n}, logits.options());
    cpu::cross_entropy_forward(logits.data_ptr<float>(), targets.data_ptr<std::int64_t>(), loss.data_ptr<float>(),
                               lse.data_ptr<float>(), n, v);
    ctx->save_for_backward({logits, targets, lse});
    return loss;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const auto g = grads[0].contiguous();
    auto dlogits = torch::empty_like(logits);
    cpu::cross_entropy_backward(logits.data_ptr<float>(), targets.data_ptr<std::int64_t>(), lse.data_ptr<float>(),
                                g.data_ptr<float>(), dlogits.data_ptr<float>(), logits.size(0), logits.size(1));
    return {dlogits, Tensor()};
  }
};

// Per-token cross entropy of logits (N, V) of any float type, computed in float32 one block
// of rows at a time, so that only (block, V) float32 values exist at once: up-casting all
// (N, V) bf16 logits (what at::cross_entropy_loss does under autocast, keeping the float copy
// for backward) costs 2x the logits' memory. Saves the logits and the (N) log-sum-exp; the
// backward recomputes each block's softmax.
struct BlockedCrossEntropyFn : public torch::autograd::Function<BlockedCrossEntropyFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& logits, const Tensor& targets, std::int64_t block_rows) {
    const auto n = logits.size(0), v = logits.size(1);
    TORCH_CHECK(n == 0 || (targets.min().item<std::int64_t>() >= 0 && targets.max().item<std::int64_t>() < v),
                "token id outside the vocabulary of ", v);
    const auto f32 = logits.options().dtype(torch::kFloat32);
    auto loss = torch::empty({n}, f32), lse = torch::empty({n}, f32);
    for (std::int64_t start = 0; start < n; start += block_rows) {
      const auto rows = std::min(block_rows, n - start);
      const auto x = logits.narrow(0, start, rows).to(torch::kFloat32);  // (rows, V)
      const auto block_lse = at::logsumexp(x, /*dim=*/1);
      lse.narrow(0, start, rows).copy_(block_lse);
      const auto picked = x.gather(1, targets.narrow(0, start, rows).unsqueeze(1)).squeeze(1);
      loss.narrow(0, start, rows).copy_(block_lse - picked);
    }
    ctx->save_for_backward({logits, targets, lse});
    ctx->saved_data["block_rows"] = block_rows;
    return loss;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const auto block_rows = ctx->saved_data["block_rows"].toInt();
    const auto& g = grads[0];
    auto dlogits = torch::empty_like(logits);
    for (std::int64_t start = 0; start < logits.size(0); start += block_rows) {
      const auto rows = std::min(block_rows, logits.size(0) - start);
      auto p = (logits.narrow(0, start, rows).to(torch::kFloat32) - lse.narrow(0, start, rows).unsqueeze(1)).exp_();
      p.scatter_add_(1, targets.narrow(0, start, rows).unsqueeze(1), -torch::ones({rows, 1}, p.options()));
      dlogits.narrow(0, start, rows).copy_(p.mul_(g.narrow(0, start, rows).unsqueeze(1)));  // (softmax - onehot) g
    }
    return {dlogits, Tensor(), Tensor()};
  }
};

torch::nn::Linear linear(int in, int out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }

}  // namespace

Tensor make_rope(int seq_len, int head_dim) {
  const int half = head_dim / 2;
  auto inv_freq = torch::pow(10000.0, -torch::arange(0, half, torch::kFloat64) * 2.0 / head_dim);
  auto angles = torch::outer(torch::arange(0, seq_len, torch::kFloat64), inv_freq);  // (T, hd/2)
  auto cs = torch::stack({angles.cos(), angles.sin()}).unsqueeze(1);                 // (2, 1, T, hd/2)
  auto table = torch::stack({cs / std::sqrt(static_cast<double>(head_dim)), cs});    // (2, 2, 1, T, hd/2)
  return table.to(torch::kFloat32).contiguous();
}

RMSNormImpl::RMSNormImpl(int dim, double eps) : eps_(eps) { weight = register_parameter("weight", torch::ones({dim})); }

Tensor RMSNormImpl::forward(const Tensor& x) { return RMSNormFn::apply(x, weight, eps_); }

BlockImpl::BlockImpl(const ModelShape& shape) : n_heads_(shape.n_heads), ffn_hidden_(shape.ffn_hidden) {
  const int d = shape.d_model;
  attn_norm = register_module("attn_norm", RMSNorm(d));
  qkv = register_module("qkv", linear(d, 3 * d));
  proj = register_module("proj", linear(d, d));
  mlp_norm = register_module("mlp_norm", RMSNorm(d));
  gate_up = register_module("gate_up", linear(d, 2 * shape.ffn_hidden));
  down = register_module("down", linear(shape.ffn_hidden, d));
}

Tensor BlockImpl::attention(const Tensor& x, const Tensor& rope, DecodeCache* cache, int layer) {
  const auto b = x.size(0), t = x.size(1), d = x.size(2), hd = d / n_heads_;
  auto heads = RopeSplitFn::apply(qkv(x), rope, n_heads_).view({3, b, n_heads_, t, hd});
  auto q = heads[0].view({b * n_heads_, t, hd}), k = heads[1].view({b * n_heads_, t, hd}),
       v = heads[2].view({b * n_heads_, t, hd});
  Tensor key_bias;
  if (cache) {  // append this step's keys and values, attend over every filled column
    auto& ck = cache->k[static_cast<std::size_t>(layer)];
    auto& cv = cache->v[static_cast<std::size_t>(layer)];
    const auto start = cache->length, keys = start + t;
    ck.narrow(2, start, t).copy_(heads[1]);
    cv.narrow(2, start, t).copy_(heads[2]);
    k = ck.narrow(2, 0, keys).reshape({b * n_heads_, keys, hd});
    v = cv.narrow(2, 0, keys).reshape({b * n_heads_, keys, hd});
    key_bias = cache->key_bias.narrow(1, 0, keys);
  }
  auto y = causal_attention(q, k, v, key_bias, n_heads_);  // (B H, T, hd)
  return proj(y.view({b, n_heads_, t, hd}).transpose(1, 2).reshape({b, t, d}));
}

Tensor BlockImpl::forward(const Tensor& x, const Tensor& rope, DecodeCache* cache, int layer) {
  auto h = x + attention(attn_norm(x), rope, cache, layer);
  return h + down(SwiGLUFn::apply(gate_up(mlp_norm(h))));
}

ProxyLMImpl::ProxyLMImpl(const ModelShape& shape) : shape_(shape) {
  embed = register_module("embed", torch::nn::Embedding(shape.vocab, shape.d_model));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < shape.n_layers; ++i) blocks->push_back(Block(shape));
  final_norm = register_module("final_norm", RMSNorm(shape.d_model));
  rope_ = make_rope(shape.seq_len, shape.d_model / shape.n_heads);
}

void ProxyLMImpl::initialise(at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const double std = 0.02, resid_std = 0.02 / std::sqrt(2.0 * shape_.n_layers);
  for (auto& item : named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    if (p.dim() == 1)
      p.fill_(1.0);  // norm gains
    else if (name.ends_with("proj.weight") || name.ends_with("down.weight"))
      p.normal_(0.0, resid_std, gen);
    else
      p.normal_(0.0, std, gen);
  }
}

void ProxyLMImpl::to_device(const torch::Device& device) {
  to(device);
  rope_ = rope_.to(device);
}

std::int64_t ProxyLMImpl::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

Tensor ProxyLMImpl::forward(const Tensor& tokens) {
  const auto t = tokens.size(1);
  const auto rope = rope_.narrow(3, 0, t);
  auto x = embed(tokens);  // (B, T, d)
  for (const auto& block : *blocks) x = block->as<BlockImpl>()->forward(x, rope);
  return at::matmul(final_norm(x), embed->weight.t());  // (B, T, V), head tied to the embedding
}

DecodeCache ProxyLMImpl::new_cache(const Tensor& pad, std::int64_t capacity) const {
  TORCH_CHECK(capacity <= shape_.seq_len, "decode cache capacity ", capacity, " exceeds seq_len ", shape_.seq_len);
  const auto b = pad.size(0);
  const std::int64_t hd = shape_.d_model / shape_.n_heads;
  DecodeCache cache;
  const auto opts = embed->weight.options();
  for (int i = 0; i < shape_.n_layers; ++i) {
    cache.k.push_back(torch::empty({b, shape_.n_heads, capacity, hd}, opts));
    cache.v.push_back(torch::empty({b, shape_.n_heads, capacity, hd}, opts));
  }
  auto columns = torch::arange(capacity, pad.options()).view({1, capacity});
  const auto inf = std::numeric_limits<float>::infinity();
  cache.key_bias = torch::zeros({b, capacity}, opts).masked_fill_(columns < pad.view({b, 1}), -inf);
  return cache;
}

Tensor ProxyLMImpl::forward_cached(const Tensor& tokens, DecodeCache& cache) {
  const auto t = tokens.size(1), start = cache.length, keys = start + t;
  TORCH_CHECK(keys <= cache.key_bias.size(-1), "decode cache holds ", cache.key_bias.size(-1), " columns, need ", keys);
  const auto rope = rope_.narrow(3, start, t);
  auto x = embed(tokens);
  int layer = 0;
  for (const auto& block : *blocks) x = block->as<BlockImpl>()->forward(x, rope, &cache, layer++);
  cache.length = keys;
  return at::matmul(final_norm(x), embed->weight.t());
}

Tensor row_losses(ProxyLM& model, const Tensor& tokens) {
  const auto b = tokens.size(0), t = tokens.size(1) - 1;
  auto logits = model->forward(tokens.narrow(1, 0, t));
  auto targets = tokens.narrow(1, 1, t).reshape({-1}).contiguous();
  auto flat = logits.view({b * t, -1});
  return token_nll(flat, targets).view({b, t}).mean(/*dim=*/1);
}

Tensor token_nll(const Tensor& logits, const Tensor& targets) {
  if (cpu_float(logits)) return CrossEntropyFn::apply(logits.contiguous(), targets);
  return token_nll_blocked(
      logits, targets, std::max<std::int64_t>(1, kCrossEntropyBlockValues / std::max<std::int64_t>(1, logits.size(1))));
}

Tensor token_nll_blocked(const Tensor& logits, const Tensor& targets, std::int64_t block_rows) {
  TORCH_CHECK(block_rows > 0, "block_rows must be positive, got ", block_rows);
  return BlockedCrossEntropyFn::apply(logits, targets, block_rows);
}

}  // namespace dma::proxy
