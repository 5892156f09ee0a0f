#pragma once
// Logits to mixture weights, as the agent acts.
#include <algorithm>
#include <cmath>
#include <span>

namespace dma::agent {

// out = softmax(z), each exponent taken relative to the largest z (no overflow).
inline void softmax_into(std::span<const double> z, std::span<double> out) {
  const double top = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (size_t d = 0; d < z.size(); ++d) sum += (out[d] = std::exp(z[d] - top));
  for (double& x : out) x /= sum;
}

}  // namespace dma::agent
