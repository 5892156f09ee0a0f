// Policies that read a trajectory store (replay, regmix) against real HDF5 stores written
// with StoreWriter, and the simplex check over every policy. D = 5 (3 source, 2 target).
#include <algorithm>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "dma/error.hpp"
#include "dma/store.hpp"
#include "policy_helpers.hpp"

namespace dma {
namespace {

using test::make_context;
using test::run_episodes;
using test::ScratchDir;

constexpr int kHorizon = 4;

StoreHeader header_for(const DomainContext& ctx, const std::vector<int>& order) {
  StoreHeader h;
  for (int d : order) {
    h.domain_names.push_back(ctx.names[static_cast<size_t>(d)]);
    h.domain_fields.push_back(ctx.fields[static_cast<size_t>(d)]);
    h.token_shares.push_back(ctx.token_shares[static_cast<size_t>(d)]);
    h.base_eval_loss.push_back(3.0f + 0.5f * static_cast<float>(d));
  }
  h.obs_layout = obs::layout(h.domain_names);
  h.horizon = ctx.horizon;
  h.space_fingerprint = 42;
  h.config_ini = to_ini(Config{});
  return h;
}

/// One stored episode: its actions and the improvement of its last row (all domains alike).
struct StoredEpisode {
  std::int64_t id;
  std::string policy;
  std::vector<std::vector<float>> actions;  // (T, D) in the store's column order
  double final_improvement;
  EpisodeStatus status = EpisodeStatus::kComplete;
};

void write_store(const std::string& path, const StoreHeader& h, const std::vector<StoredEpisode>& episodes) {
  StoreWriter w = StoreWriter::create(path, h);
  for (const auto& e : episodes) {
    const auto index = w.begin_episodes({EpisodeRecord{e.id, 1, 0, 0, EpisodeStatus::kRunning, 1, e.policy, 0.0f}});
    std::vector<Transition> rows;
    for (size_t t = 0; t < e.actions.size(); ++t) {
      Transition tr;
      tr.episode_id = e.id;
      tr.step = static_cast<std::int32_t>(t);
      tr.observation.assign(static_cast<size_t>(h.obs_dim()), 0.0f);
      tr.next_observation = tr.observation;
      tr.action = e.actions[t];
      // Only the last row carries the episode's outcome; earlier rows read as no change.
      const double gain = t + 1 == e.actions.size() ? e.final_improvement : 0.0;
      for (float base : h.base_eval_loss) tr.eval_loss.push_back(static_cast<float>(base * (1.0 - gain)));
      rows.push_back(tr);
    }
    w.write(rows);
    w.end_episode(index[0], e.status, static_cast<std::int32_t>(e.actions.size()), 0.0f);
  }
  w.flush();
}

std::vector<float> as_float(const std::vector<double>& w) { return {w.begin(), w.end()}; }

std::vector<std::vector<float>> steps_of(std::initializer_list<std::vector<float>> rows) { return rows; }

TEST(Replay, ReplaysAStoredEpisode) {
  const auto ctx = make_context(3, 2, kHorizon);
  ScratchDir dir;
  const auto path = dir.file("store.h5");
  const auto schedule = steps_of({{0.5f, 0.2f, 0.1f, 0.1f, 0.1f},
                                  {0.4f, 0.2f, 0.1f, 0.2f, 0.1f},
                                  {0.2f, 0.2f, 0.1f, 0.3f, 0.2f},
                                  {0.1f, 0.1f, 0.1f, 0.3f, 0.4f}});
  write_store(path, header_for(ctx, {0, 1, 2, 3, 4}),
              {{3, "schedule:x", schedule, 0.1}, {4, "random", schedule, 0.1, EpisodeStatus::kInterrupted}});
  auto p = test::make_builtin_policy("replay:" + path + "#3", ctx, Config{});
  const auto actions = run_episodes(*p, ctx, {0, 1});
  for (const auto& episode : actions)
    for (size_t t = 0; t < kHorizon; ++t)
      for (size_t d = 0; d < 5; ++d) EXPECT_NEAR(episode[t][d], schedule[t][d], 1e-6);
  // Twice the horizon: each stored step is played for two steps.
  auto q = test::make_builtin_policy("replay:" + path + "#3", make_context(3, 2, 2 * kHorizon), Config{});
  const auto stretched = run_episodes(*q, make_context(3, 2, 2 * kHorizon), {0})[0];
  for (size_t t = 0; t < 2 * kHorizon; ++t) EXPECT_NEAR(stretched[t][0], schedule[t / 2][0], 1e-6);
}

TEST(Replay, MatchesDomainsByName) {
  const auto ctx = make_context(3, 2, kHorizon);
  ScratchDir dir;
  const auto path = dir.file("store.h5");
  const std::vector<int> order = {4, 2, 0, 3, 1};  // the store lists domains in another order
  std::vector<float> row(5);
  for (size_t c = 0; c < 5; ++c) row[c] = 0.1f * static_cast<float>(order[c] + 1) / 1.5f;
  write_store(path, header_for(ctx, order), {{7, "fixed", {row, row, row, row}, 0.0}});
  auto p = test::make_builtin_policy("replay:" + path + "#7", ctx, Config{});
  const auto w = run_episodes(*p, ctx, {0})[0][2];
  for (size_t d = 0; d < 5; ++d) EXPECT_NEAR(w[d], (d + 1) / 15.0, 1e-6);
}

TEST(Replay, ErrorsNameTheStoreAndEpisode) {
  const auto ctx = make_context(3, 2, kHorizon);
  ScratchDir dir;
  const auto path = dir.file("store.h5");
  const std::vector<float> row = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f};
  write_store(path, header_for(ctx, {0, 1, 2, 3, 4}),
              {{1, "random", {row, row, row, row}, 0.0, EpisodeStatus::kInterrupted}});
  const auto message = [&](const std::string& spec, const DomainContext& c) -> std::string {
    try {
      test::make_builtin_policy(spec, c, Config{});
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message("replay:" + path + "#1", ctx).find("never completed"), std::string::npos);
  EXPECT_NE(message("replay:" + path + "#9", ctx).find("has no episode 9"), std::string::npos);
  EXPECT_NE(message("replay:" + path + "#1", make_context(4, 2, kHorizon)).find("has no domain"), std::string::npos);
  EXPECT_THROW(test::make_builtin_policy("replay:" + dir.file("missing.h5") + "#1", ctx, Config{}), StoreError);
}

/// A quadratic score with its best mixture inside the simplex.
double true_score(const std::vector<double>& w) {
  static const std::vector<double> best = {0.15, 0.25, 0.1, 0.3, 0.2};
  double s = 0.3;
  for (size_t d = 0; d < w.size(); ++d) s -= (1.0 + d) * (w[d] - best[d]) * (w[d] - best[d]);
  return s;
}

/// `n` random episodes whose final improvement is true_score(mean action), plus distractors
/// regmix must ignore: other policies and unfinished random episodes with huge scores.
std::vector<StoredEpisode> regmix_episodes(int n) {
  std::mt19937_64 rng(11);
  std::gamma_distribution<double> gamma(1.0);
  std::vector<StoredEpisode> out;
  for (int i = 0; i < n + 6; ++i) {
    StoredEpisode e{i, "random", {}, 0.0};
    std::vector<double> mean(5, 0.0);
    for (int t = 0; t < kHorizon; ++t) {
      std::vector<double> w(5);
      double total = 0;
      for (auto& x : w) total += (x = gamma(rng));
      for (size_t d = 0; d < 5; ++d) mean[d] += (w[d] /= total) / kHorizon;
      e.actions.push_back(as_float(w));
    }
    e.final_improvement = true_score(mean);
    if (i >= n) {  // distractors
      e.final_improvement = 0.9;
      if (i % 2)
        e.policy = "uniform";
      else
        e.status = EpisodeStatus::kInterrupted;
    }
    out.push_back(e);
  }
  return out;
}

TEST(RegmixPolicy, FitsOnTheStoresCompleteRandomEpisodes) {
  const auto ctx = make_context(3, 2, kHorizon);
  ScratchDir dir;
  const auto path = dir.file("store.h5");
  write_store(path, header_for(ctx, {0, 1, 2, 3, 4}), regmix_episodes(150));
  Config config;
  config.eval.score = "mean";  // both fields improve alike, so the balanced score is true_score
  const auto data = regmix_data(path, ctx, config.eval);
  ASSERT_EQ(data.scores.size(), 150u);
  EXPECT_EQ(data.episode_ids.back(), 149);
  for (size_t i = 0; i < data.scores.size(); ++i) EXPECT_NEAR(data.scores[i], true_score(data.mean_weights[i]), 1e-5);

  config.run.dir = dir.file("");  // plain `regmix` reads <run.dir>/store.h5
  auto p = test::make_builtin_policy("regmix", ctx, config);
  EXPECT_EQ(p->name(), "regmix");
  const auto w = run_episodes(*p, ctx, {0})[0];
  const std::vector<double> best = {0.15, 0.25, 0.1, 0.3, 0.2};
  for (size_t d = 0; d < 5; ++d) EXPECT_NEAR(w[0][d], best[d], 0.03) << d;
  EXPECT_EQ(w.front(), w.back());  // a static mixture
}

TEST(RegmixPolicy, NeedsEnoughRandomEpisodes) {
  const auto ctx = make_context(3, 2, kHorizon);
  ScratchDir dir;
  const auto path = dir.file("few.h5");
  auto episodes = regmix_episodes(2);
  write_store(path, header_for(ctx, {0, 1, 2, 3, 4}), episodes);
  try {
    test::make_builtin_policy("regmix:" + path, ctx, Config{});
    FAIL() << "regmix fitted on 2 episodes";
  } catch (const PolicyError& e) {
    EXPECT_NE(std::string(e.what()).find("holds 2 complete episodes of policy 'random'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(test::make_builtin_policy("regmix:" + dir.file("none.h5"), ctx, Config{}), StoreError);
}

/// Every policy, many episodes and steps: each row finite, >= 0, summing to 1 within 1e-9.
TEST(AllPolicies, EveryRowIsOnTheSimplex) {
  const auto ctx = make_context(3, 2, 16);
  ScratchDir dir;
  const auto path = dir.file("store.h5");
  auto stored = regmix_episodes(40);
  for (auto& e : stored) e.actions.resize(16, e.actions.back());
  write_store(path, header_for(ctx, {0, 1, 2, 3, 4}), stored);
  Config config;
  config.eval.score = "mean";
  config.regmix.samples = 2000;
  std::vector<std::int64_t> ids(40);
  std::iota(ids.begin(), ids.end(), 100);
  for (const std::string& spec : std::vector<std::string>{
           "uniform", "natural", "source-only", "target-only", "fixed:0.3", "fixed:0", "fixed:1", "fixed:1/2/3/4/5",
           "schedule:0.9>0.2", "schedule:1>0", "random", "online-eg", "replay:" + path + "#5", "regmix:" + path}) {
    auto p = test::make_builtin_policy(spec, ctx, config);
    for (const auto& episode : run_episodes(*p, ctx, ids))
      for (const auto& row : episode) {
        double total = 0;
        for (double w : row) {
          ASSERT_TRUE(std::isfinite(w) && w >= 0) << spec;
          total += w;
        }
        ASSERT_NEAR(total, 1.0, 1e-9) << spec;
      }
  }
}

}  // namespace
}  // namespace dma
