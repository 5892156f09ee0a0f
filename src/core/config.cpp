// Configuration: one table of keys (name, field, range, help) drives the Boost.PO
// description, the range checks and --print-config, so a key is declared once.
#include "dma/config.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "dma/error.hpp"

namespace po = boost::program_options;

namespace dma {
namespace {

struct Key {
  std::string name;
  std::function<void(po::options_description&)> add;
  std::function<std::string()> print;
  std::function<void()> check;
};

template <class T>
std::string show(const T& v) {
  if constexpr (std::is_same_v<T, std::string>)
    return v;
  else if constexpr (std::is_floating_point_v<T>)
    return fmt::format("{}", v);
  else
    return std::to_string(v);
}

class Table {
 public:
  /// A numeric key with an inclusive range.
  template <class T>
  void num(const std::string& name, T& field, T lo, T hi, const char* help) {
    keys_.push_back({name,
                     [&field, name, help](po::options_description& d) {
                       d.add_options()(name.c_str(), po::value<T>(&field)->default_value(field), help);
                     },
                     [&field] { return show(field); },
                     [&field, name, lo, hi] {
                       if (!(field >= lo && field <= hi))
                         throw ConfigError(fmt::format("config key '{}' = {} is out of range: use a value in [{}, {}]",
                                                       name, show(field), show(lo), show(hi)));
                     }});
  }
  /// A string key; `choices` empty means free text.
  void str(const std::string& name, std::string& field, std::vector<std::string> choices, const char* help) {
    keys_.push_back({name,
                     [&field, name, help](po::options_description& d) {
                       d.add_options()(name.c_str(), po::value<std::string>(&field)->default_value(field), help);
                     },
                     [&field] { return field; },
                     [&field, name, choices] {
                       if (choices.empty() || std::find(choices.begin(), choices.end(), field) != choices.end()) return;
                       std::string all;
                       for (const auto& c : choices) all += (all.empty() ? "" : "|") + c;
                       throw ConfigError(
                           fmt::format("config key '{}' = '{}' is not valid: use one of {}", name, field, all));
                     }});
  }
  const std::vector<Key>& keys() const { return keys_; }

