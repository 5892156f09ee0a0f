#pragma once
/// Offline analysis of trajectory stores (DESIGN §6, `dma_replay`): summaries, policy
/// comparisons, exports for the offline-RL ecosystem (D4RL, Minari, CSV), SVG plots and a
/// live follow of a running store. Balanced scores are recomputed from the stored per-domain
/// losses (score.hpp) under the store's own config or a chosen definition.
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <string>
#include <vector>

#include "dma/config.hpp"
#include "dma/store.hpp"

namespace dma::replay {

/// Which episodes a command looks at.
struct Selection {
  std::vector<std::string> policies;    ///< empty: all; "fixed" also matches "fixed:0.3"
  std::vector<EpisodeStatus> statuses;  ///< empty: all
  std::int64_t first_id = std::numeric_limits<std::int64_t>::min();
  std::int64_t last_id = std::numeric_limits<std::int64_t>::max();
  bool matches(const EpisodeRecord& e) const;
};

/// Parses --policy "a,b", --status "complete,failed|all", --episodes "A-B|A|A-|-B"; throws
/// ConfigError naming the option.
Selection parse_selection(const std::string& policies, const std::string& statuses, const std::string& episodes);

/// One episode's rows, reduced to what analysis needs. Shapes: T = steps, D = domains.
struct EpisodeData {
  EpisodeRecord record;
  int steps = 0;                      ///< rows visible (T)
  std::vector<float> weights;         ///< (T, D)
  std::vector<float> source, target;  ///< (T) stored field scores after each step
  std::vector<float> balanced;        ///< (T) recomputed balanced score after each step
  std::vector<float> rewards;         ///< (T) stored rewards
  std::int64_t tokens = 0;            ///< train tokens at the last step
  double wall_seconds = 0;            ///< worker seconds at the last step
  float math_accuracy = -1;           ///< at the last step (-1: not measured)
  double final_source() const { return steps ? source.back() : 0.0; }
  double final_target() const { return steps ? target.back() : 0.0; }
  double final_balanced() const { return steps ? balanced.back() : 0.0; }
};

/// A store loaded for analysis.
struct StoreData {
  std::string path;
  StoreHeader header;
  EvalConfig eval;  ///< the store's eval config, score possibly overridden
  std::int64_t rows = 0;
  std::vector<EpisodeData> episodes;  ///< the selected ones, file order
};

/// Loads the selected episodes; `score` ("" = the store's eval.score) picks the balanced
/// score. Verifies ended episodes against their checksums. Throws StoreError / ConfigError.
StoreData load(const std::string& path, const Selection& selection = {}, const std::string& score = "");

/// Mean, sample standard deviation and 95 % interval half-width (Student t).
struct Stats {
  std::int64_t n = 0;
  double mean = 0, std = 0, ci95 = 0;
};
Stats stats(const std::vector<double>& values);

enum class TableFormat { kText, kCsv, kMarkdown };
/// "text" | "csv" | "markdown" (or "md").
TableFormat parse_table_format(const std::string& s);

/// `dma_replay summary`: episodes by policy and status, steps, returns, final scores,
/// wall time and tokens (works on a live store).
std::string summary(const std::string& store, TableFormat format, const std::string& score = "");
/// `dma_replay compare`: one table of policies across stores (complete episodes) under each
/// score of the comma-separated `scores` (score specs as with_score takes them; "" = each
/// store's own). Every policy is compared, paired by seed, with `against` (default: the
/// store's first agent policy, if any), Holm-corrected over the store's policies.
std::string compare(const std::vector<std::string>& stores, TableFormat format, const std::string& scores = "",
                    const std::string& against = "");

enum class ExportFormat { kD4rl, kMinari, kCsv };
/// "d4rl" | "minari" | "csv".
ExportFormat parse_export_format(const std::string& s);

struct ExportOptions {
  ExportFormat format = ExportFormat::kD4rl;
  Selection selection;            ///< default: complete episodes (set by the app)
  std::string score;              ///< balanced score for the csv/infos column
  std::string dataset_id;         ///< Minari dataset id ("": dma/<stem>-v0)
  bool csv_observations = false;  ///< add the observation columns to csv
  bool force = false;             ///< overwrite an existing output
};
struct ExportResult {
  std::int64_t episodes = 0;
  std::int64_t transitions = 0;
};
/// `dma_replay export`: d4rl (one gzip HDF5 file), minari (a dataset directory holding
/// data/main_data.hdf5 and data/metadata.json) or csv (one row per transition).
ExportResult export_store(const std::string& store, const std::string& out, const ExportOptions& options);

/// `dma_replay plot`: SVGs under `out_dir` (weights_<policy>.svg, scores.svg, target_share.svg, rewards.svg,
/// returns.svg); returns the files written.
std::vector<std::string> plot(const std::string& store, const std::string& out_dir, const Selection& selection = {},
                              const std::string& score = "");

struct FollowOptions {
  double interval_s = 2.0;  ///< refresh period
  double timeout_s = 0.0;   ///< 0: wait for the run's end however long
};
/// `dma_replay follow`: a live view of a running store until every episode has ended and
/// the writer closed the file (returns 0), or the timeout (returns 2). Lines go to `out`.
int follow(const std::string& store, const FollowOptions& options, std::ostream& out);

struct ScheduleOptions {
  std::string policy;             ///< one policy of the store (as --policy selects it)
  std::string format;             ///< megatron|megatron-json|foundry|torchtitan|hf|json|csv
  std::int64_t total_tokens = 0;  ///< tokens of the run the schedule is for (> 0)
  std::int64_t global_batch = 0;  ///< tokens per optimizer step; > 0 adds iteration keys
  std::string data_prefix;        ///< prepended to each domain's name for data paths
};
/// `dma_replay schedule`: the policy's complete episodes as an open-loop schedule, one stage
/// per re-weighting step (its mixture averaged over episodes, with the spread), keyed by
/// tokens (and iterations), in a trainer's format; the text says it does not react to the
/// run. Throws ConfigError / StoreError.
std::string schedule(const std::string& store, const ScheduleOptions& options);

/// `dma_replay repair`: clears the status flags a killed writer leaves (plain HDF5 tools and
/// non-SWMR readers then open the file).
void repair(const std::string& store);

}  // namespace dma::replay
