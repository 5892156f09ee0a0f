// The agent against real stores (HDF5 through StoreWriter/StoreReader where it matters) and
// real LibTorch training on tiny networks: equivariance, behaviour cloning, CQL, checkpoints.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <sstream>

#include "dma/agent.hpp"
#include "dma/error.hpp"
#include "dma/policy.hpp"
#include "sim.hpp"
// The agent's internals the tests below reach directly: the actor's input mask, the token
// normaliser and the checkpoint state.
#include "../../src/agent/checkpoint.hpp"
#include "../../src/agent/dataset.hpp"
#include "../../src/agent/features.hpp"
#include "support/compare.hpp"

namespace dma {
namespace {

using namespace agent_test;

// Tiny networks and few steps; `extra` holds "section.key=value" lines that override them.
// The tests train on synthetic stores with their own recipe: no source gain (the tests of the
// gain set one) and a light conservative weight, so what a test checks is the objective it names.
Config tiny_config(const std::string& extra = "") {
  torch::set_num_threads(1);
  std::map<std::string, std::string> keys = {
      {"run.seed", "3"},          {"run.progress_seconds", "1000"}, {"agent.d_token", "16"},  {"agent.n_layers", "1"},
      {"agent.n_heads", "2"},     {"agent.batch_size", "32"},       {"agent.bc_steps", "20"}, {"agent.cql_steps", "20"},
      {"agent.source_gain", "0"}, {"agent.cql_alpha", "0.3"}};
  // The recipe's fixed parts are not configuration keys: set them on the parsed Config.
  std::map<std::string, std::function<void(Config&, double)>> fixed = {
      {"agent.n_sampled_actions", [](Config& c, double v) { c.agent.n_sampled_actions = static_cast<int>(v); }},
      {"agent.history", [](Config& c, double v) { c.agent.history = static_cast<int>(v); }},
      {"agent.n_step", [](Config& c, double v) { c.agent.n_step = static_cast<int>(v); }},
      {"agent.discount", [](Config& c, double v) { c.agent.discount = v; }},
      {"agent.field_balanced", [](Config& c, double v) { c.agent.field_balanced = v != 0; }},
      {"agent.tau", [](Config& c, double v) { c.agent.tau = v; }},
      {"agent.val_fraction", [](Config& c, double v) { c.agent.val_fraction = v; }},
      {"agent.bc_lr", [](Config& c, double v) { c.agent.bc_lr = v; }},
      {"agent.actor_bc_weight", [](Config& c, double v) { c.agent.actor_bc_weight = v; }}};
  std::map<std::string, double> fixed_values = {{"agent.n_sampled_actions", 4}};
  std::istringstream lines(extra);
  for (std::string line; std::getline(lines, line);)
    if (const auto eq = line.find('='); eq != std::string::npos) {
      const auto key = line.substr(0, eq), value = line.substr(eq + 1);
      if (fixed.count(key))
        fixed_values[key] = std::stod(value);
      else
        keys[key] = value;
    }
  std::string ini;
  for (const auto& [k, v] : keys) {
    const auto dot = k.find('.');
    ini += "[" + k.substr(0, dot) + "]\n" + k.substr(dot + 1) + " = " + v + "\n";
  }
  Config config = parse_ini_text(ini);
  for (const auto& [k, v] : fixed_values) fixed.at(k)(config, v);
  return config;
}

DomainContext context(const StoreHeader& h) { return {h.domain_names, h.domain_fields, h.token_shares, h.horizon}; }

// Observation row with the per-domain blocks reordered: new domain i is old domain perm[i].
std::vector<float> permute_obs(const std::vector<float>& o, const std::vector<int>& perm) {
  std::vector<float> out(o.begin(), o.begin() + obs::kNumGlobal);
  for (int d : perm)
    out.insert(out.end(), o.begin() + obs::index(d, obs::kPrevWeight),
               o.begin() + obs::index(d, obs::kPrevWeight) + obs::kNumPerDomain);
  return out;
}

std::vector<int> shuffled(int n, unsigned seed) {
  std::vector<int> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), std::mt19937(seed));
  return p;
}

// Acts once with `p` on a single observation row.
std::vector<double> act_once(Policy& p, const std::vector<float>& o, std::int64_t id, int step) {
  const int D = static_cast<int>((o.size() - obs::kNumGlobal) / obs::kNumPerDomain);
  std::vector<double> w(static_cast<size_t>(D));
  const std::int64_t ids[1] = {id};
  const std::int32_t steps[1] = {step};
  p.act({1, static_cast<int>(o.size()), ids, steps, o}, w);
  return w;
}

template <class Weights>  // float or double
double target_share(const StoreHeader& h, const Weights& w) {
  double s = 0;
  for (size_t d = 0; d < w.size(); ++d) s += h.domain_fields[d] == Field::kTarget ? w[d] : 0.0;
  return s;
}

// An agent trained briefly on a 4-step simulated store, registered as a policy.
struct TinyAgent {
  TempDir dir;
  Config c;
  SimRun run;
  std::string path;
  explicit TinyAgent(const std::string& steps = "agent.bc_steps=2\nagent.cql_steps=2")
      : c(tiny_config(steps)), run(sim_run(4, c.eval, 4, 1)), path(dir.file("agent.pt")) {
    train_agent_offline(c, {run.store}, path);
  }
  std::unique_ptr<Policy> policy(const std::string& options = "") const {
    return agent_policy_registry().make(parse_policy_spec("agent:" + path + options), context(run.h),
                                        policy_settings(c));
  }
};

// --- equivariance -----------------------------------------------------------------------

TEST(Agent, PermutingDomainsPermutesActionsAndOneNetworkServesSevenAndTwelveDomains) {
  TempDir dir;
  const Config c = tiny_config();
  SimSpace big, small;
  small.sources = 4;
  small.targets = 3;
  const auto hb = sim_header(big), hs = sim_header(small);
  // One training run on two domain spaces at once (7 and 12 domains).
  const auto report = train_agent_offline(c, {sim_store(big, hb, c.eval, 6, 1), sim_store(small, hs, c.eval, 6, 2)},
                                          dir.file("agent.pt"));
  EXPECT_EQ(report.episodes, 12);
  EXPECT_EQ(report.transitions, 12 * 16);
  const auto model = AgentModel::load(dir.file("agent.pt"));
  ASSERT_EQ(model.history(), 1);
  for (const auto* h : {&hb, &hs}) {
    const int D = h->num_domains();
    const auto store = sim_store(D == 12 ? big : small, *h, c.eval, 1, 9);
    const auto& o = store.rows[0][5].observation;
    const auto perm = shuffled(D, 7u + static_cast<unsigned>(D));
    const auto base = model.mean_logits(o, 1, D);
    const auto moved = model.mean_logits(permute_obs(o, perm), 1, D);
    ASSERT_EQ(base.size(), static_cast<size_t>(D));
    float spread = 0;
    for (int i = 0; i < D; ++i) {
      EXPECT_NEAR(moved[static_cast<size_t>(i)], base[static_cast<size_t>(perm[i])], 1e-4) << "domain " << i;
      spread = std::max(spread, std::abs(base[static_cast<size_t>(i)] - base[0]));
    }
    EXPECT_GT(spread, 1e-4) << "a constant output would pass trivially";
    // The critics are invariant: permuting observation and action together keeps Q.
    const auto& a = store.rows[0][5].action;
    std::vector<float> pa;
    for (int d : perm) pa.push_back(a[static_cast<size_t>(d)]);
    EXPECT_NEAR(model.q_values(o, a, 1, D)[0], model.q_values(permute_obs(o, perm), pa, 1, D)[0], 1e-4);
    // Through the policy interface too.
    auto policy = make_agent_policy(agent_spec({dir.file("agent.pt")}), context(*h), policy_settings(c));
    policy->begin_episode(1, 11);
    const auto w = act_once(*policy, o, 1, 5);
    EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-9);
    for (double x : w) EXPECT_GT(x, 0.0);
  }
}

