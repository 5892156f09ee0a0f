// agent_service: what answering a trainer's step costs in `dma_agent serve`, against the
// agent's forward pass alone. The real service runs as its own process on loopback; S client
// threads, one session each at a time, post `POST /v1/sessions/{id}/step` over HTTP (a new
// connection per request, as the reference client does) with held-out losses from the
// agent tests' analytic CPT simulator, and train the simulator on each answer's mixture.
// Each row runs `--requests` steps split over whole sessions of `--horizon` steps (every row
// covers the same steps of a run, whose session documents grow with them); sessions are
// opened before and deleted after the timed part. The baseline, measured in the same run,
// is the agent policy's act call on one observation in this process (the median of
// `--forward-repeats` calls). One row per (D, S): requests per second, client-side p50 and
// p99 latency, and p50 over the forward pass.
//
//   agent_service [--domains 12,52] [--sessions 1,8,64] [--requests 640] [--horizon 16]
//                 [--forward-repeats 200] [--agent CHECKPOINT] [--program DMA_AGENT] [--dir DIR]
//
// Without --agent, a small agent (the default architecture, behaviour cloning only: its
// forward pass costs what a fully trained one's does) is trained on simulated runs of every
// listed domain count. Letters: D domains, S concurrent sessions, H horizon.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/sim.hpp"
#include "dma/agent.hpp"
#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "whole_numbers.hpp"

extern char** environ;

namespace {

using namespace dma;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
  std::vector<int> domains{12, 52}, sessions{1, 8, 64};
  int requests = 640, horizon = 16, forward_repeats = 200;
  std::string agent, program = DMA_AGENT_PROGRAM, dir;
};

/// `dma_agent serve` on 127.0.0.1, on the port it picks; stopped with SIGTERM on destruction.
class ServiceProcess {
 public:
  ServiceProcess(const std::string& program, const std::string& checkpoint, const std::string& state_dir) {
    int fds[2];
    if (::pipe(fds) != 0) throw Error("agent_service: cannot create a pipe for the service's output");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<std::string> args{program,       "serve",       "--checkpoint", checkpoint,  "--listen",
                                  "127.0.0.1:0", "--state-dir", state_dir,      "--threads", "1"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int spawned = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = ::fdopen(fds[0], "r");
    if (spawned != 0) {
      pid_ = -1;
      throw Error(
          fmt::format("cannot start '{}': {}; pass --program PATH to dma_agent", program, std::strerror(spawned)));
    }
    char* line = nullptr;
    size_t capacity = 0;
    const std::string marker = "listening on http://127.0.0.1:";
    while (port_ < 0 && ::getline(&line, &capacity, out_) > 0) {
      const std::string text(line);
      if (const auto at = text.find(marker); at != std::string::npos)
        port_ = std::stoi(text.substr(at + marker.size()));
    }
    std::free(line);
    if (port_ < 0) throw Error(fmt::format("'{} serve' ended before listening: see its message above", program));
  }
  ~ServiceProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_) std::fclose(out_);
  }
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;
  ServiceProcess(ServiceProcess&&) = delete;
  ServiceProcess& operator=(ServiceProcess&&) = delete;

  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  int port_ = -1;
};

/// A simulated domain space of D domains as a session's opening request describes it.
struct Space {
  agent_test::SimSpace sp;
  StoreHeader header;
  Space(int domains, int horizon) : sp(agent_test::sim_space(domains, horizon)), header(agent_test::sim_header(sp)) {}

  Json opening() const {
    Json fields = Json::array();
    for (const Field f : header.domain_fields) fields.push_back(std::string(field_name(f)));
    return {{"domains", header.domain_names},
            {"fields", fields},
            {"base_losses", header.base_eval_loss},
            {"token_shares", header.token_shares},
            {"horizon", sp.horizon}};
  }
};

Json post(httplib::Client& client, const std::string& path, const Json& body, int expected) {
  const auto res = client.Post(path.c_str(), body.dump(), "application/json");
  if (!res) throw Error(fmt::format("POST {}: {}", path, httplib::to_string(res.error())));
  if (res->status != expected) throw Error(fmt::format("POST {}: HTTP {}: {}", path, res->status, res->body));
  return Json::parse(res->body);
}

