#pragma once
// Small comparisons the tests share.
#include <algorithm>
#include <cmath>
#include <vector>

namespace dma::test {

/// Largest |a[i] - b[i]| over two equally long vectors.
template <class T>
T max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
  T m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<T>(std::abs(a[i] - b[i])));
  return m;
}

}  // namespace dma::test
