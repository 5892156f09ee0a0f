// `plot`: SVG pictures of a store. Shapes: T steps, D domains, P policies.
//   weights_<policy>.svg  mean weight schedule as stacked areas (D series, legend)
//   scores.svg            source, target and balanced score per step (3P series)
//   target_share.svg      target-field share of the weights per step (P series; a fixed:
//                         policy is a flat reference line, e.g. the oracle's best share)
//   spending.svg          final balanced against final source score, one point per policy
//                         (P series; the fixed: shares joined as the frontier of static mixes)
//   rewards.svg           distribution of per-step rewards (P series)
//   returns.svg           distribution of episode returns (P series)
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/policy.hpp"
#include "dma/replay.hpp"
#include "replay_internal.hpp"
#include "svg.hpp"

namespace dma::replay {
namespace {

namespace fs = std::filesystem;
using svg::Axes;
using svg::Canvas;
using svg::Points;

/// Episodes of one policy, named by it.
using Groups = std::vector<std::pair<std::string, std::vector<const EpisodeData*>>>;

/// Episodes per policy (policy order of first appearance); ended ones when a policy has any.
Groups by_policy(const StoreData& d) {
  Groups groups;
  for (const auto& e : d.episodes) {
    if (e.steps == 0) continue;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == e.record.policy; });
    if (it == groups.end()) it = groups.insert(groups.end(), {e.record.policy, {}});
    it->second.push_back(&e);
  }
  for (auto& [name, eps] : groups) {
    std::vector<const EpisodeData*> ended;
    for (const auto* e : eps)
      if (e->record.status != EpisodeStatus::kRunning) ended.push_back(e);
    if (!ended.empty()) eps = ended;
  }
  return groups;
}

/// Mean and standard deviation per step of `get(e, t)` over episodes that reached step t.
struct StepCurve {
  std::vector<double> mean, std;
};
template <class Get>
StepCurve step_curve(const std::vector<const EpisodeData*>& eps, int horizon, Get get) {
  StepCurve c;
  for (int t = 0; t < horizon; ++t) {
    std::vector<double> v;
    for (const auto* e : eps)
      if (t < e->steps) v.push_back(get(*e, static_cast<std::size_t>(t)));
    if (v.empty()) break;
    const Stats s = stats(v);
    c.mean.push_back(s.mean);
    c.std.push_back(s.std);
  }
  return c;
}

std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

std::string series_attr(const std::string& name) {
  return fmt::format("class=\"series\" data-name=\"{}\"", svg::escape(name));
}

/// Steps on the x axis: the longest curve, at least 2 so the axis has a span.
double curve_steps(const std::vector<StepCurve>& curves) {
  double steps = 2;
  for (const auto& c : curves) steps = std::max(steps, static_cast<double>(c.mean.size()));
  return steps;
}

/// One line per policy at steps 1..T over a ± one std band (clipped to [clip_lo, clip_hi]),
/// coloured as in policy_legend.
void draw_step_curves(Canvas& c, const Axes& ax, const std::vector<StepCurve>& curves, const Groups& groups,
                      double clip_lo = -INFINITY, double clip_hi = INFINITY) {
  const std::size_t p = groups.size();
  for (std::size_t i = 0; i < p; ++i) {
    Points line, band_hi, band_lo;
    for (std::size_t t = 0; t < curves[i].mean.size(); ++t) {
      const double x = ax.px(static_cast<double>(t + 1));
      line.push_back({x, ax.py(curves[i].mean[t])});
      band_hi.push_back({x, ax.py(std::min(clip_hi, curves[i].mean[t] + curves[i].std[t]))});
      band_lo.push_back({x, ax.py(std::max(clip_lo, curves[i].mean[t] - curves[i].std[t]))});
    }
    band_hi.insert(band_hi.end(), band_lo.rbegin(), band_lo.rend());
    c.polygon(band_hi, svg::colour(i, p), "class=\"band\" fill-opacity=\"0.15\"");
    c.polyline(line, svg::colour(i, p), 2, series_attr(groups[i].first));
  }
}

