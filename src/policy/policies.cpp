// The policy registry and policy mixes (collect.policies,
// evaluate.policies, which spec each trajectory uses).
#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dma/error.hpp"
#include "dma/seed.hpp"
#include "internal.hpp"

namespace dma {
namespace {

using namespace policy_detail;

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::vector<std::string> split_entries(const std::string& text, const char* what) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (;;) {
    const size_t end = text.find(',', begin);
    out.push_back(trim(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin)));
    if (out.back().empty())
      throw PolicyError(fmt::format("{} '{}' has an empty entry: separate entries by single commas", what, text));
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

}  // namespace

std::string policy_kind(const std::string& name) { return name.substr(0, name.find(':')); }

PolicyRegistry PolicyRegistry::builtin() {
  using namespace policy_detail;
  PolicyRegistry r;
  for (const PolicyKind kind :
       {PolicyKind::kUniform, PolicyKind::kNatural, PolicyKind::kSourceOnly, PolicyKind::kTargetOnly,
        PolicyKind::kFixed, PolicyKind::kSchedule, PolicyKind::kTunedFixed, PolicyKind::kTunedSchedule})
    r.add(kind, [](const PolicySpec& spec, const DomainContext& domains, const PolicySettings&) {
      return make_static_policy(spec, domains);
    });
  r.add(PolicyKind::kRandom, [](const PolicySpec& spec, const DomainContext& domains, const PolicySettings& settings) {
    return make_random_policy(spec, domains, settings.random);
  });
  r.add(PolicyKind::kOnlineEg,
        [](const PolicySpec& spec, const DomainContext& domains, const PolicySettings& settings) {
          return make_online_eg_policy(spec, domains, settings.online_eg);
        });
  r.add(PolicyKind::kReplay, [](const PolicySpec& spec, const DomainContext& domains, const PolicySettings&) {
    return make_replay_policy(spec, domains);
  });
  r.add(PolicyKind::kRegmix, &make_regmix_policy);
  return r;
}

PolicyRegistry& PolicyRegistry::add(PolicyKind kind, PolicyFactory factory) {
  if (!factory) throw PolicyError(fmt::format("policy kind '{}' was given no factory", policy_kind_name(kind)));
  factories_[kind] = std::move(factory);
  return *this;
}

PolicySettings policy_settings(const Config& config) {
  PolicySettings s;
  s.random = config.random;
  s.online_eg = config.online_eg;
  s.regmix = config.regmix;
  s.eval = config.eval;
  s.collection_store = config.collect.store.empty() ? config.run.dir + "/store.h5" : config.collect.store;
  s.seed = config.run.seed;
  s.agent_noise = config.agent.exploration_std;
  s.agent_threads = config.agent.threads;
  return s;
}

std::unique_ptr<Policy> PolicyRegistry::make(const PolicySpec& spec, const DomainContext& domains,
                                             const PolicySettings& settings) const {
  check_context(domains);
  const auto it = factories_.find(spec.kind);
  if (it == factories_.end()) {
    std::vector<std::string_view> known;
    for (const PolicyKind kind : kinds()) known.push_back(policy_kind_name(kind));
    throw PolicyError(fmt::format("policy '{}': this program cannot build '{}' policies: use one of {}",
                                  to_string(spec), policy_kind_name(spec.kind), fmt::join(known, ", ")));
  }
  return it->second(spec, domains, settings);
}

std::vector<PolicyKind> PolicyRegistry::kinds() const {
  std::vector<PolicyKind> out;
  for (const PolicyKind kind : kPolicyKinds)
    if (factories_.count(kind)) out.push_back(kind);
  return out;
}

PolicyMix parse_policy_mix(const std::string& text) {
  std::vector<std::string> specs;
  std::vector<double> probabilities;
  const auto entries = split_entries(text, "policy mix");
  double total = 0;
  for (const auto& entry : entries) {
    const size_t colon = entry.rfind(':');
    // A lone entry without a probability ("random") takes all of it.
    if (colon == std::string::npos && entries.size() == 1) return {{parse_policy_spec(entry)}, {1.0}};
    const auto p = colon == std::string::npos ? std::nullopt : parse_number(trim(entry.substr(colon + 1)));
    if (!p)
      throw PolicyError(
          fmt::format("policy mix '{}': entry '{}' does not end in a probability: write <spec>:<probability>, "
                      "e.g. random:0.9,uniform:0.1",
                      text, entry));
    if (*p < 0 || *p > 1)
      throw PolicyError(fmt::format("policy mix '{}': entry '{}' has probability {} outside [0, 1]", text, entry, *p));
    const std::string spec = trim(entry.substr(0, colon));
    if (spec.empty()) throw PolicyError(fmt::format("policy mix '{}': entry '{}' names no policy", text, entry));
    // An unknown kind is reported at once; arguments after the sum, so that "fixed:0.3" (a
    // share that lacks its probability) reads as a mix that does not sum to 1.
    if (!policy_kind_named(policy_kind(spec))) parse_policy_spec(spec);
    specs.push_back(spec);
    probabilities.push_back(*p);
    total += *p;
  }
  if (std::abs(total - 1.0) > 1e-6)
    throw PolicyError(
        fmt::format("policy mix '{}': probabilities sum to {:.6g}, not 1: make them sum to 1", text, total));
  PolicyMix mix{{}, std::move(probabilities)};
  for (const auto& spec : specs) mix.specs.push_back(parse_policy_spec(spec));
  return mix;
}

std::vector<std::string> parse_policy_list(const std::string& text) {
  // An empty setting (evaluate.oracle = "") is an empty list.
  if (trim(text).empty()) return {};
  return split_entries(text, "list");
}

std::vector<PolicySpec> parse_policy_specs(const std::string& text) {
  std::vector<PolicySpec> out;
  for (const auto& entry : parse_policy_list(text)) out.push_back(parse_policy_spec(entry));
  return out;
}

std::size_t assign_policy(const PolicyMix& mix, std::uint64_t run_seed, std::int64_t id) {
  if (mix.specs.empty() || mix.specs.size() != mix.probabilities.size())
    throw PolicyError("assign_policy: the policy mix is empty or malformed: build it with parse_policy_mix");
  const std::uint64_t bits = trajectory_seed(run_seed, id, kStreamAssign);
  const double u = static_cast<double>(bits >> 11) * 0x1.0p-53;
  double cumulative = 0;
  std::size_t last_positive = 0;
  for (std::size_t i = 0; i < mix.specs.size(); ++i) {
    if (mix.probabilities[i] <= 0) continue;
    last_positive = i;
    cumulative += mix.probabilities[i];
    if (u < cumulative) return i;
  }
  return last_positive;  // sums a hair under 1 (within 1e-6)
}

}  // namespace dma
