// How a trained agent answers the source score: the actor's target share and the share the
// critics value most, as the source score of a stored state is moved (tools/analysis/agent_probe).
#include <algorithm>

#include <fmt/format.h>

#include "dma/agent.hpp"
#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "mixture.hpp"

namespace dma {

SourceResponse probe_source_response(const AgentModel& model, const std::vector<Transition>& episode, int step,
                                     const std::vector<double>& shifts) {
  if (step < 0 || step >= static_cast<int>(episode.size()) || episode.empty())
    throw Error(fmt::format("agent probe: step {} is outside the episode's {} rows", step, episode.size()));
  const auto& now = episode[static_cast<size_t>(step)].observation;
  const int D = (static_cast<int>(now.size()) - obs::kNumGlobal) / obs::kNumPerDomain;
  if (D < 1 || obs::dim(D) != static_cast<int>(now.size()))
    throw Error(fmt::format("agent probe: an observation of {} floats fits no domain count", now.size()));
  const int H = model.history();
  std::vector<bool> target(static_cast<size_t>(D));
  int targets = 0;
  for (int d = 0; d < D; ++d) targets += (target[static_cast<size_t>(d)] = now[obs::index(d, obs::kIsTarget)] > 0.5f);
  // The grid of field-level actions the critics rank.
  std::vector<double> grid;
  std::vector<float> actions;
  for (int k = 1; k < 20; ++k) {
    const double share = 0.05 * k;
    grid.push_back(share);
    for (int d = 0; d < D; ++d)
      actions.push_back(static_cast<float>(target[static_cast<size_t>(d)] ? share / std::max(targets, 1)
                                                                          : (1 - share) / std::max(D - targets, 1)));
  }
  SourceResponse out{step, now[obs::kProgress], now[obs::kSourceScore], shifts, {}, {}};
  for (const double shift : shifts) {
    std::vector<float> history;  // H rows, oldest first; before step 0, step 0 again
    for (int h = H - 1; h >= 0; --h) {
      auto row = episode[static_cast<size_t>(std::max(0, step - h))].observation;
      row[obs::kSourceScore] += static_cast<float>(shift);
      history.insert(history.end(), row.begin(), row.end());
    }
    const auto logits = model.mean_logits(history, 1, D);
    std::vector<double> weights(static_cast<size_t>(D));
    agent::softmax_into(std::vector<double>(logits.begin(), logits.end()), weights);
    double on_target = 0;
    for (int d = 0; d < D; ++d) on_target += target[static_cast<size_t>(d)] ? weights[static_cast<size_t>(d)] : 0.0;
    out.actor_share.push_back(on_target);
    const auto q = model.q_values(history, actions, static_cast<int>(grid.size()), D);
    out.critic_best_share.push_back(grid[static_cast<size_t>(std::max_element(q.begin(), q.end()) - q.begin())]);
  }
  return out;
}

}  // namespace dma
