#include "trainer.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/progress.hpp"
#include "dma/seed.hpp"

namespace dma::agent {
namespace {

// SAC's target entropy, per domain: -1 (the usual -dim(A)), i.e. a logit std near 0.09 when
// the critics are indifferent.
constexpr double kTargetEntropyPerDomain = -1.0;
constexpr double kGradClip = 10.0;
constexpr double kSourceNudge = 0.01;  // source-score step of source_gain_shortfall's finite difference
constexpr double kAlphaLr = 3e-3;      // the temperature must settle within a few hundred steps

struct Batch {
  torch::Tensor state, next_state;  // (B, D, F) normalised tokens now and at the backup's bootstrap row
  torch::Tensor is_target;          // (B, D)
  torch::Tensor action;             // (B, D) stored weights
  torch::Tensor reward;             // (B) scaled n-step rewards: sum of discount^k r(t+k), k < n, within the episode
  torch::Tensor not_done;           // (B) 1: bootstrap from next_state
  torch::Tensor backup_discount;    // (B) discount^(steps the n-step reward covers)
  torch::Tensor return_to_go;       // (B) the stored episode's discounted return from here (scaled)
};

// Exponential moving average for the progress line.
struct Meter {
  double value = 0;
  bool set = false;
  void add(double x) {
    value = set ? 0.95 * value + 0.05 * x : x;
    set = true;
  }
};

double item(const torch::Tensor& t) { return t.item<double>(); }

// Discounted return-to-go of every row within its episode, in scaled reward units (rows of
// an episode are contiguous and in step order in a Group).
torch::Tensor returns_to_go(const Group& g, double mean, double scale, double discount) {
  const auto r = ((g.rewards - mean) / scale).contiguous();
  const auto ep = g.episode.contiguous();
  auto out = torch::empty_like(r);
  const float* rp = r.data_ptr<float>();
  const std::int64_t* e = ep.data_ptr<std::int64_t>();
  float* o = out.data_ptr<float>();
  double acc = 0;
  for (std::int64_t i = r.size(0) - 1; i >= 0; --i) {
    if (i + 1 == r.size(0) || e[i + 1] != e[i]) acc = 0;
    acc = rp[i] + discount * acc;
    o[i] = static_cast<float>(acc);
  }
  return out;
}

// n-step backups: for each row, the discounted sum of its episode's next `n` scaled rewards
// (fewer at the episode's end), the row whose next observation the backup bootstraps from,
// and the discount over those steps. A 16-step horizon's rewards swing (a forgetting penalty
// now, refunded when the source recovers): shorter bootstrap chains carry that back sooner.
struct NStep {
  torch::Tensor reward, last_row, discount;
};
NStep n_step_backups(const Group& g, double mean, double scale, double discount, int n) {
  const auto r = ((g.rewards - mean) / scale).contiguous();
  const auto ep = g.episode.contiguous();
  const std::int64_t N = r.size(0);
  NStep out{torch::empty({N}), torch::empty({N}, torch::kLong), torch::empty({N})};
  const float* rp = r.data_ptr<float>();
  const std::int64_t* e = ep.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < N; ++i) {
    double sum = 0, power = 1;
    std::int64_t j = i;
    for (int k = 0; k < n && j < N && e[j] == e[i]; ++k, ++j) {
      sum += power * rp[j];
      power *= discount;
    }
    out.reward[i] = sum;
    out.last_row[i] = j - 1;
    out.discount[i] = power;
  }
  return out;
}

class Trainer {
 public:
  Trainer(AgentState& state, const Dataset& data, const AgentConfig& config, std::uint64_t seed);
  AgentTrainReport run(const TrainPlan& plan);

 private:
  enum class Split { kTrain, kBc };
  const torch::Tensor& rows(const Group& g, Split split) const {
    return split == Split::kBc ? g.bc_rows : g.train_rows;
  }
  Batch sample(Split split);
  Batch gather(size_t group, const torch::Tensor& idx) const;
  torch::Tensor bc_kl(const torch::Tensor& state, const torch::Tensor& is_target, const torch::Tensor& action);
  std::pair<size_t, torch::Tensor> sample_rows(Split split);  // (group, row indices)
  Batch sample_clone();
  void critic_step(const Batch& b, torch::Tensor& e1, torch::Tensor& e2);
  void actor_step(const Batch& b, const torch::Tensor& e1, const torch::Tensor& e2);
  void bc_step();
  torch::Tensor source_gain_shortfall(const Batch& b);
  void soft_update();
  void validate(AgentTrainReport& report);
  double q_gap();
  std::string line() const;

