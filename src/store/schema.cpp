#include "schema.hpp"

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/error.hpp"

namespace dma::store_detail {
namespace {
constexpr unsigned kMetadataReadAttempts = 8;  // about 0.25 s of retries at most
}  // namespace

std::size_t elem_size(Elem e) {
  switch (e) {
    case Elem::kF32:
      return 4;
    case Elem::kU8:
      return 1;
    case Elem::kI32:
      return 4;
    case Elem::kI64:
      return 8;
    case Elem::kU64:
      return 8;
    case Elem::kStr:
      return kPolicyNameBytes;
  }
  return 1;
}

namespace {

hid_t string_type(hid_t* owned) {
  hid_t t = h5::check(H5Tcopy(H5T_C_S1), "H5Tcopy");
  H5Tset_size(t, kPolicyNameBytes);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  *owned = t;
  return t;
}

}  // namespace

hid_t mem_type(Elem e, hid_t* owned) {
  *owned = -1;
  switch (e) {
    case Elem::kF32:
      return H5T_NATIVE_FLOAT;
    case Elem::kU8:
      return H5T_NATIVE_UINT8;
    case Elem::kI32:
      return H5T_NATIVE_INT32;
    case Elem::kI64:
      return H5T_NATIVE_INT64;
    case Elem::kU64:
      return H5T_NATIVE_UINT64;
    case Elem::kStr:
      return string_type(owned);
  }
  return -1;
}

hid_t file_type(Elem e, hid_t* owned) {
  *owned = -1;
  switch (e) {
    case Elem::kF32:
      return H5T_IEEE_F32LE;
    case Elem::kU8:
      return H5T_STD_U8LE;
    case Elem::kI32:
      return H5T_STD_I32LE;
    case Elem::kI64:
      return H5T_STD_I64LE;
    case Elem::kU64:
      return H5T_STD_U64LE;
    case Elem::kStr:
      return string_type(owned);
  }
  return -1;
}

H5T_class_t type_class(Elem e) {
  switch (e) {
    case Elem::kF32:
      return H5T_FLOAT;
    case Elem::kStr:
      return H5T_STRING;
    default:
      return H5T_INTEGER;
  }
}

hsize_t columns(Width w, const StoreHeader& h) {
  switch (w) {
    case Width::kObs:
      return static_cast<hsize_t>(h.obs_dim());
    case Width::kDomains:
      return static_cast<hsize_t>(h.num_domains());
    case Width::kOne:
      return 1;
  }
  return 1;
}

namespace {

template <class T>
void write_attr_array(hid_t obj, const std::string& name, const std::vector<T>& v, hid_t ftype, hid_t mtype) {
  hsize_t n = v.size();
  h5::Dataspace space(n ? h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple")
                        : h5::check(H5Screate(H5S_NULL), "H5Screate"));
  if (h5::has_attr(obj, name)) h5::check_status(H5Adelete(obj, name.c_str()), "delete attribute " + name);
  h5::Attribute attr(h5::check(H5Acreate2(obj, name.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                               "create attribute " + name));
  if (n) h5::check_status(H5Awrite(attr.get(), mtype, v.data()), "write attribute " + name);
}

template <class T>
std::vector<T> read_attr_array(hid_t obj, const std::string& name, hid_t mtype) {
  h5::Attribute attr(h5::check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'"));
  h5::Dataspace space(h5::check(H5Aget_space(attr.get()), "attribute space " + name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (1 << 24)) throw Hdf5Error(fmt::format("attribute '{}' has a bad size", name));
  std::vector<T> out(static_cast<std::size_t>(n));
  if (n) h5::check_status(H5Aread(attr.get(), mtype, out.data()), "read attribute " + name);
  return out;
}

}  // namespace

void write_attr_floats(hid_t obj, const std::string& name, const std::vector<float>& v) {
  write_attr_array(obj, name, v, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}
std::vector<float> read_attr_floats(hid_t obj, const std::string& name) {
  return read_attr_array<float>(obj, name, H5T_NATIVE_FLOAT);
}
void write_attr_doubles(hid_t obj, const std::string& name, const std::vector<double>& v) {
  write_attr_array(obj, name, v, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}
std::vector<double> read_attr_doubles(hid_t obj, const std::string& name) {
  return read_attr_array<double>(obj, name, H5T_NATIVE_DOUBLE);
}

void write_attr_u64(hid_t obj, const std::string& name, std::uint64_t v) {
  h5::Dataspace space(h5::check(H5Screate(H5S_SCALAR), "H5Screate"));
  if (h5::has_attr(obj, name)) h5::check_status(H5Adelete(obj, name.c_str()), "delete attribute " + name);
  h5::Attribute attr(h5::check(H5Acreate2(obj, name.c_str(), H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                               "create attribute " + name));
  h5::check_status(H5Awrite(attr.get(), H5T_NATIVE_UINT64, &v), "write attribute " + name);
}

std::uint64_t read_attr_u64(hid_t obj, const std::string& name) {
  h5::Attribute attr(h5::check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'"));
  std::uint64_t v = 0;
  h5::check_status(H5Aread(attr.get(), H5T_NATIVE_UINT64, &v), "read attribute " + name);
  return v;
}

void write_header(hid_t root, const StoreHeader& h) {
  h5::write_attr_string(root, "format", kStoreFormat);
  h5::write_attr_int(root, "format_version", kStoreFormatVersion);
  h5::write_attr_strings(root, "domain_names", h.domain_names);
  std::vector<std::string> fields;
  for (Field f : h.domain_fields) fields.emplace_back(field_name(f));
  h5::write_attr_strings(root, "domain_fields", fields);
  h5::write_attr_strings(root, "obs_layout", h.obs_layout);
  h5::write_attr_int(root, "horizon", h.horizon);
  h5::write_attr_string(root, "config", h.config_ini);
  h5::write_attr_string(root, "created_utc", h.created_utc);
  write_attr_floats(root, "base_eval_loss", h.base_eval_loss);
  write_attr_doubles(root, "token_shares", h.token_shares);
  write_attr_u64(root, "space_fingerprint", h.space_fingerprint);
}

Field parse_field(const std::string& s, const std::string& path) {
  if (s == "source") return Field::kSource;
  if (s == "target") return Field::kTarget;
  throw StoreError(
      fmt::format("store '{}' has a domain field '{}' (expected source|target): the file is damaged", path, s));
}

namespace {

void check_format(hid_t root, const std::string& path) {
  if (!h5::has_attr(root, "format") || h5::read_attr_string(root, "format") != kStoreFormat)
    throw StoreError(fmt::format(
        "'{}' is an HDF5 file but not a dma trajectory store (no format=\"{}\" attribute): pass a store written by "
        "dma_orchestrate",
        path, kStoreFormat));
  if (!h5::has_attr(root, "format_version"))
    throw StoreError(fmt::format("store '{}' has no format_version attribute: the file is damaged", path));
  const auto version = h5::read_attr_int(root, "format_version");
  if (version > kStoreFormatVersion)
    throw StoreError(fmt::format("store '{}' has format_version {}, newer than this dma reads ({}): upgrade dma", path,
                                 version, kStoreFormatVersion));
  if (version < 1)
    throw StoreError(fmt::format("store '{}' has an invalid format_version {}: the file is damaged", path, version));
}

}  // namespace

StoreHeader read_header(hid_t root, const std::string& path) {
  check_format(root, path);
  StoreHeader h;
  try {
    h.domain_names = h5::read_attr_strings(root, "domain_names");
    for (const auto& f : h5::read_attr_strings(root, "domain_fields")) h.domain_fields.push_back(parse_field(f, path));
    h.obs_layout = h5::read_attr_strings(root, "obs_layout");
    h.horizon = static_cast<int>(h5::read_attr_int(root, "horizon"));
    h.config_ini = h5::read_attr_string(root, "config");
    h.created_utc = h5::read_attr_string(root, "created_utc");
    h.base_eval_loss = read_attr_floats(root, "base_eval_loss");
    h.token_shares = read_attr_doubles(root, "token_shares");
    h.space_fingerprint = read_attr_u64(root, "space_fingerprint");
  } catch (const Hdf5Error& e) {
    throw StoreError(fmt::format("store '{}' has a damaged header: {}", path, e.what()));
  }
  const std::size_t d = h.domain_names.size();
  if (d == 0 || h.domain_fields.size() != d || h.base_eval_loss.size() != d || h.token_shares.size() != d ||
      h.obs_layout.empty() || h.horizon <= 0 || h.horizon > (1 << 20))
    throw StoreError(fmt::format(
        "store '{}' has an inconsistent header ({} domain names, {} fields, {} base losses, {} token shares, "
        "obs_dim {}, horizon {}): the file is damaged",
        path, d, h.domain_fields.size(), h.base_eval_loss.size(), h.token_shares.size(), h.obs_layout.size(),
        h.horizon));
  return h;
}

hid_t make_fapl(bool clear_flags) {
  const hid_t fapl = h5::check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(fapl)");
  herr_t status = H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  // A SWMR reader retries a metadata read whose checksum fails (the writer may be mid-write),
  // with a doubling sleep; HDF5's default of 100 tries makes a damaged file hang for minutes.
  if (status >= 0) status = H5Pset_metadata_read_attempts(fapl, kMetadataReadAttempts);
  if (status >= 0 && clear_flags) {
    // What `h5clear -s` does: HDF5 1.10's fapl property that clears the superblock's status
    // flags on open (a killed SWMR writer leaves them set).
    hbool_t on = true;
    status = H5Pset(fapl, "clear_status_flags", &on);
  }
  if (status < 0) {
    const std::string stack = h5::error_stack();
    H5Pclose(fapl);
    throw Hdf5Error("store file-access properties: " + stack);
  }
  return fapl;
}

}  // namespace dma::store_detail

namespace dma {

void require_storable_policy_name(const std::string& policy) {
  if (policy.size() <= static_cast<std::size_t>(kPolicyNameBytes)) return;
  throw StoreError(
      fmt::format("policy '{}...' is {} characters, but a store keeps policy names of at most {}: write "
                  "fixed weights with fewer digits, or use a shorter checkpoint path",
                  policy.substr(0, 40), policy.size(), kPolicyNameBytes));
}

}  // namespace dma