/// An opened session: its id and the mixture for step 0.
struct Opened {
  std::string id;
  std::vector<float> weights;
};

/// One client's work: its sessions stepped through their horizon, one after another.
/// Returns each step request's latency in seconds.
std::vector<double> drive(int port, const Space& space, const std::vector<Opened>& sessions, std::uint64_t seed) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(30);  // the reference client's timeout: a slow answer is a
  client.set_read_timeout(30);        // latency to measure, not a failure
  std::vector<double> latencies;
  for (const Opened& s : sessions) {
    agent_test::SimEnv env(space.sp, seed++);
    std::vector<float> w = s.weights;
    for (int t = 0; t < space.sp.horizon; ++t) {
      env.step(w, t);
      const Json body = {{"step", t}, {"losses", env.losses(space.header)}};
      const auto start = Clock::now();
      const Json answer = post(client, "/v1/sessions/" + s.id + "/step", body, 200);
      latencies.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      if (!answer["done"].get<bool>()) w = answer["weights"].get<std::vector<float>>();
    }
  }
  return latencies;
}

struct Row {
  int domains = 0, sessions = 0;
  std::size_t requests = 0;
  double seconds = 0, p50 = 0, p99 = 0;
};

double quantile(std::vector<double> xs, double q) {
  const auto k = static_cast<std::size_t>(q * static_cast<double>(xs.size() - 1) + 0.5);
  std::nth_element(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(k), xs.end());
  return xs[k];
}

Row run_row(const Options& o, int port, const Space& space, int S) {
  const int per_client = std::max(1, (o.requests + S * o.horizon - 1) / (S * o.horizon));  // sessions per client
  httplib::Client opener("127.0.0.1", port);
  std::vector<std::vector<Opened>> sessions(static_cast<std::size_t>(S));
  for (auto& mine : sessions)
    for (int k = 0; k < per_client; ++k) {
      const Json a = post(opener, "/v1/sessions", space.opening(), 201);
      mine.push_back({a["session"].get<std::string>(), a["weights"].get<std::vector<float>>()});
    }
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(S));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(S));
  std::latch ready(S + 1);
  std::vector<std::thread> clients;
  for (int c = 0; c < S; ++c)
    clients.emplace_back([&, c] {
      ready.arrive_and_wait();
      try {
        latencies[c] = drive(port, space, sessions[c], 1000u * static_cast<std::uint64_t>(c));
      } catch (...) {
        errors[c] = std::current_exception();
      }
    });
  ready.arrive_and_wait();
  const auto start = Clock::now();
  for (auto& t : clients) t.join();
  Row row{static_cast<int>(space.header.domain_names.size()), S};
  row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  row.requests = all.size();
  row.p50 = quantile(all, 0.50);
  row.p99 = quantile(all, 0.99);
  for (const auto& mine : sessions)
    for (const Opened& s : mine) opener.Delete(("/v1/sessions/" + s.id).c_str());
  return row;
}

