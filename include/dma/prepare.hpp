#pragma once
/// Builders of domain-space files (DESIGN §5, §6), behind the `dma_prepare` program:
/// `demo` (the embedded default), `text` (text or JSONL files per domain, byte or
/// SentencePiece tokens) and `import` (existing token shards, Megatron indexed datasets).
/// Each throws DataError naming the problem and the fix; none leaves a partial output.
#include <cstdint>
#include <string>
#include <vector>

#include "dma/types.hpp"

namespace dma {

/// What a builder wrote, for the one-line summary.
struct PrepareSummary {
  struct Domain {
    std::string name;
    Field field = Field::kSource;
    std::int64_t train_rows = 0;
    std::int64_t eval_rows = 0;
  };
  std::string path;
  int vocab_size = 0;
  int seq_len = 0;
  std::string tokenizer;  ///< how the tokens were made, for the summary ("" for nothing to say)
  std::vector<Domain> domains;
  std::int64_t bench_problems = 0;
  std::uintmax_t file_bytes = 0;

  /// "wrote FILE: D domains (S source, T target), ... N bytes" on one line.
  std::string line() const;
};

/// The embedded default: fortunes categories as the source field, a built-in math
/// generator (worked solutions, four sub-domains) as the small target field.
struct DemoOptions {
  std::string out;
  std::uint64_t seed = 1;
  bool force = false;
  std::string fortunes_dir = "/usr/share/games/fortunes";  ///< Debian's `fortunes` package
  std::vector<std::string> categories = {"computers", "education", "food",     "law",     "literature",
                                         "love",      "medicine",  "politics", "science", "sports"};
  int seq_len = 64;
  int source_train_rows = 2048;  ///< cap per source domain (small categories hold fewer)
  double eval_fraction = 0.1;    ///< source text held out per category
  int target_train_rows = 48;    ///< per math sub-domain: small, trajectories pass over it often
  int target_eval_rows = 64;     ///< per math sub-domain, problems never seen in training
  int bench_problems = 256;      ///< held-out exact-match problems (prompt, answer)
};

/// Builds the demo file; the same options give a byte-identical file.
PrepareSummary prepare_demo(const DemoOptions& options);

/// One domain given on the command line or in a manifest: "name=dir:field".
struct DomainSpec {
  std::string name;
  std::string dir;
  Field field = Field::kSource;
};

/// Parses "name=dir:field" (field: source|target); throws DataError on a malformed spec.
DomainSpec parse_domain_spec(const std::string& spec);
/// Reads a manifest: one "name=dir:field" per line, '#' comments, dirs relative to the file.
std::vector<DomainSpec> read_manifest(const std::string& path);

/// Text per domain: a directory (or one file) of text files, each one document, and of
/// `.jsonl` files, each line one document in its string field "text"; a `.zst` suffix is
/// decompressed as it streams. Bytes are the tokens unless a SentencePiece model is given.
struct TextOptions {
  std::string out;
  bool force = false;
  std::vector<DomainSpec> domains;  ///< from --domain; appended to the manifest's
  std::string manifest;             ///< "" for none
  std::string tokenizer;            ///< SentencePiece .model file; "" for bytes (vocab 256)
  int seq_len = 64;
  double eval_fraction = 0.1;
  std::int64_t max_eval_rows = 4096;  ///< cap of a domain's eval split (kept in memory, shuffled)
};

/// Builds a domain space from text (files in name order). Bytes: documents joined by a
/// blank line. SentencePiece: each line encoded as `spm_encode` does, each document ended
/// by the model's EOS piece; the vocabulary is the model's piece count.
PrepareSummary prepare_text(const TextOptions& options);

enum class ImportFormat { kBin16, kBin32, kHdf5Shards, kMegatron };

/// Parses bin16|bin32|hdf5-shards|megatron.
ImportFormat parse_import_format(const std::string& name);

/// Existing token shards: raw uint16/uint32 `.bin` token streams, the paper authors'
/// layout `<domain>/*.hdf5` each holding a 2-D integer dataset `train` of [rows, seq_len+1],
/// or Megatron-LM indexed datasets (`<prefix>.bin` with its `<prefix>.idx`), read document
/// by document in index order.
struct ImportOptions {
  std::string out;
  bool force = false;
  ImportFormat format = ImportFormat::kBin16;
  std::string input;                 ///< a directory whose subdirectories are domains ("" for none)
  std::vector<std::string> targets;  ///< domains of `input` in the target field (others: source)
  std::vector<DomainSpec> domains;   ///< explicit domains (and the manifest's)
  std::string manifest;
  int seq_len = 0;     ///< required
  int vocab_size = 0;  ///< required: every token id must be below it
  std::string tokenizer = "imported";
  std::int64_t eod = -1;              ///< megatron: token put after each document (< 0: none)
  double eval_fraction = 0.1;         ///< rows held out per domain (spread in blocks)
  std::int64_t max_eval_rows = 4096;  ///< cap of a domain's eval split (kept in memory, shuffled)
};

/// Imports shards domain by domain, streaming (memory does not grow with the corpus).
PrepareSummary prepare_import(const ImportOptions& options);

}  // namespace dma
