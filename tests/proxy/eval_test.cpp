// The evaluation environment: held-out losses, answer parsing, exact match by greedy decoding.
#include <bit>
#include <cmath>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "device.hpp"
#include "dma/proxy.hpp"
#include "evaluation.hpp"
#include "fixture.hpp"
#include "model.hpp"

namespace dma {
namespace {

using dma::testing::TempDir;
using dma::testing::tiny_config;
using dma::testing::write_tiny_space;

TEST(ProxyAnswers, ParseAnswerTakesTheFirstNumber) {
  EXPECT_EQ(parse_answer("12\n7+5"), "12");
  EXPECT_EQ(parse_answer(" = 1,234 apples"), "1234");
  EXPECT_EQ(parse_answer("1 234"), "1234");
  EXPECT_EQ(parse_answer("x=-3."), "-3");
  EXPECT_EQ(parse_answer("3.50$"), "3.50");
  EXPECT_EQ(parse_answer("a-b 7"), "7");
  EXPECT_EQ(parse_answer("12, 13"), "12");
  EXPECT_EQ(parse_answer("no digits"), "");
  EXPECT_EQ(parse_answer(""), "");
}

TEST(ProxyAnswers, ExactMatchComparesParsedNumbers) {
  EXPECT_TRUE(proxy::exact_match("12\n7+5=", "12"));
  EXPECT_TRUE(proxy::exact_match("1,000", "1000"));
  EXPECT_FALSE(proxy::exact_match("121", "12"));
  EXPECT_FALSE(proxy::exact_match("-12", "12"));
  EXPECT_FALSE(proxy::exact_match("", "12"));
  EXPECT_FALSE(proxy::exact_match("abc", "none"));  // an answer without a number never matches
}

TEST(ProxyAnswers, AnswerCompleteMeansMoreTextCannotChangeTheAnswer) {
  EXPECT_TRUE(proxy::answer_complete("12\n"));
  EXPECT_TRUE(proxy::answer_complete("-3.5x"));
  EXPECT_FALSE(proxy::answer_complete("12"));
  EXPECT_FALSE(proxy::answer_complete("12,"));
  EXPECT_FALSE(proxy::answer_complete("abc -"));
  EXPECT_FALSE(proxy::answer_complete(""));
  // Property: once complete, any continuation parses to the same answer.
  std::mt19937 rng(5);
  const std::string alphabet = "0123456789-,. \nab";
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s, t;
    for (auto* x : {&s, &t})
      for (int n = static_cast<int>(rng() % 7); n > 0; --n) *x += alphabet[rng() % alphabet.size()];
    if (proxy::answer_complete(s)) {
      ASSERT_EQ(parse_answer(s + t), parse_answer(s)) << "'" << s << "' + '" << t << "'";
    }
  }
}

// A byte-level proxy of seq_len 16 with weights drawn from `seed`.
proxy::ProxyLM bytes_model(int d_model, int n_layers, int n_heads, int ffn_hidden, std::uint64_t seed) {
  proxy::ProxyLM model(proxy::ModelShape{256, 16, d_model, n_layers, n_heads, ffn_hidden});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  model->initialise(gen);
  return model;
}

// The evaluation as it was before its row losses were gathered on the device (a host copy
// per chunk): on CPU the new path must give the same bits.
TEST(ProxyEvalChunks, OnCpuTheEvaluationGivesTheSameBitsAsAHostCopyPerChunk) {
  TempDir dir;
  write_tiny_space(dir.file("big-eval.space"), /*seq_len=*/16, /*train_rows=*/8, /*eval_rows=*/200);
  const auto space = DomainSpace::open(dir.file("big-eval.space"));
  auto model = bytes_model(/*d_model=*/32, /*n_layers=*/2, /*n_heads=*/4, /*ffn_hidden=*/64, /*seed=*/9);
  const auto set = proxy::load_eval_set(space, 200, 16, torch::kCPU);
  ASSERT_EQ(proxy::default_eval_chunk_rows(torch::kCPU, 17, 256), 240);  // 600 rows: 3 chunks
  for (int chunk : {0, 7}) {
    const auto now = proxy::domain_losses(model, set, chunk);
    const auto before = proxy::domain_losses_host_per_chunk(model, set, chunk);
    ASSERT_EQ(now.size(), before.size());
    for (std::size_t d = 0; d < now.size(); ++d)
      EXPECT_EQ(std::bit_cast<std::uint32_t>(now[d]), std::bit_cast<std::uint32_t>(before[d]))
          << "chunk " << chunk << " domain " << d;
  }
}

TEST(ProxyEvalChunks, GpuChunksHoldAboutAQuarterGigaLogitsAndAtLeastOneRow) {
  const torch::Device gpu(torch::kCUDA, 0);                                // only a value here: nothing runs on it
  EXPECT_EQ(proxy::default_eval_chunk_rows(gpu, 1025, 32000), 8);          // seq_len 1024, a 32K vocabulary
  EXPECT_EQ(proxy::default_eval_chunk_rows(gpu, 129, 256), 8128);          // the demo proxy: whole eval sets
  EXPECT_EQ(proxy::default_eval_chunk_rows(gpu, 8193, 128000), 1);         // never zero rows
  EXPECT_EQ(proxy::default_eval_chunk_rows(torch::kCPU, 1025, 32000), 3);  // CPU: about 4096 tokens
}

TEST(ProxyAutocast, Bf16FromAmpereOnFloat32Before) {
  EXPECT_FALSE(proxy::bf16_capable(7));  // V100, T4: no bf16 tensor cores
  EXPECT_TRUE(proxy::bf16_capable(8));   // A100
  EXPECT_TRUE(proxy::bf16_capable(9));   // H100
  EXPECT_FALSE(proxy::bf16_capable(0));  // a LibTorch without CUDA reports no capability
}

class ProxyEvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_tiny_space(dir_.file("tiny.space"), /*seq_len=*/16, /*train_rows=*/32, /*eval_rows=*/3);
    space_ = std::make_unique<DomainSpace>(DomainSpace::open(dir_.file("tiny.space")));
  }
  TempDir dir_;
  std::unique_ptr<DomainSpace> space_;
};

