// dma_orchestrate: parse config -> MPI -> run the mode. One catch for dma::Error that
// prints "rank N: what" and aborts every rank, so no rank is left waiting.
#include <cstdio>

#include "dma/config.hpp"
#include "dma/error.hpp"
#include "dma/orchestrator.hpp"

int main(int argc, char** argv) {
  dma::CommandLine cl;
  try {
    cl = dma::parse_command_line(argc, argv);
  } catch (const dma::Error& e) {
    std::fprintf(stderr, "dma_orchestrate: %s\n", e.what());
    return 2;
  }
  if (cl.help) {
    std::printf(
        "usage: dma_orchestrate --config FILE --mode MODE [--run.dir DIR] [--resume] [--print-config] "
        "[--section.key=value ...]\n\n%s",
        cl.help_text.c_str());
    return 0;
  }
  if (cl.print_config) {
    std::printf("%s", dma::to_ini(cl.config).c_str());
    return 0;
  }
  try {
    dma::MpiSession mpi(&argc, &argv);
    try {
      return dma::run_orchestrator(cl.config, mpi);
    } catch (const std::exception& e) {
      mpi.abort(e.what(), 1);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dma_orchestrate: %s\n", e.what());
    return 1;
  }
}
