#pragma once
// Shared pieces of the policy implementations (not a public header). D domains, B batch rows.
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dma/config.hpp"
#include "dma/policy.hpp"

namespace dma::policy_detail {

/// The list every unknown-spec error ends with.
inline constexpr const char* kValidSpecs =
    "uniform|natural|source-only|target-only|fixed:<share>|schedule:<a>><b>|tuned-fixed[:<share>]|"
    "tuned-schedule[:<a>><b>]|random|online-eg|replay:<store>#<id>|regmix[:<store>]|agent:<ckpt>";

/// Checks a batch against D and the weights buffer (sizes, steps in [0, horizon)).
/// `needs_obs`: the policy reads observations, so obs_dim must be obs::dim(D).
void check_batch(const std::string& name, const ActBatch& batch, std::span<double> weights, const DomainContext& ctx,
                 bool needs_obs);

/// Makes a row a point of the simplex: non-finite or negative entries become 0, then the row
/// is divided by its sum (uniform if nothing is left). Sums to 1 within a few ulps.
void finish_row(std::span<double> row);

/// Checks a DomainContext (sizes agree, at least one domain, horizon >= 1).
void check_context(const DomainContext& ctx);

/// The weights of a mixture of fixed:/schedule: ends over this domain space; throws
/// PolicyError (naming `name`) when a weight list does not give one weight per domain.
std::vector<double> resolve_mixture(const std::string& name, const MixtureArg& mixture, const DomainContext& ctx);

/// Natural (token) shares normalised over the domains of `field`, 0 elsewhere; uniform
/// within the field when it has no token counts. All zero when the field has no domain.
std::vector<double> natural_within(const DomainContext& ctx, Field field);

// Factories of each family (the registry picks them by kind).
std::unique_ptr<Policy> make_static_policy(const PolicySpec& spec, const DomainContext& ctx);
std::unique_ptr<Policy> make_random_policy(const PolicySpec& spec, const DomainContext& ctx,
                                           const RandomPolicyConfig& cfg);
std::unique_ptr<Policy> make_online_eg_policy(const PolicySpec& spec, const DomainContext& ctx,
                                              const OnlineEgConfig& cfg);
std::unique_ptr<Policy> make_replay_policy(const PolicySpec& spec, const DomainContext& ctx);
std::unique_ptr<Policy> make_regmix_policy(const PolicySpec& spec, const DomainContext& ctx,
                                           const PolicySettings& settings);

/// For each context domain, its column in a store with `store_names`; throws PolicyError
/// (naming `spec` and `store`) unless both hold the same set of domain names.
std::vector<int> map_store_domains(const std::string& spec, const std::string& store,
                                   const std::vector<std::string>& store_names, const DomainContext& ctx);

}  // namespace dma::policy_detail
