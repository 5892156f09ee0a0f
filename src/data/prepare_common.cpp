#include "prepare_common.hpp"

#include <algorithm>
#include <climits>
#include <fstream>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "random.hpp"

namespace dma {
namespace fs = std::filesystem;

namespace prep {

EvalSplit::EvalSplit(std::int64_t rows, double fraction, std::int64_t max_eval) {
  const auto wanted =
      std::clamp<std::int64_t>(static_cast<std::int64_t>(static_cast<double>(rows) * fraction + 0.5), 1, max_eval);
  block_ = std::clamp<std::int64_t>(std::min(rows / 8, wanted), 1, 16);
  blocks_ = (rows + block_ - 1) / block_;
  eval_blocks_ = std::clamp<std::int64_t>(wanted / block_, 1, std::max<std::int64_t>(1, blocks_ - 1));
}

bool EvalSplit::is_eval(std::int64_t row) const {
  const std::int64_t j = row / block_;
  return (j + 1) * eval_blocks_ / blocks_ > j * eval_blocks_ / blocks_;
}

SplitRouter::SplitRouter(DomainSpaceWriter& writer, int width, std::int64_t rows, double fraction,
                         std::int64_t max_eval, std::uint64_t seed)
    : writer_(writer), width_(width), split_(rows, fraction, max_eval), seed_(seed) {}

void SplitRouter::add(std::span<const std::int32_t> row) {
  auto& buf = split_.is_eval(next_++) ? eval_rows_ : train_buf_;
  buf.insert(buf.end(), row.begin(), row.end());
  if (train_buf_.size() >= static_cast<size_t>(4096 * width_)) {
    writer_.append_train(train_buf_);
    train_ += static_cast<std::int64_t>(train_buf_.size()) / width_;
    train_buf_.clear();
  }
}

std::pair<std::int64_t, std::int64_t> SplitRouter::finish() {
  if (!train_buf_.empty()) writer_.append_train(train_buf_);
  train_ += static_cast<std::int64_t>(train_buf_.size()) / width_;
  train_buf_.clear();
  const auto w = static_cast<size_t>(width_);
  std::vector<size_t> order(eval_rows_.size() / w);
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(seed_);
  rnd::shuffle(order, rng);
  std::vector<std::int32_t> shuffled;
  shuffled.reserve(eval_rows_.size());
  for (size_t r : order)
    shuffled.insert(shuffled.end(), eval_rows_.begin() + static_cast<std::ptrdiff_t>(r * w),
                    eval_rows_.begin() + static_cast<std::ptrdiff_t>((r + 1) * w));
  if (!shuffled.empty()) writer_.append_eval(shuffled);
  eval_rows_.clear();
  return {train_, static_cast<std::int64_t>(order.size())};
}

void RowCutter::feed(std::span<const std::int32_t> tokens) {
  buf_.insert(buf_.end(), tokens.begin(), tokens.end());
  const size_t width = static_cast<size_t>(seq_len_) + 1;
  while (buf_.size() - start_ >= width) {
    router_.add(std::span(buf_).subspan(start_, width));
    start_ += static_cast<size_t>(seq_len_);
  }
  if (start_ > (1u << 16)) {  // compact now and then, not per row
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
}

std::vector<std::int32_t> cut_rows(std::span<const std::int32_t> stream, int seq_len, std::int64_t max_rows) {
  std::int64_t rows = rows_in(static_cast<std::int64_t>(stream.size()), seq_len);
  if (max_rows >= 0) rows = std::min(rows, max_rows);
  std::vector<std::int32_t> out;
  out.reserve(static_cast<size_t>(rows) * static_cast<size_t>(seq_len + 1));
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto first = stream.begin() + static_cast<std::ptrdiff_t>(r * seq_len);
    out.insert(out.end(), first, first + seq_len + 1);
  }
  return out;
}

std::vector<fs::path> list_files(const DomainSpec& d, const std::vector<std::string>& exts, const std::string& hint) {
  std::error_code ec;
  if (!fs::exists(d.dir, ec))
    throw DataError(
        fmt::format("domain directory '{}' (domain '{}') does not exist: create it or fix the path", d.dir, d.name));
  if (!fs::is_directory(d.dir, ec))
    throw DataError(
        fmt::format("domain path '{}' (domain '{}') is not a directory: give a directory of {}", d.dir, d.name, hint));
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(d.dir)) {
    const auto name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file()) continue;
    if (!exts.empty() && std::find(exts.begin(), exts.end(), e.path().extension().string()) == exts.end()) continue;
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty())
    throw DataError(
        fmt::format("domain directory '{}' (domain '{}') is empty: put {} in it or drop it from the domain list", d.dir,
                    d.name, hint));
  return files;
}