// --- behaviour cloning ------------------------------------------------------------------

TEST(Agent, BehaviourCloningReproducesAFixedScheduleFromAStoreFile) {
  TempDir dir;
  const Config c = tiny_config("agent.bc_steps=400\nagent.cql_steps=0\nagent.bc_lr=0.003\nagent.bc_top_q=0.25");
  SimSpace sp;
  sp.horizon = 8;
  const auto h = sim_header(sp);
  // Schedule X: the target share falls 0.8 -> 0.2; sources by natural share, targets even.
  auto schedule = [&h](int t, const std::vector<std::vector<float>>&) {
    std::vector<double> within(h.token_shares.begin(), h.token_shares.end());
    for (size_t d = 0; d < within.size(); ++d)
      if (h.domain_fields[d] == Field::kTarget) within[d] = 1.0;
    return mix(h, 0.8 - 0.6 * t / (h.horizon - 1), within);
  };
  OfflineStore store;
  store.header = h;
  for (int i = 0; i < 16; ++i) {
    auto ep = run_sim_episode(sp, h, c.eval, i, 100 + i, schedule, "schedule");
    store.episodes.push_back(ep.record);
    store.rows.push_back(ep.rows);
  }
  write_store(dir.file("store.h5"), store);
  const auto report = train_agent(c, {dir.file("store.h5")}, dir.file("agent.pt"));
  EXPECT_EQ(report.episodes, 16);
  EXPECT_LT(report.bc_loss, 0.01);
  auto policy = make_agent_policy(agent_spec({dir.file("agent.pt")}), context(h), policy_settings(c));
  auto fresh = run_sim_episode(sp, h, c.eval, 99, 12345, from_policy(*policy, 99, 5), "agent");
  for (int t = 0; t < sp.horizon; ++t) {
    const auto want = schedule(t, {});
    const auto& got = fresh.rows[static_cast<size_t>(t)].action;
    double l1 = 0;
    for (size_t d = 0; d < want.size(); ++d) l1 += std::abs(want[d] - got[d]);
    EXPECT_LT(l1, 0.08) << "step " << t;
    EXPECT_NEAR(target_share(h, got), target_share(h, want), 0.03) << "step " << t;
  }
}

// Each episode holds one target share (0.2 .. 0.8), so its source score tells which share it
// held, and a cloned actor reads the share back from the source score.
// 14 episodes of 8 steps, each at one target share from 0.2 (episodes 0 and 7) to 0.8 (6
// and 13): within an episode a lower source score comes with a higher share.
OfflineStore constant_share_store() {
  SimSpace sp;
  sp.horizon = 8;
  const auto h = sim_header(sp);
  std::vector<double> within(h.token_shares.begin(), h.token_shares.end());
  OfflineStore store;
  store.header = h;
  for (int i = 0; i < 14; ++i) {
    const double share = 0.2 + 0.6 * (i % 7) / 6.0;
    auto constant = [&](int, const std::vector<std::vector<float>>&) { return mix(h, share, within); };
    auto ep = run_sim_episode(sp, h, EvalConfig{}, i, 300 + i, constant, "fixed");
    store.episodes.push_back(ep.record);
    store.rows.push_back(ep.rows);
  }
  return store;
}

// Stores of different domain spaces score on different scales: cloning takes each store's
// best bc_top_q, so a store whose every episode scores below the other's is cloned too.
TEST(Agent, EachStoreClonesItsOwnBestEpisodes) {
  SimSpace sp;
  sp.horizon = 8;
  const auto h = sim_header(sp);
  const std::vector<double> within(h.token_shares.begin(), h.token_shares.end());
  auto constant_shares = [&](const std::string& name, double low, double high, std::uint64_t seed) {
    OfflineStore s;
    s.name = name;
    s.header = h;
    for (int i = 0; i < 12; ++i) {
      const double share = low + (high - low) * i / 11.0;
      auto constant = [&](int, const std::vector<std::vector<float>>&) { return mix(h, share, within); };
      auto ep = run_sim_episode(sp, h, EvalConfig{}, i, seed + static_cast<std::uint64_t>(i), constant, "fixed");
      s.episodes.push_back(ep.record);
      s.rows.push_back(ep.rows);
    }
    return s;
  };
  agent::DatasetOptions opt;
  opt.val_fraction = 0;
  opt.bc_top_q = 0.25;
  // "spent" overspends the source budget in every episode.
  const auto ds =
      agent::build_dataset({constant_shares("kept", 0.3, 0.6, 500), constant_shares("spent", 0.9, 0.99, 700)}, opt);
  std::map<std::string, std::vector<const agent::EpisodeInfo*>> by_store;
  for (const auto& e : ds.episodes) by_store[e.store].push_back(&e);
  ASSERT_EQ(by_store.size(), 2u);
  double kept_worst = 1e9, spent_best = -1e9;
  for (const auto* e : by_store["kept"]) kept_worst = std::min(kept_worst, e->ret);
  for (const auto* e : by_store["spent"]) spent_best = std::max(spent_best, e->ret);
  ASSERT_LT(spent_best, kept_worst) << "premise: a pooled ranking would clone only the first store";
  for (const auto& [name, episodes] : by_store) {
    double worst_top = 1e9, best_other = -1e9;
    int top = 0;
    for (const auto* e : episodes) {
      top += e->top;
      if (e->top)
        worst_top = std::min(worst_top, e->ret);
      else
        best_other = std::max(best_other, e->ret);
    }
    EXPECT_EQ(top, 3) << name << ": a quarter of its 12 episodes";
    EXPECT_GE(worst_top, best_other) << name << ": its best episodes";
  }
}

TEST(Agent, CloningCopiesTheEpisodesShareBackFromItsState) {
  const auto store = constant_share_store();
  const auto& h = store.header;
  const auto& low = store.rows[0][4].observation;   // share 0.2: the source has lost least
  const auto& high = store.rows[6][4].observation;  // share 0.8: most
  ASSERT_GT(low[obs::kSourceScore], high[obs::kSourceScore] + 0.01);
  TempDir dir;
  const Config c = tiny_config(
      "agent.bc_steps=300\nagent.cql_steps=0\nagent.bc_lr=0.003\nagent.bc_top_q=1\n"
      "agent.val_fraction=0");
  train_agent_offline(c, {store}, dir.file("agent.pt"));
  auto policy = make_agent_policy(agent_spec({dir.file("agent.pt")}), context(h), policy_settings(c));
  const double copy_low = target_share(h, act_once(*policy, low, 1, 4));
  const double copy_high = target_share(h, act_once(*policy, high, 2, 4));
  EXPECT_GT(copy_high - copy_low, 0.25) << "the plain clone copies the episode's share back from its state";
}

