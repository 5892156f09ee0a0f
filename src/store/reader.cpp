// StoreReader: read-only, SWMR-mode access to a store that may be live, complete or killed.
// Every failure, HDF5's included, leaves as one StoreError line naming the file.
// Shapes: N rows, D domains, O = obs_dim.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/store.hpp"
#include "io.hpp"

namespace dma {

using namespace store_detail;

struct StoreReader::Impl {
  std::string path;
  bool swmr = false;
  StoreHeader header;
  h5::File file;
  Datasets ds;
  std::int64_t num_rows = 0;
  std::vector<EpisodeRecord> episodes;

  void load();
  RowBlock block(std::int64_t start, std::int64_t count, bool with_obs) const;
};

namespace {

/// Runs `fn`, turning HDF5 failures into one StoreError line about `path`.
template <class Fn>
auto guarded(const std::string& path, const std::string& doing, Fn&& fn) {
  h5::SilenceErrors quiet;  // the stack goes into the message instead
  try {
    return fn();
  } catch (const StoreError&) {
    throw;
  } catch (const Error& e) {
    throw StoreError(fmt::format("store '{}' is damaged or unreadable ({}): {}", path, doing, e.what()));
  }
}

void check_is_hdf5(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw StoreError(fmt::format("store '{}' does not exist: check the path (a run writes <run.dir>/store.h5)", path));
  if (!std::filesystem::is_regular_file(path, ec))
    throw StoreError(fmt::format("store '{}' is not a regular file: pass an HDF5 trajectory store", path));
  if (!h5::is_hdf5(path))
    throw StoreError(fmt::format("'{}' is not an HDF5 file (no HDF5 signature): pass a dma trajectory store", path));
}

/// SWMR read first (works on live and killed stores); a plain read-only open for files
/// written without SWMR (e.g. an HDF5 file that is not a store).
h5::File open_read(const std::string& path, bool* swmr) {
  h5::SilenceErrors quiet;
  h5::PropList fapl(make_fapl(false));
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get());
  *swmr = id >= 0;
  if (id >= 0) return h5::File(id);
  const std::string first = h5::error_stack();
  H5Eclear2(H5E_DEFAULT);
  id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id >= 0) return h5::File(id);
  H5Eclear2(H5E_DEFAULT);
  if (first.find("truncated file") != std::string::npos)
    throw StoreError(fmt::format("store '{}' is truncated ({}): restore it from a full copy", path, first));
  if (first.find("already open") != std::string::npos)
    throw StoreError(
        fmt::format("cannot open store '{}': {}: a killed writer left it marked open; run `dma_replay "
                    "repair {}` (or resume the run)",
                    path, first, path));
  throw StoreError(fmt::format("cannot open store '{}': {}: the file is damaged or not a store", path, first));
}

/// A file shorter than its end-of-allocation lost its tail (copied or written partially).
void check_not_truncated(hid_t file, const std::string& path) {
  haddr_t eoa = 0;
  if (H5Fget_eoa(file, &eoa) < 0) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  if (static_cast<haddr_t>(st.st_size) < eoa)
    throw StoreError(fmt::format("store '{}' is truncated ({} bytes on disk, {} expected): restore it from a full copy",
                                 path, st.st_size, eoa));
}

std::vector<Transition> to_transitions(const RowBlock& b, const StoreHeader& h) {
  const std::size_t d = static_cast<std::size_t>(h.num_domains());
  const std::size_t o = static_cast<std::size_t>(h.obs_dim());
  std::vector<Transition> out(static_cast<std::size_t>(b.count));
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto& t = out[i];
    t.episode_id = b.episode_id[i];
    t.step = b.step[i];
    t.observation.assign(b.observations.begin() + i * o, b.observations.begin() + (i + 1) * o);
    t.next_observation.assign(b.next_observations.begin() + i * o, b.next_observations.begin() + (i + 1) * o);
    t.action.assign(b.actions.begin() + i * d, b.actions.begin() + (i + 1) * d);
    t.eval_loss.assign(b.eval_loss.begin() + i * d, b.eval_loss.begin() + (i + 1) * d);
    t.reward = b.rewards[i];
    t.timeout = b.timeouts[i] != 0;
    t.source_score = b.source_score[i];
    t.target_score = b.target_score[i];
    t.math_accuracy = b.math_accuracy[i];
    t.train_tokens = b.train_tokens[i];
    t.wall_seconds = b.wall_seconds[i];
  }
  return out;
}

}  // namespace

