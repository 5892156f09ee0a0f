// The trajectory store (DESIGN §5): round trip, block layout, SWMR visibility from another
// process, kill -9 of a writer and resume, refused resumes, damaged files, h5py's view.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "dma/detail/h5.hpp"
#include "dma/error.hpp"
#include "synthetic_store.hpp"

namespace dma {
namespace {

using testing::synthetic_header;
using testing::synthetic_transition;
using testing::SyntheticSpec;
using testing::TempDir;
using testing::write_generation;

/// Runs tools/analysis/check_store.py; returns its exit code and first output line.
std::pair<int, std::string> check_store(const std::string& path, const std::string& args = "") {
  const std::string cmd =
      fmt::format("/usr/bin/python3 {}/tools/analysis/check_store.py {} {} 2>&1", DMA_SOURCE_DIR, path, args);
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  const int status = p ? pclose(p) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void expect_row_equals(const Transition& got, const Transition& want) {
  EXPECT_EQ(got.episode_id, want.episode_id);
  EXPECT_EQ(got.step, want.step);
  EXPECT_EQ(got.observation, want.observation);
  EXPECT_EQ(got.next_observation, want.next_observation);
  EXPECT_EQ(got.action, want.action);
  EXPECT_EQ(got.eval_loss, want.eval_loss);
  EXPECT_EQ(got.reward, want.reward);
  EXPECT_EQ(got.source_score, want.source_score);
  EXPECT_EQ(got.target_score, want.target_score);
  EXPECT_EQ(got.math_accuracy, want.math_accuracy);
  EXPECT_EQ(got.train_tokens, want.train_tokens);
  EXPECT_EQ(got.wall_seconds, want.wall_seconds);
}

/// Every written row of every episode equals what the generator wrote.
void expect_episodes_exact(const StoreReader& r) {
  for (const auto& e : r.episodes()) {
    const auto rows = r.read_episode(e);
    ASSERT_EQ(static_cast<int>(rows.size()), e.length) << "episode " << e.id;
    for (const auto& t : rows) expect_row_equals(t, synthetic_transition(r.header(), e.id, t.step));
  }
}

std::string expect_store_error(const std::string& path) {
  try {
    auto r = StoreReader::open(path);
    for (const auto& e : r.episodes()) r.read_episode(e);
    r.read_block(0, r.num_rows());
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << "no StoreError for " << path;
  return "";
}

TEST(StoreRoundTrip, HeaderAndEveryFieldSurvive) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  {
    auto w = StoreWriter::create(path, header);
    write_generation(w, {10, 11, 12}, {"random", "uniform"}, header.horizon);
    EXPECT_EQ(w.episodes().size(), 3u);
  }
  auto r = StoreReader::open(path);
  EXPECT_TRUE(r.swmr());
  const auto& h = r.header();
  EXPECT_EQ(h.domain_names, header.domain_names);
  EXPECT_EQ(h.domain_fields, header.domain_fields);
  EXPECT_EQ(h.base_eval_loss, header.base_eval_loss);
  EXPECT_EQ(h.token_shares, header.token_shares);
  EXPECT_EQ(h.obs_layout, header.obs_layout);
  EXPECT_EQ(h.horizon, header.horizon);
  EXPECT_EQ(h.space_fingerprint, header.space_fingerprint);
  EXPECT_EQ(h.config_ini, header.config_ini);
  EXPECT_EQ(h.created_utc.size(), 20u) << h.created_utc;  // YYYY-MM-DDTHH:MM:SSZ
  ASSERT_EQ(r.episodes().size(), 3u);
  EXPECT_EQ(r.episodes()[1].policy, "uniform");
  EXPECT_EQ(r.episodes()[1].seed, 11u * 1000003ULL);
  EXPECT_EQ(r.episodes()[2].rank, 3);
  EXPECT_EQ(r.episodes()[0].status, EpisodeStatus::kComplete);
  expect_episodes_exact(r);
  const auto rows = r.read_episode(r.episodes()[0]);
  EXPECT_TRUE(rows.back().timeout);
  EXPECT_FALSE(rows.front().timeout);
}

TEST(StoreTrees, ParentAndBranchStepSurviveWithTheirChecksum) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  const int shared = 3;
  {
    auto w = StoreWriter::create(path, header);
    write_generation(w, {0}, {"random"}, header.horizon);
    EpisodeRecord branch;
    branch.id = 1;
    branch.seed = 1000003ULL;
    branch.rank = 2;
    branch.policy = "uniform";
    branch.parent = 0;
    branch.branch_step = shared;
    const auto index = w.begin_episodes({branch}).at(0);
    std::vector<Transition> rows;
    for (int step = 0; step < header.horizon; ++step) rows.push_back(synthetic_transition(header, 1, step));
    w.write(rows);
    w.end_episode(index, EpisodeStatus::kComplete, header.horizon, 0.0f);
  }
  {
    auto r = StoreReader::open(path);
    ASSERT_EQ(r.episodes().size(), 2u);
    EXPECT_EQ(r.episodes()[0].parent, -1);
    EXPECT_EQ(r.episodes()[0].branch_step, 0);
    EXPECT_EQ(r.episodes()[1].parent, 0);
    EXPECT_EQ(r.episodes()[1].branch_step, shared);
    for (const auto& e : r.episodes())  // the branch's checksum covers its parent and branch step
      EXPECT_NO_THROW(verify_episode_rows(e, r.read_block(e.start, header.horizon, true), path)) << e.id;
  }
  // Synthetic rows differ per episode: the checker finds that the "copies" are not the parent's.
  const auto [rc, out] = check_store(path);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("differs from its parent's"), std::string::npos) << out;
}

TEST(StoreTrees, AStoreWrittenBeforeTreesReadsFlatAndResumes) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  {
    auto w = StoreWriter::create(path, header);
    write_generation(w, {0, 1}, {"random"}, header.horizon);
  }
  {
    h5::File f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f);
    for (const char* column : {"episodes/parent", "episodes/branch_step"})
      ASSERT_GE(H5Ldelete(f.get(), column, H5P_DEFAULT), 0) << column;
  }
  {
    auto resumed = StoreWriter::resume(path, header);
    write_generation(resumed, {2}, {"random"}, header.horizon);
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), 3u);
  for (const auto& e : r.episodes()) {
    EXPECT_EQ(e.parent, -1);
    EXPECT_EQ(e.branch_step, 0);
  }
  expect_episodes_exact(r);  // checksums included
  EXPECT_EQ(check_store(path, "--expect-complete 3").first, 0);
}

