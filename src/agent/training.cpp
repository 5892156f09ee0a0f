// train-agent: behaviour cloning, then conservative Q-learning, on the rows of one or more stores.
#include "dma/agent.hpp"

#include <chrono>

#include <fmt/format.h>

#include "checkpoint.hpp"
#include "dataset.hpp"
#include "dma/error.hpp"
#include "dma/progress.hpp"
#include "dma/seed.hpp"
#include "thread_scope.hpp"
#include "trainer.hpp"

namespace dma {
namespace {

using agent::AgentState;
using agent::ThreadScope;

// Network initialisation draws from the global generator: seed it for reproducible runs,
// then give it back its state so nothing else in the process sees a difference.
AgentState fresh_state(const AgentConfig& c, std::uint64_t seed) {
  auto gen = at::detail::getDefaultCPUGenerator();
  const auto saved = gen.get_state();
  gen.set_current_seed(derive_seed(seed, 0x1a17ULL));
  AgentState s = AgentState::create(c.d_token, c.n_layers, c.n_heads, c.history, c.actor_features);
  s.field_balanced = c.field_balanced != 0;
  gen.set_state(saved);
  return s;
}

void fit_scales(AgentState& s, const agent::Dataset& ds) {
  std::vector<torch::Tensor> tokens, rewards;
  for (const auto& g : ds.groups) {
    tokens.push_back(g.tokens.index_select(0, g.train_rows).reshape({-1, g.tokens.size(-1)}));
    rewards.push_back(g.rewards.index_select(0, g.train_rows));
  }
  s.norm = agent::Normalizer::fit(torch::cat(tokens));
  const auto all = torch::cat(rewards);
  const double sd = all.std(/*unbiased=*/false).item<double>();
  s.reward_mean = all.mean().item<double>();
  s.reward_scale = sd > 1e-9 ? sd : 1.0;
}

}  // namespace

OfflineStore load_offline_store(const std::string& path) {
  auto reader = StoreReader::open(path);
  OfflineStore s;
  s.name = path;
  s.header = reader.header();
  for (const auto& e : reader.episodes()) {
    if (e.status != EpisodeStatus::kComplete && e.status != EpisodeStatus::kInterrupted) continue;
    if (e.length <= 0) continue;
    s.episodes.push_back(e);
    s.rows.push_back(reader.read_episode(e));
  }
  return s;
}

AgentTrainReport train_agent_offline(const Config& config, const std::vector<OfflineStore>& stores,
                                     const std::string& out_checkpoint, const std::string& init_checkpoint,
                                     int steps_override) {
  const auto start = std::chrono::steady_clock::now();
  const AgentConfig& ac = config.agent;
  ThreadScope threads(ac.threads);
  if (stores.empty())
    throw ConfigError("train-agent: no store to train on: set agent.stores or run --mode collect first");
  const bool resume = !init_checkpoint.empty();
  AgentState state = resume ? agent::load_agent(init_checkpoint) : fresh_state(ac, config.run.seed);
  EvalConfig eval = config.eval;
  if (resume) {
    if (state.shape.d_token != ac.d_token || state.shape.n_layers != ac.n_layers || state.history != ac.history)
      log_line(fmt::format("train-agent: continuing '{}' with its own network ({} layers of {}, history {})",
                           init_checkpoint, state.shape.n_layers, state.shape.d_token, state.history));
    // The critics learned values of the checkpoint's reward: keep its definition and scales.
    if (state.score != eval.score)
      log_line(fmt::format("train-agent: continuing '{}' with its reward eval.score = {} (config says {})",
                           init_checkpoint, state.score, eval.score));
    eval.score = state.score;
    eval.source_scale = state.source_scale;
    eval.target_scale = state.target_scale;
  } else {
    if (eval.score == "normalized")
      std::tie(eval.source_scale, eval.target_scale) = agent::normalized_scales(stores, eval);
    state.score = eval.score;
    state.source_scale = eval.source_scale;
    state.target_scale = eval.target_scale;
  }
  agent::DatasetOptions opt{state.history, eval, ac.val_fraction, ac.bc_top_q, config.run.seed};
  const auto ds = agent::build_dataset(stores, opt);
  if (!resume) fit_scales(state, ds);
  state.config_ini = to_ini(config);
  agent::TrainPlan plan{resume ? 0 : ac.bc_steps, steps_override >= 0 ? steps_override : ac.cql_steps, config.run.seed,
                        config.run.progress_seconds};
  auto report = agent::train_on(state, ds, ac, plan);
  agent::save_agent(out_checkpoint, state);
  for (const auto& g : ds.groups) report.transitions += g.episode.size(0);
  report.episodes = static_cast<std::int64_t>(ds.episodes.size());
  for (const auto& e : ds.episodes) {
    report.val_episodes += e.val ? 1 : 0;
    report.bc_episodes += e.top && !e.val ? 1 : 0;
  }
  report.reward_mean = state.reward_mean;
  report.reward_scale = state.reward_scale;
  report.source_scale = state.source_scale;
  report.target_scale = state.target_scale;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

AgentTrainReport train_agent(const Config& config, const std::vector<std::string>& stores,
                             const std::string& out_checkpoint, const std::string& init_checkpoint,
                             int steps_override) {
  std::vector<OfflineStore> loaded;
  for (const auto& path : stores) loaded.push_back(load_offline_store(path));
  return train_agent_offline(config, loaded, out_checkpoint, init_checkpoint, steps_override);
}

}  // namespace dma
