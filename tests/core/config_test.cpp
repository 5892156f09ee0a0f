// Configuration: INI and command line through the real parser; unknown keys with a
// suggestion, range checks that name the key, CLI over INI, and a complete --print-config.
#include "dma/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <unistd.h>

#include "dma/error.hpp"

namespace dma {
namespace {

namespace fs = std::filesystem;

/// Expects a one-line ConfigError containing every needle.
void expect_config_error(const std::function<void()>& fn, std::vector<std::string> needles) {
  try {
    fn();
    FAIL() << "no ConfigError; expected one mentioning '" << needles.front() << "'";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  }
}

CommandLine parse(std::vector<std::string> args) {
  args.insert(args.begin(), "dma_orchestrate");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

/// An INI file in a fresh temp path, removed on exit.
class IniFile {
 public:
  explicit IniFile(const std::string& text) {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("dma-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()) + ".ini");
    std::ofstream(path_) << text;
  }
  ~IniFile() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  IniFile(const IniFile&) = delete;
  IniFile& operator=(const IniFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

TEST(Config, UnknownKeySuggestsTheClosest) {
  expect_config_error([] { parse_ini_text("[proxy]\nd_modle = 64\n"); },
                      {"'proxy.d_modle'", "did you mean 'proxy.d_model'"});
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--proxy.d_modle=64"});
      },
      {"'proxy.d_modle'", "'proxy.d_model'"});
  expect_config_error([] { parse({"--mode", "collect", "--train.batchsize=4"}); }, {"'train.batch_size'"});
  expect_config_error([] { parse_ini_text("[zzz]\nqqqqqqqqqqqqqqqqqq = 1\n"); },
                      {"unknown config key 'zzz.qqqqqqqqqqqqqqqqqq'", "--print-config"});
  EXPECT_EQ(closest_key("d_model", config_keys()), "proxy.d_model");
  EXPECT_EQ(closest_key("eval.scroe", config_keys()), "eval.score");
}

TEST(Config, RetiredKeysSayTheyAreFixedPartsOfTheRecipe) {
  expect_config_error([] { parse_ini_text("[agent]\ntau = 0.01\n"); },
                      {"'agent.tau' is no longer a key", "docs/options.md"});
  expect_config_error([] { parse({"--mode", "collect", "--train.beta2=0.99"}); }, {"'train.beta2' is no longer a key"});
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--comm.backend=nccl"});
      },
      {"'comm.backend' is no longer a key", "point to point over MPI"});
}

// A stored config (a store's, a checkpoint's) from another version: its [eval] still counts.
TEST(Config, AStoredConfigWithUnknownKeysStillGivesItsEvalSection) {
  const auto eval = stored_eval_config("[eval]\nbudget_tolerance = 0.05\nscore = mean\n[future]\nknob = 1\n");
  EXPECT_DOUBLE_EQ(eval.budget_tolerance, 0.05);
  EXPECT_EQ(eval.score, "mean");
  EXPECT_DOUBLE_EQ(stored_eval_config("[eval]\nbudget_tolerance = 0.03\n").budget_tolerance, 0.03);
  EXPECT_THROW(stored_eval_config("[eval]\nbudget_tolerance = x\n[future]\nknob = 1\n"), ConfigError);
}

TEST(Config, AtMostSeventyKeys) { EXPECT_LE(config_keys().size(), 70u); }

TEST(Config, OutOfRangeOrMalformedValuesNameTheKey) {
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--proxy.d_model=3"});
      },
      {"'proxy.d_model'", "out of range", "[8, 8192]"});
  expect_config_error([] { parse_ini_text("[train]\nlr = -1\n"); }, {"'train.lr'", "out of range"});
  expect_config_error([] { parse_ini_text("[random]\nsmoothness = 1.5\n"); }, {"'random.smoothness'"});
  expect_config_error([] { parse_ini_text("[eval]\nscore = best\n"); },
                      {"'eval.score'", "mean|min|weighted|normalized|budget"});
  expect_config_error([] { parse({"--mode", "collect", "--proxy.d_model=abc"}); }, {"proxy.d_model"});
  expect_config_error([] { parse_ini_text("[proxy]\nn_layers = two\n"); }, {"proxy.n_layers"});
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--proxy.d_model=64", "--proxy.n_heads=3"});
      },
      {"'proxy.n_heads'"});
  // A source gain needs an actor that reads the source score.
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--agent.source_gain=8", "--agent.actor_features=progress,is_target"});
      },
      {"'agent.source_gain'", "source_score"});
  EXPECT_EQ(
      parse({"--mode", "collect", "--agent.source_gain=8", "--agent.actor_features=all"}).config.agent.source_gain,
      8.0);
  // A tree's branches start inside the horizon: k = T would leave them nothing to run.
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--collect.branches=4", "--train.horizon=8", "--collect.branch_step=8"});
      },
      {"'collect.branch_step'", "1..train.horizon-1"});
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--collect.branches=4", "--train.horizon=1"});
      },
      {"'collect.branch_step'"});
  EXPECT_EQ(parse({"--mode", "collect", "--collect.branches=4"}).config.collect.shared_steps(16), 8);
  expect_config_error([] { parse({"--mode", "fly"}); }, {"--mode 'fly'", "pipeline"});
  expect_config_error(
      [] {
        parse({"--mode", "collect", "--config", "/nonexistent/dma.ini"});
      },
      {"/nonexistent/dma.ini"});
}

