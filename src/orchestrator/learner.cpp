// The learner: the single brain. It takes the workers' records as they arrive, turns them
// into transitions for the store and makes the next decisions of those workers' episodes in
// one batched call per policy.
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
  bool active = false;
  obs::Tracker track;           // step, last weights, losses now
  std::vector<float> obs;       // (obs_dim) o_t
  std::vector<double> weights;  // (D) a_t, decided this round
  double episode_return = 0;
  std::int64_t tokens = 0;
  double seconds = 0;

  /// Back to an idle slot of the same worker.
  void vacate() {
    const int r = rank, s = slot;
    *this = Live{};
    rank = r, slot = s;
  }
};

/// Least time between two flushes of rows alone (at a thousand workers a batch comes every few
/// milliseconds; a flush costs about one).
constexpr double kFlushSeconds = 0.1;

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

struct EpisodeRunner::Impl {
  Impl(const Config& config, const DomainContext& domains, StoreWriter& store, PolicySet& policies, StepLink& link,
       WorkerErrorReader read_worker_error)
      : config_(config),
        store_(store),
        policies_(policies),
        link_(link),
        read_worker_error_(std::move(read_worker_error)),
        z_{domains.num_domains(), config.orchestrator.slots},
        frame_{domains.fields, domains.token_shares, store.header().base_eval_loss, config.train.horizon},
        slots_(static_cast<std::size_t>((link.size() - 1) * z_.slots)) {
    for (int r = 1; r < link.size(); ++r)
      for (int s = 0; s < z_.slots; ++s) slot(r, s).rank = r, slot(r, s).slot = s;
  }

  bool run(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes,
           const std::function<void(const BatchReport&)>& on_batch);
  void take_next_plan(Live& slot);
  void start_next_steps(const std::vector<int>& ranks, Stopwatch& clock);
  void register_next_plans();
  std::vector<Transition> continue_from(Live& l, const std::vector<Transition>& prefix) const;
  void decide(const std::vector<int>& ranks);
  void send_commands(const std::vector<int>& ranks);
  void release(int rank);
  void check_flags(const std::vector<int>& ranks);
  void absorb(const std::vector<int>& ranks, std::vector<Transition>& rows);
  void seal_finished(const std::vector<int>& ranks);
  Live& slot(int rank, int s) { return slots_[static_cast<std::size_t>((rank - 1) * z_.slots + s)]; }
  bool busy(int rank) {
    for (int s = 0; s < z_.slots; ++s)
      if (slot(rank, s).active) return true;
    return false;
  }

  const Config& config_;
  StoreWriter& store_;
  PolicySet& policies_;
  StepLink& link_;
  WorkerErrorReader read_worker_error_;
  protocol::Sizes z_;
  obs::EpisodeFrame frame_;
  std::vector<Live> slots_;  // (workers · slots), rank-major
  const std::vector<EpisodePlan>* plans_ = nullptr;
  const PrefixRows* prefixes_ = nullptr;
  std::size_t next_plan_ = 0, registered_ = 0;  // plans taken by a slot / registered in the store
  std::vector<std::size_t> store_index_;        // (plans registered)
  std::vector<std::size_t> placed_indices_;     // store indices taken this batch, and their ranks
  std::vector<std::int32_t> placed_ranks_;
  std::vector<Transition> shared_rows_;  // branches' copied prefixes taken this batch
  std::vector<EpisodeEnd> ending_;       // episodes this batch ends
  std::vector<double> records_;
  std::int64_t batch_tokens_ = 0, ended_ = 0;
  RoundTimes times_;
};

