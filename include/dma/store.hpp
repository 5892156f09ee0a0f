#pragma once
/// The trajectory store (DESIGN §5): one HDF5 file, D4RL-compatible flat datasets at the
/// root, one row per transition, written by the learner alone in SWMR mode and flushed
/// every round. A generation reserves a block of `horizon` rows per episode, so every
/// episode's rows are contiguous ([start, start + length)); rows an episode never reached
/// (it failed or was interrupted) keep infos/step = -1.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dma/error.hpp"
#include "dma/types.hpp"

namespace dma {

inline constexpr const char* kStoreFormat = "dma-trajectory-store";
inline constexpr int kStoreFormatVersion = 1;
/// Fixed-length policy strings (SWMR appends cannot grow a variable-length heap). Wide
/// enough for `fixed:` weights over ~60 domains; a longer name is refused, never cut, since
/// two cut names could merge two policies' episodes. Files written with a narrower column
/// (96 before) read the same.
inline constexpr int kPolicyNameBytes = 512;

/// Throws StoreError (one line, with the fix) when `policy` does not fit the policy column.
void require_storable_policy_name(const std::string& policy);

/// What a store is about; fixed at creation, checked on resume.
struct StoreHeader {
  std::vector<std::string> domain_names;
  std::vector<Field> domain_fields;
  std::vector<float> base_eval_loss;    ///< per-domain loss of the base model (rewards offline)
  std::vector<double> token_shares;     ///< natural shares (for observations offline)
  std::vector<std::string> obs_layout;  ///< names of the observation entries
  int horizon = 0;
  std::uint64_t space_fingerprint = 0;
  std::string config_ini;   ///< the full effective config
  std::string created_utc;  ///< set by create() when empty
  int num_domains() const { return static_cast<int>(domain_names.size()); }
  int obs_dim() const { return static_cast<int>(obs_layout.size()); }
};

/// One transition (o_t, a_t, r_t, o_{t+1}) with its infos.
struct Transition {
  std::int64_t episode_id = 0;
  std::int32_t step = 0;                ///< t
  std::vector<float> observation;       ///< (obs_dim)
  std::vector<float> next_observation;  ///< (obs_dim)
  std::vector<float> action;            ///< (D) weights used in step t
  float reward = 0;
  bool timeout = false;          ///< true on the episode's last stored step
  std::vector<float> eval_loss;  ///< (D) after the step
  float source_score = 0;
  float target_score = 0;
  float math_accuracy = -1;       ///< -1 when not measured
  std::int64_t train_tokens = 0;  ///< cumulative tokens of the episode
  float wall_seconds = 0;         ///< cumulative worker seconds of the episode
};

/// One row of /episodes.
struct EpisodeRecord {
  std::int64_t id = 0;
  std::uint64_t seed = 0;
  std::int64_t start = 0;   ///< first row of its block
  std::int32_t length = 0;  ///< rows written
  EpisodeStatus status = EpisodeStatus::kRunning;
  std::int32_t rank = 0;
  std::string policy;
  float return_ = 0;
  std::uint64_t checksum = 0;  ///< of its rows, set when it ends (0: none yet)
  std::int64_t parent = -1;    ///< a tree branch's root episode id (-1: not a branch)
  /// Rows [0, branch_step) of a branch are copies of its parent's (same prefix, own episode id).
  std::int32_t branch_step = 0;
};

/// How one episode ends: its index in StoreWriter::episodes(), final status, length, return.
struct EpisodeEnd {
  std::size_t index = 0;
  EpisodeStatus status = EpisodeStatus::kComplete;
  std::int32_t length = 0;
  float episode_return = 0;
};

/// The single writer (learner). Every call that changes the file leaves it readable. It
/// holds each running episode's rows in memory (H rows) so that ending it reads nothing back.
class StoreWriter {
 public:
  /// Creates a new store; refuses an existing file (StoreError says to use --resume).
  static StoreWriter create(const std::string& path, const StoreHeader& header);
  /// Reopens a store for appending after any stop (clears the superblock status flags left
  /// by a kill -9). Refuses a non-store, another format version, another domain space or
  /// horizon. Episodes found running are marked interrupted.
  static StoreWriter resume(const std::string& path, const StoreHeader& expected);
  ~StoreWriter();
  StoreWriter(StoreWriter&&) noexcept;
  StoreWriter& operator=(StoreWriter&&) noexcept;

