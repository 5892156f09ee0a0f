// The proxy decoder in isolation: shapes, causality, gradients of the custom autograd steps.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model.hpp"

namespace dma::proxy {
namespace {

ModelShape small_shape() {
  ModelShape s;
  s.vocab = 50;
  s.seq_len = 12;
  s.d_model = 32;
  s.n_layers = 2;
  s.n_heads = 4;
  s.ffn_hidden = ffn_hidden_for(2.0, 32);
  return s;
}

ProxyLM make_model(const ModelShape& s, std::uint64_t seed) {
  ProxyLM m(s);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  m->initialise(gen);
  return m;
}

TEST(ProxyModel, OutputShapesAndParameterCount) {
  const auto s = small_shape();
  auto m = make_model(s, 1);
  auto tokens = torch::randint(s.vocab, {3, s.seq_len}, torch::kInt64);
  EXPECT_EQ(m->forward(tokens).sizes(), (std::vector<std::int64_t>{3, s.seq_len, s.vocab}));
  EXPECT_EQ(m->forward(tokens.narrow(1, 0, 5)).sizes(), (std::vector<std::int64_t>{3, 5, s.vocab}));
  const std::int64_t d = s.d_model, f = s.ffn_hidden;
  const std::int64_t per_block = 2 * d + 3 * d * d + d * d + 2 * f * d + f * d;
  EXPECT_EQ(m->parameter_count(), s.vocab * d + s.n_layers * per_block + d);  // tied head adds nothing
  auto losses = row_losses(m, torch::randint(s.vocab, {3, s.seq_len + 1}, torch::kInt64));
  EXPECT_EQ(losses.sizes(), (std::vector<std::int64_t>{3}));
}

TEST(ProxyModel, ChangingAFutureTokenNeverChangesEarlierLogits) {
  const auto s = small_shape();
  auto m = make_model(s, 2);
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(s.vocab, {2, s.seq_len}, torch::kInt64);
  const auto before = m->forward(tokens);
  for (int j : {1, 5, s.seq_len - 1}) {
    auto changed = tokens.clone();
    changed.select(1, j).add_(7).remainder_(s.vocab);
    const auto after = m->forward(changed);
    EXPECT_TRUE(torch::equal(before.narrow(1, 0, j), after.narrow(1, 0, j))) << "position " << j;
    EXPECT_FALSE(torch::allclose(before.select(1, j), after.select(1, j))) << "position " << j << " must see its token";
  }
}

TEST(ProxyModel, CachedDecodingMatchesTheFullForward) {
  const auto s = small_shape();
  auto m = make_model(s, 4);
  c10::InferenceMode inference;
  auto tokens = torch::randint(s.vocab, {2, 10}, torch::kInt64);
  const auto full = m->forward(tokens);
  // Unpadded: a prefill of 6 columns, then one column at a time.
  auto cache = m->new_cache(torch::zeros({2}, torch::kInt64), 10);
  std::vector<torch::Tensor> parts{m->forward_cached(tokens.narrow(1, 0, 6), cache)};
  for (int c = 6; c < 10; ++c) parts.push_back(m->forward_cached(tokens.narrow(1, c, 1), cache));
  EXPECT_TRUE(torch::allclose(torch::cat(parts, 1), full, 1e-4, 1e-5));
  // Row 1 left-padded by 2 columns of junk: its real columns match its own unpadded forward.
  auto padded = torch::cat({torch::randint(s.vocab, {2, 2}, torch::kInt64), tokens}, 1);
  auto cache2 = m->new_cache(torch::tensor({0, 2}, torch::kInt64), 12);
  auto out = m->forward_cached(padded.narrow(1, 0, 8), cache2);
  out = torch::cat({out, m->forward_cached(padded.narrow(1, 8, 4), cache2)}, 1);
  EXPECT_TRUE(torch::allclose(out[1].narrow(0, 2, 10), full[1], 1e-4, 1e-5))
      << (out[1].narrow(0, 2, 10) - full[1]).abs().max().item<float>();
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}

// Reference block written with plain differentiable ops (rotate-half RoPE, masked_fill,
// composite RMSNorm): the custom autograd steps must give the same values and gradients.
torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w) {
  return x * torch::rsqrt(x.square().mean(-1, true) + 1e-5) * w;
}

torch::Tensor reference_block(BlockImpl& b, const torch::Tensor& x, int heads) {
  const auto B = x.size(0), T = x.size(1), d = x.size(2), hd = d / heads;
  auto qkv = torch::linear(rms(x, b.attn_norm->weight), b.qkv->weight).view({B, T, 3, heads, hd});
  auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
  auto inv = torch::pow(10000.0, -torch::arange(0, hd / 2, torch::kFloat64) * 2.0 / static_cast<double>(hd));
  auto ang = torch::outer(torch::arange(0, T, torch::kFloat64), inv);
  auto cos = torch::cat({ang.cos(), ang.cos()}, -1).to(torch::kFloat32),
       sin = torch::cat({ang.sin(), ang.sin()}, -1).to(torch::kFloat32);
  auto rot = [](const torch::Tensor& t) {
    auto h = t.chunk(2, -1);
    return torch::cat({-h[1], h[0]}, -1);
  };
  q = q * cos + rot(q) * sin;
  k = k * cos + rot(k) * sin;
  auto att = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd));
  att = att.masked_fill(torch::ones({T, T}, torch::kBool).triu(1), -INFINITY).softmax(-1);
  auto y = torch::matmul(att, v).transpose(1, 2).reshape({B, T, d});
  auto h = x + torch::linear(y, b.proj->weight);
  auto gu = torch::linear(rms(h, b.mlp_norm->weight), b.gate_up->weight).chunk(2, -1);
  return h + torch::linear(torch::silu(gu[0]) * gu[1], b.down->weight);
}

