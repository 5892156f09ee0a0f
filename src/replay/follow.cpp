// `follow`: a live view of a store while a run writes it (SWMR reader, refreshed).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/progress.hpp"
#include "dma/replay.hpp"
#include "replay_internal.hpp"

namespace dma::replay {
namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
/// A store being created is empty, or holds a partial superblock, for a moment.
constexpr double kCreationGrace_s = 2.0;

/// The file's first bytes (fewer when it is shorter).
std::vector<unsigned char> head(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> b(n);
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
  b.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
  return b;
}

/// True while a writer holds the file: the superblock's (v2/v3) status flags, read directly,
/// because HDF5 refuses a second open of a file this process already reads in SWMR mode.
bool writer_active(const std::string& path) {
  const auto sb = head(path, 12);
  if (sb.size() < 12 || !std::equal(kSignature, kSignature + 8, sb.begin()) || sb[8] < 2) return false;
  constexpr unsigned char kWriteAccess = 0x01, kSwmrWriteAccess = 0x04;
  return (sb[11] & (kWriteAccess | kSwmrWriteAccess)) != 0;
}

/// True when the file's first 8 bytes are there and are not HDF5's signature.
bool foreign_file(const std::string& path) {
  const auto sig = head(path, 8);
  return sig.size() == 8 && !std::equal(kSignature, kSignature + 8, sig.begin());
}

struct Status {
  std::map<EpisodeStatus, int> count;
  std::int64_t written = 0;
  std::map<std::string, std::pair<int, double>> returns;  // policy -> (complete, sum of returns)

  explicit Status(const std::vector<EpisodeRecord>& eps) {
    for (const auto& e : eps) {
      ++count[e.status];
      written += e.length;
      if (e.status != EpisodeStatus::kComplete) continue;
      auto& r = returns[e.policy];
      ++r.first;
      r.second += e.return_;
    }
  }

  std::string line(double rows_per_s) const {
    std::string s = fmt::format("{} episodes: {} complete, {} running, {} failed, {} interrupted; {} rows ({:.1f}/s)",
                                count.empty() ? 0 : total(), at(EpisodeStatus::kComplete), at(EpisodeStatus::kRunning),
                                at(EpisodeStatus::kFailed), at(EpisodeStatus::kInterrupted), written, rows_per_s);
    std::string best;
    double best_mean = -INFINITY;
    for (const auto& [policy, r] : returns)
      if (r.second / r.first > best_mean) best_mean = r.second / r.first, best = policy;
    if (!best.empty())
      s += fmt::format("; best mean return {} ({:.4f} over {})", best, best_mean, returns.at(best).first);
    return s;
  }
  int at(EpisodeStatus st) const { return count.count(st) ? count.at(st) : 0; }
  int total() const {
    int n = 0;
    for (const auto& [k, v] : count) n += v;
    return n;
  }
};

}  // namespace

int follow(const std::string& store, const FollowOptions& o, std::ostream& out) {
  const auto start = Clock::now();
  const auto interval = std::chrono::duration<double>(std::max(0.05, o.interval_s));
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  std::optional<StoreReader> reader;
  std::optional<double> unreadable_since;
  std::string last_line;
  double last_print = -1e9, last_rows_t = 0;
  std::int64_t last_rows = 0;
  while (true) {
    if (!reader && std::filesystem::exists(store)) {
      try {
        reader.emplace(StoreReader::open(store));
      } catch (const StoreError&) {
        // Reported at once when it is another kind of file, and after a grace when no writer
        // holds it: a run creating its store leaves it empty or partial for a moment.
        if (!unreadable_since) unreadable_since = elapsed();
        if (!writer_active(store) && (foreign_file(store) || elapsed() - *unreadable_since >= kCreationGrace_s)) throw;
      }
    }
    // Sample the flags before the refresh: rows the writer flushed before closing are then seen.
    const bool active = writer_active(store);
    if (reader) {
      reader->refresh();
      const Status st(reader->episodes());
      const double now = elapsed();
      const double rate = now > last_rows_t ? static_cast<double>(st.written - last_rows) / (now - last_rows_t) : 0;
      const std::string line = st.line(std::max(0.0, rate));
      if (line != last_line || now - last_print >= 30) {
        out << fmt::format("[{}] {}", format_duration(now), line) << std::endl;
        last_line = line;
        last_print = now;
      }
      last_rows = st.written, last_rows_t = now;
      if (!active) {
        out << fmt::format("follow: the writer closed '{}'; the run has ended", store) << std::endl;
        return 0;
      }
    } else if (elapsed() - last_print >= 30 || last_print < 0) {
      out << fmt::format("follow: waiting for '{}' to appear", store) << std::endl;
      last_print = elapsed();
    }
    if (o.timeout_s > 0 && elapsed() >= o.timeout_s) {
      out << fmt::format("follow: timeout after {} with the run still going", format_duration(o.timeout_s))
          << std::endl;
      return 2;
    }
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace dma::replay
