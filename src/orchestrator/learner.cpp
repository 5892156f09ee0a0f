// The learner: the single brain. Each round it makes every policy decision in one batched
// call per policy, scatters the weights, gathers the workers' records, turns them into
// transitions and flushes them to the store.
#include "learner.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "dma/orchestrator.hpp"
#include "dma/progress.hpp"
#include "dma/proxy.hpp"
#include "dma/sampler.hpp"
#include "dma/score.hpp"
#include "dma/seed.hpp"
#include "protocol.hpp"

namespace dma {

RoundTimes& RoundTimes::operator+=(const RoundTimes& o) {
  decide += o.decide, exchange += o.exchange, absorb += o.absorb;
  write += o.write, seal += o.seal, flush += o.flush;
  return *this;
}

namespace {

/// A running episode as the learner sees it. D domains.
struct Live {
  EpisodePlan plan;
  std::size_t store_index = 0;
  Policy* policy = nullptr;
  int rank = 1, slot = 0;
  bool active = true;
  obs::Tracker track;           // step, last weights, losses now
  std::vector<float> obs;       // (obs_dim) o_t
  std::vector<double> weights;  // (D) a_t, decided this round
  double episode_return = 0;
  std::int64_t tokens = 0;
  double seconds = 0;
};

/// Adds the seconds since it was made (or last lapped) to one part of RoundTimes.
class Stopwatch {
 public:
  void lap(double& into) {
    const auto now = std::chrono::steady_clock::now();
    into += std::chrono::duration<double>(now - t0_).count();
    t0_ = now;
  }

 private:
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace

struct Generation::Impl {
  Impl(const Config& config, const DomainContext& domains, StoreWriter& store, PolicySet& policies,
       Collective& collective, WorkerErrorReader read_worker_error)
      : config_(config),
        store_(store),
        policies_(policies),
        collective_(collective),
        read_worker_error_(std::move(read_worker_error)),
        z_{domains.num_domains(), config.orchestrator.slots},
        frame_{domains.fields, domains.token_shares, store.header().base_eval_loss, config.train.horizon} {}

  void start(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes);
  std::vector<Transition> continue_from(Live& l, const std::vector<Transition>& prefix) const;
  std::int64_t round();
  void decide();
  void exchange(std::vector<double>& records);
  void check_flags(const std::vector<double>& records);
  void absorb(const std::vector<double>& records, std::vector<Transition>& rows);
  void seal_finished();

