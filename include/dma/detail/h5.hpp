#pragma once
/// Thin RAII over the HDF5 C API, shared by the domain-space reader and the trajectory
/// store. One owner per handle (move-only); a checking call turns HDF5's error stack into
/// one dma::Hdf5Error line.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dma::h5 {

/// Move-only owner of an hid_t closed by `Close`; the destructor never throws.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = -1;
    }
    return *this;
  }
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  void reset() noexcept {
    if (id_ >= 0) Close(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
};

using File = Handle<&H5Fclose>;
using Group = Handle<&H5Gclose>;
using Dataset = Handle<&H5Dclose>;
using Dataspace = Handle<&H5Sclose>;
using Datatype = Handle<&H5Tclose>;
using Attribute = Handle<&H5Aclose>;
using PropList = Handle<&H5Pclose>;

/// HDF5's current error stack as one line (innermost message last).
std::string error_stack();

/// Throws dma::Hdf5Error "<what>: <stack>" when `id` < 0; returns it otherwise.
hid_t check(hid_t id, const std::string& what);
/// Throws when `status` < 0.
void check_status(herr_t status, const std::string& what);

/// Silences HDF5's automatic error printing while alive (for expected failures).
class SilenceErrors {
 public:
  SilenceErrors();
  ~SilenceErrors();
  SilenceErrors(const SilenceErrors&) = delete;
  SilenceErrors& operator=(const SilenceErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// True if `path` is an HDF5 file (by signature; never throws).
bool is_hdf5(const std::string& path);
/// True if the link `name` exists under `loc` (intermediate groups must exist).
bool exists(hid_t loc, const std::string& name);

/// Attribute helpers on an object (file root, group or dataset).
void write_attr_string(hid_t obj, const std::string& name, const std::string& value);
std::string read_attr_string(hid_t obj, const std::string& name);
void write_attr_int(hid_t obj, const std::string& name, std::int64_t value);
std::int64_t read_attr_int(hid_t obj, const std::string& name);
void write_attr_strings(hid_t obj, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> read_attr_strings(hid_t obj, const std::string& name);
bool has_attr(hid_t obj, const std::string& name);

/// Shape of a dataset.
std::vector<hsize_t> shape(hid_t dataset);

}  // namespace dma::h5
