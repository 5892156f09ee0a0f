// Domain-space writer. Writes into "<path>.partial" and renames on close, so a failed
// prepare never leaves a half-written file at the output path. No timestamps are stored
// (object time tracking off), so the same input gives a byte-identical file.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/domain_space.hpp"
#include "dma/error.hpp"
#include "layout.hpp"

namespace dma {
namespace fs = std::filesystem;

namespace {

struct WriterData {
  std::string path, tmp_path;
  int vocab = 0, width = 0;
  hid_t file_type = -1;  // a predefined type: never closed
  hsize_t chunk_rows = 1;
  h5::File file;
  h5::Group domains;
  std::vector<std::string> order;
  std::set<std::string> names;
  // The domain being written (between begin_domain and end_domain).
  bool open = false;
  std::string name;
  h5::Group group;
  h5::Dataset train, eval;
  std::int64_t train_rows = 0, eval_rows = 0;
  std::vector<MathProblem> bench;
  bool closed = false;
};

}  // namespace

struct DomainSpaceWriter::Impl : WriterData {};

namespace {

/// Smallest stored integer type that holds every id below `vocab` (readers convert to int32).
hid_t token_type(int vocab) {
  if (vocab <= 256) return H5T_STD_U8LE;
  if (vocab <= 65536) return H5T_STD_U16LE;
  return H5T_STD_I32LE;
}

h5::PropList no_times(hid_t cls) {
  h5::PropList p(h5::check(H5Pcreate(cls), "H5Pcreate"));
  h5::check_status(H5Pset_obj_track_times(p.get(), false), "H5Pset_obj_track_times");
  return p;
}

h5::Group make_group(hid_t loc, const std::string& name) {
  auto gcpl = no_times(H5P_GROUP_CREATE);
  return h5::Group(
      h5::check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), "create group " + name));
}

h5::Dataset make_rows_dataset(const WriterData& w, const char* name) {
  const hsize_t dims[2] = {0, static_cast<hsize_t>(w.width)};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(w.width)};
  const hsize_t chunk[2] = {w.chunk_rows, static_cast<hsize_t>(w.width)};
  h5::Dataspace space(h5::check(H5Screate_simple(2, dims, max_dims), "H5Screate_simple"));
  auto dcpl = no_times(H5P_DATASET_CREATE);
  h5::check_status(H5Pset_chunk(dcpl.get(), 2, chunk), "H5Pset_chunk");
  return h5::Dataset(
      h5::check(H5Dcreate2(w.group.get(), name, w.file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                fmt::format("create {}/{}", w.name, name)));
}

void check_name(const std::string& name) {
  const bool ok = !name.empty() && name != "." && name != ".." && name.size() <= 200 &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '+';
                  });
  if (!ok) throw DataError(fmt::format("domain name '{}' is not valid: use letters, digits and _ - . + only", name));
}

void check_rows(const WriterData& w, const std::string& name, const std::string& split, std::int64_t first_row,
                std::span<const std::int32_t> rows) {
  if (rows.size() % static_cast<size_t>(w.width) != 0)
    throw DataError(fmt::format("domain '{}' {}: {} tokens is not a whole number of rows of seq_len+1 = {}", name,
                                split, rows.size(), w.width));
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i] < 0 || rows[i] >= w.vocab)
      throw DataError(fmt::format(
          "domain '{}' {} row {} holds token id {} outside [0, {}): fix the data or raise --vocab", name, split,
          first_row + static_cast<std::int64_t>(i / static_cast<size_t>(w.width)), rows[i], w.vocab));
}

void append_rows(WriterData& w, hid_t ds, std::int64_t& count, const std::string& split,
                 std::span<const std::int32_t> rows) {
  if (!w.open) throw DataError("append_" + split + " called outside begin_domain/end_domain");
  check_rows(w, w.name, split, count, rows);
  const hsize_t n = rows.size() / static_cast<size_t>(w.width);
  if (n == 0) return;
  const hsize_t new_dims[2] = {static_cast<hsize_t>(count) + n, static_cast<hsize_t>(w.width)};
  h5::check_status(H5Dset_extent(ds, new_dims), "extend " + w.name + "/" + split);
  h5::Dataspace file_space(h5::check(H5Dget_space(ds), "H5Dget_space"));
  const hsize_t start[2] = {static_cast<hsize_t>(count), 0};
  const hsize_t block[2] = {n, static_cast<hsize_t>(w.width)};
  h5::check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, block, nullptr), "select");
  h5::Dataspace mem_space(h5::check(H5Screate_simple(2, block, nullptr), "H5Screate_simple"));
  h5::check_status(H5Dwrite(ds, H5T_NATIVE_INT32, mem_space.get(), file_space.get(), H5P_DEFAULT, rows.data()),
                   "write " + w.name + "/" + split);
  count += static_cast<std::int64_t>(n);
}

