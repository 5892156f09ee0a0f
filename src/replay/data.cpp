// Loading stores for analysis: selection, batched reads, balanced scores recomputed from
// the stored per-domain losses, statistics. Shapes: T steps, D domains.
#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/replay.hpp"
#include "dma/score.hpp"
#include "replay_internal.hpp"

namespace dma::replay {
namespace {

constexpr std::int64_t kBatchRows = 1 << 16;  // rows read at once: bounded memory on any store

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::int64_t parse_id(const std::string& s, const std::string& spec) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError(fmt::format("--episodes '{}' is not valid: use A-B, A, A- or -B with episode ids", spec));
}

/// The [eval] section of a store's config (config.hpp stored_eval_config).
EvalConfig stored_eval(const std::string& ini, const std::string& path) {
  try {
    return stored_eval_config(ini);
  } catch (const ConfigError& e) {
    throw StoreError(fmt::format("store '{}' carries a config whose [eval] section does not parse ({}): pass --score",
                                 path, e.what()));
  }
}

/// Fills one episode from the rows of `b` (which holds its block).
EpisodeData reduce(const EpisodeRecord& e, const RowBlock& b, std::int64_t visible, const StoreHeader& h,
                   const EvalConfig& eval) {
  const auto d = static_cast<std::size_t>(h.num_domains());
  const auto first = static_cast<std::size_t>(e.start - b.start);
  EpisodeData out;
  out.record = e;
  out.steps = static_cast<int>(visible);
  out.weights.assign(b.actions.begin() + static_cast<std::ptrdiff_t>(first * d),
                     b.actions.begin() + static_cast<std::ptrdiff_t>((first + out.steps) * d));
  for (int t = 0; t < out.steps; ++t) {
    const std::size_t row = first + static_cast<std::size_t>(t);
    const std::span<const float> losses(b.eval_loss.data() + row * d, d);
    const FieldScores s = field_scores(losses, h.base_eval_loss, h.domain_fields);
    out.source.push_back(b.source_score[row]);
    out.target.push_back(b.target_score[row]);
    out.balanced.push_back(static_cast<float>(balanced_score(s, eval)));
    out.rewards.push_back(b.rewards[row]);
    out.tokens = b.train_tokens[row];
    out.wall_seconds = b.wall_seconds[row];
    out.math_accuracy = b.math_accuracy[row];
  }
  return out;
}

/// Rows of a running episode that are visible and written (a live writer may lag).
std::int64_t visible_rows(const EpisodeRecord& e, const RowBlock& b) {
  std::int64_t k = 0;
  const auto first = e.start - b.start;
  while (k < e.length && first + k < b.count && b.step[static_cast<std::size_t>(first + k)] == k) ++k;
  return k;
}

}  // namespace

bool Selection::matches(const EpisodeRecord& e) const {
  if (e.id < first_id || e.id > last_id) return false;
  if (!statuses.empty() && std::find(statuses.begin(), statuses.end(), e.status) == statuses.end()) return false;
  if (policies.empty()) return true;
  const std::string kind = e.policy.substr(0, e.policy.find(':'));
  return std::any_of(policies.begin(), policies.end(),
                     [&](const std::string& p) { return p == e.policy || p == kind; });
}

Selection parse_selection(const std::string& policies, const std::string& statuses, const std::string& episodes) {
  Selection s;
  s.policies = split(policies, ',');
  for (const auto& st : split(statuses, ',')) {
    if (st == "all") {
      s.statuses.clear();
      break;
    }
    s.statuses.push_back(parse_status(st));
  }
  if (!episodes.empty()) {
    const auto dash = episodes.find('-', 1);  // a leading '-' is "up to B"
    if (episodes[0] == '-') {
      s.last_id = parse_id(episodes.substr(1), episodes);
    } else if (dash == std::string::npos) {
      s.first_id = s.last_id = parse_id(episodes, episodes);
    } else {
      s.first_id = parse_id(episodes.substr(0, dash), episodes);
      if (dash + 1 < episodes.size()) s.last_id = parse_id(episodes.substr(dash + 1), episodes);
    }
    if (s.first_id > s.last_id)
      throw ConfigError(fmt::format("--episodes '{}' is empty: the first id is above the last", episodes));
  }
  return s;
}