// Cloned as they are, the constant-share episodes teach "lower source, more target"; with
// agent.source_gain = k the actor's d(share)/d(source) is held near or above k instead, in
// the cloning steps and the actor's CQL steps alike.
TEST(Agent, ASourceGainMakesALowerSourceScoreAskForLessTarget) {
  const auto store = constant_share_store();
  const auto& h = store.header;
  auto slopes = [&](const std::string& gain) {
    TempDir dir;
    const Config c = tiny_config(
        "agent.bc_steps=300\nagent.cql_steps=60\nagent.bc_lr=0.003\nagent.bc_top_q=1\n"
        "agent.val_fraction=0\nagent.source_gain=" +
        gain);
    train_agent_offline(c, {store}, dir.file("agent.pt"));
    auto policy = make_agent_policy(agent_spec({dir.file("agent.pt")}), context(h), policy_settings(c));
    std::vector<double> out;
    std::int64_t id = 0;
    for (int e : {0, 3, 6})
      for (int step : {2, 4, 6}) {
        auto up = store.rows[static_cast<size_t>(e)][static_cast<size_t>(step)].observation, down = up;
        up[obs::kSourceScore] += 0.01f;
        down[obs::kSourceScore] -= 0.01f;
        const double share_up = target_share(h, act_once(*policy, up, ++id, step));
        const double share_down = target_share(h, act_once(*policy, down, ++id, step));
        out.push_back((share_up - share_down) / 0.02);
      }
    return out;
  };
  const auto plain = slopes("0");
  EXPECT_LT(std::accumulate(plain.begin(), plain.end(), 0.0) / static_cast<double>(plain.size()), 0.0)
      << "the plain clone answers a lower source score with more target";
  const auto held = slopes("4");
  EXPECT_GT(*std::min_element(held.begin(), held.end()), 2.0)
      << "every state's gain is near 4 or above: " << ::testing::PrintToString(held);
}

