#pragma once
// Internal to dma_replay_lib: shared helpers of the commands.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dma/replay.hpp"

namespace dma::replay {

EpisodeStatus parse_status(const std::string& s);
std::string status_name(EpisodeStatus s);
/// The store's eval config with `score` ("" keeps the store's) checked.
EvalConfig eval_config(const StoreHeader& h, const std::string& path, const std::string& score);
/// Two-sided 95 % Student t quantile.
double student_t975(std::int64_t dof);

/// A selected episode inside a batch, with its rows visible in the batch's block.
struct BatchEpisode {
  const EpisodeRecord* record = nullptr;
  std::int64_t visible = 0;
};
/// Reads the selected episodes in batches of whole blocks (observations included), verifies
/// ended ones against their checksums and calls `fn` per batch.
void for_each_batch(const StoreReader& reader, const Selection& selection,
                    const std::function<void(const RowBlock&, const std::vector<BatchEpisode>&)>& fn);

/// A table rendered as aligned text, CSV or Markdown.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::size_t size() const { return rows_.size(); }
  std::string render(TableFormat format) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// RFC 4180 quoting when needed.
std::string csv_field(const std::string& s);
/// "0.1234 ± 0.0100" style cells.
std::string mean_std(const Stats& s, int digits = 4);
/// A short label per store path (basename when unique, else the path).
std::vector<std::string> store_labels(const std::vector<std::string>& paths);

}  // namespace dma::replay
