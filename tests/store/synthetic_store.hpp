#pragma once
// Synthetic stores for the store and replay tests: every value is a closed-form function of
// (episode id, step, domain), so a test can recompute what any row must hold.
// Shapes: D domains, O = obs_dim, H = horizon.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"  // relative: make_store is not a dma_add_gtest target
#include "dma/config.hpp"
#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "dma/score.hpp"
#include "dma/store.hpp"

namespace dma::testing {

struct SyntheticSpec {
  int domains = 4;  ///< D; the last `targets` are target-field domains
  int targets = 2;
  int horizon = 8;  ///< H
  std::uint64_t fingerprint = 0x5eed0001;
  std::string score = "budget";
};

inline std::vector<std::string> synthetic_names(int d) {
  std::vector<std::string> names;
  for (int i = 0; i < d; ++i) names.push_back("dom" + std::to_string(i));
  return names;
}

inline StoreHeader synthetic_header(const SyntheticSpec& s) {
  StoreHeader h;
  h.domain_names = synthetic_names(s.domains);
  for (int i = 0; i < s.domains; ++i) {
    h.domain_fields.push_back(i >= s.domains - s.targets ? Field::kTarget : Field::kSource);
    h.base_eval_loss.push_back(3.0f + 0.25f * static_cast<float>(i));
    h.token_shares.push_back(1.0 / s.domains);
  }
  h.obs_layout = obs::layout(h.domain_names);
  h.horizon = s.horizon;
  h.space_fingerprint = s.fingerprint;
  Config c;
  c.train.horizon = s.horizon;
  c.eval.score = s.score;
  h.config_ini = to_ini(c);
  return h;
}

/// Weights of episode `id` at `step`; `target_bias` in [0,1] tilts mass to target domains.
inline std::vector<float> synthetic_action(const StoreHeader& h, std::int64_t id, int step, double target_bias = 0.5) {
  const int d_count = h.num_domains();
  std::vector<float> w(static_cast<std::size_t>(d_count));
  double total = 0;
  for (int d = 0; d < d_count; ++d) {
    const double tilt = h.domain_fields[static_cast<std::size_t>(d)] == Field::kTarget ? target_bias : 1 - target_bias;
    const double raw = (1.0 + static_cast<double>((id * 7 + step * 3 + d * 5) % 11)) * (0.05 + tilt);
    w[static_cast<std::size_t>(d)] = static_cast<float>(raw);
    total += raw;
  }
  for (auto& x : w) x = static_cast<float>(x / total);
  return w;
}

inline std::vector<float> synthetic_losses(const StoreHeader& h, std::int64_t id, int step) {
  std::vector<float> l;
  for (int d = 0; d < h.num_domains(); ++d) {
    const bool target = h.domain_fields[static_cast<std::size_t>(d)] == Field::kTarget;
    const double gain = (target ? 0.04 : -0.004) * (step + 1) * (1.0 + 0.1 * static_cast<double>(id % 5));
    l.push_back(static_cast<float>(h.base_eval_loss[static_cast<std::size_t>(d)] * (1.0 - gain)));
  }
  return l;
}

inline Transition synthetic_transition(const StoreHeader& h, std::int64_t id, int step, double target_bias = 0.5) {
  const EvalConfig eval = parse_ini_text(h.config_ini).eval;
  Transition t;
  t.episode_id = id;
  t.step = step;
  for (int i = 0; i < h.obs_dim(); ++i) {
    t.observation.push_back(static_cast<float>(0.001 * static_cast<double>(id) + 0.01 * step + 0.0001 * i));
    t.next_observation.push_back(static_cast<float>(0.001 * static_cast<double>(id) + 0.01 * (step + 1) + 0.0001 * i));
  }
  t.action = synthetic_action(h, id, step, target_bias);
  t.eval_loss = synthetic_losses(h, id, step);
  const auto after = field_scores(t.eval_loss, h.base_eval_loss, h.domain_fields);
  FieldScores before{};
  if (step > 0) {
    const auto prev = synthetic_losses(h, id, step - 1);
    before = field_scores(prev, h.base_eval_loss, h.domain_fields);
  }
  t.reward = static_cast<float>(reward(before, after, eval));
  t.source_score = static_cast<float>(after.source);
  t.target_score = static_cast<float>(after.target);
  t.math_accuracy = step % 2 ? 0.1f * static_cast<float>(step) : -1.0f;
  t.train_tokens = 1000 * static_cast<std::int64_t>(step + 1);
  t.wall_seconds = 0.5f * static_cast<float>(step + 1);
  t.timeout = step == h.horizon - 1;
  return t;
}

/// Writes one generation: begins `ids` under `policies`, runs `rounds` rounds (one flush
/// each), then ends each episode complete unless `end` is false. Episodes whose ids share
/// id / `ids_per_seed` share a seed (as the policies of one evaluation do).
inline std::vector<std::size_t> write_generation(StoreWriter& w, const std::vector<std::int64_t>& ids,
                                                 const std::vector<std::string>& policies, int rounds, bool end = true,
                                                 double target_bias = 0.5, std::int64_t ids_per_seed = 1) {
  std::vector<EpisodeRecord> recs;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EpisodeRecord e;
    e.id = ids[i];
    e.seed = static_cast<std::uint64_t>(ids[i] / ids_per_seed) * 1000003ULL;
    e.rank = 1 + static_cast<int>(i % 3);
    e.policy = policies[i % policies.size()];
    recs.push_back(e);
  }
  const auto idx = w.begin_episodes(recs);
  std::vector<double> returns(ids.size(), 0.0);
  for (int step = 0; step < rounds; ++step) {
    std::vector<Transition> rows;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      rows.push_back(synthetic_transition(w.header(), ids[i], step, target_bias));
      returns[i] += rows.back().reward;
    }
    w.write(rows);
    w.flush();
  }
  if (end) {
    for (std::size_t i = 0; i < ids.size(); ++i)
      w.end_episode(idx[i], rounds == w.header().horizon ? EpisodeStatus::kComplete : EpisodeStatus::kFailed, rounds,
                    static_cast<float>(returns[i]));
    w.flush();
  }
  return idx;
}

using TempDir = ::dma::test::TempDir;  ///< shared helper, see tests/support/temp_dir.hpp

}  // namespace dma::testing
