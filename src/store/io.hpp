#pragma once
/// Internal: dataset creation, opening (with checks), row-selection reads and writes, and
/// the episodes table, shared by StoreWriter and StoreReader.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dma/detail/h5.hpp"
#include "schema.hpp"

namespace dma::store_detail {

/// Every dataset of an open store.
struct Datasets {
  std::array<h5::Dataset, kNumTransitionColumns> rows;
  std::array<h5::Dataset, kNumEpisodeColumns> eps;
};

/// Creates /infos, /episodes and every dataset (empty, chunked, unlimited rows).
void create_datasets(hid_t file, const StoreHeader& h);
/// Opens every dataset and checks its type class and row width; StoreError names the first bad one.
/// `writer` gives each dataset a chunk cache that holds a generation's chunks.
Datasets open_datasets(hid_t file, const StoreHeader& h, const std::string& path, bool writer = false);
/// Rows every transition dataset holds (the minimum, so a live file's partial extends are hidden).
std::int64_t common_rows(const Datasets& ds);
/// Rows every episode dataset holds.
std::int64_t common_episodes(const Datasets& ds);
/// H5Drefresh on every dataset (SWMR readers).
void refresh_all(const Datasets& ds);

/// Sets the row count of every dataset of a group.
void extend_rows(const Datasets& ds, hsize_t rows);
void extend_episodes(const Datasets& ds, hsize_t rows);

/// Writes `buf` (rows.size() x cols elements of `mtype`) to the sorted, distinct `rows`.
void write_selected(hid_t ds, hsize_t cols, const std::vector<hsize_t>& rows, hid_t mtype, const void* buf);
/// Writes the sorted, distinct `rows` from `buf`, which holds rows [buf_start, buf_start +
/// buf_rows) of the dataset (buf_rows x cols elements of `mtype`): the memory selection has
/// the file selection's shape, so HDF5 maps it to chunks by blocks, not element by element.
void write_selected_from(hid_t ds, hsize_t cols, const std::vector<hsize_t>& rows, hsize_t buf_start, hsize_t buf_rows,
                         hid_t mtype, const void* buf);
/// Reads rows [start, start + count) into `buf` (count x cols elements of `mtype`).
void read_range(hid_t ds, hsize_t cols, hsize_t start, hsize_t count, hid_t mtype, void* buf);

/// Reads rows [start, start + count) of every transition column (observations if asked).
RowBlock read_block(const Datasets& ds, const StoreHeader& h, std::int64_t start, std::int64_t count, bool with_obs);

/// Reads episode rows [0, n) and checks them (status, length, start) against the header.
std::vector<EpisodeRecord> read_episode_table(const Datasets& ds, std::int64_t n, const StoreHeader& h,
                                              const std::string& path);
/// Writes the whole rows `indices` (sorted, distinct) of the episodes table from `all`.
void write_episodes(const Datasets& ds, const std::vector<std::size_t>& indices, const std::vector<EpisodeRecord>& all);

}  // namespace dma::store_detail
