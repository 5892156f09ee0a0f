// StoreWriter: the learner's single HDF5 writer, in SWMR mode (DESIGN §5).
// Shapes: N rows, D domains, O = obs_dim, H = horizon, R = rows in one write() call.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/store.hpp"
#include "io.hpp"

namespace dma {

using namespace store_detail;

namespace {
/// Rows [rows.start, rows.start + rows.count) held in memory, and how many of their episodes run.
struct HeldRows {
  RowBlock rows;
  std::size_t running = 0;
};
}  // namespace

struct StoreWriter::Impl {
  std::string path;
  StoreHeader header;
  h5::File file;
  Datasets ds;
  std::vector<EpisodeRecord> episodes;
  std::unordered_map<std::int64_t, std::size_t> running;  // episode id -> index, running only
  // The rows of each begin_episodes call with running episodes, as written (fill values where
  // none yet), laid out as in the file: ending an episode checksums them without reading the
  // file back, and a round's rows are written from here (see write_columns).
  std::vector<HeldRows> held;
  std::int64_t num_rows = 0;

  HeldRows& held_rows_of(const EpisodeRecord& e);
  void write_columns(const HeldRows& h, const std::vector<hsize_t>& rows);
  void update_lengths(const std::vector<const Transition*>& ts);
  void remember(HeldRows& h, const Transition& t);
  void end(std::span<const EpisodeEnd> ends);
  void open_datasets_after_swmr() {
    ds = open_datasets(file.get(), header, path, /*writer=*/true);
    num_rows = common_rows(ds);
  }
};

namespace {

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void check_header(const StoreHeader& h, const std::string& path) {
  const std::size_t d = h.domain_names.size();
  if (d == 0 || h.domain_fields.size() != d || h.base_eval_loss.size() != d || h.token_shares.size() != d)
    throw StoreError(fmt::format(
        "store '{}': header needs one field, base loss and token share per domain ({} names, {} fields, {} losses, "
        "{} shares)",
        path, d, h.domain_fields.size(), h.base_eval_loss.size(), h.token_shares.size()));
  if (h.obs_layout.empty() || h.horizon <= 0)
    throw StoreError(
        fmt::format("store '{}': header needs obs_layout and a positive horizon (got {} entries, horizon {})", path,
                    h.obs_layout.size(), h.horizon));
}

/// One-line refusal when a resumed store does not match what the run expects.
void check_matches(const StoreHeader& found, const StoreHeader& want, const std::string& path) {
  const std::string fix = "use the run's original config and domain space, or a new run.dir";
  if (found.domain_names != want.domain_names || found.domain_fields != want.domain_fields)
    throw StoreError(fmt::format("cannot resume store '{}': it holds {} domains ({}...) but the run has {} ({}...): {}",
                                 path, found.domain_names.size(), found.domain_names.at(0), want.domain_names.size(),
                                 want.domain_names.empty() ? "" : want.domain_names[0], fix));
  if (found.space_fingerprint != want.space_fingerprint)
    throw StoreError(
        fmt::format("cannot resume store '{}': it was collected on another domain space (fingerprint "
                    "{:016x}, this run {:016x}): {}",
                    path, found.space_fingerprint, want.space_fingerprint, fix));
  if (found.horizon != want.horizon)
    throw StoreError(fmt::format("cannot resume store '{}': its horizon is {} but the run's train.horizon is {}: {}",
                                 path, found.horizon, want.horizon, fix));
  if (found.obs_layout != want.obs_layout)
    throw StoreError(
        fmt::format("cannot resume store '{}': its observation layout ({} entries) differs from this "
                    "dma's ({} entries): {}",
                    path, found.obs_layout.size(), want.obs_layout.size(), fix));
}

/// Closes ended episodes' rows: the last stored row of each is a timeout (truncation),
/// whatever its status, and its episode row gets the checksum of its rows as stored: from
/// `written` when the writer holds them, else read back (episodes a resume finds running).
void seal(const Datasets& ds, const StoreHeader& h, const std::vector<std::size_t>& indices,
          std::vector<EpisodeRecord>& episodes, std::vector<HeldRows>& held) {
  std::vector<hsize_t> last_rows;
  for (const std::size_t index : indices) {
    EpisodeRecord& e = episodes[index];
    e.checksum = 0;
    if (e.length == 0) continue;
    last_rows.push_back(static_cast<hsize_t>(e.start + e.length - 1));
    const auto in = std::find_if(held.begin(), held.end(), [&](const HeldRows& r) {
      return e.start >= r.rows.start && e.start < r.rows.start + r.rows.count;
    });
    if (in != held.end()) {
      const std::int64_t first = e.start - in->rows.start;
      in->rows.timeouts[static_cast<std::size_t>(first + e.length - 1)] = 1;
      e.checksum = episode_checksum(e, in->rows, first);
    } else {
      auto block = read_block(ds, h, e.start, e.length, true);
      block.timeouts.back() = 1;
      e.checksum = episode_checksum(e, block, 0);
    }
  }
  std::sort(last_rows.begin(), last_rows.end());
  write_selected(ds.rows[kTimeouts].get(), 1, last_rows, H5T_NATIVE_UINT8,
                 std::vector<std::uint8_t>(last_rows.size(), 1).data());
  write_episodes(ds, indices, episodes);
}

/// `rows` rows of fill values, the shape read_block gives.
RowBlock empty_rows(const StoreHeader& h, std::int64_t rows) {
  const auto n = static_cast<std::size_t>(rows);
  const auto o = static_cast<std::size_t>(h.obs_dim()), d = static_cast<std::size_t>(h.num_domains());
  RowBlock b;
  b.count = rows;
  b.observations.assign(n * o, static_cast<float>(kTransitionColumns[kObs].fill));
  b.next_observations.assign(n * o, static_cast<float>(kTransitionColumns[kNextObs].fill));
  b.actions.assign(n * d, static_cast<float>(kTransitionColumns[kActions].fill));
  b.eval_loss.assign(n * d, static_cast<float>(kTransitionColumns[kEvalLoss].fill));
  b.rewards.assign(n, static_cast<float>(kTransitionColumns[kRewards].fill));
  b.source_score.assign(n, static_cast<float>(kTransitionColumns[kSourceScore].fill));
  b.target_score.assign(n, static_cast<float>(kTransitionColumns[kTargetScore].fill));
  b.math_accuracy.assign(n, static_cast<float>(kTransitionColumns[kMathAccuracy].fill));
  b.wall_seconds.assign(n, static_cast<float>(kTransitionColumns[kWallSeconds].fill));
  b.terminals.assign(n, static_cast<std::uint8_t>(kTransitionColumns[kTerminals].fill));
  b.timeouts.assign(n, static_cast<std::uint8_t>(kTransitionColumns[kTimeouts].fill));
  b.episode_id.assign(n, static_cast<std::int64_t>(kTransitionColumns[kEpisodeId].fill));
  b.train_tokens.assign(n, static_cast<std::int64_t>(kTransitionColumns[kTrainTokens].fill));
  b.step.assign(n, static_cast<std::int32_t>(kTransitionColumns[kStep].fill));
  return b;
}

/// Rows past a killed episode's flushed length may hold parts of an unflushed round: mark
/// them as never written, so the length is the single truth.
void clear_unflushed_tail(const Datasets& ds, const EpisodeRecord& e, int horizon) {
  std::vector<hsize_t> rows;
  for (std::int64_t r = e.start + e.length; r < e.start + horizon; ++r) rows.push_back(static_cast<hsize_t>(r));
  const std::vector<std::int32_t> steps(rows.size(), -1);
  const std::vector<std::int64_t> ids(rows.size(), -1);
  write_selected(ds.rows[kStep].get(), 1, rows, H5T_NATIVE_INT32, steps.data());
  write_selected(ds.rows[kEpisodeId].get(), 1, rows, H5T_NATIVE_INT64, ids.data());
}

}  // namespace

StoreWriter::StoreWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreWriter::~StoreWriter() = default;
StoreWriter::StoreWriter(StoreWriter&&) noexcept = default;
StoreWriter& StoreWriter::operator=(StoreWriter&&) noexcept = default;

const StoreHeader& StoreWriter::header() const { return impl_->header; }
const std::vector<EpisodeRecord>& StoreWriter::episodes() const { return impl_->episodes; }

StoreWriter StoreWriter::create(const std::string& path, const StoreHeader& header) {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  check_header(header, path);
  if (std::filesystem::exists(path))
    throw StoreError(
        fmt::format("store '{}' already exists: pass --resume to continue it, or choose another run.dir", path));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->header = header;
  if (impl->header.created_utc.empty()) impl->header.created_utc = utc_now();
  h5::PropList fapl(make_fapl(false));
  impl->file = h5::File(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()));
  if (!impl->file)
    throw StoreError(fmt::format("cannot create store '{}': {}: check that the directory exists and is writable", path,
                                 h5::error_stack()));
  try {
    {
      h5::Group root(h5::check(H5Gopen2(impl->file.get(), "/", H5P_DEFAULT), "open /"));
      write_header(root.get(), impl->header);
    }
    create_datasets(impl->file.get(), impl->header);
    // Every object exists now: SWMR forbids creating datasets or attributes afterwards.
    h5::check_status(H5Fstart_swmr_write(impl->file.get()), "H5Fstart_swmr_write");
    impl->open_datasets_after_swmr();
  } catch (const Error& e) {
    // A half-made store would be refused by both create ("exists") and resume ("damaged").
    impl.reset();
    std::error_code ec;
    std::filesystem::remove(path, ec);
    throw StoreError(fmt::format("cannot create store '{}': {}", path, e.what()));
  }
  return StoreWriter(std::move(impl));
}

