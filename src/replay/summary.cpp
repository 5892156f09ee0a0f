// `summary` and `compare`: per-policy tables of a store, and of policies across stores.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "dma/paired.hpp"
#include "dma/policy.hpp"
#include "dma/progress.hpp"
#include "dma/replay.hpp"
#include "dma/score.hpp"
#include "dma/tuning.hpp"
#include "replay_internal.hpp"

namespace dma::replay {
namespace {

bool numeric(const std::string& s) {
  return !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+');
}

std::string render_text(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  auto cells = [](const std::string& s) {  // UTF-8 code points ("±" is one column)
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
  };
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = cells(header[c]);
    for (const auto& r : rows) width[c] = std::max(width[c], cells(r[c]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t c = 0; c < r.size(); ++c) {
      const std::size_t pad = width[c] - cells(r[c]);
      const bool right = c > 0 && numeric(r[c]);
      if (c) out += "  ";
      if (right) out.append(pad, ' ');
      out += r[c];
      if (!right && c + 1 < r.size()) out.append(pad, ' ');
    }
    out += "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (auto w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& r : rows) line(r);
  return out;
}

/// Per-policy aggregates of one store.
struct PolicyRow {
  std::map<EpisodeStatus, int> count;
  std::int64_t steps = 0, tokens = 0;
  double wall = 0;
  std::vector<double> ret, source, target, balanced;  // complete episodes

  void add(const EpisodeData& e) {
    ++count[e.record.status];
    steps += e.steps;
    tokens += e.tokens;
    wall += e.wall_seconds;
    if (e.record.status != EpisodeStatus::kComplete || e.steps == 0) return;
    ret.push_back(e.record.return_);
    source.push_back(e.final_source());
    target.push_back(e.final_target());
    balanced.push_back(e.final_balanced());
  }
};

std::string or_dash(const Stats& s) { return s.n ? mean_std(s) : "-"; }

std::string header_lines(const StoreData& d, TableFormat format) {
  int targets = 0, running = 0;
  for (Field f : d.header.domain_fields) targets += f == Field::kTarget;
  for (const auto& e : d.episodes) running += e.record.status == EpisodeStatus::kRunning;
  (void)format;
  return fmt::format(
      "store {} (created {}{})\n{} domains ({} source, {} target), horizon {}, obs_dim {}, {} rows, {} episodes, "
      "balanced score '{}'\n\n",
      d.path, d.header.created_utc, running ? fmt::format(", live: {} running", running) : "", d.header.num_domains(),
      d.header.num_domains() - targets, targets, d.header.horizon, d.header.obs_dim(), d.rows, d.episodes.size(),
      d.eval.score);
}

}  // namespace

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string mean_std(const Stats& s, int digits) {
  return s.n < 2 ? fmt::format("{:.{}f}", s.mean, digits)
                 : fmt::format("{:.{}f} ± {:.{}f}", s.mean, digits, s.std, digits);
}

std::string Table::render(TableFormat format) const {
  std::string out;
  switch (format) {
    case TableFormat::kText:
      return render_text(header_, rows_);
    case TableFormat::kCsv: {
      auto line = [&](const std::vector<std::string>& r) {
        for (std::size_t c = 0; c < r.size(); ++c) {
          if (c) out += ',';
          out += csv_field(r[c]);
        }
        out += '\n';
      };
      line(header_);
      for (const auto& r : rows_) line(r);
      return out;
    }
    case TableFormat::kMarkdown: {
      auto line = [&](const std::vector<std::string>& r) {
        out += "|";
        for (const auto& c : r) {
          out += ' ';
          out += c;
          out += " |";
        }
        out += "\n";
      };
      line(header_);
      out += "|";
      for (std::size_t c = 0; c < header_.size(); ++c) out += c ? " ---: |" : " --- |";
      out += "\n";
      for (const auto& r : rows_) line(r);
      return out;
    }
  }
  return out;
}

std::vector<std::string> store_labels(const std::vector<std::string>& paths) {
  std::vector<std::string> labels;
  std::set<std::string> seen;
  bool unique = true;
  for (const auto& p : paths) {
    labels.push_back(std::filesystem::path(p).filename().string());
    unique = unique && seen.insert(labels.back()).second;
  }
  return unique ? labels : paths;
}

std::string summary(const std::string& store, TableFormat format, const std::string& score) {
  const StoreData d = load(store, {}, score);
  std::map<std::string, PolicyRow> by_policy;
  PolicyRow all;
  for (const auto& e : d.episodes) {
    by_policy[e.record.policy].add(e);
    all.add(e);
  }
  const bool csv = format == TableFormat::kCsv;
  std::vector<std::string> head{"policy", "complete", "failed", "interrupted", "running", "steps"};
  for (const char* m : {"return", "final source", "final target", "final balanced"}) {
    if (!csv)
      head.emplace_back(m);
    else
      for (const char* part : {"_mean", "_std"}) head.push_back(std::string(m) + part);
  }
  for (auto& h : head) std::replace(h.begin(), h.end(), ' ', csv ? '_' : ' ');
  head.insert(head.end(), {"tokens", csv ? "wall_seconds" : "wall"});
  Table t(head);
  auto add = [&](const std::string& name, PolicyRow& r) {
    std::vector<std::string> row{name,
                                 std::to_string(r.count[EpisodeStatus::kComplete]),
                                 std::to_string(r.count[EpisodeStatus::kFailed]),
                                 std::to_string(r.count[EpisodeStatus::kInterrupted]),
                                 std::to_string(r.count[EpisodeStatus::kRunning]),
                                 std::to_string(r.steps)};
    for (const auto* v : {&r.ret, &r.source, &r.target, &r.balanced}) {
      const Stats st = stats(*v);
      if (!csv) {
        row.push_back(or_dash(st));
      } else {
        row.push_back(st.n ? fmt::format("{:.6g}", st.mean) : "");
        row.push_back(st.n > 1 ? fmt::format("{:.6g}", st.std) : "");
      }
    }
    row.push_back(std::to_string(r.tokens));
    row.push_back(csv ? fmt::format("{:.3f}", r.wall) : format_duration(r.wall));
    t.add(row);
  };
  for (auto& [name, r] : by_policy) add(name, r);
  if (by_policy.size() > 1) add("all", all);
  if (format == TableFormat::kCsv) return t.render(format);
  return header_lines(d, format) + t.render(format);
}

namespace {

/// The score specs of `compare` ("" = each store's own).
std::vector<std::string> score_specs(const std::string& scores) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = scores.find(',', begin);
    out.push_back(scores.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (out.back().empty() && !scores.empty())
      throw ConfigError(fmt::format("--score '{}' has an empty entry: separate scores by single commas", scores));
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

/// `normalized` without scales in the store's config divides each field by the spread of its
/// final score over the store's complete episodes, so both fields count alike.
EvalConfig scaled_for(const StoreData& d) {
  EvalConfig eval = d.eval;
  if (eval.score != "normalized" || eval.source_scale != 1.0 || eval.target_scale != 1.0) return eval;
  std::vector<double> source, target;
  for (const auto& e : d.episodes) {
    source.push_back(e.final_source());
    target.push_back(e.final_target());
  }
  const Stats s = stats(source), t = stats(target);
  if (s.std > 0) eval.source_scale = s.std;
  if (t.std > 0) eval.target_scale = t.std;
  return eval;
}

/// One store under one score: policies by mean final balanced score, each with its scores by seed.
struct ScoredPolicy {
  std::string name;
  std::vector<double> source, target, balanced;
  SeedScores by_seed;
};

std::vector<ScoredPolicy> score_policies(const StoreData& d) {
  const EvalConfig eval = scaled_for(d);
  std::map<std::string, ScoredPolicy> by_policy;
  for (const auto& e : d.episodes) {
    if (e.steps == 0) continue;
    ScoredPolicy& p = by_policy[e.record.policy];
    p.name = e.record.policy;
    p.source.push_back(e.final_source());
    p.target.push_back(e.final_target());
    p.balanced.push_back(balanced_score({e.final_source(), e.final_target()}, eval));
    p.by_seed[e.record.seed] = p.balanced.back();
  }
  std::vector<ScoredPolicy> out;
  for (auto& [name, p] : by_policy) out.push_back(std::move(p));
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return stats(a.balanced).mean > stats(b.balanced).mean; });
  return out;
}

/// A policy's name across independent pipelines: a tuned baseline keeps only its kind, since
/// each pipeline tunes its own; an agent is named by its checkpoint's file name, since each
/// pipeline trains its own in its own directory ("agent" for the run's `agent.pt`, else
/// "agent:STEM", so the variants of an ablation match across pipelines); any other policy keeps
/// its full spec.
std::string pipeline_key(const std::string& name) {
  if (const auto family = tuned_family(name)) return tuned_kind(*family);
  if (policy_kind(name) != "agent") return name;
  const auto colon = name.find(':');
  if (colon == std::string::npos) return "agent";
  const std::string stem = std::filesystem::path(name.substr(colon + 1, name.find('?') - colon - 1)).stem().string();
  return stem == "agent" ? "agent" : "agent:" + stem;
}

/// The policy every other is compared with: `against` (a full spec or a pipeline key), else the
/// store's agent (its `agent.pt` before any other checkpoint).
const ScoredPolicy* reference(const std::vector<ScoredPolicy>& policies, const std::string& against) {
  const std::string key = against.empty() ? "agent" : against;
  for (const auto& p : policies)
    if (p.name == key || pipeline_key(p.name) == key) return &p;
  if (!against.empty()) return nullptr;
  for (const auto& p : policies)
    if (policy_kind(p.name) == "agent") return &p;
  return nullptr;
}

}  // namespace

std::string compare(const std::vector<std::string>& stores, TableFormat format, const std::string& scores,
                    const std::string& against) {
  const bool csv = format == TableFormat::kCsv;
  Table t(csv ? std::vector<std::string>{"score", "store", "policy", "episodes", "source_mean", "source_std",
                                         "target_mean", "target_std", "balanced_mean", "balanced_std", "balanced_ci95",
                                         "reference", "diff_mean", "diff_ci_low", "diff_ci_high", "d_z", "p_holm"}
              : std::vector<std::string>{"score", "store", "policy", "n", "final source", "final target",
                                         "final balanced", "balanced 95% CI", "reference − policy [95% CI]", "d_z",
                                         "p (Holm)"});
  const auto labels = store_labels(stores);
  Selection complete;
  complete.statuses = {EpisodeStatus::kComplete};
  std::string references;
  for (const auto& spec : score_specs(scores)) {
    // Each store's paired lead per policy, for the summary across stores (independent
    // pipelines): the unit of replication is then the pipeline, not the seed.
    std::map<std::string, SeedScores> leads;
    std::set<std::string> ambiguous, score_names;  // leads under different scores are not averaged
    for (std::size_t i = 0; i < stores.size(); ++i) {
      const StoreData d = load(stores[i], complete, spec);
      const std::string score_name = spec.empty() ? d.eval.score : spec;
      const auto policies = score_policies(d);
      const ScoredPolicy* ref = reference(policies, against);
      if (!against.empty() && !ref)
        throw ConfigError(
            fmt::format("--against '{}': store '{}' has no complete episode of that policy: name one of "
                        "its policies",
                        against, stores[i]));
      std::vector<PairedDiff> diffs;
      for (const auto& p : policies)
        if (ref && &p != ref) diffs.push_back(paired_difference(ref->by_seed, p.by_seed));
      holm_adjust(diffs);
      if (ref && references.find(ref->name) == std::string::npos)
        references += (references.empty() ? "" : ", ") + ref->name;
      std::size_t k = 0;
      score_names.insert(score_name);
      for (const auto& p : policies) {
        const Stats s = stats(p.source), g = stats(p.target), b = stats(p.balanced);
        const PairedDiff* diff = ref && &p != ref ? &diffs[k++] : nullptr;
        if (diff && diff->n > 0 && !leads[pipeline_key(p.name)].emplace(i, diff->mean).second)
          ambiguous.insert(pipeline_key(p.name));  // two tuned values of one kind in a store: no match
        if (csv) {
          t.add({score_name, labels[i], p.name, std::to_string(b.n), fmt::format("{:.6g}", s.mean),
                 fmt::format("{:.6g}", s.std), fmt::format("{:.6g}", g.mean), fmt::format("{:.6g}", g.std),
                 fmt::format("{:.6g}", b.mean), fmt::format("{:.6g}", b.std), fmt::format("{:.6g}", b.ci95),
                 ref ? ref->name : "", diff ? fmt::format("{:.6g}", diff->mean) : "",
                 diff && diff->n > 1 ? fmt::format("{:.6g}", diff->ci_low) : "",
                 diff && diff->n > 1 ? fmt::format("{:.6g}", diff->ci_high) : "",
                 diff && diff->n > 1 ? fmt::format("{:.4g}", diff->effect) : "",
                 diff ? fmt::format("{:.4g}", diff->p_holm) : ""});
        } else {
          t.add({score_name, labels[i], p.name, std::to_string(b.n), mean_std(s), mean_std(g), mean_std(b),
                 b.n > 1 ? fmt::format("[{:.4f}, {:.4f}]", b.mean - b.ci95, b.mean + b.ci95) : "-",
                 diff ? format_interval(*diff) : "", diff && diff->n > 1 ? fmt::format("{:+.2f}", diff->effect) : "",
                 diff ? (diff->p_holm < 1e-4 ? "<1e-4" : fmt::format("{:.2g}", diff->p_holm)) : ""});
        }
      }
    }
    for (const auto& [key, by_store] : leads) {
      if (by_store.size() < 2 || ambiguous.count(key) || score_names.size() != 1) continue;
      const std::string& score_label = *score_names.begin();
      SeedScores zero;
      for (const auto& [i, lead] : by_store) zero[i] = 0;
      const PairedDiff d = paired_difference(by_store, zero);
      const std::string label = fmt::format("mean of {} stores", by_store.size());
      if (csv)
        t.add({score_label, label, key, std::to_string(d.n), "", "", "", "", "", "", "", references,
               fmt::format("{:.6g}", d.mean), fmt::format("{:.6g}", d.ci_low), fmt::format("{:.6g}", d.ci_high),
               fmt::format("{:.4g}", d.effect), fmt::format("{:.4g}", d.p)});
      else
        t.add({score_label, label, key, std::to_string(d.n), "", "", "", "", format_interval(d),
               fmt::format("{:+.2f}", d.effect), d.p < 1e-4 ? "<1e-4" : fmt::format("{:.2g}", d.p)});
    }
  }
  if (csv) return t.render(format);
  std::string head = "complete episodes per policy; mean ± std of the final scores";
  if (!references.empty())
    head += fmt::format(
        ";\nreference − policy: paired by seed (the seeds both ran), mean [95 % t interval], d_z = mean / "
        "std of the differences, p two-sided and Holm-corrected over each store's policies; reference: {}",
        references);
  if (stores.size() > 1)
    head +=
        ";\n\"mean of N stores\": each store's paired lead averaged over the stores (independent pipelines: "
        "a tuned baseline or an agent is matched by kind), with a 95 % t interval over the stores and p uncorrected";
  return head + "\n\n" + t.render(format);
}

}  // namespace dma::replay
