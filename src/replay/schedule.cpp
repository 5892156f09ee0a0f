// `dma_replay schedule`: one policy's rollouts as an open-loop schedule in trainers' formats.
// Stage t holds the mixture of re-weighting step t, averaged over the policy's complete
// episodes (seeds), with its spread. Letters: T stages, D domains.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/replay.hpp"
#include "replay_internal.hpp"

namespace dma::replay {
namespace {

constexpr const char* kNote =
    "open-loop schedule: these mixtures were fixed in advance from rollouts of the policy on dma's proxy runs; they do "
    "not react to your run (for that, steer it with dma_agent serve)";

struct Stage {
  std::int64_t start_tokens = 0;
  std::int64_t start_iteration = -1;    // -1: no --global-batch
  std::vector<double> weights, spread;  // (D) mean and standard deviation over episodes
};

struct Schedule {
  std::string store, policy;
  std::int64_t episodes = 0, total_tokens = 0;
  std::vector<std::string> names;  // (D)
  std::vector<std::string> paths;  // (D) data prefix + name
  std::vector<Stage> stages;       // (T)
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", c);
    else
      out += c;
  }
  return out + "\"";
}

std::string number(double x) { return fmt::format("{:.10g}", x); }

// One policy's complete episodes, averaged step by step.
Schedule build(const std::string& store, const ScheduleOptions& o) {
  if (o.total_tokens <= 0) throw ConfigError("'schedule' needs --total-tokens N: the tokens of the run it schedules");
  if (o.global_batch < 0) throw ConfigError("--global-batch must be > 0 (tokens per optimizer step)");
  Selection sel = parse_selection(o.policy, "complete", "");
  if (sel.policies.size() != 1) throw ConfigError("'schedule' needs --policy P: one policy of the store, e.g. agent");
  const StoreData data = load(store, sel);
  std::set<std::string> names;
  for (const auto& e : data.episodes) names.insert(e.record.policy);
  if (names.empty())
    throw ConfigError(fmt::format("'{}' holds no complete episode of policy '{}': see dma_replay summary {}", store,
                                  o.policy, store));
  if (names.size() > 1)
    throw ConfigError(fmt::format("--policy '{}' matches {} policies of '{}' ({}, ...): name one exactly", o.policy,
                                  names.size(), store, *names.begin()));
  Schedule s{store,
             *names.begin(),
             static_cast<std::int64_t>(data.episodes.size()),
             o.total_tokens,
             data.header.domain_names,
             {},
             {}};
  for (const auto& n : s.names) s.paths.push_back(o.data_prefix + n);
  const size_t D = s.names.size();
  const int T = data.header.horizon;
  for (const auto& e : data.episodes)
    if (e.steps != T)
      throw StoreError(fmt::format("episode {} of '{}' has {} steps, not the horizon {}: the store is damaged",
                                   e.record.id, store, e.steps, T));
  for (int t = 0; t < T; ++t) {
    Stage st;
    st.start_tokens = o.total_tokens * t / T;
    if (o.global_batch > 0) st.start_iteration = st.start_tokens / o.global_batch;
    st.weights.assign(D, 0.0);
    st.spread.assign(D, 0.0);
    for (const auto& e : data.episodes)
      for (size_t d = 0; d < D; ++d) st.weights[d] += e.weights[static_cast<size_t>(t) * D + d];
    double total = 0;
    for (auto& w : st.weights) total += (w /= static_cast<double>(s.episodes));
    for (auto& w : st.weights) w /= total;  // on the simplex to the last digit, as trainers check
    for (const auto& e : data.episodes)
      for (size_t d = 0; d < D; ++d)
        st.spread[d] += std::pow(e.weights[static_cast<size_t>(t) * D + d] - st.weights[d], 2);
    for (auto& v : st.spread) v = s.episodes > 1 ? std::sqrt(v / static_cast<double>(s.episodes - 1)) : 0.0;
    s.stages.push_back(std::move(st));
  }
  return s;
}

std::string header_comment(const Schedule& s, const char* mark) {
  return fmt::format("{} {}\n{} policy {} of {}, mean over {} episodes, {} stages\n", mark, kNote, mark, s.policy,
                     s.store, s.episodes, s.stages.size());
}

// "w1 path1 w2 path2 ..." as Megatron-LM's --data-path takes a blend.
std::string megatron_blend(const Schedule& s, const Stage& st, bool json) {
  std::string out;
  for (size_t d = 0; d < s.names.size(); ++d) {
    if (d > 0) out += json ? ", " : " ";
    out += json ? fmt::format("\"{}\", {}", number(st.weights[d]), json_string(s.paths[d]))
                : fmt::format("{} {}", number(st.weights[d]), s.paths[d]);
  }
  return out;
}

std::string stage_bounds(const Stage& st) {
  return st.start_iteration >= 0 ? fmt::format("iteration {} (token {})", st.start_iteration, st.start_tokens)
                                 : fmt::format("token {}", st.start_tokens);
}

std::string megatron(const Schedule& s) {
  std::string out = header_comment(s, "#");
  out += "# one line per stage: pass it as --data-path from the stage's first iteration on\n";
  for (size_t t = 0; t < s.stages.size(); ++t)
    out += fmt::format("# stage {} from {}\n--data-path {}\n", t, stage_bounds(s.stages[t]),
                       megatron_blend(s, s.stages[t], false));
  return out;
}

// Common JSON head: the note, the provenance and the domains.
std::string json_head(const Schedule& s) {
  std::string names;
  for (size_t d = 0; d < s.names.size(); ++d) names += (d > 0 ? ", " : "") + json_string(s.names[d]);
  return fmt::format(
      "{{\n  \"note\": {},\n  \"store\": {},\n  \"policy\": {},\n  \"episodes\": {},\n  \"domains\": [{}],\n",
      json_string(kNote), json_string(s.store), json_string(s.policy), s.episodes, names);
}

std::string list(const std::vector<double>& xs) {
  std::string out;
  for (size_t i = 0; i < xs.size(); ++i) out += (i > 0 ? ", " : "") + number(xs[i]);
  return out;
}

std::string stage_keys_json(const Stage& st) {
  return st.start_iteration >= 0
             ? fmt::format("\"start_tokens\": {}, \"start_iteration\": {}", st.start_tokens, st.start_iteration)
             : fmt::format("\"start_tokens\": {}", st.start_tokens);
}

std::string megatron_json(const Schedule& s) {
  std::string out = json_head(s) + "  \"stages\": [\n";
  for (size_t t = 0; t < s.stages.size(); ++t) {
    const auto blend = megatron_blend(s, s.stages[t], true);
    out += fmt::format("    {{{}, \"blend\": {{\"train\": [{}], \"valid\": [{}], \"test\": [{}]}}}}{}\n",
                       stage_keys_json(s.stages[t]), blend, blend, blend, t + 1 < s.stages.size() ? "," : "");
  }
  return out + "  ]\n}\n";
}

// Plain JSON; `key` names the weights ("weights", or "probabilities" for HF's interleave_datasets).
std::string plain_json(const Schedule& s, const char* key, bool spread) {
  std::string out = json_head(s) + "  \"stages\": [\n";
  for (size_t t = 0; t < s.stages.size(); ++t) {
    const auto& st = s.stages[t];
    out +=
        fmt::format("    {{{}, \"{}\": [{}]{}}}{}\n", stage_keys_json(st), key, list(st.weights),
                    spread ? fmt::format(", \"std\": [{}]", list(st.spread)) : "", t + 1 < s.stages.size() ? "," : "");
  }
  return out + "  ]\n}\n";
}

// LLM Foundry's curriculum-learning callback: one datamix per stage, lasting until the next.
std::string foundry(const Schedule& s) {
  std::string out = header_comment(s, "#") + "callbacks:\n  curriculum_learning:\n    schedule:\n";
  for (size_t t = 0; t < s.stages.size(); ++t) {
    const auto& st = s.stages[t];
    const std::int64_t end = t + 1 < s.stages.size() ? s.stages[t + 1].start_tokens : s.total_tokens;
    out += fmt::format("    - duration: {}tok\n      train_loader:\n        dataset:\n          streams:\n",
                       end - st.start_tokens);
    for (size_t d = 0; d < s.names.size(); ++d)
      out += fmt::format("            {}:\n              proportion: {}\n", json_string(s.names[d]),
                         number(st.weights[d]));
  }
  return out;
}

std::string torchtitan(const Schedule& s) {
  std::string out = header_comment(s, "#");
  for (const auto& st : s.stages) {
    out += fmt::format("\n[[data.stages]]\nstart_tokens = {}\n", st.start_tokens);
    if (st.start_iteration >= 0) out += fmt::format("start_step = {}\n", st.start_iteration);
    out += "[data.stages.weights]\n";
    for (size_t d = 0; d < s.names.size(); ++d)
      out += fmt::format("{} = {}\n", json_string(s.names[d]), number(st.weights[d]));
  }
  return out;
}

std::string csv(const Schedule& s) {
  std::string out = header_comment(s, "#") + "stage,start_tokens,start_iteration,domain,weight,std\n";
  for (size_t t = 0; t < s.stages.size(); ++t)
    for (size_t d = 0; d < s.names.size(); ++d)
      out += fmt::format("{},{},{},{},{},{}\n", t, s.stages[t].start_tokens,
                         s.stages[t].start_iteration >= 0 ? std::to_string(s.stages[t].start_iteration) : "",
                         csv_field(s.names[d]), number(s.stages[t].weights[d]), number(s.stages[t].spread[d]));
  return out;
}

}  // namespace

std::string schedule(const std::string& store, const ScheduleOptions& options) {
  const std::string& f = options.format;
  if (f != "megatron" && f != "megatron-json" && f != "foundry" && f != "torchtitan" && f != "hf" && f != "json" &&
      f != "csv")
    throw ConfigError(
        fmt::format("--format '{}' is not a schedule format: use megatron, megatron-json, foundry, "
                    "torchtitan, hf, json or csv",
                    f));
  const Schedule s = build(store, options);
  if (f == "megatron") return megatron(s);
  if (f == "megatron-json") return megatron_json(s);
  if (f == "foundry") return foundry(s);
  if (f == "torchtitan") return torchtitan(s);
  if (f == "hf") return plain_json(s, "probabilities", false);
  if (f == "json") return plain_json(s, "weights", true);
  return csv(s);
}

}  // namespace dma::replay
