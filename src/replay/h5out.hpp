#pragma once
// Internal: writing plain (non-SWMR) HDF5 outputs for exports: gzip-compressed, chunked
// datasets that grow by appends, whole datasets, string metadata, h5py-style booleans.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dma/detail/h5.hpp"

namespace dma::replay::h5out {

/// Element types of exported datasets; BOOL is h5py's enum {FALSE, TRUE} over int8.
enum Type { F32, I32, I64, U8, BOOL };

class File {
 public:
  /// Creates `path` (which must not exist).
  explicit File(const std::string& path);
  hid_t id() const { return file_.get(); }
  /// Closes and checks (a failing close is a lost write).
  void close();

 private:
  std::string path_;
  h5::File file_;
};

class Group {
 public:
  Group(hid_t loc, const std::string& path);
  hid_t id() const { return group_.get(); }

 private:
  h5::Group group_;
};

/// A dataset of rows that grows by appends; `cols` 0 makes it 1-D. Rows are buffered and
/// written a whole chunk at a time (a partial chunk rewritten per append would be
/// recompressed every time); finish() writes the rest.
class Appender {
 public:
  Appender(hid_t loc, const std::string& name, Type type, hsize_t cols);
  void append(const void* data, hsize_t rows);
  void finish();

 private:
  void write_buffer();
  h5::Dataset ds_;
  Type type_;
  hsize_t cols_, rows_ = 0, row_bytes_;
  std::vector<unsigned char> buffer_;
};

/// A whole dataset of `rows` x `cols` (`cols` 0: 1-D) elements.
void write_matrix(hid_t loc, const std::string& name, Type type, const void* data, hsize_t rows, hsize_t cols);
template <class T>
void write_array(hid_t loc, const std::string& name, Type type, const std::vector<T>& v) {
  write_matrix(loc, name, type, v.data(), v.size(), 0);
}
/// A 1-D dataset of variable-length UTF-8 strings.
void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values);

}  // namespace dma::replay::h5out
