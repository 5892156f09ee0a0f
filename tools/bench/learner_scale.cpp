// learner_scale: the learner's own cost per round against the number of ranks, in one
// process. The product's EpisodeRunner (decide with the agent policy, exchange, absorb, store
// write, seal, flush) runs over an in-process StepLink whose N-1 simulated workers answer
// each command by replaying recorded transitions, so the store and the agent see realistic
// observations and losses. One row per rank count: learner ms per round, each part's share,
// and the store's size; then the slope of log(ms) against log(N). "cpu ms" is the learner's
// CPU time per round (the simulated workers' excluded), "wall ms" its elapsed time; the
// shares split the wall time. On a shared machine the CPU time is the figure to compare. Every store written is
// reopened and each episode checked against its checksum.
//
//   learner_scale [--ranks 2,4,...,1024] [--domains 52] [--horizon 16] [--slots 1] [--repeat 1]
//                 [--agent-threads 1]
//                 [--recording STORE] [--agent CHECKPOINT] [--dir DIR] [--keep]
//
// --agent-threads T gives the agent's inference T LibTorch threads (agent.threads): the wall
// time of its batches falls, their CPU time does not.
// --repeat K runs each rank count K times and keeps the fastest run (on a shared machine
// other work only ever adds time).
//
// Without --recording, the transitions come from the analytic CPT simulator the agent's
// tests use (half source, half target domains); without --agent, a small agent is trained
// on them (behaviour cloning only: its inference costs what a fully trained one does).
// Letters: N ranks (N-1 workers), S slots, D domains, H horizon.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "agent/sim.hpp"
#include "dma/agent.hpp"
#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "dma/learner.hpp"
#include "dma/store.hpp"
#include "orchestrator/protocol.hpp"
#include "whole_numbers.hpp"

namespace {

using namespace dma;
namespace fs = std::filesystem;

struct Options {
  std::vector<int> ranks{2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  int domains = 52, horizon = 16, slots = 1;
  int agent_threads = 1;
  int repeat = 1;  // runs per rank count; the fastest is kept (a shared machine's noise only adds time)
  std::string recording, agent, dir;
  bool keep = false;
};

/// CPU seconds of this process (user + system, all threads): on a shared machine, what the
/// learner's work costs whatever else runs beside it.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

/// Rank 0 of N in one process. A command sent to a rank waits in its inbox; receive() lets
/// every simulated worker with a command answer it (all arrive at once, as when no worker
/// is slower than the others) and copies the records out. The workers' own seconds are
/// kept apart, so the exchange shows the transport's cost alone.
class LoopbackLink final : public StepLink {
 public:
  using Worker = std::function<void(int rank, std::span<const double> command, std::span<double> record)>;
  LoopbackLink(int size, int command_block, int record_block, Worker worker)
      : size_(size),
        command_block_(static_cast<std::size_t>(command_block)),
        record_block_(static_cast<std::size_t>(record_block)),
        worker_(std::move(worker)),
        inboxes_(command_block_ * static_cast<std::size_t>(size)),
        waiting_(static_cast<std::size_t>(size), false) {}

  int size() const override { return size_; }
  int awaited() const override { return awaited_; }
  double worker_seconds() const { return worker_seconds_; }
  double worker_cpu_seconds() const { return worker_cpu_seconds_; }

  void send(int rank, std::span<const double> command) override {
    std::copy(command.begin(), command.end(), inboxes_.begin() + static_cast<long>(rank * command_block_));
    waiting_[static_cast<std::size_t>(rank)] = true;
    ++awaited_;
  }
  void release(int, std::span<const double>) override {}

  std::vector<int> receive(std::span<double> records, double) override {
    std::vector<int> ranks;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds();
    for (int r = 1; r < size_; ++r) {
      if (!waiting_[static_cast<std::size_t>(r)]) continue;
      worker_(r, std::span<const double>(inboxes_).subspan(r * command_block_, command_block_),
              records.subspan(r * record_block_, record_block_));
      waiting_[static_cast<std::size_t>(r)] = false;
      ranks.push_back(r);
    }
    worker_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    worker_cpu_seconds_ += cpu_seconds() - cpu0;
    awaited_ = 0;
    return ranks;
  }

 private:
  int size_;
  std::size_t command_block_, record_block_;
  Worker worker_;
  std::vector<double> inboxes_;
  std::vector<bool> waiting_;
  int awaited_ = 0;
  double worker_seconds_ = 0, worker_cpu_seconds_ = 0;
};

/// A worker slot replaying episode (id mod R) of the recording: the losses it reports after
/// step t are that episode's after step t, whatever the weights it was sent.
class Replayer {
 public:
  Replayer(const OfflineStore& recording, protocol::Sizes z) : recording_(recording), z_(z) {}

