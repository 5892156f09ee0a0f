// Helpers shared by every policy: batch checks, simplex rows, spec arguments, field shares.
#include <charconv>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "internal.hpp"

namespace dma {
namespace policy_detail {

void check_context(const DomainContext& ctx) {
  const size_t D = ctx.names.size();
  if (D == 0) throw PolicyError("policies need at least one domain: the domain space is empty");
  if (ctx.fields.size() != D || (!ctx.token_shares.empty() && ctx.token_shares.size() != D))
    throw PolicyError(
        fmt::format("domain context has {} names, {} fields and {} token shares: give one of each per domain", D,
                    ctx.fields.size(), ctx.token_shares.size()));
  if (ctx.horizon < 1) throw PolicyError(fmt::format("horizon {} is not valid: set train.horizon >= 1", ctx.horizon));
}

void check_batch(const std::string& name, const ActBatch& batch, std::span<double> weights, const DomainContext& ctx,
                 bool needs_obs) {
  const auto B = static_cast<size_t>(std::max(batch.batch, 0));
  const auto D = static_cast<size_t>(ctx.num_domains());
  if (batch.batch < 0 || batch.episode_ids.size() != B || batch.steps.size() != B || weights.size() != B * D ||
      batch.obs_dim < 0 || batch.observations.size() != B * static_cast<size_t>(batch.obs_dim))
    throw PolicyError(
        fmt::format("policy '{}': act() got {} rows, {} ids, {} steps, {} observation floats (obs_dim {}) "
                    "and room for {} weights; expected B rows of {} weights",
                    name, batch.batch, batch.episode_ids.size(), batch.steps.size(), batch.observations.size(),
                    batch.obs_dim, weights.size(), D));
  if (needs_obs && batch.obs_dim != obs::dim(ctx.num_domains()))
    throw PolicyError(fmt::format("policy '{}': observations have {} entries, expected {} for {} domains", name,
                                  batch.obs_dim, obs::dim(ctx.num_domains()), D));
  for (size_t b = 0; b < B; ++b)
    if (batch.steps[b] < 0 || batch.steps[b] >= ctx.horizon)
      throw PolicyError(fmt::format("policy '{}': episode {} asks for step {} outside the horizon 0..{}", name,
                                    batch.episode_ids[b], batch.steps[b], ctx.horizon - 1));
}

void finish_row(std::span<double> row) {
  double total = 0;
  for (auto& x : row) {
    if (!std::isfinite(x) || x < 0) x = 0;
    total += x;
  }
  if (!(total > 0)) {
    for (auto& x : row) x = 1.0 / static_cast<double>(row.size());
    return;
  }
  for (auto& x : row) x /= total;
}

std::vector<double> natural_within(const DomainContext& ctx, Field field) {
  const size_t D = ctx.names.size();
  std::vector<double> w(D, 0.0);
  double total = 0;
  int members = 0;
  for (size_t d = 0; d < D; ++d) {
    if (ctx.fields[d] != field) continue;
    ++members;
    const double s = ctx.token_shares.empty() ? 0.0 : ctx.token_shares[d];
    w[d] = std::isfinite(s) && s > 0 ? s : 0.0;
    total += w[d];
  }
  for (size_t d = 0; d < D; ++d) {
    if (ctx.fields[d] != field) continue;
    w[d] = total > 0 ? w[d] / total : 1.0 / members;  // no token counts: uniform within the field
  }
  return w;
}

std::vector<double> resolve_mixture(const std::string& name, const MixtureArg& mixture, const DomainContext& ctx) {
  const int D = ctx.num_domains();
  if (mixture.form != MixtureArg::Form::kWeights) {
    // A source:target ratio (DESIGN §4), e.g. fixed:3:1 is a target share of 0.25.
    const double share = mixture.form == MixtureArg::Form::kShare
                             ? mixture.values.at(0)
                             : mixture.values.at(1) / (mixture.values.at(0) + mixture.values.at(1));
    try {
      return mixture_from_target_share(ctx, share);
    } catch (const PolicyError& e) {
      throw PolicyError(fmt::format("policy '{}': {}", name, e.what()));
    }
  }
  std::vector<double> w = mixture.values;
  if (static_cast<int>(w.size()) != D)
    throw PolicyError(
        fmt::format("policy '{}' gives {} weights for {} domains: give one weight per domain "
                    "(w1/.../w{}) or a single target share in [0, 1]",
                    name, w.size(), D, D));
  double total = 0;
  for (double x : w) total += x;
  for (auto& x : w) x /= total;
  return w;
}

std::vector<int> map_store_domains(const std::string& spec, const std::string& store,
                                   const std::vector<std::string>& store_names, const DomainContext& ctx) {
  std::map<std::string, int> column;
  for (size_t i = 0; i < store_names.size(); ++i) column[store_names[i]] = static_cast<int>(i);
  std::vector<int> map;
  for (const auto& name : ctx.names) {
    const auto it = column.find(name);
    if (it == column.end())
      throw PolicyError(fmt::format("policy '{}': store '{}' has no domain '{}': use a store of this domain space",
                                    spec, store, name));
    map.push_back(it->second);
  }
  if (store_names.size() != ctx.names.size())
    throw PolicyError(
        fmt::format("policy '{}': store '{}' has {} domains, this domain space {}: use a store of this "
                    "domain space",
                    spec, store, store_names.size(), ctx.names.size()));
  return map;
}

}  // namespace policy_detail

std::optional<double> parse_number(std::string_view text) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::vector<double> mixture_from_target_share(const DomainContext& domains, double target_share) {
  policy_detail::check_context(domains);
  if (!std::isfinite(target_share) || target_share < 0 || target_share > 1)
    throw PolicyError(fmt::format("target share {} is outside [0, 1]: give a share in [0, 1]", target_share));
  const auto source = policy_detail::natural_within(domains, Field::kSource);
  const auto target = policy_detail::natural_within(domains, Field::kTarget);
  bool has_source = false, has_target = false;
  for (Field f : domains.fields) (f == Field::kTarget ? has_target : has_source) = true;
  if (!has_target && target_share > 0)
    throw PolicyError(
        fmt::format("target share {} needs target-field domains and the domain space has none: use a "
                    "share of 0",
                    target_share));
  if (!has_source && target_share < 1)
    throw PolicyError(
        fmt::format("target share {} leaves weight for source-field domains and the domain space has "
                    "none: use a share of 1",
                    target_share));
  std::vector<double> w(source.size());
  for (size_t d = 0; d < w.size(); ++d) w[d] = (1.0 - target_share) * source[d] + target_share * target[d];
  policy_detail::finish_row(w);
  return w;
}

}  // namespace dma
