#pragma once
// Turns documents into one token stream for `dma_prepare text`: bytes, or a SentencePiece model.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "dma/domain_space.hpp"

namespace dma::prep {

class TokenSpill;

/// Encodes documents, given in pieces, into a TokenSpill. The byte tokenizer joins documents
/// with a blank line; a SentencePiece model encodes each line on its own (as `spm_encode`
/// does, so a document of any size streams) and ends each document with the model's EOS
/// piece when it has one.
class DocumentEncoder {
 public:
  /// The byte tokenizer for an empty path, else the SentencePiece model at `model_path`;
  /// throws DataError when that file is missing or not a SentencePiece model.
  static std::unique_ptr<DocumentEncoder> open(const std::string& model_path);
  virtual ~DocumentEncoder() = default;

  virtual int vocab_size() const = 0;
  /// "bytes" or "sentencepiece": the domain space's tokenizer attribute.
  virtual std::string name() const = 0;
  /// The model file and its digest (empty for bytes).
  virtual TokenizerModel model() const { return {}; }

  /// Starts a domain: documents go to `out` until the next start.
  virtual void start(TokenSpill& out) = 0;
  virtual void begin_document() = 0;
  virtual void add_text(std::string_view piece) = 0;
  virtual void end_document() = 0;
};

/// SHA-256 of a file as lowercase hex (what `sha256sum` prints).
std::string sha256_file(const std::string& path);

}  // namespace dma::prep