TEST(StoreRoundTrip, AFullWidthPolicyNameSurvives) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  const std::string full(kPolicyNameBytes, 'w');
  {
    auto w = StoreWriter::create(path, header);
    write_generation(w, {1, 2}, {full, "uniform"}, header.horizon);
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), 2u);
  EXPECT_EQ(r.episodes()[0].policy, full);
  EXPECT_EQ(r.episodes()[1].policy, "uniform");
}

TEST(StoreLayout, BlocksAreContiguousAndHolesKeepFill) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({.horizon = 6});
  {
    auto w = StoreWriter::create(path, header);
    write_generation(w, {0, 1}, {"a"}, 6);
    write_generation(w, {2, 3, 4}, {"b"}, 3);  // ended failed after 3 of 6 steps
    const auto idx = write_generation(w, {5}, {"c"}, 2, /*end=*/false);
    w.interrupt_running();
    EXPECT_EQ(w.episodes()[idx[0]].status, EpisodeStatus::kInterrupted);
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), 6u);
  EXPECT_EQ(r.num_rows(), 6 * 6);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(r.episodes()[i].start, static_cast<std::int64_t>(6 * i));
  EXPECT_EQ(r.episodes()[3].status, EpisodeStatus::kFailed);
  EXPECT_EQ(r.episodes()[3].length, 3);
  EXPECT_EQ(r.episodes()[5].status, EpisodeStatus::kInterrupted);
  EXPECT_EQ(r.episodes()[5].length, 2);
  const RowBlock b = r.read_block(0, r.num_rows(), false);
  for (const auto& e : r.episodes())
    for (std::int64_t k = 0; k < header.horizon; ++k) {
      const auto row = static_cast<std::size_t>(e.start + k);
      const bool written = k < e.length;
      EXPECT_EQ(b.step[row], written ? k : -1) << "episode " << e.id << " row " << k;
      EXPECT_EQ(b.episode_id[row], written ? e.id : -1);
      EXPECT_EQ(b.timeouts[row], written && k == e.length - 1 ? 1 : 0);
      EXPECT_EQ(b.math_accuracy[row],
                written ? synthetic_transition(header, e.id, static_cast<int>(k)).math_accuracy : -1.0f);
      EXPECT_EQ(b.terminals[row], 0);
    }
  expect_episodes_exact(r);
  const auto [rc, out] = check_store(path, "--expect-complete 2 --expect-written 23");
  EXPECT_EQ(rc, 0) << out;
}