std::string legend_name(const Groups& groups, std::size_t i) {
  return fmt::format("{} ({})", groups[i].first, groups[i].second.size());
}

/// Width the policy legend needs: long policy names (agent:<path>) must not run off the canvas.
double legend_width(const Groups& groups) {
  std::size_t longest = 0;
  for (std::size_t i = 0; i < groups.size(); ++i) longest = std::max(longest, legend_name(groups, i).size());
  return std::max(170.0, 30.0 + 6.5 * static_cast<double>(longest));
}

/// "policy (n episodes)" per policy, in the colours of draw_step_curves.
void policy_legend(Canvas& c, double x, double y, const Groups& groups) {
  std::vector<std::string> names, colours;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    names.push_back(legend_name(groups, i));
    colours.push_back(svg::colour(i, groups.size()));
  }
  c.legend(x, y, names, colours);
}

std::string plot_weights(const StoreData& d, const std::string& policy, const std::vector<const EpisodeData*>& eps,
                         const std::string& dir) {
  const auto& h = d.header;
  const auto dn = static_cast<std::size_t>(h.num_domains());
  std::vector<std::vector<double>> mean;  // (T, D)
  for (int t = 0; t < h.horizon; ++t) {
    std::vector<double> w(dn, 0.0);
    int n = 0;
    for (const auto* e : eps)
      if (t < e->steps) {
        ++n;
        for (std::size_t k = 0; k < dn; ++k) w[k] += e->weights[static_cast<std::size_t>(t) * dn + k];
      }
    if (n == 0) break;
    for (auto& x : w) x /= n;
    mean.push_back(w);
  }
  const double row = dn > 24 ? 11 : 16;  // the legend's line height (svg::Canvas::legend)
  const double legend_w = 190, width = 760 + legend_w, height = std::max(460.0, 70.0 + row * static_cast<double>(dn));
  Canvas c(width, height, fmt::format("weights of {}", policy));
  const double steps = static_cast<double>(mean.size());
  Axes ax(70, 40, 640, 360, -0.5, std::max(0.5, steps - 0.5), 0, 1);
  ax.draw(c, fmt::format("{}: mean weight schedule ({} episodes)", policy, eps.size()), "re-weighting step",
          "domain weight (stacked)");
  std::vector<double> below(mean.size(), 0.0), source_top(mean.size(), 0.0);
  std::vector<std::string> names, colours;
  for (std::size_t k = 0; k < dn; ++k) {
    Points upper, lower;
    for (std::size_t t = 0; t < mean.size(); ++t) {
      const double x0 = static_cast<double>(t) - 0.5, x1 = static_cast<double>(t) + 0.5;
      lower.push_back({ax.px(x0), ax.py(below[t])});
      lower.push_back({ax.px(x1), ax.py(below[t])});
      below[t] += mean[t][k];
      if (h.domain_fields[k] == Field::kSource) source_top[t] = below[t];
      upper.push_back({ax.px(x0), ax.py(below[t])});
      upper.push_back({ax.px(x1), ax.py(below[t])});
    }
    Points poly = upper;
    poly.insert(poly.end(), lower.rbegin(), lower.rend());
    names.push_back(fmt::format("{} ({})", h.domain_names[k], field_name(h.domain_fields[k])));
    colours.push_back(svg::colour(k, dn));
    c.polygon(poly, colours.back(), series_attr(h.domain_names[k]));
  }
  Points boundary;  // where the source field ends: the target share is above it
  for (std::size_t t = 0; t < mean.size(); ++t) {
    boundary.push_back({ax.px(static_cast<double>(t) - 0.5), ax.py(source_top[t])});
    boundary.push_back({ax.px(static_cast<double>(t) + 0.5), ax.py(source_top[t])});
  }
  c.polyline(boundary, "#000000", 2, "class=\"guide\" stroke-dasharray=\"6,3\"");
  // Listed top-down as stacked, so the legend reads like the picture.
  c.legend(730, 40, std::vector<std::string>(names.rbegin(), names.rend()),
           std::vector<std::string>(colours.rbegin(), colours.rend()));
  c.text(730, 40 + row * static_cast<double>(dn) + 14, "- - - source | target", 10);
  const std::string path = (fs::path(dir) / ("weights_" + file_safe(policy) + ".svg")).string();
  c.save(path);
  return path;
}

