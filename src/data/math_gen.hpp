#pragma once
// The demo's built-in math generator: problems with worked solutions in four sub-domains of
// unequal difficulty, each also in a short "Q: ... A: answer" form used by the benchmark.
#include <random>
#include <string>
#include <vector>

namespace dma::math {

struct Problem {
  std::string key;     ///< identifies the problem whatever its wording (for held-out checks)
  std::string worked;  ///< statement, worked solution, "Answer: <answer>\n"
  std::string prompt;  ///< "Q: <short statement>\nA: " (the benchmark prompt)
  std::string answer;  ///< exact-match answer
};

struct SubDomain {
  const char* name;
  const char* description;
  Problem (*make)(std::mt19937_64& rng);
};

/// The four sub-domains, easiest first: arithmetic with carries, linear equations,
/// fractions and percentages, multi-step word problems.
const std::vector<SubDomain>& sub_domains();

}  // namespace dma::math
