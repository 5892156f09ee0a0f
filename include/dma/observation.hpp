#pragma once
/// The MDP's observation vector (DESIGN §1): global features first, then one block of
/// per-domain features per domain (domain-major). Shared by the learner (which builds it),
/// policies and the agent (which read it) and the store (which names it in obs_layout).
#include <span>
#include <string>
#include <vector>

#include "dma/score.hpp"
#include "dma/types.hpp"

namespace dma::obs {

/// Global features.
enum Global : int { kProgress = 0, kSourceScore = 1, kTargetScore = 2, kNumGlobal = 3 };
/// Per-domain features.
enum PerDomain : int {
  kPrevWeight = 0,  ///< the weight used in the last step (w_{t-1}); base mixture at t = 0
  kLoss = 1,        ///< held-out loss now
  kDeltaBase = 2,   ///< relative loss change since the base: (loss - base) / base
  kDeltaLast = 3,   ///< relative loss change since the last step: (loss - prev) / prev
  kIsTarget = 4,    ///< 1 for a target-field domain
  kLogShare = 5,    ///< log natural token share
  kNumPerDomain = 6
};

inline int dim(int num_domains) { return kNumGlobal + kNumPerDomain * num_domains; }
inline int index(int domain, PerDomain f) { return kNumGlobal + kNumPerDomain * domain + f; }

/// Inputs of one observation. `step` is the number of re-weighting steps done (0..T).
struct Inputs {
  int step = 0;
  int horizon = 1;
  std::span<const float> prev_weights;   ///< (D)
  std::span<const float> losses;         ///< (D) now
  std::span<const float> prev_losses;    ///< (D) one step ago (= losses at step 0)
  std::span<const float> base_losses;    ///< (D)
  std::span<const Field> fields;         ///< (D)
  std::span<const double> token_shares;  ///< (D)
};

/// Writes the observation into `out` (dim(D) floats).
void build(const Inputs& in, std::span<float> out);

/// What stays fixed over one episode: per domain its field, natural token share and the base
/// model's held-out loss, and the horizon T.
struct EpisodeFrame {
  std::vector<Field> fields;         ///< (D)
  std::vector<double> token_shares;  ///< (D)
  std::vector<float> base_losses;    ///< (D)
  int horizon = 1;
  int num_domains() const { return static_cast<int>(fields.size()); }
};

/// One episode's observations as dma's environment makes them, step by step: at step 0 the
/// previous weights are the base mixture and the losses are the base losses; each step
/// brings in the weights trained on and the losses measured after them. The learner and
/// `dma_agent` both observe through it, so an outside run sees exactly what a proxy run sees.
class Tracker {
 public:
  Tracker() = default;
  explicit Tracker(EpisodeFrame frame);
  const EpisodeFrame& frame() const { return frame_; }
  int step() const { return step_; }                                        ///< steps done, 0..T
  const std::vector<float>& losses() const { return losses_; }              ///< (D) now
  const std::vector<float>& prev_weights() const { return prev_weights_; }  ///< (D) last step's weights
  /// o_step (dim(D) floats).
  std::vector<float> observation() const;
  /// One step done: trained with `weights`, then measured `losses` (D each); step() grows by one.
  void advance(std::span<const double> weights, std::span<const float> losses);

 private:
  EpisodeFrame frame_;
  int step_ = 0;
  std::vector<float> prev_weights_, losses_, prev_losses_;  // (D) each
};

/// Names of the observation's entries ("progress", ..., "<domain>.prev_weight", ...).
std::vector<std::string> layout(const std::vector<std::string>& domain_names);

/// The mixture the base model was trained on: the source field's natural shares.
std::vector<float> base_mixture(std::span<const Field> fields, std::span<const double> token_shares);

}  // namespace dma::obs
