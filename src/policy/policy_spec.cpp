// The policy spec grammar: parse_policy_spec and its inverse, to_string.
#include "dma/policy_spec.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dma/error.hpp"
#include "dma/policy.hpp"
#include "internal.hpp"

namespace dma {
namespace {

using policy_detail::kValidSpecs;

constexpr std::pair<PolicyKind, std::string_view> kKindNames[] = {
    {PolicyKind::kUniform, "uniform"},
    {PolicyKind::kNatural, "natural"},
    {PolicyKind::kSourceOnly, "source-only"},
    {PolicyKind::kTargetOnly, "target-only"},
    {PolicyKind::kRandom, "random"},
    {PolicyKind::kOnlineEg, "online-eg"},
    {PolicyKind::kFixed, "fixed"},
    {PolicyKind::kSchedule, "schedule"},
    {PolicyKind::kTunedFixed, "tuned-fixed"},
    {PolicyKind::kTunedSchedule, "tuned-schedule"},
    {PolicyKind::kReplay, "replay"},
    {PolicyKind::kRegmix, "regmix"},
    {PolicyKind::kAgent, "agent"},
};

/// Splits `text` at every `separator`; an empty piece is kept (callers reject it).
std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (;;) {
    const size_t end = text.find(separator, begin);
    out.emplace_back(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) return out;
    begin = end + 1;
  }
}

/// A target share "0.3", a source:target ratio "3:1" or weights "w1/.../wD".
MixtureArg parse_mixture(std::string_view spec, std::string_view arg) {
  if (const size_t colon = arg.find(':'); colon != std::string_view::npos) {
    const auto s = parse_number(arg.substr(0, colon)), t = parse_number(arg.substr(colon + 1));
    if (!s || !t || *s < 0 || *t < 0 || !(*s + *t > 0))
      throw PolicyError(
          fmt::format("policy '{}': '{}' is not a source:target ratio of two non-negative numbers, "
                      "e.g. 3:1",
                      spec, arg));
    return {MixtureArg::Form::kRatio, {*s, *t}};
  }
  if (arg.find('/') == std::string_view::npos) {
    const auto share = parse_number(arg);
    if (!share)
      throw PolicyError(
          fmt::format("policy '{}': '{}' is not a number: give a target share in [0, 1] or weights "
                      "w1/.../wD, one per domain",
                      spec, arg));
    if (*share < 0 || *share > 1)
      throw PolicyError(
          fmt::format("policy '{}': target share {} is outside [0, 1]: use a share in [0, 1] or weights "
                      "w1/.../wD, one per domain",
                      spec, *share));
    return {MixtureArg::Form::kShare, {*share}};
  }
  MixtureArg weights{MixtureArg::Form::kWeights, {}};
  double total = 0;
  for (const auto& item : split(arg, '/')) {
    const auto value = parse_number(item);
    if (!value || *value < 0)
      throw PolicyError(fmt::format(
          "policy '{}': weight '{}' is not a non-negative number: write w1/.../wD, one per domain", spec, item));
    weights.values.push_back(*value);
    total += *value;
  }
  if (!(total > 0))
    throw PolicyError(fmt::format("policy '{}': the weights are all 0: give at least one positive weight", spec));
  return weights;
}

/// The two ends of schedule:<from>><to>.
std::vector<MixtureArg> parse_ends(std::string_view spec, std::string_view kind, std::string_view arg) {
  const size_t arrow = arg.find('>');
  if (arrow == std::string_view::npos || arg.find('>', arrow + 1) != std::string_view::npos)
    throw PolicyError(
        fmt::format("policy '{}' needs two ends: write {}:<from>><to> with target shares or "
                    "weight lists, e.g. {}:0.9>0.2",
                    spec, kind, kind));
  return {parse_mixture(spec, arg.substr(0, arrow)), parse_mixture(spec, arg.substr(arrow + 1))};
}

void parse_replay(PolicySpec& out, std::string_view spec, std::string_view arg) {
  const size_t hash = arg.rfind('#');
  const auto id = hash == std::string_view::npos ? std::nullopt : parse_number(arg.substr(hash + 1));
  if (hash == 0 || !id || *id != static_cast<double>(static_cast<std::int64_t>(*id)))
    throw PolicyError(
        fmt::format("policy '{}' needs a store and an episode id: write replay:<store>#<id>, e.g. "
                    "replay:runs/demo/store.h5#3",
                    spec));
  out.store = arg.substr(0, hash);
  out.episode = static_cast<std::int64_t>(*id);
}

/// <checkpoint>[+<checkpoint>...][?noise=<std>]
void parse_agent(PolicySpec& out, std::string_view spec, std::string_view arg) {
  const auto usage = [&](const std::string& why) {
    return PolicyError(
        fmt::format("policy '{}': {}: write agent:<checkpoint>[+<checkpoint>...][?noise=<std>], as in "
                    "agent:runs/demo/agent.pt?noise=0.3",
                    spec, why));
  };
  const size_t q = arg.find('?');
  const std::string_view paths = arg.substr(0, q);
  if (paths.empty()) throw usage("no checkpoint");
  out.checkpoints = split(paths, '+');
  if (std::find(out.checkpoints.begin(), out.checkpoints.end(), "") != out.checkpoints.end())
    throw usage(fmt::format("'{}' has an empty checkpoint name", paths));
  if (q == std::string_view::npos) return;
  for (const auto& option : split(arg.substr(q + 1), '&')) {
    const size_t eq = option.find('=');
    if (eq == std::string::npos || option.substr(0, eq) != "noise")
      throw usage(fmt::format("unknown option '{}'", option));
    const std::string value = option.substr(eq + 1);
    const auto x = parse_number(value);
    if (!x || *x < 0) throw usage(fmt::format("noise must be a number >= 0, not '{}'", value));
    out.noise = *x;
  }
}

std::string mixture_text(const MixtureArg& m) {
  switch (m.form) {
    case MixtureArg::Form::kShare:
      return fmt::format("{}", m.values.at(0));
    case MixtureArg::Form::kRatio:
      return fmt::format("{}:{}", m.values.at(0), m.values.at(1));
    case MixtureArg::Form::kWeights:
      return fmt::format("{}", fmt::join(m.values, "/"));
  }
  return "";
}

}  // namespace

