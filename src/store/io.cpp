#include "io.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::store_detail {
namespace {

constexpr hsize_t kChunkBytes = 16 * 1024;
// The writer touches one row of every running episode per round, spread over many chunks.
// Narrow columns (one number a row): a chunk cache holding a generation's chunks keeps them
// in memory between rounds instead of re-reading them.
constexpr std::size_t kWriterCacheBytes = 8 << 20;
constexpr std::size_t kWriterCacheSlots = 12421;  // a prime, about 100x the chunks it holds
// Wide columns (a row of D or obs_dim numbers): no cache, so HDF5 writes each new row in
// place and nothing else. Cached, a round made every chunk it touched dirty (64 rows of
// which one was new) and the flush rewrote them whole, or, past the cache's size, evicted
// and re-read them: at 1 024 episodes ~16x the round's bytes went to the file.
constexpr std::size_t kWideColumnCacheBytes = 0;

hsize_t chunk_rows(hsize_t row_bytes) {
  return std::clamp<hsize_t>(kChunkBytes / std::max<hsize_t>(row_bytes, 1), 64, 1024);
}

/// A typed fill value buffer for `elem`.
std::array<unsigned char, kPolicyNameBytes> fill_bytes(const ColumnSpec& c) {
  std::array<unsigned char, kPolicyNameBytes> b{};
  switch (c.elem) {
    case Elem::kF32: {
      const float v = static_cast<float>(c.fill);
      std::memcpy(b.data(), &v, 4);
      break;
    }
    case Elem::kI32: {
      const std::int32_t v = static_cast<std::int32_t>(c.fill);
      std::memcpy(b.data(), &v, 4);
      break;
    }
    case Elem::kI64: {
      const std::int64_t v = static_cast<std::int64_t>(c.fill);
      std::memcpy(b.data(), &v, 8);
      break;
    }
    default:
      break;  // unsigned columns and strings fill with zero bytes
  }
  return b;
}

void create_one(hid_t file, const ColumnSpec& c, hsize_t cols) {
  hid_t owned_f = -1, owned_m = -1;
  const hid_t ftype = file_type(c.elem, &owned_f);
  const hid_t mtype = mem_type(c.elem, &owned_m);
  h5::Datatype fguard(owned_f), mguard(owned_m);
  const int rank = (c.width == Width::kOne) ? 1 : 2;
  hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols};
  h5::Dataspace space(h5::check(H5Screate_simple(rank, dims, maxdims), "H5Screate_simple"));
  h5::PropList dcpl(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dcpl)"));
  hsize_t chunk[2] = {chunk_rows(cols * elem_size(c.elem)), cols};
  h5::check_status(H5Pset_chunk(dcpl.get(), rank, chunk), "H5Pset_chunk");
  // No filters, Fletcher32 included: a kill -9 can tear the in-place rewrite of a chunk
  // (Linux stops a long write at a page boundary on SIGKILL). Unfiltered, the torn chunk
  // mixes old and new bytes of the same flushed rows and stays right; with a checksum it
  // would become unreadable and lose flushed rows. Metadata keeps its own checksums.
  const auto fill = fill_bytes(c);
  h5::check_status(H5Pset_fill_value(dcpl.get(), mtype, fill.data()), "H5Pset_fill_value");
  h5::check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_ALLOC), "H5Pset_fill_time");
  h5::Dataset ds(h5::check(H5Dcreate2(file, c.path, ftype, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                           fmt::format("create dataset /{}", c.path)));
}

h5::Dataset open_one(hid_t file, const ColumnSpec& c, hsize_t cols, const std::string& path, hid_t dapl) {
  if (!h5::exists(file, "infos") || !h5::exists(file, "episodes") || !h5::exists(file, c.path))
    throw StoreError(
        fmt::format("store '{}' lacks the dataset /{}: the file is damaged or not a dma store", path, c.path));
  h5::Dataset ds(h5::check(H5Dopen2(file, c.path, dapl), fmt::format("open /{}", c.path)));
  h5::Datatype type(h5::check(H5Dget_type(ds.get()), "H5Dget_type"));
  const auto dims = h5::shape(ds.get());
  const std::size_t want_rank = c.width == Width::kOne ? 1 : 2;
  const bool bad_type =
      H5Tget_class(type.get()) != type_class(c.elem) || (c.elem == Elem::kStr && H5Tis_variable_str(type.get()) > 0);
  if (bad_type || dims.size() != want_rank || (want_rank == 2 && dims[1] != cols))
    throw StoreError(
        fmt::format("store '{}' has a malformed dataset /{} (rank {}, expected width {}): the file is damaged", path,
                    c.path, dims.size(), cols));
  return ds;
}

