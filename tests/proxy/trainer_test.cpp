// ProxyTrainer through the public API: learning, resume, divergence, checkpoints, pretrain.
#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dma/error.hpp"
#include "dma/proxy.hpp"
#include "dma/seed.hpp"
#include "fixture.hpp"

namespace dma {
namespace {

using dma::testing::TempDir;
using dma::testing::tiny_config;
using dma::testing::write_tiny_space;

const std::vector<double> kUniform{1.0 / 3, 1.0 / 3, 1.0 / 3};

/// The model tensors of a saved trainer state, by name.
std::map<std::string, torch::Tensor> state_tensors(const std::string& path) {
  torch::serialize::InputArchive a;
  a.load_from(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& key : a.keys())
    if (key.starts_with("model.") || key.starts_with("optim.exp")) {
      torch::Tensor t;
      a.read(key, t);
      out[key] = t;
    }
  return out;
}

class ProxyTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_tiny_space(dir_.file("tiny.space"));
    space_ = std::make_unique<DomainSpace>(DomainSpace::open(dir_.file("tiny.space")));
    config_ = tiny_config(dir_.file("tiny.space"), dir_.file("run"));
  }
  ProxyTrainer make(std::uint64_t init_seed = 11) {
    return ProxyTrainer(proxy_trainer_config(config_), *space_, DeviceChoice{}, init_seed);
  }

  TempDir dir_;
  std::unique_ptr<DomainSpace> space_;
  Config config_;
};

TEST_F(ProxyTrainerTest, LossFallsOnATinyCorpus) {
  auto t = make();
  t.start_from_scratch(/*seed=*/5, /*total_steps=*/60, /*peak_lr=*/1e-2, /*warmup_steps=*/5);
  const auto before = t.evaluate();
  const auto first = t.train(kUniform, 5);
  ASSERT_TRUE(first.ok) << first.failure;
  EXPECT_EQ(first.tokens, 5 * 4 * 16);
  const auto last = t.train(kUniform, 55);
  ASSERT_TRUE(last.ok) << last.failure;
  const auto after = t.evaluate();
  EXPECT_LT(last.mean_loss, 0.5 * first.mean_loss);
  for (std::size_t d = 0; d < 3; ++d) {
    EXPECT_LT(after.domain_loss[d], 0.5 * before.domain_loss[d]) << "domain " << d;
    EXPECT_TRUE(std::isfinite(last.domain_train_loss[d]));
  }
}

TEST_F(ProxyTrainerTest, UnseenDomainHasNaNTrainLoss) {
  auto t = make();
  t.start_from_scratch(5, 10, 1e-3, 1);
  const auto r = t.train(std::vector<double>{1.0, 0.0, 0.0}, 2);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(std::isfinite(r.domain_train_loss[0]));
  EXPECT_TRUE(std::isnan(r.domain_train_loss[1]));
  EXPECT_THROW(t.train(std::vector<double>{0.5, 0.6, 0.0}, 1), DataError);
}

TEST_F(ProxyTrainerTest, ResumeFromSavedStateIsBitIdentical) {
  const std::vector<double> w{0.2, 0.3, 0.5};
  auto straight = make();
  straight.start_from_scratch(9, 6, 5e-3, 2);
  ASSERT_TRUE(straight.train(w, 3).ok);
  const auto straight_second = straight.train(w, 3);
  straight.save_state(dir_.file("straight.pt"));

  auto first = make();
  first.start_from_scratch(9, 6, 5e-3, 2);
  ASSERT_TRUE(first.train(w, 3).ok);
  first.save_state(dir_.file("half.pt"));
  auto resumed = make(/*init_seed=*/999);  // different init: everything must come from the file
  resumed.load_state(dir_.file("half.pt"));
  const auto resumed_second = resumed.train(w, 3);
  resumed.save_state(dir_.file("resumed.pt"));

  EXPECT_EQ(straight_second.domain_train_loss, resumed_second.domain_train_loss);
  const auto a = state_tensors(dir_.file("straight.pt")), b = state_tensors(dir_.file("resumed.pt"));
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GT(a.size(), 5u);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  // And the trajectory really moved: the half-way state differs from the end.
  EXPECT_FALSE(torch::equal(state_tensors(dir_.file("half.pt")).at("model.embed.weight"), a.at("model.embed.weight")));
}