// A round's rows lie a horizon apart, with gaps where episodes stopped early; episodes
// end together with mixed statuses. Every row lands in its block, and each checksum (made
// from the rows the writer holds, never read back) matches the rows read from the file.
TEST(StoreLayout, ManyEpisodesEndedTogetherMatchTheirRowsOnDisk) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const int horizon = 5;
  const auto header = synthetic_header({.horizon = horizon});
  const auto length = [&](std::size_t i) { return i % 4 == 3 ? static_cast<int>(1 + i % 3) : horizon; };
  std::vector<EpisodeRecord> recs;
  for (std::int64_t id = 100; id < 140; ++id) recs.push_back({id, 7, 0, 0, EpisodeStatus::kRunning, 1, "p", 0, 0});
  {
    auto w = StoreWriter::create(path, header);
    const auto idx = w.begin_episodes(recs);
    for (int step = 0; step < horizon; ++step) {
      std::vector<Transition> rows;
      for (std::size_t i = 0; i < recs.size(); ++i)
        if (step < length(i)) rows.push_back(synthetic_transition(header, recs[i].id, step));
      w.write(rows);
      w.flush();
    }
    std::vector<EpisodeEnd> ends;
    for (std::size_t i = 0; i < recs.size(); ++i)
      ends.push_back({idx[i], length(i) == horizon ? EpisodeStatus::kComplete : EpisodeStatus::kFailed, length(i),
                      0.5f * static_cast<float>(i)});
    w.end_episodes(ends);
    w.flush();
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) {
    const auto& e = r.episodes()[i];
    EXPECT_EQ(e.length, length(i));
    EXPECT_EQ(e.status, length(i) == horizon ? EpisodeStatus::kComplete : EpisodeStatus::kFailed);
    EXPECT_EQ(e.return_, 0.5f * static_cast<float>(i));
    EXPECT_NE(e.checksum, 0u);
    EXPECT_NO_THROW(verify_episode_rows(e, r.read_block(e.start, horizon, true), path)) << "episode " << e.id;
  }
  expect_episodes_exact(r);
}

// The writer holds each begin_episodes call's rows and writes a round from them: one write
// may mix episodes of two such calls, in any order, and one call's episodes may all end while
// the other's still run.
TEST(StoreLayout, RowsOfTwoOverlappingGenerationsLandInTheirBlocks) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const int horizon = 4;
  const auto header = synthetic_header({.domains = 6, .targets = 3, .horizon = horizon});
  std::vector<EpisodeRecord> first, second;
  for (std::int64_t id = 0; id < 5; ++id) first.push_back({id, 7, 0, 0, EpisodeStatus::kRunning, 1, "p", 0, 0});
  for (std::int64_t id = 10; id < 13; ++id) second.push_back({id, 7, 0, 0, EpisodeStatus::kRunning, 1, "p", 0, 0});
  {
    auto w = StoreWriter::create(path, header);
    const auto a = w.begin_episodes(first);
    w.write(std::vector{synthetic_transition(header, 3, 0), synthetic_transition(header, 0, 0)});
    const auto b = w.begin_episodes(second);
    for (int step = 0; step < horizon; ++step) {
      std::vector<Transition> rows;
      for (std::int64_t id = 12; id >= 10; --id) rows.push_back(synthetic_transition(header, id, step));
      if (step < horizon - 1)
        for (std::int64_t id = 4; id >= 0; --id)
          if (step > 0 || (id != 3 && id != 0)) rows.push_back(synthetic_transition(header, id, step));
      w.write(rows);
      w.flush();
    }
    std::vector<EpisodeEnd> ends;
    for (const auto i : a) ends.push_back({i, EpisodeStatus::kInterrupted, horizon - 1, 0});
    w.end_episodes(ends);
    w.flush();
    for (const auto i : b) w.end_episode(i, EpisodeStatus::kComplete, horizon, 1);
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), first.size() + second.size());
  for (const auto& e : r.episodes()) {
    EXPECT_EQ(e.length, e.id < 10 ? horizon - 1 : horizon) << "episode " << e.id;
    EXPECT_NO_THROW(verify_episode_rows(e, r.read_block(e.start, horizon, true), path)) << "episode " << e.id;
  }
  expect_episodes_exact(r);
}

