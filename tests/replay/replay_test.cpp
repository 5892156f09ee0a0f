// dma_replay (DESIGN §6): summaries and comparisons against values computed here,
// exports read back by h5py, SVGs rendered by rsvg-convert, follow on a live writer, the
// Python helper, and bad input through the real program.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "../store/synthetic_store.hpp"
#include "dma/error.hpp"
#include "dma/replay.hpp"
#include "dma/score.hpp"

namespace dma {
namespace {

using testing::synthetic_header;
using testing::synthetic_losses;
using testing::TempDir;
using testing::write_generation;

struct Cmd {
  int status = -1;  // exit code, or -signal
  std::string out;
};

/// Runs a shell command, capturing stdout and stderr together.
Cmd sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  Cmd r;
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) r.out += buf;
  const int st = p ? pclose(p) : -1;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return r;
}

const std::string kBin = DMA_BIN_DIR;
const std::string kSrc = DMA_SOURCE_DIR;

/// The test store: 3 policies, 9 complete episodes (ids 0..8), one failed after 4 steps
/// (id 9, random) and one interrupted after 3 (id 10, uniform).
/// Episodes 0..8 of policies random, uniform, fixed:0.3 (id % 3); with `paired`, the three
/// policies share a seed per id / 3, as in an evaluation.
std::string make_test_store(const TempDir& dir, const std::string& name = "store.h5",
                            const std::string& score = "budget", bool paired = false,
                            const std::vector<std::string>& policies = {"random", "uniform", "fixed:0.3"}) {
  const auto path = dir.file(name);
  auto w = StoreWriter::create(path, synthetic_header({.score = score}));
  for (std::int64_t id = 0; id < 9; ++id)
    write_generation(w, {id}, {policies[static_cast<std::size_t>(id % 3)]}, w.header().horizon, true,
                     0.2 + 0.3 * static_cast<double>(id % 3), paired ? 3 : 1);
  write_generation(w, {9}, {"random"}, 4);
  write_generation(w, {10}, {"uniform"}, 3, /*end=*/false);
  w.interrupt_running();
  return path;
}

/// Final balanced score of a synthetic complete episode, computed here from the generator.
double expected_balanced(const StoreHeader& h, std::int64_t id, const std::string& score) {
  const EvalConfig eval = with_score(parse_ini_text(h.config_ini).eval, score);
  const auto losses = synthetic_losses(h, id, h.horizon - 1);
  return balanced_score(field_scores(losses, h.base_eval_loss, h.domain_fields), eval);
}