  void operator()(int, std::span<const double> command, std::span<double> record) const {
    record[0] = record[1] = 0;  // no stop, no error
    for (int s = 0; s < z_.slots; ++s) {
      const auto c = protocol::read_command(command, z_, s);
      protocol::SlotRecord out;
      out.episode_id = c.episode_id;
      out.step = c.step;
      if (c.episode_id >= 0) {
        const auto& rows = recording_.rows[static_cast<std::size_t>(c.episode_id) % recording_.rows.size()];
        const Transition& t = rows.at(static_cast<std::size_t>(c.step));
        const Transition* before = c.step > 0 ? &rows[static_cast<std::size_t>(c.step - 1)] : nullptr;
        out.status = protocol::kOk;
        out.tokens = t.train_tokens - (before ? before->train_tokens : 0);
        out.seconds = t.wall_seconds - (before ? before->wall_seconds : 0.0f);
        out.math_accuracy = t.math_accuracy;
        out.eval_loss = t.eval_loss;
        out.train_loss = t.eval_loss;
      }
      protocol::write_record(record, z_, s, out);
    }
  }

 private:
  const OfflineStore& recording_;
  protocol::Sizes z_;
};

struct Row {
  int ranks = 0;
  std::int64_t rounds = 0, transitions = 0;
  RoundTimes times;  // wall seconds by part
  double cpu = 0;    // CPU seconds of the learner's rounds
  double file_mb = 0;
  std::int64_t verified = 0;
};

/// Reopens the store and checks every episode's rows and checksum; returns episodes checked.
std::int64_t verify_store(const std::string& path, std::int64_t expected) {
  auto reader = StoreReader::open(path);
  std::int64_t n = 0;
  for (const auto& e : reader.episodes()) {
    if (e.status != EpisodeStatus::kComplete || e.checksum == 0)
      throw StoreError(fmt::format("'{}': episode {} ended with status {} and checksum {:x}", path, e.id,
                                   static_cast<int>(e.status), e.checksum));
    verify_episode_rows(e, reader.read_block(e.start, e.length, true), path);
    ++n;
  }
  if (n != expected) throw StoreError(fmt::format("'{}' holds {} episodes, {} were run", path, n, expected));
  return n;
}

Row run_one(const Options& o, int ranks, const Config& config, const OfflineStore& recording,
            const PolicySpec& policy_spec, const std::string& path) {
  const StoreHeader& h = recording.header;
  const DomainContext domains{h.domain_names, h.domain_fields, h.token_shares, o.horizon};
  StoreHeader header = h;
  header.horizon = o.horizon;
  header.config_ini = to_ini(config);
  header.created_utc.clear();
  auto store = StoreWriter::create(path, header);
  PolicySet policies;
  policies[to_string(policy_spec)] = make_agent_policy(policy_spec, domains, policy_settings(config));
  const protocol::Sizes z{h.num_domains(), o.slots};
  LoopbackLink loop(ranks, z.command_block(), z.record_block(), Replayer(recording, z));
  EpisodeRunner runner(config, domains, store, policies, loop, [](int rank) -> std::string {
    throw Error(fmt::format("simulated rank {} cannot fail", rank));
  });
  std::vector<EpisodePlan> plans;
  for (int i = 0; i < (ranks - 1) * o.slots; ++i) plans.push_back({i, i, policy_spec});
  Row row;
  row.ranks = ranks;
  const double cpu0 = cpu_seconds();
  runner.run(plans, {}, [&](const BatchReport& b) {
    row.transitions += b.transitions;
    ++row.rounds;
  });
  row.cpu = cpu_seconds() - cpu0 - loop.worker_cpu_seconds();
  row.times = runner.times();
  row.times.exchange -= loop.worker_seconds();
  row.file_mb = static_cast<double>(fs::file_size(path)) / (1 << 20);
  row.verified = verify_store(path, static_cast<std::int64_t>(plans.size()));
  return row;
}

/// Least-squares slope of log(CPU ms per round) against log(N) over the rows from `first` on.
double loglog_slope(const std::vector<Row>& rows, std::size_t first) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(rows.size() - first);
  for (std::size_t i = first; i < rows.size(); ++i) {
    const double x = std::log(rows[i].ranks), y = std::log(rows[i].cpu / static_cast<double>(rows[i].rounds));
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

Options parse(int argc, char** argv) {
  Options o;
  const std::string usage =
      "usage: learner_scale [--ranks 2,4,...] [--domains D] [--horizon H] [--slots S] [--repeat K] [--agent-threads T] "
      "[--recording STORE] [--agent CHECKPOINT] [--dir DIR] [--keep]";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= argc) throw ConfigError(fmt::format("'{}' is not an option or lacks its value: {}", a, usage));
    const std::string v = argv[++i];
    if (a == "--ranks")
      o.ranks = bench::whole_numbers(a, v, 2, 1 << 20, "a rank count >= 2", "2,16,1024");
    else if (a == "--domains")
      o.domains = bench::positive(a, v);
    else if (a == "--horizon")
      o.horizon = bench::positive(a, v);
    else if (a == "--slots")
      o.slots = bench::positive(a, v);
    else if (a == "--repeat")
      o.repeat = bench::positive(a, v);
    else if (a == "--agent-threads")
      o.agent_threads = bench::positive(a, v);
    else if (a == "--recording")
      o.recording = v;
    else if (a == "--agent")
      o.agent = v;
    else if (a == "--dir")
      o.dir = v;
    else
      throw ConfigError(fmt::format("'{}' is not an option: {}", a, usage));
  }
  if (o.domains < 2) throw ConfigError("--domains: needs at least 2 (one source, one target)");
  return o;
}

/// The recorded transitions: a store file's complete episodes, or simulated ones.
OfflineStore recording(const Options& o, const EvalConfig& eval) {
  if (!o.recording.empty()) {
    auto s = load_offline_store(o.recording);
    std::erase_if(s.rows, [&](const auto& rows) { return static_cast<int>(rows.size()) < o.horizon; });
    if (s.rows.empty())
      throw ConfigError(fmt::format("--recording '{}' has no episode of {} steps or more: pass --horizon {} or less",
                                    o.recording, o.horizon, s.header.horizon));
    return s;
  }
  const auto sp = agent_test::sim_space(o.domains, o.horizon);
  return agent_test::sim_store(sp, agent_test::sim_header(sp), eval, 64, 0x5ca1e);
}

void print_row(const Row& r) {
  const auto& t = r.times;
  const double total = t.total();
  const auto share = [&](double part) { return 100.0 * part / std::max(total, 1e-12); };
  const double rounds = static_cast<double>(r.rounds);
  fmt::print("{:>6} {:>7} {:>8.2f} {:>9.2f} {:>7.1f} {:>9.1f} {:>7.1f} {:>6.1f} {:>5.1f} {:>6.1f} {:>8.1f} {:>8}\n",
             r.ranks, r.rounds, 1e3 * r.cpu / rounds, 1e3 * total / rounds, share(t.decide), share(t.exchange),
             share(t.absorb), share(t.write), share(t.seal), share(t.flush), r.file_mb, r.verified);
  std::fflush(stdout);
}

int run(const Options& o) {
  const std::string dir =
      o.dir.empty() ? (fs::temp_directory_path() / fmt::format("learner_scale.{}", getpid())).string() : o.dir;
  fs::create_directories(dir);
  Config config;
  config.train.horizon = o.horizon;
  config.orchestrator.slots = o.slots;
  config.agent.threads = o.agent_threads;
  const OfflineStore rec = recording(o, config.eval);
  std::string checkpoint = o.agent;
  if (checkpoint.empty()) {
    checkpoint = dir + "/agent.pt";
    Config train = config;
    train.agent.bc_steps = 50;
    train_agent_offline(train, {rec}, checkpoint, "", /*steps_override=*/0);
  }
  const PolicySpec spec = agent_spec({checkpoint});
  fmt::print("learner_scale: D={} H={} S={} agent threads {} policy {} ({} recorded episodes{})\n",
             rec.header.num_domains(), o.horizon, o.slots, o.agent_threads, to_string(spec), rec.rows.size(),
             o.recording.empty() ? ", simulated" : " from " + o.recording);
  fmt::print("{:>6} {:>7} {:>8} {:>9} {:>7} {:>9} {:>7} {:>6} {:>5} {:>6} {:>8} {:>8}\n", "ranks", "rounds", "cpu ms",
             "wall ms", "decide%", "exchange%", "absorb%", "write%", "seal%", "flush%", "store MB", "verified");
  std::vector<Row> rows;
  for (const int n : o.ranks) {
    const std::string path = fmt::format("{}/store-{}.h5", dir, n);
    Row best;
    for (int k = 0; k < o.repeat; ++k) {
      fs::remove(path);
      Row row = run_one(o, n, config, rec, spec, path);
      if (k == 0 || row.cpu < best.cpu) best = row;
    }
    rows.push_back(best);
    print_row(rows.back());
    if (!o.keep) fs::remove(path);
  }
  if (rows.size() >= 2) {
    const std::size_t upper = rows.size() / 2;
    fmt::print("growth: cpu ms/round ~ N^{:.2f} over all rows, N^{:.2f} from N={} on (1 = linear)\n",
               loglog_slope(rows, 0), loglog_slope(rows, upper), rows[upper].ranks);
  }
  if (!o.keep && o.dir.empty()) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const dma::Error& e) {
    std::fprintf(stderr, "learner_scale: %s\n", e.what());
    return 2;
  }
}
