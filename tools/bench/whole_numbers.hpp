#pragma once
// The benchmarks' whole-number options: one ("--horizon 16") or a list ("--ranks 2,16,1024").
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/policy.hpp"

namespace dma::bench {

/// `text` as a whole number in [lo, hi], or nothing.
inline std::optional<int> whole_number(const std::string& text, int lo, int hi) {
  const auto value = parse_number(text);
  if (!value || *value < lo || *value > hi || *value != std::floor(*value)) return std::nullopt;
  return static_cast<int>(*value);
}

/// One whole number in [1, 2^16]; throws ConfigError naming `flag`.
inline int positive(const std::string& flag, const std::string& text) {
  const auto value = whole_number(text, 1, 1 << 16);
  if (!value) throw ConfigError(fmt::format("{}: '{}' is not a positive whole number", flag, text));
  return *value;
}

/// Comma-separated whole numbers in [lo, hi]; throws ConfigError naming `flag`, the item, what
/// it should be and an `example` list.
inline std::vector<int> whole_numbers(const std::string& flag, const std::string& text, int lo, int hi,
                                      const std::string& what, const std::string& example) {
  std::vector<int> out;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const auto end = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, end - begin);
    const auto value = whole_number(item, lo, hi);
    if (!value) throw ConfigError(fmt::format("{}: '{}' is not {}: write e.g. {} {}", flag, item, what, flag, example));
    out.push_back(*value);
    begin = end + 1;
  }
  return out;
}

}  // namespace dma::bench
