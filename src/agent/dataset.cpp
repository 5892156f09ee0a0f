#include "dataset.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/observation.hpp"
#include "dma/progress.hpp"
#include "dma/score.hpp"
#include "dma/seed.hpp"
#include "features.hpp"

namespace dma::agent {
namespace {

void check_store(const OfflineStore& s) {
  const auto& h = s.header;
  const int D = h.num_domains();
  if (D < 1) throw StoreError(fmt::format("store '{}' names no domains: it is not a trajectory store", s.name));
  if (static_cast<int>(h.domain_fields.size()) != D || static_cast<int>(h.base_eval_loss.size()) != D)
    throw StoreError(
        fmt::format("store '{}': header has {} domains but {} fields and {} base losses: the file is damaged", s.name,
                    D, h.domain_fields.size(), h.base_eval_loss.size()));
  if (!h.obs_layout.empty() && h.obs_dim() != obs::dim(D))
    throw StoreError(
        fmt::format("store '{}' has observations of {} floats, the agent reads {} for {} domains: "
                    "collect it again with this version",
                    s.name, h.obs_dim(), obs::dim(D), D));
  if (s.rows.size() != s.episodes.size())
    throw StoreError(fmt::format("store '{}': {} episodes but {} row lists", s.name, s.episodes.size(), s.rows.size()));
  for (float b : h.base_eval_loss)
    if (!(b > 0) || !std::isfinite(b))
      throw StoreError(fmt::format("store '{}' has a base loss of {}: base losses must be positive", s.name, b));
}

bool finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// The rows an episode can teach: consecutive steps from 0, right sizes, finite values.
int usable_length(const std::vector<Transition>& rows, int domains) {
  const size_t od = static_cast<size_t>(obs::dim(domains)), D = static_cast<size_t>(domains);
  int n = 0;
  for (const auto& r : rows) {
    if (r.step != n || r.observation.size() != od || r.next_observation.size() != od || r.action.size() != D ||
        r.eval_loss.size() != D || !finite(r.observation) || !finite(r.next_observation) || !finite(r.action) ||
        !finite(r.eval_loss))
      break;
    ++n;
  }
  return n;
}

bool usable_status(EpisodeStatus s) { return s == EpisodeStatus::kComplete || s == EpisodeStatus::kInterrupted; }

double balanced(std::span<const float> losses, const StoreHeader& h, const EvalConfig& eval) {
  return balanced_score(field_scores(losses, h.base_eval_loss, h.domain_fields), eval);
}

double population_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

// Rows of one group while it is being filled.
struct GroupBuilder {
  std::vector<torch::Tensor> tokens, next_tokens, is_target, actions, rewards, not_done, episode;
};

torch::Tensor to_tensor(const std::vector<float>& v) { return torch::tensor(v, torch::kFloat); }

// Appends one episode's first `length` rows; returns its recomputed return.
double add_episode(const OfflineStore& s, const std::vector<Transition>& rows, int length, std::int64_t episode_index,
                   const DatasetOptions& o, GroupBuilder& g) {
  const auto& h = s.header;
  const int D = h.num_domains(), od = obs::dim(D);
  std::vector<float> seq(static_cast<size_t>(length + 1) * od);  // (L+1, obs_dim)
  std::vector<float> acts, rew, nd;
  double prev = balanced(h.base_eval_loss, h, o.eval), ret = 0;
  for (int t = 0; t < length; ++t) {
    const auto& r = rows[t];
    std::copy(r.observation.begin(), r.observation.end(), seq.begin() + static_cast<std::ptrdiff_t>(t) * od);
    acts.insert(acts.end(), r.action.begin(), r.action.end());
    const double b = balanced(r.eval_loss, h, o.eval);
    rew.push_back(static_cast<float>(b - prev));
    ret += b - prev;
    prev = b;
    nd.push_back(r.step + 1 >= h.horizon ? 0.0f : 1.0f);  // a timeout backs up 0: the horizon is the task
  }
  const auto& last = rows[length - 1].next_observation;
  std::copy(last.begin(), last.end(), seq.begin() + static_cast<std::ptrdiff_t>(length) * od);
  auto tok = episode_tokens(seq, length + 1, D, o.history);  // (L+1, D, F)
  g.tokens.push_back(tok.slice(0, 0, length));
  g.next_tokens.push_back(tok.slice(0, 1, length + 1));
  g.is_target.push_back(target_mask(rows[0].observation, D).unsqueeze(0).expand({length, D}));
  auto a = to_tensor(acts).view({length, D}).clamp_min(0);  // stored rows sum to 1 up to rounding
  g.actions.push_back(a / a.sum(/*dim=*/-1, /*keepdim=*/true).clamp_min(1e-12));
  g.rewards.push_back(to_tensor(rew));
  g.not_done.push_back(to_tensor(nd));
  g.episode.push_back(torch::full({length}, episode_index, torch::kLong));
  return ret;
}

// A function of (seed, store position, episode id): a store that grows (iterate) or moves
// keeps its split.
bool is_val(size_t store_index, std::int64_t id, const DatasetOptions& o) {
  const std::uint64_t h =
      mix64(derive_seed(o.seed, 0xa6e47ULL) ^ mix64(store_index + 0x5107eULL) ^ mix64(static_cast<std::uint64_t>(id)));
  return static_cast<double>(h >> 11) * 0x1.0p-53 < o.val_fraction;
}

// Marks the top bc_top_q of one store's complete training episodes (at least one); its
// validation episodes at least as good as the worst cloned one form the validation BC set.
// Each store is ranked on its own: stores of different domain spaces score on different
// scales, and a pooled ranking would clone only the space that scores highest.
void mark_top_of_store(std::vector<EpisodeInfo*>& store, double q) {
  std::vector<EpisodeInfo*> train;
  for (auto* e : store)
    if (e->complete && !e->val) train.push_back(e);
  if (train.empty())
    for (auto* e : store)
      if (!e->val) train.push_back(e);  // only interrupted episodes: clone the best of them
  if (train.empty()) return;            // a store of validation episodes only
  std::sort(train.begin(), train.end(), [](const EpisodeInfo* a, const EpisodeInfo* b) { return a->ret > b->ret; });
  const size_t n = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * static_cast<double>(train.size()))));
  double threshold = 0;
  for (size_t k = 0; k < std::min(n, train.size()); ++k) {
    train[k]->top = true;
    threshold = train[k]->ret;
  }
  for (auto* e : store)
    if (e->val && e->complete && e->ret >= threshold) e->top = true;
}

