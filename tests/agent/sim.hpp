#pragma once
// A cheap analytic stand-in for continual pre-training, for the agent's tests and its
// development bench: per-domain held-out losses respond to the mixture the way DESIGN §1
// describes (target domains gain with diminishing returns and overfit their small data,
// the source field forgets under target training and recovers under source training, and
// the learning rate decays over the horizon, so timing matters). It writes real stores.
// Letters: D domains (source first, then target), T horizon.
#include <unistd.h>
#include "../support/temp_dir.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "dma/agent.hpp"
#include "dma/config.hpp"
#include "dma/observation.hpp"
#include "dma/score.hpp"
#include "dma/seed.hpp"
#include "dma/store.hpp"

namespace dma::agent_test {

struct SimSpace {
  int sources = 8;
  int targets = 4;
  int horizon = 16;
  double noise = 0.002;  // relative eval noise (the seed std of a real run)
  int domains() const { return sources + targets; }
};

/// A space of `domains` domains, half source, half target (the rest), over `horizon` steps.
inline SimSpace sim_space(int domains, int horizon) {
  SimSpace sp;
  sp.sources = domains / 2;
  sp.targets = domains - sp.sources;
  sp.horizon = horizon;
  return sp;
}

inline StoreHeader sim_header(const SimSpace& sp, const std::string& score = "budget") {
  StoreHeader h;
  for (int d = 0; d < sp.domains(); ++d) {
    const bool target = d >= sp.sources;
    h.domain_names.push_back(target ? "math" + std::to_string(d - sp.sources) : "text" + std::to_string(d));
    h.domain_fields.push_back(target ? Field::kTarget : Field::kSource);
    h.base_eval_loss.push_back(static_cast<float>(target ? 2.5 + 0.2 * (d - sp.sources) : 3.0 + 0.05 * d));
    h.token_shares.push_back(target ? 0.02 : (0.9 + 0.1 * (d % 3)) / sp.sources);
  }
  double total = 0;
  for (double s : h.token_shares) total += s;
  for (double& s : h.token_shares) s /= total;
  h.obs_layout = obs::layout(h.domain_names);
  h.horizon = sp.horizon;
  h.space_fingerprint = 0x51aULL + static_cast<std::uint64_t>(sp.domains());
  Config c;
  c.train.horizon = sp.horizon;
  c.eval.score = score;
  h.config_ini = to_ini(c);
  return h;
}

/// One simulated CPT run.
class SimEnv {
 public:
  SimEnv(const SimSpace& sp, std::uint64_t seed)
      : sp_(sp), exposure_(static_cast<size_t>(sp.domains()), 0.0), rng_(seed) {}

  std::vector<float> losses(const StoreHeader& h) {
    std::normal_distribution<double> n(0.0, sp_.noise);
    std::vector<float> out;
    for (int d = 0; d < sp_.domains(); ++d) {
      const double g = d < sp_.sources ? source_gain(d) : target_gain(d - sp_.sources);
      out.push_back(static_cast<float>(h.base_eval_loss[static_cast<size_t>(d)] * (1.0 - g + n(rng_))));
    }
    return out;
  }

  void step(std::span<const float> w, int t) {
    const double eta = 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * (t + 0.5) / sp_.horizon));  // cosine lr
    double tgt = 0;
    for (int d = 0; d < sp_.domains(); ++d) {
      exposure_[static_cast<size_t>(d)] += eta * w[static_cast<size_t>(d)];
      if (d >= sp_.sources) tgt += w[static_cast<size_t>(d)];
    }
    forgetting_ += eta * (0.08 * tgt - 0.9 * (1 - tgt) * forgetting_);
  }

 private:
  double source_gain(int d) const {
    const double protect = 0.7 + 0.6 * (d % 4) / 3.0;  // some domains forget more
    return 0.03 * (1 - std::exp(-0.6 * exposure_[static_cast<size_t>(d)] * sp_.sources)) - protect * forgetting_;
  }
  double target_gain(int k) const {
    const double e = exposure_[static_cast<size_t>(sp_.sources + k)] * 4.0 / sp_.targets;
    const double amp = 0.35 + 0.15 * k, rate = 1.4 - 0.25 * k, cap = 0.9 + 0.35 * k;
    return amp * (1 - std::exp(-rate * e)) - 0.25 * std::pow(std::max(0.0, e - cap), 2.0);
  }
  SimSpace sp_;
  std::vector<double> exposure_;
  double forgetting_ = 0;
  std::mt19937_64 rng_;
};

