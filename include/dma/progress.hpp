#pragma once
/// Progress reporting for long work: a live line with counts, rate and ETA on a terminal,
/// plain periodic lines otherwise (Slurm logs, pipes).
#include <chrono>
#include <cstdint>
#include <string>

namespace dma {

class Progress {
 public:
  /// `label` starts each line; `total` is the count at completion; `unit` names a count.
  Progress(std::string label, std::int64_t total, std::string unit, double period_seconds = 10.0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Reports `done` of total; `extra` is appended (e.g. "loss 2.31"). Prints when due.
  void update(std::int64_t done, const std::string& extra = "");
  /// Prints the final line (always) and ends the live line.
  void finish(const std::string& extra = "");
  double elapsed_seconds() const;

 private:
  std::string line(std::int64_t done, const std::string& extra) const;
  std::string label_, unit_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  double period_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
};

/// "1h02m", "3m05s", "12.3s".
std::string format_duration(double seconds);

/// Prints one line to stderr with a "[dma] " prefix (thread-safe, flushed).
void log_line(const std::string& text);

}  // namespace dma