  const Config& config_;
  StoreWriter& store_;
  PolicySet& policies_;
  Collective& collective_;
  WorkerErrorReader read_worker_error_;
  protocol::Sizes z_;
  obs::EpisodeFrame frame_;
  std::vector<Live> live_;
  std::vector<EpisodeEnd> ending_;  // episodes this round ends
  std::int64_t round_tokens_ = 0;
  RoundTimes times_;
};

void Generation::Impl::start(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes) {
  if (plans.size() > static_cast<size_t>((collective_.size() - 1) * z_.slots))
    throw Error(fmt::format("learner: {} episodes do not fit {} workers of {} slots", plans.size(),
                            collective_.size() - 1, z_.slots));
  std::vector<EpisodeRecord> records;
  std::vector<Transition> shared_rows;
  live_.clear();
  for (size_t i = 0; i < plans.size(); ++i) {
    Live l;
    l.plan = plans[i];
    l.policy = policies_.at(to_string(plans[i].policy)).get();
    l.rank = 1 + static_cast<int>(i) / z_.slots;
    l.slot = static_cast<int>(i) % z_.slots;
    l.track = obs::Tracker(frame_);
    l.obs = l.track.observation();
    if (l.plan.parent >= 0) {
      const auto prefix = prefixes.find(l.plan.parent);
      if (prefix == prefixes.end())
        throw Error(fmt::format("learner: branch {} starts from episode {}, whose rows were not given (a caller bug)",
                                l.plan.id, l.plan.parent));
      auto copies = continue_from(l, prefix->second);
      shared_rows.insert(shared_rows.end(), std::make_move_iterator(copies.begin()),
                         std::make_move_iterator(copies.end()));
    }
    const auto seed = trajectory_seed(config_.run.seed, l.plan.seed_id);
    records.push_back({l.plan.id, seed, 0, 0, EpisodeStatus::kRunning, l.rank, to_string(l.plan.policy), 0.0f, 0,
                       l.plan.parent, l.plan.branch_step});
    l.policy->begin_episode(l.plan.id, trajectory_seed(config_.run.seed, l.plan.seed_id, kStreamPolicy));
    live_.push_back(std::move(l));
  }
  const auto indices = store_.begin_episodes(records);
  for (size_t i = 0; i < live_.size(); ++i) live_[i].store_index = indices[i];
  if (!shared_rows.empty()) store_.write(shared_rows);
  store_.flush();
}

// A branch takes over its parent's first branch_step rows (copied under its own id) and the
// learner's view of the episode after them; its worker loads the parent's kept state.
std::vector<Transition> Generation::Impl::continue_from(Live& l, const std::vector<Transition>& prefix) const {
  if (static_cast<int>(prefix.size()) < l.plan.branch_step)
    throw Error(fmt::format("learner: branch {} needs {} rows of episode {}, which has {}", l.plan.id,
                            l.plan.branch_step, l.plan.parent, prefix.size()));
  std::vector<Transition> copies(prefix.begin(), prefix.begin() + l.plan.branch_step);
  for (auto& t : copies) {
    const std::vector<double> weights(t.action.begin(), t.action.end());
    l.track.advance(weights, t.eval_loss);
    l.episode_return += t.reward;
    l.tokens = t.train_tokens;
    l.seconds = t.wall_seconds;
    t.episode_id = l.plan.id;
    t.timeout = false;
  }
  l.obs = l.track.observation();
  return copies;
}

void Generation::Impl::decide() {
  // One batched act per policy over its running episodes (central inference).
  std::map<Policy*, std::vector<Live*>> groups;
  for (auto& l : live_)
    if (l.active) groups[l.policy].push_back(&l);
  const int obs_dim = obs::dim(z_.domains);
  for (auto& [policy, members] : groups) {
    std::vector<std::int64_t> ids;
    std::vector<std::int32_t> steps;
    std::vector<float> observations;
    for (Live* l : members) {
      ids.push_back(l->plan.id);
      steps.push_back(l->track.step());
      observations.insert(observations.end(), l->obs.begin(), l->obs.end());
    }
    std::vector<double> weights(members.size() * static_cast<size_t>(z_.domains));
    policy->act({static_cast<int>(members.size()), obs_dim, ids, steps, observations}, weights);
    for (size_t b = 0; b < members.size(); ++b) {
      members[b]->weights.assign(weights.begin() + static_cast<long>(b) * z_.domains,
                                 weights.begin() + static_cast<long>(b + 1) * z_.domains);
      try {
        validate_weights(members[b]->weights, static_cast<size_t>(z_.domains));
      } catch (const Error& e) {
        throw PolicyError(fmt::format("policy '{}' produced invalid weights for episode {}: {}", policy->name(),
                                      members[b]->plan.id, e.what()));
      }
    }
  }
}

void Generation::Impl::exchange(std::vector<double>& records) {
  const int size = collective_.size();
  std::vector<double> commands(static_cast<size_t>(size * z_.command_block()), 0.0);
  for (int r = 1; r < size; ++r) {
    std::span<double> block(commands.data() + static_cast<size_t>(r * z_.command_block()),
                            static_cast<size_t>(z_.command_block()));
    block[0] = protocol::kStep;
    for (int s = 0; s < z_.slots; ++s) protocol::write_command(block, z_, s, {});
  }
  for (const auto& l : live_) {
    if (!l.active) continue;
    std::span<double> block(commands.data() + static_cast<size_t>(l.rank * z_.command_block()),
                            static_cast<size_t>(z_.command_block()));
    const int step = l.track.step();
    protocol::write_command(
        block, z_, l.slot,
        {l.plan.id, l.plan.seed_id, step, l.plan.parent, l.plan.keep_state_after == step + 1, l.weights});
  }
  std::vector<double> own(static_cast<size_t>(z_.command_block()));
  collective_.scatter(commands, own, 0);
  std::vector<double> own_record(static_cast<size_t>(z_.record_block()), 0.0);
  records.assign(static_cast<size_t>(size * z_.record_block()), 0.0);
  collective_.gather(own_record, records, 0);
}

void Generation::Impl::check_flags(const std::vector<double>& records) {
  for (int r = 1; r < collective_.size(); ++r) {
    if (records[static_cast<size_t>(r * z_.record_block() + 1)] != 0.0) {
      const auto text = read_worker_error_(r);
      store_.interrupt_running();
      throw Error(fmt::format("rank {}: {}", r, text));
    }
    if (records[static_cast<size_t>(r * z_.record_block())] != 0.0) request_stop_from_worker();
  }
}

void Generation::Impl::absorb(const std::vector<double>& records, std::vector<Transition>& rows) {
  round_tokens_ = 0;
  for (auto& l : live_) {
    if (!l.active) continue;
    std::span<const double> block(records.data() + static_cast<size_t>(l.rank * z_.record_block()),
                                  static_cast<size_t>(z_.record_block()));
    const auto rec = protocol::read_record(block, z_, l.slot);
    if (rec.episode_id != l.plan.id || rec.step != l.track.step())
      throw Error(fmt::format("rank {}: record for episode {} step {} where {} step {} was expected (protocol bug)",
                              l.rank, rec.episode_id, rec.step, l.plan.id, l.track.step()));
    l.tokens += rec.tokens;
    l.seconds += rec.seconds;
    round_tokens_ += rec.tokens;
    if (rec.status != protocol::kOk) {
      ending_.push_back({l.store_index, EpisodeStatus::kFailed, l.track.step(), static_cast<float>(l.episode_return)});
      l.policy->end_episode(l.plan.id);
      l.active = false;
      continue;
    }
    const FieldScores before = field_scores(l.track.losses(), frame_.base_losses, frame_.fields);
    const FieldScores after = field_scores(rec.eval_loss, frame_.base_losses, frame_.fields);
    l.track.advance(l.weights, rec.eval_loss);
    Transition t;
    t.episode_id = l.plan.id;
    t.step = l.track.step() - 1;
    t.observation = std::move(l.obs);
    l.obs = l.track.observation();
    t.next_observation = l.obs;
    t.action = l.track.prev_weights();
    t.reward = static_cast<float>(reward(before, after, config_.eval));
    t.timeout = l.track.step() == config_.train.horizon;
    t.eval_loss = l.track.losses();
    t.source_score = static_cast<float>(after.source);
    t.target_score = static_cast<float>(after.target);
    t.math_accuracy = static_cast<float>(rec.math_accuracy);
    t.train_tokens = l.tokens;
    t.wall_seconds = static_cast<float>(l.seconds);
    l.episode_return += t.reward;
    rows.push_back(std::move(t));
  }
}

// Failed episodes (found by absorb) and completed ones end in one store call.
void Generation::Impl::seal_finished() {
  for (auto& l : live_) {
    if (l.active && l.track.step() == config_.train.horizon) {
      ending_.push_back(
          {l.store_index, EpisodeStatus::kComplete, l.track.step(), static_cast<float>(l.episode_return)});
      l.policy->end_episode(l.plan.id);
      l.active = false;
    }
  }
  store_.end_episodes(ending_);
  ending_.clear();
}

std::int64_t Generation::Impl::round() {
  Stopwatch clock;
  decide();
  clock.lap(times_.decide);
  std::vector<double> records;
  exchange(records);
  clock.lap(times_.exchange);
  check_flags(records);
  std::vector<Transition> rows;
  absorb(records, rows);
  clock.lap(times_.absorb);
  store_.write(rows);
  clock.lap(times_.write);
  seal_finished();
  clock.lap(times_.seal);
  store_.flush();
  clock.lap(times_.flush);
  return static_cast<std::int64_t>(rows.size());
}

Generation::Generation(const Config& config, const DomainContext& domains, StoreWriter& store, PolicySet& policies,
                       Collective& collective, WorkerErrorReader read_worker_error)
    : impl_(std::make_unique<Impl>(config, domains, store, policies, collective, std::move(read_worker_error))) {}
Generation::~Generation() = default;
Generation::Generation(Generation&&) noexcept = default;
Generation& Generation::operator=(Generation&&) noexcept = default;

void Generation::start(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes) {
  impl_->start(plans, prefixes);
}
std::int64_t Generation::round() { return impl_->round(); }
bool Generation::done() const {
  return std::none_of(impl_->live_.begin(), impl_->live_.end(), [](const Live& l) { return l.active; });
}
std::int64_t Generation::tokens_this_round() const { return impl_->round_tokens_; }
const RoundTimes& Generation::times() const { return impl_->times_; }

std::vector<EpisodePlan> pending_plans(const std::vector<EpisodePlan>& plans, const StoreWriter& store,
                                       const std::string& store_path, std::uint64_t run_seed) {
  std::map<std::int64_t, const EpisodeRecord*> finished;
  for (const auto& e : store.episodes())
    if (e.status == EpisodeStatus::kComplete || e.status == EpisodeStatus::kFailed) finished[e.id] = &e;
  std::vector<EpisodePlan> out;
  for (const auto& p : plans) {
    const auto it = finished.find(p.id);
    if (it == finished.end()) {
      out.push_back(p);
    } else if (const EpisodeRecord& e = *it->second; e.parent != p.parent || e.branch_step != p.branch_step) {
      throw ConfigError(fmt::format(
          "'{}' holds episode {} as a {} (parent {}, branch step {}), but this run plans it with parent {}, branch "
          "step {}: resume with the collect.branches and collect.branch_step that wrote the file, or write to a "
          "new run.dir",
          store_path, p.id, e.parent >= 0 ? "tree branch" : "root or flat trajectory", e.parent, e.branch_step,
          p.parent, p.branch_step));
    } else if (e.policy != to_string(p.policy) || e.seed != trajectory_seed(run_seed, p.seed_id)) {
      // Episode ids number (policy, seed) pairs: another policy list or other seeds would
      // count old trajectories as this run's.
      throw ConfigError(
          fmt::format("'{}' holds episode {} of policy '{}' (seed {}), but this run plans '{}' (seed {}) "
                      "for it: resume with the policies and seeds (run.seed, *.seed_offset) that wrote "
                      "the file, or write to a new run.dir",
                      store_path, p.id, e.policy, e.seed, to_string(p.policy), trajectory_seed(run_seed, p.seed_id)));
    }
  }
  return out;
}

StoreHeader make_store_header(const RunContext& ctx) {
  StoreHeader h;
  h.domain_names = ctx.space.domain_names();
  h.domain_fields = ctx.space.fields();
  h.base_eval_loss = read_base_info(ctx.base_path()).eval_loss;
  h.token_shares = ctx.space.token_shares();
  h.obs_layout = obs::layout(h.domain_names);
  h.horizon = ctx.config.train.horizon;
  h.space_fingerprint = ctx.space.fingerprint();
  h.config_ini = to_ini(ctx.config);
  return h;
}

StoreWriter open_store(const RunContext& ctx, const std::string& path, bool resume) {
  const StoreHeader header = make_store_header(ctx);
  if (resume && std::filesystem::exists(path)) return StoreWriter::resume(path, header);
  if (std::filesystem::exists(path))
    throw StoreError(fmt::format("store '{}' exists: pass --resume to continue it, or choose another run.dir", path));
  return StoreWriter::create(path, header);
}

DomainContext domain_context(const RunContext& ctx) {
  return {ctx.space.domain_names(), ctx.space.fields(), ctx.space.token_shares(), ctx.config.train.horizon};
}

bool run_episodes(RunContext& ctx, StoreWriter& store, const std::vector<EpisodePlan>& plans, const std::string& label,
                  const PrefixRows& prefixes) {
  PolicySet policies;
  const DomainContext domains = domain_context(ctx);
  const PolicySettings settings = policy_settings(ctx.config);
  for (const auto& p : plans)
    if (const std::string name = to_string(p.policy); !policies.count(name))
      policies[name] = ctx.policies.make(p.policy, domains, settings);
  const WorkerErrorReader read_worker_error = [&ctx](int rank) {
    return recv_text(rank, protocol::kWorkerErrorTag, ctx.mpi.comm(), ctx.config.comm.timeout_s, 0);
  };

  const int horizon = ctx.config.train.horizon;
  const size_t per_generation = static_cast<size_t>(ctx.workers() * ctx.config.orchestrator.slots);
  const size_t generations = (plans.size() + per_generation - 1) / per_generation;
  std::int64_t steps_planned = 0;  // a branch runs only the steps after its shared ones
  for (const auto& p : plans) steps_planned += horizon - p.branch_step;
  Progress progress(label, steps_planned, "steps", ctx.config.run.progress_seconds);
  broadcast_phase(ctx, protocol::kPhaseEpisodes);
  std::int64_t steps_done = 0, tokens = 0, episodes_done = 0, rounds = 0;
  RoundTimes busy;
  bool stopped = false;
  for (size_t g = 0; g < generations && !stopped; ++g) {
    const auto first = plans.begin() + static_cast<long>(g * per_generation);
    const auto last = plans.begin() + static_cast<long>(std::min(plans.size(), (g + 1) * per_generation));
    Generation gen(ctx.config, domains, store, policies, *ctx.collective, read_worker_error);
    gen.start(std::vector<EpisodePlan>(first, last), prefixes);
    for (int t = 0; t < horizon && !gen.done(); ++t) {
      steps_done += gen.round();
      ++rounds;
      tokens += gen.tokens_this_round();
      const double tps = static_cast<double>(tokens) / std::max(1e-9, progress.elapsed_seconds());
      progress.update(steps_done, fmt::format("gen {}/{} round {}/{} trajectories {}/{} {:.0f} tok/s", g + 1,
                                              generations, t + 1, horizon, episodes_done, plans.size(), tps));
      if (stop_requested() && t + 1 < horizon) {
        store.interrupt_running();
        stopped = true;
        break;
      }
    }
    episodes_done += last - first;
    busy += gen.times();
    if (stop_requested()) stopped = true;
  }
  // Command kind 0 in every worker's block ends the episode phase.
  const protocol::Sizes z{ctx.space.num_domains(), ctx.config.orchestrator.slots};
  std::vector<double> shutdown(static_cast<size_t>(ctx.mpi.size() * z.command_block()), 0.0);
  std::vector<double> own(static_cast<size_t>(z.command_block()));
  ctx.collective->scatter(shutdown, own, 0);
  progress.finish(fmt::format("{} trajectories{}", episodes_done, stopped ? " (stopped by signal)" : ""));
  if (rounds > 0) {
    // Exchange time is mostly waiting for the workers: the learner's own work is the rest.
    const double own_work = busy.total() - busy.exchange, store_time = busy.write + busy.seal + busy.flush;
    const double wall = progress.elapsed_seconds();
    log_line(
        fmt::format("learner overhead: {:.3f} ms/round (policy {:.3f}, store {:.3f}) = {:.2f}% of {:.1f} ms/round "
                    "over {} rounds on {} ranks",
                    1e3 * own_work / rounds, 1e3 * busy.decide / rounds, 1e3 * store_time / rounds,
                    100.0 * own_work / wall, 1e3 * wall / rounds, rounds, ctx.mpi.size()));
  }
  return !stopped;
}

}  // namespace dma
