#include "token_spill.hpp"

#include <cstring>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "prepare_common.hpp"

namespace dma::prep {

namespace {

int width_for(int vocab) { return vocab <= 256 ? 1 : vocab <= 65536 ? 2 : 4; }

template <class T>
void narrow(std::span<const std::int32_t> tokens, std::vector<char>& out) {
  const auto at = out.size();
  out.resize(at + tokens.size() * sizeof(T));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto v = static_cast<T>(tokens[i]);
    std::memcpy(out.data() + at + i * sizeof(T), &v, sizeof(T));
  }
}

template <class T>
void widen(const char* bytes, size_t count, std::vector<std::int32_t>& out) {
  out.resize(count);
  for (size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, bytes + i * sizeof(T), sizeof(T));
    out[i] = static_cast<std::int32_t>(v);
  }
}

}  // namespace

TokenSpill::TokenSpill(std::filesystem::path path, int vocab)
    : path_(std::move(path)), width_(width_for(vocab)), out_(path_, std::ios::binary | std::ios::trunc) {
  if (!out_)
    throw DataError(
        fmt::format("cannot create scratch file '{}': check that the --out directory is writable", path_.string()));
}

TokenSpill::~TokenSpill() {
  out_.close();
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void TokenSpill::append(std::span<const std::int32_t> tokens) {
  bytes_.clear();
  if (width_ == 1)
    narrow<std::uint8_t>(tokens, bytes_);
  else if (width_ == 2)
    narrow<std::uint16_t>(tokens, bytes_);
  else
    narrow<std::int32_t>(tokens, bytes_);
  out_.write(bytes_.data(), static_cast<std::streamsize>(bytes_.size()));
  if (!out_) throw DataError(fmt::format("cannot write scratch file '{}': is the disk full?", path_.string()));
  tokens_ += static_cast<std::int64_t>(tokens.size());
}

void TokenSpill::replay(RowCutter& cutter) {
  out_.flush();
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw DataError(fmt::format("cannot read back scratch file '{}'", path_.string()));
  std::vector<char> bytes(static_cast<size_t>(width_) << 20);
  std::vector<std::int32_t> tokens;
  for (std::int64_t left = tokens_; left > 0;) {
    const auto n = std::min<std::int64_t>(left, 1 << 20);
    in.read(bytes.data(), static_cast<std::streamsize>(n * width_));
    if (in.gcount() != static_cast<std::streamsize>(n * width_))
      throw DataError(fmt::format("scratch file '{}' ended early: was it changed while preparing?", path_.string()));
    const auto count = static_cast<size_t>(n);
    if (width_ == 1)
      widen<std::uint8_t>(bytes.data(), count, tokens);
    else if (width_ == 2)
      widen<std::uint16_t>(bytes.data(), count, tokens);
    else
      widen<std::int32_t>(bytes.data(), count, tokens);
    cutter.feed(tokens);
    left -= n;
  }
}

}  // namespace dma::prep
