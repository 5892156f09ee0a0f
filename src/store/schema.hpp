#pragma once
/// Internal: the store's datasets (DESIGN §5) as one table shared by the writer and the
/// reader, and the attribute helpers the core h5 layer lacks (numeric arrays).
#include <hdf5.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dma/store.hpp"

namespace dma::store_detail {

/// Element types used by the store.
enum class Elem { kF32, kU8, kI32, kI64, kU64, kStr };
/// Row width of a dataset: scalar, obs_dim, D, or a fixed-length string.
enum class Width { kOne, kObs, kDomains };

struct ColumnSpec {
  const char* path;
  Elem elem;
  Width width;
  double fill;  ///< fill value of rows never written
};

/// Transition datasets, one row per transition.
enum TransitionColumn : int {
  kObs,
  kNextObs,
  kActions,
  kRewards,
  kTerminals,
  kTimeouts,
  kEpisodeId,
  kStep,
  kEvalLoss,
  kSourceScore,
  kTargetScore,
  kMathAccuracy,
  kTrainTokens,
  kWallSeconds,
  kNumTransitionColumns
};
/// Episode datasets, one row per episode.
enum EpisodeColumn : int {
  kEpId,
  kEpSeed,
  kEpStart,
  kEpLength,
  kEpStatus,
  kEpRank,
  kEpPolicy,
  kEpReturn,
  kEpChecksum,
  kEpParent,
  kEpBranchStep,
  kNumEpisodeColumns
};
/// Columns from here on came with trajectory trees: a store written before them lacks them
/// and reads as flat (parent -1, branch_step 0).
inline constexpr int kFirstTreeColumn = kEpParent;

inline constexpr std::array<ColumnSpec, kNumTransitionColumns> kTransitionColumns{{
    {"observations", Elem::kF32, Width::kObs, 0},
    {"next_observations", Elem::kF32, Width::kObs, 0},
    {"actions", Elem::kF32, Width::kDomains, 0},
    {"rewards", Elem::kF32, Width::kOne, 0},
    {"terminals", Elem::kU8, Width::kOne, 0},
    {"timeouts", Elem::kU8, Width::kOne, 0},
    {"infos/episode_id", Elem::kI64, Width::kOne, -1},
    {"infos/step", Elem::kI32, Width::kOne, -1},
    {"infos/eval_loss", Elem::kF32, Width::kDomains, 0},
    {"infos/source_score", Elem::kF32, Width::kOne, 0},
    {"infos/target_score", Elem::kF32, Width::kOne, 0},
    {"infos/math_accuracy", Elem::kF32, Width::kOne, -1},
    {"infos/train_tokens", Elem::kI64, Width::kOne, 0},
    {"infos/wall_seconds", Elem::kF32, Width::kOne, 0},
}};

inline constexpr std::array<ColumnSpec, kNumEpisodeColumns> kEpisodeColumns{{
    {"episodes/id", Elem::kI64, Width::kOne, -1},
    {"episodes/seed", Elem::kU64, Width::kOne, 0},
    {"episodes/start", Elem::kI64, Width::kOne, 0},
    {"episodes/length", Elem::kI32, Width::kOne, 0},
    {"episodes/status", Elem::kU8, Width::kOne, 0},
    {"episodes/rank", Elem::kI32, Width::kOne, 0},
    {"episodes/policy", Elem::kStr, Width::kOne, 0},
    {"episodes/return", Elem::kF32, Width::kOne, 0},
    {"episodes/checksum", Elem::kU64, Width::kOne, 0},
    {"episodes/parent", Elem::kI64, Width::kOne, -1},
    {"episodes/branch_step", Elem::kI32, Width::kOne, 0},
}};

/// Bytes of one element in memory.
std::size_t elem_size(Elem e);
/// The native memory type (a new handle for strings: the caller closes it via `owned`).
hid_t mem_type(Elem e, hid_t* owned);
/// The little-endian file type (same ownership rule).
hid_t file_type(Elem e, hid_t* owned);
/// The HDF5 type class a stored dataset of this element must have.
H5T_class_t type_class(Elem e);
/// Columns of one row for this header.
hsize_t columns(Width w, const StoreHeader& h);

/// Numeric array attributes.
void write_attr_floats(hid_t obj, const std::string& name, const std::vector<float>& v);
std::vector<float> read_attr_floats(hid_t obj, const std::string& name);
void write_attr_doubles(hid_t obj, const std::string& name, const std::vector<double>& v);
std::vector<double> read_attr_doubles(hid_t obj, const std::string& name);
void write_attr_u64(hid_t obj, const std::string& name, std::uint64_t v);
std::uint64_t read_attr_u64(hid_t obj, const std::string& name);

/// Writes every header attribute on the root group.
void write_header(hid_t root, const StoreHeader& h);
/// Reads and checks the header attributes ("format", version, sizes); `path` for messages.
StoreHeader read_header(hid_t root, const std::string& path);

/// The fapl every store open uses (latest format: SWMR and checksummed metadata).
hid_t make_fapl(bool clear_flags);

/// Parses "source"/"target".
Field parse_field(const std::string& s, const std::string& path);

}  // namespace dma::store_detail