std::vector<std::map<std::string, std::string>> parse_csv(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> head;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& l) {  // RFC 4180 fields: quoted when they hold a comma or a quote
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (quoted && l[i] == '"' && i + 1 < l.size() && l[i + 1] == '"')
        out.back() += l[++i];
      else if (l[i] == '"')
        quoted = !quoted;
      else if (l[i] == ',' && !quoted)
        out.emplace_back();
      else
        out.back() += l[i];
    }
    return out;
  };
  while (std::getline(in, line)) {
    if (head.empty()) {
      head = split(line);
      continue;
    }
    const auto cells = split(line);
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < head.size() && i < cells.size(); ++i) row[head[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

TEST(ReplaySelection, ParsesAndMatches) {
  const auto s = replay::parse_selection("random,fixed", "complete,failed", "2-5");
  EpisodeRecord e{.id = 3, .status = EpisodeStatus::kComplete, .policy = "fixed:0.3"};
  EXPECT_TRUE(s.matches(e));
  e.policy = "uniform";
  EXPECT_FALSE(s.matches(e));
  e.policy = "random";
  e.id = 6;
  EXPECT_FALSE(s.matches(e));
  e.id = 2;
  e.status = EpisodeStatus::kInterrupted;
  EXPECT_FALSE(s.matches(e));
  EXPECT_TRUE(replay::parse_selection("", "all", "").matches(e));
  EXPECT_EQ(replay::parse_selection("", "", "7-").first_id, 7);
  EXPECT_EQ(replay::parse_selection("", "", "-7").last_id, 7);
  EXPECT_THROW(replay::parse_selection("", "done", ""), ConfigError);
  EXPECT_THROW(replay::parse_selection("", "", "a-b"), ConfigError);
  EXPECT_THROW(replay::parse_selection("", "", "9-3"), ConfigError);
}

TEST(ReplayStats, MeanStdAndStudentInterval) {
  const auto s = replay::stats({1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_NEAR(s.ci95, 3.182 * std::sqrt(5.0 / 3.0) / 2.0, 1e-9);  // t(0.975, 3) = 3.182
  std::vector<double> many(101);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<double>(i);
  EXPECT_NEAR(replay::stats(many).ci95 / (replay::stats(many).std / std::sqrt(101.0)), 1.984, 2e-3);
  EXPECT_EQ(replay::stats({}).n, 0);
  EXPECT_EQ(replay::stats({5.0}).ci95, 0.0);
}

TEST(ReplaySummary, CountsStatusesAndRecomputesScores) {
  TempDir dir;
  const auto path = make_test_store(dir);
  const auto h = StoreReader::open(path).header();
  for (const std::string score : {"", "mean", "min"}) {
    const auto rows = parse_csv(replay::summary(path, replay::TableFormat::kCsv, score));
    ASSERT_EQ(rows.size(), 4u);  // 3 policies + all
    std::map<std::string, std::map<std::string, std::string>> by;
    for (const auto& r : rows) by[r.at("policy")] = r;
    EXPECT_EQ(by["random"]["complete"], "3");
    EXPECT_EQ(by["random"]["failed"], "1");
    EXPECT_EQ(by["uniform"]["interrupted"], "1");
    EXPECT_EQ(by["random"]["steps"], std::to_string(3 * h.horizon + 4));
    EXPECT_EQ(by["all"]["steps"], std::to_string(9 * h.horizon + 4 + 3));
    EXPECT_EQ(by["all"]["tokens"], std::to_string(9 * 1000 * h.horizon + 4000 + 3000));
    const std::string kind = score.empty() ? "budget" : score;
    for (const auto& [policy, ids] :
         std::map<std::string, std::vector<int>>{{"random", {0, 3, 6}}, {"uniform", {1, 4, 7}}}) {
      double mean = 0;
      for (int id : ids) mean += expected_balanced(h, id, kind) / 3;
      EXPECT_NEAR(std::stod(by[policy]["final_balanced_mean"]), mean, 1e-5) << policy << " " << kind;
    }
  }
  const std::string text = replay::summary(path, replay::TableFormat::kText);
  EXPECT_NE(text.find("4 domains (2 source, 2 target)"), std::string::npos) << text;
  EXPECT_NE(replay::summary(path, replay::TableFormat::kMarkdown).find("| --- |"), std::string::npos);
  EXPECT_THROW(replay::summary(path, replay::TableFormat::kText, "best"), ConfigError);
}

TEST(ReplayCompare, OneTableAcrossStores) {
  TempDir dir;
  const auto a = make_test_store(dir, "a.h5");
  const auto b = make_test_store(dir, "b.h5", "mean");  // its own config picks another score
  const auto rows = parse_csv(replay::compare({a, b}, replay::TableFormat::kCsv));
  ASSERT_EQ(rows.size(), 6u);
  const auto h = StoreReader::open(a).header();
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("episodes"), "3");
    const std::string kind = r.at("store") == "a.h5" ? "budget" : "mean";
    std::vector<double> v;
    const int first = r.at("policy") == "random" ? 0 : r.at("policy") == "uniform" ? 1 : 2;
    for (int id = first; id < 9; id += 3) v.push_back(expected_balanced(h, id, kind));
    const auto s = replay::stats(v);
    EXPECT_NEAR(std::stod(r.at("balanced_mean")), s.mean, 1e-5);
    EXPECT_NEAR(std::stod(r.at("balanced_ci95")), 4.303 * s.std / std::sqrt(3.0), 1e-4);  // t(0.975, 2)
  }
  const auto text = replay::compare({a, b}, replay::TableFormat::kText);
  EXPECT_NE(text.find("budget  a.h5"), std::string::npos) << text;
  EXPECT_NE(text.find("mean    b.h5"), std::string::npos) << text;
}

// Independent pipelines: each store's paired lead, averaged over the stores with an interval
// over them; not across stores scored differently.
TEST(ReplayCompare, AveragesThePairedLeadOverStores) {
  TempDir dir;
  const auto a = make_test_store(dir, "a.h5", "budget", /*paired=*/true);
  const auto b = make_test_store(dir, "b.h5", "mean", /*paired=*/true);
  for (const std::string score : {"budget", "min"}) {
    const auto rows = parse_csv(replay::compare({a, b}, replay::TableFormat::kCsv, score, "uniform"));
    std::map<std::string, std::vector<double>> per_store;
    std::map<std::string, double> across;
    for (const auto& r : rows) {
      if (r.at("diff_mean").empty()) continue;
      if (r.at("store") == "mean of 2 stores")
        across[r.at("policy")] = std::stod(r.at("diff_mean"));
      else
        per_store[r.at("policy")].push_back(std::stod(r.at("diff_mean")));
    }
    ASSERT_EQ(across.size(), 2u) << score;
    for (const auto& [policy, leads] : per_store) {
      ASSERT_EQ(leads.size(), 2u);
      EXPECT_NEAR(across.at(policy), (leads[0] + leads[1]) / 2, 1e-5) << policy;
    }
  }
  // Each store under its own score (budget, mean): no average.
  const auto own = replay::compare({a, b}, replay::TableFormat::kText, "", "uniform");
  EXPECT_EQ(own.find("mean of 2 stores  "), std::string::npos) << own;
}

TEST(ReplayCompare, MatchesAgentsAcrossStoresByCheckpointName) {
  // An ablation: each pipeline's own agent and one variant of it, in the pipeline's directory.
  TempDir dir;
  std::vector<std::string> stores;
  for (const std::string k : {"1", "2"})
    stores.push_back(make_test_store(dir, "eval-" + k + ".h5", "budget", /*paired=*/true,
                                     {"agent:p" + k + "/time-only.pt", "agent:p" + k + "/agent.pt", "uniform"}));
  const auto rows = parse_csv(replay::compare(stores, replay::TableFormat::kCsv, "budget"));
  std::map<std::string, double> across;
  for (const auto& r : rows) {
    if (r.at("store") == "mean of 2 stores")
      across[r.at("policy")] = std::stod(r.at("diff_mean"));
    else
      EXPECT_EQ(r.at("reference"), "agent:p" + std::string(1, r.at("store").at(5)) + "/agent.pt") << r.at("store");
  }
  EXPECT_EQ(across.size(), 2u);
  EXPECT_EQ(across.count("agent:time-only"), 1u);
  EXPECT_EQ(across.count("uniform"), 1u);
  // The variant as the reference, named as it is matched across the stores.
  for (const auto& r : parse_csv(replay::compare(stores, replay::TableFormat::kCsv, "budget", "agent:time-only")))
    EXPECT_NE(r.at("reference").find("time-only.pt"), std::string::npos);
}

TEST(ReplayCompare, PairsEveryPolicyWithTheReferenceUnderEachScore) {
  TempDir dir;
  const auto path = make_test_store(dir, "eval.h5", "budget", /*paired=*/true);
  const auto h = StoreReader::open(path).header();
  const auto rows = parse_csv(
      replay::compare({path}, replay::TableFormat::kCsv, "budget,budget:0.01,mean,min,normalized", "uniform"));
  ASSERT_EQ(rows.size(), 5u * 3u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("reference"), "uniform");
    if (r.at("policy") == "uniform") {
      EXPECT_EQ(r.at("diff_mean"), "");
      continue;
    }
    if (r.at("score") == "normalized") continue;  // its scales come from the store's own spread
    const int first = r.at("policy") == "random" ? 0 : 2;
    std::vector<double> diffs;  // uniform's episodes are ids 1, 4, 7: the same seeds as first, +3, +6
    for (int k = 0; k < 3; ++k)
      diffs.push_back(expected_balanced(h, 1 + 3 * k, r.at("score")) -
                      expected_balanced(h, first + 3 * k, r.at("score")));
    const auto s = replay::stats(diffs);
    EXPECT_NEAR(std::stod(r.at("diff_mean")), s.mean, 1e-5) << r.at("score") << " " << r.at("policy");
    EXPECT_NEAR(std::stod(r.at("diff_ci_high")) - std::stod(r.at("diff_mean")), s.ci95, 1e-4);
    EXPECT_LE(std::stod(r.at("p_holm")), 1.0);
  }
  // budget:0.01 differs from budget wherever a source score lies between -0.02 and -0.01
  const auto text = replay::compare({path}, replay::TableFormat::kText, "budget:0.01", "uniform");
  EXPECT_NE(text.find("reference − policy: paired by seed"), std::string::npos) << text;
  for (const char* bad : {"best", "budget:x", "budget,,mean"})
    EXPECT_THROW(replay::compare({path}, replay::TableFormat::kText, bad), ConfigError) << bad;
  EXPECT_THROW(replay::compare({path}, replay::TableFormat::kText, "", "agent"), ConfigError);
  // From the command line: one line, a non-zero exit.
  const auto r = sh(fmt::format("{}/dma_replay compare {} --score budget,nonsense", kBin, path));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("score 'nonsense' does not exist"), std::string::npos) << r.out;
}

