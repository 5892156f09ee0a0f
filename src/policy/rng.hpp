#pragma once
// A small deterministic generator for policies. Our own samplers (not <random>'s
// distributions, whose algorithms differ between standard libraries) so that a random walk
// is the same sequence of weights on every platform, given its episode seed.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>

#include "dma/seed.hpp"

namespace dma::policy_detail {

/// xoshiro256** seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      s = mix64(seed);
    }
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in (0, 1): safe under log().
  double uniform_open() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  /// Uniform index in [0, n); n > 0.
  std::size_t index(std::size_t n) { return static_cast<std::size_t>(uniform() * static_cast<double>(n)) % n; }

  double normal() {
    // Box-Muller without caching the second value: one call, one state advance pattern.
    const double u1 = uniform_open(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  /// Gamma(shape, 1). Marsaglia-Tsang; shapes below 1 use the U^(1/a) boost in log space,
  /// so tiny shapes underflow to an exact 0 instead of producing NaN.
  double gamma(double shape) {
    if (shape <= 0) return 0.0;
    if (shape < 1.0) {
      const double g = gamma(shape + 1.0);
      return std::exp(std::log(g) + std::log(uniform_open()) / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform_open();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

  /// Beta(a, b); both shapes tiny and underflowing falls back to its Bernoulli limit.
  double beta(double a, double b) {
    const double x = gamma(a), y = gamma(b);
    if (x + y > 0) return x / (x + y);
    return uniform() < a / (a + b) ? 1.0 : 0.0;
  }

  /// Fills `out` with a Dirichlet(alpha, ..., alpha) draw (sums to 1).
  void dirichlet(double alpha, std::span<double> out) {
    double total = 0;
    for (auto& x : out) total += (x = gamma(alpha));
    if (total > 0) {
      for (auto& x : out) x /= total;
    } else if (!out.empty()) {  // every component underflowed: the limit is a random vertex
      for (auto& x : out) x = 0;
      out[index(out.size())] = 1.0;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace dma::policy_detail
