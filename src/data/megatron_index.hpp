#pragma once
// Megatron-LM indexed datasets (MMapIndexedDataset): `<prefix>.bin` holds the tokens,
// `<prefix>.idx` says where each sequence lies and which sequences make each document.
//   .idx: magic "MMIDIDX\0\0" (9 bytes), version u64 = 1, dtype code u8, sequence count u64 (S),
//         document-index count u64 (C), sequence lengths i32[S], sequence byte offsets i64[S],
//         document index i64[C] (0, ..., S: document d is sequences [idx[d], idx[d+1]))
//   dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace dma::prep {

/// A file mapped read-only for the object's lifetime.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const unsigned char* data() const { return data_; }
  std::uint64_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

/// One `.bin`/`.idx` pair, validated when opened (header, counts, document index, and every
/// sequence inside the `.bin`); reads go straight to the mapped files.
class MegatronDataset {
 public:
  /// Opens `bin` and the `.idx` beside it; throws DataError naming the file and the problem.
  explicit MegatronDataset(const std::filesystem::path& bin);

  std::int64_t documents() const { return static_cast<std::int64_t>(doc_index_.size()) - 1; }
  std::int64_t tokens() const { return tokens_; }
  /// Document `doc`'s tokens (its sequences in order) into `out`; throws on an id beyond int32.
  void read_document(std::int64_t doc, std::vector<std::int32_t>& out) const;

 private:
  std::filesystem::path bin_path_, idx_path_;
  MappedFile idx_, bin_;
  int dtype_ = 0, item_bytes_ = 0;
  std::uint64_t sequences_ = 0, sizes_at_ = 0, pointers_at_ = 0;
  std::vector<std::int64_t> doc_index_;
  std::int64_t tokens_ = 0;

  std::int64_t sequence_size(std::uint64_t s) const;
  std::int64_t sequence_pointer(std::uint64_t s) const;
  void check_header();
  void check_sequences();
};

}  // namespace dma::prep