/// A schedule maker: weights for step t given the observation history (newest last).
using SimPolicy = std::function<std::vector<float>(int t, const std::vector<std::vector<float>>& observations)>;

struct SimEpisode {
  EpisodeRecord record;
  std::vector<Transition> rows;
  double final_score = 0;
};

/// Runs one episode under `policy`; rewards and scores use `eval`.
inline SimEpisode run_sim_episode(const SimSpace& sp, const StoreHeader& h, const EvalConfig& eval, std::int64_t id,
                                  std::uint64_t env_seed, const SimPolicy& policy, const std::string& name) {
  SimEnv env(sp, env_seed);
  const int D = sp.domains();
  auto prev_w = obs::base_mixture(h.domain_fields, h.token_shares);
  auto losses = env.losses(h), prev_losses = losses;
  auto observe = [&](int t) {
    std::vector<float> o(static_cast<size_t>(obs::dim(D)));
    obs::build({t, sp.horizon, prev_w, losses, prev_losses, h.base_eval_loss, h.domain_fields, h.token_shares}, o);
    return o;
  };
  SimEpisode ep;
  std::vector<std::vector<float>> history{observe(0)};
  double before = balanced_score(field_scores(h.base_eval_loss, h.base_eval_loss, h.domain_fields), eval), ret = 0;
  for (int t = 0; t < sp.horizon; ++t) {
    Transition tr;
    tr.episode_id = id;
    tr.step = t;
    tr.observation = history.back();
    tr.action = policy(t, history);
    env.step(tr.action, t);
    prev_losses = losses;
    losses = env.losses(h);
    prev_w = tr.action;
    history.push_back(observe(t + 1));
    tr.next_observation = history.back();
    tr.eval_loss = losses;
    const auto s = field_scores(losses, h.base_eval_loss, h.domain_fields);
    const double b = balanced_score(s, eval);
    tr.reward = static_cast<float>(b - before);
    ret += b - before;
    before = b;
    tr.source_score = static_cast<float>(s.source);
    tr.target_score = static_cast<float>(s.target);
    tr.train_tokens = 1000 * (t + 1);
    tr.timeout = t == sp.horizon - 1;
    ep.rows.push_back(std::move(tr));
  }
  ep.record.id = id;
  ep.record.seed = env_seed;
  ep.record.length = sp.horizon;
  ep.record.status = EpisodeStatus::kComplete;
  ep.record.rank = 1;
  ep.record.policy = name;
  ep.record.return_ = static_cast<float>(ret);
  ep.final_score = before;
  return ep;
}

/// Weights with target share `share`, spread within each field by `within` (D weights,
/// any scale; only their split inside each field matters).
inline std::vector<float> mix(const StoreHeader& h, double share, const std::vector<double>& within) {
  double s = 0, t = 0;
  for (size_t d = 0; d < within.size(); ++d) (h.domain_fields[d] == Field::kTarget ? t : s) += within[d];
  std::vector<float> w;
  for (size_t d = 0; d < within.size(); ++d)
    w.push_back(
        static_cast<float>(h.domain_fields[d] == Field::kTarget ? share * within[d] / t : (1 - share) * within[d] / s));
  return w;
}

/// The covering random walk of DESIGN §1: a target-share curve through random knots over the
/// whole 0..1 range, within-field Dirichlet weights (sometimes concentrated), smoothed.
inline SimPolicy random_walk(const StoreHeader& h, std::uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> knots;
  for (int k = 0; k < 4; ++k) knots.push_back(u(*rng));
  const double alpha = u(*rng) < 0.3 ? 0.2 : 1.0;
  auto draw = [rng, alpha, n = h.num_domains()] {
    std::gamma_distribution<double> g(alpha, 1.0);
    std::vector<double> v;
    for (int d = 0; d < n; ++d) v.push_back(g(*rng) + 1e-4);
    return v;
  };
  auto within = std::make_shared<std::vector<double>>(draw());
  const int T = h.horizon;
  return [h, knots, within, draw, T](int t, const std::vector<std::vector<float>>&) {
    const double x = T > 1 ? 3.0 * t / (T - 1) : 0;
    const int k = std::min(2, static_cast<int>(x));
    const double share = knots[k] + (knots[k + 1] - knots[k]) * (x - k);
    const auto fresh = draw();
    for (size_t d = 0; d < within->size(); ++d) (*within)[d] = 0.7 * (*within)[d] + 0.3 * fresh[d];
    return mix(h, share, *within);
  };
}

