#pragma once
// Pieces shared by the dma_prepare builders: cutting token streams into rows, the
// train/eval split, domain lists and the summary.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "dma/domain_space.hpp"
#include "dma/prepare.hpp"

namespace dma::prep {

/// Which rows of a domain of `rows` rows are held out: about `fraction` of them (at most
/// `max_eval`), in blocks of up to 16 consecutive rows spread evenly over the domain. At
/// least one row in each split; requires rows >= 2.
class EvalSplit {
 public:
  EvalSplit(std::int64_t rows, double fraction, std::int64_t max_eval);
  bool is_eval(std::int64_t row) const;

 private:
  std::int64_t block_ = 1, blocks_ = 1, eval_blocks_ = 0;
};

/// Routes rows of one domain to the writer: train rows in buffered pieces as they come,
/// eval rows (capped, so they fit in memory) kept until finish() and written in a seeded
/// shuffled order, so that any prefix of the eval split (evaluators read the first rows)
/// samples the whole domain.
class SplitRouter {
 public:
  SplitRouter(DomainSpaceWriter& writer, int width, std::int64_t rows, double fraction, std::int64_t max_eval,
              std::uint64_t seed);
  void add(std::span<const std::int32_t> row);
  /// Writes the rest; returns {train rows, eval rows}.
  std::pair<std::int64_t, std::int64_t> finish();

 private:
  DomainSpaceWriter& writer_;
  int width_;
  EvalSplit split_;
  std::uint64_t seed_;
  std::int64_t next_ = 0, train_ = 0;
  std::vector<std::int32_t> train_buf_, eval_rows_;
};

/// Cuts a token stream fed in pieces into rows of seq_len + 1 tokens with stride seq_len
/// (each row's last token is the next row's first: every token is a target once).
class RowCutter {
 public:
  RowCutter(int seq_len, SplitRouter& router) : seq_len_(seq_len), router_(router) {}
  void feed(std::span<const std::int32_t> tokens);

 private:
  int seq_len_;
  SplitRouter& router_;
  std::vector<std::int32_t> buf_;
  size_t start_ = 0;
};

/// Rows of seq_len + 1 tokens a stream of `tokens` tokens yields.
inline std::int64_t rows_in(std::int64_t tokens, int seq_len) { return tokens < 1 ? 0 : (tokens - 1) / seq_len; }

/// Row-major rows cut from an in-memory stream (at most `max_rows`, < 0: all).
std::vector<std::int32_t> cut_rows(std::span<const std::int32_t> stream, int seq_len, std::int64_t max_rows = -1);

/// Regular, non-hidden files of a domain directory with one of `exts` (empty: any), in
/// name order. Throws DataError when the directory is missing or holds none.
std::vector<std::filesystem::path> list_files(const DomainSpec& d, const std::vector<std::string>& exts,
                                              const std::string& hint);

/// --domain specs after the manifest's; throws on duplicate names or an empty list.
std::vector<DomainSpec> gather_domains(const std::string& manifest, const std::vector<DomainSpec>& domains);

/// Throws unless 0 < fraction < 1, max_eval >= 1 and 1 <= seq_len <= 2^20.
void check_sizes(int seq_len, double eval_fraction, std::int64_t max_eval = 1);

/// Fills the file size and returns the summary.
PrepareSummary finish_summary(PrepareSummary s);

}  // namespace dma::prep