TEST(ReplayExport, D4rlMinariAndCsvReadBackByH5py) {
  TempDir dir;
  const auto store = make_test_store(dir);
  const std::map<std::string, std::string> outs{
      {"d4rl", dir.file("d4rl.h5")}, {"minari", dir.file("minari")}, {"csv", dir.file("all.csv")}};
  for (const auto& [format, out] : outs) {
    const auto r = sh(fmt::format("{}/dma_replay export {} --format {} {}", kBin, store, format, out));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("exported 9 episodes, 72 transitions"), std::string::npos) << r.out;
    const auto check =
        sh(fmt::format("/usr/bin/python3 {}/tests/replay/check_exports.py {} {} {}", kSrc, store, format, out));
    EXPECT_EQ(check.status, 0) << check.out;
  }
  const auto again = sh(fmt::format("{}/dma_replay export {} --format d4rl {}", kBin, store, outs.at("d4rl")));
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
  EXPECT_EQ(sh(fmt::format("{}/dma_replay export {} --format d4rl {} --force", kBin, store, outs.at("d4rl"))).status,
            0);
}

TEST(ReplayExport, SelectsByPolicyStatusAndEpisodeRange) {
  TempDir dir;
  const auto store = make_test_store(dir);
  replay::ExportOptions o;
  o.format = replay::ExportFormat::kCsv;
  o.selection = replay::parse_selection("random", "all", "");
  auto r = replay::export_store(store, dir.file("random.csv"), o);
  EXPECT_EQ(r.episodes, 4);
  EXPECT_EQ(r.transitions, 3 * 8 + 4);
  o.selection = replay::parse_selection("", "failed,interrupted", "");
  r = replay::export_store(store, dir.file("broken.csv"), o);
  EXPECT_EQ(r.episodes, 2);
  EXPECT_EQ(r.transitions, 4 + 3);
  std::ifstream in(dir.file("broken.csv"));
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  const auto rows = parse_csv(text);
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_EQ(rows[3].at("timeout"), "1");  // the failed episode's 4th and last row
  EXPECT_EQ(rows[3].at("status"), "failed");
  EXPECT_EQ(rows[6].at("status"), "interrupted");
  o.selection = replay::parse_selection("", "complete", "2-4");
  o.format = replay::ExportFormat::kD4rl;
  r = replay::export_store(store, dir.file("range.h5"), o);
  EXPECT_EQ(r.episodes, 3);
  EXPECT_THROW(replay::export_store(store, dir.file("no/dir/x.h5"), o), ConfigError);
  o.score = "nonsense";
  EXPECT_THROW(replay::export_store(store, dir.file("bad.h5"), o), ConfigError);
}