StoreWriter StoreWriter::resume(const std::string& path, const StoreHeader& expected) {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  // Check with a read-only SWMR open first, so a foreign file is never modified.
  {
    auto reader = StoreReader::open(path);
    check_matches(reader.header(), expected, path);
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  h5::PropList fapl(make_fapl(true));
  impl->file = h5::File(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!impl->file)
    throw StoreError(
        fmt::format("cannot reopen store '{}' for writing: {}: check permissions, and that no other "
                    "process writes it",
                    path, h5::error_stack()));
  {
    h5::Group root(h5::check(H5Gopen2(impl->file.get(), "/", H5P_DEFAULT), "open /"));
    impl->header = read_header(root.get(), path);
  }
  {
    auto ds = open_datasets(impl->file.get(), impl->header, path);
    impl->episodes = read_episode_table(ds, common_episodes(ds), impl->header, path);
    extend_episodes(ds, impl->episodes.size());  // drops a partial row a kill left behind
    // Exactly one block per episode: rows past the last block belong to no episode, and a
    // kill between two extends may have left datasets of different lengths.
    std::int64_t rows = 0;
    for (const auto& e : impl->episodes) rows = std::max(rows, e.start + impl->header.horizon);
    extend_rows(ds, static_cast<hsize_t>(rows));
    std::vector<std::size_t> found_running;
    for (std::size_t i = 0; i < impl->episodes.size(); ++i) {
      auto& e = impl->episodes[i];
      if (e.status != EpisodeStatus::kRunning) continue;
      e.status = EpisodeStatus::kInterrupted;
      clear_unflushed_tail(ds, e, impl->header.horizon);
      found_running.push_back(i);
    }
    seal(ds, impl->header, found_running, impl->episodes, impl->held);
  }
  h5::check_status(H5Fflush(impl->file.get(), H5F_SCOPE_GLOBAL), "H5Fflush");
  h5::check_status(H5Fstart_swmr_write(impl->file.get()), "H5Fstart_swmr_write");
  impl->open_datasets_after_swmr();
  return StoreWriter(std::move(impl));
}

std::vector<std::size_t> StoreWriter::begin_episodes(const std::vector<EpisodeRecord>& episodes) {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  auto& s = *impl_;
  const std::int64_t h = s.header.horizon;
  std::vector<std::size_t> indices;
  // Every refusal comes before the file grows, so a refused call leaves the store as it was.
  for (const auto& e : episodes) {
    if (s.running.count(e.id))
      throw StoreError(
          fmt::format("store '{}': episode {} is already running: end it before starting it again", s.path, e.id));
    require_storable_policy_name(e.policy);
  }
  const std::int64_t first_row = s.num_rows;
  s.num_rows += h * static_cast<std::int64_t>(episodes.size());
  // Rows before episodes: a reader that sees an episode can then always see its block.
  extend_rows(s.ds, static_cast<hsize_t>(s.num_rows));
  extend_episodes(s.ds, s.episodes.size() + episodes.size());
  for (std::size_t k = 0; k < episodes.size(); ++k) {
    EpisodeRecord e = episodes[k];
    e.start = first_row + h * static_cast<std::int64_t>(k);
    e.length = 0;
    e.status = EpisodeStatus::kRunning;
    e.return_ = 0;
    e.checksum = 0;
    const std::size_t index = s.episodes.size();
    s.episodes.push_back(e);
    s.running[e.id] = index;
    indices.push_back(index);
  }
  if (!episodes.empty()) {
    s.held.push_back({empty_rows(s.header, h * static_cast<std::int64_t>(episodes.size())), episodes.size()});
    s.held.back().rows.start = first_row;
  }
  write_episodes(s.ds, indices, s.episodes);
  return indices;
}

void StoreWriter::set_ranks(std::span<const std::size_t> episode_indices, std::span<const std::int32_t> ranks) {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  auto& s = *impl_;
  if (episode_indices.size() != ranks.size())
    throw StoreError(
        fmt::format("store '{}': {} episodes but {} ranks to set", s.path, episode_indices.size(), ranks.size()));
  std::vector<std::size_t> indices;
  for (std::size_t k = 0; k < episode_indices.size(); ++k) {
    const std::size_t index = episode_indices[k];
    if (index >= s.episodes.size() || s.episodes[index].status != EpisodeStatus::kRunning)
      throw StoreError(fmt::format("store '{}': episode index {} is not a running episode", s.path, index));
    s.episodes[index].rank = ranks[k];
    indices.push_back(index);
  }
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  write_episodes(s.ds, indices, s.episodes);
}

void StoreWriter::write(std::span<const Transition> rows) {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  auto& s = *impl_;
  const std::size_t d = static_cast<std::size_t>(s.header.num_domains());
  const std::size_t o = static_cast<std::size_t>(s.header.obs_dim());
  std::vector<std::pair<hsize_t, const Transition*>> order;  // (R)
  for (const auto& t : rows) {
    auto it = s.running.find(t.episode_id);
    if (it == s.running.end())
      throw StoreError(fmt::format("store '{}': transition for episode {} which is not running", s.path, t.episode_id));
    if (t.step < 0 || t.step >= s.header.horizon || t.observation.size() != o || t.next_observation.size() != o ||
        t.action.size() != d || t.eval_loss.size() != d)
      throw StoreError(
          fmt::format("store '{}': malformed transition (episode {}, step {}): sizes obs {}/{}, action {}, "
                      "eval_loss {}; expected step < {}, obs {}, D {}",
                      s.path, t.episode_id, t.step, t.observation.size(), t.next_observation.size(), t.action.size(),
                      t.eval_loss.size(), s.header.horizon, o, d));
    order.emplace_back(static_cast<hsize_t>(s.episodes[it->second].start + t.step), &t);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i].first == order[i - 1].first)
      throw StoreError(fmt::format("store '{}': two transitions for episode {} step {} in one write", s.path,
                                   order[i].second->episode_id, order[i].second->step));
  // Rows of one begin_episodes call are written together, from where remember() put them.
  std::vector<const Transition*> ts;
  std::map<HeldRows*, std::vector<hsize_t>> rows_by_block;
  for (const auto& [row, t] : order) {
    HeldRows& h = s.held_rows_of(s.episodes[s.running.at(t->episode_id)]);
    s.remember(h, *t);
    rows_by_block[&h].push_back(row);
    ts.push_back(t);
  }
  for (const auto& [h, file_rows] : rows_by_block) s.write_columns(*h, file_rows);
  s.update_lengths(ts);
}