  AgentState& state_;
  const Dataset& data_;
  AgentConfig config_;
  at::Generator gen_;
  std::vector<torch::Tensor> tokens_, next_tokens_;  // normalised, per group
  std::vector<torch::Tensor> returns_;               // (N) per group, see returns_to_go
  std::vector<NStep> n_step_;                        // per group, see n_step_backups
  std::unique_ptr<torch::optim::Adam> actor_opt_, bc_opt_, critic_opt_, alpha_opt_;
  Meter bc_, td_, cql_, actor_, q_, gain_;
  torch::Tensor source_nudge_;  // (F) a kSourceNudge rise of the newest source score, normalised
};

Trainer::Trainer(AgentState& state, const Dataset& data, const AgentConfig& config, std::uint64_t seed)
    : state_(state),
      data_(data),
      config_(config),
      gen_(at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, 0xa9e17ULL))) {
  if (state_.rng_state.defined()) gen_.set_state(state_.rng_state);
  for (const auto& g : data_.groups) {
    tokens_.push_back(state_.norm.apply(g.tokens));
    next_tokens_.push_back(state_.norm.apply(g.next_tokens));
    returns_.push_back(returns_to_go(g, state_.reward_mean, state_.reward_scale, config_.discount));
    n_step_.push_back(n_step_backups(g, state_.reward_mean, state_.reward_scale, config_.discount, config_.n_step));
  }
  state_.log_alpha.set_requires_grad(true);
  actor_opt_ =
      std::make_unique<torch::optim::Adam>(state_.actor->parameters(), torch::optim::AdamOptions(config_.actor_lr));
  bc_opt_ = std::make_unique<torch::optim::Adam>(state_.actor->parameters(), torch::optim::AdamOptions(config_.bc_lr));
  auto critic_params = state_.q1->parameters();
  for (const auto& p : state_.q2->parameters()) critic_params.push_back(p);
  critic_opt_ = std::make_unique<torch::optim::Adam>(critic_params, torch::optim::AdamOptions(config_.critic_lr));
  alpha_opt_ = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{state_.log_alpha},
                                                    torch::optim::AdamOptions(kAlphaLr));
  for (auto* m : {state_.q1_target.ptr().get(), state_.q2_target.ptr().get()})
    for (auto& p : m->parameters()) p.set_requires_grad(false);
  source_nudge_ = torch::zeros({state_.shape.in_features});
  const auto source_col = step_feature_column("source_score");  // the newest step's block comes first
  // config.cpp checks agent.actor_features, but continued training acts on the checkpoint's mask.
  if (config_.source_gain > 0 && state_.actor_mask[source_col].item<float>() == 0)
    throw ConfigError(
        fmt::format("agent.source_gain = {} needs an actor that reads source_score, and this checkpoint's "
                    "actor does not: set agent.source_gain=0 to continue it, or train a new agent",
                    config_.source_gain));
  source_nudge_[source_col] = kSourceNudge / state_.norm.std[source_col].item<double>();
}

Batch Trainer::gather(size_t group, const torch::Tensor& idx) const {
  const auto& g = data_.groups[group];
  const auto& ns = n_step_[group];
  const auto last = ns.last_row.index_select(0, idx);
  return {tokens_[group].index_select(0, idx), next_tokens_[group].index_select(0, last),
          g.is_target.index_select(0, idx),    g.actions.index_select(0, idx),
          ns.reward.index_select(0, idx),      g.not_done.index_select(0, last),
          ns.discount.index_select(0, idx),    returns_[group].index_select(0, idx)};
}

// A batch from one group (domain count), the group drawn in proportion to its rows.
std::pair<size_t, torch::Tensor> Trainer::sample_rows(Split split) {
  std::int64_t total = 0;
  for (const auto& g : data_.groups) total += rows(g, split).size(0);
  auto pick = static_cast<std::int64_t>(torch::rand({1}, gen_).item<double>() * static_cast<double>(total));
  size_t gi = 0;
  while (gi + 1 < data_.groups.size() && pick >= rows(data_.groups[gi], split).size(0))
    pick -= rows(data_.groups[gi++], split).size(0);
  const auto& r = rows(data_.groups[gi], split);
  return {gi, r.index_select(0, torch::randint(r.size(0), {config_.batch_size}, gen_, torch::kLong))};
}

