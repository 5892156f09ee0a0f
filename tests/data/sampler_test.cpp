// Mixture sampler: weight checks, row allocation, chi-square fit of domain and row
// frequencies at a fixed seed, determinism and RNG-state resume, tokens of the right rows.
#include "dma/sampler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <thread>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "support/temp_dir.hpp"

namespace dma {
namespace {

using test::TempDir;

constexpr int kWidth = 5;  // seq_len 4

/// D domains with the given train rows; token (r, 0) = row, (r, 1) = domain.
std::string write_space(const TempDir& dir, const std::vector<int>& train_rows) {
  const auto path = dir.file("space.h5");
  DomainSpaceWriter w(path, 65536, kWidth - 1, "test", false);
  for (size_t d = 0; d < train_rows.size(); ++d) {
    std::vector<std::int32_t> train;
    for (int r = 0; r < train_rows[d]; ++r)
      for (int c = 0; c < kWidth; ++c) train.push_back(c == 0 ? r : c == 1 ? static_cast<int>(d) : 7);
    const std::vector<std::int32_t> eval(kWidth, 1);
    w.add_domain(fmt::format("d{}", d), d % 2 ? Field::kTarget : Field::kSource, train, eval, "");
  }
  w.close();
  return path;
}

TEST(ValidateWeights, RefusesBadMixtures) {
  const std::vector<double> ok = {0.25, 0.75};
  EXPECT_NO_THROW(validate_weights(ok, 2));
  EXPECT_THROW(validate_weights(ok, 3), DataError);
  const std::vector<double> negative = {-0.1, 1.1};
  EXPECT_THROW(validate_weights(negative, 2), DataError);
  const std::vector<double> nan = {std::nan(""), 1.0};
  EXPECT_THROW(validate_weights(nan, 2), DataError);
  const std::vector<double> inf = {INFINITY, 0.0};
  EXPECT_THROW(validate_weights(inf, 2), DataError);
  const std::vector<double> short_sum = {0.5, 0.4998};
  EXPECT_THROW(validate_weights(short_sum, 2), DataError);
  const std::vector<double> close_sum = {0.5, 0.49995};
  EXPECT_NO_THROW(validate_weights(close_sum, 2));
  try {
    validate_weights(short_sum, 2);
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("sum to 1 within 1e-4"), std::string::npos) << e.what();
  }
}

TEST(AllocateRows, LargestRemainderWithLowerIndexOnTies) {
  const std::vector<double> w = {0.15, 0.25, 0.6};
  EXPECT_EQ(allocate_rows(w, 4), (std::vector<int>{1, 1, 2}));  // quotas 0.6 1.0 2.4
  EXPECT_EQ(allocate_rows(w, 20), (std::vector<int>{3, 5, 12}));
  const std::vector<double> tie = {0.5, 0.5};
  EXPECT_EQ(allocate_rows(tie, 3), (std::vector<int>{2, 1}));
  const std::vector<double> thirds = {1.0 / 3, 1.0 / 3, 1.0 / 3};
  EXPECT_EQ(allocate_rows(thirds, 1), (std::vector<int>{1, 0, 0}));
  const std::vector<double> zero = {0.0, 1.0};
  EXPECT_EQ(allocate_rows(zero, 7), (std::vector<int>{0, 7}));
  for (int b : {0, 1, 5, 16, 1000}) {
    const std::vector<double> w2 = {0.01, 0.2, 0.29, 0.5};
    const auto rows = allocate_rows(w2, b);
    EXPECT_EQ(std::accumulate(rows.begin(), rows.end(), 0), b);
    for (size_t i = 0; i < w2.size(); ++i) EXPECT_LE(std::abs(rows[i] - w2[i] * b), 1.0);
  }
}

TEST(AllocateRows, UnbiasedVariantStaysWithinOneRowOfTheQuota) {
  std::mt19937_64 rng(3);
  const std::vector<double> w = {0.05, 0.13, 0.22, 0.6, 0.0};
  for (int i = 0; i < 500; ++i) {
    const auto rows = allocate_rows_unbiased(w, 8, rng);
    EXPECT_EQ(std::accumulate(rows.begin(), rows.end(), 0), 8);
    EXPECT_EQ(rows[4], 0);
    for (size_t d = 0; d < w.size(); ++d) {
      EXPECT_GE(rows[d], std::floor(w[d] * 8));
      EXPECT_LE(rows[d], std::ceil(w[d] * 8));
    }
  }
}

/// Pearson's chi-square statistic of observed counts against expected counts.
double chi_square(const std::vector<double>& observed, const std::vector<double>& expected) {
  double chi = 0;
  for (size_t i = 0; i < observed.size(); ++i) chi += std::pow(observed[i] - expected[i], 2) / expected[i];
  return chi;
}

TEST(MixtureSampler, DomainFrequenciesMatchTheWeights) {
  TempDir dir;
  const auto space = DomainSpace::open(write_space(dir, {50, 40, 30, 20}));
  MixtureSampler sampler(space, 12345);
  const std::vector<double> w = {0.05, 0.13, 0.22, 0.6};
  constexpr int kBatches = 3000, kBatch = 8;  // small batches: quotas 0.4, 1.04, 1.76, 4.8
  std::vector<double> seen(4, 0), expected(4, 0);
  for (int b = 0; b < kBatches; ++b)
    for (auto [d, row] : sampler.choose_rows(w, kBatch)) seen[static_cast<size_t>(d)] += 1;
  for (size_t d = 0; d < 4; ++d) expected[d] = w[d] * kBatches * kBatch;
  // 3 degrees of freedom: P(chi2 > 16.27) = 0.001.
  EXPECT_LT(chi_square(seen, expected), 16.27) << seen[0] << " " << seen[1] << " " << seen[2] << " " << seen[3];
}

TEST(MixtureSampler, RowsWithinADomainAreUniform) {
  TempDir dir;
  const auto space = DomainSpace::open(write_space(dir, {10, 3}));
  MixtureSampler sampler(space, 99);
  const std::vector<double> w = {0.7, 0.3};
  std::vector<double> seen(10, 0);
  double total = 0;
  for (int b = 0; b < 2000; ++b)
    for (auto [d, row] : sampler.choose_rows(w, 5))
      if (d == 0) seen[static_cast<size_t>(row)] += 1, total += 1;
  // 9 degrees of freedom: P(chi2 > 27.88) = 0.001.
  EXPECT_LT(chi_square(seen, std::vector<double>(10, total / 10)), 27.88);
}

TEST(MixtureSampler, SameSeedSameBatchesAndResumableState) {
  TempDir dir;
  const auto space = DomainSpace::open(write_space(dir, {50, 40, 30}));
  const std::vector<double> w = {0.2, 0.3, 0.5};
  MixtureSampler a(space, 7), b(space, 7), c(space, 8);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.sample(w, 6).tokens, b.sample(w, 6).tokens);
  bool differs = false;
  for (int i = 0; i < 5; ++i) differs |= a.sample(w, 6).tokens != c.sample(w, 6).tokens;
  EXPECT_TRUE(differs);
  const auto state = a.rng_state();
  const auto next = a.sample(w, 6).tokens;
  MixtureSampler resumed(space, 0);
  resumed.set_rng_state(state);
  EXPECT_EQ(resumed.sample(w, 6).tokens, next);
  EXPECT_THROW(resumed.set_rng_state("not a state"), DataError);
}

