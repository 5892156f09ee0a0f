// The real dma_prepare binary: exit codes and the one-line error on stderr, and the
// embedded default built from the installed fortunes package.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "dma/domain_space.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace dma {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::expect_one_line_error;
using test::run_prepare;
using test::slurp;

TEST(DmaPrepareCli, DemoFromTheInstalledFortunesIsDeterministic) {
  TempDir dir;
  const auto a = dir.file("a.space"), b = dir.file("b.space");
  const auto r = run_prepare(dir, fmt::format("demo --out '{}' --seed 3", a));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("10 source, 4 target"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  ASSERT_EQ(run_prepare(dir, fmt::format("demo --out '{}' --seed 3", b)).rc, 0);
  EXPECT_EQ(slurp(a), slurp(b));
  EXPECT_LT(fs::file_size(a), 4u << 20);  // the default demo stays small
  const auto s = DomainSpace::open(a);
  EXPECT_EQ(s.domains_of(Field::kSource).size(), 10u);
  EXPECT_EQ(s.domains_of(Field::kTarget).size(), 4u);
  EXPECT_EQ(s.math_benchmark().size(), 256u);
}

TEST(DmaPrepareCli, ExistingOutputNeedsForce) {
  TempDir dir;
  const auto out = dir.file("d.space");
  const auto small = "--source-rows 20 --target-train-rows 8 --target-eval-rows 4 --bench-problems 8";
  ASSERT_EQ(run_prepare(dir, fmt::format("demo --out '{}' {}", out, small)).rc, 0);
  expect_one_line_error(run_prepare(dir, fmt::format("demo --out '{}' {}", out, small)), "pass --force");
  EXPECT_EQ(run_prepare(dir, fmt::format("demo --out '{}' {} --force --seed 9", out, small)).rc, 0);
}

TEST(DmaPrepareCli, MissingFortunesNamesThePackage) {
  TempDir dir;
  fs::create_directories(dir.path() / "nofortunes");
  const auto r = run_prepare(dir, fmt::format("demo --out '{}' --fortunes-dir '{}'", dir.file("d.space"),
                                              (dir.path() / "nofortunes").string()));
  expect_one_line_error(r, "apt-get install fortunes fortunes-min");
  EXPECT_FALSE(fs::exists(dir.file("d.space")));
}

TEST(DmaPrepareCli, TextRefusesEmptyMissingAndDuplicateDomains) {
  TempDir dir;
  fs::create_directories(dir.path() / "empty");
  fs::create_directories(dir.path() / "full");
  std::ofstream(dir.path() / "full" / "a.txt") << std::string(4000, 'z');
  const auto full = (dir.path() / "full").string();
  const auto out = dir.file("t.space");
  expect_one_line_error(
      run_prepare(dir, fmt::format("text --out '{}' --domain 'e={}:source'", out, (dir.path() / "empty").string())),
      "is empty");
  expect_one_line_error(
      run_prepare(dir, fmt::format("text --out '{}' --domain 'm={}:source'", out, (dir.path() / "missing").string())),
      "does not exist");
  expect_one_line_error(
      run_prepare(dir, fmt::format("text --out '{}' --domain 'x={}:source' --domain 'x={}:target'", out, full, full)),
      "duplicate domain name 'x'");
  const auto ok =
      run_prepare(dir, fmt::format("text --out '{}' --domain 'x={}:source' --domain 'y={}:target'", out, full, full));
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_NE(ok.out.find("1 source, 1 target"), std::string::npos) << ok.out;
}

TEST(DmaPrepareCli, ImportRefusesBadShardsAndTokenIds) {
  TempDir dir;
  const auto in = dir.path() / "in" / "web";
  fs::create_directories(in);
  std::ofstream(in / "a.bin", std::ios::binary) << std::string(301, 'a');  // odd: not uint16 tokens
  const auto out = dir.file("i.space");
  const auto base = fmt::format("import --out '{}' --input '{}' --seq-len 8", out, (dir.path() / "in").string());
  expect_one_line_error(run_prepare(dir, base + " --format bin16 --vocab 65536"),
                        "not a whole number of 2-byte tokens");
  std::ofstream(in / "a.bin", std::ios::binary) << std::string(300, 'a');  // tokens 0x6161 = 24929
  expect_one_line_error(run_prepare(dir, base + " --format bin16 --vocab 1000"), "token id 24929");
  EXPECT_EQ(run_prepare(dir, base + " --format bin16 --vocab 30000").rc, 0);
  expect_one_line_error(run_prepare(dir, base + " --format npy --vocab 30000"),
                        "bin16, bin32, hdf5-shards or megatron");
}

TEST(DmaPrepareCli, BadUsageExitsTwo) {
  TempDir dir;
  expect_one_line_error(run_prepare(dir, "frobnicate"), "unknown command 'frobnicate'", 2);
  expect_one_line_error(run_prepare(dir, "demo --seed 3"), "--out", 2);
  expect_one_line_error(run_prepare(dir, "demo --out x --bogus"), "bogus", 2);
  const auto help = run_prepare(dir, "import --help");
  EXPECT_EQ(help.rc, 0);
  EXPECT_NE(help.out.find("hdf5-shards"), std::string::npos);
}

}  // namespace
}  // namespace dma
