#include "dma/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <mutex>

#include <fmt/format.h>

namespace dma {
namespace {
std::mutex g_out_mutex;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<long>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

void log_line(const std::string& text) {
  std::lock_guard lock(g_out_mutex);
  std::fprintf(stderr, "[dma] %s\n", text.c_str());
  std::fflush(stderr);
}

Progress::Progress(std::string label, std::int64_t total, std::string unit, double period_seconds)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      period_(period_seconds),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  if (tty_ && !finished_ && done_ > 0) std::fprintf(stderr, "\n");
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(std::int64_t done, const std::string& extra) const {
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  return fmt::format("{} {}/{} {} ({:.0f}%) {:.2f} {}/s elapsed {} ETA {}{}{}", label_, done, total_, unit_, pct, rate,
                     unit_, format_duration(elapsed), format_duration(eta), extra.empty() ? "" : " | ", extra);
}

void Progress::update(std::int64_t done, const std::string& extra) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  std::lock_guard lock(g_out_mutex);
  if (tty_) {
    if (since < 0.2) return;
    std::fprintf(stderr, "\r\033[K[dma] %s", line(done, extra).c_str());
  } else {
    if (since < period_) return;
    std::fprintf(stderr, "[dma] %s\n", line(done, extra).c_str());
  }
  std::fflush(stderr);
  last_print_ = now;
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  std::lock_guard lock(g_out_mutex);
  std::fprintf(stderr, "%s[dma] %s\n", tty_ ? "\r\033[K" : "", line(done_ > 0 ? done_ : total_, extra).c_str());
  std::fflush(stderr);
}

}  // namespace dma