HeldRows& StoreWriter::Impl::held_rows_of(const EpisodeRecord& e) {
  for (auto& h : held)
    if (e.start >= h.rows.start && e.start < h.rows.start + h.rows.count) return h;
  throw StoreError(fmt::format("store '{}': episode {} runs but its rows are not held (a writer bug)", path, e.id));
}

void StoreWriter::Impl::remember(HeldRows& h, const Transition& t) {
  RowBlock& b = h.rows;
  const auto r = static_cast<std::size_t>(episodes[running.at(t.episode_id)].start - b.start + t.step);
  const auto o = t.observation.size(), d = t.action.size();
  std::copy(t.observation.begin(), t.observation.end(), b.observations.begin() + static_cast<long>(r * o));
  std::copy(t.next_observation.begin(), t.next_observation.end(),
            b.next_observations.begin() + static_cast<long>(r * o));
  std::copy(t.action.begin(), t.action.end(), b.actions.begin() + static_cast<long>(r * d));
  std::copy(t.eval_loss.begin(), t.eval_loss.end(), b.eval_loss.begin() + static_cast<long>(r * d));
  b.rewards[r] = t.reward;
  b.terminals[r] = 0;
  b.timeouts[r] = t.timeout ? 1 : 0;
  b.episode_id[r] = t.episode_id;
  b.step[r] = t.step;
  b.source_score[r] = t.source_score;
  b.target_score[r] = t.target_score;
  b.math_accuracy[r] = t.math_accuracy;
  b.train_tokens[r] = t.train_tokens;
  b.wall_seconds[r] = t.wall_seconds;
}