TEST(StoreWriterInput, BadCallsAreOneLineErrors) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  auto w = StoreWriter::create(path, header);
  EXPECT_THROW(StoreWriter::create(path, header), StoreError);
  const auto t0 = synthetic_transition(header, 7, 0);
  EXPECT_THROW(w.write(std::vector<Transition>{t0}), StoreError);  // episode 7 not begun
  // A name that does not fit is refused, not cut: two cut names could merge two policies.
  // It is refused before the file grows: the refused call leaves no rows and no episode,
  // not even for the call's other, storable episode.
  EXPECT_THROW(w.begin_episodes({EpisodeRecord{.id = 6, .policy = "uniform"},
                                 EpisodeRecord{.id = 7, .policy = std::string(kPolicyNameBytes + 1, 'p')}}),
               StoreError);
  EXPECT_TRUE(w.episodes().empty());
  w.flush();
  EXPECT_EQ(StoreReader::open(path).num_rows(), 0);
  w.begin_episodes({EpisodeRecord{.id = 7, .policy = std::string(kPolicyNameBytes, 'p')}});
  ASSERT_EQ(w.episodes().size(), 1u);
  EXPECT_EQ(w.episodes()[0].policy, std::string(kPolicyNameBytes, 'p'));
  EXPECT_EQ(w.episodes()[0].start, 0);  // the refused call reserved no block before it
  EXPECT_THROW(w.begin_episodes({EpisodeRecord{.id = 7, .policy = "p"}}), StoreError);  // already running
  auto bad = t0;
  bad.action.pop_back();
  EXPECT_THROW(w.write(std::vector<Transition>{bad}), StoreError);
  bad = t0;
  bad.step = header.horizon;
  EXPECT_THROW(w.write(std::vector<Transition>{bad}), StoreError);
  EXPECT_THROW(w.write(std::vector<Transition>{t0, t0}), StoreError);
  EXPECT_THROW(w.end_episode(5, EpisodeStatus::kComplete, 1, 0), StoreError);
  EXPECT_THROW(w.end_episode(0, EpisodeStatus::kComplete, header.horizon + 1, 0), StoreError);
  StoreHeader empty;
  EXPECT_THROW(StoreWriter::create(dir.file("empty.h5"), empty), StoreError);
  EXPECT_THROW(StoreWriter::create(dir.file("no/such/dir/s.h5"), header), StoreError);
}

TEST(StoreResume, ContinuesACleanlyClosedStore) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  {
    auto w = StoreWriter::create(path, header);
    write_generation(w, {0, 1}, {"a"}, header.horizon);
  }
  {
    auto w = StoreWriter::resume(path, header);
    EXPECT_EQ(w.episodes().size(), 2u);
    write_generation(w, {2, 3}, {"b"}, header.horizon);
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), 4u);
  EXPECT_EQ(r.episodes()[3].start, 3 * header.horizon);
  expect_episodes_exact(r);
  EXPECT_EQ(check_store(path, "--expect-complete 4").first, 0);
}

TEST(StoreResume, RefusesAnotherSpaceHorizonOrFile) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  { auto w = StoreWriter::create(path, header); }
  auto refused = [&](const StoreHeader& h, const std::string& path_, const std::string& word) {
    try {
      StoreWriter::resume(path_, h);
      ADD_FAILURE() << "resume accepted a mismatch: " << word;
    } catch (const StoreError& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  };
  refused(synthetic_header({.horizon = 9}), path, "horizon");
  refused(synthetic_header({.domains = 5}), path, "domains");
  refused(synthetic_header({.fingerprint = 42}), path, "domain space");
  std::ofstream(dir.file("text.h5")) << "not a store\n";
  refused(header, dir.file("text.h5"), "not an HDF5 file");
  refused(header, dir.file("missing.h5"), "does not exist");
}

