#pragma once
// Tiny real domain spaces and configs for the proxy tests (built with DomainSpaceWriter).
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dma/config.hpp"
#include "dma/domain_space.hpp"
#include "support/temp_dir.hpp"

namespace dma::testing {

using TempDir = ::dma::test::TempDir;  ///< shared helper, see tests/support/temp_dir.hpp

/// `rows` windows of `seq_len + 1` bytes cut at random offsets from `text` repeated.
inline std::vector<std::int32_t> windows(const std::string& text, int rows, int seq_len, std::uint64_t seed) {
  std::string corpus;
  while (static_cast<int>(corpus.size()) < 4 * (seq_len + 1) + static_cast<int>(text.size())) corpus += text;
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> out;
  for (int r = 0; r < rows; ++r) {
    const auto start = static_cast<std::size_t>(rng() % text.size());
    for (int i = 0; i <= seq_len; ++i)
      out.push_back(static_cast<unsigned char>(corpus[start + static_cast<std::size_t>(i)]));
  }
  return out;
}

/// Bytes space: two source domains of patterned text and one target domain of one sum,
/// with a math benchmark whose answer the target domain teaches.
inline void write_tiny_space(const std::string& path, int seq_len = 16, int train_rows = 32, int eval_rows = 8,
                             const std::string& extra_domain = "") {
  DomainSpaceWriter w(path, bytes_tokenizer::kVocab, seq_len, "bytes", /*force=*/true);
  auto add = [&](const std::string& name, Field field, const std::string& text, std::uint64_t seed) {
    w.add_domain(name, field, windows(text, train_rows, seq_len, seed), windows(text, eval_rows, seq_len, seed + 100),
                 "test");
  };
  add("alpha", Field::kSource, "abcdefghij", 1);
  add("beta", Field::kSource, "the cat sat on the mat. ", 2);
  add("sums", Field::kTarget, "7+5=12\n", 3);
  if (!extra_domain.empty()) add(extra_domain, Field::kSource, "zyxw", 4);
  w.set_math_benchmark({{"7+5=", "12"}, {"\n7+5=", "12"}});
  w.close();
}

/// The smallest proxy config: one layer, d_model 32, one thread, batches of 4 rows.
inline Config tiny_config(const std::string& space_path, const std::string& run_dir) {
  Config c;
  c.data.space = space_path;
  c.run.dir = run_dir;
  c.proxy.n_layers = 1;
  c.proxy.d_model = 32;
  c.proxy.n_heads = 2;
  c.proxy.ffn_mult = 2;
  c.proxy.device = "cpu";
  c.proxy.threads = 1;
  c.train.batch_size = 4;
  c.train.lr = 3e-3;
  c.train.warmup_steps = 2;
  c.pretrain.steps = 20;
  c.pretrain.batch_size = 8;
  c.pretrain.warmup_steps = 2;
  c.eval.eval_rows = 4;
  c.eval.bench_problems = 4;
  c.eval.max_answer_tokens = 4;
  c.run.progress_seconds = 100;
  return c;
}

}  // namespace dma::testing
