// `summary` and `compare`: per-policy tables of a store, and of policies across stores.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "dma/progress.hpp"
#include "dma/replay.hpp"
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
      d.path, d.header.created_utc, running ? fmt::format(", live: {} running", running) : "",
      d.header.num_domains(), d.header.num_domains() - targets, targets, d.header.horizon, d.header.obs_dim(), d.rows,
      d.episodes.size(), d.eval.score);
}

}  // namespace

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string mean_std(const Stats& s, int digits) {
  return s.n < 2 ? fmt::format("{:.{}f}", s.mean, digits) : fmt::format("{:.{}f} ± {:.{}f}", s.mean, digits, s.std, digits);
}

std::string Table::render(TableFormat format) const {
  std::string out;
  switch (format) {
    case TableFormat::kText: return render_text(header_, rows_);
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
    if (!csv) head.emplace_back(m);
    else for (const char* part : {"_mean", "_std"}) head.push_back(std::string(m) + part);
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

std::string compare(const std::vector<std::string>& stores, TableFormat format, const std::string& score) {
  const bool csv = format == TableFormat::kCsv;
  Table t(csv ? std::vector<std::string>{"store", "policy", "episodes", "source_mean", "source_std", "source_ci95",
                                         "target_mean", "target_std", "target_ci95", "balanced_mean", "balanced_std",
                                         "balanced_ci95"}
              : std::vector<std::string>{"store", "policy", "episodes", "final source", "final target",
                                         "final balanced", "balanced 95% CI"});
  const auto labels = store_labels(stores);
  Selection complete;
  complete.statuses = {EpisodeStatus::kComplete};
  std::string scores;
  for (std::size_t i = 0; i < stores.size(); ++i) {
    const StoreData d = load(stores[i], complete, score);
    if (i) scores += ", ";
    scores += d.eval.score;
    std::map<std::string, PolicyRow> by_policy;
    for (const auto& e : d.episodes) by_policy[e.record.policy].add(e);
    std::vector<std::pair<std::string, PolicyRow*>> order;
    for (auto& [name, r] : by_policy) order.emplace_back(name, &r);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return stats(a.second->balanced).mean > stats(b.second->balanced).mean; });
    for (const auto& [name, r] : order) {
      const Stats s = stats(r->source), g = stats(r->target), b = stats(r->balanced);
      if (csv)
        t.add({labels[i], name, std::to_string(b.n), fmt::format("{:.6g}", s.mean), fmt::format("{:.6g}", s.std),
               fmt::format("{:.6g}", s.ci95), fmt::format("{:.6g}", g.mean), fmt::format("{:.6g}", g.std),
               fmt::format("{:.6g}", g.ci95), fmt::format("{:.6g}", b.mean), fmt::format("{:.6g}", b.std),
               fmt::format("{:.6g}", b.ci95)});
      else
        t.add({labels[i], name, std::to_string(b.n), mean_std(s), mean_std(g), mean_std(b),
               b.n > 1 ? fmt::format("[{:.4f}, {:.4f}]", b.mean - b.ci95, b.mean + b.ci95) : "-"});
    }
  }
  if (csv) return t.render(format);
  return fmt::format("complete episodes per policy; mean ± std; balanced score: {}\n\n", scores) + t.render(format);
}

}  // namespace dma::replay
