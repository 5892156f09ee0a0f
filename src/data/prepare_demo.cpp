// `dma_prepare demo`: the embedded default domain space.
//  - source field: real English text, one domain per category of Debian's `fortunes`;
//  - target field: math with worked solutions from math_gen, four sub-domains, a SMALL train
//    split (the paper's premise: trajectories pass over it several times), unseen eval
//    problems and a held-out exact-match benchmark that never appears in training.
// Everything random derives from the seed, and the writer stores no timestamps, so the same
// options give a byte-identical file.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/prepare.hpp"
#include "dma/seed.hpp"
#include "math_gen.hpp"
#include "prepare_common.hpp"
#include "random.hpp"

namespace dma {
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kSourceStream = 0x50, kMathStream = 0x3a7, kBenchStream = 0xbe;

std::mt19937_64 stream_rng(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return std::mt19937_64(mix64(derive_seed(seed, stream) + index));
}

/// One fortune made plain: overstrike "x\bx" (bold in some files) resolved, control
/// characters other than newline and tab dropped, trailing whitespace trimmed.
std::string clean_fortune(std::string_view raw) {
  std::string out;
  for (char c : raw) {
    if (c == '\b') {
      if (!out.empty()) out.pop_back();
    } else if (static_cast<unsigned char>(c) >= 32 || c == '\n' || c == '\t') {
      out.push_back(c);
    }
  }
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  while (!out.empty() && out.front() == '\n') out.erase(out.begin());
  return out;
}

std::vector<std::string> read_fortunes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> out;
  std::string line, current;
  while (std::getline(in, line)) {
    if (line == "%" || line == "%\r") {
      if (auto f = clean_fortune(current); !f.empty()) out.push_back(std::move(f));
      current.clear();
    } else {
      current += line + "\n";
    }
  }
  if (auto f = clean_fortune(current); !f.empty()) out.push_back(std::move(f));
  return out;
}

void check_fortunes(const DemoOptions& o) {
  const auto hint =
      "install Debian's fortunes package (apt-get install fortunes fortunes-min, or tools/install-deps.sh)";
  if (!fs::is_directory(o.fortunes_dir))
    throw DataError(
        fmt::format("fortunes directory '{}' does not exist: {} or pass --fortunes-dir", o.fortunes_dir, hint));
  if (o.categories.empty()) throw DataError("no fortunes categories given: list at least one with --categories");
  for (const auto& c : o.categories)
    if (c.find('/') != std::string::npos || !fs::is_regular_file(fs::path(o.fortunes_dir) / c))
      throw DataError(fmt::format("fortunes category '{}' is missing in '{}': {} or pick categories that exist there",
                                  c, o.fortunes_dir, hint));
}

struct SplitText {
  std::string train, eval;
};

/// Shuffles the fortunes and holds out whole fortunes for eval (about eval_fraction of the
/// text this domain will use), so no eval fortune is trained on.
SplitText split_fortunes(std::vector<std::string> docs, const DemoOptions& o, std::mt19937_64& rng) {
  rnd::shuffle(docs, rng);
  size_t total = 0;
  for (const auto& d : docs) total += d.size() + 2;
  const double used = std::min<double>(
      static_cast<double>(total), (static_cast<double>(o.source_train_rows) * o.seq_len + 1) / (1 - o.eval_fraction));
  const size_t eval_target =
      std::max<size_t>(2 * static_cast<size_t>(o.seq_len + 1), static_cast<size_t>(used * o.eval_fraction));
  SplitText s;
  size_t i = 0;
  for (; i < docs.size() && s.eval.size() < eval_target; ++i) s.eval += docs[i] + "\n\n";
  for (; i < docs.size(); ++i) s.train += docs[i] + "\n\n";
  return s;
}

void add_source(DomainSpaceWriter& w, const DemoOptions& o, size_t index, PrepareSummary& sum) {
  const auto& category = o.categories[index];
  const auto file = fs::path(o.fortunes_dir) / category;
  auto rng = stream_rng(o.seed, kSourceStream, index);
  const auto text = split_fortunes(read_fortunes(file), o, rng);
  const auto train = prep::cut_rows(bytes_tokenizer::encode(text.train), o.seq_len, o.source_train_rows);
  const auto eval = prep::cut_rows(bytes_tokenizer::encode(text.eval), o.seq_len);
  if (train.empty() || eval.empty())
    throw DataError(
        fmt::format("fortunes category '{}' holds too little text for seq_len {}: pick another category or a "
                    "smaller --seq-len",
                    category, o.seq_len));
  w.add_domain(category, Field::kSource, train, eval,
               fmt::format("fortunes category '{}' ({})", category, file.string()));
  const auto width = static_cast<std::int64_t>(o.seq_len + 1);
  sum.domains.push_back({category, Field::kSource, static_cast<std::int64_t>(train.size()) / width,
                         static_cast<std::int64_t>(eval.size()) / width});
}