// Plans are registered a worker-set at a time (workers · slots), in plan order: the store's
// blocks follow the plans whatever the rank count, and the rows held in memory stay bounded.
void EpisodeRunner::Impl::register_next_plans() {
  const std::size_t last = std::min(plans_->size(), registered_ + slots_.size());
  std::vector<EpisodeRecord> records;
  for (std::size_t i = registered_; i < last; ++i) {
    const EpisodePlan& p = (*plans_)[i];
    // Rank 0 until a worker takes it (set_ranks).
    records.push_back({p.id, trajectory_seed(config_.run.seed, p.seed_id), 0, 0, EpisodeStatus::kRunning, 0,
                       to_string(p.policy), 0.0f, 0, p.parent, p.branch_step});
  }
  const auto indices = store_.begin_episodes(records);
  store_index_.insert(store_index_.end(), indices.begin(), indices.end());
  registered_ = last;
}

void EpisodeRunner::Impl::take_next_plan(Live& l) {
  l.vacate();
  if (next_plan_ >= plans_->size()) return;
  if (next_plan_ >= registered_) register_next_plans();
  const std::size_t i = next_plan_++;
  l.plan = (*plans_)[i];
  l.store_index = store_index_[i];
  l.policy = policies_.at(to_string(l.plan.policy)).get();
  l.track = obs::Tracker(frame_);
  l.obs = l.track.observation();
  l.active = true;
  if (l.plan.parent >= 0) {
    const auto prefix = prefixes_->find(l.plan.parent);
    if (prefix == prefixes_->end())
      throw Error(fmt::format("learner: branch {} starts from episode {}, whose rows were not given (a caller bug)",
                              l.plan.id, l.plan.parent));
    auto copies = continue_from(l, prefix->second);
    shared_rows_.insert(shared_rows_.end(), std::make_move_iterator(copies.begin()),
                        std::make_move_iterator(copies.end()));
  }
  placed_indices_.push_back(l.store_index);
  placed_ranks_.push_back(l.rank);
  l.policy->begin_episode(l.plan.id, trajectory_seed(config_.run.seed, l.plan.seed_id, kStreamPolicy));
}

