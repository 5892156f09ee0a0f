// dma_replay: offline analysis of trajectory stores (DESIGN §6).
//   dma_replay summary|compare|export|plot|follow|repair|schedule STORE... [options]
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "dma/error.hpp"
#include "dma/replay.hpp"

namespace po = boost::program_options;
using namespace dma;

namespace {

constexpr const char* kUsage =
    "usage: dma_replay COMMAND STORE... [options]\n"
    "  summary STORE             episodes by policy and status, returns, final scores, tokens, wall time\n"
    "  compare STORE...          one table of policies across stores (mean ± std, 95% interval), each paired\n"
    "                            by seed with the agent (or --against P), under each --score given\n"
    "  export STORE OUT          --format d4rl|minari|csv (default: complete episodes)\n"
    "  plot STORE --out DIR      SVG weight schedules, scores per step, reward and return distributions\n"
    "  follow STORE              live view of a running store until the run ends\n"
    "  repair STORE              clear the status flags a killed writer left (for non-SWMR tools)\n"
    "  schedule STORE --policy P --format F --total-tokens N [--global-batch B] --out FILE\n"
    "                            P's rollouts as an open-loop schedule (F: megatron, megatron-json, foundry,\n"
    "                            torchtitan, hf, json, csv)\n";

struct Args {
  std::string command;
  std::vector<std::string> inputs;
  po::variables_map vm;
};

Args parse(int argc, char** argv, const po::options_description& opts) {
  Args a;
  a.command = argc > 1 ? argv[1] : "";
  po::options_description all;
  all.add(opts).add_options()("inputs", po::value<std::vector<std::string>>(&a.inputs), "stores (and OUT)");
  po::positional_options_description pos;
  pos.add("inputs", -1);
  po::store(po::command_line_parser(argc - 1, argv + 1).options(all).positional(pos).run(), a.vm);
  po::notify(a.vm);
  return a;
}

std::string opt(const Args& a, const char* name) { return a.vm.count(name) ? a.vm[name].as<std::string>() : ""; }

void need_inputs(const Args& a, std::size_t min, std::size_t max, const char* what) {
  if (a.inputs.size() < min || a.inputs.size() > max)
    throw ConfigError(
        fmt::format("'{}' takes {}, got {} argument(s): see dma_replay --help", a.command, what, a.inputs.size()));
}

replay::Selection selection(const Args& a, const std::string& default_status) {
  const std::string status = a.vm.count("status") ? opt(a, "status") : default_status;
  return replay::parse_selection(opt(a, "policy"), status, opt(a, "episodes"));
}

int run(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")("format", po::value<std::string>(),
                                                 "text|csv|markdown, or d4rl|minari|csv")(
      "score", po::value<std::string>(),
      "balanced score: mean|min|weighted[:<target weight>]|normalized|budget[:<tolerance>] (default: the store's); "
      "compare takes several, comma-separated")("against", po::value<std::string>(),
                                                "compare: the policy every other is compared with, a full spec or as "
                                                "matched across stores (tuned-fixed, agent:STEM); default: the agent")(
      "out,o", po::value<std::string>(), "export output / plot directory")(
      "policy", po::value<std::string>(), "select policies (comma-separated; 'fixed' matches 'fixed:0.3')")(
      "status", po::value<std::string>(), "select statuses: complete,failed,interrupted,running or all")(
      "episodes", po::value<std::string>(), "select episode ids: A-B, A, A- or -B")(
      "dataset-id", po::value<std::string>(), "Minari dataset id (default dma/<store>-v0)")(
      "observations", "csv export: add the observation columns")("force", "export, schedule: overwrite the output")(
      "interval", po::value<double>()->default_value(2.0), "follow: refresh period in seconds")(
      "timeout", po::value<double>()->default_value(0.0), "follow: give up after this many seconds (0: never)")(
      "total-tokens", po::value<std::int64_t>(), "schedule: tokens of the run the schedule is for")(
      "global-batch", po::value<std::int64_t>(), "schedule: tokens per optimizer step (adds iteration keys)")(
      "data-prefix", po::value<std::string>(), "schedule: prepended to each domain name to make its data path");
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage << "\n" << opts;
    return argc < 2 ? 2 : 0;
  }
  const Args a = parse(argc, argv, opts);
  if (a.vm.count("help")) {
    std::cout << kUsage << "\n" << opts;
    return 0;
  }
  const std::string score = opt(a, "score");
  if (a.command == "summary") {
    need_inputs(a, 1, 1, "one STORE");
    std::cout << replay::summary(a.inputs[0],
                                 replay::parse_table_format(a.vm.count("format") ? opt(a, "format") : "text"), score);
  } else if (a.command == "compare") {
    need_inputs(a, 1, 1000, "one or more STOREs");
    std::cout << replay::compare(a.inputs, replay::parse_table_format(a.vm.count("format") ? opt(a, "format") : "text"),
                                 score, opt(a, "against"));
  } else if (a.command == "export") {
    need_inputs(a, 1, 2, "STORE and OUT (or --out OUT)");
    const std::string out = a.inputs.size() == 2 ? a.inputs[1] : opt(a, "out");
    if (out.empty()) throw ConfigError("'export' needs an output: dma_replay export STORE --format d4rl OUT");
    if (!a.vm.count("format")) throw ConfigError("'export' needs --format d4rl|minari|csv");
    replay::ExportOptions o;
    o.format = replay::parse_export_format(opt(a, "format"));
    o.selection = selection(a, "complete");
    o.score = score;
    o.dataset_id = opt(a, "dataset-id");
    o.csv_observations = a.vm.count("observations") > 0;
    o.force = a.vm.count("force") > 0;
    const auto r = replay::export_store(a.inputs[0], out, o);
    std::cout << fmt::format("exported {} episodes, {} transitions to {}\n", r.episodes, r.transitions, out);
  } else if (a.command == "plot") {
    need_inputs(a, 1, 1, "one STORE");
    if (opt(a, "out").empty()) throw ConfigError("'plot' needs --out DIR");
    for (const auto& f : replay::plot(a.inputs[0], opt(a, "out"), selection(a, "all"), score)) std::cout << f << "\n";
  } else if (a.command == "follow") {
    need_inputs(a, 1, 1, "one STORE");
    return replay::follow(a.inputs[0], {a.vm["interval"].as<double>(), a.vm["timeout"].as<double>()}, std::cout);
  } else if (a.command == "repair") {
    need_inputs(a, 1, 1, "one STORE");
    replay::repair(a.inputs[0]);
    std::cout << fmt::format("cleared the status flags of {}\n", a.inputs[0]);
  } else if (a.command == "schedule") {
    need_inputs(a, 1, 1, "one STORE");
    if (opt(a, "out").empty() || !a.vm.count("format"))
      throw ConfigError("'schedule' needs --format F and --out FILE: see dma_replay --help");
    replay::ScheduleOptions o{
        opt(a, "policy"), opt(a, "format"), a.vm.count("total-tokens") ? a.vm["total-tokens"].as<std::int64_t>() : 0,
        a.vm.count("global-batch") ? a.vm["global-batch"].as<std::int64_t>() : 0, opt(a, "data-prefix")};
    const std::string text = replay::schedule(a.inputs[0], o);
    if (std::filesystem::exists(opt(a, "out")) && !a.vm.count("force"))
      throw ConfigError(fmt::format("'{}' exists: pass --force to overwrite it", opt(a, "out")));
    std::ofstream out(opt(a, "out"));
    if (!(out << text) || !out.flush())
      throw ConfigError(fmt::format("cannot write '{}': check the directory", opt(a, "out")));
    std::cout << fmt::format("wrote {} ({} format; an open-loop schedule: it does not react to the run)\n",
                             opt(a, "out"), opt(a, "format"));
  } else {
    throw ConfigError(
        fmt::format("unknown command '{}': use summary, compare, export, plot, follow, repair or schedule", a.command));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // HDF5 may keep internal state after failing on a damaged file; skipping its atexit
  // cleanup avoids a noisy "infinite loop closing library" (our handles are closed by RAII).
  H5dont_atexit();
  try {
    return run(argc, argv);
  } catch (const dma::Error& e) {
    std::cerr << "dma_replay: " << e.what() << "\n";
  } catch (const po::error& e) {
    std::cerr << "dma_replay: " << e.what() << ": see dma_replay --help\n";
  } catch (const std::exception& e) {
    std::cerr << "dma_replay: unexpected error: " << e.what() << "\n";
  }
  return 1;
}
