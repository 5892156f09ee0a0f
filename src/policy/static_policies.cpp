// Open-loop baselines: uniform, natural, source-only, target-only, fixed and schedule. Each
// is a linear path between two mixtures over the horizon (constant when both ends agree).
#include <fmt/format.h>

#include "dma/error.hpp"
#include "internal.hpp"

namespace dma::policy_detail {
namespace {

class LinearPolicy final : public Policy {
 public:
  LinearPolicy(std::string name, const DomainContext& ctx, std::vector<double> from, std::vector<double> to)
      : name_(std::move(name)), ctx_(ctx), from_(std::move(from)), to_(std::move(to)) {}

  std::string name() const override { return name_; }

  void act(const ActBatch& batch, std::span<double> weights) override {
    check_batch(name_, batch, weights, ctx_, /*needs_obs=*/false);
    const size_t D = from_.size();
    for (size_t b = 0; b < static_cast<size_t>(batch.batch); ++b) {
      // Step t of T takes the fraction t / (T - 1): the first step is `from`, the last `to`.
      const double x = ctx_.horizon > 1 ? static_cast<double>(batch.steps[b]) / (ctx_.horizon - 1) : 0.0;
      auto row = weights.subspan(b * D, D);
      for (size_t d = 0; d < D; ++d) row[d] = (1.0 - x) * from_[d] + x * to_[d];
      finish_row(row);
    }
  }

 private:
  std::string name_;
  DomainContext ctx_;
  std::vector<double> from_, to_;  // (D) each
};

std::unique_ptr<Policy> constant(const std::string& spec, const DomainContext& ctx, std::vector<double> w) {
  finish_row(w);
  return std::make_unique<LinearPolicy>(spec, ctx, w, w);
}

std::vector<double> field_only(const std::string& spec, const DomainContext& ctx, Field field) {
  auto w = natural_within(ctx, field);
  double total = 0;
  for (double x : w) total += x;
  if (total <= 0)
    throw PolicyError(fmt::format("policy '{}': the domain space has no {}-field domain: pick another policy", spec,
                                  field_name(field)));
  return w;
}

}  // namespace

std::unique_ptr<Policy> make_static_policy(const PolicySpec& spec, const DomainContext& ctx) {
  const std::string name = to_string(spec);
  const size_t D = ctx.names.size();
  switch (spec.kind) {
    case PolicyKind::kUniform:
      return constant(name, ctx, std::vector<double>(D, 1.0 / static_cast<double>(D)));
    case PolicyKind::kNatural: {
      std::vector<double> w(D, 1.0);  // no token counts at all: uniform
      if (!ctx.token_shares.empty()) w = ctx.token_shares;
      return constant(name, ctx, w);
    }
    case PolicyKind::kSourceOnly:
      return constant(name, ctx, field_only(name, ctx, Field::kSource));
    case PolicyKind::kTargetOnly:
      return constant(name, ctx, field_only(name, ctx, Field::kTarget));
    default:
      break;
  }
  if (needs_tuning(spec))
    throw PolicyError(
        fmt::format("policy '{}' is tuned by rollouts before it runs: list it in evaluate.policies of "
                    "dma_orchestrate (evaluate or headroom mode), or give its value, e.g. {}",
                    name, spec.kind == PolicyKind::kTunedFixed ? "tuned-fixed:0.55" : "tuned-schedule:0.7>0.4"));
  // fixed and tuned-fixed (a tuned baseline's value, found by dma_orchestrate's tuning or
  // carried from another setting) hold one mixture; schedule and tuned-schedule two.
  if (spec.mixtures.size() == 1) return constant(name, ctx, resolve_mixture(name, spec.mixtures[0], ctx));
  if (spec.mixtures.size() == 2)
    return std::make_unique<LinearPolicy>(name, ctx, resolve_mixture(name, spec.mixtures[0], ctx),
                                          resolve_mixture(name, spec.mixtures[1], ctx));
  throw PolicyError(fmt::format("unknown policy '{}': use {}", name, kValidSpecs));
}

}  // namespace dma::policy_detail