/// A writer in a child process: writes `generations` of 4 episodes, flushing every round and
/// writing one byte to `fd` after each flush; after `pause_after` flushes it writes one more
/// round unflushed and waits to be killed (pause_after < 0: never pauses).
[[noreturn]] void child_writer(const std::string& path, int fd, int pause_after, int generations) {
  try {
    const auto header = synthetic_header({});
    auto w = StoreWriter::create(path, header);
    int flushes = 0;
    for (int g = 0; g < generations; ++g) {
      std::vector<std::int64_t> ids;
      for (int k = 0; k < 4; ++k) ids.push_back(4 * g + k);
      std::vector<EpisodeRecord> recs;
      for (auto id : ids) recs.push_back({.id = id, .seed = 1, .rank = 1, .policy = "random"});
      const auto idx = w.begin_episodes(recs);
      for (int step = 0; step < header.horizon; ++step) {
        std::vector<Transition> rows;
        for (auto id : ids) rows.push_back(synthetic_transition(header, id, step));
        w.write(rows);
        if (flushes == pause_after) pause();  // killed here, with one round unflushed
        w.flush();
        ++flushes;
        if (::write(fd, "x", 1) != 1) _exit(3);
      }
      for (auto i : idx) w.end_episode(i, EpisodeStatus::kComplete, header.horizon, 0);
      w.flush();
    }
    pause();
  } catch (...) {
    _exit(2);
  }
  _exit(0);
}

/// Forks child_writer; `pid` is the child, `flushes` the pipe it signals each flush on.
void start_writer(const std::string& path, int pause_after, int generations, pid_t& pid, int& flushes) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_writer(path, fds[1], pause_after, generations);
  }
  close(fds[1]);
  flushes = fds[0];
}

/// Forks a writer, waits for `signals` flushes (plus `extra_ms`), then kill -9s it.
void run_and_kill(const std::string& path, int pause_after, int signals, int extra_ms, int generations = 1) {
  pid_t pid = -1;
  int flushes = -1;
  ASSERT_NO_FATAL_FAILURE(start_writer(path, pause_after, generations, pid, flushes));
  char c;
  for (int i = 0; i < signals; ++i) ASSERT_EQ(read(flushes, &c, 1), 1) << "writer died early";
  if (extra_ms) usleep(static_cast<useconds_t>(extra_ms) * 1000);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(flushes);
  ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited with " << status;
}

TEST(StoreKill, Kill9KeepsEveryFlushedRowAndResumeMarksInterrupted) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const int flushed = 3;
  run_and_kill(path, flushed, flushed, 0);
  std::int64_t written = 0;
  {
    auto r = StoreReader::open(path);  // SWMR read: works on the killed writer's file
    ASSERT_EQ(r.episodes().size(), 4u);
    for (const auto& e : r.episodes()) {
      EXPECT_EQ(e.status, EpisodeStatus::kRunning);
      EXPECT_GE(e.length, flushed);
      written += e.length;
    }
    expect_episodes_exact(r);
  }
  {  // h5py in SWMR mode sees the same rows
    const auto [rc, out] = check_store(path, fmt::format("--expect-written {}", written));
    EXPECT_EQ(rc, 0) << out;
  }
  {  // a plain open fails until the flags are cleared (what resume does)
    h5::SilenceErrors quiet;
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT_LT(f, 0);
    if (f >= 0) H5Fclose(f);
  }
  const auto header = synthetic_header({});
  {
    auto w = StoreWriter::resume(path, header);
    for (const auto& e : w.episodes()) EXPECT_EQ(e.status, EpisodeStatus::kInterrupted);
    write_generation(w, {0, 1, 2, 3}, {"random"}, header.horizon);  // re-run under the same ids
  }
  auto r = StoreReader::open(path);
  ASSERT_EQ(r.episodes().size(), 8u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(r.episodes()[i].status, EpisodeStatus::kInterrupted);
  for (std::size_t i = 4; i < 8; ++i) EXPECT_EQ(r.episodes()[i].status, EpisodeStatus::kComplete);
  expect_episodes_exact(r);
  const auto [rc, out] = check_store(path, "--expect-complete 4");
  EXPECT_EQ(rc, 0) << out;
}