void StoreReader::Impl::load() {
  if (swmr) refresh_all(ds);
  const std::int64_t n_eps = common_episodes(ds);
  num_rows = common_rows(ds);
  episodes = read_episode_table(ds, n_eps, header, path);
}

RowBlock StoreReader::Impl::block(std::int64_t start, std::int64_t count, bool with_obs) const {
  if (start < 0 || count < 0 || start + count > num_rows)
    throw StoreError(fmt::format("store '{}': rows [{}, {}) are outside the {} rows it holds", path, start,
                                 start + count, num_rows));
  return store_detail::read_block(ds, header, start, count, with_obs);
}

StoreReader::StoreReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreReader::~StoreReader() = default;
StoreReader::StoreReader(StoreReader&&) noexcept = default;
StoreReader& StoreReader::operator=(StoreReader&&) noexcept = default;

StoreReader StoreReader::open(const std::string& path) {
  check_is_hdf5(path);
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->file = open_read(path, &impl->swmr);
  guarded(path, "reading the header", [&] {
    check_not_truncated(impl->file.get(), path);
    h5::Group root(h5::check(H5Gopen2(impl->file.get(), "/", H5P_DEFAULT), "open /"));
    impl->header = read_header(root.get(), path);
    impl->ds = open_datasets(impl->file.get(), impl->header, path);
    impl->load();
    return 0;
  });
  return StoreReader(std::move(impl));
}

const StoreHeader& StoreReader::header() const { return impl_->header; }
const std::string& StoreReader::path() const { return impl_->path; }
bool StoreReader::swmr() const { return impl_->swmr; }
std::int64_t StoreReader::num_rows() const { return impl_->num_rows; }
const std::vector<EpisodeRecord>& StoreReader::episodes() const { return impl_->episodes; }

void StoreReader::refresh() {
  guarded(impl_->path, "refreshing", [&] {
    impl_->load();
    return 0;
  });
}

RowBlock StoreReader::read_block(std::int64_t start, std::int64_t count, bool with_observations) const {
  return guarded(impl_->path, fmt::format("reading rows {}..{}", start, start + count),
                 [&] { return impl_->block(start, count, with_observations); });
}

std::vector<Transition> StoreReader::read_rows(std::int64_t start, std::int64_t count) const {
  return to_transitions(read_block(start, count, true), impl_->header);
}

std::vector<Transition> StoreReader::read_episode(const EpisodeRecord& episode) const {
  // A live store may show an episode before its rows; only visible rows are returned.
  std::int64_t visible = std::clamp<std::int64_t>(impl_->num_rows - episode.start, 0, episode.length);
  if (episode.status == EpisodeStatus::kRunning) {
    const RowBlock b = read_block(episode.start, visible, false);
    std::int64_t k = 0;
    while (k < visible && b.step[static_cast<std::size_t>(k)] == k) ++k;
    visible = k;
  }
  const RowBlock b = read_block(episode.start, visible, true);
  EpisodeRecord shown = episode;
  shown.length = static_cast<std::int32_t>(visible);
  verify_episode_rows(shown, b, impl_->path);
  return to_transitions(b, impl_->header);
}

void clear_status_flags(const std::string& path) {
  check_is_hdf5(path);
  h5::PropList fapl(make_fapl(true));
  h5::SilenceErrors quiet;
  h5::File file(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!file)
    throw StoreError(
        fmt::format("cannot clear the status flags of '{}': {}: check write permission, and that no "
                    "writer is still running",
                    path, h5::error_stack()));
}

}  // namespace dma
