// Backend choice: every rank must pick the same backend, so the NCCL check is agreed over MPI
// and the first rank that cannot run NCCL names the reason for all.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <climits>
#include <memory>
#include <string>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "dma/progress.hpp"
#include "internal.hpp"

namespace dma {
namespace {

constexpr const char* kFix = "; use comm.backend=mpi or auto";

#ifdef DMA_HAVE_NCCL
// "" when every rank can run NCCL, else the lowest failing rank's reason (the same on all).
std::string agree_on_nccl(const MpiSession& mpi, double timeout_s) {
  const std::string mine = nccl_unavailable_reason();
  int first_bad = mine.empty() ? INT_MAX : mpi.rank();
  MPI_Request request = MPI_REQUEST_NULL;
  DMA_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, mpi.comm(), &request));
  wait_with_watchdog(request, timeout_s, mpi.rank(), "agreeing on the collective backend");
  if (first_bad == INT_MAX) return "";
  std::array<char, 1024> text{};
  if (mpi.rank() == first_bad) {
    const std::string line = fmt::format("{} (seen on {})", mine, detail::where());
    std::copy_n(line.begin(), std::min(line.size(), text.size() - 1), text.begin());
  }
  DMA_MPI_CHECK(MPI_Ibcast(text.data(), static_cast<int>(text.size()), MPI_CHAR, first_bad,
                           mpi.comm(), &request));
  wait_with_watchdog(request, timeout_s, mpi.rank(), "sharing why NCCL cannot run");
  return text.data();
}
#else
std::string agree_on_nccl(const MpiSession&, double) { return nccl_unavailable_reason(); }
#endif

}  // namespace

#ifndef DMA_HAVE_NCCL
std::string nccl_unavailable_reason() {
  return "is unavailable: built without NCCL (DMA_WITH_NCCL=OFF or NCCL not found)";
}
#endif

std::unique_ptr<Collective> make_collective(const CommConfig& config, const MpiSession& mpi) {
  if (config.backend == "mpi") return detail::make_mpi_collective(mpi, config.timeout_s);
  if (config.backend != "nccl" && config.backend != "auto") {
    throw ConfigError(fmt::format("comm.backend='{}' is not a backend: use auto, mpi or nccl",
                                  config.backend));
  }
  const std::string why = agree_on_nccl(mpi, config.timeout_s);
  if (config.backend == "nccl" && !why.empty()) throw NcclError("comm.backend=nccl " + why + kFix);
  if (!why.empty()) {
    if (mpi.rank() == 0) log_line("comm.backend=auto chose MPI: NCCL " + why);
    return detail::make_mpi_collective(mpi, config.timeout_s);
  }
#ifdef DMA_HAVE_NCCL
  if (mpi.rank() == 0 && config.backend == "auto") {
    log_line(fmt::format("comm.backend=auto chose NCCL: all {} ranks have a CUDA device", mpi.size()));
  }
  return detail::make_nccl_collective(mpi, config.timeout_s);
#else
  throw NcclError("comm.backend=nccl is unavailable: built without NCCL");  // not reached
#endif
}

}  // namespace dma
