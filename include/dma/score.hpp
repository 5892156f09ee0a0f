#pragma once
/// Field scores and the balanced score (DESIGN §1), computed from per-domain held-out
/// losses alone, so rewards can be recomputed offline from a store under any definition.
#include <span>
#include <string>

#include "dma/config.hpp"
#include "dma/types.hpp"

namespace dma {

struct FieldScores {
  double source = 0.0;  ///< mean relative loss improvement over the base, source domains
  double target = 0.0;  ///< same over target domains
};

/// Requires equal lengths; a field with no domain scores 0.
FieldScores field_scores(std::span<const float> losses, std::span<const float> base_losses,
                         std::span<const Field> fields);

/// The configured balanced score (eval.score: mean|min|weighted|normalized|budget).
double balanced_score(const FieldScores& s, const EvalConfig& eval);

/// `eval` with its score set from a spec: a score name, or `budget:<tolerance>` or
/// `weighted:<target weight>` (e.g. budget:0.01). Throws ConfigError naming the spec.
EvalConfig with_score(const EvalConfig& eval, const std::string& spec);

/// Reward of a transition: change of the balanced score.
inline double reward(const FieldScores& before, const FieldScores& after, const EvalConfig& eval) {
  return balanced_score(after, eval) - balanced_score(before, eval);
}

}  // namespace dma
