#include "megatron_index.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::prep {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[] = "MMIDIDX\0\0";  // 9 bytes, without the literal's terminator
constexpr std::uint64_t kMagicBytes = 9;
constexpr std::uint64_t kHeaderBytes = kMagicBytes + 8 + 1 + 8 + 8;

template <class T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the .idx arrays are not aligned (the header is 34 bytes)
  return v;
}

/// Bytes per token of an integer dtype code; 0 for float or unknown codes.
int item_bytes(int code) {
  switch (code) {
    case 1:
    case 2:
      return 1;
    case 3:
    case 8:
      return 2;
    case 4:
      return 4;
    case 5:
      return 8;
    default:
      return 0;
  }
}

std::int64_t token_at(const unsigned char* p, int code) {
  switch (code) {
    case 1:
      return load<std::uint8_t>(p);
    case 2:
      return load<std::int8_t>(p);
    case 3:
      return load<std::int16_t>(p);
    case 4:
      return load<std::int32_t>(p);
    case 8:
      return load<std::uint16_t>(p);
    default:
      return load<std::int64_t>(p);
  }
}

}  // namespace

MappedFile::MappedFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(fmt::format("cannot open '{}': {}", path.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw DataError(fmt::format("cannot stat '{}': {}", path.string(), std::strerror(errno)));
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw DataError(fmt::format("cannot map '{}': {}", path.string(), std::strerror(errno)));
    }
    data_ = static_cast<const unsigned char*>(p);
  }
  ::close(fd);  // the mapping stays valid
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MegatronDataset::MegatronDataset(const fs::path& bin)
    : bin_path_(bin), idx_path_(fs::path(bin).replace_extension(".idx")), idx_(idx_path_), bin_(bin_path_) {
  check_header();
  check_sequences();
}

std::int64_t MegatronDataset::sequence_size(std::uint64_t s) const {
  return load<std::int32_t>(idx_.data() + sizes_at_ + 4 * s);
}

std::int64_t MegatronDataset::sequence_pointer(std::uint64_t s) const {
  return load<std::int64_t>(idx_.data() + pointers_at_ + 8 * s);
}

void MegatronDataset::check_header() {
  const auto idx = idx_path_.string();
  if (idx_.size() < kHeaderBytes)
    throw DataError(fmt::format("'{}' holds {} bytes, too few for a Megatron index header ({}): is it a Megatron .idx?",
                                idx, idx_.size(), kHeaderBytes));
  if (std::memcmp(idx_.data(), kMagic, kMagicBytes) != 0)
    throw DataError(
        fmt::format("'{}' does not start with the magic MMIDIDX\\x00\\x00: it is not a Megatron-LM indexed "
                    "dataset index; rebuild it with Megatron's preprocess_data.py",
                    idx));
  const auto version = load<std::uint64_t>(idx_.data() + kMagicBytes);
  if (version != 1)
    throw DataError(
        fmt::format("'{}' has index version {}: only version 1 (MMapIndexedDataset) is read", idx, version));
  dtype_ = idx_.data()[kMagicBytes + 8];
  item_bytes_ = item_bytes(dtype_);
  if (item_bytes_ == 0)
    throw DataError(
        fmt::format("'{}' has dtype code {}, not an integer token type: expected 1 (uint8), 2 (int8), 3 (int16), "
                    "4 (int32), 5 (int64) or 8 (uint16)",
                    idx, dtype_));
  sequences_ = load<std::uint64_t>(idx_.data() + kMagicBytes + 9);
  const auto doc_entries = load<std::uint64_t>(idx_.data() + kMagicBytes + 17);
  const auto room = idx_.size() - kHeaderBytes;
  const bool fits = sequences_ <= room / 12 && doc_entries <= room / 8 && sequences_ * 12 + doc_entries * 8 == room;
  if (!fits)
    throw DataError(
        fmt::format("'{}' holds {} bytes but its header counts {} sequences and {} document entries: the index is "
                    "truncated or corrupt",
                    idx, idx_.size(), sequences_, doc_entries));
  sizes_at_ = kHeaderBytes;
  pointers_at_ = sizes_at_ + 4 * sequences_;
  const auto docs_at = pointers_at_ + 8 * sequences_;
  doc_index_.resize(doc_entries);
  for (std::uint64_t d = 0; d < doc_entries; ++d) doc_index_[d] = load<std::int64_t>(idx_.data() + docs_at + 8 * d);
  if (doc_index_.empty() || doc_index_.front() != 0 || doc_index_.back() != static_cast<std::int64_t>(sequences_))
    throw DataError(
        fmt::format("'{}' has a document index that does not run from 0 to its {} sequences: the index is corrupt", idx,
                    sequences_));
  for (size_t d = 1; d < doc_index_.size(); ++d)
    if (doc_index_[d] < doc_index_[d - 1])
      throw DataError(
          fmt::format("'{}' has a decreasing document index at document {}: the index is corrupt", idx, d - 1));
}

void MegatronDataset::check_sequences() {
  const auto bin_bytes = static_cast<std::int64_t>(bin_.size());
  for (std::uint64_t s = 0; s < sequences_; ++s) {
    const auto size = sequence_size(s), at = sequence_pointer(s);
    if (size < 0 || at < 0 || at > bin_bytes || size > (bin_bytes - at) / item_bytes_)
      throw DataError(
          fmt::format("'{}' places sequence {} ({} tokens at byte {}) outside '{}' ({} bytes): the .idx and .bin "
                      "do not belong together or the .bin is truncated",
                      idx_path_.string(), s, size, at, bin_path_.string(), bin_bytes));
    tokens_ += size;
  }
  if (tokens_ * item_bytes_ != bin_bytes)
    throw DataError(
        fmt::format("'{}' describes {} tokens of {} bytes ({} bytes) but '{}' holds {} bytes: the .idx and .bin "
                    "do not belong together or one is truncated",
                    idx_path_.string(), tokens_, item_bytes_, tokens_ * item_bytes_, bin_path_.string(), bin_bytes));
}

void MegatronDataset::read_document(std::int64_t doc, std::vector<std::int32_t>& out) const {
  out.clear();
  const auto first = static_cast<std::uint64_t>(doc_index_[static_cast<size_t>(doc)]);
  const auto last = static_cast<std::uint64_t>(doc_index_[static_cast<size_t>(doc) + 1]);
  for (auto s = first; s < last; ++s) {
    const auto* p = bin_.data() + sequence_pointer(s);
    for (std::int64_t i = 0, n = sequence_size(s); i < n; ++i, p += item_bytes_) {
      const auto t = token_at(p, dtype_);
      if (t < INT32_MIN || t > INT32_MAX)
        throw DataError(
            fmt::format("'{}' holds token id {} in document {}: ids must fit in 32 bits", bin_path_.string(), t, doc));
      out.push_back(static_cast<std::int32_t>(t));
    }
  }
}

}  // namespace dma::prep
