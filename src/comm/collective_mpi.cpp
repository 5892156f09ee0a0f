// The MPI backend: non-blocking collectives on a private duplicate of MPI_COMM_WORLD (so
// they never match dma's control messages), each waited on by the watchdog.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "internal.hpp"

namespace dma {
namespace {

class MpiCollective final : public Collective {
 public:
  MpiCollective(const MpiSession& mpi, double timeout_s) : rank_(mpi.rank()), size_(mpi.size()), timeout_s_(timeout_s) {
    DMA_MPI_CHECK(MPI_Comm_dup(mpi.comm(), &comm_));  // inherits MPI_ERRORS_RETURN
  }
  ~MpiCollective() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  MpiCollective(const MpiCollective&) = delete;
  MpiCollective& operator=(const MpiCollective&) = delete;

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void gather(std::span<const double> send, std::span<double> recv, int root) override {
    detail::check_root(root, size_, "gather");
    const int count = detail::to_count(send.size(), "gather");
    if (rank_ == root && recv.size() != send.size() * static_cast<std::size_t>(size_)) {
      throw MpiError(
          fmt::format("gather: the root's receive buffer holds {} doubles, needs {} "
                      "({} ranks x {})",
                      recv.size(), send.size() * size_, size_, count));
    }
    MPI_Request request = MPI_REQUEST_NULL;
    DMA_MPI_CHECK(MPI_Igather(send.data(), count, MPI_DOUBLE, rank_ == root ? recv.data() : nullptr, count, MPI_DOUBLE,
                              root, comm_, &request));
    wait(request, fmt::format("MPI gather of {} doubles per rank to rank {}", count, root));
  }

  void scatter(std::span<const double> send, std::span<double> recv, int root) override {
    detail::check_root(root, size_, "scatter");
    const int count = detail::to_count(recv.size(), "scatter");
    if (rank_ == root && send.size() != recv.size() * static_cast<std::size_t>(size_)) {
      throw MpiError(
          fmt::format("scatter: the root's send buffer holds {} doubles, needs {} "
                      "({} ranks x {})",
                      send.size(), recv.size() * size_, size_, count));
    }
    MPI_Request request = MPI_REQUEST_NULL;
    DMA_MPI_CHECK(MPI_Iscatter(rank_ == root ? send.data() : nullptr, count, MPI_DOUBLE, recv.data(), count, MPI_DOUBLE,
                               root, comm_, &request));
    wait(request, fmt::format("MPI scatter of {} doubles per rank from rank {}", count, root));
  }

  void broadcast(std::span<double> data, int root) override {
    detail::check_root(root, size_, "broadcast");
    const int count = detail::to_count(data.size(), "broadcast");
    MPI_Request request = MPI_REQUEST_NULL;
    DMA_MPI_CHECK(MPI_Ibcast(data.data(), count, MPI_DOUBLE, root, comm_, &request));
    wait(request, fmt::format("MPI broadcast of {} doubles from rank {}", count, root));
  }

  void barrier() override {
    MPI_Request request = MPI_REQUEST_NULL;
    DMA_MPI_CHECK(MPI_Ibarrier(comm_, &request));
    wait(request, "MPI barrier");
  }

 private:
  void wait(MPI_Request& request, const std::string& what) {
    wait_with_watchdog(request, timeout_s_, rank_, what.c_str());
  }

  int rank_, size_;
  double timeout_s_;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace

namespace detail {

std::unique_ptr<Collective> make_mpi_collective(const MpiSession& mpi, double timeout_s) {
  return std::make_unique<MpiCollective>(mpi, timeout_s);
}

}  // namespace detail
}  // namespace dma
