#include "dma/paired.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <boost/math/distributions/students_t.hpp>

namespace dma {

PairedDiff paired_difference(const SeedScores& a, const SeedScores& b) {
  std::vector<double> diffs;
  for (const auto& [seed, score] : a)
    if (const auto it = b.find(seed); it != b.end()) diffs.push_back(score - it->second);
  PairedDiff d;
  d.n = static_cast<int>(diffs.size());
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (d.n == 0) {
    d.ci_low = -kInf, d.ci_high = kInf;
    return d;
  }
  d.mean = std::accumulate(diffs.begin(), diffs.end(), 0.0) / d.n;
  if (d.n < 2) {
    d.ci_low = -kInf, d.ci_high = kInf;
    return d;
  }
  double ss = 0;
  for (double x : diffs) ss += (x - d.mean) * (x - d.mean);
  d.sd = std::sqrt(ss / (d.n - 1));
  d.se = d.sd / std::sqrt(static_cast<double>(d.n));
  const boost::math::students_t t_dist(d.n - 1);
  const double t975 = boost::math::quantile(t_dist, 0.975);
  d.ci_low = d.mean - t975 * d.se;
  d.ci_high = d.mean + t975 * d.se;
  if (d.se > 0) {
    const double t = d.mean / d.se;
    d.p = 2 * boost::math::cdf(boost::math::complement(t_dist, std::abs(t)));
    d.effect = d.mean / d.sd;
  } else {
    // Identical differences on every seed: certain when they are not zero.
    d.p = d.mean == 0 ? 1.0 : 0.0;
    d.effect = d.mean == 0 ? 0.0 : std::copysign(kInf, d.mean);
  }
  d.p_holm = d.p;
  return d;
}

std::vector<double> holm(const std::vector<double>& p) {
  const std::size_t m = p.size();
  std::vector<std::size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return p[i] < p[j]; });
  std::vector<double> adjusted(m);
  double running = 0;  // adjusted p-values never decrease along the sorted order
  for (std::size_t k = 0; k < m; ++k) {
    running = std::max(running, std::min(1.0, static_cast<double>(m - k) * p[order[k]]));
    adjusted[order[k]] = running;
  }
  return adjusted;
}

void holm_adjust(std::vector<PairedDiff>& family) {
  std::vector<double> p;
  for (const auto& d : family) p.push_back(d.p);
  const auto adjusted = holm(p);
  for (std::size_t i = 0; i < family.size(); ++i) family[i].p_holm = adjusted[i];
}

std::string format_interval(const PairedDiff& d) {
  if (d.n < 2) return fmt::format("{:+.4f} [n={}]", d.mean, d.n);
  return fmt::format("{:+.4f} [{:+.4f}, {:+.4f}]", d.mean, d.ci_low, d.ci_high);
}

}  // namespace dma
