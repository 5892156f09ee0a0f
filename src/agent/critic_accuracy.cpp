// How well an agent's critics predict what the stored actions earned: Q(o, a) of every step of
// a store's complete episodes against the realised discounted return-to-go
// (`dma_agent critic-accuracy`).
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <fmt/format.h>

#include "checkpoint.hpp"
#include "dataset.hpp"
#include "dma/agent.hpp"
#include "dma/error.hpp"
#include "thread_scope.hpp"

namespace dma {
namespace {

// Ranks 1..n, tied values sharing their mean rank.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j) + 1;
    i = j + 1;
  }
  return r;
}

// Pearson correlation; NaN when either side has no spread.
double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : std::nan("");
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

}  // namespace

CriticAccuracy critic_accuracy(const std::string& checkpoint, const OfflineStore& store, double discount) {
  agent::AgentState state = agent::load_agent(checkpoint);
  agent::ThreadScope threads(1);
  torch::NoGradGuard no_grad;
  // Rewards as training made them: the checkpoint's score and scales, the rest of its [eval].
  EvalConfig eval = stored_eval_config(state.config_ini);
  eval.score = state.score;
  eval.source_scale = state.source_scale;
  eval.target_scale = state.target_scale;
  if (discount < 0) discount = AgentConfig{}.discount;
  agent::DatasetOptions options{state.history, eval, /*val_fraction=*/0.0, AgentConfig{}.bc_top_q, 1};
  const auto ds = agent::build_dataset({store}, options);

  CriticAccuracy out;
  out.discount = discount;
  std::vector<double> q_all, g_all;
  std::map<int, std::pair<std::vector<double>, std::vector<double>>> by_step;  // step -> (Q, return-to-go)
  for (const auto& g : ds.groups) {
    const auto tokens = state.norm.apply(g.tokens);
    const auto actions = g.actions.unsqueeze(1);  // (N, 1, D)
    const auto q = torch::min(state.q1->q(state.q1->encode(tokens), g.is_target, actions),
                              state.q2->q(state.q2->encode(tokens), g.is_target, actions))
                       .view(-1)
                       .contiguous();
    const auto rewards = g.rewards.contiguous();
    const auto episode = g.episode.contiguous();
    const float* qp = q.data_ptr<float>();
    const float* rp = rewards.data_ptr<float>();
    const std::int64_t* ep = episode.data_ptr<std::int64_t>();
    const std::int64_t n = q.size(0);
    // An episode's rows are contiguous and in step order from 0.
    for (std::int64_t first = 0; first < n;) {
      std::int64_t end = first;
      while (end < n && ep[end] == ep[first]) ++end;
      if (ds.episodes[static_cast<size_t>(ep[first])].complete) {
        ++out.episodes;
        const auto length = static_cast<int>(end - first);
        std::vector<double> to_go(static_cast<size_t>(length));
        double acc = 0;
        for (int t = length - 1; t >= 0; --t) to_go[static_cast<size_t>(t)] = acc = rp[first + t] + discount * acc;
        for (int t = 0; t < length; ++t) {
          // The critics learned the return of centred, scaled rewards; the last step backs up 0.
          // In score units that is reward_scale * Q + reward_mean * (1 + discount + ... over the
          // steps left), so pairs of different steps compare on one scale.
          const double steps_left = length - t;
          const double annuity = discount == 1.0 ? steps_left : (1 - std::pow(discount, steps_left)) / (1 - discount);
          const double value = state.reward_scale * qp[first + t] + state.reward_mean * annuity;
          q_all.push_back(value);
          g_all.push_back(to_go[static_cast<size_t>(t)]);
          by_step[t].first.push_back(value);
          by_step[t].second.push_back(to_go[static_cast<size_t>(t)]);
        }
      }
      first = end;
    }
  }
  out.pairs = static_cast<std::int64_t>(q_all.size());
  if (out.pairs < 3)
    throw StoreError(
        fmt::format("store '{}' has {} (state, action) pairs in complete episodes: at least 3 are needed "
                    "to score a critic; collect more episodes",
                    store.name, out.pairs));
  out.spearman = spearman(q_all, g_all);
  double sum = 0;
  for (const auto& [t, qg] : by_step) {
    const double r = qg.first.size() < 3 ? std::nan("") : spearman(qg.first, qg.second);
    out.per_step.push_back(r);
    if (std::isnan(r)) continue;
    sum += r;
    ++out.steps_correlated;
  }
  out.spearman_per_step = out.steps_correlated > 0 ? sum / out.steps_correlated : std::nan("");
  // Least squares of the return-to-go on Q: its residual RMSE is std(G) * sqrt(1 - r^2).
  const double n = static_cast<double>(out.pairs);
  const double mg = std::accumulate(g_all.begin(), g_all.end(), 0.0) / n;
  double sgg = 0;
  for (double x : g_all) sgg += (x - mg) * (x - mg);
  out.return_std = std::sqrt(sgg / n);
  const double r = pearson(q_all, g_all);
  out.rmse_affine = std::isnan(r) ? out.return_std : out.return_std * std::sqrt(std::max(0.0, 1 - r * r));
  return out;
}

}  // namespace dma