TEST(Config, CommandLineOverridesTheIniFile) {
  IniFile ini("[proxy]\nd_model = 64\nn_layers = 3\n[run]\nseed = 11\n");
  const auto cl = parse({"--config", ini.path(), "--mode", "collect", "--proxy.d_model=128", "--run.seed", "5"});
  EXPECT_EQ(cl.config.proxy.d_model, 128);  // command line wins
  EXPECT_EQ(cl.config.proxy.n_layers, 3);   // INI beats the default
  EXPECT_EQ(cl.config.run.seed, 5u);
  EXPECT_EQ(cl.config.proxy.n_heads, ProxyConfig{}.n_heads);  // untouched keys keep defaults
  EXPECT_EQ(cl.config.mode, "collect");
  EXPECT_EQ(cl.config.config_file, ini.path());
}

TEST(Config, PrintConfigListsEveryKeyAndRoundTrips) {
  const auto cl = parse({"--print-config", "--train.horizon=7", "--eval.score=min"});
  EXPECT_TRUE(cl.print_config);  // no --mode needed just to print
  const auto text = to_ini(cl.config);
  const auto keys = config_keys();
  EXPECT_GT(keys.size(), 60u);
  std::string section;
  for (const auto& k : keys) {
    const auto dot = k.find('.');
    EXPECT_NE(text.find("[" + k.substr(0, dot) + "]"), std::string::npos) << k;
    EXPECT_NE(text.find("\n" + k.substr(dot + 1) + " = "), std::string::npos) << k;
  }
  const auto again = parse_ini_text(text);
  EXPECT_EQ(again.train.horizon, 7);
  EXPECT_EQ(again.eval.score, "min");
  EXPECT_EQ(to_ini(again), text);
}

TEST(Config, ShippedConfigsParse) {
  const fs::path dir = fs::path(DMA_SOURCE_DIR) / "configs";
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".ini") continue;
    std::ifstream in(e.path());
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NO_THROW(parse_ini_text(text)) << e.path();
    ++n;
  }
  EXPECT_GE(n, 1);
  const auto tiny = parse({"--config", (dir / "test-tiny.ini").string(), "--mode", "pretrain"});
  EXPECT_EQ(tiny.config.train.horizon, 3);
}

// One default path: a shipped config file sets only what makes it what it is, so a line that
// repeats a default hides where the recipe lives (and goes stale when the default moves).
TEST(Config, ShippedConfigsRepeatNoDefault) {
  const std::string defaults = to_ini(Config{});
  for (const auto& e : fs::directory_iterator(fs::path(DMA_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".ini") continue;
    std::ifstream in(e.path());
    std::string line, section;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#' || line[0] == ';') continue;
      if (line[0] == '[') {
        section = line;
        continue;
      }
      // The file's line alone, over the defaults: if nothing changes, it repeats a default.
      EXPECT_NE(to_ini(parse_ini_text(section + "\n" + line + "\n")), defaults)
          << e.path().filename().string() << ": '" << line << "' in " << section << " repeats the default";
    }
  }
}

}  // namespace
}  // namespace dma