std::vector<DomainSpec> gather_domains(const std::string& manifest, const std::vector<DomainSpec>& domains) {
  std::vector<DomainSpec> all;
  if (!manifest.empty()) all = read_manifest(manifest);
  all.insert(all.end(), domains.begin(), domains.end());
  if (all.empty()) throw DataError("no domains given: pass --domain name=dir:field (repeatable) or --manifest FILE");
  std::set<std::string> seen;
  for (const auto& d : all)
    if (!seen.insert(d.name).second)
      throw DataError(fmt::format("duplicate domain name '{}': give each domain a unique name", d.name));
  return all;
}

void check_sizes(int seq_len, double eval_fraction, std::int64_t max_eval) {
  if (seq_len < 1 || seq_len > (1 << 20))
    throw DataError(fmt::format("--seq-len {} is out of range: use a value in [1, 1048576]", seq_len));
  if (!(eval_fraction > 0 && eval_fraction < 1))
    throw DataError(fmt::format("--eval-fraction {} is out of range: use a value in (0, 1)", eval_fraction));
  if (max_eval < 1) throw DataError(fmt::format("--max-eval-rows {} is out of range: use at least 1", max_eval));
}

PrepareSummary finish_summary(PrepareSummary s) {
  std::error_code ec;
  s.file_bytes = fs::file_size(s.path, ec);
  return s;
}

}  // namespace prep

DomainSpec parse_domain_spec(const std::string& spec) {
  const auto eq = spec.find('=');
  const auto colon = spec.rfind(':');
  const auto bad = [&spec](const char* why) {
    return DataError(
        fmt::format("domain spec '{}' {}: write it as name=dir:field with field source or target", spec, why));
  };
  if (eq == std::string::npos || eq == 0) throw bad("has no name");
  if (colon == std::string::npos || colon < eq) throw bad("has no field");
  const auto trim = [](std::string t) {
    const auto first = t.find_first_not_of(" \t");
    return first == std::string::npos ? std::string() : t.substr(first, t.find_last_not_of(" \t") - first + 1);
  };
  DomainSpec d;
  d.name = trim(spec.substr(0, eq));
  d.dir = trim(spec.substr(eq + 1, colon - eq - 1));
  const auto field = trim(spec.substr(colon + 1));
  if (d.name.empty()) throw bad("has no name");
  if (d.dir.empty()) throw bad("has no directory");
  if (field == "source")
    d.field = Field::kSource;
  else if (field == "target")
    d.field = Field::kTarget;
  else
    throw bad("has an unknown field");
  return d;
}

std::vector<DomainSpec> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("cannot open manifest '{}': check the path given to --manifest", path));
  std::vector<DomainSpec> out;
  std::string line;
  const auto base = fs::path(path).parent_path();
  for (int n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    try {
      auto d = parse_domain_spec(line);
      if (fs::path(d.dir).is_relative()) d.dir = (base / d.dir).string();
      out.push_back(std::move(d));
    } catch (const DataError& e) {
      throw DataError(fmt::format("manifest '{}' line {}: {}", path, n, e.what()));
    }
  }
  return out;
}

std::string PrepareSummary::line() const {
  std::int64_t rows[2][2] = {{0, 0}, {0, 0}};  // [field][train, eval]
  std::int64_t lo[2] = {INT64_MAX, INT64_MAX}, hi[2] = {0, 0};
  int count[2] = {0, 0};
  for (const auto& d : domains) {
    const int f = d.field == Field::kTarget ? 1 : 0;
    rows[f][0] += d.train_rows;
    rows[f][1] += d.eval_rows;
    lo[f] = std::min(lo[f], d.train_rows);
    hi[f] = std::max(hi[f], d.train_rows);
    ++count[f];
  }
  auto field = [&](int f, const char* name) {
    if (count[f] == 0) return fmt::format("no {} domains", name);
    const auto per = lo[f] == hi[f] ? fmt::format("{}", lo[f]) : fmt::format("{}..{}", lo[f], hi[f]);
    return fmt::format("{}: {} train rows ({} per domain) + {} eval rows", name, rows[f][0], per, rows[f][1]);
  };
  const auto vocab =
      tokenizer.empty() ? fmt::format("vocab {}", vocab_size) : fmt::format("vocab {} ({})", vocab_size, tokenizer);
  return fmt::format(
      "wrote {}: {} domains ({} source, {} target), {}, seq_len {}; {}; {}; {} benchmark problems; {} bytes", path,
      domains.size(), count[0], count[1], vocab, seq_len, field(0, "source"), field(1, "target"), bench_problems,
      file_bytes);
}

}  // namespace dma
