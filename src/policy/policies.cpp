// Spec dispatch (make_policy, register_policy) and policy mixes (collect.policies,
// evaluate.policies, which spec each trajectory uses).
#include <algorithm>
#include <cmath>
#include <mutex>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/seed.hpp"
#include "internal.hpp"

namespace dma {
namespace {

using namespace policy_detail;

struct Registry {
  std::mutex mu;
  std::vector<std::pair<std::string, PolicyFactory>> factories;  // prefix without ':' -> factory
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string strip_colon(std::string prefix) {
  if (!prefix.empty() && prefix.back() == ':') prefix.pop_back();
  return prefix;
}

PolicyFactory registered(const std::string& kind) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (const auto& [prefix, factory] : r.factories)
    if (prefix == kind) return factory;
  return nullptr;
}

constexpr const char* kNoArgument[] = {"uniform", "natural", "source-only", "target-only", "random", "online-eg"};
constexpr const char* kWithArgument[] = {"fixed", "schedule", "replay", "tuned-fixed", "tuned-schedule"};

/// Throws the unknown-policy error unless `spec` has a known kind (syntax only; arguments
/// are checked by make_policy, which knows the domain space).
void check_kind(const std::string& spec) {
  const std::string kind = policy_kind(spec);
  const bool has_arg = spec.find(':') != std::string::npos;
  for (const char* k : kNoArgument)
    if (kind == k) {
      if (has_arg) throw PolicyError(fmt::format("policy '{}': {} takes no argument: write {}", spec, kind, kind));
      return;
    }
  for (const char* k : kWithArgument)
    if (kind == k) return;
  if (kind == "regmix" || kind == "agent" || registered(kind)) return;
  throw PolicyError(fmt::format("unknown policy '{}': use {}", spec, kValidSpecs));
}

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

std::string policy_kind(const std::string& spec) { return spec.substr(0, spec.find(':')); }

void register_policy(const std::string& prefix, PolicyFactory factory) {
  if (strip_colon(prefix).empty() || factory == nullptr)
    throw PolicyError("register_policy needs a non-empty prefix and a factory");
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  const std::string key = strip_colon(prefix);
  for (auto& [p, f] : r.factories)
    if (p == key) {
      f = factory;  // registering twice (e.g. once per mode) replaces
      return;
    }
  r.factories.emplace_back(key, factory);
}

std::unique_ptr<Policy> make_policy(const std::string& spec, const DomainContext& domains, const Config& config) {
  check_context(domains);
  check_kind(spec);
  const std::string kind = policy_kind(spec);
  if (kind == "random") return make_random_policy(spec, domains, config.random);
  if (kind == "online-eg") return make_online_eg_policy(spec, domains, config.online_eg);
  if (kind == "replay") return make_replay_policy(spec, domains);
  if (kind == "regmix") return make_regmix_policy(spec, domains, config);
  if (const PolicyFactory f = registered(kind)) return f(spec, domains, config);
  if (kind == "agent")
    throw PolicyError(
        fmt::format("policy '{}' needs the agent, which this program did not register: call "
                    "dma::register_agent_policy() at start-up",
                    spec));
  return make_static_policy(spec, domains);
}

PolicyMix parse_policy_mix(const std::string& text) {
  PolicyMix mix;
  const auto entries = split_entries(text, "policy mix");
  double total = 0;
  for (const auto& entry : entries) {
    const size_t colon = entry.rfind(':');
    // A lone entry without a probability ("random") takes all of it.
    if (colon == std::string::npos && entries.size() == 1) {
      check_kind(entry);
      return {{entry}, {1.0}};
    }
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
    check_kind(spec);
    mix.specs.push_back(spec);
    mix.probabilities.push_back(*p);
    total += *p;
  }
  if (std::abs(total - 1.0) > 1e-6)
    throw PolicyError(
        fmt::format("policy mix '{}': probabilities sum to {:.6g}, not 1: make them sum to 1", text, total));
  return mix;
}

std::vector<std::string> parse_policy_list(const std::string& text) {
  // An empty setting (evaluate.oracle = "") is an empty list. Kinds are not checked here:
  // make_policy checks each spec fully, and the list also splits other settings (stores).
  if (trim(text).empty()) return {};
  return split_entries(text, "list");
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