void mark_top(Dataset& ds, double q) {
  std::map<std::string, std::vector<EpisodeInfo*>> by_store;
  for (auto& e : ds.episodes) by_store[e.store].push_back(&e);
  for (auto& [name, store] : by_store) mark_top_of_store(store, q);
  if (std::none_of(ds.episodes.begin(), ds.episodes.end(), [](const EpisodeInfo& e) { return e.val && e.top; }))
    for (auto& e : ds.episodes)
      if (e.val) e.top = true;  // no validation episode is that good: validate BC on all of them
}

torch::Tensor rows_where(const torch::Tensor& mask) { return mask.nonzero().view(-1); }

void finish_group(Group& g, const Dataset& ds) {
  const auto n = g.episode.size(0);
  auto val = torch::empty({n}, torch::kBool), top = torch::empty({n}, torch::kBool);
  auto ep = g.episode.accessor<std::int64_t, 1>();
  auto va = val.accessor<bool, 1>();
  auto ta = top.accessor<bool, 1>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto& e = ds.episodes[static_cast<size_t>(ep[i])];
    va[i] = e.val;
    ta[i] = e.top;
  }
  g.train_rows = rows_where(~val);
  g.val_rows = rows_where(val);
  g.bc_rows = rows_where(~val & top);
  g.val_bc_rows = rows_where(val & top);
}

}  // namespace

std::pair<double, double> normalized_scales(const std::vector<OfflineStore>& stores, const EvalConfig& eval) {
  std::vector<double> src, tgt;
  for (const auto& s : stores) {
    check_store(s);
    const int D = s.header.num_domains();
    for (size_t i = 0; i < s.episodes.size(); ++i) {
      if (s.episodes[i].status != EpisodeStatus::kComplete) continue;
      const int n = usable_length(s.rows[i], D);
      if (n == 0 || n != static_cast<int>(s.rows[i].size())) continue;
      const auto f = field_scores(s.rows[i][n - 1].eval_loss, s.header.base_eval_loss, s.header.domain_fields);
      src.push_back(f.source);
      tgt.push_back(f.target);
    }
  }
  double a = population_std(src), b = population_std(tgt);
  if (!(a > 1e-9)) {
    log_line(
        fmt::format("agent: cannot measure the spread of final source scores ({} episodes): keeping "
                    "eval.source_scale = {}",
                    src.size(), eval.source_scale));
    a = eval.source_scale;
  }
  if (!(b > 1e-9)) {
    log_line(
        fmt::format("agent: cannot measure the spread of final target scores ({} episodes): keeping "
                    "eval.target_scale = {}",
                    tgt.size(), eval.target_scale));
    b = eval.target_scale;
  }
  return {a, b};
}

Dataset build_dataset(const std::vector<OfflineStore>& stores, const DatasetOptions& o) {
  Dataset ds;
  std::map<int, GroupBuilder> builders;
  for (size_t si = 0; si < stores.size(); ++si) {
    const auto& s = stores[si];
    check_store(s);
    const int D = s.header.num_domains();
    for (size_t i = 0; i < s.episodes.size(); ++i) {
      const auto& e = s.episodes[i];
      if (!usable_status(e.status)) continue;
      const int n = usable_length(s.rows[i], D);
      if (n == 0) continue;
      EpisodeInfo info{s.name,
                       e.id,
                       e.status == EpisodeStatus::kComplete && n == static_cast<int>(s.rows[i].size()),
                       is_val(si, e.id, o),
                       false,
                       0.0};
      info.ret = add_episode(s, s.rows[i], n, static_cast<std::int64_t>(ds.episodes.size()), o, builders[D]);
      ds.episodes.push_back(info);
    }
  }
  if (ds.episodes.empty())
    throw StoreError("agent: the stores hold no complete or interrupted episode with a usable step: collect first");
  if (std::none_of(ds.episodes.begin(), ds.episodes.end(), [](const EpisodeInfo& e) { return e.val; }) &&
      o.val_fraction > 0 && ds.episodes.size() >= 2)
    ds.episodes.back().val = true;  // keep a validation signal on tiny stores
  if (std::all_of(ds.episodes.begin(), ds.episodes.end(), [](const EpisodeInfo& e) { return e.val; }))
    ds.episodes.front().val = false;
  mark_top(ds, o.bc_top_q);
  for (auto& [D, b] : builders) {
    Group g;
    g.domains = D;
    g.tokens = torch::cat(b.tokens);
    g.next_tokens = torch::cat(b.next_tokens);
    g.is_target = torch::cat(b.is_target).contiguous();
    g.actions = torch::cat(b.actions);
    g.rewards = torch::cat(b.rewards);
    g.not_done = torch::cat(b.not_done);
    g.episode = torch::cat(b.episode);
    finish_group(g, ds);
    ds.train_transitions += g.train_rows.size(0);
    ds.groups.push_back(std::move(g));
  }
  return ds;
}

}  // namespace dma::agent
