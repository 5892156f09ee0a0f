#pragma once
// Runs a real program through the shell and checks dma's error contract: exit code 1 and
// exactly one stderr line "<program>: ..." naming the problem.
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/temp_dir.hpp"

namespace dma::test {

struct CommandResult {
  int rc = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Runs `command` (a shell line), capturing exit code, stdout and stderr into files of `dir`.
inline CommandResult run_command(const TempDir& dir, const std::string& command) {
  const auto out = dir.path() / "stdout.txt", err = dir.path() / "stderr.txt";
  const int status = std::system(fmt::format("{} >'{}' 2>'{}'", command, out.string(), err.string()).c_str());
  CommandResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

/// Runs build/bin/dma_prepare with `args` (shell words).
inline CommandResult run_prepare(const TempDir& dir, const std::string& args) {
  return run_command(dir, fmt::format("'{}/dma_prepare' {}", DMA_BIN_DIR, args));
}

/// Exit code `rc` and exactly one stderr line "dma_prepare: ..." that contains `needle`.
inline void expect_one_line_error(const CommandResult& r, const std::string& needle, int rc = 1) {
  EXPECT_EQ(r.rc, rc) << r.err;
  EXPECT_EQ(r.err.rfind("dma_prepare: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

}  // namespace dma::test
