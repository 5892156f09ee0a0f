#pragma once
// Portable random draws from mt19937_64: the standard distributions differ between library
// vendors, these give the same numbers everywhere for the same seed.
#include <cstdint>
#include <random>
#include <vector>

namespace dma::rnd {

/// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift with rejection: unbiased).
inline std::uint64_t bounded(std::mt19937_64& rng, std::uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(rng()) * n;
  auto low = static_cast<std::uint64_t>(m);
  if (low < n) {
    const std::uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(rng()) * n;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

/// Uniform integer in [lo, hi].
inline int range(std::mt19937_64& rng, int lo, int hi) {
  return lo + static_cast<int>(bounded(rng, static_cast<std::uint64_t>(hi - lo) + 1));
}

/// Uniform double in [0, 1) with 53 random bits.
inline double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

/// Fisher-Yates shuffle.
template <class T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[bounded(rng, i)]);
}

/// One element of a non-empty vector.
template <class T>
const T& pick(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[bounded(rng, v.size())];
}

}  // namespace dma::rnd
