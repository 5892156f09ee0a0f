// `replay:<store>#<episode id>`: re-plays the weights a stored episode used, e.g. a
// collected schedule on a bigger target model. Domains are matched by name, so a store whose
// domains are listed in another order replays correctly. When the horizon differs from the
// stored length, step t re-plays the stored step at the same progress, floor(t * L / T).
#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/store.hpp"
#include "internal.hpp"

namespace dma::policy_detail {
namespace {

class ReplayPolicy final : public Policy {
 public:
  ReplayPolicy(std::string name, const DomainContext& ctx, std::vector<std::vector<double>> actions)
      : name_(std::move(name)), ctx_(ctx), actions_(std::move(actions)) {}

  std::string name() const override { return name_; }

  void act(const ActBatch& batch, std::span<double> weights) override {
    check_batch(name_, batch, weights, ctx_, /*needs_obs=*/false);
    const size_t D = ctx_.names.size(), L = actions_.size();
    for (size_t b = 0; b < static_cast<size_t>(batch.batch); ++b) {
      const auto t = static_cast<size_t>(batch.steps[b]);
      const size_t s = std::min(L - 1, t * L / static_cast<size_t>(ctx_.horizon));
      std::copy(actions_[s].begin(), actions_[s].end(), weights.begin() + static_cast<long>(b * D));
    }
  }

 private:
  std::string name_;
  DomainContext ctx_;
  std::vector<std::vector<double>> actions_;  // (L, D) in this context's domain order
};

const EpisodeRecord& find_episode(const std::string& spec, const std::string& path, const StoreReader& store,
                                  std::int64_t id) {
  const EpisodeRecord* found = nullptr;
  int records = 0;
  for (const auto& e : store.episodes()) {
    if (e.id != id) continue;
    ++records;
    // A re-run after an interruption appends a new record under the same id: the last complete one wins.
    if (e.status == EpisodeStatus::kComplete) found = &e;
  }
  if (found) return *found;
  if (records == 0)
    throw PolicyError(
        fmt::format("policy '{}': store '{}' has no episode {}: pick an id from its /episodes/id", spec, path, id));
  throw PolicyError(fmt::format("policy '{}': episode {} in '{}' never completed: pick a complete episode (status 1)",
                                spec, id, path));
}

}  // namespace

std::unique_ptr<Policy> make_replay_policy(const PolicySpec& replay, const DomainContext& ctx) {
  const std::string spec = to_string(replay);
  const std::string& path = replay.store;
  const std::int64_t id = replay.episode;
  StoreReader store = [&] {
    try {
      return StoreReader::open(path);
    } catch (const StoreError& e) {
      throw StoreError(fmt::format("policy '{}': {}", spec, e.what()));
    }
  }();
  const auto map = map_store_domains(spec, path, store.header().domain_names, ctx);
  const auto& episode = find_episode(spec, path, store, id);
  const auto rows = store.read_episode(episode);
  if (rows.empty())
    throw PolicyError(fmt::format("policy '{}': episode {} in '{}' has no rows: pick another episode", spec, id, path));
  std::vector<std::vector<double>> actions(rows.size());
  for (const auto& row : rows) {
    if (row.step < 0 || static_cast<size_t>(row.step) >= rows.size() || row.action.size() != map.size())
      throw PolicyError(
          fmt::format("policy '{}': episode {} in '{}' has a malformed row (step {}): the store is damaged", spec, id,
                      path, row.step));
    auto& a = actions[static_cast<size_t>(row.step)];
    for (int column : map) a.push_back(row.action[static_cast<size_t>(column)]);
    finish_row(a);  // float32 rows re-normalised in double: on the simplex within 1e-9
  }
  for (const auto& a : actions)
    if (a.empty())
      throw PolicyError(
          fmt::format("policy '{}': episode {} in '{}' misses a step: the store is damaged", spec, id, path));
  return std::make_unique<ReplayPolicy>(spec, ctx, std::move(actions));
}

}  // namespace dma::policy_detail