std::string plot_scores(const StoreData& d, const Groups& groups, const std::string& dir) {
  Canvas c(1110 + legend_width(groups), 440, "scores per step");
  struct Panel {
    const char* title;
    std::vector<float> EpisodeData::*member;
  };
  const Panel panels[3] = {{"source score", &EpisodeData::source},
                           {"target score", &EpisodeData::target},
                           {"balanced score", &EpisodeData::balanced}};
  for (int k = 0; k < 3; ++k) {
    const auto member = panels[k].member;
    std::vector<StepCurve> curves;
    double lo = 0, hi = 0;
    for (const auto& [name, eps] : groups) {
      curves.push_back(
          step_curve(eps, d.header.horizon, [&](const EpisodeData& e, std::size_t t) { return (e.*member)[t]; }));
      for (std::size_t t = 0; t < curves.back().mean.size(); ++t) {
        lo = std::min(lo, curves.back().mean[t] - curves.back().std[t]);
        hi = std::max(hi, curves.back().mean[t] + curves.back().std[t]);
      }
    }
    const double pad = 0.05 * (hi - lo + 1e-9);
    Axes ax(70 + 350.0 * k, 40, 290, 330, 1, curve_steps(curves), lo - pad, hi + pad);
    const std::string title = panels[k].title + (k == 2 ? fmt::format(" ({})", d.eval.score) : "");
    ax.draw(c, title, "re-weighting step", panels[k].title);
    draw_step_curves(c, ax, curves, groups);
  }
  policy_legend(c, 1110, 40, groups);
  const std::string path = (fs::path(dir) / "scores.svg").string();
  c.save(path);
  return path;
}

/// Mean target-field share of the weights per step and policy (fixed: policies are flat).
std::string plot_target_share(const StoreData& d, const Groups& groups, const std::string& dir) {
  const auto& fields = d.header.domain_fields;
  const std::size_t dn = fields.size();
  const auto share = [&](const EpisodeData& e, std::size_t t) {
    double s = 0;  // weights are (T, D) row-major
    for (std::size_t k = 0; k < dn; ++k)
      if (fields[k] == Field::kTarget) s += e.weights[t * dn + k];
    return s;
  };
  std::vector<StepCurve> curves;
  for (const auto& [name, eps] : groups) curves.push_back(step_curve(eps, d.header.horizon, share));
  Canvas c(790 + legend_width(groups), 460, "target share per step");
  Axes ax(70, 40, 700, 350, 1, curve_steps(curves), 0, 1);
  ax.draw(c, "target share per step", "re-weighting step", "target-field share of the weights");
  draw_step_curves(c, ax, curves, groups, 0, 1);  // a share's band stays inside [0, 1]
  policy_legend(c, 790, 40, groups);
  const std::string path = (fs::path(dir) / "target_share.svg").string();
  c.save(path);
  return path;
}

/// The target share of a `fixed:<share>` policy; nothing for other policies and for fixed
/// per-domain mixtures. Numbers are read as the policy specs read them.
std::optional<double> fixed_share_of(const std::string& policy) {
  if (policy_kind(policy) != "fixed") return std::nullopt;
  return parse_number(std::string_view(policy).substr(policy.find(':') + 1));
}

