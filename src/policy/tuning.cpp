#include "dma/tuning.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma {
namespace {

constexpr double kLattice = 3200.0;  // 1/80 halved five more times stays on it

}  // namespace

const char* tuned_kind(TunedFamily family) { return family == TunedFamily::kFixed ? "tuned-fixed" : "tuned-schedule"; }

std::optional<TunedFamily> tuned_family(const std::string& name) {
  for (const TunedFamily f : {TunedFamily::kFixed, TunedFamily::kSchedule}) {
    const std::string kind = tuned_kind(f);
    if (name == kind || name.starts_with(kind + ":")) return f;
  }
  return std::nullopt;
}

std::optional<TunedFamily> tuned_family(const PolicySpec& spec) {
  if (spec.kind == PolicyKind::kTunedFixed) return TunedFamily::kFixed;
  if (spec.kind == PolicyKind::kTunedSchedule) return TunedFamily::kSchedule;
  return std::nullopt;
}

PolicySpec tuned_spec(TunedFamily family, const std::vector<double>& point) {
  // Four decimals: the search's lattice is finer, but no step below 1/80 is ever taken.
  auto share = [](double x) {
    return MixtureArg{MixtureArg::Form::kShare, {std::round(std::clamp(x, 0.0, 1.0) * 1e4) / 1e4}};
  };
  if (family == TunedFamily::kFixed) return PolicySpec(PolicyKind::kTunedFixed, {share(point.at(0))});
  // A schedule is searched as its mean share and its tilt (half the drop from start to end,
  // shifted by 0.5), so the constant shares are the line tilt = 0.5 and both families search
  // the mean alike.
  const double mean = point.at(0), half_drop = point.at(1) - 0.5;
  return PolicySpec(PolicyKind::kTunedSchedule, {share(mean + half_drop), share(mean - half_drop)});
}

CompassSearch::CompassSearch(int dims, double first_step, std::vector<double> start, double min_step)
    : dims_(dims), step_(first_step), min_step_(min_step) {
  if (dims < 1 || !(first_step > 0) || !(min_step > 0))
    throw ConfigError(fmt::format("compass search: {} parameters, first step {}, least step {}: all must be positive",
                                  dims, first_step, min_step));
  if (start.empty()) start.assign(static_cast<size_t>(dims), 0.5);
  if (static_cast<int>(start.size()) != dims)
    throw ConfigError(fmt::format("compass search: a start of {} parameters for a search of {}", start.size(), dims));
  centre_ = point(key(start));
  best_ = centre_;
}

CompassSearch::Key CompassSearch::key(const std::vector<double>& p) const {
  Key k;
  for (double x : p) k.push_back(std::lround(std::clamp(x, 0.0, 1.0) * kLattice));
  return k;
}

std::vector<double> CompassSearch::point(const Key& k) const {
  std::vector<double> p;
  for (long v : k) p.push_back(static_cast<double>(v) / kLattice);
  return p;
}

