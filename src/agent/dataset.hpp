#pragma once
// Offline data for the agent: the transitions of one or more stores as tensors, with the
// rewards recomputed from the stored per-domain losses under the configured balanced score.
// Dimension letters: N transitions, D domains, F token features.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dma/agent.hpp"
#include "dma/config.hpp"

namespace dma::agent {

/// Transitions that share a domain count (stores of different spaces train one network).
struct Group {
  int domains = 0;
  torch::Tensor tokens, next_tokens;  // (N, D, F) raw features
  torch::Tensor is_target;            // (N, D)
  torch::Tensor actions;              // (N, D) on the simplex
  torch::Tensor rewards;              // (N) recomputed, not yet scaled
  torch::Tensor not_done;             // (N) 0 where the row ends the horizon: nothing is worth anything after it
  torch::Tensor episode;              // (N) index into Dataset::episodes
  torch::Tensor train_rows, val_rows, bc_rows, val_bc_rows;  // row indices (long)
};

struct EpisodeInfo {
  std::string store;
  std::int64_t id = 0;
  bool complete = false;
  bool val = false;
  bool top = false;  // cloned in the warm start
  double ret = 0;    // recomputed return (= final balanced score for a complete episode)
};

struct Dataset {
  std::vector<Group> groups;
  std::vector<EpisodeInfo> episodes;
  std::int64_t train_transitions = 0;
};

/// The spread (population std) of complete episodes' final source and target scores; the
/// `normalized` balanced score divides by them. Falls back to the configured scale for a
/// field whose spread cannot be measured (fewer than two episodes, or no spread).
std::pair<double, double> normalized_scales(const std::vector<OfflineStore>& stores, const EvalConfig& eval);

struct DatasetOptions {
  int history = 1;
  EvalConfig eval;  // balanced score (scales already set)
  double val_fraction = 0.1;
  double bc_top_q = 0.25;
  std::uint64_t seed = 1;
};

/// Builds the tensors, splits episodes (a hash of the episode id, so a growing store keeps
/// its split) and marks the top bc_top_q of the complete training episodes by return.
Dataset build_dataset(const std::vector<OfflineStore>& stores, const DatasetOptions& options);

}  // namespace dma::agent