  const StoreHeader& header() const;
  /// All episode rows so far (file order).
  const std::vector<EpisodeRecord>& episodes() const;

  /// Reserves a block of `horizon` rows for each new episode (status running) and returns
  /// their indices in episodes(). One call per generation.
  std::vector<std::size_t> begin_episodes(const std::vector<EpisodeRecord>& episodes);
  /// Records the rank each of these running episodes runs on (one write, whatever their
  /// number): episodes may be registered before a worker takes them.
  void set_ranks(std::span<const std::size_t> episode_indices, std::span<const std::int32_t> ranks);
  /// Writes transitions of running episodes (their step picks the row in the block).
  void write(std::span<const Transition> rows);
  /// Sets an episode's final status, length and return; marks its last row as a timeout.
  void end_episode(std::size_t episode_index, EpisodeStatus status, std::int32_t length, float episode_return);
  /// end_episode for many episodes at once (one write per column, whatever their number).
  void end_episodes(std::span<const EpisodeEnd> ends);
  /// Makes everything written visible to SWMR readers and durable against a kill.
  void flush();
  /// Marks every running episode interrupted and flushes (SIGTERM, errors).
  void interrupt_running();

 private:
  struct Impl;
  explicit StoreWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Whole columns of a row range, for bulk analysis (row-major).
struct RowBlock {
  std::int64_t start = 0;
  std::int64_t count = 0;
  std::vector<float> observations;       ///< (count, obs_dim), empty unless requested
  std::vector<float> next_observations;  ///< (count, obs_dim), empty unless requested
  std::vector<float> actions;            ///< (count, D)
  std::vector<float> eval_loss;          ///< (count, D)
  std::vector<float> rewards, source_score, target_score, math_accuracy, wall_seconds;  ///< (count)
  std::vector<std::uint8_t> terminals, timeouts;                                        ///< (count)
  std::vector<std::int64_t> episode_id, train_tokens;                                   ///< (count)
  std::vector<std::int32_t> step;  ///< (count), -1 on rows never written
};

/// Read side: opens in SWMR read mode (works while a run writes the file, and after a kill).
class StoreReader {
 public:
  /// Throws StoreError for a missing file, a non-HDF5 file, a non-store, a newer version.
  static StoreReader open(const std::string& path);
  ~StoreReader();
  StoreReader(StoreReader&&) noexcept;
  StoreReader& operator=(StoreReader&&) noexcept;

  const StoreHeader& header() const;
  /// Re-reads sizes and the episodes table (SWMR refresh).
  void refresh();
  std::int64_t num_rows() const;
  const std::vector<EpisodeRecord>& episodes() const;

  /// Rows [start, start + count) of the episode's block, whole transitions.
  std::vector<Transition> read_rows(std::int64_t start, std::int64_t count) const;
  /// The `length` written rows of one episode.
  std::vector<Transition> read_episode(const EpisodeRecord& episode) const;
  /// Rows [start, start + count) column by column (fast); observations only when asked.
  RowBlock read_block(std::int64_t start, std::int64_t count, bool with_observations = true) const;
  /// The file this reader opened.
  const std::string& path() const;
  /// True when opened in SWMR mode (a live or killed writer's file can be followed).
  bool swmr() const;

 private:
  struct Impl;
  explicit StoreReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Checksum of rows [first, first + count) of a block read with observations: what
/// /episodes/checksum holds for an ended episode (raw data has no HDF5 checksum).
std::uint64_t rows_checksum(const RowBlock& block, std::int64_t first, std::int64_t count);
/// Throws StoreError unless `block` (read with observations, holding the episode's rows)
/// shows the episode intact: steps 0..length-1, its id, and its checksum when it has one.
void verify_episode_rows(const EpisodeRecord& episode, const RowBlock& block, const std::string& path);
/// The checksum an ended episode stores: its rows (from `first` in `block`) and its own record.
std::uint64_t episode_checksum(const EpisodeRecord& episode, const RowBlock& block, std::int64_t first);

/// Clears the superblock status flags a killed SWMR writer leaves (what `h5clear -s` does).
void clear_status_flags(const std::string& path);

}  // namespace dma
