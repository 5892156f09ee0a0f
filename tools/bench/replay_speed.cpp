// replay_speed: dma_replay's summary and exports over a store of 100 000 transitions, in
// seconds, against a baseline measured in the same run: one raw read of every column.
// The store is written the way the learner writes it (a generation of G episodes, one row
// per episode per round, a flush per round), so the writer's cost per round is reported too.
//   replay_speed [ROWS] [DIR]      defaults: 100000 rows, a fresh directory under /tmp
// Shapes: D = 12 domains (6 source, 6 target), H = 16 steps, O = 3 + 6 D.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include "dma/config.hpp"
#include "dma/observation.hpp"
#include "dma/replay.hpp"
#include "dma/store.hpp"

namespace {

using namespace dma;
namespace fs = std::filesystem;

constexpr int kDomains = 12, kHorizon = 16, kGeneration = 32;

double seconds(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

StoreHeader header() {
  StoreHeader h;
  for (int d = 0; d < kDomains; ++d) {
    h.domain_names.push_back(fmt::format("domain{:02}", d));
    h.domain_fields.push_back(d < kDomains / 2 ? Field::kSource : Field::kTarget);
    h.base_eval_loss.push_back(3.0f + 0.1f * static_cast<float>(d));
    h.token_shares.push_back(1.0 / kDomains);
  }
  h.obs_layout = obs::layout(h.domain_names);
  h.horizon = kHorizon;
  Config c;
  c.train.horizon = kHorizon;
  h.config_ini = to_ini(c);
  return h;
}

/// Deterministic, cheap rows with the right shapes (weights on the simplex).
Transition row(const StoreHeader& h, std::int64_t id, int t) {
  Transition x;
  x.episode_id = id;
  x.step = t;
  x.observation.assign(static_cast<std::size_t>(h.obs_dim()), 0.01f * static_cast<float>(t));
  x.next_observation.assign(static_cast<std::size_t>(h.obs_dim()), 0.01f * static_cast<float>(t + 1));
  float total = 0;
  for (int d = 0; d < kDomains; ++d) {
    x.action.push_back(1.0f + static_cast<float>((id * 7 + t * 3 + d * 5) % 11));
    total += x.action.back();
    x.eval_loss.push_back(h.base_eval_loss[static_cast<std::size_t>(d)] *
                          (1.0f - 0.002f * static_cast<float>(t + (id % 5))));
  }
  for (auto& w : x.action) w /= total;
  x.reward = 0.001f * static_cast<float>(id % 13);
  x.source_score = -0.001f * static_cast<float>(t);
  x.target_score = 0.01f * static_cast<float>(t);
  x.train_tokens = 20480LL * (t + 1);
  x.wall_seconds = 0.4f * static_cast<float>(t + 1);
  return x;
}

/// Writes `rows` transitions; returns the mean seconds the writer spent per round.
double write_store(const std::string& path, std::int64_t rows) {
  const auto h = header();
  auto w = StoreWriter::create(path, h);
  const std::vector<std::string> policies{"random", "uniform", "fixed:0.5", "online-eg"};
  const std::int64_t episodes = rows / kHorizon;
  double store_seconds = 0;
  std::int64_t rounds = 0;
  for (std::int64_t first = 0; first < episodes; first += kGeneration) {
    std::vector<EpisodeRecord> recs;
    for (std::int64_t id = first; id < std::min(episodes, first + kGeneration); ++id)
      recs.push_back({.id = id,
                      .seed = static_cast<std::uint64_t>(id),
                      .rank = 1,
                      .policy = policies[static_cast<std::size_t>(id % 4)]});
    const auto idx = w.begin_episodes(recs);
    for (int t = 0; t < kHorizon; ++t) {
      std::vector<Transition> batch;
      for (const auto& r : recs) batch.push_back(row(h, r.id, t));
      store_seconds += seconds([&] {
        w.write(batch);
        w.flush();
      });
      ++rounds;
    }
    store_seconds += seconds([&] {
      for (std::size_t k = 0; k < idx.size(); ++k) w.end_episode(idx[k], EpisodeStatus::kComplete, kHorizon, 0.1f);
      w.flush();
    });
  }
  return store_seconds / static_cast<double>(rounds);
}

std::string size_of(const fs::path& p) {
  std::uintmax_t bytes = 0;
  if (fs::is_directory(p))
    for (const auto& e : fs::recursive_directory_iterator(p)) bytes += e.is_regular_file() ? e.file_size() : 0;
  else
    bytes = fs::file_size(p);
  return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t rows = argc > 1 ? std::atoll(argv[1]) : 100000;
  const fs::path dir =
      argc > 2 ? fs::path(argv[2]) : fs::temp_directory_path() / fmt::format("dma_replay_speed_{}", getpid());
  try {
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string store = (dir / "store.h5").string();
    double per_round = 0;
    const double write_s = seconds([&] { per_round = write_store(store, rows); });
    fmt::print("replay_speed: {} transitions, D={}, H={}, obs_dim={}, generations of {} episodes\n", rows, kDomains,
               kHorizon, obs::dim(kDomains), kGeneration);
    fmt::print("  write store              {:7.3f} s  ({:.2f} ms per round of {} rows incl. flush; {})\n", write_s,
               1e3 * per_round, kGeneration, size_of(store));
    double raw = 0;
    {
      auto r = StoreReader::open(store);
      raw = seconds([&] { (void)r.read_block(0, r.num_rows(), true); });
    }
    fmt::print("  raw read, every column   {:7.3f} s  (baseline)\n", raw);
    std::string text;
    const double summary_s = seconds([&] { text = replay::summary(store, replay::TableFormat::kText); });
    fmt::print("  summary                  {:7.3f} s  ({:.1f}x the raw read)\n", summary_s, summary_s / raw);
    const double compare_s = seconds([&] { (void)replay::compare({store}, replay::TableFormat::kText); });
    fmt::print("  compare                  {:7.3f} s  ({:.1f}x)\n", compare_s, compare_s / raw);
    for (const auto& [name, format, out] :
         {std::tuple{"export d4rl (gzip)", replay::ExportFormat::kD4rl, dir / "d4rl.h5"},
          std::tuple{"export minari", replay::ExportFormat::kMinari, dir / "minari"},
          std::tuple{"export csv", replay::ExportFormat::kCsv, dir / "all.csv"}}) {
      replay::ExportOptions o;
      o.format = format;
      replay::ExportResult res;
      const double s = seconds([&, out = out] { res = replay::export_store(store, out.string(), o); });
      fmt::print("  {:<24} {:7.3f} s  ({:.1f}x; {} episodes, {} rows, {})\n", name, s, s / raw, res.episodes,
                 res.transitions, size_of(out));
    }
    const double plot_s = seconds([&] { (void)replay::plot(store, (dir / "plots").string()); });
    fmt::print("  plot (6 SVGs)            {:7.3f} s  ({:.1f}x)\n", plot_s, plot_s / raw);
    if (argc <= 2) fs::remove_all(dir);
    return 0;
  } catch (const dma::Error& e) {
    std::fprintf(stderr, "replay_speed: %s\n", e.what());
    return 1;
  }
}