TEST_F(ProxyTrainerTest, DivergenceFailsTheTrajectoryNotTheProcess) {
  auto t = make();
  t.start_from_scratch(3, 40, 1e-2, 1);
  ASSERT_TRUE(t.train(kUniform, 3).ok);
  t.save_base(dir_.file("base.pt"), t.evaluate());

  config_.train.lr = 1e9;  // a huge learning rate must blow up the loss
  config_.train.warmup_steps = 0;
  auto wild = make();
  wild.start_trajectory(dir_.file("base.pt"), 4, 40);
  TrainResult r;
  for (int i = 0; i < 10 && r.ok; ++i) r = wild.train(kUniform, 4);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("non-finite"), std::string::npos) << r.failure;
  const auto again = wild.train(kUniform, 1);  // a failed trajectory stays failed
  EXPECT_FALSE(again.ok);
  const auto eval = wild.evaluate();  // and the process still evaluates
  EXPECT_EQ(eval.domain_loss.size(), 3u);

  // A restarted trajectory starts clean from the base (its first step is computed on the
  // base weights, before any huge update), and another trainer in the process is healthy.
  wild.start_trajectory(dir_.file("base.pt"), 5, 40);
  const auto restarted = wild.train(kUniform, 1);
  ASSERT_TRUE(restarted.ok) << restarted.failure;
  config_.train.lr = 3e-3;
  auto calm = make();
  calm.start_trajectory(dir_.file("base.pt"), 5, 40);
  const auto calm_first = calm.train(kUniform, 1);
  EXPECT_EQ(restarted.domain_train_loss, calm_first.domain_train_loss);  // same base, seed and batch
  const auto ok = calm.train(kUniform, 3);
  ASSERT_TRUE(ok.ok) << ok.failure;
  EXPECT_TRUE(std::isfinite(ok.mean_loss));
}

TEST_F(ProxyTrainerTest, StartTrajectoryIsReproducibleAndSeedDependent) {
  auto t = make();
  t.start_from_scratch(3, 5, 1e-2, 1);
  t.save_base(dir_.file("base.pt"), t.evaluate());
  auto run = [&](std::uint64_t seed) {
    auto u = make(77);
    u.start_trajectory(dir_.file("base.pt"), seed, 10);
    return u.train(kUniform, 3).domain_train_loss;
  };
  EXPECT_EQ(run(trajectory_seed(1, 4)), run(trajectory_seed(1, 4)));
  EXPECT_NE(run(trajectory_seed(1, 4)), run(trajectory_seed(1, 5)));
}

TEST_F(ProxyTrainerTest, BaseCheckpointRoundTripsItsInfo) {
  auto t = make();
  t.start_from_scratch(3, 5, 1e-2, 1);
  ASSERT_TRUE(t.train(kUniform, 2).ok);
  const auto eval = t.evaluate();
  t.save_base(dir_.file("base.pt"), eval);
  const auto info = read_base_info(dir_.file("base.pt"));
  EXPECT_EQ(info.eval_loss, eval.domain_loss);
  EXPECT_EQ(info.math_accuracy, eval.math_accuracy);
  EXPECT_EQ(info.parameters, t.parameter_count());
  EXPECT_EQ(info.space_fingerprint, space_->fingerprint());
  EXPECT_EQ(info.config_hash, proxy_config_hash(config_.proxy, 256, 16));
  // A trajectory from the base starts at the base's eval losses.
  auto u = make(123);
  u.start_trajectory(dir_.file("base.pt"), 1, 10);
  EXPECT_EQ(u.evaluate().domain_loss, eval.domain_loss);
}