std::int64_t min_rows(const auto& datasets) {
  std::int64_t n = -1;
  for (const auto& d : datasets) {
    if (!d) continue;  // a column the file predates
    const auto dims = h5::shape(d.get());
    const auto rows = dims.empty() ? 0 : static_cast<std::int64_t>(dims[0]);
    n = n < 0 ? rows : std::min(n, rows);
  }
  return std::max<std::int64_t>(n, 0);
}

void set_rows(hid_t ds, hsize_t rows) {
  auto dims = h5::shape(ds);
  dims[0] = rows;
  h5::check_status(H5Dset_extent(ds, dims.data()), "H5Dset_extent");
}

}  // namespace

void create_datasets(hid_t file, const StoreHeader& h) {
  for (const char* g : {"infos", "episodes"}) {
    h5::Group grp(h5::check(H5Gcreate2(file, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), fmt::format("create /{}", g)));
  }
  for (const auto& c : kTransitionColumns) create_one(file, c, columns(c.width, h));
  for (const auto& c : kEpisodeColumns) create_one(file, c, 1);
}

Datasets open_datasets(hid_t file, const StoreHeader& h, const std::string& path, bool writer) {
  h5::PropList dapl(h5::check(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate(dapl)"));
  h5::PropList wide_dapl(h5::check(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate(dapl)"));
  if (writer) {
    h5::check_status(H5Pset_chunk_cache(dapl.get(), kWriterCacheSlots, kWriterCacheBytes, 1.0), "H5Pset_chunk_cache");
    h5::check_status(H5Pset_chunk_cache(wide_dapl.get(), kWriterCacheSlots, kWideColumnCacheBytes, 1.0),
                     "H5Pset_chunk_cache");
  }
  Datasets ds;
  for (int i = 0; i < kNumTransitionColumns; ++i) {
    const ColumnSpec& c = kTransitionColumns[i];
    ds.rows[i] = open_one(file, c, columns(c.width, h), path, c.width == Width::kOne ? dapl.get() : wide_dapl.get());
  }
  for (int i = 0; i < kNumEpisodeColumns; ++i) {
    if (i >= kFirstTreeColumn && h5::exists(file, "episodes") && !h5::exists(file, kEpisodeColumns[i].path)) continue;
    ds.eps[i] = open_one(file, kEpisodeColumns[i], 1, path, dapl.get());
  }
  return ds;
}

std::int64_t common_rows(const Datasets& ds) { return min_rows(ds.rows); }
std::int64_t common_episodes(const Datasets& ds) { return min_rows(ds.eps); }

void refresh_all(const Datasets& ds) {
  // Episodes first: the writer extends the transition datasets before it adds episodes.
  for (const auto& d : ds.eps)
    if (d) h5::check_status(H5Drefresh(d.get()), "H5Drefresh");
  for (const auto& d : ds.rows) h5::check_status(H5Drefresh(d.get()), "H5Drefresh");
}

void extend_rows(const Datasets& ds, hsize_t rows) {
  for (const auto& d : ds.rows) set_rows(d.get(), rows);
}

void extend_episodes(const Datasets& ds, hsize_t rows) {
  for (const auto& d : ds.eps)
    if (d) set_rows(d.get(), rows);
}

namespace {

/// Selects `rows` (sorted, distinct, each `offset` or more) minus `offset`, whole rows of
/// `cols`, in `space`. Rows at a constant stride form one hyperslab: a round's rows are one
/// per episode block, `horizon` apart, so a whole round selects in one call however many
/// episodes run (OR-ing one hyperslab per row costs time that grows faster than the rows).
void select_rows(hid_t space, hsize_t cols, const std::vector<hsize_t>& rows, hsize_t offset) {
  h5::check_status(H5Sselect_none(space), "H5Sselect_none");
  for (std::size_t i = 0; i < rows.size();) {
    const hsize_t stride = i + 1 < rows.size() ? rows[i + 1] - rows[i] : 1;
    std::size_t j = i + 1;
    while (j < rows.size() && rows[j] - rows[j - 1] == stride) ++j;
    const hsize_t n = j - i;
    hsize_t start[2] = {rows[i] - offset, 0}, step[2] = {stride, 1};
    hsize_t count[2] = {stride == 1 ? 1 : n, 1}, block[2] = {stride == 1 ? n : 1, cols};
    h5::check_status(H5Sselect_hyperslab(space, H5S_SELECT_OR, start, step, count, block), "H5Sselect_hyperslab");
    i = j;
  }
}

}  // namespace

void write_selected(hid_t ds, hsize_t cols, const std::vector<hsize_t>& rows, hid_t mtype, const void* buf) {
  if (rows.empty()) return;
  const int rank = static_cast<int>(h5::shape(ds).size());
  h5::Dataspace fspace(h5::check(H5Dget_space(ds), "H5Dget_space"));
  select_rows(fspace.get(), cols, rows, 0);
  hsize_t mdims[2] = {rows.size(), cols};
  h5::Dataspace mspace(h5::check(H5Screate_simple(rank, mdims, nullptr), "H5Screate_simple"));
  h5::check_status(H5Dwrite(ds, mtype, mspace.get(), fspace.get(), H5P_DEFAULT, buf), "H5Dwrite");
}

void write_selected_from(hid_t ds, hsize_t cols, const std::vector<hsize_t>& rows, hsize_t buf_start, hsize_t buf_rows,
                         hid_t mtype, const void* buf) {
  if (rows.empty()) return;
  if (rows.front() < buf_start || rows.back() >= buf_start + buf_rows)
    throw StoreError(fmt::format("store: rows {}..{} lie outside the held rows {}..{}", rows.front(), rows.back(),
                                 buf_start, buf_start + buf_rows - 1));
  const int rank = static_cast<int>(h5::shape(ds).size());
  h5::Dataspace fspace(h5::check(H5Dget_space(ds), "H5Dget_space"));
  select_rows(fspace.get(), cols, rows, 0);
  hsize_t mdims[2] = {buf_rows, cols};
  h5::Dataspace mspace(h5::check(H5Screate_simple(rank, mdims, nullptr), "H5Screate_simple"));
  select_rows(mspace.get(), cols, rows, buf_start);
  h5::check_status(H5Dwrite(ds, mtype, mspace.get(), fspace.get(), H5P_DEFAULT, buf), "H5Dwrite");
}

void read_range(hid_t ds, hsize_t cols, hsize_t start, hsize_t count, hid_t mtype, void* buf) {
  if (count == 0) return;
  const auto dims = h5::shape(ds);
  const int rank = static_cast<int>(dims.size());
  h5::Dataspace fspace(h5::check(H5Dget_space(ds), "H5Dget_space"));
  hsize_t fstart[2] = {start, 0}, fcount[2] = {count, cols};
  h5::check_status(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, fstart, nullptr, fcount, nullptr),
                   "H5Sselect_hyperslab");
  h5::Dataspace mspace(h5::check(H5Screate_simple(rank, fcount, nullptr), "H5Screate_simple"));
  h5::check_status(H5Dread(ds, mtype, mspace.get(), fspace.get(), H5P_DEFAULT, buf), "H5Dread");
}

namespace {

template <class T>
void read_rows_of(const Datasets& ds, const StoreHeader& h, int col, std::int64_t start, std::int64_t count,
                  std::vector<T>& out) {
  const hsize_t cols = columns(kTransitionColumns[col].width, h);
  out.resize(static_cast<std::size_t>(count) * cols);
  hid_t owned = -1;
  const hid_t mtype = mem_type(kTransitionColumns[col].elem, &owned);
  read_range(ds.rows[col].get(), cols, static_cast<hsize_t>(start), static_cast<hsize_t>(count), mtype, out.data());
}

}  // namespace

RowBlock read_block(const Datasets& ds, const StoreHeader& h, std::int64_t start, std::int64_t count, bool with_obs) {
  RowBlock b;
  b.start = start;
  b.count = count;
  if (with_obs) {
    read_rows_of(ds, h, kObs, start, count, b.observations);
    read_rows_of(ds, h, kNextObs, start, count, b.next_observations);
  }
  read_rows_of(ds, h, kActions, start, count, b.actions);
  read_rows_of(ds, h, kEvalLoss, start, count, b.eval_loss);
  read_rows_of(ds, h, kRewards, start, count, b.rewards);
  read_rows_of(ds, h, kTerminals, start, count, b.terminals);
  read_rows_of(ds, h, kTimeouts, start, count, b.timeouts);
  read_rows_of(ds, h, kEpisodeId, start, count, b.episode_id);
  read_rows_of(ds, h, kStep, start, count, b.step);
  read_rows_of(ds, h, kSourceScore, start, count, b.source_score);
  read_rows_of(ds, h, kTargetScore, start, count, b.target_score);
  read_rows_of(ds, h, kMathAccuracy, start, count, b.math_accuracy);
  read_rows_of(ds, h, kTrainTokens, start, count, b.train_tokens);
  read_rows_of(ds, h, kWallSeconds, start, count, b.wall_seconds);
  return b;
}

namespace {

/// Column `col` of episode rows [0, n); a column the file predates reads as its fill value.
template <class T>
std::vector<T> read_column(const Datasets& ds, int col, std::int64_t n) {
  std::vector<T> out(static_cast<std::size_t>(n), static_cast<T>(kEpisodeColumns[col].fill));
  if (!ds.eps[col]) return out;
  hid_t owned = -1;
  const hid_t mtype = mem_type(kEpisodeColumns[col].elem, &owned);
  read_range(ds.eps[col].get(), 1, 0, static_cast<hsize_t>(n), mtype, out.data());
  return out;
}

}  // namespace

std::vector<EpisodeRecord> read_episode_table(const Datasets& ds, std::int64_t n, const StoreHeader& h,
                                              const std::string& path) {
  const auto id = read_column<std::int64_t>(ds, kEpId, n);
  const auto seed = read_column<std::uint64_t>(ds, kEpSeed, n);
  const auto start = read_column<std::int64_t>(ds, kEpStart, n);
  const auto length = read_column<std::int32_t>(ds, kEpLength, n);
  const auto status = read_column<std::uint8_t>(ds, kEpStatus, n);
  const auto rank = read_column<std::int32_t>(ds, kEpRank, n);
  const auto ret = read_column<float>(ds, kEpReturn, n);
  const auto checksum = read_column<std::uint64_t>(ds, kEpChecksum, n);
  const auto parent = read_column<std::int64_t>(ds, kEpParent, n);
  const auto branch_step = read_column<std::int32_t>(ds, kEpBranchStep, n);
  std::string names(static_cast<std::size_t>(n) * kPolicyNameBytes, '\0');
  {
    hid_t owned = -1;
    const hid_t mtype = mem_type(Elem::kStr, &owned);
    h5::Datatype guard(owned);
    read_range(ds.eps[kEpPolicy].get(), 1, 0, static_cast<hsize_t>(n), mtype, names.data());
  }
  std::vector<EpisodeRecord> out(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto& e = out[i];
    if (status[i] > 3 || length[i] < 0 || length[i] > h.horizon || start[i] < 0 || start[i] % h.horizon != 0)
      throw StoreError(
          fmt::format("store '{}' has a malformed episode row {} (status {}, length {}, start {}): the file is damaged",
                      path, i, status[i], length[i], start[i]));
    e = {id[i],  seed[i],     start[i],  length[i],     static_cast<EpisodeStatus>(status[i]), rank[i], "",
         ret[i], checksum[i], parent[i], branch_step[i]};
    const char* p = names.data() + i * kPolicyNameBytes;
    e.policy.assign(p, strnlen(p, kPolicyNameBytes));
  }
  return out;
}

void write_episodes(const Datasets& ds, const std::vector<std::size_t>& indices,
                    const std::vector<EpisodeRecord>& all) {
  const std::size_t n = indices.size();
  std::vector<hsize_t> rows(indices.begin(), indices.end());
  std::vector<std::int64_t> id(n), start(n), parent(n);
  std::vector<std::uint64_t> seed(n), checksum(n);
  std::vector<std::int32_t> length(n), rank(n), branch_step(n);
  std::vector<std::uint8_t> status(n);
  std::vector<float> ret(n);
  std::vector<char> names(n * kPolicyNameBytes, '\0');
  for (std::size_t k = 0; k < n; ++k) {
    const EpisodeRecord& e = all.at(indices[k]);
    id[k] = e.id, seed[k] = e.seed, start[k] = e.start, length[k] = e.length;
    status[k] = static_cast<std::uint8_t>(e.status), rank[k] = e.rank, ret[k] = e.return_, checksum[k] = e.checksum;
    parent[k] = e.parent, branch_step[k] = e.branch_step;
    std::memcpy(names.data() + k * kPolicyNameBytes, e.policy.data(),
                std::min<std::size_t>(e.policy.size(), kPolicyNameBytes));
  }
  const void* values[kNumEpisodeColumns] = {id.data(),       seed.data(),   start.data(),      length.data(),
                                            status.data(),   rank.data(),   names.data(),      ret.data(),
                                            checksum.data(), parent.data(), branch_step.data()};
  for (int c = 0; c < kNumEpisodeColumns; ++c) {
    if (!ds.eps[c]) continue;  // a store written before the column keeps no trees
    hid_t owned = -1;
    const hid_t mtype = mem_type(kEpisodeColumns[c].elem, &owned);
    h5::Datatype guard(owned);
    write_selected(ds.eps[c].get(), 1, rows, mtype, values[c]);
  }
}

}  // namespace dma::store_detail
