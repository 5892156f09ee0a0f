// dma_agent: a trained agent outside the orchestrator (DESIGN §6).
//   dma_agent act   --checkpoint FILE --state FILE
//   dma_agent serve --checkpoint FILE [--listen HOST:PORT] [--state-dir DIR] [--token-file FILE]
//   dma_agent critic-accuracy --checkpoint FILE --store STORE [--json]
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/program_options.hpp>

#include "dma/agent.hpp"
#include "dma/agent_service.hpp"

#include "subcommand.hpp"

namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "usage: dma_agent act|serve|critic-accuracy --checkpoint AGENT.pt [options]\n"
    "  act              --state STATE.json: prints the next mixture of the run the state describes\n"
    "  serve            HTTP/JSON service: outside training runs open sessions and get each step's mixture\n"
    "  critic-accuracy  --store STORE.h5: the critics' Q against the realised returns of a store's episodes\n"
    "payloads: docs/agent-service.md; run 'dma_agent COMMAND --help' for a command's options\n";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw dma::Error(fmt::format("state file '{}' cannot be read: pass --state FILE (JSON)", path));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int run_act(int argc, char** argv) {
  std::string checkpoint, state;
  po::options_description d("options");
  d.add_options()("help,h", "print this help")("checkpoint", po::value(&checkpoint)->required(), "agent checkpoint")(
      "state", po::value(&state)->required(), "state document (JSON): the session's opening fields and its steps");
  if (!dma::apps::parse_subcommand(argc, argv, d, "dma_agent", "act")) return 0;
  std::cout << dma::service::act(checkpoint, read_text(state)) << "\n";
  return 0;
}

int run_serve(int argc, char** argv) {
  dma::service::ServeOptions o;
  po::options_description d("options");
  d.add_options()("help,h", "print this help")("checkpoint", po::value(&o.checkpoint)->required(), "agent checkpoint")(
      "listen", po::value(&o.listen)->default_value(o.listen), "HOST:PORT (port 0: a free one, printed)")(
      "state-dir", po::value(&o.state_dir), "where sessions are kept (default: CHECKPOINT.sessions)")(
      "token-file", po::value(&o.token_file), "require the bearer token held in this file on /v1 routes")(
      "threads", po::value(&o.threads)->default_value(o.threads), "LibTorch threads per forward pass");
  if (!dma::apps::parse_subcommand(argc, argv, d, "dma_agent", "serve")) return 0;
  dma::service::serve(o);
  return 0;
}

// A figure for JSON (and the per-step line): NaN (no spread to correlate) is null.
std::string json_number(double x) { return std::isfinite(x) ? fmt::format("{:.6g}", x) : "null"; }

int run_critic_accuracy(int argc, char** argv) {
  std::string checkpoint, store;
  bool json = false;
  po::options_description d("options");
  d.add_options()("help,h", "print this help")("checkpoint", po::value(&checkpoint)->required(), "agent checkpoint")(
      "store", po::value(&store)->required(), "trajectory store to score on (episodes the agent did not train on)")(
      "json", po::bool_switch(&json), "print one JSON object instead of lines");
  if (!dma::apps::parse_subcommand(argc, argv, d, "dma_agent", "critic-accuracy")) return 0;
  const auto a = dma::critic_accuracy(checkpoint, dma::load_offline_store(store));
  std::vector<std::string> per_step;
  for (double r : a.per_step) per_step.push_back(json_number(r));
  if (json) {
    std::cout << fmt::format(
        "{{\"pairs\": {}, \"episodes\": {}, \"discount\": {}, \"spearman\": {}, \"spearman_per_step\": {}, "
        "\"steps_correlated\": {}, \"rmse_affine\": {}, \"return_std\": {}, \"per_step\": [{}]}}\n",
        a.pairs, a.episodes, json_number(a.discount), json_number(a.spearman), json_number(a.spearman_per_step),
        a.steps_correlated, json_number(a.rmse_affine), json_number(a.return_std), fmt::join(per_step, ", "));
    return 0;
  }
  std::cout << fmt::format("pairs: {} (state, stored action) from {} complete episodes\n", a.pairs, a.episodes)
            << fmt::format("spearman: {:.4f}\n", a.spearman)
            << fmt::format("spearman per step: {:.4f} (mean over {} steps)\n", a.spearman_per_step, a.steps_correlated)
            << fmt::format("spearman at each step: {}\n", fmt::join(per_step, " "))
            << fmt::format("rmse after affine fit: {:.6f} (return-to-go std {:.6f}, discount {})\n", a.rmse_affine,
                           a.return_std, a.discount);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  return dma::apps::run_subcommand("dma_agent", command, [&] {
    if (command == "act") return run_act(argc - 1, argv + 1);
    if (command == "serve") return run_serve(argc - 1, argv + 1);
    if (command == "critic-accuracy") return run_critic_accuracy(argc - 1, argv + 1);
    if (command == "-h" || command == "--help") {
      std::cout << kUsage;
      return 0;
    }
    std::fprintf(stderr, "dma_agent: unknown command '%s': use act, serve or critic-accuracy\n%s", command.c_str(),
                 kUsage);
    return 2;
  });
}
