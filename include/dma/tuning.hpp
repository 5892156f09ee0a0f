#pragma once
/// Tuned baselines: a constant target share (`tuned-fixed`) or a linear schedule of the target
/// share (`tuned-schedule`, searched as its mean share and its tilt), tuned by rollouts. The search is a compass
/// search: from a start point it scores the point's neighbours one step away along each parameter, moves to the best
/// when it beats the point and otherwise halves the step. It is deterministic given the scores, so a run that resumes
/// from the scores it stored repeats it.
///
/// The constants are the schedules without tilt, so a schedule is tuned as a refinement of the
/// tuned constant: its search starts at the constant's share with no tilt, and spends its own
/// budget there. A search of both parameters from the middle of the box spends an equal budget
/// on shares the constant search has already ruled out and may never reach the tilts around
/// the good share.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dma/policy_spec.hpp"

namespace dma {

enum class TunedFamily { kFixed, kSchedule };

/// "tuned-fixed" or "tuned-schedule".
const char* tuned_kind(TunedFamily family);
/// The family of a stored policy name "tuned-fixed[:...]" / "tuned-schedule[:...]", or nothing.
std::optional<TunedFamily> tuned_family(const std::string& name);
/// The family of a tuned-fixed / tuned-schedule spec, or nothing.
std::optional<TunedFamily> tuned_family(const PolicySpec& spec);
/// The policy spec of a point: tuned-fixed:<share> or tuned-schedule:<from>><to>, each share
/// rounded to four decimals.
PolicySpec tuned_spec(TunedFamily family, const std::vector<double>& point);

/// The tuned baselines' first step in target share; it halves down to 1/80.
inline constexpr double kTuningFirstStep = 0.2;

class CompassSearch {
 public:
  /// Parameters live in [0, 1]; the search starts at `start` (the middle of the box when
  /// empty) and the step halves from `first_step` until below `min_step`.
  CompassSearch(int dims, double first_step, std::vector<double> start = {}, double min_step = 1.0 / 80);

  /// Points to score next (none scored yet); empty when the search has converged.
  std::vector<std::vector<double>> next();
  void report(const std::vector<double>& point, double score);
  /// The best point scored so far (the start before any score).
  const std::vector<double>& best() const { return best_; }
  double best_score() const { return best_score_; }

 private:
  using Key = std::vector<long>;  // a point on the 1/3200 lattice, so sums of halved steps compare exactly
  Key key(const std::vector<double>& point) const;
  std::vector<double> point(const Key& k) const;
  std::optional<double> score(const Key& k) const;

  int dims_;
  double step_, min_step_;
  std::vector<double> centre_, best_;
  double best_score_ = 0;
  std::map<Key, double> scores_;
};

/// A family tuned within a budget: the candidates it tried, in order, with their mean
/// scores, and the best.
struct TuningResult {
  TunedFamily family = TunedFamily::kFixed;
  std::vector<PolicySpec> candidates;
  std::vector<double> scores;
  PolicySpec best;  ///< the best candidate's spec
  double best_score = 0;
  int rollouts = 0;        ///< rollouts spent
  bool converged = false;  ///< the search reached its finest step before the budget ran out
};

/// Runs the search for `family`, asking `score_batch` for the mean score of each batch of
/// specs (rollouts on the selection seeds), until converged or the next batch would take the
/// rollouts past `rollouts` (a batch is cut to fit). `seeds` rollouts score one candidate.
/// The search starts at `start` (see CompassSearch). Throws ConfigError when the budget cannot
/// score one candidate.
using ScoreBatch = std::function<std::vector<double>(const std::vector<PolicySpec>& specs)>;
/// `known` holds scores of this family's specs (by to_string) measured already (they cost no
/// rollouts).
TuningResult tune_family(TunedFamily family, int rollouts, int seeds, double first_step, const ScoreBatch& score_batch,
                         std::vector<double> start = {}, const std::map<std::string, double>& known = {});
/// Where a schedule's search starts once the constant share is tuned: that share, no tilt.
std::vector<double> schedule_start(const TuningResult& constant);
/// The constant's scores as the schedules without tilt they are (the same mixtures), by to_string.
std::map<std::string, double> schedule_scores(const TuningResult& constant);

}  // namespace dma
