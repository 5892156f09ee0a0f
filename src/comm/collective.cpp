// Backend choice: every rank must pick the same backend. Each node compares its ranks' GPUs
// (NCCL refuses two ranks of one host on one GPU), then the lowest rank that found a problem
// names it for all.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "dma/progress.hpp"
#include "internal.hpp"

namespace dma {
namespace {

constexpr const char* kFix = "; use comm.backend=mpi or auto";

// A RankDevice as fixed-size text fields, so that one allgather of bytes moves it.
struct DeviceRecord {
  std::array<char, 256> host{};
  std::array<char, 64> device{};
  std::array<char, 512> unavailable{};
};

template <std::size_t N>
void put(std::array<char, N>& field, const std::string& text) {
  std::copy_n(text.begin(), std::min(text.size(), N - 1), field.begin());
}

template <std::size_t N>
std::string get(const std::array<char, N>& field) {
  return std::string(field.data(), std::find(field.begin(), field.end(), '\0'));
}

// "" when every rank can run NCCL, else the lowest failing rank's reason (the same on all).
std::string agree_on_problem(const MpiSession& mpi, const std::string& mine, double timeout_s) {
  int first_bad = mine.empty() ? INT_MAX : mpi.rank();
  MPI_Request request = MPI_REQUEST_NULL;
  DMA_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, mpi.comm(), &request));
  wait_with_watchdog(request, timeout_s, mpi.rank(), "agreeing on the collective backend");
  if (first_bad == INT_MAX) return "";
  std::array<char, 1024> text{};
  if (mpi.rank() == first_bad) put(text, mine);
  DMA_MPI_CHECK(MPI_Ibcast(text.data(), static_cast<int>(text.size()), MPI_CHAR, first_bad, mpi.comm(), &request));
  wait_with_watchdog(request, timeout_s, mpi.rank(), "sharing why NCCL cannot run");
  return get(text);
}

}  // namespace

#ifndef DMA_HAVE_NCCL
std::string nccl_unavailable_reason() {
  return "is unavailable: built without NCCL (DMA_WITH_NCCL=OFF or NCCL not found)";
}

RankDevice this_rank_device(const MpiSession& mpi) { return {mpi.rank(), mpi.host(), "", nccl_unavailable_reason()}; }
#endif

std::string nccl_problem(const std::vector<RankDevice>& ranks) {
  for (const auto& r : ranks) {
    if (!r.unavailable.empty()) return fmt::format("{} (seen on rank {} on host {})", r.unavailable, r.rank, r.host);
  }
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    for (std::size_t j = i + 1; j < ranks.size(); ++j) {
      const auto &a = ranks[i], &b = ranks[j];
      if (a.host != b.host || a.device != b.device) continue;
      return fmt::format(
          "needs a GPU per rank: ranks {} and {} on host {} share GPU {} (start one rank per GPU, "
          "e.g. srun --gpus-per-task=1)",
          a.rank, b.rank, a.host, a.device);
    }
  }
  return "";
}

std::vector<RankDevice> gather_node_devices(const MpiSession& mpi, const RankDevice& mine, double timeout_s) {
  MPI_Comm node = MPI_COMM_NULL;
  DMA_MPI_CHECK(MPI_Comm_split_type(mpi.comm(), MPI_COMM_TYPE_SHARED, mpi.rank(), MPI_INFO_NULL, &node));
  int size = 1;
  MPI_Comm_size(node, &size);
  DeviceRecord record;
  put(record.host, mine.host);
  put(record.device, mine.device);
  put(record.unavailable, mine.unavailable);
  std::vector<DeviceRecord> records(static_cast<std::size_t>(size));
  std::vector<int> ranks(static_cast<std::size_t>(size));
  std::array<MPI_Request, 2> requests{MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  const int rank = mpi.rank();
  int rc =
      MPI_Iallgather(&record, sizeof(record), MPI_BYTE, records.data(), sizeof(record), MPI_BYTE, node, &requests[0]);
  if (rc == MPI_SUCCESS) rc = MPI_Iallgather(&rank, 1, MPI_INT, ranks.data(), 1, MPI_INT, node, &requests[1]);
  try {
    DMA_MPI_CHECK(rc);
    for (auto& request : requests) wait_with_watchdog(request, timeout_s, rank, "gathering the node's GPU ids");
  } catch (...) {
    MPI_Comm_free(&node);
    throw;
  }
  MPI_Comm_free(&node);
  std::vector<RankDevice> out;
  for (std::size_t i = 0; i < records.size(); ++i) {
    out.push_back({ranks[i], get(records[i].host), get(records[i].device), get(records[i].unavailable)});
  }
  return out;
}

std::string agree_on_backend(const CommConfig& config, const MpiSession& mpi, const RankDevice& mine) {
  if (config.backend == "mpi") return "mpi";
  if (config.backend != "nccl" && config.backend != "auto") {
    throw ConfigError(fmt::format("comm.backend='{}' is not a backend: use auto, mpi or nccl", config.backend));
  }
  const std::string why =
      agree_on_problem(mpi, nccl_problem(gather_node_devices(mpi, mine, config.timeout_s)), config.timeout_s);
  if (config.backend == "nccl" && !why.empty()) throw NcclError("comm.backend=nccl " + why + kFix);
  if (mpi.rank() == 0 && config.backend == "auto") {
    log_line(why.empty() ? fmt::format("comm.backend=auto chose NCCL: all {} ranks have a GPU of their own", mpi.size())
                         : "comm.backend=auto chose MPI: NCCL " + why);
  }
  return why.empty() ? "nccl" : "mpi";
}

std::unique_ptr<Collective> make_collective(const CommConfig& config, const MpiSession& mpi) {
  const auto backend = config.backend == "mpi" ? "mpi" : agree_on_backend(config, mpi, this_rank_device(mpi));
  if (backend == "mpi") return detail::make_mpi_collective(mpi, config.timeout_s);
#ifdef DMA_HAVE_NCCL
  return detail::make_nccl_collective(mpi, config.timeout_s);
#else
  throw NcclError("comm.backend=nccl is unavailable: built without NCCL");  // not reached
#endif
}

}  // namespace dma
