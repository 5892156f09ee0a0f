// Writes a synthetic store for CLI tests and fuzz seeds:
//   make_store OUT EPISODES [HORIZON] [DOMAINS]
// Policies alternate random (target-leaning), uniform, fixed:0.3; every 7th episode fails
// half-way and the last generation is left interrupted.
#include <cstdlib>
#include <iostream>

#include "../store/synthetic_store.hpp"

int main(int argc, char** argv) {
  using namespace dma;
  if (argc < 3) {
    std::cerr << "usage: make_store OUT EPISODES [HORIZON] [DOMAINS]\n";
    return 2;
  }
  try {
    const int n = std::atoi(argv[2]);
    testing::SyntheticSpec spec;
    if (argc > 3) spec.horizon = std::atoi(argv[3]);
    if (argc > 4) spec.domains = std::atoi(argv[4]), spec.targets = spec.domains / 2;
    auto w = StoreWriter::create(argv[1], testing::synthetic_header(spec));
    const std::vector<std::string> policies{"random", "uniform", "fixed:0.3"};
    for (int g = 0; g * 4 < n; ++g) {
      for (int k = 0; k < 4 && g * 4 + k < n; ++k) {
        const std::int64_t id = g * 4 + k;
        const bool fails = id % 7 == 6;
        testing::write_generation(w, {id}, {policies[static_cast<std::size_t>(id % 3)]},
                                  fails ? spec.horizon / 2 : spec.horizon, true, id % 3 == 0 ? 0.8 : 0.4);
      }
    }
    return 0;
  } catch (const dma::Error& e) {
    std::cerr << "make_store: " << e.what() << "\n";
    return 1;
  }
}