// The config check sees agent.actor_features; continued training must check the checkpoint's.
TEST(Agent, ContinuingAnActorBlindToTheSourceScoreWithAGainIsRefused) {
  const auto store = constant_share_store();
  TempDir dir;
  const Config blind = tiny_config("agent.bc_steps=5\nagent.cql_steps=5\nagent.actor_features=is_target,progress");
  train_agent_offline(blind, {store}, dir.file("blind.pt"));
  const Config gain = tiny_config("agent.cql_steps=5\nagent.source_gain=4");
  try {
    train_agent_offline(gain, {store}, dir.file("more.pt"), dir.file("blind.pt"));
    FAIL() << "continuing a source-blind actor with a gain was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("agent.source_gain=0"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("more.pt")));
}

// --- CQL --------------------------------------------------------------------------------

// An episode's target losses change by a factor (1 + kTargetPerWeight * w) per step of target
// weight w: target weight lowers them.
constexpr float kTargetPerWeight = -0.05f;

// Four domains; each step takes G (target share 0.8) or B (0.2) at random. Only target
// losses move, by the target weight, so by default G is clearly better under the budget score.
OfflineStore two_action_store(int episodes, int horizon) {
  SimSpace sp;
  sp.sources = 2;
  sp.targets = 2;
  sp.horizon = horizon;
  OfflineStore s;
  s.header = sim_header(sp);
  const auto& h = s.header;
  const EvalConfig eval;
  const std::vector<float> good = {0.1f, 0.1f, 0.4f, 0.4f}, bad = {0.4f, 0.4f, 0.1f, 0.1f};
  std::mt19937_64 rng(5);
  for (int e = 0; e < episodes; ++e) {
    std::vector<float> losses(h.base_eval_loss), prev_w = obs::base_mixture(h.domain_fields, h.token_shares);
    auto prev_losses = losses;
    auto observe = [&](int t) {
      std::vector<float> o(static_cast<size_t>(obs::dim(4)));
      obs::build({t, horizon, prev_w, losses, prev_losses, h.base_eval_loss, h.domain_fields, h.token_shares}, o);
      return o;
    };
    std::vector<Transition> rows;
    double before = balanced_score(field_scores(losses, h.base_eval_loss, h.domain_fields), eval), ret = 0;
    for (int t = 0; t < horizon; ++t) {
      Transition tr;
      tr.episode_id = e;
      tr.step = t;
      tr.observation = observe(t);
      tr.action = rng() % 2 ? good : bad;
      prev_losses = losses;
      for (int d = 2; d < 4; ++d)
        losses[static_cast<size_t>(d)] *= 1.0f + kTargetPerWeight * tr.action[static_cast<size_t>(d)];
      prev_w = tr.action;
      tr.next_observation = observe(t + 1);
      tr.eval_loss = losses;
      const double b = balanced_score(field_scores(losses, h.base_eval_loss, h.domain_fields), eval);
      tr.reward = static_cast<float>(b - before);
      ret += b - before;
      before = b;
      tr.timeout = t == horizon - 1;
      rows.push_back(tr);
    }
    EpisodeRecord r;
    r.id = e;
    r.length = horizon;
    r.status = EpisodeStatus::kComplete;
    r.policy = "two-action";
    r.return_ = static_cast<float>(ret);
    s.episodes.push_back(r);
    s.rows.push_back(rows);
  }
  return s;
}

TEST(Agent, CqlRanksDataActionsAboveRandomOnesAndTheActorMovesToTheBetterAction) {
  TempDir dir;
  // No cloning at all: only the critics can move the actor.
  const Config c = tiny_config(
      "agent.bc_steps=0\nagent.cql_steps=500\nagent.actor_bc_weight=0\nagent.actor_lr=0.003\nagent.critic_lr=0."
      "003\nagent.tau=0.05");
  const auto store = two_action_store(24, 6);
  const auto report = train_agent_offline(c, {store}, dir.file("agent.pt"));
  EXPECT_GT(report.q_data_minus_random, 0.5);
  const auto model = AgentModel::load(dir.file("agent.pt"));
  torch::manual_seed(1);
  auto random = torch::softmax((torch::rand({32, 4}) * 2 - 1) * c.agent.logit_box, /*dim=*/-1).contiguous();
  std::vector<float> random_actions(random.data_ptr<float>(), random.data_ptr<float>() + random.numel());
  double data_q = 0, random_q = 0, start_share = 0, end_share = 0;
  int n = 0;
  for (const auto& rows : store.rows)
    for (const auto& t : rows) {
      data_q += model.q_values(t.observation, t.action, 1, 4)[0];
      const auto qr = model.q_values(t.observation, random_actions, 32, 4);
      random_q += std::accumulate(qr.begin(), qr.end(), 0.0) / 32.0;
      const auto qgb =
          model.q_values(t.observation, std::vector<float>{0.1f, 0.1f, 0.4f, 0.4f, 0.4f, 0.4f, 0.1f, 0.1f}, 2, 4);
      EXPECT_GT(qgb[0], qgb[1]) << "Q(G) must beat Q(B) at step " << t.step;
      auto logits = model.mean_logits(t.observation, 1, 4);
      auto w = torch::softmax(torch::tensor(logits), 0);
      (t.step == 0 ? start_share : end_share) += (w[2] + w[3]).item<double>();
      ++n;
    }
  EXPECT_GT(data_q / n, random_q / n + 0.5) << "CQL keeps dataset actions above random mixtures";
  // Every state prefers target weight now (the initial actor is near uniform: share 0.5).
  EXPECT_GT(start_share / 24, 0.62);
  EXPECT_GT(end_share / (n - 24), 0.62);
}

// The probe (tools/analysis/agent_probe) reads the actor as the policy acts, and the critics'
// best share moves with the state as Q does.
TEST(Agent, ProbeOfTheSourceResponseMatchesThePolicyAndTheCritics) {
  const TinyAgent agent("agent.bc_steps=20\nagent.cql_steps=20");
  const auto& h = agent.run.h;
  const auto model = AgentModel::load(agent.path);
  const auto& episode = agent.run.store.rows[1];
  const auto r = probe_source_response(model, episode, 3, {-0.05, 0.0, 0.05});
  EXPECT_EQ(r.step, 3);
  EXPECT_FLOAT_EQ(r.source_score, episode[3].observation[obs::kSourceScore]);
  auto policy = agent.policy();
  policy->begin_episode(1, 1);
  EXPECT_NEAR(r.actor_share[1], target_share(h, act_once(*policy, episode[3].observation, 1, 3)), 1e-6);
  ASSERT_EQ(r.critic_best_share.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_GT(r.actor_share[k], 0.0);
    EXPECT_LT(r.actor_share[k], 1.0);
    EXPECT_GE(r.critic_best_share[k], 0.05 - 1e-9);
    EXPECT_LE(r.critic_best_share[k], 0.95 + 1e-9);
  }
  EXPECT_NE(r.actor_share[0], r.actor_share[2]) << "the actor reads the source score";
  EXPECT_THROW(probe_source_response(model, episode, static_cast<int>(episode.size()), {0.0}), Error);
}

// --- critic accuracy --------------------------------------------------------------------

// Critics trained on one simulated store rank the realised returns of fresh episodes better
// than the same networks untrained; interrupted episodes are not scored.
TEST(Agent, TrainedCriticsPredictRealisedReturnsBetterThanUntrainedOnes) {
  TempDir dir;
  const Config trained = tiny_config("agent.bc_steps=100\nagent.cql_steps=400\nagent.critic_lr=0.003");
  const Config untrained = tiny_config("agent.bc_steps=0\nagent.cql_steps=0");
  const auto run = sim_run(8, trained.eval, 48, 1);
  train_agent_offline(trained, {run.store}, dir.file("trained.pt"));
  train_agent_offline(untrained, {run.store}, dir.file("untrained.pt"));
  auto held = sim_store(run.sp, run.h, trained.eval, 24, 1000);  // seeds the training store never used
  const auto good = critic_accuracy(dir.file("trained.pt"), held);
  const auto base = critic_accuracy(dir.file("untrained.pt"), held);
  EXPECT_EQ(good.pairs, 24 * 8);
  EXPECT_EQ(good.episodes, 24);
  EXPECT_EQ(good.steps_correlated, 8);
  ASSERT_EQ(good.per_step.size(), 8u);
  EXPECT_NEAR(std::accumulate(good.per_step.begin(), good.per_step.end(), 0.0) / 8, good.spearman_per_step, 1e-12);
  EXPECT_DOUBLE_EQ(good.discount, AgentConfig{}.discount);
  EXPECT_DOUBLE_EQ(good.return_std, base.return_std) << "the returns do not depend on the critics";
  const auto figures = ::testing::Message()
                       << "trained: spearman " << good.spearman << ", per step " << good.spearman_per_step << ", rmse "
                       << good.rmse_affine << "; untrained: " << base.spearman << ", " << base.spearman_per_step << ", "
                       << base.rmse_affine;
  EXPECT_GT(good.spearman, 0.5) << figures;
  EXPECT_GT(good.spearman, base.spearman + 0.2) << figures;
  EXPECT_GT(good.spearman_per_step, base.spearman_per_step + 0.1) << figures;
  EXPECT_LT(good.rmse_affine, base.rmse_affine) << figures;
  EXPECT_LE(good.rmse_affine, good.return_std);
  write_store(dir.file("held.h5"), held);  // the file gives what the rows in memory give
  const auto from_file = critic_accuracy(dir.file("trained.pt"), load_offline_store(dir.file("held.h5")));
  EXPECT_EQ(from_file.pairs, good.pairs);
  EXPECT_NEAR(from_file.spearman, good.spearman, 1e-9);
  // An interrupted episode (half its rows) drops out.
  held.episodes[0].status = EpisodeStatus::kInterrupted;
  held.rows[0].resize(4);
  EXPECT_EQ(critic_accuracy(dir.file("trained.pt"), held).pairs, 23 * 8);
  held.rows.resize(1);
  held.episodes.resize(1);
  EXPECT_THROW(critic_accuracy(dir.file("trained.pt"), held), StoreError) << "no complete episode";
  EXPECT_THROW(critic_accuracy(dir.file("missing.pt"), run.store), CheckpointError);
}

// --- checkpoints ------------------------------------------------------------------------

TEST(Agent, CheckpointRoundTripKeepsOutputsAndContinuesDeterministically) {
  TempDir dir;
  const Config c = tiny_config();
  const auto [sp, h, store] = sim_run(6, c.eval, 8, 4);
  train_agent_offline(c, {store}, dir.file("a.pt"));
  const auto& o = store.rows[2][3].observation;
  const auto& a = store.rows[2][3].action;
  const auto first = AgentModel::load(dir.file("a.pt"));
  const auto logits = first.mean_logits(o, 1, 12);
  const auto q = first.q_values(o, a, 1, 12);
  // Zero further steps: load, save again, load: the same numbers.
  train_agent_offline(c, {store}, dir.file("b.pt"), dir.file("a.pt"), 0);
  const auto second = AgentModel::load(dir.file("b.pt"));
  EXPECT_EQ(second.mean_logits(o, 1, 12), logits);
  EXPECT_EQ(second.q_values(o, a, 1, 12), q);
  EXPECT_EQ(second.config_ini(), first.config_ini());
  EXPECT_NE(first.config_ini().find("d_token = 16"), std::string::npos);
  // Continuing twice from the same checkpoint (its RNG state included) gives the same agent,
  // and training does change it.
  train_agent_offline(c, {store}, dir.file("c1.pt"), dir.file("a.pt"), 5);
  train_agent_offline(c, {store}, dir.file("c2.pt"), dir.file("a.pt"), 5);
  const auto c1 = AgentModel::load(dir.file("c1.pt")).mean_logits(o, 1, 12);
  EXPECT_EQ(AgentModel::load(dir.file("c2.pt")).mean_logits(o, 1, 12), c1);
  EXPECT_NE(c1, logits);
}

void expect_refused(const std::string& path, const std::string& words) {
  try {
    AgentModel::load(path);
    ADD_FAILURE() << path << " was accepted";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(words), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

void write_archive(const std::string& path, const std::string& format, int version, const std::string& layout) {
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(format));
  ar.write("format_version", c10::IValue(static_cast<int64_t>(version)));
  ar.write("history", c10::IValue(static_cast<int64_t>(1)));
  ar.write("feature_layout", c10::IValue(layout));
  ar.save_to(path);
}

TEST(Agent, CorruptOrMismatchedCheckpointsAreRefusedWithOneLine) {
  TempDir dir;
  const Config c = tiny_config("agent.bc_steps=2\nagent.cql_steps=2");
  SimSpace sp;
  sp.horizon = 4;
  const auto h = sim_header(sp);
  train_agent_offline(c, {sim_store(sp, h, c.eval, 4, 1)}, dir.file("good.pt"));
  EXPECT_NO_THROW(AgentModel::load(dir.file("good.pt")));
  expect_refused(dir.file("missing.pt"), "does not exist");
  std::ofstream(dir.file("text.pt")) << "not a checkpoint at all";
  expect_refused(dir.file("text.pt"), "not a readable LibTorch archive");
  {  // truncated: the first half of a good file
    std::ifstream in(dir.file("good.pt"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir.file("cut.pt"), std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expect_refused(dir.file("cut.pt"), "corrupt");
  write_archive(dir.file("foreign.pt"), "dma-proxy", 1, "");
  expect_refused(dir.file("foreign.pt"), "not a 'dma-agent' checkpoint");
  write_archive(dir.file("future.pt"), kAgentFormat, kAgentFormatVersion + 1, "");
  expect_refused(dir.file("future.pt"), "format version");
  write_archive(dir.file("old.pt"), kAgentFormat, kAgentOldestFormatVersion - 1, "");
  expect_refused(dir.file("old.pt"), "format version");
  write_archive(dir.file("layout.pt"), kAgentFormat, kAgentFormatVersion, "history=1;weight_rel,loss");
  expect_refused(dir.file("layout.pt"), "reads features");
  // The policy and continued training refuse them the same way.
  EXPECT_THROW(make_agent_policy(agent_spec({dir.file("layout.pt")}), context(h), policy_settings(c)), CheckpointError);
  EXPECT_THROW(train_agent_offline(c, {sim_store(sp, h, c.eval, 2, 1)}, dir.file("x.pt"), dir.file("cut.pt")),
               CheckpointError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.pt")));
}

// --- policy spec, rewards, store contents -----------------------------------------------

TEST(Agent, PolicySpecNoiseIsOptionalAndSeededPerEpisode) {
  const TinyAgent agent;
  const auto& [c, h, store, dir] = std::tie(agent.c, agent.run.h, agent.run.store, agent.dir);
  const auto& o = store.rows[0][0].observation;
  auto plain = agent.policy();
  EXPECT_EQ(plain->name(), "agent:" + dir.file("agent.pt"));
  auto noisy1 = agent.policy("?noise=0.5");
  auto noisy2 = agent.policy("?noise=0.5");
  plain->begin_episode(1, 42);
  noisy1->begin_episode(1, 42);
  noisy2->begin_episode(1, 42);
  const auto w0 = act_once(*plain, o, 1, 0);
  const auto w1 = act_once(*noisy1, o, 1, 0);
  EXPECT_EQ(act_once(*noisy2, o, 1, 0), w1) << "noise is a function of the episode seed";
  EXPECT_NE(w1, w0);
  noisy2->begin_episode(2, 43);
  EXPECT_NE(act_once(*noisy2, o, 2, 0), w1);
  EXPECT_NEAR(std::accumulate(w1.begin(), w1.end(), 0.0), 1.0, 1e-9);
  // agent.exploration_std is the default noise.
  Config explore = c;
  explore.agent.exploration_std = 0.5;
  auto noisy3 = make_agent_policy(agent_spec({dir.file("agent.pt")}), context(h), policy_settings(explore));
  noisy3->begin_episode(1, 42);
  EXPECT_EQ(act_once(*noisy3, o, 1, 0), w1);
  for (const char* bad : {"agent:", "agent:x.pt?noise=abc", "agent:x.pt?noise=-1", "agent:x.pt?noise=0.1&speed=2",
                          "agent:x.pt?noise=0.1&detour=0.5"})
    EXPECT_THROW(make_agent_policy(parse_policy_spec(bad), context(h), policy_settings(c)), PolicyError) << bad;
  // Observations of another domain count are refused, not misread.
  std::vector<float> short_obs(static_cast<size_t>(obs::dim(5)), 0.0f);
  EXPECT_THROW(act_once(*plain, short_obs, 1, 1), PolicyError);
}

TEST(Agent, RewardsAreRecomputedUnderTheConfiguredScoreWithNormalizedScalesSaved) {
  TempDir dir;
  const Config c = tiny_config("agent.bc_steps=2\nagent.cql_steps=2\neval.score=normalized");
  SimSpace sp;
  sp.horizon = 5;
  const auto h = sim_header(sp, "budget");  // collected under another score
  auto store = sim_store(sp, h, c.eval, 10, 6);
  // One interrupted episode (kept, 3 steps), one failed (dropped).
  store.episodes[8].status = EpisodeStatus::kInterrupted;
  store.rows[8].resize(3);
  store.episodes[9].status = EpisodeStatus::kFailed;
  write_store(dir.file("store.h5"), store);
  std::vector<double> src, tgt;
  for (int i = 0; i < 8; ++i) {
    const auto f = field_scores(store.rows[static_cast<size_t>(i)].back().eval_loss, h.base_eval_loss, h.domain_fields);
    src.push_back(f.source);
    tgt.push_back(f.target);
  }
  auto pstd = [](const std::vector<double>& v) {
    const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(v.size()));
  };
  const auto report = train_agent(c, {dir.file("store.h5")}, dir.file("agent.pt"));
  EXPECT_EQ(report.episodes, 9);
  EXPECT_EQ(report.transitions, 8 * 5 + 3);
  EXPECT_NEAR(report.source_scale, pstd(src), 1e-6);
  EXPECT_NEAR(report.target_scale, pstd(tgt), 1e-6);
  const auto scales = AgentModel::load(dir.file("agent.pt")).scales();
  EXPECT_NEAR(scales[1], pstd(src), 1e-6);
  EXPECT_NEAR(scales[2], pstd(tgt), 1e-6);
  EXPECT_GT(scales[0], 0.0);
  // A store without a usable episode is an error that says so.
  auto empty = store;
  for (auto& e : empty.episodes) e.status = EpisodeStatus::kFailed;
  EXPECT_THROW(train_agent_offline(c, {empty}, dir.file("y.pt")), StoreError);
}

// --- the actor's input mask ------------------------------------------------------------

// `o` with every domain's previous weight replaced by `w`: only the weight features move.
std::vector<float> with_prev_weights(std::vector<float> o, const std::vector<float>& w) {
  for (size_t d = 0; d < w.size(); ++d)
    o[static_cast<size_t>(obs::index(static_cast<int>(d), obs::kPrevWeight))] = w[d];
  return o;
}

using dma::test::max_abs_diff;

TEST(Agent, ActorInputMaskOpensTheNamedColumnsAtEveryHistoryStep) {
  const int K = agent::kStepFeatures;
  const auto& names = agent::step_feature_names();
  const std::string defaults = Config{}.agent.actor_features;
  for (int H : {1, 3}) {
    EXPECT_TRUE(torch::equal(agent::actor_input_mask(H, "all"), torch::ones({H * K})));
    const auto mask = agent::actor_input_mask(H, defaults);
    const auto two = agent::actor_input_mask(H, "progress,source_score");
    ASSERT_EQ(mask.numel(), H * K);
    for (int h = 0; h < H; ++h)
      for (int f = 0; f < K; ++f) {
        const auto& n = names[static_cast<size_t>(f)];
        // The default reads the field-level state only.
        const bool seen = n == "is_target" || n == "progress" || n == "source_score";
        EXPECT_EQ(mask[h * K + f].item<float>(), seen ? 1.0f : 0.0f) << n << " at history step " << h;
        EXPECT_EQ(two[h * K + f].item<float>(), n == "progress" || n == "source_score" ? 1.0f : 0.0f) << n;
      }
  }
  try {
    agent::actor_input_mask(1, "progress,loss");
    FAIL() << "an unknown feature name must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'loss'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("log_loss"), std::string::npos) << "the valid names are listed: " << e.what();
  }
}

TEST(Agent, TheDefaultActorIgnoresItsPreviousWeightsAndLevelsAndTheMaskIsKeptInTheCheckpoint) {
  TempDir dir;
  const std::string steps = "agent.bc_steps=5\nagent.cql_steps=5\n";
  const Config blind = tiny_config(steps);
  const Config sees = tiny_config(steps + "agent.actor_features=all");
  const auto [sp, h, store] = sim_run(6, blind.eval, 6, 2);
  const int D = h.num_domains();
  train_agent_offline(blind, {store}, dir.file("blind.pt"));
  train_agent_offline(sees, {store}, dir.file("sees.pt"));
  const auto& o = store.rows[1][3].observation;
  // Everything on the targets: another target share, other weight features for every domain.
  std::vector<float> all_target(static_cast<size_t>(D), 0.0f);
  for (int d = sp.sources; d < D; ++d) all_target[static_cast<size_t>(d)] = 1.0f / static_cast<float>(sp.targets);
  const auto moved_weights = with_prev_weights(o, all_target);
  auto moved_loss = o;  // the source score
  moved_loss[static_cast<size_t>(obs::kSourceScore)] -= 0.05f;
  auto moved_level = o;  // an absolute loss level and token share, as on another corpus
  moved_level[static_cast<size_t>(obs::index(0, obs::kLoss))] *= 1.3f;
  moved_level[static_cast<size_t>(obs::index(1, obs::kLogShare))] -= 1.0f;
  const auto b = AgentModel::load(dir.file("blind.pt"));
  const auto base = b.mean_logits(o, 1, D);
  EXPECT_EQ(b.mean_logits(moved_weights, 1, D), base) << "the blind actor must not read its previous weights";
  EXPECT_GT(max_abs_diff(b.mean_logits(moved_loss, 1, D), base), 1e-5) << "a loss feature must reach the actor";
  EXPECT_EQ(b.mean_logits(moved_level, 1, D), base) << "the default actor must not read absolute levels";
  // The critics read every column.
  const auto& a = store.rows[1][3].action;
  EXPECT_NE(b.q_values(moved_weights, a, 1, D), b.q_values(o, a, 1, D));
  // Through the policy too: the same weights whatever the previous ones were.
  auto policy = make_agent_policy(agent_spec({dir.file("blind.pt")}), context(h), policy_settings(blind));
  policy->begin_episode(1, 5);
  policy->begin_episode(2, 5);
  EXPECT_EQ(act_once(*policy, moved_weights, 2, 3), act_once(*policy, o, 1, 3));
  // agent.actor_features=all: the previous weights and levels move the actor.
  const auto s = AgentModel::load(dir.file("sees.pt"));
  EXPECT_GT(max_abs_diff(s.mean_logits(moved_weights, 1, D), s.mean_logits(o, 1, D)), 1e-5);
  EXPECT_GT(max_abs_diff(s.mean_logits(moved_level, 1, D), s.mean_logits(o, 1, D)), 1e-5);
  // The mask is read from the file, not rebuilt from the defaults ...
  EXPECT_TRUE(torch::equal(agent::load_agent(dir.file("blind.pt")).actor_mask,
                           agent::actor_input_mask(1, blind.agent.actor_features)));
  EXPECT_TRUE(torch::equal(agent::load_agent(dir.file("sees.pt")).actor_mask, agent::actor_input_mask(1, "all")));
  // ... and a checkpoint continued under a config without the key keeps its own.
  train_agent_offline(blind, {store}, dir.file("sees2.pt"), dir.file("sees.pt"), 0);
  EXPECT_TRUE(torch::equal(agent::load_agent(dir.file("sees2.pt")).actor_mask, agent::actor_input_mask(1, "all")));
  EXPECT_EQ(AgentModel::load(dir.file("sees2.pt")).mean_logits(moved_weights, 1, D),
            s.mean_logits(moved_weights, 1, D));
  // A hand-made mask with three history steps survives save and load bit for bit.
  auto state = agent::AgentState::create(16, 1, 2, 3);
  state.actor_mask[4] = 0.0;
  agent::save_agent(dir.file("h3.pt"), state);
  const auto loaded = agent::load_agent(dir.file("h3.pt"));
  EXPECT_TRUE(torch::equal(loaded.actor_mask, state.actor_mask));
  EXPECT_FALSE(torch::equal(loaded.actor_mask, agent::actor_input_mask(3, Config{}.agent.actor_features)));
}

// --- the token normaliser -----------------------------------------------------------------

TEST(Agent, AFieldBalancedActorGivesTheSameFieldSharesWhateverTheDomainCounts) {
  const auto m = torch::tensor({0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f}).view({1, 8});
  const auto c = agent::field_log_counts(m);
  EXPECT_NEAR(c[0][0].item<float>(), std::log(5.0f), 1e-6);  // 5 source domains
  EXPECT_NEAR(c[0][7].item<float>(), std::log(3.0f), 1e-6);  // 3 target domains
  // Tokens alike within each field (the actor reads field-level features only): 10 sources
  // and 4 targets, or 6 and 4, or 3 and 7, give one target share when balanced.
  torch::manual_seed(3);
  auto s = agent::AgentState::create(16, 2, 2, 1);
  const int F = s.shape.in_features;
  const auto source_token = torch::randn({F}), target_token = torch::randn({F});
  auto target_share = [&](int sources, int targets) {
    auto is_target = torch::cat({torch::zeros({sources}), torch::ones({targets})}).view({1, -1});
    auto tokens = torch::cat({source_token.expand({sources, F}), target_token.expand({targets, F})}).unsqueeze(0);
    torch::NoGradGuard no_grad;
    return (torch::softmax(s.actor_logits(tokens, is_target), -1) * is_target).sum().item<double>();
  };
  s.field_balanced = true;
  const double share = target_share(10, 4);
  EXPECT_GT(share, 0.01);
  EXPECT_LT(share, 0.99);
  EXPECT_NEAR(target_share(6, 4), share, 1e-5);
  EXPECT_NEAR(target_share(3, 7), share, 1e-5);
  s.field_balanced = false;  // per domain: more target domains, more target weight
  EXPECT_GT(target_share(3, 7), target_share(10, 4) + 0.05);
  // The flag is kept in the checkpoint and trained by default.
  TempDir dir;
  const auto [sp, h, store] = sim_run(6, tiny_config().eval, 6, 2);
  train_agent_offline(tiny_config("agent.bc_steps=5\nagent.cql_steps=5\nagent.field_balanced=0\n"), {store},
                      dir.file("off.pt"));
  train_agent_offline(tiny_config("agent.bc_steps=5\nagent.cql_steps=5\n"), {store}, dir.file("on.pt"));
  EXPECT_FALSE(agent::load_agent(dir.file("off.pt")).field_balanced);
  EXPECT_TRUE(agent::load_agent(dir.file("on.pt")).field_balanced);
}

TEST(Agent, NormalizerScalesByTheInterquartileRangeOfTheBulkAndClipsOutliers) {
  // Column 0: 990 evenly spread values in [0, 1] and 10 outliers at +-1e4. Column 1: a flag
  // set on 10% of rows (zero IQR: its std, 0.3). Column 2: a constant (scale 1).
  const int N = 1000, bulk = 990;
  auto flat = torch::zeros({N, 3});
  auto x = flat.accessor<float, 2>();
  for (int i = 0; i < N; ++i) {
    x[i][0] = i < bulk ? static_cast<float>(i) / (bulk - 1) : (i % 2 ? 1e4f : -1e4f);
    x[i][1] = i % 10 == 0 ? 1.0f : 0.0f;
    x[i][2] = 2.5f;
  }
  const auto tokens = flat.reshape({N / 2, 2, 3});  // (N, D, F): fit pools rows and domains
  const auto n = agent::Normalizer::fit(tokens);
  const double bulk_scale = 0.5 / 1.349;  // the bulk's own IQR / 1.349
  ASSERT_GT(flat.index({torch::indexing::Slice(), 0}).std().item<double>(), 100.0) << "the std would be inflated";
  EXPECT_NEAR(n.std[0].item<double>(), bulk_scale, 0.02 * bulk_scale);
  EXPECT_NEAR(n.mean[0].item<double>(), 0.5, 1e-3);
  EXPECT_NEAR(n.std[1].item<double>(), 0.3, 1e-5);
  EXPECT_NEAR(n.mean[1].item<double>(), 0.0, 1e-6);
  EXPECT_EQ(n.std[2].item<double>(), 1.0);
  EXPECT_EQ(n.mean[2].item<double>(), 2.5);
  const auto out = n.apply(tokens).reshape({N, 3});
  const double clip = agent::Normalizer::kClip;
  EXPECT_LE(out.abs().max().item<double>(), clip);
  for (int i = bulk; i < N; ++i) EXPECT_EQ(out[i][0].item<double>(), i % 2 ? clip : -clip) << "row " << i;
  // The bulk is standardised, not clipped.
  const double s0 = n.std[0].item<double>(), m0 = n.mean[0].item<double>();
  for (int i : {0, 300, bulk - 1}) EXPECT_NEAR(out[i][0].item<double>(), (x[i][0] - m0) / s0, 1e-5) << "row " << i;
  EXPECT_NEAR(out[0][1].item<double>(), 1.0 / 0.3, 1e-4);
  EXPECT_EQ(out.index({torch::indexing::Slice(), 2}).abs().max().item<double>(), 0.0);
}

// --- n-step backups -----------------------------------------------------------------------

TEST(Agent, NStepBackupsTrainAFiniteAgentAndOneStepIsTheDefault) {
  TempDir dir;
  const auto [sp, h, store] = sim_run(6, EvalConfig{}, 8, 4);
  const auto& o = store.rows[2][3].observation;
  const auto& a = store.rows[2][3].action;
  struct Out {
    AgentTrainReport report;
    std::vector<float> logits, q;
  };
  auto train = [&](const std::string& extra, const std::string& name) {
    Out out;
    out.report =
        train_agent_offline(tiny_config("agent.bc_steps=2\nagent.cql_steps=10\n" + extra), {store}, dir.file(name));
    const auto m = AgentModel::load(dir.file(name));
    out.logits = m.mean_logits(o, 1, 12);
    out.q = m.q_values(o, a, 1, 12);
    return out;
  };
  auto all_finite = [](const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  // One step is the default, and a deterministic one.
  const auto plain = train("", "plain.pt"), one = train("agent.n_step=1", "one.pt");
  EXPECT_EQ(one.logits, plain.logits);
  EXPECT_EQ(one.q, plain.q);
  EXPECT_EQ(one.report.val_td_loss, plain.report.val_td_loss);
  // Four steps: a finite agent, and the critics learned other targets.
  const auto four = train("agent.n_step=4", "four.pt");
  EXPECT_TRUE(all_finite(four.logits));
  EXPECT_TRUE(all_finite(four.q));
  for (double v :
       {four.report.critic_loss, four.report.actor_loss, four.report.val_td_loss, four.report.q_data_minus_random})
    EXPECT_TRUE(std::isfinite(v));
  EXPECT_NE(four.q, one.q);
  // Without discounting only the first reward counts and nothing is bootstrapped, whatever n
  // (more than the horizon included): the same agent as one step, bit for bit. (cql_alpha=0:
  // CQL's policy samples at o' would differ, as o' is n steps on.)
  const std::string undiscounted = "agent.discount=0\nagent.cql_alpha=0\n";
  const auto one0 = train(undiscounted + "agent.n_step=1", "one0.pt");
  const auto many0 = train(undiscounted + "agent.n_step=9", "many0.pt");
  EXPECT_EQ(many0.logits, one0.logits);
  EXPECT_EQ(many0.q, one0.q);
  EXPECT_EQ(many0.report.val_td_loss, one0.report.val_td_loss);
}

// --- ensembles ------------------------------------------------------------------------------

// A round's batch goes through the network in several passes (52 domains: a few hundred rows
// each): every row gets the logits it gets alone, built from the features training reads.
/// 52 simulated domains (26 source, 26 target), 6 steps, and an agent of history 3 cloned in
/// 5 steps from `episodes` of them into dir/agent.pt.
struct Cloned52 {
  Config c = tiny_config("agent.bc_steps=5\nagent.cql_steps=0\nagent.history=3");
  SimSpace sp;
  StoreHeader h;
  OfflineStore store;
};
Cloned52 clone_on_52_domains(const TempDir& dir, int episodes) {
  Cloned52 r;
  r.sp.sources = r.sp.targets = 26;
  r.sp.horizon = 6;
  r.h = sim_header(r.sp);
  r.store = sim_store(r.sp, r.h, r.c.eval, episodes, 4);
  train_agent_offline(r.c, {r.store}, dir.file("agent.pt"));
  return r;
}

TEST(Agent, ABatchOfManyHistoriesActsAsEachHistoryAloneAndAsTrainingReadsIt) {
  TempDir dir;
  const auto [c, sp, h, store] = clone_on_52_domains(dir, 75);
  const auto model = AgentModel::load(dir.file("agent.pt"));
  const auto state = agent::load_agent(dir.file("agent.pt"));
  const int D = h.num_domains(), H = 3, od = obs::dim(D);
  std::vector<float> histories;  // (B, H, obs_dim): every step of every episode, oldest first
  for (const auto& rows : store.rows)
    for (int t = 0; t < sp.horizon; ++t)
      for (int k = H - 1; k >= 0; --k) {
        const auto& o = rows[static_cast<size_t>(std::max(0, t - k))].observation;
        histories.insert(histories.end(), o.begin(), o.end());
      }
  const int B = static_cast<int>(histories.size() / (static_cast<size_t>(H) * od));
  ASSERT_EQ(B, 450);
  const auto batched = model.mean_logits(histories, B, D);
  ASSERT_EQ(batched.size(), static_cast<size_t>(B) * D);
  torch::NoGradGuard no_grad;
  for (int b = 0; b < B; b += 37) {
    const auto one =
        std::span<const float>(histories).subspan(static_cast<size_t>(b) * H * od, static_cast<size_t>(H) * od);
    const auto alone = model.mean_logits(one, 1, D);
    auto tokens = state.norm.apply(agent::episode_tokens(one, H, D, H)[H - 1].unsqueeze(0));
    auto mask = agent::target_mask(one.subspan(static_cast<size_t>(H - 1) * od, od), D).unsqueeze(0);
    auto trained = const_cast<agent::AgentState&>(state).actor_logits(tokens, mask).contiguous();
    for (int d = 0; d < D; ++d) {
      const float x = batched[static_cast<size_t>(b) * D + d];
      EXPECT_NEAR(x, alone[static_cast<size_t>(d)], 1e-4) << "row " << b << " domain " << d;
      EXPECT_NEAR(x, trained.data_ptr<float>()[d], 1e-4) << "row " << b << " domain " << d;
    }
  }
}

// The learner decides each batch of records as they arrive: an episode's weights must not
// depend, to the last bit, on which other episodes share its batch.
TEST(Agent, AnEpisodesWeightsDoNotDependOnTheOtherEpisodesInItsBatch) {
  TempDir dir;
  const auto [c, sp, h, store] = clone_on_52_domains(dir, 40);
  const int D = h.num_domains(), od = obs::dim(D);
  const std::vector<int> sizes{1, 2, 3, 5, 8, 13, 40};
  std::map<int, std::vector<std::vector<double>>> by_size;  // batch size -> per-episode weights, every step
  for (int size : sizes) {
    auto policy = make_agent_policy(agent_spec({dir.file("agent.pt")}), context(h), policy_settings(c));
    for (int e = 0; e < 40; ++e) policy->begin_episode(e, 100 + static_cast<std::uint64_t>(e));
    auto& out = by_size[size];
    out.assign(40, {});
    for (int t = 0; t < sp.horizon; ++t)
      for (int first = 0; first < 40; first += size) {
        const int n = std::min(size, 40 - first);
        std::vector<std::int64_t> ids;
        std::vector<std::int32_t> steps;
        std::vector<float> observations;
        for (int e = first; e < first + n; ++e) {
          ids.push_back(e);
          steps.push_back(t);
          const auto& o = store.rows[static_cast<size_t>(e)][static_cast<size_t>(t)].observation;
          observations.insert(observations.end(), o.begin(), o.end());
        }
        std::vector<double> w(static_cast<size_t>(n) * D);
        policy->act({n, od, ids, steps, observations}, w);
        for (int b = 0; b < n; ++b)
          out[static_cast<size_t>(first + b)].insert(out[static_cast<size_t>(first + b)].end(), w.begin() + b * D,
                                                     w.begin() + (b + 1) * D);
      }
  }
  for (int size : sizes)
    for (int e = 0; e < 40; ++e)
      EXPECT_EQ(by_size[size][static_cast<size_t>(e)], by_size[40][static_cast<size_t>(e)])
          << "episode " << e << " decided in batches of " << size;
}

TEST(Agent, EnsemblePathsSplitOnPlusAndEmptyMembersAreRefusedWithOneLine) {
  using V = std::vector<std::string>;
  const auto paths = [](const std::string& text) { return parse_policy_spec("agent:" + text).checkpoints; };
  EXPECT_EQ(paths("a.pt"), V{"a.pt"});
  EXPECT_EQ(paths("a.pt+b.pt"), (V{"a.pt", "b.pt"}));
  EXPECT_EQ(paths("runs/x/a.pt+/abs/b.pt+c.pt"), (V{"runs/x/a.pt", "/abs/b.pt", "c.pt"}));
  for (const char* bad : {"+", "a.pt+", "+b.pt", "a.pt++b.pt"}) {
    try {
      paths(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const PolicyError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("empty"), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    }
  }
  // The policy refuses them before looking for any file.
  const auto h = sim_header(SimSpace{});
  EXPECT_THROW(make_agent_policy(parse_policy_spec("agent:a.pt+"), context(h), policy_settings(tiny_config())),
               PolicyError);
  EXPECT_THROW(
      make_agent_policy(parse_policy_spec("agent:+b.pt?noise=0.1"), context(h), policy_settings(tiny_config())),
      PolicyError);
  // A bare agent (this run's checkpoint, filled in by dma_orchestrate) cannot be built alone.
  EXPECT_THROW(make_agent_policy(parse_policy_spec("agent"), context(h), policy_settings(tiny_config())), PolicyError);
}

TEST(Agent, AnEnsembleActsWithTheMeanOfItsMembersLogits) {
  TempDir dir;
  const std::string steps = "agent.bc_steps=2\nagent.cql_steps=2\n";
  const Config c = tiny_config(steps);
  const auto [sp, h, store] = sim_run(4, c.eval, 4, 1);
  const int D = h.num_domains();
  const std::string a = dir.file("a.pt"), b = dir.file("b.pt"), h2 = dir.file("h2.pt");
  train_agent_offline(c, {store}, a);
  train_agent_offline(tiny_config(steps + "run.seed=8"), {store}, b);
  const auto& o = store.rows[1][2].observation;
  auto single = agent_policy_registry().make(parse_policy_spec("agent:" + a), context(h), policy_settings(c));
  auto twice = agent_policy_registry().make(parse_policy_spec("agent:" + a + "+" + a), context(h), policy_settings(c));
  auto pair = agent_policy_registry().make(parse_policy_spec("agent:" + a + "+" + b), context(h), policy_settings(c));
  EXPECT_EQ(pair->name(), "agent:" + a + "+" + b);
  for (auto* p : {single.get(), twice.get(), pair.get()}) p->begin_episode(1, 42);
  const auto w1 = act_once(*single, o, 1, 2);
  EXPECT_EQ(act_once(*twice, o, 1, 2), w1) << "a checkpoint twice is that checkpoint";
  const auto wp = act_once(*pair, o, 1, 2);
  EXPECT_NEAR(std::accumulate(wp.begin(), wp.end(), 0.0), 1.0, 1e-9);
  const auto la = AgentModel::load(a).mean_logits(o, 1, D), lb = AgentModel::load(b).mean_logits(o, 1, D);
  ASSERT_GT(max_abs_diff(la, lb), 1e-3) << "members that agree would pass trivially";
  // log(w) is the mean of the members' logits up to the softmax's constant.
  auto mean_logit = [&](int d) { return 0.5 * (la[static_cast<size_t>(d)] + lb[static_cast<size_t>(d)]); };
  const double shift = std::log(wp[0]) - mean_logit(0);
  for (int d = 1; d < D; ++d)
    EXPECT_NEAR(std::log(wp[static_cast<size_t>(d)]) - mean_logit(d), shift, 1e-5) << "domain " << d;
  EXPECT_NE(wp, w1);
  // Members that read different histories cannot share one observation window.
  train_agent_offline(tiny_config(steps + "agent.history=2"), {store}, h2);
  EXPECT_THROW(agent_policy_registry().make(parse_policy_spec("agent:" + a + "+" + h2), context(h), policy_settings(c)),
               PolicyError);
}

}  // namespace
}  // namespace dma

namespace dma {
namespace {

// iterate trains on the store its learner keeps open for writing (same process).
TEST(Agent, TrainsOnAStoreWhoseWriterIsStillOpen) {
  TempDir dir;
  const Config c = tiny_config("agent.bc_steps=2\nagent.cql_steps=2");
  const auto [sp, h, store] = sim_run(4, c.eval, 6, 1);
  auto w = StoreWriter::create(dir.file("store.h5"), h);
  const auto idx = w.begin_episodes(store.episodes);
  for (int t = 0; t < sp.horizon; ++t) {
    std::vector<Transition> rows;
    for (const auto& r : store.rows) rows.push_back(r[static_cast<size_t>(t)]);
    w.write(rows);
  }
  for (size_t i = 0; i < idx.size(); ++i) w.end_episode(idx[i], EpisodeStatus::kComplete, sp.horizon, 0.0f);
  w.flush();
  const auto report = train_agent(c, {dir.file("store.h5")}, dir.file("agent.pt"));
  EXPECT_EQ(report.episodes, 6);
  EXPECT_EQ(report.transitions, 6 * 4);
}

}  // namespace
}  // namespace dma
