#pragma once
/// The run configuration: INI files (configs/*.ini) read by Boost.Program_options, every
/// key overridable on the command line as --section.key=value. Each section is a plain
/// struct; defaults here are the embedded default's. Keys are registered, range-checked
/// and printed in src/core/config.cpp (one register_* function per section).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dma {

/// dma_orchestrate's modes (DESIGN §3), in the order a run goes through them.
inline constexpr std::array<std::string_view, 7> kModes = {"pretrain", "collect",  "train-agent", "iterate",
                                                           "evaluate", "headroom", "pipeline"};
/// "pretrain|collect|...": the modes for help texts and errors.
std::string mode_list();

struct RunConfig {
  std::string dir = "runs/demo";   ///< everything a run writes goes under here
  std::uint64_t seed = 1;          ///< run seed; trajectory seeds derive from (seed, id)
  double progress_seconds = 10.0;  ///< period of plain progress lines when not on a terminal
};

struct DataConfig {
  std::string space = "runs/demo/data.space";  ///< the domain-space HDF5 file
};

struct ProxyConfig {
  int n_layers = 2;
  int d_model = 64;
  int n_heads = 4;
  double ffn_mult = 2.0;        ///< SwiGLU hidden size = ffn_mult * d_model (rounded to 8)
  int seq_len = 0;              ///< 0: the domain space's seq_len
  std::string device = "auto";  ///< auto|cpu|cuda
  int threads = 0;              ///< 0: this rank's share of the node's cores
};

struct TrainConfig {
  int batch_size = 16;        ///< rows (sequences) per optimizer step
  double lr = 2e-3;           ///< peak learning rate of the CPT trajectory
  double min_lr_ratio = 0.1;  ///< cosine decays to lr * min_lr_ratio
  int warmup_steps = 10;      ///< re-warm-up at the start of the trajectory
  double weight_decay = 0.1;
  double grad_clip = 1.0;    ///< AdamW's betas are 0.9 and 0.95 (proxy/optimizer.hpp)
  int steps_per_round = 20;  ///< S: optimizer steps per re-weighting step
  int horizon = 16;          ///< T: re-weighting steps per trajectory
};

struct PretrainConfig {
  int steps = 600;
  double lr = 3e-3;
  int warmup_steps = 30;
  int batch_size = 16;
};

struct EvalConfig {
  int eval_rows = 32;              ///< held-out rows per domain (fixed subset)
  int bench_problems = 64;         ///< math exact-match problems (0 disables)
  int max_answer_tokens = 12;      ///< greedy decoding budget for an answer
  std::string score = "budget";    ///< balanced score: mean|min|weighted|normalized|budget
  double target_weight = 0.5;      ///< for `weighted`
  double source_scale = 1.0;       ///< for `normalized`
  double target_scale = 1.0;       ///< for `normalized`
  double budget_tolerance = 0.02;  ///< for `budget`: source loss allowed before the penalty
  double budget_penalty = 4.0;     ///< for `budget`: penalty per unit of source loss beyond it
};

struct OrchestratorConfig {
  int slots = 1;  ///< proxies (trajectories) per worker rank
};

struct CommConfig {
  std::string backend = "auto";  ///< auto|mpi|nccl: the Collective make_collective builds (comm_probe)
  double timeout_s = 600.0;      ///< watchdog: a wait on another rank lasting longer is an error
};

struct CollectConfig {
  int trajectories = 192;  ///< M
  /// A policy mix, probabilities sum to 1: mostly random walks of the field shares, and the
  /// corners a walk seldom reaches.
  std::string policies = "random:0.85,uniform:0.05,target-only:0.05,natural:0.05";
  std::string store = "";  ///< "": <run.dir>/store.h5
  /// Trajectory trees: 0 collects flat trajectories. B > 0 groups the trajectory ids in trees
  /// of 1 + B: the first (the root) runs the whole horizon and keeps its model and optimiser
  /// state after branch_step steps; the B others copy its first branch_step rows and continue
  /// from that state under their own policy and seeds.
  int branches = 0;
  int branch_step = 0;  ///< k, 1..T-1: steps the branches share with their root (0: T/2)
  /// k that trees use (branch_step, or half the horizon when 0).
  int shared_steps(int horizon) const { return branch_step > 0 ? branch_step : horizon / 2; }
};

struct RandomPolicyConfig {
  double concentrate_prob = 0.1;  ///< chance that a field's weight sits on few domains
  double within_alpha = 1.0;      ///< Dirichlet concentration within a field
  double smoothness = 0.7;        ///< 0: a new draw each step; near 1: slow drift
  int knots = 4;                  ///< control points of a field-share curve over the horizon (fixed, not a key)
};

/// Fixed by the recipe, not configuration keys.
struct OnlineEgConfig {
  double step_size = 1.0;  ///< exponentiated-gradient step on loss progress
  double smoothing = 0.1;  ///< mix with uniform to keep every domain alive
};

struct EvaluateConfig {
  /// The agent against the tuned baselines (the bar) and the usual heuristics.
  std::string policies =
      "agent,tuned-fixed,tuned-schedule,uniform,natural,target-only,fixed:0.5,online-eg,regmix,random";
  std::string oracle = "";              ///< policies reported as the oracle grid
  int seeds = 16;                       ///< K seeds per policy
  std::uint64_t seed_offset = 1000000;  ///< evaluation trajectory ids never overlap collection ids
};

/// Tuned baselines (`tuned-fixed`, `tuned-schedule`): a compass search over a constant target
/// share, or over a linear schedule's mean share and tilt, scored by rollouts on the selection
/// seeds (agent.selection_seed_offset..), never on evaluation seeds.
struct TuneConfig {
  int rollouts = 48;  ///< rollouts each family may spend (candidates x seeds)
  int seeds = 4;      ///< selection seeds per candidate
};

