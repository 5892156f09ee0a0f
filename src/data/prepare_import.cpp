// `dma_prepare import`: existing token shards, streamed in pieces (memory does not grow with
// the corpus). Three layouts: raw little-endian uint16/uint32 `.bin` token streams and
// Megatron-LM `.bin`/`.idx` pairs (documents in index order, joined into one stream and cut
// into rows here, as text is), and the paper authors' `<domain>/*.hdf5` shards, each a
// dataset `train` of [rows, seq_len+1] integers. A first pass checks every shard's shape and
// type before anything is written; the second pass copies and checks token ids.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "dma/detail/h5.hpp"
#include "dma/error.hpp"
#include "dma/prepare.hpp"
#include "dma/progress.hpp"
#include "dma/seed.hpp"
#include "megatron_index.hpp"
#include "prepare_common.hpp"

namespace dma {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kPieceRows = 4096;

struct Shard {
  fs::path path;
  std::int64_t units = 0;  // tokens (.bin) or rows (hdf5)
};

struct PlannedDomain {
  DomainSpec spec;
  std::vector<Shard> shards;
  std::int64_t rows = 0;
};

int token_bytes(ImportFormat f) { return f == ImportFormat::kBin16 ? 2 : 4; }

fs::path index_of(const fs::path& bin) { return fs::path(bin).replace_extension(".idx"); }

std::vector<Shard> plan_megatron(const DomainSpec& d, const ImportOptions& o) {
  std::vector<Shard> out;
  for (const auto& f : prep::list_files(d, {".bin"}, "Megatron .bin/.idx pairs")) {
    if (!fs::exists(index_of(f)))
      throw DataError(
          fmt::format("'{}' has no index '{}' beside it: --format megatron reads .bin/.idx pairs (raw token "
                      "streams are bin16 or bin32)",
                      f.string(), index_of(f).string()));
    const prep::MegatronDataset data(f);
    out.push_back({f, data.tokens() + (o.eod >= 0 ? data.documents() : 0)});
  }
  return out;
}

std::vector<Shard> plan_bin(const DomainSpec& d, const ImportOptions& o) {
  std::vector<Shard> out;
  const auto elem = static_cast<std::uintmax_t>(token_bytes(o.format));
  for (const auto& f : prep::list_files(d, {".bin"}, ".bin token files")) {
    if (fs::exists(index_of(f)))
      throw DataError(
          fmt::format("shard '{}' has a Megatron index '{}' beside it: use --format megatron, which reads its "
                      "dtype and document boundaries",
                      f.string(), index_of(f).string()));
    const auto size = fs::file_size(f);
    if (size % elem != 0)
      throw DataError(fmt::format("shard '{}' has {} bytes, not a whole number of {}-byte tokens: check --format",
                                  f.string(), size, elem));
    out.push_back({f, static_cast<std::int64_t>(size / elem)});
  }
  return out;
}

h5::Dataset open_train(const fs::path& f, h5::File& file) {
  if (!h5::is_hdf5(f.string()))
    throw DataError(fmt::format("shard '{}' is not an HDF5 file: remove it or fix it", f.string()));
  h5::SilenceErrors quiet;
  file = h5::File(H5Fopen(f.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file) throw DataError(fmt::format("cannot open shard '{}': {}", f.string(), h5::error_stack()));
  if (!h5::exists(file.get(), "train"))
    throw DataError(
        fmt::format("shard '{}' has no dataset 'train': each shard needs a 2-D integer dataset 'train'", f.string()));
  return h5::Dataset(H5Dopen2(file.get(), "train", H5P_DEFAULT));
}

std::int64_t check_hdf5_shard(const fs::path& f, const ImportOptions& o) {
  h5::File file;
  auto ds = open_train(f, file);
  if (!ds) throw DataError(fmt::format("shard '{}': 'train' is not a dataset", f.string()));
  h5::Datatype type(H5Dget_type(ds.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    throw DataError(
        fmt::format("shard '{}' dataset 'train' has a non-integer dtype: token ids must be integers", f.string()));
  const auto dims = h5::shape(ds.get());
  if (dims.size() != 2)
    throw DataError(
        fmt::format("shard '{}' dataset 'train' has rank {}: expected 2 ([rows, seq_len+1])", f.string(), dims.size()));
  if (dims[1] != static_cast<hsize_t>(o.seq_len + 1))
    throw DataError(fmt::format("shard '{}' has rows of {} tokens but --seq-len {} needs {}: pass --seq-len {}",
                                f.string(), dims[1], o.seq_len, o.seq_len + 1, dims[1] - 1));
  return static_cast<std::int64_t>(dims[0]);
}

std::vector<PlannedDomain> plan(const ImportOptions& o, const std::vector<DomainSpec>& specs) {
  std::vector<PlannedDomain> out;
  for (const auto& d : specs) {
    PlannedDomain p{d, {}, 0};
    if (o.format == ImportFormat::kHdf5Shards) {
      for (const auto& f : prep::list_files(d, {".hdf5", ".h5"}, ".hdf5 shards"))
        p.shards.push_back({f, check_hdf5_shard(f, o)});
      for (const auto& s : p.shards) p.rows += s.units;
    } else {
      p.shards = o.format == ImportFormat::kMegatron ? plan_megatron(d, o) : plan_bin(d, o);
      std::int64_t tokens = 0;
      for (const auto& s : p.shards) tokens += s.units;
      p.rows = prep::rows_in(tokens, o.seq_len);
    }
    if (p.rows < 2)
      throw DataError(
          fmt::format("domain '{}' holds {} rows of {} tokens in '{}': it needs at least 2 (one train, one eval)",
                      d.name, p.rows, o.seq_len + 1, d.dir));
    out.push_back(std::move(p));
  }
  return out;
}

void check_ids(std::span<const std::int32_t> tokens, int vocab, const fs::path& shard, std::int64_t first_token) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      throw DataError(
          fmt::format("shard '{}' holds token id {} at token {}, not below --vocab {}: raise --vocab or fix the shard",
                      shard.string(), tokens[i], first_token + static_cast<std::int64_t>(i), vocab));
}

template <class T>
void copy_bin(const Shard& s, const ImportOptions& o, prep::RowCutter& cutter, Progress& progress, std::int64_t& done) {
  std::ifstream in(s.path, std::ios::binary);
  if (!in) throw DataError(fmt::format("cannot read shard '{}': check its permissions", s.path.string()));
  std::vector<T> raw(1 << 20);
  std::vector<std::int32_t> tokens;
  for (std::int64_t read = 0; read < s.units;) {
    const auto n = std::min<std::int64_t>(static_cast<std::int64_t>(raw.size()), s.units - read);
    in.read(reinterpret_cast<char*>(raw.data()),
            static_cast<std::streamsize>(n * static_cast<std::int64_t>(sizeof(T))));
    if (in.gcount() != static_cast<std::streamsize>(n * static_cast<std::int64_t>(sizeof(T))))
      throw DataError(fmt::format("shard '{}' ended early: was it changed while importing?", s.path.string()));
    tokens.resize(static_cast<size_t>(n));
    // Ids above INT32_MAX become negative here and fail the check below.
    for (std::int64_t i = 0; i < n; ++i)
      tokens[static_cast<size_t>(i)] = static_cast<std::int32_t>(raw[static_cast<size_t>(i)]);
    check_ids(tokens, o.vocab_size, s.path, read);
    cutter.feed(tokens);
    read += n;
    progress.update(done += n / o.seq_len);
  }
}

void copy_megatron(const Shard& s, const ImportOptions& o, prep::RowCutter& cutter, Progress& progress,
                   std::int64_t& done) {
  const prep::MegatronDataset data(s.path);
  std::vector<std::int32_t> tokens;
  std::int64_t read = 0;
  for (std::int64_t doc = 0; doc < data.documents(); ++doc) {
    data.read_document(doc, tokens);
    if (o.eod >= 0) tokens.push_back(static_cast<std::int32_t>(o.eod));
    check_ids(tokens, o.vocab_size, s.path, read);
    cutter.feed(tokens);
    read += static_cast<std::int64_t>(tokens.size());
    progress.update(done + read / o.seq_len);
  }
  done += read / o.seq_len;
}

void copy_hdf5(const Shard& s, const ImportOptions& o, prep::SplitRouter& router, Progress& progress,
               std::int64_t& done) {
  h5::File file;
  auto ds = open_train(s.path, file);
  const auto width = static_cast<hsize_t>(o.seq_len + 1);
  h5::Dataspace file_space(h5::check(H5Dget_space(ds.get()), "H5Dget_space"));
  std::vector<std::int32_t> buf;
  for (std::int64_t row = 0; row < s.units; row += kPieceRows) {
    const hsize_t start[2] = {static_cast<hsize_t>(row), 0};
    const hsize_t count[2] = {static_cast<hsize_t>(std::min(kPieceRows, s.units - row)), width};
    h5::check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), "select");
    h5::Dataspace mem(h5::check(H5Screate_simple(2, count, nullptr), "H5Screate_simple"));
    buf.resize(count[0] * width);
    if (H5Dread(ds.get(), H5T_NATIVE_INT32, mem.get(), file_space.get(), H5P_DEFAULT, buf.data()) < 0)
      throw DataError(fmt::format("cannot read shard '{}': {}", s.path.string(), h5::error_stack()));
    check_ids(buf, o.vocab_size, s.path, row * static_cast<std::int64_t>(width));
    for (hsize_t r = 0; r < count[0]; ++r) router.add(std::span(buf).subspan(r * width, width));
    progress.update(done += static_cast<std::int64_t>(count[0]));
  }
}

std::vector<DomainSpec> input_domains(const ImportOptions& o) {
  std::vector<DomainSpec> out;
  if (o.input.empty()) {
    if (!o.targets.empty()) throw DataError("--target names domains of --input: give --input DIR too");
    return out;
  }
  if (!fs::is_directory(o.input))
    throw DataError(
        fmt::format("input directory '{}' does not exist: give a directory with one subdirectory per domain", o.input));
  for (const auto& e : fs::directory_iterator(o.input))
    if (e.is_directory() && e.path().filename().string()[0] != '.')
      out.push_back({e.path().filename().string(), e.path().string(), Field::kSource});
  std::sort(out.begin(), out.end(), [](const DomainSpec& a, const DomainSpec& b) { return a.name < b.name; });
  if (out.empty())
    throw DataError(
        fmt::format("input directory '{}' has no domain subdirectories: put each domain's shards "
                    "in <input>/<domain>/",
                    o.input));
  for (const auto& t : o.targets) {
    auto it = std::find_if(out.begin(), out.end(), [&t](const DomainSpec& d) { return d.name == t; });
    if (it == out.end())
      throw DataError(fmt::format("--target '{}' is not a subdirectory of '{}': check the name", t, o.input));
    it->field = Field::kTarget;
  }
  return out;
}

}  // namespace