Batch Trainer::sample(Split split) {
  const auto [gi, idx] = sample_rows(split);
  return gather(gi, idx);
}

// KL(stored weights || softmax(mean logits)): cross-entropy minus the data's own entropy, so
// a perfect clone scores 0 whatever the stored weights are.
torch::Tensor Trainer::bc_kl(const torch::Tensor& state, const torch::Tensor& is_target, const torch::Tensor& action) {
  auto logq = torch::log_softmax(state_.actor_logits(state, is_target), /*dim=*/-1);
  return (torch::xlogy(action, action) - action * logq).sum(/*dim=*/-1).mean();
}

// The best episodes' rows to clone.
Batch Trainer::sample_clone() {
  const auto [gi, idx] = sample_rows(Split::kBc);
  return gather(gi, idx);
}

// With agent.source_gain = k > 0, the squared shortfall of the actor's d(target share)/d(source
// score) below k, by a finite difference at each state of the batch. Under the budget score
// more source left never calls for less target, but the collected walks say the opposite (a
// walk that has spent more keeps spending), and an actor that learns that from one
// space overspends on a space that forgets faster. k is a prior: the controller's least gain.
torch::Tensor Trainer::source_gain_shortfall(const Batch& b) {
  auto share = [&](const torch::Tensor& s) {
    return (torch::softmax(state_.actor_logits(s, b.is_target), -1) * b.is_target).sum(-1);
  };
  const auto slope = (share(b.state + source_nudge_) - share(b.state)) / kSourceNudge;
  const auto shortfall = torch::relu(config_.source_gain - slope).pow(2).mean();
  gain_.add(item(shortfall));
  return shortfall;
}

void Trainer::bc_step() {
  auto b = sample_clone();
  auto kl = bc_kl(b.state, b.is_target, b.action);
  auto loss = config_.source_gain > 0 ? kl + source_gain_shortfall(b) : kl;
  bc_opt_->zero_grad();
  loss.backward();
  torch::nn::utils::clip_grad_norm_(state_.actor->parameters(), kGradClip);
  bc_opt_->step();
  bc_.add(item(kl));
}

void Trainer::critic_step(const Batch& b, torch::Tensor& e1, torch::Tensor& e2) {
  const int N = config_.n_sampled_actions;
  const auto B = b.state.size(0), D = b.action.size(1);
  torch::Tensor y, acts, dens;
  {
    torch::NoGradGuard no_grad;
    // The agent acts with its mean; as in TD3, the backup adds clipped noise to the mean
    // logits so the critics value a neighbourhood of it (target policy smoothing).
    auto mu2 = state_.actor_logits(b.next_state, b.is_target);
    const double sd = config_.target_noise;
    auto noise = (torch::randn(mu2.sizes(), gen_) * sd).clamp(-2 * sd, 2 * sd);
    auto a2 = torch::softmax(mu2 + noise, /*dim=*/-1).unsqueeze(1);  // (B, 1, D)
    auto qt = torch::min(state_.q1_target->q(state_.q1_target->encode(b.next_state), b.is_target, a2),
                         state_.q2_target->q(state_.q2_target->encode(b.next_state), b.is_target, a2))
                  .squeeze(1);
    y = b.reward + b.backup_discount * b.not_done * qt;
    if (config_.cql_alpha > 0) {
      // CQL(H): logsumexp of Q over uniform logits and current-policy samples at o and o',
      // each weighted by its proposal density (importance sampling).
      auto [lp, logp] = state_.actor->sample(state_.actor_logits(b.state, b.is_target), N, gen_);
      auto [ln, logn] = state_.actor->sample(mu2, N, gen_);
      auto [lu, logu] = uniform_logits(static_cast<int>(B), N, static_cast<int>(D), config_.logit_box, gen_);
      acts = torch::softmax(torch::cat({lu, lp, ln}, /*dim=*/1), /*dim=*/-1);  // (B, 3N, D)
      dens = torch::cat({torch::full({B, N}, logu), logp, logn}, /*dim=*/1);   // (B, 3N)
    }
  }
  e1 = state_.q1->encode(b.state);
  e2 = state_.q2->encode(b.state);
  auto qd1 = state_.q1->q(e1, b.is_target, b.action.unsqueeze(1)).squeeze(1);
  auto qd2 = state_.q2->q(e2, b.is_target, b.action.unsqueeze(1)).squeeze(1);
  auto td = torch::mse_loss(qd1, y) + torch::mse_loss(qd2, y);
  auto loss = td;
  if (config_.cql_alpha > 0) {
    // Calibrated (Cal-QL): a sampled action is not pushed below the return the stored
    // episode earned from this state, so Q cannot run away downwards through the backups.
    auto sampled = [&](Critic& q, const torch::Tensor& e) {
      auto v = q->q(e, b.is_target, acts);  // (B, 3N)
      return config_.cql_calibrate ? torch::max(v, b.return_to_go.unsqueeze(1)) : v;
    };
    auto gap1 = torch::logsumexp(sampled(state_.q1, e1) - dens, /*dim=*/1).mean() - qd1.mean();
    auto gap2 = torch::logsumexp(sampled(state_.q2, e2) - dens, /*dim=*/1).mean() - qd2.mean();
    auto cql = gap1 + gap2;
    loss = loss + config_.cql_alpha * cql;
    cql_.add(0.5 * item(cql));
  }
  critic_opt_->zero_grad();
  loss.backward();
  torch::nn::utils::clip_grad_norm_(state_.q1->parameters(), kGradClip);
  torch::nn::utils::clip_grad_norm_(state_.q2->parameters(), kGradClip);
  critic_opt_->step();
  td_.add(0.5 * item(td));
  q_.add(item(qd1.mean()));
}