TEST(ReplayPlot, SvgsRenderWithTheExpectedSeries) {
  TempDir dir;
  const auto store = make_test_store(dir);
  const auto files = replay::plot(store, dir.file("plots"));
  ASSERT_EQ(files.size(), 3u + 5u);  // 3 weight pictures, scores, target_share, spending, rewards, returns
  const int d = 4, p = 3;
  std::set<std::string> names;
  for (const auto& f : files) {
    const auto name = std::filesystem::path(f).filename().string();
    names.insert(name);
    const int want = name.rfind("weights_", 0) == 0 ? d : name == "scores.svg" ? 3 * p : p;
    const auto r = sh(fmt::format("/usr/bin/python3 {}/tests/replay/check_svg.py {} {}", kSrc, f, want));
    EXPECT_EQ(r.status, 0) << r.out;
  }
  EXPECT_EQ(names.count("target_share.svg"), 1u);
  EXPECT_EQ(names.count("spending.svg"), 1u);
  // A 52-domain space (the paper's) still gets one distinct, rendered colour per domain.
  const auto big = dir.file("big.h5");
  {
    auto w = StoreWriter::create(big, synthetic_header({.domains = 52, .targets = 26, .horizon = 4}));
    write_generation(w, {0, 1}, {"random"}, 4);
  }
  const auto big_files = replay::plot(big, dir.file("big_plots"));
  const auto r = sh(fmt::format("/usr/bin/python3 {}/tests/replay/check_svg.py {} 52", kSrc, big_files[0]));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_THROW(replay::plot(store, dir.file("none"), replay::parse_selection("agent", "", "")), ConfigError);
}