// A branch takes over its parent's first branch_step rows (copied under its own id) and the
// learner's view of the episode after them; its worker loads the parent's kept state.
std::vector<Transition> EpisodeRunner::Impl::continue_from(Live& l, const std::vector<Transition>& prefix) const {
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

void EpisodeRunner::Impl::decide(const std::vector<int>& ranks) {
  // One batched act per policy over the running episodes of these workers (central inference).
  std::map<Policy*, std::vector<Live*>> groups;
  for (int r : ranks)
    for (int s = 0; s < z_.slots; ++s)
      if (Live& l = slot(r, s); l.active) groups[l.policy].push_back(&l);
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

void EpisodeRunner::Impl::send_commands(const std::vector<int>& ranks) {
  std::vector<double> block(static_cast<size_t>(z_.command_block()));
  for (int r : ranks) {
    if (!busy(r)) {
      release(r);
      continue;
    }
    block[0] = protocol::kStep;
    for (int s = 0; s < z_.slots; ++s) {
      const Live& l = slot(r, s);
      if (!l.active) {
        protocol::write_command(block, z_, s, {});
        continue;
      }
      const int step = l.track.step();
      protocol::write_command(
          block, z_, s,
          {l.plan.id, l.plan.seed_id, step, l.plan.parent, l.plan.keep_state_after == step + 1, l.weights});
    }
    link_.send(r, block);
  }
}

// Command kind 0 ends the worker's part in this call; it gets no record back.
void EpisodeRunner::Impl::release(int rank) {
  std::vector<double> block(static_cast<size_t>(z_.command_block()), 0.0);
  block[0] = protocol::kShutdownEpisodes;
  link_.release(rank, block);
}

void EpisodeRunner::Impl::check_flags(const std::vector<int>& ranks) {
  for (int r : ranks) {
    if (records_[static_cast<size_t>(r * z_.record_block() + 1)] != 0.0) {
      const auto text = read_worker_error_(r);
      store_.interrupt_running();
      throw Error(fmt::format("rank {}: {}", r, text));
    }
    if (records_[static_cast<size_t>(r * z_.record_block())] != 0.0) request_stop_from_worker();
  }
}

void EpisodeRunner::Impl::absorb(const std::vector<int>& ranks, std::vector<Transition>& rows) {
  batch_tokens_ = 0;
  for (int r : ranks) {
    std::span<const double> block(records_.data() + static_cast<size_t>(r * z_.record_block()),
                                  static_cast<size_t>(z_.record_block()));
    for (int s = 0; s < z_.slots; ++s) {
      Live& l = slot(r, s);
      if (!l.active) continue;
      const auto rec = protocol::read_record(block, z_, s);
      if (rec.episode_id != l.plan.id || rec.step != l.track.step())
        throw Error(fmt::format("rank {}: record for episode {} step {} where {} step {} was expected (protocol bug)",
                                r, rec.episode_id, rec.step, l.plan.id, l.track.step()));
      l.tokens += rec.tokens;
      l.seconds += rec.seconds;
      batch_tokens_ += rec.tokens;
      if (rec.status != protocol::kOk) {
        ending_.push_back(
            {l.store_index, EpisodeStatus::kFailed, l.track.step(), static_cast<float>(l.episode_return)});
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
}

// Failed episodes (found by absorb) and completed ones end in one store call.
void EpisodeRunner::Impl::seal_finished(const std::vector<int>& ranks) {
  for (int r : ranks)
    for (int s = 0; s < z_.slots; ++s) {
      Live& l = slot(r, s);
      if (l.active && l.track.step() == config_.train.horizon) {
        ending_.push_back(
            {l.store_index, EpisodeStatus::kComplete, l.track.step(), static_cast<float>(l.episode_return)});
        l.policy->end_episode(l.plan.id);
        l.active = false;
      }
    }
  ended_ += static_cast<std::int64_t>(ending_.size());
  store_.end_episodes(ending_);
  ending_.clear();
}

// Idle slots of these workers take the next plans; then every running episode of theirs is
// decided and each worker gets its command (or is released when it has none left).
void EpisodeRunner::Impl::start_next_steps(const std::vector<int>& ranks, Stopwatch& clock) {
  for (int r : ranks)
    for (int s = 0; s < z_.slots; ++s)
      if (Live& l = slot(r, s); !l.active) take_next_plan(l);
  if (!placed_indices_.empty()) store_.set_ranks(placed_indices_, placed_ranks_);
  if (!shared_rows_.empty()) store_.write(shared_rows_);
  placed_indices_.clear(), placed_ranks_.clear(), shared_rows_.clear();
  clock.lap(times_.write);
  decide(ranks);
  clock.lap(times_.decide);
  send_commands(ranks);
  clock.lap(times_.exchange);
}

bool EpisodeRunner::Impl::run(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes,
                              const std::function<void(const BatchReport&)>& on_batch) {
  plans_ = &plans, prefixes_ = &prefixes;
  next_plan_ = registered_ = 0;
  store_index_.clear();
  ended_ = 0;
  records_.assign(static_cast<size_t>(link_.size() * z_.record_block()), 0.0);
  for (Live& l : slots_) l.vacate();
  // Every worker takes part: those without a plan are released at once.
  std::vector<int> ranks;
  for (int r = 1; r < link_.size(); ++r) ranks.push_back(r);
  Stopwatch clock;
  start_next_steps(ranks, clock);
  store_.flush();
  clock.lap(times_.flush);
  auto flushed = std::chrono::steady_clock::now();
  bool stopping = false;
  while (link_.awaited() > 0) {
    const std::int64_t ended_before = ended_;
    ranks = link_.receive(records_, kDecisionWindowSeconds);
    clock.lap(times_.exchange);
    check_flags(ranks);
    std::vector<Transition> rows;
    absorb(ranks, rows);
    clock.lap(times_.absorb);
    store_.write(rows);
    clock.lap(times_.write);
    seal_finished(ranks);
    clock.lap(times_.seal);
    stopping = stopping || stop_requested();
    if (stopping) {
      // The steps under way finish and are written; no new ones start.
      for (int r : ranks) release(r);
      clock.lap(times_.exchange);
    } else {
      start_next_steps(ranks, clock);
    }
    // Flushed when episodes end and otherwise at most every kFlushSeconds (live readers see
    // rows that fresh; a kill loses at most the rows since, and --resume reruns their episodes).
    if (const auto now = std::chrono::steady_clock::now();
        ended_ > ended_before || now - flushed >= std::chrono::duration<double>(kFlushSeconds)) {
      store_.flush();
      flushed = now;
      clock.lap(times_.flush);
    }
    if (on_batch)
      on_batch({static_cast<std::int64_t>(rows.size()), batch_tokens_, ended_, static_cast<int>(ranks.size())});
  }
  if (stopping) {
    store_.interrupt_running();
    return false;
  }
  store_.flush();
  clock.lap(times_.flush);
  return true;
}

EpisodeRunner::EpisodeRunner(const Config& config, const DomainContext& domains, StoreWriter& store,
                             PolicySet& policies, StepLink& link, WorkerErrorReader read_worker_error)
    : impl_(std::make_unique<Impl>(config, domains, store, policies, link, std::move(read_worker_error))) {}
EpisodeRunner::~EpisodeRunner() = default;

bool EpisodeRunner::run(const std::vector<EpisodePlan>& plans, const PrefixRows& prefixes,
                        const std::function<void(const BatchReport&)>& on_batch) {
  return impl_->run(plans, prefixes, on_batch);
}
const RoundTimes& EpisodeRunner::times() const { return impl_->times_; }

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
  std::int64_t steps_planned = 0;  // a branch runs only the steps after its shared ones
  for (const auto& p : plans) steps_planned += horizon - p.branch_step;
  Progress progress(label, steps_planned, "steps", ctx.config.run.progress_seconds);
  broadcast_phase(ctx, protocol::kPhaseEpisodes);
  const protocol::Sizes z{ctx.space.num_domains(), ctx.config.orchestrator.slots};
  const auto link = make_mpi_step_link(ctx.mpi, z.command_block(), z.record_block(), ctx.config.comm.timeout_s);
  EpisodeRunner runner(ctx.config, domains, store, policies, *link, read_worker_error);
  std::int64_t steps_done = 0, tokens = 0, ended = 0, batches = 0, records = 0;
  const bool finished = runner.run(plans, prefixes, [&](const BatchReport& b) {
    steps_done += b.transitions, tokens += b.tokens, ended = b.ended, records += b.workers;
    ++batches;
    const double tps = static_cast<double>(tokens) / std::max(1e-9, progress.elapsed_seconds());
    progress.update(steps_done, fmt::format("trajectories {}/{} {:.0f} tok/s", ended, plans.size(), tps));
  });
  progress.finish(fmt::format("{} trajectories{}", ended, finished ? "" : " (stopped by signal)"));
  if (batches > 0) {
    // Exchange time is mostly waiting for the workers: the learner's own work is the rest.
    const RoundTimes& busy = runner.times();
    const double own_work = busy.total() - busy.exchange, store_time = busy.write + busy.seal + busy.flush;
    const double wall = progress.elapsed_seconds(), n = static_cast<double>(batches);
    log_line(fmt::format(
        "learner overhead: {:.3f} ms/batch (policy {:.3f}, store {:.3f}) = {:.2f}% of the wall time; {} batches of "
        "{:.1f} workers' records on average, {} ranks",
        1e3 * own_work / n, 1e3 * busy.decide / n, 1e3 * store_time / n, 100.0 * own_work / wall, batches,
        static_cast<double>(records) / n, ctx.mpi.size()));
  }
  return finished;
}

}  // namespace dma