TEST(MixtureSampler, BatchHoldsTheChosenRowsOfEachDomain) {
  TempDir dir;
  const auto space = DomainSpace::open(write_space(dir, {50, 40, 30}));
  const std::vector<double> w = {0.25, 0.25, 0.5};
  MixtureSampler chooser(space, 21), sampler(space, 21);
  const auto chosen = chooser.choose_rows(w, 16);
  const auto batch = sampler.sample(w, 16);
  ASSERT_EQ(batch.rows, 16);
  ASSERT_EQ(batch.width, kWidth);
  ASSERT_EQ(chosen.size(), 16u);
  for (size_t i = 0; i < chosen.size(); ++i) {
    EXPECT_EQ(batch.domain[i], chosen[i].first);
    EXPECT_EQ(batch.tokens[i * kWidth], chosen[i].second);     // column 0 holds the row
    EXPECT_EQ(batch.tokens[i * kWidth + 1], chosen[i].first);  // column 1 holds the domain
  }
  EXPECT_THROW(sampler.sample(std::vector<double>{0.5, 0.5}, 4), DataError);
}

TEST(MixtureSampler, ThreadsSharingOneSpaceGetTheirOwnBatches) {
  TempDir dir;
  const auto space = DomainSpace::open(write_space(dir, {500, 400, 300}));
  const std::vector<double> w = {0.2, 0.3, 0.5};
  auto draw = [&](std::uint64_t seed) {
    MixtureSampler sampler(space, seed);
    std::vector<std::int32_t> all;
    for (int b = 0; b < 300; ++b) {
      const auto batch = sampler.sample(w, 8);
      all.insert(all.end(), batch.tokens.begin(), batch.tokens.end());
    }
    return all;
  };
  std::vector<std::vector<std::int32_t>> serial, threaded(4);
  for (std::uint64_t s = 0; s < 4; ++s) serial.push_back(draw(s));
  std::vector<std::thread> threads;
  for (std::uint64_t s = 0; s < 4; ++s) threads.emplace_back([&, s] { threaded[s] = draw(s); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(serial, threaded);
}

}  // namespace
}  // namespace dma