 private:
  std::vector<Key> keys_;
};

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kIntMax = std::numeric_limits<int>::max();

void register_run(Table& t, Config& c) {
  t.str("run.dir", c.run.dir, {}, "directory for everything the run writes");
  t.num<std::uint64_t>("run.seed", c.run.seed, 0, std::numeric_limits<std::uint64_t>::max(), "run seed");
  t.num("run.progress_seconds", c.run.progress_seconds, 0.1, 3600.0, "period of plain progress lines");
  t.str("data.space", c.data.space, {}, "domain-space HDF5 file (dma_prepare)");
}

void register_proxy(Table& t, Config& c) {
  t.num("proxy.n_layers", c.proxy.n_layers, 1, 64, "decoder blocks");
  t.num("proxy.d_model", c.proxy.d_model, 8, 8192, "model width");
  t.num("proxy.n_heads", c.proxy.n_heads, 1, 128, "attention heads (must divide d_model)");
  t.num("proxy.ffn_mult", c.proxy.ffn_mult, 0.5, 16.0, "SwiGLU hidden size / d_model");
  t.num("proxy.seq_len", c.proxy.seq_len, 0, 65536, "context length (0: the domain space's)");
  t.str("proxy.device", c.proxy.device, {"auto", "cpu", "cuda"}, "device for proxies");
  t.num("proxy.threads", c.proxy.threads, 0, 1024, "intra-op threads per rank (0: share of cores)");
}

void register_train(Table& t, Config& c) {
  t.num("train.batch_size", c.train.batch_size, 1, 65536, "sequences per optimizer step");
  t.num("train.lr", c.train.lr, 0.0, 10.0, "peak learning rate (CPT)");
  t.num("train.min_lr_ratio", c.train.min_lr_ratio, 0.0, 1.0, "final lr / peak lr");
  t.num("train.warmup_steps", c.train.warmup_steps, 0, kIntMax, "warm-up optimizer steps");
  t.num("train.weight_decay", c.train.weight_decay, 0.0, 10.0, "AdamW decoupled weight decay");
  t.num("train.grad_clip", c.train.grad_clip, 0.0, 1e6, "gradient-norm clip (0: off)");
  t.num("train.steps_per_round", c.train.steps_per_round, 1, kIntMax, "S: optimizer steps per re-weighting step");
  t.num("train.horizon", c.train.horizon, 1, 100000, "T: re-weighting steps per trajectory");
  t.num("pretrain.steps", c.pretrain.steps, 1, kIntMax, "base pre-training optimizer steps");
  t.num("pretrain.lr", c.pretrain.lr, 0.0, 10.0, "base pre-training peak lr");
  t.num("pretrain.warmup_steps", c.pretrain.warmup_steps, 0, kIntMax, "base pre-training warm-up");
  t.num("pretrain.batch_size", c.pretrain.batch_size, 1, 65536, "base pre-training batch rows");
}

void register_eval(Table& t, Config& c) {
  t.num("eval.eval_rows", c.eval.eval_rows, 1, 1 << 20, "held-out rows per domain");
  t.num("eval.bench_problems", c.eval.bench_problems, 0, 1 << 20, "math exact-match problems");
  t.num("eval.max_answer_tokens", c.eval.max_answer_tokens, 1, 4096, "greedy answer length");
  t.str("eval.score", c.eval.score, {"mean", "min", "weighted", "normalized", "budget"}, "balanced score");
  t.num("eval.target_weight", c.eval.target_weight, 0.0, 1.0, "target weight for `weighted`");
  t.num("eval.source_scale", c.eval.source_scale, 1e-9, kInf, "source scale for `normalized`");
  t.num("eval.target_scale", c.eval.target_scale, 1e-9, kInf, "target scale for `normalized`");
  t.num("eval.budget_tolerance", c.eval.budget_tolerance, 0.0, 10.0, "source loss tolerated by `budget`");
  t.num("eval.budget_penalty", c.eval.budget_penalty, 0.0, 1e6, "penalty slope of `budget`");
}

void register_orchestration(Table& t, Config& c) {
  t.num("orchestrator.slots", c.orchestrator.slots, 1, 4096, "proxies per worker rank");
  t.num("comm.timeout_s", c.comm.timeout_s, 0.1, 1e7, "watchdog limit for one wait on another rank");
  t.num("collect.trajectories", c.collect.trajectories, 1, 100000000, "M: trajectories to collect");
  t.str("collect.policies", c.collect.policies, {}, "policy mix, e.g. random:0.9,uniform:0.1");
  t.str("collect.store", c.collect.store, {}, "store path (default <run.dir>/store.h5)");
  t.num("collect.branches", c.collect.branches, 0, 1024,
        "B: trajectories branched from each root's state at branch_step (0: flat collection)");
  t.num("collect.branch_step", c.collect.branch_step, 0, 100000, "k: steps branches share with their root (0: T/2)");
  t.num("random.concentrate_prob", c.random.concentrate_prob, 0.0, 1.0, "chance of a concentrated field");
  t.num("random.within_alpha", c.random.within_alpha, 1e-3, 1e3, "Dirichlet alpha within a field");
  t.num("random.smoothness", c.random.smoothness, 0.0, 0.999, "step-to-step smoothing");
  t.str("evaluate.policies", c.evaluate.policies, {}, "comma-separated policies to evaluate");
  t.str("evaluate.oracle", c.evaluate.oracle, {}, "comma-separated policies labelled oracle");
  t.num("evaluate.seeds", c.evaluate.seeds, 1, 100000, "K seeds per policy");
  t.num<std::uint64_t>("evaluate.seed_offset", c.evaluate.seed_offset, 0, std::numeric_limits<std::uint64_t>::max() / 2,
                       "first evaluation trajectory id");
}

void register_tune(Table& t, Config& c) {
  t.num("tune.rollouts", c.tune.rollouts, 1, kIntMax,
        "rollouts each tuned baseline family may spend on the selection seeds");
  t.num("tune.seeds", c.tune.seeds, 1, 100000, "selection seeds per tuning candidate");
}

void register_agent(Table& t, Config& c) {
  t.str("agent.stores", c.agent.stores, {}, "stores to train on (comma-separated)");
  t.num("agent.d_token", c.agent.d_token, 8, 4096, "token width");
  t.num("agent.n_layers", c.agent.n_layers, 1, 32, "encoder layers");
  t.num("agent.n_heads", c.agent.n_heads, 1, 64, "encoder heads");
  t.num("agent.bc_top_q", c.agent.bc_top_q, 0.01, 1.0, "fraction of episodes cloned");
  t.num("agent.bc_steps", c.agent.bc_steps, 0, kIntMax, "behaviour-cloning steps");
  t.num("agent.cql_steps", c.agent.cql_steps, 0, kIntMax, "CQL steps");
  t.num("agent.cql_alpha", c.agent.cql_alpha, 0.0, 1e4, "conservative weight");
  t.str("agent.actor_features", c.agent.actor_features, {},
        "step features the actor reads: comma-separated names of the agent's features, or 'all'");
  t.num("agent.source_gain", c.agent.source_gain, 0.0, 1e3,
        "least d(target share)/d(source score) of the actor (0: unconstrained)");
  t.num("agent.candidates", c.agent.candidates, 1, 1000,
        "agents trained on seeds run.seed+k; the best by rollouts is kept");
  t.num("agent.selection_seeds", c.agent.selection_seeds, 1, 100000, "rollouts per candidate agent");
  t.num<std::uint64_t>("agent.selection_seed_offset", c.agent.selection_seed_offset, 0,
                       std::numeric_limits<std::uint64_t>::max() / 2, "seed ids of the candidates' rollouts");
  t.num("agent.actor_lr", c.agent.actor_lr, 0.0, 1.0, "actor learning rate");
  t.num("agent.critic_lr", c.agent.critic_lr, 0.0, 1.0, "critic learning rate");
  t.num("agent.batch_size", c.agent.batch_size, 1, 1 << 20, "transitions per update");
  t.num("agent.threads", c.agent.threads, 0, 1024, "LibTorch threads while training the agent (0: unchanged)");
  t.num("iterate.generations", c.iterate.generations, 0, 100000,
        "online generations (0: the pipeline keeps the offline agent)");
  t.num("iterate.trajectories", c.iterate.trajectories, 0, kIntMax, "rollouts per generation (0: one per worker slot)");
  t.num("iterate.updates_per_generation", c.iterate.updates_per_generation, 0, kIntMax, "agent updates per generation");
  t.num("regmix.samples", c.regmix.samples, 1, 1 << 26, "simplex samples for the best mixture");
}

Table make_table(Config& c) {
  Table t;
  register_run(t, c);
  register_proxy(t, c);
  register_train(t, c);
  register_eval(t, c);
  register_orchestration(t, c);
  register_tune(t, c);
  register_agent(t, c);
  return t;
}

po::options_description describe(const Table& t) {
  po::options_description d("configuration keys (INI [section] key=value, or --section.key=value)");
  for (const auto& k : t.keys()) k.add(d);
  return d;
}

void check_all(const Table& t, const Config& c) {
  for (const auto& k : t.keys()) k.check();
  if (c.proxy.d_model % c.proxy.n_heads != 0)
    throw ConfigError(
        fmt::format("config key 'proxy.n_heads' = {} does not divide proxy.d_model = {}: choose a divisor",
                    c.proxy.n_heads, c.proxy.d_model));
  if ((c.proxy.d_model / c.proxy.n_heads) % 2 != 0)
    throw ConfigError(
        "config keys 'proxy.d_model' / 'proxy.n_heads' give an odd head size: rotary embeddings need it even");
  if (c.collect.branches > 0) {
    const int k = c.collect.shared_steps(c.train.horizon);
    if (k < 1 || k >= c.train.horizon)
      throw ConfigError(
          fmt::format("config key 'collect.branch_step' = {} must lie in 1..train.horizon-1 ({}) for "
                      "trajectory trees: choose a step inside the horizon, or set collect.branches=0",
                      k, c.train.horizon - 1));
  }
  if (c.agent.d_token % c.agent.n_heads != 0)
    throw ConfigError(fmt::format("config key 'agent.n_heads' = {} does not divide agent.d_token = {}", c.agent.n_heads,
                                  c.agent.d_token));
  // The gain is a slope in the source score: an actor that does not read it has none to hold.
  const auto& read = c.agent.actor_features;
  if (c.agent.source_gain > 0 && read != "all" && ("," + read + ",").find(",source_score,") == std::string::npos)
    throw ConfigError(
        fmt::format("config key 'agent.source_gain' = {} needs an actor that reads the source score: add "
                    "source_score to agent.actor_features ('{}') or set the gain to 0",
                    c.agent.source_gain, read));
}

// Keys of the recipe's fixed parts (docs/options.md): a file that still sets one is told so
// instead of being offered a look-alike key.
constexpr std::array<std::string_view, 21> kRetiredKeys = {"train.beta1",
                                                           "train.beta2",
                                                           "tune.first_step",
                                                           "agent.history",
                                                           "agent.n_sampled_actions",
                                                           "agent.discount",
                                                           "agent.n_step",
                                                           "agent.field_balanced",
                                                           "agent.tau",
                                                           "agent.logit_box",
                                                           "agent.val_fraction",
                                                           "agent.exploration_std",
                                                           "agent.bc_lr",
                                                           "agent.actor_bc_weight",
                                                           "agent.cql_calibrate",
                                                           "agent.target_noise",
                                                           "iterate.exploration_std",
                                                           "iterate.select",
                                                           "online_eg.step_size",
                                                           "online_eg.smoothing",
                                                           "random.knots"};

[[noreturn]] void rethrow_unknown(const std::string& raw) {
  std::string key = raw;
  while (!key.empty() && key.front() == '-') key.erase(0, 1);
  if (auto eq = key.find('='); eq != std::string::npos) key.resize(eq);  // Boost.PO reports "--k=v" whole
  if (key == "comm.backend")
    throw ConfigError(
        "config key 'comm.backend' is no longer a key: the learner and the workers exchange their step messages "
        "(a few KB) point to point over MPI, whatever the devices; remove it");
  if (std::find(kRetiredKeys.begin(), kRetiredKeys.end(), key) != kRetiredKeys.end())
    throw ConfigError(fmt::format(
        "config key '{}' is no longer a key: it is a fixed part of the recipe (docs/options.md); remove it", key));
  auto hint = closest_key(key, config_keys());
  throw ConfigError(fmt::format(
      "unknown config key '{}'{}", key,
      hint.empty() ? ": run with --print-config to list every key" : fmt::format(": did you mean '{}'?", hint)));
}

void parse_ini_into(std::istream& in, const std::string& origin, const po::options_description& d,
                    po::variables_map& vm) {
  try {
    po::store(po::parse_config_file(in, d, /*allow_unregistered=*/false), vm);
  } catch (const po::unknown_option& e) {
    rethrow_unknown(e.get_option_name());
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("{}: {}: fix the line in the INI file", origin, e.what()));
  }
}

}  // namespace