inline SimPolicy fixed_share(const StoreHeader& h, double share) {
  std::vector<double> even(static_cast<size_t>(h.num_domains()), 1.0);
  return [h, share, even](int, const std::vector<std::vector<float>>&) { return mix(h, share, even); };
}

inline SimPolicy linear_schedule(const StoreHeader& h, double from, double to) {
  std::vector<double> even(static_cast<size_t>(h.num_domains()), 1.0);
  return [h, from, to, even](int t, const std::vector<std::vector<float>>&) {
    return mix(h, from + (to - from) * t / std::max(1, h.horizon - 1), even);
  };
}

/// Wraps a dma::Policy (e.g. the agent) as a SimPolicy for one episode.
inline SimPolicy from_policy(Policy& p, std::int64_t id, std::uint64_t seed) {
  p.begin_episode(id, seed);
  return [&p, id](int t, const std::vector<std::vector<float>>& hist) {
    const auto& o = hist.back();
    const int D = static_cast<int>((o.size() - obs::kNumGlobal) / obs::kNumPerDomain);
    std::vector<double> w(static_cast<size_t>(D));
    const std::int64_t ids[1] = {id};
    const std::int32_t steps[1] = {t};
    p.act({1, static_cast<int>(o.size()), ids, steps, o}, w);
    return std::vector<float>(w.begin(), w.end());
  };
}

inline OfflineStore sim_store(const SimSpace& sp, const StoreHeader& h, const EvalConfig& eval, int episodes,
                              std::uint64_t seed) {
  OfflineStore s;
  s.name = "sim";
  s.header = h;
  for (int i = 0; i < episodes; ++i) {
    const std::uint64_t es = mix64(seed + static_cast<std::uint64_t>(i));
    const bool uniform = i % 10 == 9;
    auto ep = run_sim_episode(sp, h, eval, i, es,
                              uniform ? fixed_share(h, 1.0 * sp.targets / sp.domains()) : random_walk(h, es ^ 0x77ULL),
                              uniform ? "uniform" : "random");
    s.episodes.push_back(ep.record);
    s.rows.push_back(std::move(ep.rows));
  }
  return s;
}

/// A default simulated space of `horizon` steps, its header, and a store of `episodes`.
struct SimRun {
  SimSpace sp;
  StoreHeader h;
  OfflineStore store;
};
inline SimRun sim_run(int horizon, const EvalConfig& eval, int episodes, std::uint64_t seed) {
  SimRun r;
  r.sp.horizon = horizon;
  r.h = sim_header(r.sp);
  r.store = sim_store(r.sp, r.h, eval, episodes, seed);
  return r;
}

/// Writes an in-memory store to a real store file (one generation per 8 episodes).
inline void write_store(const std::string& path, const OfflineStore& s) {
  auto w = StoreWriter::create(path, s.header);
  for (size_t first = 0; first < s.episodes.size(); first += 8) {
    const size_t last = std::min(s.episodes.size(), first + 8);
    std::vector<EpisodeRecord> recs(s.episodes.begin() + static_cast<std::ptrdiff_t>(first),
                                    s.episodes.begin() + static_cast<std::ptrdiff_t>(last));
    const auto idx = w.begin_episodes(recs);
    for (int t = 0; t < s.header.horizon; ++t) {
      std::vector<Transition> rows;
      for (size_t i = first; i < last; ++i)
        if (t < static_cast<int>(s.rows[i].size())) rows.push_back(s.rows[i][static_cast<size_t>(t)]);
      if (!rows.empty()) w.write(rows);
    }
    for (size_t i = first; i < last; ++i)
      w.end_episode(idx[i - first], s.episodes[i].status, static_cast<std::int32_t>(s.rows[i].size()),
                    s.episodes[i].return_);
    w.flush();
  }
}

using TempDir = ::dma::test::TempDir;

}  // namespace dma::agent_test