/// Draws problems whose key was never drawn before in this file (train, eval, benchmark).
class ProblemPool {
 public:
  math::Problem draw(const math::SubDomain& sub, std::mt19937_64& rng) {
    for (int attempt = 0; attempt < 10000; ++attempt) {
      auto p = sub.make(rng);
      if (used_.insert(p.key).second) return p;
    }
    throw DataError(
        fmt::format("the math generator ran out of distinct '{}' problems: lower --target-train-rows, "
                    "--target-eval-rows or --bench-problems",
                    sub.name));
  }

 private:
  std::set<std::string> used_;
};

/// Math text of at least rows * seq_len + 1 bytes: mostly worked solutions, some short forms.
std::string math_text(const math::SubDomain& sub, int rows, int seq_len, ProblemPool& pool, std::mt19937_64& rng) {
  std::string text;
  const size_t need = static_cast<size_t>(rows) * static_cast<size_t>(seq_len) + 1;
  while (text.size() < need) {
    const auto p = pool.draw(sub, rng);
    text += rnd::bounded(rng, 3) < 2 ? p.worked : p.prompt + p.answer + "\n";
    text += "\n";
  }
  return text;
}

std::vector<MathProblem> make_bench(const DemoOptions& o, ProblemPool& pool) {
  auto rng = stream_rng(o.seed, kBenchStream, 0);
  const auto& subs = math::sub_domains();
  std::vector<MathProblem> out;
  for (int i = 0; i < o.bench_problems; ++i) {
    auto p = pool.draw(subs[static_cast<size_t>(i) % subs.size()], rng);
    out.push_back({p.prompt, p.answer});
  }
  return out;
}

/// The benchmark must never be trained on: keys are disjoint by construction, and this
/// checks the text itself as well (a benchmark prompt never starts a line of training text).
void assert_held_out(const std::vector<MathProblem>& bench, const std::string& train_text) {
  const std::string text = "\n" + train_text;
  for (const auto& p : bench)
    if (text.find("\n" + p.prompt) != std::string::npos)
      throw DataError(fmt::format("internal error: benchmark problem '{}' appears in the training text", p.prompt));
}

/// A benchmark problem is scored by reading its prompt and generating its answer in one
/// context window of seq_len tokens.
void check_bench_fits(const std::vector<MathProblem>& bench, int seq_len) {
  size_t longest = 0;
  for (const auto& p : bench) longest = std::max(longest, p.prompt.size() + p.answer.size());
  if (longest > static_cast<size_t>(seq_len))
    throw DataError(
        fmt::format("--seq-len {} is too short for the math benchmark (a prompt and its answer take up to {} "
                    "tokens): raise --seq-len or pass --bench-problems 0",
                    seq_len, longest));
}

void check_options(const DemoOptions& o) {
  prep::check_sizes(o.seq_len, o.eval_fraction);
  for (auto [name, v] :
       {std::pair{"--source-rows", o.source_train_rows}, std::pair{"--target-train-rows", o.target_train_rows},
        std::pair{"--target-eval-rows", o.target_eval_rows}})
    if (v < 1 || v > 10'000'000)
      throw DataError(fmt::format("{} {} is out of range: use a value in [1, 10000000]", name, v));
  if (o.bench_problems < 0 || o.bench_problems > 1'000'000)
    throw DataError(fmt::format("--bench-problems {} is out of range: use a value in [0, 1000000]", o.bench_problems));
}

}  // namespace

PrepareSummary prepare_demo(const DemoOptions& o) {
  check_options(o);
  check_fortunes(o);
  DomainSpaceWriter w(o.out, bytes_tokenizer::kVocab, o.seq_len, "bytes", o.force);
  PrepareSummary sum;
  sum.path = o.out;
  sum.vocab_size = bytes_tokenizer::kVocab;
  sum.seq_len = o.seq_len;
  for (size_t i = 0; i < o.categories.size(); ++i) add_source(w, o, i, sum);

  ProblemPool pool;
  const auto bench = make_bench(o, pool);  // first, so its problems are reserved
  std::string all_train;
  const auto& subs = math::sub_domains();
  for (size_t i = 0; i < subs.size(); ++i) {
    auto rng = stream_rng(o.seed, kMathStream, i);
    const auto train_text = math_text(subs[i], o.target_train_rows, o.seq_len, pool, rng);
    const auto eval_text = math_text(subs[i], o.target_eval_rows, o.seq_len, pool, rng);
    const auto train = prep::cut_rows(bytes_tokenizer::encode(train_text), o.seq_len, o.target_train_rows);
    const auto eval = prep::cut_rows(bytes_tokenizer::encode(eval_text), o.seq_len, o.target_eval_rows);
    w.add_domain(subs[i].name, Field::kTarget, train, eval,
                 fmt::format("dma built-in math generator: {} (seed {})", subs[i].description, o.seed));
    sum.domains.push_back({subs[i].name, Field::kTarget, o.target_train_rows, o.target_eval_rows});
    all_train += train_text;
  }
  assert_held_out(bench, all_train);
  check_bench_fits(bench, o.seq_len);
  w.set_math_benchmark(bench);
  sum.bench_problems = static_cast<std::int64_t>(bench.size());
  w.close();
  return prep::finish_summary(sum);
}

}  // namespace dma