// SAC-style: maximise min(Q1, Q2) at reparameterised samples, with the learned entropy
// temperature, plus (TD3+BC) a cloning term on the best episodes; Q is divided by its mean
// magnitude so the cloning weight means the same whatever the reward scale.
void Trainer::actor_step(const Batch& b, const torch::Tensor& e1, const torch::Tensor& e2) {
  const auto D = static_cast<double>(b.action.size(1));
  auto [logits, logp] = state_.actor->sample(state_.actor_logits(b.state, b.is_target), 1, gen_);
  auto a = torch::softmax(logits, /*dim=*/-1);
  auto q = torch::min(state_.q1->q(e1.detach(), b.is_target, a), state_.q2->q(e2.detach(), b.is_target, a)).squeeze(1);
  auto lam = 1.0 / std::max(item(q.abs().mean()), 1.0);
  auto logp_d = logp.squeeze(1) / D;
  auto loss = -lam * q.mean() + state_.log_alpha.exp().detach() * logp_d.mean();
  if (config_.actor_bc_weight > 0) {
    auto bb = sample_clone();
    loss = loss + config_.actor_bc_weight * bc_kl(bb.state, bb.is_target, bb.action);
  }
  if (config_.source_gain > 0) loss = loss + source_gain_shortfall(b);
  actor_opt_->zero_grad();
  loss.backward();
  torch::nn::utils::clip_grad_norm_(state_.actor->parameters(), kGradClip);
  actor_opt_->step();
  auto alpha_loss = -(state_.log_alpha * (logp_d.detach() + kTargetEntropyPerDomain)).mean();
  alpha_opt_->zero_grad();
  alpha_loss.backward();
  alpha_opt_->step();
  actor_.add(item(loss));
}

void Trainer::soft_update() {
  torch::NoGradGuard no_grad;
  const double tau = config_.tau;
  auto update = [tau](torch::nn::Module& target, const torch::nn::Module& source) {
    auto t = target.parameters();
    auto src = source.parameters();
    for (size_t i = 0; i < t.size(); ++i) t[i].mul_(1 - tau).add_(src[i], tau);
  };
  update(*state_.q1_target, *state_.q1);
  update(*state_.q2_target, *state_.q2);
}