TEST(StoreKill, Kill9AtAnyMomentLeavesAReadableConsistentStore) {
  TempDir dir;
  for (int trial = 0; trial < 4; ++trial) {
    const auto path = dir.file(fmt::format("store{}.h5", trial));
    run_and_kill(path, -1, 2 + 5 * trial, 3 * trial, /*generations=*/3);
    {
      auto r = StoreReader::open(path);
      expect_episodes_exact(r);
    }
    const auto [rc, out] = check_store(path);
    EXPECT_EQ(rc, 0) << "trial " << trial << ": " << out;
    auto w = StoreWriter::resume(path, synthetic_header({}));
    for (const auto& e : w.episodes()) EXPECT_NE(e.status, EpisodeStatus::kRunning);
  }
}

TEST(StoreLive, ReaderInAnotherProcessFollowsTheWriter) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  pid_t pid = -1;
  int flushes = -1;
  ASSERT_NO_FATAL_FAILURE(start_writer(path, -1, 1, pid, flushes));
  char c;
  ASSERT_EQ(read(flushes, &c, 1), 1);
  auto r = StoreReader::open(path);
  std::vector<int> seen;
  for (int round = 2; round <= 8; ++round) {
    ASSERT_EQ(read(flushes, &c, 1), 1);
    r.refresh();
    ASSERT_EQ(r.episodes().size(), 4u);
    seen.push_back(r.episodes()[0].length);
    EXPECT_GE(r.episodes()[0].length, round);
  }
  {
    const auto [rc, out] = check_store(path);  // h5py reads it live as well
    EXPECT_EQ(rc, 0) << out;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(flushes);
  expect_episodes_exact(r);
  EXPECT_EQ(seen.back(), 8);
}

// ---- damaged and foreign files -------------------------------------------------------------