std::vector<std::string> config_keys() {
  Config scratch;
  std::vector<std::string> out;
  const Table table = make_table(scratch);
  for (const auto& k : table.keys()) out.push_back(k.name);
  return out;
}

std::string closest_key(const std::string& key, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t prev = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t cur = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
        prev = cur;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    size_t d = distance(key, c);
    // A key that matches after its section (e.g. "d_model" for "proxy.d_model") is close too.
    auto dot = c.find('.');
    if (dot != std::string::npos) d = std::min(d, distance(key, c.substr(dot + 1)) + 1);
    if (d < best_d) best_d = d, best = c;
  }
  return best_d <= std::max<size_t>(3, key.size() / 3) ? best : std::string();
}

Config parse_ini_text(const std::string& ini_text) {
  Config c;
  Table t = make_table(c);
  auto d = describe(t);
  po::variables_map vm;
  std::istringstream in(ini_text);
  parse_ini_into(in, "config text", d, vm);
  po::notify(vm);
  check_all(t, c);
  return c;
}

EvalConfig stored_eval_config(const std::string& ini_text) {
  try {
    return parse_ini_text(ini_text).eval;
  } catch (const ConfigError&) {
  }
  std::string section, eval_text, line;
  std::istringstream in(ini_text);
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line[first] == '[') section = line.substr(first);
    if (section.rfind("[eval]", 0) == 0) eval_text += line + "\n";
  }
  return parse_ini_text(eval_text).eval;
}

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  Config& c = cl.config;
  Table t = make_table(c);
  po::options_description general("dma_orchestrate options");
  general.add_options()("help,h", "print this help")("config", po::value<std::string>(&c.config_file), "INI file")(
      "mode", po::value<std::string>(&c.mode), mode_list().c_str())("resume", po::bool_switch(&c.resume),
                                                                    "continue from the store and the last checkpoint")(
      "print-config", po::bool_switch(&cl.print_config), "print the effective configuration and exit");
  auto keys = describe(t);
  po::options_description all;
  all.add(general).add(keys);
  po::variables_map vm;
  try {
    // The command line is stored first so that it wins over the INI file.
    po::store(po::command_line_parser(argc, argv).options(all).run(), vm);
  } catch (const po::unknown_option& e) {
    rethrow_unknown(e.get_option_name());
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("command line: {}: see --help", e.what()));
  }
  if (vm.count("help")) {
    cl.help = true;
    std::ostringstream s;
    s << all;
    cl.help_text = s.str();
    return cl;
  }
  if (vm.count("config")) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream in(path);
    if (!in) throw ConfigError(fmt::format("cannot open config file '{}': check the path given to --config", path));
    parse_ini_into(in, path, all, vm);
  }
  po::notify(vm);
  check_all(t, c);
  if (!cl.print_config && std::find(kModes.begin(), kModes.end(), c.mode) == kModes.end())
    throw ConfigError(fmt::format("--mode '{}' is not valid: use one of {}", c.mode, mode_list()));
  return cl;
}

std::string mode_list() {
  std::string out;
  for (const auto m : kModes) out += (out.empty() ? "" : "|") + std::string(m);
  return out;
}

std::string to_ini(const Config& config) {
  Config copy = config;
  Table t = make_table(copy);
  std::string out, section;
  for (const auto& k : t.keys()) {
    auto dot = k.name.find('.');
    auto sec = k.name.substr(0, dot);
    if (sec != section) {
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", sec);
      section = sec;
    }
    out += fmt::format("{} = {}\n", k.name.substr(dot + 1), k.print());
  }
  return out;
}

}  // namespace dma
