// Per-episode checksums of raw rows: HDF5 checksums the store's metadata, but raw chunks
// carry none (a filter checksum would turn a chunk torn by kill -9 into lost rows).
#include <cstring>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/seed.hpp"
#include "dma/store.hpp"

namespace dma {
namespace {

/// Folds bytes into `h` eight at a time (not cryptographic: it catches damage, not attacks).
std::uint64_t fold(std::uint64_t h, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  std::uint64_t tail = 0;
  if (bytes > i) std::memcpy(&tail, p + i, bytes - i);
  return mix64(h ^ tail ^ bytes);
}

template <class T>
std::uint64_t fold_rows(std::uint64_t h, const std::vector<T>& column, std::int64_t first, std::int64_t count,
                        std::int64_t total) {
  if (total == 0) return h;
  const std::size_t width = column.size() / static_cast<std::size_t>(total);
  return fold(h, column.data() + static_cast<std::size_t>(first) * width,
              static_cast<std::size_t>(count) * width * sizeof(T));
}

}  // namespace

std::uint64_t rows_checksum(const RowBlock& b, std::int64_t first, std::int64_t count) {
  if (first < 0 || count < 0 || first + count > b.count || (b.count > 0 && b.observations.empty()))
    throw StoreError("rows_checksum: rows outside the block, or a block read without observations");
  std::uint64_t h = 0xd1a5c0de;
  const std::int64_t n = b.count;
  h = fold_rows(h, b.observations, first, count, n);
  h = fold_rows(h, b.next_observations, first, count, n);
  h = fold_rows(h, b.actions, first, count, n);
  h = fold_rows(h, b.eval_loss, first, count, n);
  h = fold_rows(h, b.rewards, first, count, n);
  h = fold_rows(h, b.terminals, first, count, n);
  h = fold_rows(h, b.timeouts, first, count, n);
  h = fold_rows(h, b.episode_id, first, count, n);
  h = fold_rows(h, b.step, first, count, n);
  h = fold_rows(h, b.source_score, first, count, n);
  h = fold_rows(h, b.target_score, first, count, n);
  h = fold_rows(h, b.math_accuracy, first, count, n);
  h = fold_rows(h, b.train_tokens, first, count, n);
  h = fold_rows(h, b.wall_seconds, first, count, n);
  return h | 1;  // never 0, which means "no checksum yet"
}

namespace {

/// The episode's own record folded into its rows' checksum. The record is raw chunk data too:
/// its seed, rank, status and return are checked with its rows (id, start and length are
/// checked against the rows themselves). A tree branch's parent and branch step join it; a
/// flat episode's checksum stays what it was before trees.
std::uint64_t with_record(const EpisodeRecord& e, std::uint64_t rows) {
  std::uint64_t h = rows;
  const std::uint64_t status = static_cast<std::uint64_t>(e.status);
  for (const std::uint64_t v : {static_cast<std::uint64_t>(e.id), e.seed, static_cast<std::uint64_t>(e.rank), status})
    h = fold(h, &v, sizeof v);
  if (e.parent >= 0) {
    h = fold(h, &e.parent, sizeof e.parent);
    h = fold(h, &e.branch_step, sizeof e.branch_step);
  }
  h = fold(h, &e.return_, sizeof e.return_);
  h = fold(h, e.policy.data(), e.policy.size());
  return h | 1;
}

}  // namespace

std::uint64_t episode_checksum(const EpisodeRecord& e, const RowBlock& b, std::int64_t first) {
  return with_record(e, rows_checksum(b, first, e.length));
}

void verify_episode_rows(const EpisodeRecord& e, const RowBlock& b, const std::string& path) {
  const std::int64_t first = e.start - b.start;
  if (first < 0 || first + e.length > b.count)
    throw StoreError(fmt::format("verify_episode_rows: episode {} lies outside the rows read", e.id));
  for (std::int64_t k = 0; k < e.length; ++k) {
    const auto row = static_cast<std::size_t>(first + k);
    if (b.step[row] != k || b.episode_id[row] != e.id)
      throw StoreError(fmt::format("store '{}' is damaged: row {} of episode {} holds episode {} step {}", path, k,
                                   e.id, b.episode_id[row], b.step[row]));
  }
  if (e.status == EpisodeStatus::kRunning || e.checksum == 0) return;
  // Stores written before the record joined the checksum hold the rows' checksum alone.
  const std::uint64_t rows = rows_checksum(b, first, e.length);
  if (with_record(e, rows) != e.checksum && rows != e.checksum)
    throw StoreError(
        fmt::format("store '{}' is damaged: the rows of episode {} do not match its checksum (a flipped "
                    "bit or a foreign write): restore the file from a copy",
                    path, e.id));
}

}  // namespace dma
