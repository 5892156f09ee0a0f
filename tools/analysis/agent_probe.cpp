// agent_probe: how a trained agent answers the source score (docs/study.md, transfer).
// For one episode of a store, at a few steps, it moves the observed source score by a few
// shifts and prints the actor's target share there and the share the critics value most.
// A controller that keeps a source budget lowers its target share when the source has lost
// more; an actor that copied smooth collected walks raises it (the slope column < 0).
//
// Usage: agent_probe <checkpoint> <store.h5> [--policy PREFIX] [--steps 1,4,8,12]
//                    [--shifts -0.06,-0.03,0,0.03]
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "dma/agent.hpp"
#include "dma/store.hpp"

namespace po = boost::program_options;

template <class T>
std::vector<T> parse_list(const std::string& text, const char* what) {
  std::vector<T> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    std::stringstream one(item);
    T value{};
    if (!(one >> value) || !one.eof())
      throw std::invalid_argument(fmt::format("--{} '{}': '{}' is not a number; write e.g. 1,4,8", what, text, item));
    out.push_back(value);
  }
  return out;
}

int main(int argc, char** argv) try {
  std::string checkpoint, store_path, policy, steps_text, shifts_text;
  po::options_description opts("agent_probe <checkpoint> <store.h5> [options]");
  opts.add_options()("help,h", "this help")("checkpoint", po::value(&checkpoint)->required(), "agent checkpoint")(
      "store", po::value(&store_path)->required(), "a store with an episode to probe")(
      "policy", po::value(&policy)->default_value("agent"), "probe the first complete episode whose policy starts so")(
      "steps", po::value(&steps_text)->default_value("1,4,8,12"), "steps to probe")(
      "shifts", po::value(&shifts_text)->default_value("-0.06,-0.03,0,0.03"), "source-score shifts");
  po::positional_options_description pos;
  pos.add("checkpoint", 1).add("store", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  po::notify(vm);
  const auto steps = parse_list<int>(steps_text, "steps");
  const auto shifts = parse_list<double>(shifts_text, "shifts");
  const auto model = dma::AgentModel::load(checkpoint);
  const auto store = dma::StoreReader::open(store_path);
  for (const auto& e : store.episodes()) {
    if (e.status != dma::EpisodeStatus::kComplete || e.policy.rfind(policy, 0) != 0) continue;
    const auto rows = store.read_episode(e);
    fmt::print("episode {} ({}), agent {}\n", e.id, e.policy, checkpoint);
    fmt::print("{:>4} {:>8} {:>8} | {:>8} {:>12} {:>12} |\n", "step", "progress", "source", "shift", "actor share",
               "critic best");
    for (const int step : steps) {
      const auto r = dma::probe_source_response(model, rows, step, shifts);
      for (size_t k = 0; k < shifts.size(); ++k)
        fmt::print("{:>4} {:>8.3f} {:>+8.3f} | {:>+8.3f} {:>12.3f} {:>12.2f} |\n", r.step, r.progress, r.source_score,
                   shifts[k], r.actor_share[k], r.critic_best_share[k]);
      if (shifts.size() > 1) {
        const double slope = (r.actor_share.back() - r.actor_share.front()) / (shifts.back() - shifts.front());
        fmt::print("{:>4} actor slope d(share)/d(source) {:+.2f}\n", r.step, slope);
      }
    }
    return 0;
  }
  throw std::invalid_argument(
      fmt::format("{} holds no complete episode whose policy starts with '{}': pick one with "
                  "--policy (dma_replay summary lists them)",
                  store_path, policy));
} catch (const std::exception& e) {
  std::fprintf(stderr, "agent_probe: %s\n", e.what());
  return 1;
}
