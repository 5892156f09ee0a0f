#pragma once
// Shared test helpers: domain contexts, a toy environment that closes the loop (losses
// respond to the weights, observations built with dma::obs::build as the learner does),
// and a temporary directory. D domains, T steps, B episodes.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "dma/policy.hpp"
#include "dma/seed.hpp"
#include "support/temp_dir.hpp"

namespace dma::test {

/// `source` source-field domains then `target` target-field domains, unequal token shares.
inline DomainContext make_context(int source, int target, int horizon) {
  DomainContext c;
  for (int d = 0; d < source + target; ++d) {
    c.names.push_back((d < source ? "src" : "tgt") + std::to_string(d));
    c.fields.push_back(d < source ? Field::kSource : Field::kTarget);
    c.token_shares.push_back(1.0 + d);  // unnormalised on purpose: shares are relative
  }
  double total = 0;
  for (double s : c.token_shares) total += s;
  for (auto& s : c.token_shares) s /= total;
  c.horizon = horizon;
  return c;
}

/// A built-in policy from its spec text, as a program builds one: parsed, then made by the registry.
inline std::unique_ptr<Policy> make_builtin_policy(const std::string& spec, const DomainContext& ctx,
                                                   const PolicySettings& settings) {
  return PolicyRegistry::builtin().make(parse_policy_spec(spec), ctx, settings);
}
inline std::unique_ptr<Policy> make_builtin_policy(const std::string& spec, const DomainContext& ctx,
                                                   const Config& config) {
  return make_builtin_policy(spec, ctx, policy_settings(config));
}

/// Actions of B episodes, [episode][step][domain].
using Actions = std::vector<std::vector<std::vector<double>>>;

/// Runs episodes `ids` through the whole horizon in one batched act per step, as the
/// learner does. Toy dynamics: a domain's loss falls with its weight, source losses drift
/// up when they get little weight (forgetting).
inline Actions run_episodes(Policy& policy, const DomainContext& ctx, const std::vector<std::int64_t>& ids,
                            std::uint64_t run_seed = 7) {
  const int D = ctx.num_domains(), T = ctx.horizon, B = static_cast<int>(ids.size());
  const int obs_dim = obs::dim(D);
  std::vector<float> base(static_cast<size_t>(D));
  for (int d = 0; d < D; ++d)
    base[static_cast<size_t>(d)] = ctx.fields[static_cast<size_t>(d)] == Field::kTarget ? 4.0f : 2.0f + 0.1f * d;
  std::vector<std::vector<float>> losses(static_cast<size_t>(B), base), prev = losses;
  std::vector<std::vector<float>> prev_w(static_cast<size_t>(B), obs::base_mixture(ctx.fields, ctx.token_shares));
  for (int b = 0; b < B; ++b)
    policy.begin_episode(ids[static_cast<size_t>(b)],
                         trajectory_seed(run_seed, ids[static_cast<size_t>(b)], kStreamPolicy));
  Actions out(static_cast<size_t>(B));
  for (int t = 0; t < T; ++t) {
    std::vector<std::int32_t> steps(static_cast<size_t>(B), t);
    std::vector<float> observations(static_cast<size_t>(B * obs_dim));
    for (int b = 0; b < B; ++b)
      obs::build(
          {t, T, prev_w[static_cast<size_t>(b)], losses[static_cast<size_t>(b)], prev[static_cast<size_t>(b)], base,
           ctx.fields, ctx.token_shares},
          std::span<float>(observations.data() + static_cast<size_t>(b * obs_dim), static_cast<size_t>(obs_dim)));
    std::vector<double> weights(static_cast<size_t>(B * D));
    policy.act({B, obs_dim, ids, steps, observations}, weights);
    for (int b = 0; b < B; ++b) {
      const auto bs = static_cast<size_t>(b);
      std::vector<double> row(weights.begin() + b * D, weights.begin() + (b + 1) * D);
      prev[bs] = losses[bs];
      for (int d = 0; d < D; ++d) {
        const auto ds = static_cast<size_t>(d);
        const bool target = ctx.fields[ds] == Field::kTarget;
        const double fall = (target ? 0.08 : 0.01) * (1.0 + 0.2 * d) * row[ds];
        const double drift = target ? 0.0 : 0.01 * (1.0 - row[ds] * D);
        losses[bs][ds] = static_cast<float>(losses[bs][ds] * (1.0 - fall + std::max(0.0, drift)));
        prev_w[bs][ds] = static_cast<float>(row[ds]);
      }
      out[bs].push_back(std::move(row));
    }
  }
  for (auto id : ids) policy.end_episode(id);
  return out;
}

/// Sum of the target-field weights of a row.
inline double target_share(const DomainContext& ctx, const std::vector<double>& w) {
  double s = 0;
  for (size_t d = 0; d < w.size(); ++d)
    if (ctx.fields[d] == Field::kTarget) s += w[d];
  return s;
}

using ScratchDir = TempDir;  ///< shared helper, see tests/support/temp_dir.hpp

}  // namespace dma::test