std::optional<double> CompassSearch::score(const Key& k) const {
  const auto it = scores_.find(k);
  if (it == scores_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::vector<double>> CompassSearch::next() {
  for (;;) {
    const Key c = key(centre_);
    const auto centre_score = score(c);
    if (!centre_score) return {centre_};
    std::vector<Key> neighbours;
    for (int d = 0; d < dims_; ++d)
      for (const double sign : {+1.0, -1.0}) {
        std::vector<double> p = centre_;
        p[static_cast<size_t>(d)] = std::clamp(p[static_cast<size_t>(d)] + sign * step_, 0.0, 1.0);
        const Key k = key(p);
        if (k != c && std::find(neighbours.begin(), neighbours.end(), k) == neighbours.end()) neighbours.push_back(k);
      }
    std::vector<std::vector<double>> unscored;
    for (const auto& k : neighbours)
      if (!score(k)) unscored.push_back(point(k));
    if (!unscored.empty()) return unscored;
    // Every neighbour scored: move to the best one if it beats the centre, else refine.
    const Key* best = nullptr;
    for (const auto& k : neighbours)
      if (!best || *score(k) > *score(*best)) best = &k;
    if (best && *score(*best) > *centre_score) {
      centre_ = point(*best);
      continue;
    }
    step_ /= 2;
    if (step_ < min_step_) return {};
  }
}

void CompassSearch::report(const std::vector<double>& p, double s) {
  if (static_cast<int>(p.size()) != dims_)
    throw ConfigError(
        fmt::format("compass search: a point of {} parameters reported to a search of {}", p.size(), dims_));
  const Key k = key(p);
  scores_[k] = s;
  if (scores_.size() == 1 || s > best_score_) {
    best_ = point(k);
    best_score_ = s;
  }
}

namespace {

/// The share of a tuned constant's spec tuned-fixed:<share>.
double constant_share(const TuningResult& constant, const PolicySpec& spec) {
  if (constant.family != TunedFamily::kFixed)
    throw Error(
        fmt::format("a schedule's search starts from a tuned constant, not from {}", tuned_kind(constant.family)));
  return spec.mixtures.at(0).values.at(0);
}

}  // namespace

std::vector<double> schedule_start(const TuningResult& constant) {
  return {constant_share(constant, constant.best), 0.5};
}

std::map<std::string, double> schedule_scores(const TuningResult& constant) {
  std::map<std::string, double> out;
  for (size_t i = 0; i < constant.candidates.size(); ++i)
    out[to_string(tuned_spec(TunedFamily::kSchedule, {constant_share(constant, constant.candidates[i]), 0.5}))] =
        constant.scores[i];
  return out;
}

TuningResult tune_family(TunedFamily family, int rollouts, int seeds, double first_step, const ScoreBatch& score_batch,
                         std::vector<double> start, const std::map<std::string, double>& known) {
  if (seeds < 1 || rollouts < seeds)
    throw ConfigError(
        fmt::format("tune.rollouts = {} cannot score one {} candidate on tune.seeds = {} seeds: raise "
                    "tune.rollouts to at least tune.seeds",
                    rollouts, tuned_kind(family), seeds));
  CompassSearch search(family == TunedFamily::kFixed ? 1 : 2, first_step, std::move(start));
  TuningResult result;
  result.family = family;
  std::map<std::string, double> scored = known;  // points that clamp to one spec share its rollouts
  for (;;) {
    const auto points = search.next();
    if (points.empty()) {
      result.converged = true;
      break;
    }
    std::vector<PolicySpec> fresh;
    for (const auto& p : points) {
      const PolicySpec spec = tuned_spec(family, p);
      if (!scored.count(to_string(spec)) && std::find(fresh.begin(), fresh.end(), spec) == fresh.end())
        fresh.push_back(spec);
    }
    const int affordable = (rollouts - result.rollouts) / seeds;
    if (static_cast<int>(fresh.size()) > affordable) fresh.resize(static_cast<size_t>(std::max(0, affordable)));
    if (!fresh.empty()) {
      const auto scores = score_batch(fresh);
      if (scores.size() != fresh.size())
        throw Error(fmt::format("tuning: {} scores for {} candidates", scores.size(), fresh.size()));
      for (size_t i = 0; i < fresh.size(); ++i) {
        scored[to_string(fresh[i])] = scores[i];
        result.candidates.push_back(fresh[i]);
        result.scores.push_back(scores[i]);
      }
      result.rollouts += static_cast<int>(fresh.size()) * seeds;
    }
    bool reported = false;
    for (const auto& p : points)
      if (const auto it = scored.find(to_string(tuned_spec(family, p))); it != scored.end()) {
        search.report(p, it->second);
        reported = true;
      }
    if (!reported) break;  // the budget is spent
  }
  result.best = tuned_spec(family, search.best());
  result.best_score = search.best_score();
  return result;
}

}  // namespace dma
