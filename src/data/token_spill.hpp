#pragma once
// A domain's token stream parked on disk while its length is unknown (tokenized or
// decompressed text): the train/eval split needs the row count before the first row.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <vector>

namespace dma::prep {

class RowCutter;

/// Tokens appended to a scratch file, each stored in the fewest bytes that hold ids below
/// `vocab`; the file is removed on destruction.
class TokenSpill {
 public:
  TokenSpill(std::filesystem::path path, int vocab);
  ~TokenSpill();
  TokenSpill(const TokenSpill&) = delete;
  TokenSpill& operator=(const TokenSpill&) = delete;

  void append(std::span<const std::int32_t> tokens);
  std::int64_t tokens() const { return tokens_; }
  /// Feeds every token appended so far, in order and in pieces, to `cutter`.
  void replay(RowCutter& cutter);

 private:
  std::filesystem::path path_;
  int width_;  // bytes per token: 1, 2 or 4
  std::ofstream out_;
  std::vector<char> bytes_;
  std::int64_t tokens_ = 0;
};

}  // namespace dma::prep
