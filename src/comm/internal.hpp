#pragma once
// Private to src/comm: polling with back-off, "where" strings for errors, backend factories.
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "dma/comm.hpp"

namespace dma::detail {

/// "rank R on host H" for error messages (rank "?" before MPI_Init or after MPI_Finalize).
std::string where();

/// Sleeps between polls: short at first so that a collective that completes soon costs little
/// latency, then growing so that a rank waiting for a long round does not spin a core.
class Backoff {
 public:
  void pause() {
    std::this_thread::sleep_for(delay_);
    delay_ = std::min(kMax, delay_ * 3 / 2);
  }

 private:
  static constexpr std::chrono::microseconds kFirst{200};
  static constexpr std::chrono::microseconds kMax{2000};
  std::chrono::microseconds delay_{kFirst};
};

/// Calls done() until it returns true (true) or timeout_s passes (false). done() is called
/// once more at the deadline, so a late completion still counts.
template <class Done>
bool poll_until(Done&& done, double timeout_s) {
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
  Backoff backoff;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    backoff.pause();
  }
  return true;
}

/// Throws CommTimeout "rank R: <what> did not complete within N s ..." with the fix.
[[noreturn]] void throw_timeout(int rank, const std::string& what, double timeout_s);

/// An element count as MPI's int; throws MpiError naming `what` when it does not fit.
int to_count(std::size_t n, const char* what);

/// Throws MpiError when root is not a rank of a communicator of `size`.
void check_root(int root, int size, const char* op);

std::unique_ptr<Collective> make_mpi_collective(const MpiSession& mpi, double timeout_s);
#ifdef DMA_HAVE_NCCL
std::unique_ptr<Collective> make_nccl_collective(const MpiSession& mpi, double timeout_s);
#endif

}  // namespace dma::detail
