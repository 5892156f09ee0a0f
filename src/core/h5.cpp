#include "dma/detail/h5.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::h5 {
namespace {

herr_t collect_message(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (err->desc && *err->desc) {
    if (!out->empty()) *out += "; ";
    *out += err->desc;
  }
  (void)n;
  return 0;
}

}  // namespace

std::string error_stack() {
  std::string out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_message, &out);
  return out.empty() ? "no HDF5 error message" : out;
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) {
    auto stack = error_stack();
    H5Eclear2(H5E_DEFAULT);
    throw Hdf5Error(fmt::format("{}: {}", what, stack));
  }
  return id;
}

void check_status(herr_t status, const std::string& what) {
  if (status < 0) check(-1, what);
}

SilenceErrors::SilenceErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

SilenceErrors::~SilenceErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

bool is_hdf5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  SilenceErrors quiet;
  return H5Fis_hdf5(path.c_str()) > 0;
}

bool exists(hid_t loc, const std::string& name) {
  SilenceErrors quiet;
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

bool has_attr(hid_t obj, const std::string& name) {
  SilenceErrors quiet;
  return H5Aexists(obj, name.c_str()) > 0;
}

void write_attr_string(hid_t obj, const std::string& name, const std::string& value) {
  Datatype type(check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  check_status(H5Tset_size(type.get(), std::max<size_t>(1, value.size())), "H5Tset_size");
  check_status(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "H5Tset_strpad");
  Dataspace space(check(H5Screate(H5S_SCALAR), "H5Screate"));
  if (has_attr(obj, name)) check_status(H5Adelete(obj, name.c_str()), "delete attribute " + name);
  Attribute attr(check(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                       "create attribute " + name));
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  check_status(H5Awrite(attr.get(), type.get(), padded.data()), "write attribute " + name);
}

std::string read_attr_string(hid_t obj, const std::string& name) {
  Attribute attr(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'"));
  Datatype type(check(H5Aget_type(attr.get()), "attribute type " + name));
  if (H5Tget_class(type.get()) != H5T_STRING) throw Hdf5Error(fmt::format("attribute '{}' is not a string", name));
  if (H5Tis_variable_str(type.get()) > 0) {
    Datatype mem(check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
    check_status(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size");
    char* raw = nullptr;
    check_status(H5Aread(attr.get(), mem.get(), &raw), "read attribute " + name);
    std::string out = raw ? raw : "";
    H5free_memory(raw);
    return out;
  }
  const size_t size = H5Tget_size(type.get());
  std::string buf(size, '\0');
  check_status(H5Aread(attr.get(), type.get(), buf.data()), "read attribute " + name);
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

void write_attr_int(hid_t obj, const std::string& name, std::int64_t value) {
  Dataspace space(check(H5Screate(H5S_SCALAR), "H5Screate"));
  if (has_attr(obj, name)) check_status(H5Adelete(obj, name.c_str()), "delete attribute " + name);
  Attribute attr(check(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                       "create attribute " + name));
  check_status(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), "write attribute " + name);
}

std::int64_t read_attr_int(hid_t obj, const std::string& name) {
  Attribute attr(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'"));
  std::int64_t v = 0;
  check_status(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), "read attribute " + name);
  return v;
}

void write_attr_strings(hid_t obj, const std::string& name, const std::vector<std::string>& values) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  Datatype type(check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  check_status(H5Tset_size(type.get(), width), "H5Tset_size");
  check_status(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "H5Tset_strpad");
  hsize_t n = values.size();
  Dataspace space(check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  std::string buf(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(buf.data() + i * width, values[i].data(), values[i].size());
  if (has_attr(obj, name)) check_status(H5Adelete(obj, name.c_str()), "delete attribute " + name);
  Attribute attr(check(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                       "create attribute " + name));
  check_status(H5Awrite(attr.get(), type.get(), buf.data()), "write attribute " + name);
}

std::vector<std::string> read_attr_strings(hid_t obj, const std::string& name) {
  Attribute attr(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'"));
  Datatype type(check(H5Aget_type(attr.get()), "attribute type " + name));
  Dataspace space(check(H5Aget_space(attr.get()), "attribute space " + name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (H5Tget_class(type.get()) != H5T_STRING) throw Hdf5Error(fmt::format("attribute '{}' is not a string list", name));
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    Datatype mem(check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
    check_status(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size");
    std::vector<char*> raw(static_cast<size_t>(n), nullptr);
    check_status(H5Aread(attr.get(), mem.get(), raw.data()), "read attribute " + name);
    for (char* r : raw) out.emplace_back(r ? r : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
    return out;
  }
  const size_t width = H5Tget_size(type.get());
  std::string buf(width * static_cast<size_t>(n), '\0');
  check_status(H5Aread(attr.get(), type.get(), buf.data()), "read attribute " + name);
  for (hssize_t i = 0; i < n; ++i) {
    std::string s(buf.data() + static_cast<size_t>(i) * width, width);
    s.resize(std::strlen(s.c_str()));
    out.push_back(s);
  }
  return out;
}

std::vector<hsize_t> shape(hid_t dataset) {
  Dataspace space(check(H5Dget_space(dataset), "H5Dget_space"));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) check(-1, "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

}  // namespace dma::h5
