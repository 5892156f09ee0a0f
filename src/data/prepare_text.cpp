// `dma_prepare text`: text per domain (plain files, JSONL, either zstd-compressed), byte or
// SentencePiece tokens. A domain's tokens are parked in a scratch file beside --out while
// they are counted, since the train/eval split needs the row count first; nothing of the
// input is held in memory whole.
#include <filesystem>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/prepare.hpp"
#include "dma/seed.hpp"
#include "prepare_common.hpp"
#include "text_encoder.hpp"
#include "text_sources.hpp"
#include "token_spill.hpp"

namespace dma {
namespace fs = std::filesystem;

namespace {

void add_text_domain(DomainSpaceWriter& w, const DomainSpec& d, const TextOptions& o, prep::DocumentEncoder& encoder,
                     PrepareSummary& sum) {
  const auto files = prep::text_domain_files(d);
  prep::TokenSpill spill(o.out + ".tokens.partial", encoder.vocab_size());
  encoder.start(spill);
  for (const auto& f : files) prep::read_documents(f, encoder);
  const auto rows = prep::rows_in(spill.tokens(), o.seq_len);
  if (rows < 2) {
    const auto unit = encoder.name() == "bytes" ? "bytes" : "tokens";
    throw DataError(
        fmt::format("domain '{}' has only {} {} of text in '{}': it needs at least {} for one train and one "
                    "eval row; add text or lower --seq-len",
                    d.name, spill.tokens(), unit, d.dir, 2 * o.seq_len + 1));
  }
  w.begin_domain(d.name, d.field, fmt::format("{} files of '{}'", files.size(), d.dir));
  prep::SplitRouter router(w, o.seq_len + 1, rows, o.eval_fraction, o.max_eval_rows, fnv1a64(d.name));
  prep::RowCutter cutter(o.seq_len, router);
  spill.replay(cutter);
  const auto [train, eval] = router.finish();
  w.end_domain();
  sum.domains.push_back({d.name, d.field, train, eval});
}

}  // namespace

PrepareSummary prepare_text(const TextOptions& o) {
  prep::check_sizes(o.seq_len, o.eval_fraction, o.max_eval_rows);
  const auto domains = prep::gather_domains(o.manifest, o.domains);
  for (const auto& d : domains) prep::text_domain_files(d);  // every domain's inputs, before writing anything
  const auto encoder = prep::DocumentEncoder::open(o.tokenizer);
  const auto model = encoder->model();
  DomainSpaceWriter w(o.out, encoder->vocab_size(), o.seq_len, encoder->name(), o.force);
  PrepareSummary sum;
  sum.path = o.out;
  sum.vocab_size = encoder->vocab_size();
  sum.seq_len = o.seq_len;
  if (!model.path.empty()) {
    w.set_tokenizer_model(model);
    sum.tokenizer = fmt::format("sentencepiece '{}', sha256 {}", model.path, model.sha256.substr(0, 12));
  }
  for (const auto& d : domains) add_text_domain(w, d, o, *encoder, sum);
  w.close();
  return prep::finish_summary(sum);
}

}  // namespace dma