void write_string_dataset(hid_t loc, const char* name, const std::vector<std::string>& values) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size() + 1);
  h5::Datatype type(h5::check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  h5::check_status(H5Tset_size(type.get(), width), "H5Tset_size");
  h5::check_status(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), "H5Tset_strpad");
  const hsize_t n = values.size();
  h5::Dataspace space(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  auto dcpl = no_times(H5P_DATASET_CREATE);
  h5::Dataset ds(h5::check(H5Dcreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                           std::string("create benchmark ") + name));
  std::string buf(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(buf.data() + i * width, values[i].data(), values[i].size());
  if (n > 0)
    h5::check_status(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "write benchmark");
}

void write_bench(WriterData& w) {
  if (w.bench.empty()) return;
  auto bench = make_group(w.file.get(), "benchmarks");
  auto math = make_group(bench.get(), "math");
  std::vector<std::string> prompts, answers;
  for (const auto& p : w.bench) prompts.push_back(p.prompt), answers.push_back(p.answer);
  write_string_dataset(math.get(), "prompts", prompts);
  write_string_dataset(math.get(), "answers", answers);
  h5::write_attr_string(math.get(), "kind", "exact-match");
}

}  // namespace

DomainSpaceWriter::DomainSpaceWriter(const std::string& path, int vocab_size, int seq_len, const std::string& tokenizer,
                                     bool force)
    : impl_(std::make_unique<Impl>()) {
  auto& w = *impl_;
  if (vocab_size < 2) throw DataError(fmt::format("vocab size {} is too small: use at least 2", vocab_size));
  if (seq_len < 1 || seq_len > layout::kMaxSeqLen)
    throw DataError(fmt::format("seq_len {} is out of range: use a value in [1, {}]", seq_len, layout::kMaxSeqLen));
  if (fs::exists(path) && !force)
    throw DataError(fmt::format("output '{}' exists: pass --force to overwrite it or choose another --out", path));
  if (fs::exists(path) && fs::is_directory(path))
    throw DataError(fmt::format("output '{}' is a directory: give a file path to --out", path));
  w.path = path;
  w.tmp_path = path + ".partial";
  w.vocab = vocab_size;
  w.width = seq_len + 1;
  w.file_type = token_type(vocab_size);
  const auto row_bytes = static_cast<hsize_t>(w.width) * H5Tget_size(w.file_type);
  // ~8 KiB chunks: a random row costs one small chunk read, the index stays modest.
  w.chunk_rows = std::clamp<hsize_t>(8192 / row_bytes, 1, 4096);
  const auto parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) throw DataError(fmt::format("cannot create directory '{}' for --out: {}", parent.string(), ec.message()));
  auto fcpl = no_times(H5P_FILE_CREATE);
  w.file = h5::File(H5Fcreate(w.tmp_path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT));
  if (!w.file) throw DataError(fmt::format("cannot create '{}': check that its directory is writable", w.tmp_path));
  h5::write_attr_string(w.file.get(), layout::kFormat, layout::kFormatName);
  h5::write_attr_int(w.file.get(), layout::kFormatVersion, layout::kVersion);
  h5::write_attr_int(w.file.get(), layout::kVocab, vocab_size);
  h5::write_attr_int(w.file.get(), layout::kSeqLen, seq_len);
  h5::write_attr_string(w.file.get(), layout::kTokenizer, tokenizer);
  w.domains = make_group(w.file.get(), "domains");
}

DomainSpaceWriter::~DomainSpaceWriter() {
  if (!impl_ || impl_->closed) return;
  // Abandoned (an error on the way): drop the partial file, never throw.
  impl_->train.reset();
  impl_->eval.reset();
  impl_->group.reset();
  impl_->domains.reset();
  impl_->file.reset();
  std::error_code ec;
  fs::remove(impl_->tmp_path, ec);
}

