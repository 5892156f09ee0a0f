#pragma once
/// The proxy language model and its continual pre-training trainer (LibTorch lives in
/// src/proxy only; this header passes plain types). A ProxyTrainer is one trajectory's
/// model, optimizer, RNG and schedule; the evaluation environment scores it.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dma/config.hpp"
#include "dma/domain_space.hpp"

namespace dma {

/// What a base checkpoint holds besides weights (readable without building a model).
struct BaseInfo {
  std::uint64_t config_hash = 0;        ///< hash of the [proxy] architecture keys
  std::uint64_t space_fingerprint = 0;  ///< DomainSpace::fingerprint() it was trained on
  std::vector<float> eval_loss;         ///< per-domain held-out loss of the base
  float math_accuracy = -1;
  std::int64_t parameters = 0;
};

/// Hash of the architecture keys a checkpoint depends on.
std::uint64_t proxy_config_hash(const ProxyConfig& proxy, int vocab_size, int seq_len);

/// Reads a base checkpoint's info; throws CheckpointError for a missing or corrupt file.
BaseInfo read_base_info(const std::string& path);

/// Result of `train`: the step's statistics or why it diverged.
struct TrainResult {
  bool ok = true;
  std::string failure;                   ///< e.g. "non-finite loss at optimizer step 37"
  std::vector<float> domain_train_loss;  ///< (D) mean train loss per domain (NaN if unseen)
  std::int64_t tokens = 0;               ///< tokens trained in this call
  float mean_loss = 0;                   ///< mean train loss over every row of the call (NaN if none)
};

/// Result of `evaluate`.
struct EvalResult {
  std::vector<float> domain_loss;  ///< (D) mean token NLL on the fixed eval subset
  float math_accuracy = -1;        ///< exact match on the benchmark, -1 when absent
};

/// Which device a rank's proxies use ("auto": CUDA device local_rank % count, else CPU).
struct DeviceChoice {
  std::string kind = "cpu";
  int index = 0;
};
DeviceChoice choose_device(const std::string& requested, int local_rank);

/// What a proxy trainer reads of the configuration: the model, its training and its evaluation.
struct ProxyTrainerConfig {
  ProxyConfig proxy;
  TrainConfig train;
  EvalConfig eval;
};
/// The proxy trainer's sections of a run's configuration.
inline ProxyTrainerConfig proxy_trainer_config(const Config& c) { return {c.proxy, c.train, c.eval}; }

/// One trajectory's model and training state.
class ProxyTrainer {
 public:
  /// Builds a freshly initialised model for the space (vocab, seq_len) on `device`. Sets
  /// LibTorch's thread count when proxy.threads > 0 (process-wide) and, once per process,
  /// glibc's malloc thresholds so freed step temporaries stay mapped. `space` must outlive it.
  ProxyTrainer(const ProxyTrainerConfig& config, const DomainSpace& space, DeviceChoice device,
               std::uint64_t init_seed);
  ~ProxyTrainer();
  ProxyTrainer(ProxyTrainer&&) noexcept;
  ProxyTrainer& operator=(ProxyTrainer&&) noexcept;

  std::int64_t parameter_count() const;

  /// Loads base weights, resets optimizer and step, seeds sampler and dropout from `seed`,
  /// and sets the LR schedule over `total_steps` (warm-up then cosine). Refuses a
  /// checkpoint whose config hash or space fingerprint does not match. `seed` is the
  /// trajectory seed (trajectory_seed(run, id)); streams kStreamSampler / kStreamTorch of it
  /// seed the sampler and the torch generator. Base weights are cached per file.
  void start_trajectory(const std::string& base_checkpoint, std::uint64_t seed, std::int64_t total_steps);
  /// Same, for pre-training from scratch (keeps the fresh init).
  void start_from_scratch(std::uint64_t seed, std::int64_t total_steps, double peak_lr, int warmup_steps);

  /// Trains `steps` optimizer steps on batches drawn by `weights` (validated).
  TrainResult train(std::span<const double> weights, int steps);
  /// Held-out loss per domain and math accuracy (eval.* config).
  EvalResult evaluate();

  /// Full state (model, optimizer, RNGs, step, schedule): resuming is bit-identical on CPU.
  void save_state(const std::string& path) const;
  void load_state(const std::string& path);
  /// Seeds sampler and torch generator from trajectory seed `seed`, as start_trajectory does,
  /// keeping weights, optimiser and schedule: a tree branch continues a loaded state on its own draws.
  void reseed(std::uint64_t seed);
  /// Writes a base checkpoint (weights + BaseInfo).
  void save_base(const std::string& path, const EvalResult& base_eval) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// `--mode pretrain`: trains the base on the source field (natural shares), prints progress
/// and the per-domain eval loss, writes <run.dir>/base.pt. Returns the base eval.
EvalResult run_pretrain(const Config& config, const DomainSpace& space);

/// Parses the numeric answer a model produced (first number, commas and spaces dropped).
std::string parse_answer(std::string_view generated);

}  // namespace dma