/// Final balanced score against final source score, a point (± one std bars) per policy. The
/// fixed target shares are joined in order of share: a policy above that line scores more
/// than a static mix spending the same source, one on it only spends differently. Under the
/// budget score a dashed line marks the tolerance.
std::string plot_spending(const StoreData& d, const Groups& groups, const std::string& dir) {
  struct Point {
    Stats source, balanced;
  };
  std::vector<Point> pts;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& [name, eps] : groups) {
    std::vector<double> s, b;
    for (const auto* e : eps) {
      s.push_back(e->final_source());
      b.push_back(e->final_balanced());
    }
    pts.push_back({stats(s), stats(b)});
    xlo = std::min(xlo, pts.back().source.mean - pts.back().source.std);
    xhi = std::max(xhi, pts.back().source.mean + pts.back().source.std);
    ylo = std::min(ylo, pts.back().balanced.mean - pts.back().balanced.std);
    yhi = std::max(yhi, pts.back().balanced.mean + pts.back().balanced.std);
  }
  const bool budget = d.eval.score == "budget";
  if (budget) {  // the tolerance stays in view
    xlo = std::min(xlo, -d.eval.budget_tolerance);
    xhi = std::max(xhi, -d.eval.budget_tolerance);
  }
  const double px = 0.05 * (xhi - xlo + 1e-6), py = 0.05 * (yhi - ylo + 1e-6);
  Canvas c(790 + legend_width(groups), 460, "final balanced score against final source score");
  Axes ax(70, 40, 700, 350, xlo - px, xhi + px, ylo - py, yhi + py);
  ax.draw(c, fmt::format("final balanced ({}) against final source score", d.eval.score), "final source score",
          "final balanced score");
  if (budget) {
    const double x = ax.px(-d.eval.budget_tolerance);
    c.line(x, ax.py(yhi + py), x, ax.py(ylo - py), "#888888", 1, "stroke-dasharray=\"5,4\" class=\"budget\"");
  }
  std::vector<std::pair<double, std::size_t>> fixed;
  for (std::size_t i = 0; i < groups.size(); ++i)
    if (const auto share = fixed_share_of(groups[i].first)) fixed.push_back({*share, i});
  std::sort(fixed.begin(), fixed.end());
  Points frontier;
  for (const auto& [share, i] : fixed) frontier.push_back({ax.px(pts[i].source.mean), ax.py(pts[i].balanced.mean)});
  if (frontier.size() > 1) c.polyline(frontier, "#999999", 1.5, "class=\"frontier\"");
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const auto& p = pts[i];
    const std::string col = svg::colour(i, groups.size());
    const double x = ax.px(p.source.mean), y = ax.py(p.balanced.mean);
    c.line(ax.px(p.source.mean - p.source.std), y, ax.px(p.source.mean + p.source.std), y, col, 1);
    c.line(x, ax.py(p.balanced.mean - p.balanced.std), x, ax.py(p.balanced.mean + p.balanced.std), col, 1);
    c.circle(x, y, 5, col, series_attr(groups[i].first));
  }
  policy_legend(c, 790, 40, groups);
  const std::string path = (fs::path(dir) / "spending.svg").string();
  c.save(path);
  return path;
}

/// Overlaid step histograms of `values` per policy (fraction of each policy's values).
std::string plot_histograms(const std::vector<std::pair<std::string, std::vector<double>>>& values,
                            const std::string& title, const std::string& xlabel, const std::string& path) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& [n, v] : values)
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!(hi > lo)) lo -= 0.5, hi += 0.5;
  const int bins = 30;
  const double width = (hi - lo) / bins;
  std::vector<std::vector<double>> frac;
  double top = 0;
  for (const auto& [n, v] : values) {
    std::vector<double> f(bins, 0.0);
    for (double x : v) f[static_cast<std::size_t>(std::clamp(static_cast<int>((x - lo) / width), 0, bins - 1))] += 1;
    for (auto& x : f) top = std::max(top, x /= std::max<std::size_t>(1, v.size()));
    frac.push_back(f);
  }
  const std::size_t p = values.size();
  Canvas c(960, 460, title);
  Axes ax(70, 40, 700, 350, lo, hi, 0, top * 1.05);
  ax.draw(c, title, xlabel, "fraction");
  std::vector<std::string> names, colours;
  for (std::size_t i = 0; i < p; ++i) {
    Points pts{{ax.px(lo), ax.py(0)}};
    for (int b = 0; b < bins; ++b) {
      pts.push_back({ax.px(lo + b * width), ax.py(frac[i][static_cast<std::size_t>(b)])});
      pts.push_back({ax.px(lo + (b + 1) * width), ax.py(frac[i][static_cast<std::size_t>(b)])});
    }
    pts.push_back({ax.px(hi), ax.py(0)});
    c.polyline(pts, svg::colour(i, p), 2, series_attr(values[i].first));
    names.push_back(fmt::format("{} ({})", values[i].first, values[i].second.size()));
    colours.push_back(svg::colour(i, p));
  }
  c.legend(790, 40, names, colours);
  c.save(path);
  return path;
}