std::string make_store(const TempDir& dir, const std::string& name) {
  const auto path = dir.file(name);
  auto w = StoreWriter::create(path, synthetic_header({}));
  write_generation(w, {0, 1, 2, 3, 4, 5}, {"random", "uniform"}, 8);
  return path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(StoreBadInput, ForeignFilesAreOneLineErrors) {
  TempDir dir;
  EXPECT_NE(expect_store_error(dir.file("missing.h5")).find("does not exist"), std::string::npos);
  write_bytes(dir.file("text.h5"), "hello, not hdf5\n");
  EXPECT_NE(expect_store_error(dir.file("text.h5")).find("not an HDF5 file"), std::string::npos);
  write_bytes(dir.file("empty.h5"), "");
  EXPECT_NE(expect_store_error(dir.file("empty.h5")).find("not an HDF5 file"), std::string::npos);
  EXPECT_FALSE(expect_store_error(dir.path().string()).empty());  // a directory
  {
    h5::File f(H5Fcreate(dir.file("plain.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    h5::write_attr_string(f.get(), "something", "else");
  }
  EXPECT_NE(expect_store_error(dir.file("plain.h5")).find("not a dma trajectory store"), std::string::npos);
}

TEST(StoreBadInput, NewerFormatVersionIsRefused) {
  TempDir dir;
  const auto path = make_store(dir, "store.h5");
  {
    h5::File f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f);
    h5::write_attr_int(f.get(), "format_version", kStoreFormatVersion + 1);
  }
  EXPECT_NE(expect_store_error(path).find("newer"), std::string::npos);
  EXPECT_THROW(StoreWriter::resume(path, synthetic_header({})), StoreError);
}

TEST(StoreBadInput, TruncatedStoresAreOneLineErrors) {
  TempDir dir;
  const auto bytes = read_bytes(make_store(dir, "store.h5"));
  for (double frac : {0.1, 0.5, 0.9, 0.99}) {
    const auto path = dir.file("cut.h5");
    write_bytes(path, bytes.substr(0, static_cast<std::size_t>(static_cast<double>(bytes.size()) * frac)));
    EXPECT_FALSE(expect_store_error(path).empty()) << frac;
  }
}

/// Everything a reader shows of a store: header, episodes and their rows.
struct Snapshot {
  StoreHeader header;
  std::vector<EpisodeRecord> episodes;
  std::vector<std::vector<Transition>> rows;
};

Snapshot snapshot(const std::string& path) {
  Snapshot s;
  auto r = StoreReader::open(path);
  s.header = r.header();
  s.episodes = r.episodes();
  for (const auto& e : s.episodes) s.rows.push_back(r.read_episode(e));
  return s;
}

bool same_episode(const EpisodeRecord& a, const EpisodeRecord& b) {
  return a.id == b.id && a.seed == b.seed && a.start == b.start && a.length == b.length && a.status == b.status &&
         a.rank == b.rank && a.policy == b.policy && a.return_ == b.return_ && a.checksum == b.checksum;
}

bool same_rows(const std::vector<Transition>& a, const std::vector<Transition>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& x = a[i];
    const auto& y = b[i];
    if (x.observation != y.observation || x.next_observation != y.next_observation || x.action != y.action ||
        x.eval_loss != y.eval_loss || x.reward != y.reward || x.timeout != y.timeout || x.step != y.step ||
        x.source_score != y.source_score || x.target_score != y.target_score || x.math_accuracy != y.math_accuracy ||
        x.train_tokens != y.train_tokens || x.wall_seconds != y.wall_seconds || x.episode_id != y.episode_id)
      return false;
  }
  return true;
}

bool same_snapshot(const Snapshot& a, const Snapshot& b) {
  const auto& h = a.header;
  const auto& g = b.header;
  if (h.domain_names != g.domain_names || h.domain_fields != g.domain_fields || h.base_eval_loss != g.base_eval_loss ||
      h.token_shares != g.token_shares || h.obs_layout != g.obs_layout || h.horizon != g.horizon ||
      h.space_fingerprint != g.space_fingerprint || h.config_ini != g.config_ini || h.created_utc != g.created_utc ||
      a.episodes.size() != b.episodes.size())
    return false;
  for (std::size_t i = 0; i < a.episodes.size(); ++i)
    if (!same_episode(a.episodes[i], b.episodes[i]) || !same_rows(a.rows[i], b.rows[i])) return false;
  return true;
}

TEST(StoreBadInput, BitFlipsAreErrorsOrHarmlessNeverSilentlyWrong) {
  TempDir dir;
  const auto original = make_store(dir, "store.h5");
  const Snapshot want = snapshot(original);
  const auto bytes = read_bytes(original);
  const auto path = dir.file("flip.h5");
  int detected = 0, harmless = 0, trials = 0;
  for (std::size_t pos = 0; pos < bytes.size(); pos += bytes.size() / 400 + 1, ++trials) {
    auto copy = bytes;
    copy[pos] = static_cast<char>(copy[pos] ^ (1 << (pos % 8)));
    write_bytes(path, copy);
    try {
      if (same_snapshot(snapshot(path), want))
        ++harmless;  // the flip hit unused space (chunk tails, free space)
      else
        ADD_FAILURE() << "a flip at byte " << pos << " changed what the reader shows without an error";
    } catch (const StoreError& e) {
      ++detected;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0) << "HDF5 objects left open after a flip at " << pos;
  }
  std::cout << "bit flips: " << detected << " detected, " << harmless << " in unused bytes, of " << trials << "\n";
  EXPECT_GT(detected, 0);
}

TEST(StorePython, H5pyCheckerRejectsAnOffSimplexAction) {
  TempDir dir;
  const auto path = dir.file("store.h5");
  const auto header = synthetic_header({});
  {
    auto w = StoreWriter::create(path, header);
    const auto idx = w.begin_episodes({EpisodeRecord{.id = 1, .policy = "x"}});
    auto t = synthetic_transition(header, 1, 0);
    t.action[0] += 0.5f;
    w.write(std::vector<Transition>{t});
    w.end_episode(idx[0], EpisodeStatus::kFailed, 1, 0);
  }
  const auto [rc, out] = check_store(path);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("simplex"), std::string::npos) << out;
}

}  // namespace
}  // namespace dma