void DomainSpaceWriter::begin_domain(const std::string& name, Field field, const std::string& provenance) {
  auto& w = *impl_;
  if (w.closed) throw DataError("begin_domain after close");
  if (w.open)
    throw DataError(fmt::format("begin_domain('{}') while domain '{}' is open: call end_domain first", name, w.name));
  check_name(name);
  if (w.names.count(name))
    throw DataError(fmt::format("duplicate domain name '{}': give each domain a unique name", name));
  w.name = name;
  w.group = make_group(w.domains.get(), name);
  h5::write_attr_string(w.group.get(), layout::kField, std::string(field_name(field)));
  h5::write_attr_string(w.group.get(), layout::kProvenance, provenance);
  w.train = make_rows_dataset(w, "train");
  w.eval = make_rows_dataset(w, "eval");
  w.train_rows = w.eval_rows = 0;
  w.open = true;
  w.names.insert(name);
  w.order.push_back(name);
}

void DomainSpaceWriter::append_train(std::span<const std::int32_t> rows) {
  append_rows(*impl_, impl_->train.get(), impl_->train_rows, "train", rows);
}

void DomainSpaceWriter::append_eval(std::span<const std::int32_t> rows) {
  append_rows(*impl_, impl_->eval.get(), impl_->eval_rows, "eval", rows);
}

void DomainSpaceWriter::end_domain() {
  auto& w = *impl_;
  if (!w.open) throw DataError("end_domain without begin_domain");
  for (auto [split, rows] : {std::pair{"train", w.train_rows}, std::pair{"eval", w.eval_rows}})
    if (rows == 0)
      throw DataError(
          fmt::format("domain '{}' has an empty {} split: give it more data (at least two rows of {} tokens)", w.name,
                      split, w.width));
  w.train.reset();
  w.eval.reset();
  w.group.reset();
  w.open = false;
}

void DomainSpaceWriter::add_domain(const std::string& name, Field field, std::span<const std::int32_t> train,
                                   std::span<const std::int32_t> eval, const std::string& provenance) {
  auto& w = *impl_;
  // Check everything before creating the group, so the message names the real problem.
  check_name(name);
  if (w.names.count(name))
    throw DataError(fmt::format("duplicate domain name '{}': give each domain a unique name", name));
  if (train.empty() || eval.empty())
    throw DataError(fmt::format("domain '{}' has an empty {} split: give it more data (at least two rows of {} tokens)",
                                name, train.empty() ? "train" : "eval", w.width));
  check_rows(w, name, "train", 0, train);
  check_rows(w, name, "eval", 0, eval);
  begin_domain(name, field, provenance);
  append_train(train);
  append_eval(eval);
  end_domain();
}

void DomainSpaceWriter::set_math_benchmark(const std::vector<MathProblem>& problems) { impl_->bench = problems; }

void DomainSpaceWriter::set_tokenizer_model(const TokenizerModel& model) {
  h5::write_attr_string(impl_->file.get(), layout::kTokenizerModel, model.path);
  h5::write_attr_string(impl_->file.get(), layout::kTokenizerModelSha256, model.sha256);
}

void DomainSpaceWriter::close() {
  auto& w = *impl_;
  if (w.closed) return;
  if (w.open) throw DataError(fmt::format("close() while domain '{}' is open: call end_domain first", w.name));
  if (w.order.empty()) throw DataError("the domain space has no domains: add at least one");
  h5::write_attr_strings(w.file.get(), layout::kDomainOrder, w.order);
  write_bench(w);
  w.domains.reset();
  h5::check_status(H5Fflush(w.file.get(), H5F_SCOPE_GLOBAL), "flush " + w.tmp_path);
  w.file.reset();  // every object is closed by now, so this really closes the file
  std::error_code ec;
  fs::rename(w.tmp_path, w.path, ec);
  if (ec) throw DataError(fmt::format("cannot move '{}' to '{}': {}", w.tmp_path, w.path, ec.message()));
  w.closed = true;
}

/// Byte-level tokenizer: token = byte value.
namespace bytes_tokenizer {

std::vector<std::int32_t> encode(std::string_view text) {
  std::vector<std::int32_t> out(text.size());
  std::transform(text.begin(), text.end(), out.begin(), [](char c) { return static_cast<unsigned char>(c); });
  return out;
}

std::string decode(std::span<const std::int32_t> tokens) {
  std::string out(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= kVocab)
      throw DataError(fmt::format("token id {} is not a byte: the byte tokenizer decodes ids in [0, 256)", tokens[i]));
    out[i] = static_cast<char>(static_cast<unsigned char>(tokens[i]));
  }
  return out;
}

}  // namespace bytes_tokenizer
}  // namespace dma