// Each column is written from the held rows with a memory selection of the same shape as the
// file's (the round's rows, one per episode block): HDF5 then maps them to chunks block by
// block. From a packed buffer it mapped every element on its own (~0.3 M per round for the
// observations of 1 024 episodes).
void StoreWriter::Impl::write_columns(const HeldRows& h, const std::vector<hsize_t>& rows) {
  const RowBlock& b = h.rows;
  const void* buffers[kNumTransitionColumns] = {
      b.observations.data(), b.next_observations.data(), b.actions.data(),      b.rewards.data(),
      b.terminals.data(),    b.timeouts.data(),          b.episode_id.data(),   b.step.data(),
      b.eval_loss.data(),    b.source_score.data(),      b.target_score.data(), b.math_accuracy.data(),
      b.train_tokens.data(), b.wall_seconds.data()};
  for (int col = 0; col < kNumTransitionColumns; ++col) {
    const ColumnSpec& c = kTransitionColumns[col];
    hid_t owned = -1;
    const hid_t mtype = mem_type(c.elem, &owned);
    write_selected_from(ds.rows[col].get(), columns(c.width, header), rows, static_cast<hsize_t>(b.start),
                        static_cast<hsize_t>(b.count), mtype, buffers[col]);
  }
}

// Running episodes' lengths follow their rows, so a live reader and a resume after a kill
// know how many rows each holds (one write per call, whatever the number of episodes).
void StoreWriter::Impl::update_lengths(const std::vector<const Transition*>& ts) {
  std::vector<hsize_t> changed;
  for (const Transition* t : ts) {
    const std::size_t index = running.at(t->episode_id);
    auto& e = episodes[index];
    if (t->step + 1 > e.length) {
      e.length = t->step + 1;
      changed.push_back(index);
    }
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  std::vector<std::int32_t> lengths;
  for (hsize_t i : changed) lengths.push_back(episodes[i].length);
  write_selected(ds.eps[kEpLength].get(), 1, changed, H5T_NATIVE_INT32, lengths.data());
}

void StoreWriter::end_episode(std::size_t episode_index, EpisodeStatus status, std::int32_t length,
                              float episode_return) {
  const EpisodeEnd one{episode_index, status, length, episode_return};
  end_episodes({&one, 1});
}

void StoreWriter::end_episodes(std::span<const EpisodeEnd> ends) {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  impl_->end(ends);
}

void StoreWriter::Impl::end(std::span<const EpisodeEnd> ends) {
  for (const auto& x : ends)
    if (x.index >= episodes.size() || x.length < 0 || x.length > header.horizon)
      throw StoreError(
          fmt::format("store '{}': ending episode {} with length {} is out of range ({} episodes, "
                      "horizon {})",
                      path, x.index, x.length, episodes.size(), header.horizon));
  std::vector<std::size_t> indices;
  for (const auto& x : ends) {
    auto& e = episodes[x.index];
    e.status = x.status;
    e.length = x.length;
    e.return_ = x.episode_return;
    indices.push_back(x.index);
  }
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  seal(ds, header, indices, episodes, held);
  for (const std::size_t index : indices) {
    const auto& e = episodes[index];
    if (e.status == EpisodeStatus::kRunning) continue;
    auto it = running.find(e.id);
    if (it != running.end() && it->second == index) {
      running.erase(it);
      held_rows_of(e).running -= 1;
    }
  }
  std::erase_if(held, [](const HeldRows& h) { return h.running == 0; });
}

void StoreWriter::flush() {
  h5::SilenceErrors quiet;  // failures throw with HDF5's stack in one line
  h5::check_status(H5Fflush(impl_->file.get(), H5F_SCOPE_GLOBAL), "flush store " + impl_->path);
}

void StoreWriter::interrupt_running() {
  std::vector<EpisodeEnd> ends;
  for (const auto& [id, index] : impl_->running) {
    const auto& e = impl_->episodes[index];
    ends.push_back({index, EpisodeStatus::kInterrupted, e.length, e.return_});
  }
  end_episodes(ends);
  flush();
}

}  // namespace dma