TEST_F(ProxyEvalTest, EvalSetIsTheFirstRowsOfEachDomain) {
  const auto set = proxy::load_eval_set(*space_, /*rows_per_domain=*/2, /*seq_len=*/10, torch::kCPU);
  ASSERT_EQ(set.tokens.sizes(), (std::vector<std::int64_t>{6, 11}));
  EXPECT_EQ(set.row_domain, (std::vector<int>{0, 0, 1, 1, 2, 2}));
  std::vector<std::int32_t> rows(2 * 17);
  space_->read_eval_rows(1, 0, 2, rows);
  const auto expected = torch::from_blob(rows.data(), {2, 17}, torch::kInt32).narrow(1, 0, 11).to(torch::kInt64);
  EXPECT_TRUE(torch::equal(set.tokens.narrow(0, 2, 2), expected));
  // Asking for more rows than a domain holds takes all of them.
  EXPECT_EQ(proxy::load_eval_set(*space_, 100, 16, torch::kCPU).tokens.size(0), 9);
}

TEST_F(ProxyEvalTest, UniformModelScoresLogVocabOnEveryDomain) {
  auto model = bytes_model(/*d_model=*/16, /*n_layers=*/1, /*n_heads=*/2, /*ffn_hidden=*/32, /*seed=*/5);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.zero_();  // all logits 0: NLL is log(V) for every token
  }
  const auto set = proxy::load_eval_set(*space_, 3, 16, torch::kCPU);
  const auto losses = proxy::domain_losses(model, set, /*chunk_rows=*/2);
  ASSERT_EQ(losses.size(), 3u);
  for (float l : losses) EXPECT_NEAR(l, std::log(256.0), 1e-5);
}

TEST_F(ProxyEvalTest, DomainLossIsTheMeanTokenNllOfItsRows) {
  auto model = bytes_model(/*d_model=*/16, /*n_layers=*/1, /*n_heads=*/2, /*ffn_hidden=*/32, /*seed=*/5);
  const auto set = proxy::load_eval_set(*space_, 3, 16, torch::kCPU);
  const auto losses = proxy::domain_losses(model, set, /*chunk_rows=*/4);  // chunks straddle domains
  torch::NoGradGuard no_grad;
  for (int d = 0; d < 3; ++d) {
    // By hand: logits of the domain's rows, NLL of each next token, averaged over all tokens.
    auto rows = set.tokens.narrow(0, 3 * d, 3);
    auto logp = torch::log_softmax(model->forward(rows.narrow(1, 0, 16)), -1);
    auto nll = -logp.gather(2, rows.narrow(1, 1, 16).unsqueeze(2)).mean().item<double>();
    EXPECT_NEAR(losses[static_cast<std::size_t>(d)], nll, 1e-5) << "domain " << d;
  }
}

TEST_F(ProxyEvalTest, BatchedGreedyDecodingEqualsOnePromptAtATime) {
  proxy::ModelShape shape;
  shape.seq_len = 16;
  shape.d_model = 16;
  shape.n_layers = 1;
  shape.n_heads = 2;
  shape.ffn_hidden = 32;
  proxy::ProxyLM model(shape);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  model->initialise(gen);
  std::vector<std::vector<std::int64_t>> prompts{
      std::vector<std::int64_t>(40, 'a'), {'1', '+'}, {'2', '+', '3', '='}, {'9'}};
  const auto batched = proxy::greedy_generate(model, prompts, 5, torch::kCPU);
  ASSERT_EQ(batched.size(), prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_LE(batched[i].size(), 5u);
    const auto alone = proxy::greedy_generate(model, {prompts[i]}, 5, torch::kCPU)[0];
    EXPECT_EQ(batched[i].substr(0, alone.size()), alone.substr(0, batched[i].size())) << "prompt " << i;
  }
  // The long prompt keeps its last seq_len - 5 tokens: the same as giving only those.
  const auto cropped = proxy::greedy_generate(model, {std::vector<std::int64_t>(11, 'a')}, 5, torch::kCPU)[0];
  EXPECT_EQ(batched[0].substr(0, cropped.size()), cropped.substr(0, batched[0].size()));
  EXPECT_LE(proxy::greedy_generate(model, prompts, 40, torch::kCPU)[1].size(), 15u);  // budget capped at seq_len - 1
}

TEST_F(ProxyEvalTest, MathExactMatchAfterLearningTheAnswer) {
  auto config = tiny_config(dir_.file("tiny.space"), dir_.file("run"));
  ProxyTrainer t(proxy_trainer_config(config), *space_, DeviceChoice{}, 3);
  t.start_from_scratch(1, 80, 1e-2, 5);
  EXPECT_EQ(t.evaluate().math_accuracy, 0.0f);                     // a random model does not answer 12
  const auto r = t.train(std::vector<double>{0.0, 0.0, 1.0}, 80);  // only "7+5=12\n" text
  ASSERT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(t.evaluate().math_accuracy, 1.0f);
}

}  // namespace
}  // namespace dma
