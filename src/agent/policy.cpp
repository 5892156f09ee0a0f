// The trained agent loaded for acting (AgentModel) and the `agent:` policy built on it.
#include "dma/agent.hpp"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "checkpoint.hpp"
#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "dma/progress.hpp"
#include "dma/seed.hpp"
#include "features.hpp"
#include "mixture.hpp"
#include "thread_scope.hpp"

namespace dma {
namespace {

using agent::AgentState;
using agent::softmax_into;
using agent::ThreadScope;

}  // namespace

struct AgentModel::Impl {
  AgentState state;

  // Normalised tokens (B, D, F) from histories (B, H, obs_dim), oldest row first: each
  // domain's token holds its step features newest first, as episode_tokens builds them. The
  // B * H rows go through step_features into one tensor, so a round of many episodes costs
  // a few tensor operations, not a few per episode.
  torch::Tensor tokens(std::span<const float> histories, int batch, int domains) const {
    const int H = state.history, od = obs::dim(domains);
    if (histories.size() != static_cast<size_t>(batch) * H * od)
      throw PolicyError(fmt::format("agent: {} floats are not {} histories of {} observations of {} domains",
                                    histories.size(), batch, H, domains));
    const auto per_row = static_cast<size_t>(domains) * agent::kStepFeatures;
    auto per_step = torch::empty({batch, H, domains, agent::kStepFeatures});  // (B, H, D, kStepFeatures)
    float* p = per_step.data_ptr<float>();
    for (size_t row = 0; row < static_cast<size_t>(batch) * H; ++row)
      agent::step_features(histories.subspan(row * od, static_cast<size_t>(od)), domains,
                           std::span<float>(p + row * per_row, per_row));
    auto newest_first = per_step.flip({/*dim=*/1}).permute({0, 2, 1, 3});  // (B, D, H, kStepFeatures)
    return state.norm.apply(newest_first.reshape({batch, domains, H * agent::kStepFeatures}));
  }
  // The actor's mean logits (B, D) in inference, computed once per distinct token. Domains
  // whose masked tokens are equal (the default actor reads field-level features only, so a
  // field's domains are) get equal outputs from every layer, and attention over k equal keys
  // is attention over one key with log k added to its score: each episode's distinct tokens
  // go through the network with the log-sum-exp of their members' key biases, and the result
  // is spread back to the domains. The same function as actor_logits, at a small fraction
  // of its cost when D is large. Episodes are batched by their number of distinct tokens and
  // each one's products are its own (nets.cpp `linear`), so its bits do not depend on the batch.
  torch::Tensor distinct_token_logits(const torch::Tensor& tokens, const torch::Tensor& is_target) {
    const auto B = tokens.size(0), D = tokens.size(1), F = tokens.size(2);
    // Masked columns become +0 and every -0 becomes +0, so that tokens equal in value are
    // equal in bits (a masked negative feature would otherwise leave a -0 behind).
    const auto masked =
        torch::where(state.actor_mask != 0, tokens + 0.0, torch::zeros({}, tokens.options())).contiguous();
    const auto key_bias =
        state.field_balanced ? (-agent::field_log_counts(is_target)).contiguous() : torch::zeros({B, D});
    const float* x = masked.data_ptr<float>();
    const float* kb = key_bias.data_ptr<float>();
    const auto row_bytes = static_cast<size_t>(F) * sizeof(float);
    std::vector<std::vector<std::int64_t>> member(static_cast<size_t>(B));  // domain -> distinct index
    std::vector<std::vector<std::int64_t>> first(static_cast<size_t>(B));   // distinct index -> first domain
    std::map<std::int64_t, std::vector<std::int64_t>> by_count;             // distinct count -> episodes
    std::unordered_map<std::string_view, std::int64_t> seen;
    for (std::int64_t b = 0; b < B; ++b) {
      seen.clear();
      auto& m = member[static_cast<size_t>(b)];
      auto& f = first[static_cast<size_t>(b)];
      for (std::int64_t d = 0; d < D; ++d) {
        const auto* row = reinterpret_cast<const char*>(x + (b * D + d) * F);
        const auto [it, fresh] =
            seen.try_emplace(std::string_view(row, row_bytes), static_cast<std::int64_t>(f.size()));
        if (fresh) f.push_back(d);
        m.push_back(it->second);
      }
      by_count[static_cast<std::int64_t>(f.size())].push_back(b);
    }
    auto out = torch::empty({B, D});
    float* o = out.data_ptr<float>();
    for (const auto& [U, episodes] : by_count) {
      const auto G = static_cast<std::int64_t>(episodes.size());
      auto distinct = torch::empty({G, U, F});
      auto merged_bias = torch::full({G, U}, -std::numeric_limits<float>::infinity());
      float* dx = distinct.data_ptr<float>();
      float* mb = merged_bias.data_ptr<float>();
      for (std::int64_t g = 0; g < G; ++g) {
        const auto b = episodes[static_cast<size_t>(g)];
        const auto& f = first[static_cast<size_t>(b)];
        for (std::int64_t u = 0; u < U; ++u)
          std::memcpy(dx + (g * U + u) * F, x + (b * D + f[static_cast<size_t>(u)]) * F, row_bytes);
        for (std::int64_t d = 0; d < D; ++d) {  // log-sum-exp of the members' biases, one at a time
          float& acc = mb[g * U + member[static_cast<size_t>(b)][static_cast<size_t>(d)]];
          const float v = kb[b * D + d];
          acc = std::max(acc, v) + std::log1p(std::exp(-std::abs(acc - v)));
        }
      }
      const auto logits = state.actor->forward(distinct, merged_bias).contiguous();  // (G, U)
      const float* l = logits.data_ptr<float>();
      for (std::int64_t g = 0; g < G; ++g) {
        const auto b = episodes[static_cast<size_t>(g)];
        for (std::int64_t d = 0; d < D; ++d)
          o[b * D + d] = l[g * U + member[static_cast<size_t>(b)][static_cast<size_t>(d)]] + kb[b * D + d];
      }
    }
    return out;
  }

