#pragma once
/// Paired comparisons of policies. The policies of one evaluation run the same seeds (the
/// same data order and proxy noise), so a difference is taken seed by seed and the seed's
/// own effect cancels. Intervals are Student-t 95 % intervals of the mean difference; a
/// family of comparisons against one policy is corrected with Holm's step-down method.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dma {

/// a − b over the seeds both ran.
struct PairedDiff {
  int n = 0;                       ///< seeds both ran
  double mean = 0;                 ///< mean of a − b
  double sd = 0;                   ///< sample standard deviation of a − b
  double se = 0;                   ///< sd / sqrt(n)
  double ci_low = 0, ci_high = 0;  ///< 95 % t interval of the mean (±inf below 2 seeds)
  double p = 1;                    ///< two-sided p-value of "mean = 0"
  double effect = 0;               ///< Cohen's d_z: mean / sd (0 when sd is 0 and mean is 0)
  double p_holm = 1;               ///< p after Holm's correction over its family (holm_adjust)
  bool ci_excludes_zero() const { return ci_low > 0 || ci_high < 0; }
};

/// Scores by seed: the final balanced score of each seed's episode.
using SeedScores = std::map<std::uint64_t, double>;

/// a − b paired by seed. Fewer than two shared seeds give n < 2 and an infinite interval.
PairedDiff paired_difference(const SeedScores& a, const SeedScores& b);

/// Holm's step-down adjustment of a family of p-values (same order; monotone, capped at 1).
std::vector<double> holm(const std::vector<double>& p);

/// Sets p_holm of every difference in the family.
void holm_adjust(std::vector<PairedDiff>& family);

/// "+0.0123 [+0.0101, +0.0145]": a difference with its 95 % interval.
std::string format_interval(const PairedDiff& d);

}  // namespace dma
