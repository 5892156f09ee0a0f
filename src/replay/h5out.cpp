#include "h5out.hpp"

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::replay::h5out {
namespace {

constexpr hsize_t kChunkRows = 4096;
constexpr unsigned kGzipLevel = 4;
constexpr hsize_t kContiguousBytes = 64 * 1024;  // smaller whole datasets are stored plain

hsize_t elem_bytes(Type t) {
  switch (t) {
    case F32:
    case I32:
      return 4;
    case I64:
      return 8;
    case U8:
    case BOOL:
      return 1;
  }
  return 1;
}

/// The memory/file type of `t` (BOOL: a new enum type, closed by the caller's guard).
hid_t type_of(Type t, h5::Datatype& owned) {
  switch (t) {
    case F32:
      return H5T_NATIVE_FLOAT;
    case I32:
      return H5T_NATIVE_INT32;
    case I64:
      return H5T_NATIVE_INT64;
    case U8:
      return H5T_NATIVE_UINT8;
    case BOOL: {
      owned = h5::Datatype(h5::check(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create"));
      const std::int8_t no = 0, yes = 1;
      h5::check_status(H5Tenum_insert(owned.get(), "FALSE", &no), "H5Tenum_insert");
      h5::check_status(H5Tenum_insert(owned.get(), "TRUE", &yes), "H5Tenum_insert");
      return owned.get();
    }
  }
  return -1;
}

h5::PropList link_props() {
  h5::PropList lcpl(h5::check(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate(lcpl)"));
  h5::check_status(H5Pset_create_intermediate_group(lcpl.get(), 1), "H5Pset_create_intermediate_group");
  return lcpl;
}

h5::Dataset create(hid_t loc, const std::string& name, hid_t type, hsize_t rows, hsize_t cols, bool growable) {
  const int rank = cols ? 2 : 1;
  hsize_t dims[2] = {rows, cols}, maxdims[2] = {growable ? H5S_UNLIMITED : rows, cols};
  h5::Dataspace space(h5::check(H5Screate_simple(rank, dims, maxdims), "H5Screate_simple"));
  h5::PropList dcpl(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dcpl)"));
  // One Minari episode is a few KiB per dataset: chunk and index overhead would outweigh it.
  const bool small = !growable && rows * std::max<hsize_t>(cols, 1) * H5Tget_size(type) < kContiguousBytes;
  if (!small) {
    hsize_t chunk[2] = {std::max<hsize_t>(1, std::min(kChunkRows, growable ? kChunkRows : rows)), cols};
    h5::check_status(H5Pset_chunk(dcpl.get(), rank, chunk), "H5Pset_chunk");
    h5::check_status(H5Pset_shuffle(dcpl.get()), "H5Pset_shuffle");
    h5::check_status(H5Pset_deflate(dcpl.get(), kGzipLevel), "H5Pset_deflate");
  }
  const auto lcpl = link_props();
  return h5::Dataset(h5::check(H5Dcreate2(loc, name.c_str(), type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                               "create dataset " + name));
}

}  // namespace

File::File(const std::string& path) : path_(path) {
  // The 1.8 format: compact groups (thousands of small episode groups stay small), and
  // readable by every h5py and HDF5 since 1.8.
  h5::PropList fapl(h5::check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(fapl)"));
  h5::check_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18), "H5Pset_libver_bounds");
  file_ = h5::File(
      h5::check(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), fmt::format("create '{}'", path)));
}

void File::close() {
  const hid_t id = file_.get();
  if (id < 0) return;
  h5::check_status(H5Fflush(id, H5F_SCOPE_GLOBAL), fmt::format("flush '{}'", path_));
  file_.reset();
}

Group::Group(hid_t loc, const std::string& path)
    : group_(h5::check(H5Gopen2(loc, path.c_str(), H5P_DEFAULT), "open group " + path)) {}

Appender::Appender(hid_t loc, const std::string& name, Type type, hsize_t cols)
    : type_(type), cols_(cols), row_bytes_(std::max<hsize_t>(cols, 1) * elem_bytes(type)) {
  h5::Datatype owned;
  ds_ = create(loc, name, type_of(type, owned), 0, cols, true);
}

void Appender::append(const void* data, hsize_t rows) {
  const auto* p = static_cast<const unsigned char*>(data);
  buffer_.insert(buffer_.end(), p, p + rows * row_bytes_);
  if (buffer_.size() >= kChunkRows * row_bytes_) write_buffer();
}

void Appender::finish() { write_buffer(); }

void Appender::write_buffer() {
  const hsize_t rows = buffer_.size() / row_bytes_;
  if (rows == 0) return;
  const void* data = buffer_.data();
  h5::Datatype owned;
  const hid_t type = type_of(type_, owned);
  hsize_t dims[2] = {rows_ + rows, cols_};
  h5::check_status(H5Dset_extent(ds_.get(), dims), "H5Dset_extent");
  h5::Dataspace fspace(h5::check(H5Dget_space(ds_.get()), "H5Dget_space"));
  hsize_t start[2] = {rows_, 0}, count[2] = {rows, cols_};
  h5::check_status(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), "select");
  h5::Dataspace mspace(h5::check(H5Screate_simple(cols_ ? 2 : 1, count, nullptr), "H5Screate_simple"));
  h5::check_status(H5Dwrite(ds_.get(), type, mspace.get(), fspace.get(), H5P_DEFAULT, data), "H5Dwrite");
  rows_ += rows;
  buffer_.clear();
}

void write_matrix(hid_t loc, const std::string& name, Type type, const void* data, hsize_t rows, hsize_t cols) {
  h5::Datatype owned;
  const hid_t t = type_of(type, owned);
  auto ds = create(loc, name, t, rows, cols, false);
  if (rows) h5::check_status(H5Dwrite(ds.get(), t, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write " + name);
}

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  h5::Datatype type(h5::check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  h5::check_status(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size");
  h5::check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset");
  hsize_t n = values.size();
  h5::Dataspace space(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  const auto lcpl = link_props();
  h5::Dataset ds(h5::check(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                           "create dataset " + name));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n) h5::check_status(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "write " + name);
}

}  // namespace dma::replay::h5out
