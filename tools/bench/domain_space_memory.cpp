// Domain-space memory bench: writes a >= 1 GiB domain space with the streaming writer (in a
// temp dir, removed after), samples 10 000 mixture batches, and prints peak RSS of each
// phase and the sampling rate. Goal: peak RSS under 200 MiB, i.e. memory does not grow
// with the corpus.
//   domain_space_memory [--gib X] [--batches N] [--batch-size B] [--seq-len L] [--domains D] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include "dma/domain_space.hpp"
#include "dma/error.hpp"
#include "dma/sampler.hpp"

namespace fs = std::filesystem;

namespace {

struct Args {
  double gib = 1.0;
  int batches = 10000;
  int batch_size = 32;
  int seq_len = 256;
  int domains = 16;
  int vocab = 50257;  // GPT-2 sized: stored as uint16
  std::string dir;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--gib")
      a.gib = std::stod(v);
    else if (k == "--batches")
      a.batches = std::stoi(v);
    else if (k == "--batch-size")
      a.batch_size = std::stoi(v);
    else if (k == "--seq-len")
      a.seq_len = std::stoi(v);
    else if (k == "--domains")
      a.domains = std::stoi(v);
    else if (k == "--dir")
      a.dir = v;
    else
      throw std::invalid_argument("unknown option " + k);
  }
  return a;
}

/// A kibibyte figure from /proc/self/status ("VmHWM", "VmRSS").
long status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key) + 1);
  return -1;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0), so each phase reports its own peak.
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

double mib(long kib) { return static_cast<double>(kib) / 1024.0; }

/// CPU seconds (user + system) of this process: the rate per CPU second does not depend
/// on what else the machine runs.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Removes the bench directory whatever happens.
struct ScratchDir {
  fs::path path;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_space(const std::string& path, const Args& a) {
  const auto width = static_cast<size_t>(a.seq_len + 1);
  const auto total_rows = static_cast<std::int64_t>(a.gib * (1ull << 30) / (width * 2.0)) + 1;
  const std::int64_t per_domain = total_rows / a.domains + 1;
  dma::DomainSpaceWriter w(path, a.vocab, a.seq_len, "bench", true);
  std::mt19937_64 rng(1);
  std::vector<std::int32_t> piece(4096 * width);  // (4096, width): the writer's memory is one piece
  for (int d = 0; d < a.domains; ++d) {
    w.begin_domain(fmt::format("d{}", d), d % 2 ? dma::Field::kTarget : dma::Field::kSource, "bench tokens");
    for (std::int64_t done = 0; done < per_domain;) {
      const auto n = std::min<std::int64_t>(4096, per_domain - done);
      for (size_t i = 0; i < static_cast<size_t>(n) * width; ++i)
        piece[i] = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(a.vocab));
      w.append_train(std::span(piece.data(), static_cast<size_t>(n) * width));
      done += n;
    }
    w.append_eval(std::span(piece.data(), 16 * width));
    w.end_domain();
  }
  w.close();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    ScratchDir scratch{fs::path(a.dir.empty() ? fs::temp_directory_path().string() : a.dir) /
                       fmt::format("dma-bench-space-{}", ::getpid())};
    fs::create_directories(scratch.path);
    const auto path = (scratch.path / "bench.space").string();
    std::printf("domain_space_memory: %.2f GiB target, %d domains, seq_len %d, vocab %d (uint16), batch %d x %d\n",
                a.gib, a.domains, a.seq_len, a.vocab, a.batches, a.batch_size);

    reset_peak();
    auto t0 = std::chrono::steady_clock::now();
    write_space(path, a);
    const double write_s = seconds_since(t0);
    const auto bytes = fs::file_size(path);
    const double write_peak = mib(status_kib("VmHWM:"));
    std::printf("write:  %.3f GiB in %.1f s (%.0f MiB/s), peak RSS %.1f MiB\n", static_cast<double>(bytes) / (1 << 30),
                write_s, static_cast<double>(bytes) / (1 << 20) / write_s, write_peak);

    reset_peak();
    const auto space = dma::DomainSpace::open(path);
    dma::MixtureSampler sampler(space, 7);
    std::mt19937_64 rng(3);
    std::vector<double> w(static_cast<size_t>(space.num_domains()));
    std::int64_t rows = 0, checksum = 0;
    t0 = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds();
    for (int b = 0; b < a.batches; ++b) {
      if (b % 100 == 0) {  // a new random mixture every 100 batches, like a re-weighting step
        double sum = 0;
        for (auto& x : w) sum += x = std::exponential_distribution<double>(1.0)(rng);
        for (auto& x : w) x /= sum;
      }
      const auto batch = sampler.sample(w, a.batch_size);
      rows += batch.rows;
      checksum += batch.tokens[static_cast<size_t>(b) % batch.tokens.size()];
    }
    const double sample_s = seconds_since(t0), sample_cpu = cpu_seconds() - cpu0;
    std::printf(
        "sample: %lld rows in %.2f s = %.0f rows/s (%.0f rows per CPU second; %.1f MiB/s of int32 tokens), "
        "peak RSS %.1f MiB (checksum %lld)\n",
        static_cast<long long>(rows), sample_s, static_cast<double>(rows) / sample_s,
        static_cast<double>(rows) / sample_cpu, static_cast<double>(rows) * (a.seq_len + 1) * 4 / (1 << 20) / sample_s,
        mib(status_kib("VmHWM:")), static_cast<long long>(checksum));
    const double peak = std::max(write_peak, mib(status_kib("VmHWM:")));
    std::printf("goal: peak RSS < 200 MiB in both phases: %s (%.1f MiB)\n", peak < 200 ? "met" : "MISSED", peak);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "domain_space_memory: %s\n", e.what());
    return 1;
  }
}