struct AgentConfig {
  // The network sizes were measured on the simulated CPT of tests/agent/sim.hpp (50-episode
  // stores); the training recipe on the embedded default (docs/study.md).
  std::string stores = "";  ///< train-agent: comma-separated stores ("": <run.dir>/store.h5)
  int d_token = 32;         ///< token width (a step takes half the time of 64)
  int n_layers = 2;
  int n_heads = 4;
  double bc_top_q = 0.25;  ///< fraction of episodes (by recomputed return) cloned
  int bc_steps = 300;      ///< warm start: actor clones, critics learn alongside
  int cql_steps = 1200;
  double cql_alpha = 3;  ///< conservative weight, on rewards centred and scaled to unit std (docs/study.md)
  /// Step features the actor reads (the critics read all): the field-level state, i.e. the
  /// time and the source score that the budget constrains. The collected random walks are
  /// smooth, so whatever reveals an episode's past target share predicts its next one, and
  /// an actor that reads it learns to copy it: its previous weights (target shares
  /// 0.2..0.9 across training seeds), and the target score and per-domain loss changes (on a
  /// space whose target learns faster it read "my share was high" and went to 0.93). The
  /// absolute levels (log_loss, log_share_rel) are out of range on another corpus.
  std::string actor_features = "is_target,progress,source_score";
  /// > 0: the actor's d(target share)/d(source score) is held at or above this (a squared
  /// shortfall in its losses): a lower source score never asks for more target.
  double source_gain = 8;
  int candidates = 1;                             ///< >1: train this many (seeds run.seed+k), keep the best by rollouts
  int selection_seeds = 3;                        ///< rollouts per candidate
  std::uint64_t selection_seed_offset = 2000000;  ///< their seed ids: never the evaluation seeds
  double actor_lr = 3e-4;
  double critic_lr = 3e-4;
  int batch_size = 64;
  int threads = 1;  ///< intra-op threads while training and acting (0: leave LibTorch's setting)

  // The rest is fixed by the recipe and not a configuration key; code that trains small agents
  // (the tests) sets it directly.
  int history = 1;             ///< steps of features per domain token
  int n_sampled_actions = 10;  ///< per proposal (uniform logits, policy at o, policy at o')
  double discount = 0.99;
  int n_step = 1;                ///< rewards summed before a backup bootstraps
  bool field_balanced = true;    ///< the actor weighs fields, not domains (features.hpp field_log_counts)
  double tau = 0.05;             ///< 0.005 cannot carry values back over a 16-step horizon in 1000 steps
  double logit_box = 4.0;        ///< half-width of the box CQL samples logits from
  double val_fraction = 0.1;     ///< episodes held out for validation
  double exploration_std = 0.0;  ///< logit noise of the `agent:` policy when its spec sets none
  double bc_lr = 1e-3;           ///< learning rate of the behaviour-cloning warm start
  double actor_bc_weight = 0.5;  ///< TD3+BC: weight of cloning the best episodes in the actor loss
  bool cql_calibrate = true;     ///< Cal-QL: sampled actions are not pushed below the data's return
  double target_noise = 0.3;     ///< TD3 target smoothing: logit noise std on the backup's action
};

struct IterateConfig {
  int generations = 0;   ///< online generations after the offline training; they did not beat it (docs/study.md)
  int trajectories = 0;  ///< rollouts per generation; 0: one per worker slot
  int updates_per_generation = 300;
  double exploration_std = 0.3;  ///< logit noise in the rollouts (fixed by the recipe, not a key)
  /// agent.pt is the generation (offline agent included) best on the selection seeds; false
  /// (the last generation) only in code. Fixed by the recipe, not a key.
  bool select = true;
};

struct RegmixConfig {
  int samples = 20000;  ///< simplex samples searched for the best static mixture
};

struct Config {
  std::string config_file;  ///< the INI file given by --config ("" if none)
  std::string mode;         ///< one of kModes
  bool resume = false;
  RunConfig run;
  DataConfig data;
  ProxyConfig proxy;
  TrainConfig train;
  PretrainConfig pretrain;
  EvalConfig eval;
  OrchestratorConfig orchestrator;
  CommConfig comm;
  CollectConfig collect;
  RandomPolicyConfig random;
  OnlineEgConfig online_eg;
  EvaluateConfig evaluate;
  TuneConfig tune;
  AgentConfig agent;
  IterateConfig iterate;
  RegmixConfig regmix;
};

/// What load_config found on the command line besides the config.
struct CommandLine {
  Config config;
  bool print_config = false;
  bool help = false;
  std::string help_text;
};

/// Parses argv (--config FILE --mode MODE --resume --print-config --section.key=value ...).
/// Throws ConfigError naming the key (with the closest valid key for an unknown one).
CommandLine parse_command_line(int argc, const char* const* argv);

/// Parses INI text alone (tests, stores that carry their config).
Config parse_ini_text(const std::string& ini_text);

/// The [eval] section of a stored config (a store's or an agent checkpoint's): a config from
/// another dma version may hold keys this one does not know, so only that section is parsed
/// when the whole text fails. Throws ConfigError when the section itself does not parse.
EvalConfig stored_eval_config(const std::string& ini_text);

/// The effective configuration as INI text (every key, sections in a fixed order).
std::string to_ini(const Config& config);

/// All registered keys as "section.key" (for suggestions and documentation).
std::vector<std::string> config_keys();

/// Levenshtein-closest of `candidates` to `key` (empty if nothing is close).
std::string closest_key(const std::string& key, const std::vector<std::string>& candidates);

}  // namespace dma
