// dma_orchestrate's modes. The learner drives; workers serve episode phases until done.
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "dma/agent.hpp"
#include "dma/error.hpp"
#include "dma/orchestrator.hpp"
#include "dma/progress.hpp"
#include "dma/proxy.hpp"
#include "dma/tuning.hpp"
#include "learner.hpp"
#include "modes.hpp"
#include "protocol.hpp"
#include "results.hpp"
#include "trees.hpp"
#include "worker.hpp"

namespace fs = std::filesystem;

namespace dma {

int broadcast_phase(RunContext& ctx, int phase) {
  if (ctx.mpi.size() < 2) return phase;
  int value = phase;
  MPI_Request request;
  DMA_MPI_CHECK(MPI_Ibcast(&value, 1, MPI_INT, 0, ctx.mpi.comm(), &request));
  // Workers may wait here while the learner pre-trains or trains the agent: a long limit.
  wait_with_watchdog(request, 30.0 * 24 * 3600, ctx.mpi.rank(), "waiting for the learner's next phase");
  return value;
}

namespace {

void prepare_run_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const auto probe = fs::path(dir) / ".dma-write-probe";
  std::ofstream out(probe);
  if (ec || !out)
    throw ConfigError(fmt::format("run.dir '{}' is not writable: choose a writable directory with --run.dir=DIR", dir));
  out.close();
  fs::remove(probe, ec);
}

/// "agent" alone means this run's agent checkpoint.
PolicySpec resolve_spec(const RunContext& ctx, PolicySpec spec) {
  if (spec.kind == PolicyKind::kAgent && spec.checkpoints.empty()) spec.checkpoints = {ctx.agent_path()};
  return spec;
}

}  // namespace

void check_policies(const RunContext& ctx, const std::vector<PolicySpec>& specs) {
  const auto domains = domain_context(ctx);
  const PolicySettings settings = policy_settings(ctx.config);
  std::set<std::string> checked;
  for (const auto& s : specs) {
    const std::string name = to_string(s);
    if (!checked.insert(name).second) continue;
    require_storable_policy_name(name);  // before any rollout, not when its episodes begin
    ctx.policies.make(s, domains, settings);
  }
}

std::vector<std::string> policy_names(const std::vector<PolicySpec>& specs) {
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(to_string(s));
  return names;
}

std::vector<PolicyResult> print_results(const RunContext& ctx, const std::string& store_path,
                                        const std::vector<std::string>& order, const std::vector<std::string>& oracle,
                                        const std::vector<std::string>& listed, const std::string& stem) {
  const auto store = StoreReader::open(store_path);
  const auto rows = policy_results(store, ctx.config.eval, order, oracle, listed);
  std::fprintf(stdout, "%s", results_text(rows, ctx.config.eval.score).c_str());
  std::fflush(stdout);
  if (stem.empty()) return rows;
  std::ofstream(ctx.path(stem + ".csv")) << results_csv(rows);
  std::ofstream(ctx.path(stem + ".md")) << results_markdown(rows, ctx.config.eval.score);
  log_line(fmt::format("wrote {} and {}", ctx.path(stem + ".csv"), ctx.path(stem + ".md")));
  return rows;
}

void require_base(const RunContext& ctx) {
  if (!fs::exists(ctx.base_path()))
    throw CheckpointError(
        fmt::format("base checkpoint '{}' not found: run --mode pretrain first (same run.dir)", ctx.base_path()));
}

void check_apart_from_evaluation(const RunContext& ctx, std::uint64_t offset, int count, const std::string& what) {
  const auto& ev = ctx.config.evaluate;
  if (offset < ev.seed_offset + static_cast<std::uint64_t>(ev.seeds) &&
      ev.seed_offset < offset + static_cast<std::uint64_t>(count))
    throw ConfigError(
        fmt::format("{} overlap the evaluation seeds ({}..{}): no evaluation seed may choose a policy; "
                    "move one offset",
                    what, ev.seed_offset, ev.seed_offset + ev.seeds - 1));
}