EpisodeStatus parse_status(const std::string& s) {
  if (s == "running") return EpisodeStatus::kRunning;
  if (s == "complete") return EpisodeStatus::kComplete;
  if (s == "failed") return EpisodeStatus::kFailed;
  if (s == "interrupted") return EpisodeStatus::kInterrupted;
  throw ConfigError(fmt::format("--status '{}' is not valid: use complete, failed, interrupted, running or all", s));
}

std::string status_name(EpisodeStatus s) {
  switch (s) {
    case EpisodeStatus::kRunning:
      return "running";
    case EpisodeStatus::kComplete:
      return "complete";
    case EpisodeStatus::kFailed:
      return "failed";
    case EpisodeStatus::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

EvalConfig eval_config(const StoreHeader& h, const std::string& path, const std::string& score) {
  EvalConfig eval = stored_eval(h.config_ini, path);
  if (!score.empty()) eval = with_score(eval, score);  // a score that does not exist: ConfigError names it
  balanced_score({}, eval);                            // a store whose own eval.score is unknown: ConfigError names it
  return eval;
}

void for_each_batch(const StoreReader& reader, const Selection& selection,
                    const std::function<void(const RowBlock&, const std::vector<BatchEpisode>&)>& fn) {
  const auto& all = reader.episodes();
  std::vector<BatchEpisode> batch;
  auto run = [&] {
    if (batch.empty()) return;
    const std::int64_t start = batch.front().record->start;
    const std::int64_t end = std::min(reader.num_rows(), batch.back().record->start + reader.header().horizon);
    const RowBlock b = reader.read_block(start, std::max<std::int64_t>(0, end - start), true);
    for (auto& be : batch) {
      const auto& e = *be.record;
      if (e.status == EpisodeStatus::kRunning) {
        be.visible = visible_rows(e, b);
      } else {
        be.visible = std::clamp<std::int64_t>(reader.num_rows() - e.start, 0, e.length);
        EpisodeRecord shown = e;
        shown.length = static_cast<std::int32_t>(be.visible);
        if (be.visible != e.length) shown.checksum = 0;  // rows not all visible yet
        verify_episode_rows(shown, b, reader.path());
      }
    }
    fn(b, batch);
    batch.clear();
  };
  // Batches are read whole, observations included: the checksums cover them.
  for (const auto& e : all) {
    if (!selection.matches(e)) continue;
    if (!batch.empty() && e.start + reader.header().horizon - batch.front().record->start > kBatchRows) run();
    batch.push_back({&e, 0});
  }
  run();
}

StoreData load(const std::string& path, const Selection& selection, const std::string& score) {
  auto reader = StoreReader::open(path);
  StoreData data;
  data.path = path;
  data.header = reader.header();
  data.eval = eval_config(data.header, path, score);
  data.rows = reader.num_rows();
  for_each_batch(reader, selection, [&](const RowBlock& b, const std::vector<BatchEpisode>& batch) {
    for (const auto& be : batch) data.episodes.push_back(reduce(*be.record, b, be.visible, data.header, data.eval));
  });
  return data;
}

Stats stats(const std::vector<double>& v) {
  Stats s;
  s.n = static_cast<std::int64_t>(v.size());
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() < 2) return s;
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  s.ci95 = student_t975(s.n - 1) * s.std / std::sqrt(static_cast<double>(v.size()));
  return s;
}

double student_t975(std::int64_t dof) {
  // Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom, then the
  // Cornish-Fisher expansion around the normal quantile (error below 1e-3).
  static constexpr double kTable[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                        2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                        2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof < 1) return 0;
  if (dof <= 30) return kTable[dof - 1];
  const double z = 1.959964, n = static_cast<double>(dof);
  return z + (z * z * z + z) / (4 * n) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * n * n);
}

TableFormat parse_table_format(const std::string& s) {
  if (s == "text") return TableFormat::kText;
  if (s == "csv") return TableFormat::kCsv;
  if (s == "markdown" || s == "md") return TableFormat::kMarkdown;
  throw ConfigError(fmt::format("--format '{}' is not valid here: use text, csv or markdown", s));
}

ExportFormat parse_export_format(const std::string& s) {
  if (s == "d4rl") return ExportFormat::kD4rl;
  if (s == "minari") return ExportFormat::kMinari;
  if (s == "csv") return ExportFormat::kCsv;
  throw ConfigError(fmt::format("--format '{}' is not valid for export: use d4rl, minari or csv", s));
}

void repair(const std::string& store) { clear_status_flags(store); }

}  // namespace dma::replay