TEST(ProxyModel, CustomAutogradMatchesPlainOps) {
  const auto s = small_shape();
  auto m = make_model(s, 3);
  auto& block = *m->blocks[0]->as<BlockImpl>();
  {
    torch::NoGradGuard no_grad;  // non-trivial norm gains so their gradients are tested too
    block.attn_norm->weight.uniform_(0.5, 1.5);
    block.mlp_norm->weight.uniform_(0.5, 1.5);
  }
  auto x = torch::randn({2, s.seq_len, s.d_model}, torch::requires_grad());
  auto upstream = torch::randn({2, s.seq_len, s.d_model});
  const auto hd = s.d_model / s.n_heads;
  auto grads_of = [&](const torch::Tensor& y) {
    for (auto& p : block.parameters()) p.mutable_grad() = torch::Tensor();
    x.mutable_grad() = torch::Tensor();
    (y * upstream).sum().backward();
    std::vector<torch::Tensor> g{x.grad().clone()};
    for (auto& p : block.parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto fast = block.forward(x, make_rope(s.seq_len, hd));
  const auto fast_grads = grads_of(fast);
  const auto ref = reference_block(block, x, s.n_heads);
  const auto ref_grads = grads_of(ref);
  EXPECT_TRUE(torch::allclose(fast, ref, 1e-5, 1e-5)) << (fast - ref).abs().max().item<float>();
  ASSERT_EQ(fast_grads.size(), ref_grads.size());
  for (std::size_t i = 0; i < fast_grads.size(); ++i)
    EXPECT_TRUE(torch::allclose(fast_grads[i], ref_grads[i], 1e-4, 1e-5))
        << "gradient " << i << " differs by " << (fast_grads[i] - ref_grads[i]).abs().max().item<float>();
}

// The blocked cross entropy (the GPU path's loss) against ATen's, values and gradients, for
// blocks that split the rows unevenly, and from bf16 logits.
TEST(ProxyModel, BlockedCrossEntropyMatchesAten) {
  torch::manual_seed(11);
  const std::int64_t n = 13, v = 50;
  const auto targets = torch::randint(v, {n}, torch::kInt64);
  const auto upstream = torch::randn({n});
  auto loss_and_grad = [&](const torch::Tensor& logits, auto&& nll) {
    auto x = logits.detach().clone().requires_grad_(true);
    auto loss = nll(x);
    (loss * upstream.to(loss.dtype())).sum().backward();
    return std::pair{loss.detach().to(torch::kFloat32), x.grad().to(torch::kFloat32)};
  };
  const auto aten = [&](const torch::Tensor& x) {
    return at::cross_entropy_loss(x.to(torch::kFloat32), targets, /*weight=*/{}, at::Reduction::None);
  };
  const auto logits = 3 * torch::randn({n, v});
  const auto [want, want_grad] = loss_and_grad(logits, aten);
  for (std::int64_t block : {1, 4, 13, 100}) {
    const auto [got, got_grad] =
        loss_and_grad(logits, [&](const torch::Tensor& x) { return token_nll_blocked(x, targets, block); });
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6))
        << "block " << block << ": " << (got - want).abs().max().item<float>();
    EXPECT_TRUE(torch::allclose(got_grad, want_grad, 1e-5, 1e-6)) << "block " << block;
  }
  // bf16 logits: the loss is float32 of the same bf16 values; the gradient is bf16.
  const auto half = logits.to(torch::kBFloat16);
  const auto [want16, want16_grad] = loss_and_grad(half, aten);
  const auto [got16, got16_grad] =
      loss_and_grad(half, [&](const torch::Tensor& x) { return token_nll_blocked(x, targets, 4); });
  EXPECT_EQ(token_nll_blocked(half, targets, 4).scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(got16, want16, 1e-5, 1e-6)) << (got16 - want16).abs().max().item<float>();
  EXPECT_TRUE(torch::allclose(got16_grad, want16_grad, 1e-2, 1e-3))
      << (got16_grad - want16_grad).abs().max().item<float>();
  // The CPU float32 path stays the fused kernel, and agrees with the blocked one.
  EXPECT_TRUE(torch::allclose(token_nll(logits, targets), want, 1e-5, 1e-6));
  EXPECT_THROW(token_nll_blocked(logits, targets.clone().fill_(v), 4), c10::Error);
}

}  // namespace
}  // namespace dma::proxy