void Trainer::validate(AgentTrainReport& report) {
  torch::NoGradGuard no_grad;
  double kl = 0, td = 0;
  std::int64_t n_kl = 0, n_td = 0;
  for (size_t g = 0; g < data_.groups.size(); ++g) {
    const auto& grp = data_.groups[g];
    if (grp.val_bc_rows.size(0) > 0) {
      auto b = gather(g, grp.val_bc_rows);
      kl += item(bc_kl(b.state, b.is_target, b.action)) * static_cast<double>(grp.val_bc_rows.size(0));
      n_kl += grp.val_bc_rows.size(0);
    }
    if (grp.val_rows.size(0) > 0) {
      auto b = gather(g, grp.val_rows);
      auto a2 = torch::softmax(state_.actor_logits(b.next_state, b.is_target), /*dim=*/-1).unsqueeze(1);
      auto qt = torch::min(state_.q1_target->q(state_.q1_target->encode(b.next_state), b.is_target, a2),
                           state_.q2_target->q(state_.q2_target->encode(b.next_state), b.is_target, a2))
                    .squeeze(1);
      auto y = b.reward + b.backup_discount * b.not_done * qt;
      auto q = state_.q1->q(state_.q1->encode(b.state), b.is_target, b.action.unsqueeze(1)).squeeze(1);
      td += item((q - y).pow(2).sum());
      n_td += grp.val_rows.size(0);
    }
  }
  report.val_bc_loss = n_kl ? kl / static_cast<double>(n_kl) : 0.0;
  report.val_td_loss = n_td ? td / static_cast<double>(n_td) : 0.0;
}

// Mean over training states of min Q at the stored action minus min Q at uniform-logit
// actions: positive when the critics rank the data above random mixtures.
double Trainer::q_gap() {
  torch::NoGradGuard no_grad;
  double sum = 0;
  std::int64_t n = 0;
  for (size_t g = 0; g < data_.groups.size(); ++g) {
    const auto& rows = data_.groups[g].train_rows;
    if (rows.size(0) == 0) continue;
    auto b = gather(g, rows.slice(0, 0, std::min<std::int64_t>(rows.size(0), 2048)));
    auto e1 = state_.q1->encode(b.state), e2 = state_.q2->encode(b.state);
    auto qmin = [&](const torch::Tensor& acts) {
      return torch::min(state_.q1->q(e1, b.is_target, acts), state_.q2->q(e2, b.is_target, acts));
    };
    auto [lu, logu] = uniform_logits(static_cast<int>(b.state.size(0)), 16, static_cast<int>(b.action.size(1)),
                                     config_.logit_box, gen_);
    (void)logu;
    sum += item((qmin(b.action.unsqueeze(1)).squeeze(1) - qmin(torch::softmax(lu, /*dim=*/-1)).mean(/*dim=*/1)).sum());
    n += b.state.size(0);
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

std::string Trainer::line() const {
  return fmt::format("bc {:.4f} td {:.4f} cql {:.3f} actor {:.3f} Q {:.2f} std {:.3f}{}", bc_.value, td_.value,
                     cql_.value, actor_.value, q_.value, std::exp(item(state_.actor->log_std())),
                     config_.source_gain > 0 ? fmt::format(" gain shortfall {:.3f}", gain_.value) : "");
}

AgentTrainReport Trainer::run(const TrainPlan& plan) {
  AgentTrainReport report;
  const bool can_clone =
      std::any_of(data_.groups.begin(), data_.groups.end(), [](const Group& g) { return g.bc_rows.size(0) > 0; });
  const int bc_steps = can_clone ? plan.bc_steps : 0;
  const int total = bc_steps + plan.cql_steps;
  Progress progress("train-agent", total, "steps", plan.progress_seconds);
  const int val_every = std::max(1, total / 10);
  for (int step = 0; step < total; ++step) {
    const bool cloning = step < bc_steps;
    if (cloning) bc_step();
    auto b = sample(Split::kTrain);
    torch::Tensor e1, e2;
    critic_step(b, e1, e2);
    if (!cloning) actor_step(b, e1, e2);
    soft_update();
    if ((step + 1) % val_every == 0) validate(report);
    progress.update(step + 1,
                    fmt::format("{} | val bc {:.4f} td {:.4f}", line(), report.val_bc_loss, report.val_td_loss));
  }
  validate(report);
  report.q_data_minus_random = q_gap();
  report.bc_loss = bc_.value;
  report.critic_loss = td_.value;
  report.actor_loss = actor_.value;
  progress.finish(fmt::format("{} | val bc {:.4f} val td {:.4f} Q(data)-Q(random) {:.3f}", line(), report.val_bc_loss,
                              report.val_td_loss, report.q_data_minus_random));
  state_.rng_state = gen_.get_state();
  state_.log_alpha = state_.log_alpha.detach();
  return report;
}

}  // namespace

AgentTrainReport train_on(AgentState& state, const Dataset& data, const AgentConfig& config, const TrainPlan& plan) {
  Trainer trainer(state, data, config, plan.seed);
  return trainer.run(plan);
}

}  // namespace dma::agent