std::string_view policy_kind_name(PolicyKind kind) {
  for (const auto& [k, name] : kKindNames)
    if (k == kind) return name;
  return "unknown";
}

std::optional<PolicyKind> policy_kind_named(std::string_view name) {
  for (const auto& [kind, kind_name] : kKindNames)
    if (kind_name == name) return kind;
  return std::nullopt;
}

PolicySpec parse_policy_spec(std::string_view text) {
  const size_t colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  const auto kind = policy_kind_named(name);
  if (!kind) throw PolicyError(fmt::format("unknown policy '{}': use {}", text, kValidSpecs));
  PolicySpec out(*kind);
  out.written = text;
  const bool has_arg = colon != std::string_view::npos;
  const std::string_view arg = has_arg ? text.substr(colon + 1) : std::string_view{};
  switch (*kind) {
    case PolicyKind::kUniform:
    case PolicyKind::kNatural:
    case PolicyKind::kSourceOnly:
    case PolicyKind::kTargetOnly:
    case PolicyKind::kRandom:
    case PolicyKind::kOnlineEg:
      if (has_arg) throw PolicyError(fmt::format("policy '{}': {} takes no argument: write {}", text, name, name));
      return out;
    case PolicyKind::kFixed:
    case PolicyKind::kTunedFixed:
      if (!has_arg && *kind == PolicyKind::kFixed)
        throw PolicyError(fmt::format("policy '{}' needs a mixture: write fixed:<target share>, e.g. fixed:0.5", text));
      if (has_arg) out.mixtures.push_back(parse_mixture(text, arg));
      return out;
    case PolicyKind::kSchedule:
    case PolicyKind::kTunedSchedule:
      if (has_arg || *kind == PolicyKind::kSchedule) out.mixtures = parse_ends(text, name, arg);
      return out;
    case PolicyKind::kReplay:
      parse_replay(out, text, arg);
      return out;
    case PolicyKind::kRegmix:
      if (has_arg && arg.empty())
        throw PolicyError(fmt::format("policy '{}' names no store: write regmix or regmix:<store>", text));
      out.store = arg;
      return out;
    case PolicyKind::kAgent:
      if (has_arg) parse_agent(out, text, arg);
      return out;
  }
  return out;
}

std::string to_string(const PolicySpec& spec) {
  if (!spec.written.empty() && parse_policy_spec(spec.written) == spec) return spec.written;
  std::string out(policy_kind_name(spec.kind));
  switch (spec.kind) {
    case PolicyKind::kFixed:
    case PolicyKind::kTunedFixed:
      if (!spec.mixtures.empty()) out += ":" + mixture_text(spec.mixtures.at(0));
      break;
    case PolicyKind::kSchedule:
    case PolicyKind::kTunedSchedule:
      if (!spec.mixtures.empty())
        out += ":" + mixture_text(spec.mixtures.at(0)) + ">" + mixture_text(spec.mixtures.at(1));
      break;
    case PolicyKind::kReplay:
      out += fmt::format(":{}#{}", spec.store, spec.episode);
      break;
    case PolicyKind::kRegmix:
      if (!spec.store.empty()) out += ":" + spec.store;
      break;
    case PolicyKind::kAgent:
      if (spec.checkpoints.empty()) break;  // this run's agent; noise needs a checkpoint to go with
      out += fmt::format(":{}", fmt::join(spec.checkpoints, "+"));
      if (spec.noise) out += fmt::format("?noise={}", *spec.noise);
      break;
    default:
      break;
  }
  return out;
}

PolicySpec agent_spec(std::vector<std::string> checkpoints, std::optional<double> noise) {
  PolicySpec spec(PolicyKind::kAgent);
  spec.checkpoints = std::move(checkpoints);
  spec.noise = noise;
  return spec;
}

bool needs_tuning(const PolicySpec& spec) {
  return (spec.kind == PolicyKind::kTunedFixed || spec.kind == PolicyKind::kTunedSchedule) && spec.mixtures.empty();
}

}  // namespace dma
