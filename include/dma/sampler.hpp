#pragma once
/// Mixture sampling: given weights over D domains, which rows form a batch.
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dma/domain_space.hpp"

namespace dma {

/// Throws DataError unless `weights` has `domains` entries, each finite and >= 0, summing
/// to 1 within 1e-4.
void validate_weights(std::span<const double> weights, std::size_t domains);

/// Rows per domain for a batch: largest-remainder allocation, so even small batches follow
/// the weights (ties go to the lower domain index). Sum equals batch_size.
std::vector<int> allocate_rows(std::span<const double> weights, int batch_size);

/// Rows per domain for one draw: each domain gets floor or ceil of batch_size * w, like
/// largest remainder, but the extra rows go by systematic sampling on the fractional parts,
/// so the expected count is exactly batch_size * w (plain largest remainder favours the same
/// domains in every batch and biases small batches). MixtureSampler uses this.
std::vector<int> allocate_rows_unbiased(std::span<const double> weights, int batch_size, std::mt19937_64& rng);

/// One training batch: rows * width tokens, and the domain of each row.
struct TokenBatch {
  int rows = 0;
  int width = 0;                     ///< seq_len + 1
  std::vector<std::int32_t> tokens;  ///< (rows, width)
  std::vector<std::int32_t> domain;  ///< (rows)
};

/// Draws batches from a domain space; same seed and weights, same batches.
class MixtureSampler {
 public:
  MixtureSampler(const DomainSpace& space, std::uint64_t seed);
  /// Draws one batch (random rows within each domain). Validates weights.
  TokenBatch sample(std::span<const double> weights, int batch_size);
  /// Only the row choice (domain, row index) of a batch, without reading tokens.
  std::vector<std::pair<int, std::int64_t>> choose_rows(std::span<const double> weights, int batch_size);

  /// RNG state as text, for bit-identical resume.
  std::string rng_state() const;
  void set_rng_state(const std::string& state);

 private:
  const DomainSpace* space_;
  std::mt19937_64 rng_;
};

}  // namespace dma
