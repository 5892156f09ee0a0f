// Open-loop baselines: uniform, natural, source-only, target-only, fixed and schedule. Each
// is a linear path between two mixtures over the horizon (constant when both ends agree).
#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/tuning.hpp"
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

/// schedule:<from>><to> and tuned-schedule:<from>><to>.
std::unique_ptr<Policy> schedule(const std::string& spec, const DomainContext& ctx) {
  const std::string kind = spec.substr(0, spec.find(':'));
  const std::string arg = spec.substr(kind.size() + 1);
  const size_t arrow = arg.find('>');
  if (arrow == std::string::npos || arg.find('>', arrow + 1) != std::string::npos)
    throw PolicyError(
        fmt::format("policy '{}' needs two ends: write {}:<from>><to> with target shares or "
                    "weight lists, e.g. {}:0.9>0.2",
                    spec, kind, kind));
  return std::make_unique<LinearPolicy>(spec, ctx, parse_mixture_arg(spec, arg.substr(0, arrow), ctx),
                                        parse_mixture_arg(spec, arg.substr(arrow + 1), ctx));
}

}  // namespace

std::unique_ptr<Policy> make_static_policy(const std::string& spec, const DomainContext& ctx) {
  const size_t D = ctx.names.size();
  if (spec == "uniform") return constant(spec, ctx, std::vector<double>(D, 1.0 / static_cast<double>(D)));
  if (spec == "natural") {
    std::vector<double> w(D, 1.0);  // no token counts at all: uniform
    if (!ctx.token_shares.empty()) w = ctx.token_shares;
    return constant(spec, ctx, w);
  }
  if (spec == "source-only") return constant(spec, ctx, field_only(spec, ctx, Field::kSource));
  if (spec == "target-only") return constant(spec, ctx, field_only(spec, ctx, Field::kTarget));
  if (spec.starts_with("fixed:")) return constant(spec, ctx, parse_mixture_arg(spec, spec.substr(6), ctx));
  if (spec.starts_with("schedule:") || spec.starts_with("tuned-schedule:")) return schedule(spec, ctx);
  // A tuned baseline's value, found by dma_orchestrate's tuning or carried from another setting.
  if (spec.starts_with("tuned-fixed:")) return constant(spec, ctx, parse_mixture_arg(spec, spec.substr(12), ctx));
  if (needs_tuning(spec))
    throw PolicyError(
        fmt::format("policy '{}' is tuned by rollouts before it runs: list it in evaluate.policies of "
                    "dma_orchestrate (evaluate or headroom mode), or give its value, e.g. {}",
                    spec, spec == "tuned-fixed" ? "tuned-fixed:0.55" : "tuned-schedule:0.7>0.4"));
  throw PolicyError(fmt::format("unknown policy '{}': use {}", spec, kValidSpecs));
}

}  // namespace dma::policy_detail