  // is_target (batch, D) from the newest observation of each history.
  torch::Tensor target_masks(std::span<const float> histories, int batch, int domains) const {
    const auto od = static_cast<size_t>(obs::dim(domains)), per = static_cast<size_t>(state.history) * od;
    auto masks = torch::empty({batch, domains});  // (B, D)
    float* m = masks.data_ptr<float>();
    for (size_t b = 0; b < static_cast<size_t>(batch); ++b)
      agent::target_mask_into(histories.subspan(b * per + per - od, od), domains,
                              {m + b * static_cast<size_t>(domains), static_cast<size_t>(domains)});
    return masks;
  }
};

AgentModel::AgentModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentModel::~AgentModel() = default;
AgentModel::AgentModel(AgentModel&&) noexcept = default;
AgentModel& AgentModel::operator=(AgentModel&&) noexcept = default;

namespace {
// LibTorch takes every tensor from malloc and frees it when the tensor dies. Inference on a
// round's batch makes and frees tensors of a few MB per layer, which glibc by default serves
// with mmap and unmaps (or trims off the heap) on free: every pass then faulted in fresh
// zeroed pages, a third of the learner's CPU time at 1 024 episodes. Keep freed blocks of up
// to 32 MB (glibc's largest threshold) in the heap, and the heap's top up to 256 MB, for reuse.
void keep_freed_memory_for_reuse() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}
}  // namespace

AgentModel AgentModel::load(const std::string& checkpoint) {
  keep_freed_memory_for_reuse();
  auto impl = std::make_unique<Impl>();
  impl->state = agent::load_agent(checkpoint);
  impl->state.actor->eval();
  return AgentModel(std::move(impl));
}

int AgentModel::history() const { return impl_->state.history; }
const std::string& AgentModel::config_ini() const { return impl_->state.config_ini; }
std::vector<double> AgentModel::scales() const {
  return {impl_->state.reward_scale, impl_->state.source_scale, impl_->state.target_scale, impl_->state.reward_mean};
}

