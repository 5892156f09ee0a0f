#pragma once
/// The domain space (DESIGN §5): an HDF5 file of token windows per domain, each domain in
/// the source or target field, with train and eval splits. Readers stream rows by hyperslab;
/// memory does not grow with the corpus.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dma/types.hpp"

namespace dma {

struct DomainInfo {
  std::string name;
  Field field = Field::kSource;
  std::int64_t train_rows = 0;
  std::int64_t eval_rows = 0;
  std::string provenance;
};

/// A held-out exact-match problem: the model reads `prompt` and must produce `answer`.
struct MathProblem {
  std::string prompt;
  std::string answer;
};

/// The tokenizer model file a space was built with (empty for the byte tokenizer).
struct TokenizerModel {
  std::string path;    ///< absolute path when the space was built
  std::string sha256;  ///< hex digest of the file, as `sha256sum` prints it
};

/// Read-only view of a domain-space file. Row reads take a process-wide lock around HDF5
/// (a serial build), so proxies of one rank may read from several threads; open() and the
/// destructor must not run concurrently with other HDF5 use.
class DomainSpace {
 public:
  /// Opens and validates the file; throws DataError naming the problem and the fix.
  static DomainSpace open(const std::string& path);
  ~DomainSpace();
  DomainSpace(DomainSpace&&) noexcept;
  DomainSpace& operator=(DomainSpace&&) noexcept;

  const std::string& path() const;
  int vocab_size() const;
  int seq_len() const;  ///< a row holds seq_len + 1 tokens (inputs and shifted targets)
  int row_width() const { return seq_len() + 1; }
  const std::string& tokenizer() const;
  /// The root attributes tokenizer_model and tokenizer_model_sha256 (empty when absent).
  const TokenizerModel& tokenizer_model() const;
  int num_domains() const;
  const std::vector<DomainInfo>& domains() const;
  std::vector<std::string> domain_names() const;
  std::vector<Field> fields() const;
  /// Natural token share of each domain (train rows / all train rows).
  std::vector<double> token_shares() const;
  /// Domains of one field, in file order.
  std::vector<int> domains_of(Field f) const;

  /// Reads the given train rows of `domain` into `out` (rows.size() * row_width()), in the
  /// order given. Requires every row < train_rows.
  void read_train_rows(int domain, std::span<const std::int64_t> rows, std::span<std::int32_t> out) const;
  /// Reads eval rows [start, start + count) of `domain` into `out`.
  void read_eval_rows(int domain, std::int64_t start, std::int64_t count, std::span<std::int32_t> out) const;

  /// The held-out math benchmark (empty if the file has none).
  const std::vector<MathProblem>& math_benchmark() const;

  /// Fingerprint of what models depend on: vocab, seq_len, domain names, fields and sizes.
  std::uint64_t fingerprint() const;

 private:
  struct Impl;
  explicit DomainSpace(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Writes a domain-space file domain by domain (dma_prepare, tests, benchmarks).
class DomainSpaceWriter {
 public:
  /// Refuses an existing `path` unless `force` (DataError says to pass --force).
  DomainSpaceWriter(const std::string& path, int vocab_size, int seq_len, const std::string& tokenizer, bool force);
  ~DomainSpaceWriter();
  DomainSpaceWriter(const DomainSpaceWriter&) = delete;
  DomainSpaceWriter& operator=(const DomainSpaceWriter&) = delete;

  /// Adds a domain. `train` and `eval` are row-major [rows, seq_len + 1] token ids, each
  /// < vocab_size. Throws DataError on a duplicate name, empty split or bad token id.
  void add_domain(const std::string& name, Field field, std::span<const std::int32_t> train,
                  std::span<const std::int32_t> eval, const std::string& provenance);
  /// Streams a big split: begin, append rows in pieces, end (bench-sized corpora).
  void begin_domain(const std::string& name, Field field, const std::string& provenance);
  void append_train(std::span<const std::int32_t> rows);
  void append_eval(std::span<const std::int32_t> rows);
  void end_domain();

  void set_math_benchmark(const std::vector<MathProblem>& problems);
  /// Records the tokenizer model file as root attributes (tokenizer_model, tokenizer_model_sha256).
  void set_tokenizer_model(const TokenizerModel& model);
  /// Writes the remaining metadata and closes; the destructor closes without throwing.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Byte-level tokenizer of the embedded default: token = byte value, vocab 256.
namespace bytes_tokenizer {
inline constexpr int kVocab = 256;
std::vector<std::int32_t> encode(std::string_view text);
std::string decode(std::span<const std::int32_t> tokens);
}  // namespace bytes_tokenizer

}  // namespace dma