/// The median seconds of the agent policy's act call on one observation of a simulated run
/// (midway through it), in this process, one LibTorch thread as the service uses.
double forward_seconds(const Options& o, const std::string& checkpoint, const Space& space) {
  const StoreHeader& h = space.header;
  auto policy = make_agent_policy(std::make_shared<const AgentModel>(AgentModel::load(checkpoint)), "agent",
                                  {h.domain_names, h.domain_fields, h.token_shares, o.horizon});
  policy->begin_episode(0, 0);
  obs::Tracker tracker({h.domain_fields, h.token_shares, h.base_eval_loss, o.horizon});
  agent_test::SimEnv env(space.sp, 7);
  std::vector<double> w(h.domain_names.size());
  const auto act = [&] {
    const auto o_t = tracker.observation();
    const std::int64_t ids[1] = {0};
    const std::int32_t steps[1] = {tracker.step()};
    policy->act({1, static_cast<int>(o_t.size()), ids, steps, o_t}, w);
  };
  for (int t = 0; t < o.horizon / 2; ++t) {
    act();
    const std::vector<float> wf(w.begin(), w.end());
    env.step(wf, t);
    tracker.advance(w, env.losses(h));
  }
  std::vector<double> times;
  for (int k = 0; k < o.forward_repeats; ++k) {
    const auto start = Clock::now();
    act();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return quantile(times, 0.5);
}

/// A small agent of the default architecture, cloned from simulated runs of each domain count.
std::string train_agent(const Options& o, const std::string& dir) {
  const std::string checkpoint = dir + "/agent.pt";
  Config config;
  config.train.horizon = o.horizon;
  config.agent.bc_steps = 50;
  std::vector<OfflineStore> stores;
  for (const int D : o.domains) {
    const Space space(D, o.horizon);
    stores.push_back(agent_test::sim_store(space.sp, space.header, config.eval, 8, 0x5e7 + static_cast<unsigned>(D)));
  }
  train_agent_offline(config, stores, checkpoint, "", /*steps_override=*/0);
  return checkpoint;
}

Options parse(int argc, char** argv) {
  Options o;
  const std::string usage =
      "usage: agent_service [--domains 12,52] [--sessions 1,8,64] [--requests N] [--horizon H] "
      "[--forward-repeats K] [--agent CHECKPOINT] [--program DMA_AGENT] [--dir DIR]";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw ConfigError(fmt::format("'{}' is not an option or lacks its value: {}", a, usage));
    const std::string v = argv[++i];
    if (a == "--domains")
      o.domains = bench::whole_numbers(a, v, 2, 1 << 16, "a domain count >= 2", "12,52");
    else if (a == "--sessions")
      o.sessions = bench::whole_numbers(a, v, 1, 4096, "a session count >= 1", "1,8,64");
    else if (a == "--requests")
      o.requests = bench::positive(a, v);
    else if (a == "--horizon")
      o.horizon = bench::positive(a, v);
    else if (a == "--forward-repeats")
      o.forward_repeats = bench::positive(a, v);
    else if (a == "--agent")
      o.agent = v;
    else if (a == "--program")
      o.program = v;
    else if (a == "--dir")
      o.dir = v;
    else
      throw ConfigError(fmt::format("'{}' is not an option: {}", a, usage));
  }
  return o;
}

int run(const Options& o) {
  const bool own_dir = o.dir.empty();
  const std::string dir =
      own_dir ? (fs::temp_directory_path() / fmt::format("agent_service.{}", getpid())).string() : o.dir;
  fs::create_directories(dir);
  set_agent_threads(1);
  try {
    const std::string checkpoint = o.agent.empty() ? train_agent(o, dir) : o.agent;
    ServiceProcess service(o.program, checkpoint, dir + "/sessions");
    fmt::print(
        "agent_service: dma_agent serve on 127.0.0.1:{} ({} cores here), agent {}, horizon {}, ~{} step "
        "requests per row, a new connection per request\n",
        service.port(), std::thread::hardware_concurrency(), checkpoint, o.horizon, o.requests);
    fmt::print("{:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>11}\n", "domains", "sessions", "requests", "rps",
               "p50 ms", "p99 ms", "forward ms", "p50/forward");
    for (const int D : o.domains) {
      const Space space(D, o.horizon);
      const double forward = forward_seconds(o, checkpoint, space);
      for (const int S : o.sessions) {
        const Row r = run_row(o, service.port(), space, S);
        fmt::print("{:>7} {:>8} {:>8} {:>8.1f} {:>8.2f} {:>8.2f} {:>10.3f} {:>11.1f}\n", r.domains, r.sessions,
                   r.requests, static_cast<double>(r.requests) / r.seconds, 1e3 * r.p50, 1e3 * r.p99, 1e3 * forward,
                   r.p50 / forward);
        std::fflush(stdout);
      }
    }
  } catch (...) {
    if (own_dir) fs::remove_all(dir);
    throw;
  }
  if (own_dir) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {  // dma's errors, and an answer that is not the JSON documented
    std::fprintf(stderr, "agent_service: %s\n", e.what());
    return 2;
  }
}