std::vector<float> AgentModel::mean_logits(std::span<const float> histories, int batch, int num_domains) const {
  c10::InferenceMode inference;  // no autograd bookkeeping on any tensor of the pass
  // Rows go through the network in passes whose attention scores (heads x D x D per row)
  // stay near kScoresPerPass floats: a round of 1 024 episodes at once spent most of its time
  // in page faults and cache misses on scores of ~44 MB; passes of ~4 MB took a third of it.
  constexpr std::int64_t kScoresPerPass = std::int64_t{1} << 20;
  const auto scores_per_row =
      std::max<std::int64_t>(1, std::int64_t{impl_->state.shape.n_heads} * num_domains * num_domains);
  const int rows_per_pass = static_cast<int>(std::max<std::int64_t>(1, kScoresPerPass / scores_per_row));
  const auto per_row = static_cast<size_t>(impl_->state.history) * obs::dim(num_domains);
  std::vector<float> out;
  out.reserve(static_cast<size_t>(batch) * num_domains);
  for (int first = 0; first < batch; first += rows_per_pass) {
    const int rows = std::min(rows_per_pass, batch - first);
    const auto part = histories.subspan(static_cast<size_t>(first) * per_row, static_cast<size_t>(rows) * per_row);
    auto tokens = impl_->tokens(part, rows, num_domains);
    auto logits = impl_->distinct_token_logits(tokens, impl_->target_masks(part, rows, num_domains));
    out.insert(out.end(), logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  }
  return out;
}

std::vector<float> AgentModel::q_values(std::span<const float> history_rows, std::span<const float> actions,
                                        int num_actions, int num_domains) const {
  torch::NoGradGuard no_grad;
  if (actions.size() != static_cast<size_t>(num_actions) * num_domains)
    throw PolicyError(
        fmt::format("agent: {} floats are not {} actions of {} domains", actions.size(), num_actions, num_domains));
  auto& s = impl_->state;
  auto tok = impl_->tokens(history_rows, 1, num_domains);
  auto mask = impl_->target_masks(history_rows, 1, num_domains);
  auto a = torch::tensor(std::vector<float>(actions.begin(), actions.end())).view({1, num_actions, num_domains});
  auto q = torch::min(s.q1->q(s.q1->encode(tok), mask, a), s.q2->q(s.q2->encode(tok), mask, a)).view(-1).contiguous();
  return {q.data_ptr<float>(), q.data_ptr<float>() + q.numel()};
}

// ---------------------------------------------------------------------------------------
// The `agent:` policy

namespace {

constexpr std::uint64_t kStreamAgentNoise = 0xa6e7;

class AgentPolicy : public Policy {
 public:
  AgentPolicy(std::string spec, std::vector<std::shared_ptr<const AgentModel>> members, double noise, int threads,
              const DomainContext& domains)
      : spec_(std::move(spec)),
        members_(std::move(members)),
        noise_(noise),
        threads_(threads),
        domains_(domains.num_domains()) {
    for (const auto& m : members_)
      if (m->history() != members_.front()->history())
        throw PolicyError(fmt::format("policy '{}': ensemble members read different histories ({} and {} steps)", spec_,
                                      members_.front()->history(), m->history()));
  }

  std::string name() const override { return spec_; }

  void begin_episode(std::int64_t episode_id, std::uint64_t seed) override {
    episodes_.insert_or_assign(episode_id, start_episode(seed));
  }
  void end_episode(std::int64_t episode_id) override { episodes_.erase(episode_id); }

  void act(const ActBatch& batch, std::span<double> weights) override {
    const int D = domains_, od = obs::dim(D), H = members_.front()->history();
    if (batch.obs_dim != od)
      throw PolicyError(fmt::format("policy '{}': observations of {} floats do not fit {} domains ({} expected)", spec_,
                                    batch.obs_dim, D, od));
    if (weights.size() != static_cast<size_t>(batch.batch) * D)
      throw PolicyError(fmt::format("policy '{}': weights buffer of {} for {} rows of {} domains", spec_,
                                    weights.size(), batch.batch, D));
    std::vector<float> histories(static_cast<size_t>(batch.batch) * H * od);  // (B, H, obs_dim)
    for (int b = 0; b < batch.batch; ++b) {
      auto row = batch.observations.subspan(static_cast<size_t>(b) * od, od);
      auto& ep = episode(batch.episode_ids[b]);
      remember(ep, batch.steps[b], row, H);
      fill_history(ep, H, od, histories.data() + static_cast<size_t>(b) * H * od);
    }
    const auto logits = [&] {
      ThreadScope threads(threads_);
      return ensemble_logits(histories, batch.batch, D);
    }();
    for (int b = 0; b < batch.batch; ++b) {
      auto& ep = episode(batch.episode_ids[b]);
      std::normal_distribution<double> normal(0.0, 1.0);
      std::vector<double> z(static_cast<size_t>(D));
      for (int d = 0; d < D; ++d)
        z[d] = logits[static_cast<size_t>(b) * D + d] + (noise_ > 0 ? noise_ * normal(ep.rng) : 0.0);
      softmax_into(z, weights.subspan(static_cast<size_t>(b) * D, static_cast<size_t>(D)));
    }
  }

 private:
  struct Episode {
    std::vector<std::pair<std::int32_t, std::vector<float>>> history;  // (step, observation), oldest first
    std::mt19937_64 rng;
  };

  static Episode start_episode(std::uint64_t seed) {
    return {{}, std::mt19937_64(derive_seed(seed, kStreamAgentNoise))};
  }

  Episode& episode(std::int64_t id) {
    auto it = episodes_.find(id);
    if (it == episodes_.end())  // resumed mid-episode: no begin_episode call
      it = episodes_.emplace(id, start_episode(static_cast<std::uint64_t>(id))).first;
    return it->second;
  }

  // A repeated or earlier step (a retried round) replaces what came after it.
  static void remember(Episode& ep, std::int32_t step, std::span<const float> row, int H) {
    while (!ep.history.empty() && ep.history.back().first >= step) ep.history.pop_back();
    ep.history.emplace_back(step, std::vector<float>(row.begin(), row.end()));
    if (static_cast<int>(ep.history.size()) > H) ep.history.erase(ep.history.begin());
  }

  // H rows oldest first; before the first remembered step, repeat it (as in training).
  static void fill_history(const Episode& ep, int H, int od, float* out) {
    const int have = static_cast<int>(ep.history.size());
    for (int h = 0; h < H; ++h) {
      const auto& src = ep.history[static_cast<size_t>(std::max(0, have - H + h))].second;
      std::copy(src.begin(), src.end(), out + static_cast<size_t>(h) * od);
    }
  }

  // An ensemble acts with its members' mean logits (a product of their mixtures): members
  // trained on other seeds err in different directions, and the mean errs less.
  std::vector<float> ensemble_logits(std::span<const float> histories, int batch, int D) const {
    auto sum = members_.front()->mean_logits(histories, batch, D);
    for (size_t m = 1; m < members_.size(); ++m) {
      const auto more = members_[m]->mean_logits(histories, batch, D);
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += more[i];
    }
    for (auto& x : sum) x /= static_cast<float>(members_.size());
    return sum;
  }

  std::string spec_;
  std::vector<std::shared_ptr<const AgentModel>> members_;
  double noise_;
  int threads_;
  int domains_;
  std::map<std::int64_t, Episode> episodes_;
};

}  // namespace

std::unique_ptr<Policy> make_agent_policy(const PolicySpec& agent, const DomainContext& domains,
                                          const PolicySettings& settings) {
  const std::string spec = to_string(agent);
  if (agent.kind != PolicyKind::kAgent || agent.checkpoints.empty())
    throw PolicyError(
        fmt::format("policy '{}': no checkpoint: write agent:<checkpoint>[+<checkpoint>...][?noise=<std>], as in "
                    "agent:runs/demo/agent.pt?noise=0.3",
                    spec));
  const double noise = agent.noise.value_or(settings.agent_noise);
  if (domains.num_domains() < 1) throw PolicyError(fmt::format("policy '{}': the domain space is empty", spec));
  std::vector<std::shared_ptr<const AgentModel>> members;
  for (const auto& member : agent.checkpoints)
    members.push_back(std::make_shared<const AgentModel>(AgentModel::load(member)));
  return std::make_unique<AgentPolicy>(spec, std::move(members), noise, settings.agent_threads, domains);
}

std::unique_ptr<Policy> make_agent_policy(std::shared_ptr<const AgentModel> model, const std::string& name,
                                          const DomainContext& domains) {
  if (domains.num_domains() < 1) throw PolicyError(fmt::format("policy '{}': the domain space is empty", name));
  // threads 0: the service sets LibTorch's threads once (set_agent_threads), not per request.
  return std::make_unique<AgentPolicy>(name, std::vector{std::move(model)}, 0.0, 0, domains);
}

void set_agent_threads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

PolicyRegistry agent_policy_registry() {
  return PolicyRegistry::builtin().add(
      PolicyKind::kAgent, [](const PolicySpec& spec, const DomainContext& domains, const PolicySettings& settings) {
        return make_agent_policy(spec, domains, settings);
      });
}

}  // namespace dma