ImportFormat parse_import_format(const std::string& name) {
  if (name == "bin16") return ImportFormat::kBin16;
  if (name == "bin32") return ImportFormat::kBin32;
  if (name == "hdf5-shards") return ImportFormat::kHdf5Shards;
  if (name == "megatron") return ImportFormat::kMegatron;
  throw DataError(fmt::format("--format '{}' is not known: use bin16, bin32, hdf5-shards or megatron", name));
}

PrepareSummary prepare_import(const ImportOptions& o) {
  if (o.seq_len == 0) throw DataError("--seq-len is required for import: give the row length minus one");
  if (o.vocab_size < 2) throw DataError("--vocab is required for import: give the tokenizer's vocabulary size (>= 2)");
  prep::check_sizes(o.seq_len, o.eval_fraction, o.max_eval_rows);
  if (o.eod >= 0 && o.format != ImportFormat::kMegatron)
    throw DataError("--eod marks Megatron documents' ends: use it with --format megatron only");
  if (o.eod >= o.vocab_size)
    throw DataError(
        fmt::format("--eod {} is not below --vocab {}: give the tokenizer's end-of-document id", o.eod, o.vocab_size));
  auto specs = input_domains(o);
  const auto explicit_specs = (o.manifest.empty() && o.domains.empty()) ? std::vector<DomainSpec>{}
                                                                        : prep::gather_domains(o.manifest, o.domains);
  specs.insert(specs.end(), explicit_specs.begin(), explicit_specs.end());
  if (specs.empty()) throw DataError("no domains given: pass --input DIR, --domain name=dir:field or --manifest FILE");
  const auto domains = plan(o, prep::gather_domains("", specs));
  std::int64_t total = 0, done = 0;
  for (const auto& d : domains) total += d.rows;
  DomainSpaceWriter w(o.out, o.vocab_size, o.seq_len, o.tokenizer, o.force);
  PrepareSummary sum{o.out, o.vocab_size, o.seq_len, "", {}, 0, 0};
  Progress progress("import", total, "rows");
  for (const auto& d : domains) {
    w.begin_domain(d.spec.name, d.spec.field, fmt::format("imported {} shards from '{}'", d.shards.size(), d.spec.dir));
    prep::SplitRouter router(w, o.seq_len + 1, d.rows, o.eval_fraction, o.max_eval_rows, fnv1a64(d.spec.name));
    prep::RowCutter cutter(o.seq_len, router);
    for (const auto& s : d.shards) {
      if (o.format == ImportFormat::kBin16)
        copy_bin<std::uint16_t>(s, o, cutter, progress, done);
      else if (o.format == ImportFormat::kBin32)
        copy_bin<std::uint32_t>(s, o, cutter, progress, done);
      else if (o.format == ImportFormat::kMegatron)
        copy_megatron(s, o, cutter, progress, done);
      else
        copy_hdf5(s, o, router, progress, done);
    }
    const auto [train, eval] = router.finish();
    w.end_domain();
    sum.domains.push_back({d.spec.name, d.spec.field, train, eval});
  }
  w.close();
  progress.finish();
  return prep::finish_summary(sum);
}

}  // namespace dma