/// A store of `fixed:<share>` episodes (3 per share, all complete) whose target domains
/// hold exactly `share` of the weights at every step, split differently per episode and step.
std::string make_fixed_share_store(const TempDir& dir, const std::vector<double>& shares) {
  const auto path = dir.file("fixed.h5");
  auto w = StoreWriter::create(path, synthetic_header({}));  // domains 0, 1 source; 2, 3 target
  const int horizon = w.header().horizon;
  std::vector<EpisodeRecord> recs;
  for (std::size_t i = 0; i < 3 * shares.size(); ++i)
    recs.push_back(
        {.id = static_cast<std::int64_t>(i), .seed = 1, .rank = 1, .policy = fmt::format("fixed:{}", shares[i / 3])});
  const auto idx = w.begin_episodes(recs);
  for (int step = 0; step < horizon; ++step) {
    std::vector<Transition> rows;
    for (std::size_t i = 0; i < recs.size(); ++i) {
      rows.push_back(testing::synthetic_transition(w.header(), recs[i].id, step));
      const double s = shares[i / 3], f = 0.2 + 0.15 * static_cast<double>((i + static_cast<std::size_t>(step)) % 5);
      rows.back().action = {static_cast<float>((1 - s) * (1 - f)), static_cast<float>((1 - s) * f),
                            static_cast<float>(s * f), static_cast<float>(s * (1 - f))};
    }
    w.write(rows);
    w.flush();
  }
  for (auto i : idx) w.end_episode(i, EpisodeStatus::kComplete, horizon, 1.0f);
  return path;
}