TEST_F(ProxyTrainerTest, MismatchedCheckpointIsRefusedWithTheFix) {
  auto t = make();
  t.start_from_scratch(3, 5, 1e-2, 1);
  t.save_base(dir_.file("base.pt"), t.evaluate());
  auto expect_refusal = [&](ProxyTrainer& other, const std::string& must_name) {
    try {
      other.start_trajectory(dir_.file("base.pt"), 1, 10);
      FAIL() << "a mismatched checkpoint was accepted";
    } catch (const CheckpointError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("re-run --mode pretrain for this config/domain space"), std::string::npos) << what;
      EXPECT_NE(what.find(must_name), std::string::npos) << what;
    }
  };
  Config wider = config_;
  wider.proxy.d_model = 48;
  ProxyTrainer w(proxy_trainer_config(wider), *space_, DeviceChoice{}, 1);
  expect_refusal(w, fmt::format("{:016x}", proxy_config_hash(wider.proxy, 256, 16)));

  write_tiny_space(dir_.file("other.space"), 16, 32, 8, "extra");
  const auto other = DomainSpace::open(dir_.file("other.space"));
  ProxyTrainer o(proxy_trainer_config(config_), other, DeviceChoice{}, 1);
  expect_refusal(o, fmt::format("{:016x}", other.fingerprint()));
}

TEST_F(ProxyTrainerTest, MissingOrCorruptCheckpointIsACheckpointError) {
  auto t = make();
  EXPECT_THROW(t.start_trajectory(dir_.file("absent.pt"), 1, 10), CheckpointError);
  EXPECT_THROW(read_base_info(dir_.file("absent.pt")), CheckpointError);
  std::ofstream(dir_.file("junk.pt")) << "this is not a checkpoint";
  EXPECT_THROW(t.start_trajectory(dir_.file("junk.pt"), 1, 10), CheckpointError);
  EXPECT_THROW(read_base_info(dir_.file("junk.pt")), CheckpointError);
  EXPECT_THROW(t.load_state(dir_.file("junk.pt")), CheckpointError);
  // A truncated real checkpoint.
  t.start_from_scratch(3, 5, 1e-2, 1);
  t.save_base(dir_.file("base.pt"), t.evaluate());
  std::filesystem::resize_file(dir_.file("base.pt"), std::filesystem::file_size(dir_.file("base.pt")) / 2);
  EXPECT_THROW(read_base_info(dir_.file("base.pt")), CheckpointError);
  // A state file is not a base checkpoint.
  t.save_state(dir_.file("state.pt"));
  EXPECT_THROW(t.start_trajectory(dir_.file("state.pt"), 1, 10), CheckpointError);
}

TEST_F(ProxyTrainerTest, PretrainWritesABaseThatTrajectoriesStartFrom) {
  const auto eval = run_pretrain(config_, *space_);
  const auto base = dir_.file("run/base.pt");
  ASSERT_TRUE(std::filesystem::exists(base));
  const auto info = read_base_info(base);
  EXPECT_EQ(info.eval_loss, eval.domain_loss);
  EXPECT_GT(info.parameters, 0);
  auto t = make();
  t.start_trajectory(base, trajectory_seed(config_.run.seed, 0), 6);
  EXPECT_EQ(t.evaluate().domain_loss, eval.domain_loss);
  // Source domains were trained, the target domain was not: it must stay worse.
  EXPECT_LT(eval.domain_loss[0], eval.domain_loss[2]);
  EXPECT_LT(eval.domain_loss[1], eval.domain_loss[2]);
}

TEST(ProxyDevice, ChooseDevice) {
  EXPECT_EQ(choose_device("cpu", 3).kind, "cpu");
  EXPECT_THROW(choose_device("tpu", 0), ConfigError);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(choose_device("auto", 1).kind, "cpu");
    EXPECT_THROW(choose_device("cuda", 0), ConfigError);
  }
}

}  // namespace
}  // namespace dma