bool roll_out(RunContext& ctx, const std::string& stem, const std::vector<PolicySpec>& specs, int seeds,
              std::uint64_t seed_offset, bool resume, const std::vector<std::int64_t>& indices) {
  std::vector<EpisodePlan> plans;
  for (size_t p = 0; p < specs.size(); ++p) {
    const std::int64_t index = indices.empty() ? static_cast<std::int64_t>(p) : indices.at(p);
    for (int k = 0; k < seeds; ++k)
      plans.push_back({index * seeds + k, static_cast<std::int64_t>(seed_offset) + k, specs[p]});
  }
  auto store = open_store(ctx, ctx.path(stem + ".h5"), resume);
  const auto pending = pending_plans(plans, store, ctx.path(stem + ".h5"), ctx.config.run.seed);
  log_line(
      fmt::format("{}: {} policies x {} seeds, {} trajectories to run", stem, specs.size(), seeds, pending.size()));
  if (run_episodes(ctx, store, pending, stem)) return true;
  log_line(fmt::format("{}: stopped by a signal; run again with --resume to finish", stem));
  return false;
}

namespace {

int pretrain(RunContext& ctx, bool skip_existing) {
  if (fs::exists(ctx.base_path())) {
    if (!skip_existing)
      throw CheckpointError(
          fmt::format("'{}' exists: pass --resume to keep it, or delete it to pre-train again", ctx.base_path()));
    log_line(fmt::format("pretrain: {} exists, skipped", ctx.base_path()));
    return 0;
  }
  Config c = ctx.config;
  // Workers idle (sleeping) during pre-training: with proxy.threads = 0 the learner takes
  // every core it may run on.
  if (ctx.auto_threads) c.proxy.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  run_pretrain(c, ctx.space);
  return 0;
}

int collect(RunContext& ctx, bool resume) {
  require_base(ctx);
  const PolicyMix mix = parse_policy_mix(ctx.config.collect.policies);
  std::vector<EpisodePlan> plans;
  for (std::int64_t id = 0; id < ctx.config.collect.trajectories; ++id)
    plans.push_back({id, id, resolve_spec(ctx, mix.specs[assign_policy(mix, ctx.config.run.seed, id)])});
  place_in_trees(plans, ctx.config);
  std::vector<PolicySpec> specs;
  for (const auto& p : plans) specs.push_back(p.policy);
  check_policies(ctx, specs);
  bool finished = false;
  {  // the writer closes before the summary reads the store
    auto store = open_store(ctx, ctx.store_path(), resume);
    const auto pending = pending_plans(plans, store, ctx.store_path(), ctx.config.run.seed);
    log_line(fmt::format("collect: {} of {} trajectories to run on {} workers x {} slots into {}", pending.size(),
                         plans.size(), ctx.workers(), ctx.config.orchestrator.slots, ctx.store_path()));
    std::vector<EpisodePlan> roots;  // every plan when flat; tree branches run after their roots
    for (const auto& p : pending)
      if (p.parent < 0) roots.push_back(p);
    finished = run_episodes(ctx, store, roots, "collect");
  }
  if (finished) finished = collect_branches(ctx, plans);
  if (!finished) {
    log_line("collect: stopped by a signal; the store is flushed: run again with --resume to finish");
    return 0;
  }
  print_results(ctx, ctx.store_path(), {}, {}, {}, "");
  return 0;
}

int evaluate(RunContext& ctx, bool resume) {
  require_base(ctx);
  std::vector<PolicySpec> listed, oracle;
  for (const auto& s : parse_policy_specs(ctx.config.evaluate.policies)) listed.push_back(resolve_spec(ctx, s));
  for (const auto& s : parse_policy_specs(ctx.config.evaluate.oracle)) oracle.push_back(resolve_spec(ctx, s));
  if (listed.empty() && oracle.empty())
    throw ConfigError("evaluate.policies is empty: list the policies to compare, e.g. uniform,fixed:0.5");
  // Every other spec fails before the tuning's rollouts, which have built the tuned ones.
  std::vector<PolicySpec> untuned = oracle;
  for (const auto& s : listed)
    if (!needs_tuning(s)) untuned.push_back(s);
  check_policies(ctx, untuned);
  listed = resolve_tuned(ctx, listed);
  // One rollout set per name: the oracle grid may repeat a listed policy.
  std::vector<PolicySpec> specs = listed;
  for (const auto& s : oracle) {
    const auto names = policy_names(specs);
    if (std::find(names.begin(), names.end(), to_string(s)) == names.end()) specs.push_back(s);
  }
  if (!roll_out(ctx, "eval", specs, ctx.config.evaluate.seeds, ctx.config.evaluate.seed_offset, resume)) return 0;
  print_results(ctx, ctx.path("eval.h5"), policy_names(specs), policy_names(oracle), policy_names(listed), "eval");
  return 0;
}

std::vector<std::string> agent_stores(const RunContext& ctx) {
  std::vector<std::string> stores;
  for (const auto& s : parse_policy_list(ctx.config.agent.stores)) stores.push_back(s);
  if (stores.empty()) stores.push_back(ctx.store_path());
  return stores;
}

/// Before any training: the selection rollouts must not use an evaluation seed.
void check_selection_seeds(const RunContext& ctx) {
  const AgentConfig& ac = ctx.config.agent;
  check_apart_from_evaluation(
      ctx, ac.selection_seed_offset, ac.selection_seeds,
      fmt::format("agent.selection_seed_offset = {} makes the selection seeds", ac.selection_seed_offset));
}

/// Rolls every agent checkpoint out on the selection seeds (never evaluation seeds) into
/// <stem>.h5 and copies the one with the best mean balanced score to agent.pt. A signal stops
/// the rollouts before any copy (they resume).
void keep_best_by_rollouts(RunContext& ctx, const std::string& stem, const std::vector<std::string>& checkpoints,
                           const std::string& mode) {
  const AgentConfig& ac = ctx.config.agent;
  std::vector<PolicySpec> specs;
  for (const auto& c : checkpoints) specs.push_back(agent_spec({c}));
  const bool resume = fs::exists(ctx.path(stem + ".h5"));
  if (!roll_out(ctx, stem, specs, ac.selection_seeds, ac.selection_seed_offset, resume)) return;
  const auto names = policy_names(specs);
  const auto rows = print_results(ctx, ctx.path(stem + ".h5"), names, {}, {}, stem);
  const auto best = std::max_element(rows.begin(), rows.end(), [](const PolicyResult& a, const PolicyResult& b) {
    return a.balanced_mean < b.balanced_mean;
  });
  const std::string& chosen =
      checkpoints.at(static_cast<size_t>(std::find(names.begin(), names.end(), best->policy) - names.begin()));
  fs::copy_file(chosen, ctx.agent_path(), fs::copy_options::overwrite_existing);
  log_line(fmt::format("{}: kept {} ({:+.4f} on {} selection seeds), wrote {}", mode, chosen, best->balanced_mean,
                       ac.selection_seeds, ctx.agent_path()));
}

/// agent.candidates agents trained on seeds run.seed + k, each rolled out on the selection
/// seeds (never the evaluation seeds); the best mean balanced score becomes agent.pt. Offline
/// RL on this scale varies a lot between training seeds (docs/study.md): selection by
/// rollouts catches the seeds whose critic sent the actor over the score's cliff.
int train_and_select(RunContext& ctx) {
  const AgentConfig& ac = ctx.config.agent;
  if (ctx.workers() < 1)
    throw ConfigError(
        fmt::format("agent.candidates = {} rolls the candidates out on workers: run train-agent under "
                    "`mpirun -n 3`, or set agent.candidates=1",
                    ac.candidates));
  check_selection_seeds(ctx);
  require_base(ctx);
  std::vector<std::string> checkpoints;
  std::vector<OfflineStore> stores;  // read once, for every candidate still to train
  for (int k = 0; k < ac.candidates; ++k) {
    const auto path = ctx.path(fmt::format("agent-candidate-{}.pt", k));
    if (fs::exists(path)) {
      log_line(fmt::format("train-agent: {} exists, kept", path));
    } else {
      if (stores.empty())
        for (const auto& p : agent_stores(ctx)) stores.push_back(load_offline_store(p));
      Config c = ctx.config;
      c.run.seed = ctx.config.run.seed + static_cast<std::uint64_t>(k);
      const auto report = train_agent_offline(c, stores, path);
      log_line(fmt::format("train-agent: candidate {}/{} in {}, wrote {}", k + 1, ac.candidates,
                           format_duration(report.seconds), path));
    }
    checkpoints.push_back(path);
    if (stop_requested()) return 0;
  }
  keep_best_by_rollouts(ctx, "selection", checkpoints, "train-agent");
  return 0;
}

int train_agent_mode(RunContext& ctx, bool skip_existing) {
  if (fs::exists(ctx.agent_path())) {
    if (!skip_existing)
      throw CheckpointError(
          fmt::format("'{}' exists: pass --resume to keep it, or delete it to train again", ctx.agent_path()));
    log_line(fmt::format("train-agent: {} exists, skipped", ctx.agent_path()));
    return 0;
  }
  if (ctx.config.agent.candidates > 1) return train_and_select(ctx);
  const auto report = train_agent(ctx.config, agent_stores(ctx), ctx.agent_path());
  log_line(fmt::format("train-agent: {} transitions of {} episodes in {}, wrote {}", report.transitions,
                       report.episodes, format_duration(report.seconds), ctx.agent_path()));
  return 0;
}

/// Generation g's checkpoint; generation 0 is the offline agent the generations start from.
std::string generation_checkpoint(const RunContext& ctx, int g) {
  return g == 0 ? ctx.path("agent-offline.pt") : ctx.path(fmt::format("agent-gen-{}.pt", g));
}

/// The number of generations already done (iterate.state, with --resume); at 0 the offline
/// agent is agent.pt, copied to generation 0's file (agent.pt becomes a generation later).
int generations_done(const RunContext& ctx, bool resume) {
  const std::string state_path = ctx.path("iterate.state");
  int done = 0;
  if (resume && fs::exists(state_path)) std::ifstream(state_path) >> done;
  done = std::min(done, ctx.config.iterate.generations);
  if (done == 0) {
    if (!fs::exists(ctx.agent_path()))
      throw CheckpointError(fmt::format("agent '{}' not found: run --mode train-agent first", ctx.agent_path()));
    fs::copy_file(ctx.agent_path(), generation_checkpoint(ctx, 0), fs::copy_options::overwrite_existing);
  } else if (!fs::exists(generation_checkpoint(ctx, done))) {
    throw CheckpointError(
        fmt::format("{} says {} generations are done, but {} is missing: delete {} to start the "
                    "generations again",
                    state_path, done, generation_checkpoint(ctx, done), state_path));
  }
  return done;
}

/// Generations first..iterate.generations-1; false when a signal stopped them (they resume).
bool run_generations(RunContext& ctx, int first, bool resume) {
  const auto& it = ctx.config.iterate;
  auto store = open_store(ctx, ctx.store_path(), resume || fs::exists(ctx.store_path()));
  // Updates see the offline stores as well as the rollouts appended to this run's store.
  auto stores = agent_stores(ctx);
  if (std::find(stores.begin(), stores.end(), ctx.store_path()) == stores.end()) stores.push_back(ctx.store_path());
  const std::int64_t slots = static_cast<std::int64_t>(ctx.workers()) * ctx.config.orchestrator.slots;
  const std::int64_t per_gen = it.trajectories > 0 ? it.trajectories : slots;
  constexpr std::int64_t kIterateIds = 1000000000;  // iterate's ids never meet collect's
  for (int g = first; g < it.generations; ++g) {
    const PolicySpec spec = agent_spec({generation_checkpoint(ctx, g)}, it.exploration_std);
    std::vector<EpisodePlan> plans;
    for (std::int64_t b = 0; b < per_gen; ++b) {
      const std::int64_t id = kIterateIds + g * per_gen + b;
      plans.push_back({id, id, spec});
    }
    const auto pending = pending_plans(plans, store, ctx.store_path(), ctx.config.run.seed);
    if (!run_episodes(ctx, store, pending, fmt::format("iterate gen {}", g + 1))) return false;
    store.flush();
    const std::string next = generation_checkpoint(ctx, g + 1);
    train_agent(ctx.config, stores, next, generation_checkpoint(ctx, g), it.updates_per_generation);
    fs::copy_file(next, ctx.agent_path(), fs::copy_options::overwrite_existing);
    std::ofstream(ctx.path("iterate.state")) << g + 1;
    log_line(fmt::format("iterate: generation {}/{} done, wrote {}", g + 1, it.generations, next));
  }
  return true;
}

/// Online generations (DESIGN §3): each rolls out the latest agent with exploration noise,
/// appends the episodes to this run's store and updates the agent on every store, writing
/// agent-gen-<g>.pt. Updates on an agent's own data can overshoot as well as improve
/// (docs/study.md), so the generation that scores best on the selection seeds (the offline
/// agent included) becomes agent.pt (IterateConfig::select; without it the last one does).
int iterate(RunContext& ctx, bool resume) {
  require_base(ctx);
  const auto& it = ctx.config.iterate;
  if (it.select) check_selection_seeds(ctx);
  const int first = generations_done(ctx, resume);
  if (first == it.generations) log_line(fmt::format("iterate: {} generations done, skipped", first));
  if (!run_generations(ctx, first, resume)) return 0;  // the store closes before the selection reads it
  if (!it.select || it.generations == 0) return 0;
  std::vector<std::string> checkpoints;
  for (int g = 0; g <= it.generations; ++g) checkpoints.push_back(generation_checkpoint(ctx, g));
  keep_best_by_rollouts(ctx, "iterate-selection", checkpoints, "iterate");
  return 0;
}

int pipeline(RunContext& ctx) {
  pretrain(ctx, true);
  if (stop_requested()) return 0;
  collect(ctx, fs::exists(ctx.store_path()));
  if (stop_requested()) return 0;
  train_agent_mode(ctx, true);
  if (stop_requested()) return 0;
  if (ctx.config.iterate.generations > 0) {
    iterate(ctx, true);
    if (stop_requested()) return 0;
  }
  return evaluate(ctx, fs::exists(ctx.path("eval.h5")));
}

/// What each of kModes runs on the learner, and whether it needs workers.
struct ModeRunner {
  std::string_view name;
  bool needs_workers;
  int (*run)(RunContext& ctx, bool resume);
};
constexpr std::array<ModeRunner, kModes.size()> kModeRunners = {{
    {"pretrain", false, &pretrain},
    {"collect", true, &collect},
    {"train-agent", false, &train_agent_mode},
    {"iterate", true, &iterate},
    {"evaluate", true, &evaluate},
    {"headroom", true, &headroom},
    {"pipeline", true, [](RunContext& ctx, bool) { return pipeline(ctx); }},
}};
constexpr bool runners_follow_modes() {
  for (std::size_t i = 0; i < kModes.size(); ++i)
    if (kModeRunners[i].name != kModes[i]) return false;
  return true;
}
static_assert(runners_follow_modes(), "kModeRunners must list kModes (include/dma/config.hpp) in its order");

const ModeRunner& mode_runner(const std::string& mode) {
  for (const auto& m : kModeRunners)
    if (m.name == mode) return m;
  throw ConfigError(fmt::format("--mode '{}' is not valid: use {}", mode, mode_list()));
}

/// Debian 12's OpenBLAS takes some newer CPUs for generic ones and runs its Prescott kernels,
/// 3-4x slower here (launch/blas-env.sh, which launch/mpirun.sh sources, fixes that).
void warn_if_generic_blas() {
  using CoreName = char* (*)();
  const auto corename = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!corename || std::string(corename()) != "Prescott" || !__builtin_cpu_supports("avx2")) return;
  // The same choice as launch/blas-env.sh: SkylakeX needs the AVX-512 subsets its kernels use.
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  log_line(
      fmt::format("warning: OpenBLAS runs its generic Prescott kernels on this CPU, which has {}: proxy steps "
                  "are 3-4x slower; set OPENBLAS_CORETYPE={} (launch/mpirun.sh does)",
                  avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell"));
}

}  // namespace

int run_orchestrator(const Config& config, MpiSession& mpi) {
  install_stop_handlers();
  const ModeRunner& mode = mode_runner(config.mode);
  if (mode.needs_workers && mpi.size() < 2)
    throw ConfigError(
        fmt::format("--mode {} needs at least 2 MPI ranks (1 learner + workers): run under "
                    "`mpirun -n 3` or `srun -n 3`",
                    config.mode));
  Config effective = config;
  if (effective.proxy.threads == 0) effective.proxy.threads = cores_per_rank(mpi);
  if (mpi.rank() == 0) {
    prepare_run_dir(effective.run.dir);
    warn_if_generic_blas();
  }
  RunContext ctx{effective, mpi, DomainSpace::open(effective.data.space), config.proxy.threads == 0,
                 agent_policy_registry()};
  if (!ctx.is_learner()) {
    run_worker(ctx);
    return 0;
  }
  int rc = 0;
  try {
    rc = mode.run(ctx, ctx.config.resume);
  } catch (const RolloutsStopped&) {
    log_line("stopped by a signal; the stores are flushed: run again with --resume to finish");
  }
  broadcast_phase(ctx, protocol::kPhaseDone);
  return rc;
}

}  // namespace dma
