// The watchdog: every wait in comm polls with a wall-clock limit instead of blocking, so a
// rank that never joins becomes a CommTimeout naming the waiting rank, not a hung job.
#include <fmt/format.h>

#include <climits>
#include <string>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "internal.hpp"

namespace dma {
namespace detail {

void throw_timeout(int rank, const std::string& what, double timeout_s) {
  throw CommTimeout(
      fmt::format("rank {}: {} did not complete within {:g} s (comm.timeout_s): another rank never joined "
                  "it (look for its error above) or is still busy; raise comm.timeout_s if a round "
                  "legitimately takes longer",
                  rank, what, timeout_s));
}

int to_count(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX)) {
    throw MpiError(
        fmt::format("{}: {} elements exceed MPI's int count limit ({}): send smaller "
                    "blocks",
                    what, n, INT_MAX));
  }
  return static_cast<int>(n);
}

void check_root(int root, int size, const char* op) {
  if (root < 0 || root >= size) {
    throw MpiError(fmt::format("{}: root {} is not a rank of this {}-rank job", op, root, size));
  }
}

}  // namespace detail

void wait_with_watchdog(MPI_Request& request, double timeout_s, int rank, const char* what) {
  int flag = 0;
  const bool done = detail::poll_until(
      [&] {
        DMA_MPI_CHECK(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
        return flag != 0;
      },
      timeout_s);
  // The request stays pending: MPI cannot cancel a collective, and the caller aborts the job.
  if (!done) detail::throw_timeout(rank, what, timeout_s);
}

void send_text(const std::string& text, int dest, int tag, MPI_Comm comm) {
  const int count = detail::to_count(text.size(), "send_text");
  DMA_MPI_CHECK(MPI_Send(text.data(), count, MPI_CHAR, dest, tag, comm));
}

std::string recv_text(int source, int tag, MPI_Comm comm, double timeout_s, int rank) {
  MPI_Message message = MPI_MESSAGE_NULL;
  MPI_Status status;
  int flag = 0;
  // Matched probe: the message found is the one received, even with MPI_ANY_SOURCE.
  const bool arrived = detail::poll_until(
      [&] {
        DMA_MPI_CHECK(MPI_Improbe(source, tag, comm, &flag, &message, &status));
        return flag != 0;
      },
      timeout_s);
  if (!arrived) {
    const std::string from = source == MPI_ANY_SOURCE ? "any rank" : fmt::format("rank {}", source);
    detail::throw_timeout(rank, fmt::format("receiving a text (tag {}) from {}", tag, from), timeout_s);
  }
  int count = 0;
  DMA_MPI_CHECK(MPI_Get_count(&status, MPI_CHAR, &count));
  std::string text(static_cast<std::size_t>(count), '\0');
  DMA_MPI_CHECK(MPI_Mrecv(text.data(), count, MPI_CHAR, &message, MPI_STATUS_IGNORE));
  return text;
}

}  // namespace dma
