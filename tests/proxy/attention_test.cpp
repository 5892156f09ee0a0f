// The fused CPU attention kernel against the same maths in plain tensor ops.
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attention.hpp"

namespace dma::proxy {
namespace {

struct Case {
  const char* name;
  std::int64_t batch, heads, tq, tk, hd;
  bool padded;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class FusedAttention : public ::testing::TestWithParam<Case> {};

TEST_P(FusedAttention, MatchesTensorOpsInValueAndGradient) {
  const auto c = GetParam();
  if (!fused_attention_available(torch::empty({1}, torch::kFloat32))) GTEST_SKIP() << "built without CBLAS";
  torch::manual_seed(3);
  const auto bh = c.batch * c.heads;
  auto q = (torch::randn({bh, c.tq, c.hd}) * 0.5).requires_grad_();
  auto k = torch::randn({bh, c.tk, c.hd}).requires_grad_();
  auto v = torch::randn({bh, c.tk, c.hd}).requires_grad_();
  torch::Tensor bias;
  if (c.padded) {  // row r of the batch hides its first r columns (row 1 hides more than a query sees)
    bias = torch::zeros({c.batch, c.tk});
    for (std::int64_t r = 0; r < c.batch; ++r)
      bias[r].narrow(0, 0, std::min(c.tk, 3 * r)).fill_(-std::numeric_limits<float>::infinity());
  }
  const auto up = torch::randn({bh, c.tq, c.hd});
  auto grads = [&](const torch::Tensor& out) {
    for (auto* t : {&q, &k, &v}) t->mutable_grad() = torch::Tensor();
    (out * up).sum().backward();
    return std::vector<torch::Tensor>{q.grad().clone(), k.grad().clone(), v.grad().clone()};
  };
  const auto fused = causal_attention(q, k, v, bias, c.heads);
  const auto fused_grads = grads(fused);
  const auto ref = causal_attention_reference(q, k, v, bias, c.heads);
  const auto ref_grads = grads(ref);
  EXPECT_TRUE(torch::isfinite(fused).all().item<bool>());
  EXPECT_TRUE(torch::allclose(fused, ref, 1e-5, 1e-5)) << (fused - ref).abs().max().item<float>();
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(
        torch::allclose(fused_grads[static_cast<std::size_t>(i)], ref_grads[static_cast<std::size_t>(i)], 1e-4, 1e-5))
        << "gradient " << i << " differs by "
        << (fused_grads[static_cast<std::size_t>(i)] - ref_grads[static_cast<std::size_t>(i)])
               .abs()
               .max()
               .item<float>();
  torch::NoGradGuard no_grad;  // the inference path (no saved probabilities) gives the same values
  EXPECT_TRUE(torch::equal(causal_attention(q, k, v, bias, c.heads), fused));
}

INSTANTIATE_TEST_SUITE_P(Shapes, FusedAttention,
                         ::testing::Values(Case{"OneBlock", 2, 2, 10, 10, 8, false},
                                           Case{"ThreeCausalBlocks", 1, 3, 150, 150, 16, false},
                                           Case{"PrefillWithLeftPadding", 3, 2, 7, 7, 4, true},
                                           Case{"OneDecodingStep", 3, 2, 1, 12, 4, true},
                                           Case{"QueriesAfterFiveCached", 2, 1, 70, 75, 8, true}),
                         [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace dma::proxy
