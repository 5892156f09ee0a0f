// Mixture sampling. Random numbers come from mt19937_64 through the portable maps of
// random.hpp, so the same seed gives the same batches everywhere.
#include "dma/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "random.hpp"

namespace dma {
namespace {

/// Quotas batch * w (weights renormalised to sum exactly 1).
std::vector<double> quotas(std::span<const double> weights, int batch_size) {
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<double> q(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) q[i] = weights[i] / sum * batch_size;
  return q;
}

void check_batch(int batch_size) {
  if (batch_size < 0)
    throw DataError(fmt::format("batch size {} is negative: use a positive number of rows", batch_size));
}

}  // namespace

void validate_weights(std::span<const double> weights, std::size_t domains) {
  if (weights.size() != domains)
    throw DataError(
        fmt::format("mixture has {} weights but the domain space has {} domains: give one weight per domain",
                    weights.size(), domains));
  double sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i]) || weights[i] < 0)
      throw DataError(fmt::format("mixture weight {} is {}: weights must be finite and >= 0", i, weights[i]));
    sum += weights[i];
  }
  if (std::abs(sum - 1.0) > 1e-4)
    throw DataError(fmt::format("mixture weights sum to {:.6g}: they must sum to 1 within 1e-4", sum));
}

std::vector<int> allocate_rows(std::span<const double> weights, int batch_size) {
  validate_weights(weights, weights.size());
  check_batch(batch_size);
  const auto q = quotas(weights, batch_size);
  std::vector<int> rows(q.size());
  int given = 0;
  for (size_t i = 0; i < q.size(); ++i) given += rows[i] = static_cast<int>(std::floor(q[i]));
  std::vector<size_t> order(q.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Largest remainder first; stable_sort keeps the lower index first on ties.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return q[a] - std::floor(q[a]) > q[b] - std::floor(q[b]); });
  for (size_t k = 0; given < batch_size; ++k, ++given) ++rows[order[k % order.size()]];
  return rows;
}

std::vector<int> allocate_rows_unbiased(std::span<const double> weights, int batch_size, std::mt19937_64& rng) {
  validate_weights(weights, weights.size());
  check_batch(batch_size);
  const auto q = quotas(weights, batch_size);
  std::vector<int> rows(q.size());
  std::vector<double> frac(q.size());
  int given = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    given += rows[i] = static_cast<int>(std::floor(q[i]));
    frac[i] = q[i] - rows[i];
  }
  // Systematic sampling: one uniform offset u, domain i gets an extra row when a point
  // u + k falls in its slice of the cumulated fractions; P(extra) = frac[i] exactly.
  std::vector<bool> extra(q.size(), false);
  const double u = rnd::unit(rng);
  double cum = 0;
  for (size_t i = 0; i < q.size() && given < batch_size; ++i) {
    const double lo = cum;
    cum += frac[i];
    if (std::floor(cum - u) > std::floor(lo - u)) extra[i] = true, ++rows[i], ++given;
  }
  // Rounding can leave the total one short: give it to the largest fraction not yet used.
  while (given < batch_size) {
    size_t best = q.size();
    for (size_t i = 0; i < q.size(); ++i)
      if (!extra[i] && (best == q.size() || frac[i] > frac[best])) best = i;
    if (best == q.size()) best = static_cast<size_t>(std::max_element(q.begin(), q.end()) - q.begin());
    extra[best] = true, ++rows[best], ++given;
  }
  return rows;
}

MixtureSampler::MixtureSampler(const DomainSpace& space, std::uint64_t seed) : space_(&space), rng_(seed) {}

std::vector<std::pair<int, std::int64_t>> MixtureSampler::choose_rows(std::span<const double> weights, int batch_size) {
  validate_weights(weights, static_cast<size_t>(space_->num_domains()));
  const auto counts = allocate_rows_unbiased(weights, batch_size, rng_);
  std::vector<std::pair<int, std::int64_t>> out;
  out.reserve(static_cast<size_t>(batch_size));
  for (int d = 0; d < space_->num_domains(); ++d) {
    const auto n = static_cast<std::uint64_t>(space_->domains()[static_cast<size_t>(d)].train_rows);
    for (int k = 0; k < counts[static_cast<size_t>(d)]; ++k)
      out.emplace_back(d, static_cast<std::int64_t>(rnd::bounded(rng_, n)));
  }
  return out;
}

TokenBatch MixtureSampler::sample(std::span<const double> weights, int batch_size) {
  const auto chosen = choose_rows(weights, batch_size);
  TokenBatch batch;
  batch.rows = batch_size;
  batch.width = space_->row_width();
  batch.tokens.resize(static_cast<size_t>(batch_size) * static_cast<size_t>(batch.width));
  batch.domain.resize(static_cast<size_t>(batch_size));
  // choose_rows groups rows by domain: one hyperslab read per domain.
  for (size_t i = 0; i < chosen.size();) {
    size_t j = i;
    std::vector<std::int64_t> rows;
    while (j < chosen.size() && chosen[j].first == chosen[i].first) rows.push_back(chosen[j++].second);
    const size_t w = static_cast<size_t>(batch.width);
    space_->read_train_rows(chosen[i].first, rows, std::span(batch.tokens).subspan(i * w, rows.size() * w));
    std::fill(batch.domain.begin() + static_cast<std::ptrdiff_t>(i),
              batch.domain.begin() + static_cast<std::ptrdiff_t>(j), chosen[i].first);
    i = j;
  }
  return batch;
}

std::string MixtureSampler::rng_state() const {
  std::ostringstream s;
  s << rng_;
  return s.str();
}

void MixtureSampler::set_rng_state(const std::string& state) {
  std::istringstream s(state);
  std::mt19937_64 rng;
  s >> rng;
  if (s.fail()) throw DataError("sampler RNG state is not valid: the checkpoint is corrupt or from another build");
  rng_ = rng;
}

}  // namespace dma
