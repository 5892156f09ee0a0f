// Domain-space reader (DESIGN §5). Opening validates the whole layout once, so later reads
// can trust shapes; rows are served by hyperslab selections, never by loading a domain.
#include "dma/domain_space.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <numeric>

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/error.hpp"
#include "layout.hpp"

namespace dma {

namespace {

struct SpaceData {
  std::string path;
  h5::File file;
  int vocab = 0;
  int seq_len = 0;
  std::string tokenizer;
  TokenizerModel tokenizer_model;
  std::vector<DomainInfo> domains;
  std::vector<h5::Dataset> train;  // (D)
  std::vector<h5::Dataset> eval;   // (D)
  std::vector<MathProblem> bench;
};

}  // namespace

struct DomainSpace::Impl : SpaceData {};

namespace {

constexpr size_t kChunkCacheBytes = 0;

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw DataError(fmt::format("domain space '{}': {}", path, what));
}

h5::Dataset open_split(const std::string& path, hid_t group, const std::string& domain, const char* split, int width) {
  if (!h5::exists(group, split))
    bad(path, fmt::format("domain '{}' has no '{}' dataset: rebuild the file with dma_prepare", domain, split));
  // No chunk cache: random rows rarely hit one, and without it HDF5 reads just the selected
  // rows from the file. Measured (bench domain_space_memory, 64 domains, 0.25 GiB): the
  // default 1 MiB cache per dataset grew RSS from 33 to 248 MiB and ran at 28K rows/s;
  // no cache stays at 34 MiB and runs at 70K rows/s.
  h5::PropList dapl(h5::check(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate"));
  h5::check_status(H5Pset_chunk_cache(dapl.get(), 521, kChunkCacheBytes, 1.0), "H5Pset_chunk_cache");
  h5::Dataset ds(h5::check(H5Dopen2(group, split, dapl.get()), fmt::format("open {}/{}", domain, split)));
  h5::Datatype type(h5::check(H5Dget_type(ds.get()), "H5Dget_type"));
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    bad(path, fmt::format("domain '{}' {} is not an integer dataset: token ids must be integers", domain, split));
  const auto dims = h5::shape(ds.get());
  if (dims.size() != 2)
    bad(path, fmt::format("domain '{}' {} has rank {}, expected 2 ([rows, seq_len+1])", domain, split, dims.size()));
  if (dims[1] != static_cast<hsize_t>(width))
    bad(path, fmt::format("domain '{}' {} rows hold {} tokens but seq_len+1 = {}: rebuild the file", domain, split,
                          dims[1], width));
  if (dims[0] == 0) bad(path, fmt::format("domain '{}' has an empty {} split: rebuild the file", domain, split));
  return ds;
}

/// Domain names in file order: the stored order attribute, else alphabetical (foreign files).
std::vector<std::string> domain_order(const std::string& path, hid_t root, hid_t domains_group) {
  std::vector<std::string> members;
  H5G_info_t info{};
  h5::check_status(H5Gget_info(domains_group, &info), "H5Gget_info /domains");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(domains_group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(std::max<ssize_t>(n, 0)) + 1, '\0');
    H5Lget_name_by_idx(domains_group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(std::max<ssize_t>(n, 0)));
    members.push_back(name);
  }
  if (members.empty()) bad(path, "no domains under /domains: rebuild the file with dma_prepare");
  if (!h5::has_attr(root, layout::kDomainOrder)) return members;
  auto order = h5::read_attr_strings(root, layout::kDomainOrder);
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != members)
    bad(path, "root attribute 'domain_order' does not list exactly the groups under /domains: rebuild the file");
  return order;
}

Field read_field(const std::string& path, hid_t group, const std::string& domain) {
  std::string field = h5::has_attr(group, layout::kField) ? h5::read_attr_string(group, layout::kField) : "";
  if (field == "source") return Field::kSource;
  if (field == "target") return Field::kTarget;
  bad(path, fmt::format("domain '{}' has field '{}': it must be 'source' or 'target'", domain, field));
}

std::vector<std::string> read_strings(hid_t group, const char* name) {
  h5::Dataset ds(h5::check(H5Dopen2(group, name, H5P_DEFAULT), std::string("open benchmark ") + name));
  h5::Datatype type(h5::check(H5Dget_type(ds.get()), "H5Dget_type"));
  const auto dims = h5::shape(ds.get());
  if (H5Tget_class(type.get()) != H5T_STRING || dims.size() != 1 || H5Tis_variable_str(type.get()) > 0)
    throw DataError(fmt::format("benchmark dataset '{}' must be a 1-D fixed-length string dataset", name));
  const size_t width = H5Tget_size(type.get());
  std::string buf(width * dims[0], '\0');
  if (!buf.empty())
    h5::check_status(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read benchmark");
  std::vector<std::string> out;
  for (hsize_t i = 0; i < dims[0]; ++i) {
    std::string s(buf.data() + i * width, width);
    s.resize(std::strlen(s.c_str()));
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<MathProblem> read_bench(const std::string& path, hid_t file) {
  std::vector<MathProblem> out;
  if (!h5::exists(file, "benchmarks") || !h5::exists(file, layout::kMathBench)) return out;
  h5::Group g(h5::check(H5Gopen2(file, layout::kMathBench, H5P_DEFAULT), "open /benchmarks/math"));
  if (!h5::exists(g.get(), "prompts") || !h5::exists(g.get(), "answers"))
    bad(path, "/benchmarks/math needs datasets 'prompts' and 'answers'");
  auto prompts = read_strings(g.get(), "prompts");
  auto answers = read_strings(g.get(), "answers");
  if (prompts.size() != answers.size()) bad(path, "/benchmarks/math has different numbers of prompts and answers");
  for (size_t i = 0; i < prompts.size(); ++i) out.push_back({prompts[i], answers[i]});
  return out;
}

void read_root(SpaceData& s) {
  const hid_t root = s.file.get();
  for (const char* a : {layout::kVocab, layout::kSeqLen, layout::kTokenizer})
    if (!h5::has_attr(root, a))
      bad(s.path, fmt::format("no root attribute '{}': this is not a dma domain space, build one with dma_prepare", a));
  if (h5::has_attr(root, layout::kFormat) && h5::read_attr_string(root, layout::kFormat) != layout::kFormatName)
    bad(s.path,
        fmt::format("format is '{}', not '{}'", h5::read_attr_string(root, layout::kFormat), layout::kFormatName));
  if (h5::has_attr(root, layout::kFormatVersion) && h5::read_attr_int(root, layout::kFormatVersion) > layout::kVersion)
    bad(s.path, "written by a newer dma (format_version too high): update dma");
  const auto vocab = h5::read_attr_int(root, layout::kVocab);
  const auto seq = h5::read_attr_int(root, layout::kSeqLen);
  if (vocab < 2 || vocab > layout::kMaxVocab)
    bad(s.path, fmt::format("vocab_size {} is out of range [2, 2^31)", vocab));
  if (seq < 1 || seq > layout::kMaxSeqLen)
    bad(s.path, fmt::format("seq_len {} is out of range [1, {}]", seq, layout::kMaxSeqLen));
  s.vocab = static_cast<int>(vocab);
  s.seq_len = static_cast<int>(seq);
  s.tokenizer = h5::read_attr_string(root, layout::kTokenizer);
  if (h5::has_attr(root, layout::kTokenizerModel))
    s.tokenizer_model.path = h5::read_attr_string(root, layout::kTokenizerModel);
  if (h5::has_attr(root, layout::kTokenizerModelSha256))
    s.tokenizer_model.sha256 = h5::read_attr_string(root, layout::kTokenizerModelSha256);
}

void read_domains(SpaceData& s) {
  if (!h5::exists(s.file.get(), "domains")) bad(s.path, "no /domains group: build the file with dma_prepare");
  h5::Group all(h5::check(H5Gopen2(s.file.get(), "domains", H5P_DEFAULT), "open /domains"));
  for (const auto& name : domain_order(s.path, s.file.get(), all.get())) {
    h5::Group g(h5::check(H5Gopen2(all.get(), name.c_str(), H5P_DEFAULT), "open domain " + name));
    DomainInfo info;
    info.name = name;
    info.field = read_field(s.path, g.get(), name);
    info.provenance =
        h5::has_attr(g.get(), layout::kProvenance) ? h5::read_attr_string(g.get(), layout::kProvenance) : "";
    s.train.push_back(open_split(s.path, g.get(), name, "train", s.seq_len + 1));
    s.eval.push_back(open_split(s.path, g.get(), name, "eval", s.seq_len + 1));
    info.train_rows = static_cast<std::int64_t>(h5::shape(s.train.back().get())[0]);
    info.eval_rows = static_cast<std::int64_t>(h5::shape(s.eval.back().get())[0]);
    s.domains.push_back(std::move(info));
  }
}

/// The serial HDF5 library must not be entered from two threads at once: reads of every
/// DomainSpace in the process take this lock (uncontended it costs nanoseconds).
std::mutex g_read_mutex;

/// Reads `rows` (sorted, unique) of a [N, width] dataset into `out` as int32.
void read_sorted_rows(hid_t ds, std::span<const std::int64_t> rows, int width, std::int32_t* out) {
  std::lock_guard lock(g_read_mutex);
  h5::Dataspace file_space(h5::check(H5Dget_space(ds), "H5Dget_space"));
  const hsize_t w = static_cast<hsize_t>(width);
  bool first = true;
  for (size_t i = 0; i < rows.size();) {
    size_t j = i + 1;  // coalesce consecutive rows into one block
    while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
    const hsize_t start[2] = {static_cast<hsize_t>(rows[i]), 0};
    const hsize_t count[2] = {static_cast<hsize_t>(j - i), w};
    h5::check_status(
        H5Sselect_hyperslab(file_space.get(), first ? H5S_SELECT_SET : H5S_SELECT_OR, start, nullptr, count, nullptr),
        "select rows");
    first = false;
    i = j;
  }
  const hsize_t mem_dims[2] = {static_cast<hsize_t>(rows.size()), w};
  h5::Dataspace mem_space(h5::check(H5Screate_simple(2, mem_dims, nullptr), "H5Screate_simple"));
  h5::check_status(H5Dread(ds, H5T_NATIVE_INT32, mem_space.get(), file_space.get(), H5P_DEFAULT, out), "read rows");
}

void check_tokens(const SpaceData& s, int domain, std::span<const std::int32_t> tokens) {
  for (std::int32_t t : tokens)
    if (t < 0 || t >= s.vocab)
      bad(s.path, fmt::format("domain '{}' holds token id {} outside [0, {}): the file is corrupt, rebuild it",
                              s.domains[static_cast<size_t>(domain)].name, t, s.vocab));
}

}  // namespace

DomainSpace DomainSpace::open(const std::string& path) {
  auto s = std::make_unique<Impl>();
  s->path = path;
  if (!std::filesystem::exists(path))
    throw DataError(
        fmt::format("domain space '{}' does not exist: build it with `dma_prepare demo --out {}`", path, path));
  if (!h5::is_hdf5(path)) bad(path, "not an HDF5 file: build the domain space with dma_prepare");
  try {
    h5::SilenceErrors quiet;
    s->file = h5::File(h5::check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open"));
    read_root(*s);
    read_domains(*s);
    s->bench = read_bench(path, s->file.get());
  } catch (const Hdf5Error& e) {
    bad(path, e.what());
  }
  return DomainSpace(std::move(s));
}

DomainSpace::DomainSpace(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DomainSpace::~DomainSpace() = default;
DomainSpace::DomainSpace(DomainSpace&&) noexcept = default;
DomainSpace& DomainSpace::operator=(DomainSpace&&) noexcept = default;

const std::string& DomainSpace::path() const { return impl_->path; }
int DomainSpace::vocab_size() const { return impl_->vocab; }
int DomainSpace::seq_len() const { return impl_->seq_len; }
const std::string& DomainSpace::tokenizer() const { return impl_->tokenizer; }

const TokenizerModel& DomainSpace::tokenizer_model() const { return impl_->tokenizer_model; }
int DomainSpace::num_domains() const { return static_cast<int>(impl_->domains.size()); }
const std::vector<DomainInfo>& DomainSpace::domains() const { return impl_->domains; }
const std::vector<MathProblem>& DomainSpace::math_benchmark() const { return impl_->bench; }

std::vector<std::string> DomainSpace::domain_names() const {
  std::vector<std::string> out;
  for (const auto& d : impl_->domains) out.push_back(d.name);
  return out;
}

std::vector<Field> DomainSpace::fields() const {
  std::vector<Field> out;
  for (const auto& d : impl_->domains) out.push_back(d.field);
  return out;
}

std::vector<double> DomainSpace::token_shares() const {
  double total = 0;
  for (const auto& d : impl_->domains) total += static_cast<double>(d.train_rows);
  std::vector<double> out;
  for (const auto& d : impl_->domains) out.push_back(static_cast<double>(d.train_rows) / total);
  return out;
}

std::vector<int> DomainSpace::domains_of(Field f) const {
  std::vector<int> out;
  for (int i = 0; i < num_domains(); ++i)
    if (impl_->domains[static_cast<size_t>(i)].field == f) out.push_back(i);
  return out;
}

void DomainSpace::read_train_rows(int domain, std::span<const std::int64_t> rows, std::span<std::int32_t> out) const {
  if (domain < 0 || domain >= num_domains())
    throw DataError(fmt::format("domain index {} is out of range [0, {})", domain, num_domains()));
  const auto& info = impl_->domains[static_cast<size_t>(domain)];
  const size_t width = static_cast<size_t>(row_width());
  if (out.size() != rows.size() * width)
    throw DataError(fmt::format("read_train_rows: output holds {} tokens, {} rows need {}", out.size(), rows.size(),
                                rows.size() * width));
  if (rows.empty()) return;
  // HDF5 returns a selection in file order with duplicates merged: read the sorted unique
  // rows, then place them in the order asked for.
  std::vector<std::int64_t> unique(rows.begin(), rows.end());
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  if (unique.front() < 0 || unique.back() >= info.train_rows)
    throw DataError(fmt::format("domain '{}': train row {} is out of range [0, {})", info.name,
                                unique.front() < 0 ? unique.front() : unique.back(), info.train_rows));
  std::vector<std::int32_t> buf(unique.size() * width);  // (unique rows, width)
  read_sorted_rows(impl_->train[static_cast<size_t>(domain)].get(), unique, row_width(), buf.data());
  check_tokens(*impl_, domain, buf);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto k = static_cast<size_t>(std::lower_bound(unique.begin(), unique.end(), rows[i]) - unique.begin());
    std::copy_n(buf.begin() + static_cast<std::ptrdiff_t>(k * width), width,
                out.begin() + static_cast<std::ptrdiff_t>(i * width));
  }
}

void DomainSpace::read_eval_rows(int domain, std::int64_t start, std::int64_t count,
                                 std::span<std::int32_t> out) const {
  if (domain < 0 || domain >= num_domains())
    throw DataError(fmt::format("domain index {} is out of range [0, {})", domain, num_domains()));
  const auto& info = impl_->domains[static_cast<size_t>(domain)];
  if (start < 0 || count < 0 || start + count > info.eval_rows)
    throw DataError(fmt::format("domain '{}': eval rows [{}, {}) are out of range [0, {})", info.name, start,
                                start + count, info.eval_rows));
  if (out.size() != static_cast<size_t>(count) * static_cast<size_t>(row_width()))
    throw DataError(
        fmt::format("read_eval_rows: output holds {} tokens, {} rows need {}", out.size(), count, count * row_width()));
  if (count == 0) return;
  std::vector<std::int64_t> rows(static_cast<size_t>(count));
  std::iota(rows.begin(), rows.end(), start);
  read_sorted_rows(impl_->eval[static_cast<size_t>(domain)].get(), rows, row_width(), out.data());
  check_tokens(*impl_, domain, out);
}

std::uint64_t DomainSpace::fingerprint() const {
  // FNV-1a over what a model depends on; stable across platforms (fixed-width fields).
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  auto mix_int = [&mix](std::int64_t v) { mix(&v, sizeof v); };
  mix_int(impl_->vocab);
  mix_int(impl_->seq_len);
  for (const auto& d : impl_->domains) {
    mix_int(static_cast<std::int64_t>(d.name.size()));
    mix(d.name.data(), d.name.size());
    mix_int(static_cast<std::int64_t>(d.field));
    mix_int(d.train_rows);
    mix_int(d.eval_rows);
  }
  return h;
}

}  // namespace dma
