// Development bench for the agent (not a test): collects a simulated store (sim.hpp), trains
// the agent on it through a real store file, and compares the agent with the fixed-share
// grid and linear schedules on fresh seeds.
//   agent_sim [episodes=50] [threads=1] [eval_seeds=8] [section.key=value ...]
// sim.generations=G sim.per_generation=K adds G rounds of iterate: K rollouts of the agent
// with IterateConfig::exploration_std noise, then iterate.updates_per_generation updates.
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>

#include <fmt/format.h>
#include <torch/torch.h>

#include "sim.hpp"

using namespace dma;
using namespace dma::agent_test;

namespace {

struct Stat {
  double mean = 0, se = 0;
};

Stat evaluate(const SimSpace& sp, const StoreHeader& h, const EvalConfig& eval, int seeds,
              const std::function<SimPolicy(std::int64_t id, std::uint64_t seed)>& make) {
  std::vector<double> v;
  for (int k = 0; k < seeds; ++k) {
    const std::int64_t id = 1000000 + k;
    const std::uint64_t seed = mix64(0xe5a1ULL + static_cast<std::uint64_t>(k));
    v.push_back(run_sim_episode(sp, h, eval, id, seed, make(id, seed), "eval").final_score);
  }
  Stat s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.se = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1) / static_cast<double>(v.size())) : 0;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int episodes = argc > 1 ? std::atoi(argv[1]) : 50;
  int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  int seeds = argc > 3 ? std::atoi(argv[3]) : 8;
  std::string ini;
  std::map<std::string, std::string> kv;
  int generations = 0, per_generation = 8;
  for (int i = 4; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("sim.generations=", 0) == 0) {
      generations = std::atoi(a.c_str() + 16);
      continue;
    }
    if (a.rfind("sim.per_generation=", 0) == 0) {
      per_generation = std::atoi(a.c_str() + 19);
      continue;
    }
    auto dot = a.find('.'), eq = a.find('=');
    ini += fmt::format("[{}]\n{} = {}\n", a.substr(0, dot), a.substr(dot + 1, eq - dot - 1), a.substr(eq + 1));
  }
  torch::set_num_threads(threads);
  Config config = parse_ini_text(ini);
  config.agent.threads = threads;
  SimSpace sp;
  sp.horizon = config.train.horizon;
  const auto h = sim_header(sp, config.eval.score);
  const EvalConfig& eval = config.eval;

  std::printf("%-22s %9s %7s\n", "policy", "score", "se");
  double best_fixed = -1e9;
  std::string best_name;
  for (int k = 1; k <= 9; ++k) {
    const double share = 0.1 * k;
    auto s = evaluate(sp, h, eval, seeds, [&](std::int64_t, std::uint64_t) { return fixed_share(h, share); });
    std::printf("%-22s %9.4f %7.4f\n", fmt::format("fixed:{:.1f}", share).c_str(), s.mean, s.se);
    if (s.mean > best_fixed) best_fixed = s.mean, best_name = fmt::format("fixed:{:.1f}", share);
  }
  for (auto [a, b] :
       std::vector<std::pair<double, double>>{{0.9, 0.2}, {0.2, 0.9}, {0.7, 0.3}, {0.6, 0.4}, {0.8, 0.1}}) {
    auto s = evaluate(sp, h, eval, seeds, [&](std::int64_t, std::uint64_t) { return linear_schedule(h, a, b); });
    std::printf("%-22s %9.4f %7.4f\n", fmt::format("schedule:{}>{}", a, b).c_str(), s.mean, s.se);
  }
  if (episodes <= 0) return 0;

  TempDir dir;
  auto store = sim_store(sp, h, eval, episodes, config.run.seed);
  write_store(dir.file("store.h5"), store);
  std::vector<double> finals;
  for (const auto& rows : store.rows) {
    double r = 0;
    for (const auto& t : rows) r += t.reward;
    finals.push_back(r);
  }
  std::sort(finals.rbegin(), finals.rend());
  std::printf("store: %d episodes, best returns %.4f %.4f %.4f, median %.4f\n", episodes, finals[0], finals[1],
              finals[2], finals[finals.size() / 2]);
  const auto started = std::chrono::steady_clock::now();
  const auto rep = train_agent(config, {dir.file("store.h5")}, dir.file("agent.pt"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "train: %.1fs (%lld transitions, %lld episodes, %lld cloned) bc %.4f td %.4f val_bc %.4f val_td %.4f "
      "gap %.3f rscale %.4f\n",
      secs, static_cast<long long>(rep.transitions), static_cast<long long>(rep.episodes),
      static_cast<long long>(rep.bc_episodes), rep.bc_loss, rep.critic_loss, rep.val_bc_loss, rep.val_td_loss,
      rep.q_data_minus_random, rep.reward_scale);
  DomainContext ctx{h.domain_names, h.domain_fields, h.token_shares, h.horizon};
  for (int g = 0; g < generations; ++g) {  // iterate: rollouts with exploration, then updates
    auto explorer = make_agent_policy(agent_spec({dir.file("agent.pt")}, config.iterate.exploration_std), ctx,
                                      policy_settings(config));
    double mean = 0;
    for (int k = 0; k < per_generation; ++k) {
      const std::int64_t id = 500000 + g * 1000 + k;
      const std::uint64_t seed = mix64(config.run.seed * 7919 + static_cast<std::uint64_t>(id));
      auto ep = run_sim_episode(sp, h, eval, id, seed, from_policy(*explorer, id, seed), "agent");
      mean += ep.final_score / per_generation;
      store.episodes.push_back(ep.record);
      store.rows.push_back(ep.rows);
    }
    std::filesystem::remove(dir.file("store.h5"));
    write_store(dir.file("store.h5"), store);
    train_agent(config, {dir.file("store.h5")}, dir.file("agent.pt"), dir.file("agent.pt"),
                config.iterate.updates_per_generation);
    std::printf("iterate %d: rollouts mean %.4f\n", g + 1, mean);
  }
  auto policy = make_agent_policy(agent_spec({dir.file("agent.pt")}), ctx, policy_settings(config));
  std::vector<std::vector<float>> shares;
  auto s = evaluate(sp, h, eval, seeds, [&](std::int64_t id, std::uint64_t seed) {
    auto inner = from_policy(*policy, id, seed);
    return SimPolicy([inner, &shares, &h](int t, const std::vector<std::vector<float>>& hist) {
      auto w = inner(t, hist);
      if (static_cast<int>(shares.size()) <= t) shares.resize(static_cast<size_t>(t) + 1);
      float ts = 0;
      for (size_t d = 0; d < w.size(); ++d) ts += h.domain_fields[d] == Field::kTarget ? w[d] : 0.0f;
      shares[static_cast<size_t>(t)].push_back(ts);
      return w;
    });
  });
  std::printf("%-22s %9.4f %7.4f   (best fixed %s %.4f, diff %+.4f)\n", "agent", s.mean, s.se, best_name.c_str(),
              best_fixed, s.mean - best_fixed);
  // Critic diagnostic: Q at t = 0 and t = 8 (on the fixed-0.4 path) for target shares 0.1..0.9,
  // next to the true return of taking that share once, then 0.4.
  auto model = AgentModel::load(dir.file("agent.pt"));
  for (int t0 : {0, 8}) {
    auto base = run_sim_episode(sp, h, eval, 1, 99, fixed_share(h, 0.4), "probe");
    std::vector<float> hist;
    for (int k = model.history() - 1; k >= 0; --k) {
      const auto& o = base.rows[static_cast<size_t>(std::max(0, t0 - k))].observation;
      hist.insert(hist.end(), o.begin(), o.end());
    }
    std::vector<float> acts;
    for (int k = 1; k <= 9; ++k) {
      auto w = mix(h, 0.1 * k, std::vector<double>(static_cast<size_t>(h.num_domains()), 1.0));
      acts.insert(acts.end(), w.begin(), w.end());
    }
    auto q = model.q_values(hist, acts, 9, h.num_domains());
    std::printf("t=%2d Q:   ", t0);
    for (float x : q) std::printf(" %6.2f", x);
    std::printf("\nt=%2d true:", t0);
    for (int k = 1; k <= 9; ++k) {
      auto pol = [&, k](int t, const std::vector<std::vector<float>>& hh) {
        return fixed_share(h, t == t0 ? 0.1 * k : 0.4)(t, hh);
      };
      auto ep = run_sim_episode(sp, h, eval, 1, 99, pol, "probe");
      double g = 0;
      for (size_t t = static_cast<size_t>(t0); t < ep.rows.size(); ++t) g += ep.rows[t].reward;
      std::printf(" %6.2f", (g - rep.reward_mean * (sp.horizon - t0)) / rep.reward_scale);
    }
    std::printf("\n");
  }
  std::printf("agent target share by step:");
  for (const auto& v : shares)
    std::printf(" %.2f", std::accumulate(v.begin(), v.end(), 0.0f) / static_cast<float>(v.size()));
  std::printf("\n");
  return 0;
}
