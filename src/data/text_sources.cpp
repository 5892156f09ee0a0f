#include "text_sources.hpp"

#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <zstd.h>
#include <nlohmann/json.hpp>

#include "dma/error.hpp"
#include "prepare_common.hpp"
#include "text_encoder.hpp"

namespace dma::prep {
namespace fs = std::filesystem;

namespace {

constexpr size_t kPieceBytes = 1 << 20;

/// A file's bytes in pieces, decompressed on the fly when it ends in `.zst`.
class ByteReader {
 public:
  explicit ByteReader(const fs::path& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw DataError(fmt::format("cannot read '{}': check its permissions", path.string()));
    if (path.extension() == ".zst") {
      zstd_.reset(ZSTD_createDCtx());
      if (!zstd_) throw DataError("zstd cannot allocate a decompression context");
      compressed_.resize(ZSTD_DStreamInSize());
    }
  }

  /// Up to `piece.size()` bytes into `piece`; 0 at the end.
  size_t read(std::string& piece) {
    if (!zstd_) {
      in_.read(piece.data(), static_cast<std::streamsize>(piece.size()));
      return static_cast<size_t>(in_.gcount());
    }
    ZSTD_outBuffer out{piece.data(), piece.size(), 0};
    while (out.pos == 0) {
      if (input_.pos == input_.size) {
        in_.read(compressed_.data(), static_cast<std::streamsize>(compressed_.size()));
        input_ = {compressed_.data(), static_cast<size_t>(in_.gcount()), 0};
      }
      const bool at_end = input_.pos == input_.size;  // the file is read to its end
      if (at_end && frame_left_ == 0) return 0;
      // At the end, one more call flushes what the decoder still holds.
      frame_left_ = ZSTD_decompressStream(zstd_.get(), &out, &input_);
      if (ZSTD_isError(frame_left_))
        throw DataError(fmt::format("'{}' is not a valid zstd stream ({}): compress it again with zstd", path_.string(),
                                    ZSTD_getErrorName(frame_left_)));
      if (at_end && out.pos == 0)
        throw DataError(
            fmt::format("'{}' ends inside a zstd frame: the file is truncated, compress it again", path_.string()));
    }
    return out.pos;
  }

 private:
  struct FreeDctx {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  fs::path path_;
  std::ifstream in_;
  std::unique_ptr<ZSTD_DCtx, FreeDctx> zstd_;
  std::vector<char> compressed_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  size_t frame_left_ = 0;  // zstd's hint: 0 once a frame is complete
};

/// The name without a trailing `.zst`: what the decompressed bytes are.
bool is_jsonl(const fs::path& file) {
  const auto inner = file.extension() == ".zst" ? file.stem() : file.filename();
  return fs::path(inner).extension() == ".jsonl";
}

void encode_jsonl_line(std::string_view line, const fs::path& file, std::int64_t number, DocumentEncoder& encoder) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return;
  const auto where = [&] { return fmt::format("'{}' line {}", file.string(), number); };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(fmt::format("{} is not JSON ({}): write one JSON object per line", where(), e.what()));
  }
  if (!doc.is_object() || !doc.contains("text"))
    throw DataError(
        fmt::format("{} has no field \"text\": each line must be a JSON object with a string field \"text\"", where()));
  const auto& text = doc["text"];
  if (!text.is_string())
    throw DataError(
        fmt::format("{}: field \"text\" is not a string: store each document's text as a JSON string", where()));
  encoder.begin_document();
  encoder.add_text(text.get_ref<const std::string&>());
  encoder.end_document();
}

void read_jsonl(ByteReader& reader, const fs::path& file, DocumentEncoder& encoder) {
  std::string piece(kPieceBytes, '\0'), line;
  std::int64_t number = 1;
  for (size_t n; (n = reader.read(piece)) > 0;) {
    std::string_view rest(piece.data(), n);
    for (auto nl = rest.find('\n'); nl != std::string_view::npos; nl = rest.find('\n')) {
      line.append(rest.substr(0, nl));
      encode_jsonl_line(line, file, number++, encoder);
      line.clear();
      rest.remove_prefix(nl + 1);
    }
    line.append(rest);
  }
  encode_jsonl_line(line, file, number, encoder);
}

}  // namespace

std::vector<fs::path> text_domain_files(const DomainSpec& d) {
  std::error_code ec;
  if (fs::is_regular_file(d.dir, ec)) return {fs::path(d.dir)};
  return list_files(d, {}, "text, .jsonl or .jsonl.zst files");
}

void read_documents(const fs::path& file, DocumentEncoder& encoder) {
  ByteReader reader(file);
  if (is_jsonl(file)) return read_jsonl(reader, file, encoder);
  encoder.begin_document();
  std::string piece(kPieceBytes, '\0');
  for (size_t n; (n = reader.read(piece)) > 0;) encoder.add_text(std::string_view(piece.data(), n));
  encoder.end_document();
}

}  // namespace dma::prep