/// Plots a store of `fixed:<share>` episodes and returns the text of picture `name`, after
/// check_svg.py found one series per share in it.
std::string fixed_share_picture(const TempDir& dir, const std::vector<double>& shares, const std::string& name) {
  const auto files = replay::plot(make_fixed_share_store(dir, shares), dir.file("plots"));
  const auto it = std::find_if(files.begin(), files.end(),
                               [&](const std::string& f) { return std::filesystem::path(f).filename() == name; });
  if (it == files.end()) ADD_FAILURE() << name << " was not drawn";
  if (it == files.end()) return "";
  const auto r = sh(fmt::format("/usr/bin/python3 {}/tests/replay/check_svg.py {} {}", kSrc, *it, shares.size()));
  EXPECT_EQ(r.status, 0) << r.out;
  std::ifstream in(*it);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(ReplayPlot, TargetShareOfAFixedPolicyIsAFlatLineAtItsShare) {
  TempDir dir;
  const std::vector<double> shares{0.25, 0.7};
  const std::string text = fixed_share_picture(dir, shares, "target_share.svg");
  // The axes frame gives the y of shares 0 (bottom) and 1 (top).
  std::smatch frame;
  const std::regex frame_re(R"re(<rect x="[0-9.]+" y="([0-9.]+)" width="[0-9.]+" height="([0-9.]+)" fill="none")re");
  ASSERT_TRUE(std::regex_search(text, frame, frame_re)) << text;
  const double top = std::stod(frame[1]), height = std::stod(frame[2]);
  for (double share : shares) {
    std::smatch line;
    const std::regex series(fmt::format(R"re(<polyline points="([^"]*)"[^>]*data-name="fixed:{}")re", share));
    ASSERT_TRUE(std::regex_search(text, line, series)) << share << "\n" << text;
    std::istringstream pts(line[1].str());
    std::string pt;
    int n = 0;
    while (pts >> pt) {
      ++n;
      const double y = std::stod(pt.substr(pt.find(',') + 1));
      EXPECT_NEAR(y, top + height * (1 - share), 0.11) << share << " point " << pt;
    }
    EXPECT_EQ(n, testing::synthetic_header({}).horizon) << share;
  }
}

TEST(ReplayPlot, SpendingJoinsTheFixedSharesInOrderOfShareAndMarksTheBudget) {
  TempDir dir;
  const std::vector<double> shares{0.7, 0.25, 0.5};  // stored out of order
  const std::string text = fixed_share_picture(dir, shares, "spending.svg");
  EXPECT_NE(text.find("class=\"budget\""), std::string::npos) << "the budget score's tolerance is marked";
  std::smatch frontier;
  ASSERT_TRUE(std::regex_search(text, frontier, std::regex(R"re(<polyline points="([^"]*)"[^>]*class="frontier")re")))
      << text;
  std::istringstream pts(frontier[1].str());
  std::vector<std::string> joined{std::istream_iterator<std::string>(pts), {}};
  ASSERT_EQ(joined.size(), shares.size());
  const std::vector<double> sorted{0.25, 0.5, 0.7};
  for (std::size_t k = 0; k < sorted.size(); ++k) {
    std::smatch point;
    const std::regex circle(
        fmt::format(R"re(<circle cx="([0-9.]+)" cy="([0-9.]+)"[^>]*data-name="fixed:{}")re", sorted[k]));
    ASSERT_TRUE(std::regex_search(text, point, circle)) << sorted[k];
    const auto comma = joined[k].find(',');
    EXPECT_NEAR(std::stod(joined[k].substr(0, comma)), std::stod(point[1]), 0.15) << "frontier point " << k;
    EXPECT_NEAR(std::stod(joined[k].substr(comma + 1)), std::stod(point[2]), 0.15) << "frontier point " << k;
  }
}

/// A writer child: one generation of 4 episodes, one flush every `ms` milliseconds; closes
/// the store and exits when done, or pauses before closing when `hang` (to be killed).
pid_t spawn_writer(const std::string& path, int ms, bool hang, int delay_ms = 0) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  try {
    if (delay_ms > 0) {  // replaces what is at `path` after a while
      usleep(static_cast<useconds_t>(delay_ms) * 1000);
      std::filesystem::remove(path);
    }
    auto w = StoreWriter::create(path, synthetic_header({}));
    std::vector<EpisodeRecord> recs;
    for (int k = 0; k < 4; ++k) recs.push_back({.id = k, .seed = 1, .rank = 1, .policy = "random"});
    const auto idx = w.begin_episodes(recs);
    for (int step = 0; step < w.header().horizon; ++step) {
      std::vector<Transition> rows;
      for (int k = 0; k < 4; ++k) rows.push_back(testing::synthetic_transition(w.header(), k, step));
      w.write(rows);
      w.flush();
      usleep(static_cast<useconds_t>(ms) * 1000);
    }
    if (hang) pause();
    for (auto i : idx) w.end_episode(i, EpisodeStatus::kComplete, w.header().horizon, 1.0f);
  } catch (...) {
    _exit(2);
  }
  _exit(0);
}

/// Follows the store a spawned writer `pid` writes at `path` until the writer closes it;
/// checks that both ended well and returns what follow printed.
std::string follow_to_the_end(const std::string& path, pid_t pid) {
  std::ostringstream out;
  const int rc = replay::follow(path, {.interval_s = 0.05, .timeout_s = 30}, out);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(rc, 0) << out.str();
  EXPECT_EQ(WEXITSTATUS(status), 0);
  return out.str();
}

TEST(ReplayFollow, EndsWhenTheWriterClosesTheStore) {
  TempDir dir;
  const auto path = dir.file("live.h5");
  const std::string text = follow_to_the_end(path, spawn_writer(path, 60, false));
  EXPECT_NE(text.find("4 episodes: 4 complete, 0 running"), std::string::npos) << text;
  EXPECT_NE(text.find("running"), std::string::npos);
  EXPECT_NE(text.find("the run has ended"), std::string::npos);
  // It saw the run in progress: some line shows running episodes with fewer rows.
  EXPECT_NE(text.find(", 4 running"), std::string::npos) << text;
}

// A run that is creating its store leaves the file empty for a moment: follow waits for it,
// and reports an empty file only when no writer has come after a grace.
TEST(ReplayFollow, WaitsForAStoreThatIsStillBeingCreated) {
  TempDir dir;
  const auto path = dir.file("new.h5");
  { std::ofstream touch(path); }
  const std::string text = follow_to_the_end(path, spawn_writer(path, 20, false, 500));
  EXPECT_NE(text.find("the run has ended"), std::string::npos) << text;
  const auto empty = dir.file("empty.h5");
  { std::ofstream touch(empty); }
  std::ostringstream none;
  EXPECT_THROW(replay::follow(empty, {.interval_s = 0.05, .timeout_s = 30}, none), StoreError);
}

TEST(ReplayFollow, TimesOutWhenTheWriterWasKilled) {
  TempDir dir;
  const auto path = dir.file("killed.h5");
  const pid_t pid = spawn_writer(path, 1, true);
  while (!std::filesystem::exists(path)) usleep(10000);
  usleep(300000);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::ostringstream out;
  EXPECT_EQ(replay::follow(path, {.interval_s = 0.05, .timeout_s = 0.5}, out), 2) << out.str();
  EXPECT_NE(out.str().find("timeout"), std::string::npos);
  // `repair` clears the flags the kill left: follow then sees a closed store at once.
  replay::repair(path);
  std::ostringstream again;
  EXPECT_EQ(replay::follow(path, {.interval_s = 0.05, .timeout_s = 5}, again), 0) << again.str();
}

TEST(ReplayCli, SummaryOfAStoreStillBeingWritten) {
  TempDir dir;
  const auto path = dir.file("live.h5");
  const pid_t pid = spawn_writer(path, 1, true);
  Cmd r;
  for (int tries = 0; tries < 200; ++tries) {  // until the writer has flushed every round
    usleep(20000);
    r = sh(fmt::format("{}/dma_replay summary {}", kBin, path));
    if (r.out.find(" 32 ") != std::string::npos) break;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("live: 4 running"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 32 "), std::string::npos) << r.out;  // 4 episodes x 8 steps visible
}

TEST(ReplayCli, BadInputIsAOneLineErrorAndANonZeroExit) {
  TempDir dir;
  const auto store = make_test_store(dir);
  std::ofstream(dir.file("text.h5")) << "plain text\n";
  {
    auto bytes = [&] {
      std::ifstream in(store, std::ios::binary);
      return std::string{std::istreambuf_iterator<char>(in), {}};
    }();
    std::ofstream(dir.file("cut.h5"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  sh(fmt::format("/usr/bin/python3 -c \"import h5py; h5py.File('{}', 'w')['x'] = [1]\"", dir.file("plain.h5")));
  const std::vector<std::string> cases = {
      fmt::format("summary {}", dir.file("missing.h5")),
      fmt::format("summary {}", dir.file("text.h5")),
      fmt::format("summary {}", dir.file("plain.h5")),
      fmt::format("summary {}", dir.file("cut.h5")),
      fmt::format("compare {} {}", store, dir.file("text.h5")),
      fmt::format("export {} --format parquet {}", store, dir.file("x")),
      fmt::format("export {} --format d4rl", store),
      fmt::format("export {} --format csv {} --episodes x-y", store, dir.file("y.csv")),
      fmt::format("plot {}", store),
      fmt::format("summary {} --score best", store),
      fmt::format("summary {} --format xml", store),
      fmt::format("summary {} --bogus", store),
      fmt::format("follow {} --timeout 0.3 --interval 0.1", dir.file("text.h5")),
      "explode " + store,
      "summary",
  };
  for (const auto& c : cases) {
    const auto r = sh(fmt::format("{}/dma_replay {}", kBin, c));
    EXPECT_EQ(r.status, 1) << c << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("dma_replay: ", 0), 0u) << c << "\n" << r.out;
  }
  EXPECT_EQ(sh(fmt::format("{}/dma_replay --help", kBin)).status, 0);
}

TEST(ReplayPython, DmaStoreHelperLoadsNumpyArrays) {
  TempDir dir;
  const auto store = make_test_store(dir);
  const auto r = sh(fmt::format("/usr/bin/python3 {}/tests/replay/test_dma_store.py {}", kSrc, store));
  EXPECT_EQ(r.status, 0) << r.out;
  const auto cli = sh(fmt::format("/usr/bin/python3 {}/tools/analysis/dma_store.py {}", kSrc, store));
  EXPECT_EQ(cli.status, 0) << cli.out;
  EXPECT_NE(cli.out.find("random: running 0, complete 3, failed 1"), std::string::npos) << cli.out;
}

}  // namespace
}  // namespace dma