/// Episode returns per policy: one column of dots each, with the mean and ± one std.
std::string plot_returns(const std::vector<std::pair<std::string, std::vector<double>>>& values,
                         const std::string& path) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& [n, v] : values)
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!(hi > lo)) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  const std::size_t p = values.size();
  Canvas c(std::max(520.0, 160.0 + 110.0 * static_cast<double>(p)), 480, "episode returns");
  Axes ax(70, 40, 110.0 * static_cast<double>(p), 340, -0.5, static_cast<double>(p) - 0.5, lo - pad, hi + pad);
  ax.draw(c, "episode returns by policy (ended episodes)", "", "return", false);
  for (std::size_t i = 0; i < p; ++i) {
    const auto& v = values[i].second;
    const Stats s = stats(v);
    const double x = ax.px(static_cast<double>(i));
    const std::string col = svg::colour(i, p);
    c.raw(fmt::format("<g {}>\n", series_attr(values[i].first)));
    for (std::size_t k = 0; k < v.size(); ++k) {
      const double jitter = (static_cast<double>((k * 37) % 17) / 16.0 - 0.5) * 40;  // deterministic spread
      c.circle(x + jitter, ax.py(v[k]), 3, col, "fill-opacity=\"0.7\"");
    }
    c.line(x - 28, ax.py(s.mean), x + 28, ax.py(s.mean), "#000000", 2);
    c.line(x, ax.py(s.mean - s.std), x, ax.py(s.mean + s.std), "#000000", 1);
    c.raw("</g>\n");
    c.text(x, 40 + 340 + 18, values[i].first, 11, "middle");
    c.text(x, 40 + 340 + 32, fmt::format("n={}", v.size()), 10, "middle");
  }
  c.save(path);
  return path;
}

}  // namespace

std::vector<std::string> plot(const std::string& store, const std::string& out_dir, const Selection& selection,
                              const std::string& score) {
  const StoreData d = load(store, selection, score);
  const auto groups = by_policy(d);
  if (groups.empty())
    throw ConfigError(
        fmt::format("store '{}' has no selected episode with rows to plot: check --policy and --status", store));
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec))
    throw ConfigError(fmt::format("cannot create the plot directory '{}': check the --out path", out_dir));
  std::vector<std::string> files;
  for (const auto& [name, eps] : groups) files.push_back(plot_weights(d, name, eps, out_dir));
  files.push_back(plot_scores(d, groups, out_dir));
  files.push_back(plot_target_share(d, groups, out_dir));
  files.push_back(plot_spending(d, groups, out_dir));
  std::vector<std::pair<std::string, std::vector<double>>> rewards, returns;
  for (const auto& [name, eps] : groups) {
    rewards.push_back({name, {}});
    returns.push_back({name, {}});
    for (const auto* e : eps) {
      rewards.back().second.insert(rewards.back().second.end(), e->rewards.begin(), e->rewards.end());
      double sum = 0;  // a running episode has no stored return yet
      for (float r : e->rewards) sum += r;
      returns.back().second.push_back(e->record.status == EpisodeStatus::kRunning ? sum : e->record.return_);
    }
  }
  files.push_back(plot_histograms(rewards, "per-step rewards", "reward", (fs::path(out_dir) / "rewards.svg").string()));
  files.push_back(plot_returns(returns, (fs::path(out_dir) / "returns.svg").string()));
  return files;
}

}  // namespace dma::replay
