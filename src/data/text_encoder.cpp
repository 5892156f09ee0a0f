#include "text_encoder.hpp"

#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <sentencepiece_processor.h>

#include "dma/error.hpp"
#include "token_spill.hpp"

namespace dma::prep {
namespace fs = std::filesystem;

namespace {

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

class ByteEncoder final : public DocumentEncoder {
 public:
  int vocab_size() const override { return bytes_tokenizer::kVocab; }
  std::string name() const override { return "bytes"; }
  void start(TokenSpill& out) override {
    out_ = &out;
    first_ = true;
  }
  void begin_document() override {
    if (!first_) out_->append(bytes_tokenizer::encode("\n\n"));
    first_ = false;
  }
  void add_text(std::string_view piece) override { out_->append(bytes_tokenizer::encode(piece)); }
  void end_document() override {}

 private:
  TokenSpill* out_ = nullptr;
  bool first_ = true;
};

class SentencePieceEncoder final : public DocumentEncoder {
 public:
  explicit SentencePieceEncoder(const std::string& path) : path_(fs::absolute(path).lexically_normal().string()) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      throw DataError(fmt::format("tokenizer '{}' does not exist: give the .model file that spm_train wrote", path));
    const auto status = processor_.Load(path);
    if (!status.ok())
      throw DataError(
          fmt::format("tokenizer '{}' is not a SentencePiece model ({}): give the .model file that spm_train wrote",
                      path, one_line(status.ToString())));
    sha256_ = sha256_file(path);
  }

  int vocab_size() const override { return processor_.GetPieceSize(); }
  std::string name() const override { return "sentencepiece"; }
  TokenizerModel model() const override { return {path_, sha256_}; }
  void start(TokenSpill& out) override {
    out_ = &out;
    line_.clear();
  }
  void begin_document() override { line_.clear(); }
  void add_text(std::string_view piece) override {
    for (auto nl = piece.find('\n'); nl != std::string_view::npos; nl = piece.find('\n')) {
      line_.append(piece.substr(0, nl));
      encode_line();
      piece.remove_prefix(nl + 1);
    }
    line_.append(piece);
  }
  void end_document() override {
    if (!line_.empty()) encode_line();
    if (processor_.eos_id() >= 0) out_->append(std::vector<std::int32_t>{processor_.eos_id()});
  }

 private:
  void encode_line() {
    const auto status = processor_.Encode(line_, &ids_);
    if (!status.ok())
      throw DataError(fmt::format("tokenizer '{}' cannot encode a line ({}): check the text's encoding (UTF-8)", path_,
                                  one_line(status.ToString())));
    out_->append(std::vector<std::int32_t>(ids_.begin(), ids_.end()));
    line_.clear();
  }

  std::string path_, sha256_;
  sentencepiece::SentencePieceProcessor processor_;
  TokenSpill* out_ = nullptr;
  std::string line_;  // the line being gathered across pieces
  std::vector<int> ids_;
};

}  // namespace

std::unique_ptr<DocumentEncoder> DocumentEncoder::open(const std::string& model_path) {
  if (model_path.empty()) return std::make_unique<ByteEncoder>();
  return std::make_unique<SentencePieceEncoder>(model_path);
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("cannot read '{}': check its permissions", path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw DataError("OpenSSL cannot start a SHA-256 digest");
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &size);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace dma::prep
