// `dma_prepare text`: one directory of text files per domain, byte tokenizer. Files are
// read in name order and joined by a blank line, streamed in pieces.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/prepare.hpp"
#include "dma/seed.hpp"
#include "prepare_common.hpp"

namespace dma {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSeparator = "\n\n";

void add_text_domain(DomainSpaceWriter& w, const DomainSpec& d, const TextOptions& o, PrepareSummary& sum) {
  const auto files = prep::list_files(d, {}, "text files");
  std::int64_t bytes = static_cast<std::int64_t>(kSeparator.size() * (files.size() - 1));
  for (const auto& f : files) bytes += static_cast<std::int64_t>(fs::file_size(f));
  const auto rows = prep::rows_in(bytes, o.seq_len);
  if (rows < 2)
    throw DataError(fmt::format("domain '{}' has only {} bytes of text in '{}': it needs at least {} for one train and one "
                                "eval row; add text or lower --seq-len",
                                d.name, bytes, d.dir, 2 * o.seq_len + 1));
  w.begin_domain(d.name, d.field, fmt::format("text files of '{}'", d.dir));
  prep::SplitRouter router(w, o.seq_len + 1, rows, o.eval_fraction, o.max_eval_rows, fnv1a64(d.name));
  prep::RowCutter cutter(o.seq_len, router);
  std::string piece(1 << 20, '\0');
  for (size_t i = 0; i < files.size(); ++i) {
    if (i > 0) cutter.feed(bytes_tokenizer::encode(kSeparator));
    std::ifstream in(files[i], std::ios::binary);
    if (!in) throw DataError(fmt::format("cannot read '{}' (domain '{}'): check its permissions", files[i].string(), d.name));
    while (in) {
      in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
      cutter.feed(bytes_tokenizer::encode(std::string_view(piece.data(), static_cast<size_t>(in.gcount()))));
    }
  }
  const auto [train, eval] = router.finish();
  w.end_domain();
  sum.domains.push_back({d.name, d.field, train, eval});
}

}  // namespace

PrepareSummary prepare_text(const TextOptions& o) {
  prep::check_sizes(o.seq_len, o.eval_fraction, o.max_eval_rows);
  const auto domains = prep::gather_domains(o.manifest, o.domains);
  for (const auto& d : domains) prep::list_files(d, {}, "text files");  // every directory, before writing anything
  DomainSpaceWriter w(o.out, bytes_tokenizer::kVocab, o.seq_len, "bytes", o.force);
  PrepareSummary sum;
  sum.path = o.out;
  sum.vocab_size = bytes_tokenizer::kVocab;
  sum.seq_len = o.seq_len;
  for (const auto& d : domains) add_text_domain(w, d, o, sum);
  w.close();
  return prep::finish_summary(sum);
}

}  // namespace dma
