// The NCCL backend: a communicator bootstrapped by broadcasting the NCCL id over MPI, gather
// and scatter as grouped ncclSend/ncclRecv, host data staged through pinned buffers. The
// communicator is non-blocking, so every wait polls ncclCommGetAsyncError and cudaStreamQuery
// under the watchdog's limit and aborts the communicator past it (as nccl-tests does).
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "internal.hpp"
#include "nccl_check.hpp"

namespace dma {
namespace detail {

void check_nccl(ncclResult_t rc, ncclComm_t comm, const char* expr, const char* file, int line) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  const char* last = ncclGetLastError(comm);
  throw NcclError(fmt::format("{} failed: {}{}{} ({}, {}:{})", expr, ncclGetErrorString(rc),
                              last != nullptr && *last != '\0' ? ": " : "", last != nullptr ? last : "", where(), file,
                              line));
}

void check_cuda(cudaError_t rc, const char* expr, const char* file, int line) {
  if (rc == cudaSuccess) return;
  throw NcclError(fmt::format("{} failed: {} ({}) ({}, {}:{})", expr, cudaGetErrorString(rc), cudaGetErrorName(rc),
                              where(), file, line));
}

}  // namespace detail

std::string nccl_unavailable_reason() {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: nothing else should see this failure
    return fmt::format("needs a CUDA device: cudaGetDeviceCount says {} ({})", cudaGetErrorString(rc),
                       cudaGetErrorName(rc));
  }
  if (count == 0) return "needs a CUDA device: cudaGetDeviceCount says 0 devices";
  return "";
}

namespace {
// One device per rank on a node; with `--gpus-per-task=1` each rank sees only its own.
int rank_device_index(const MpiSession& mpi, int visible) { return mpi.local_rank() % visible; }
}  // namespace

RankDevice this_rank_device(const MpiSession& mpi) {
  RankDevice mine{mpi.rank(), mpi.host(), "", nccl_unavailable_reason()};
  // NCCL tells hosts apart by NCCL_HOSTID when set (ranks of one machine may pose as hosts).
  if (const char* id = std::getenv("NCCL_HOSTID"); id != nullptr && *id != '\0') mine.host = id;
  if (!mine.unavailable.empty()) return mine;
  int visible = 0;
  char bus[32] = {};
  cudaError_t rc = cudaGetDeviceCount(&visible);
  if (rc == cudaSuccess) rc = cudaDeviceGetPCIBusId(bus, sizeof(bus), rank_device_index(mpi, visible));
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();
    mine.unavailable = fmt::format("cannot name its GPU: cudaDeviceGetPCIBusId says {} ({})", cudaGetErrorString(rc),
                                   cudaGetErrorName(rc));
  }
  mine.device = bus;
  return mine;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_left(Clock::time_point deadline) {
  return std::max(0.0, std::chrono::duration<double>(deadline - Clock::now()).count());
}

// A growable buffer of doubles on the device or in pinned host memory. Pinned, because a
// cudaMemcpyAsync into pageable memory blocks the host until the stream gets there, which
// would put the wait outside the watchdog.
class CudaBuffer {
 public:
  explicit CudaBuffer(bool pinned) : pinned_(pinned) {}
  ~CudaBuffer() { release(); }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  CudaBuffer(CudaBuffer&&) = delete;
  CudaBuffer& operator=(CudaBuffer&&) = delete;

  /// Room for n doubles; the old contents are lost when it grows.
  double* reserve(std::size_t n) {
    if (n <= capacity_) return data_;
    release();
    void* p = nullptr;
    if (pinned_)
      DMA_CUDA_CHECK(cudaMallocHost(&p, n * sizeof(double)));
    else
      DMA_CUDA_CHECK(cudaMalloc(&p, n * sizeof(double)));
    data_ = static_cast<double*>(p);
    capacity_ = n;
    return data_;
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) (void)(pinned_ ? cudaFreeHost(data_) : cudaFree(data_));
    data_ = nullptr;
    capacity_ = 0;
  }
  bool pinned_;
  double* data_ = nullptr;
  std::size_t capacity_ = 0;
};

class NcclCollective final : public Collective {
 public:
  NcclCollective(const MpiSession& mpi, double timeout_s)
      : rank_(mpi.rank()), size_(mpi.size()), timeout_s_(timeout_s) {
    try {
      setup(mpi);
    } catch (...) {
      healthy_ = false;
      release();  // the destructor does not run when a constructor throws
      throw;
    }
  }
  ~NcclCollective() override { release(); }
  NcclCollective(const NcclCollective&) = delete;
  NcclCollective& operator=(const NcclCollective&) = delete;

  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void gather(std::span<const double> send, std::span<double> recv, int root) override;
  void scatter(std::span<const double> send, std::span<double> recv, int root) override;
  void broadcast(std::span<double> data, int root) override;
  void barrier() override {
    MPI_Request request = MPI_REQUEST_NULL;
    DMA_MPI_CHECK(MPI_Ibarrier(mpi_comm_, &request));
    wait_with_watchdog(request, timeout_s_, rank_, "barrier (NCCL backend, over MPI)");
  }

 private:
  void setup(const MpiSession& mpi);
  void release() noexcept;
  Clock::time_point begin() {
    healthy_ = false;                        // until the operation completes: a throw leaves the comm unusable
    DMA_CUDA_CHECK(cudaSetDevice(device_));  // the current device is per thread
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
  }
  double* upload(std::span<const double> data);
  void download(const double* device, std::size_t n);
  void wait_ready(const std::string& what, Clock::time_point deadline);
  void wait_stream(const std::string& what, Clock::time_point deadline);
  bool async_ok(const std::string& what);
  [[noreturn]] void abort_comm(const std::string& what);

  int rank_, size_;
  int device_ = 0;
  double timeout_s_;
  bool healthy_ = true;
  MPI_Comm mpi_comm_ = MPI_COMM_NULL;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  CudaBuffer send_d_{false}, recv_d_{false}, host_in_{true}, host_out_{true};
};

void NcclCollective::setup(const MpiSession& mpi) {
  DMA_MPI_CHECK(MPI_Comm_dup(mpi.comm(), &mpi_comm_));
  int devices = 0;
  DMA_CUDA_CHECK(cudaGetDeviceCount(&devices));
  device_ = rank_device_index(mpi, devices);
  DMA_CUDA_CHECK(cudaSetDevice(device_));
  DMA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  ncclUniqueId id{};
  if (rank_ == 0) DMA_NCCL_CHECK(ncclGetUniqueId(&id), nullptr);
  MPI_Request request = MPI_REQUEST_NULL;
  DMA_MPI_CHECK(MPI_Ibcast(&id, static_cast<int>(sizeof(id)), MPI_BYTE, 0, mpi_comm_, &request));
  wait_with_watchdog(request, timeout_s_, rank_, "broadcasting the NCCL id");
  const auto deadline = begin();
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that setup, too, runs under the watchdog
  DMA_NCCL_CHECK(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), comm_);
  wait_ready("NCCL communicator setup", deadline);
  healthy_ = true;
}

void NcclCollective::release() noexcept {
  if (comm_ != nullptr) {
    // Finalize (flushes, may wait on peers) only a communicator whose last operation
    // completed, and never for long; otherwise abort, which never waits.
    bool clean = false;
    const ncclResult_t rc = healthy_ ? ncclCommFinalize(comm_) : ncclInternalError;
    if (rc == ncclSuccess || rc == ncclInProgress) {
      ncclResult_t state = ncclInProgress;
      bool query_ok = true;
      detail::poll_until(
          [&] {
            query_ok = ncclCommGetAsyncError(comm_, &state) == ncclSuccess;
            return !query_ok || state != ncclInProgress;
          },
          std::min(timeout_s_, 30.0));
      clean = query_ok && state == ncclSuccess;
    }
    (void)(clean ? ncclCommDestroy(comm_) : ncclCommAbort(comm_));
    comm_ = nullptr;
  }
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  stream_ = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && mpi_comm_ != MPI_COMM_NULL) MPI_Comm_free(&mpi_comm_);
}

double* NcclCollective::upload(std::span<const double> data) {
  double* host = host_in_.reserve(data.size());
  std::memcpy(host, data.data(), data.size_bytes());
  double* device = send_d_.reserve(data.size());
  DMA_CUDA_CHECK(cudaMemcpyAsync(device, host, data.size_bytes(), cudaMemcpyHostToDevice, stream_));
  return device;
}

void NcclCollective::download(const double* device, std::size_t n) {
  double* host = host_out_.reserve(n);
  DMA_CUDA_CHECK(cudaMemcpyAsync(host, device, n * sizeof(double), cudaMemcpyDeviceToHost, stream_));
}

void NcclCollective::abort_comm(const std::string& what) {
  healthy_ = false;
  (void)ncclCommAbort(comm_);  // unblocks the stream; the communicator is gone for good
  comm_ = nullptr;
  detail::throw_timeout(rank_, what, timeout_s_);
}

// False while NCCL is still working on the communicator; throws on an asynchronous error.
bool NcclCollective::async_ok(const std::string& what) {
  ncclResult_t state = ncclSuccess;
  DMA_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state), comm_);
  if (state == ncclSuccess) return true;
  if (state == ncclInProgress) return false;
  const std::string text =
      fmt::format("{} failed: {}: {} ({})", what, ncclGetErrorString(state), ncclGetLastError(comm_), detail::where());
  (void)ncclCommAbort(comm_);
  comm_ = nullptr;
  throw NcclError(text);
}

// A non-blocking communicator must leave ncclInProgress before more work joins its stream.
void NcclCollective::wait_ready(const std::string& what, Clock::time_point deadline) {
  if (!detail::poll_until([&] { return async_ok(what); }, seconds_left(deadline))) abort_comm(what);
}

void NcclCollective::wait_stream(const std::string& what, Clock::time_point deadline) {
  const bool done = detail::poll_until(
      [&] {
        (void)async_ok(what);
        const cudaError_t rc = cudaStreamQuery(stream_);
        if (rc == cudaErrorNotReady) return false;
        DMA_CUDA_CHECK(rc);
        return true;
      },
      seconds_left(deadline));
  if (!done) abort_comm(what);
}

void NcclCollective::gather(std::span<const double> send, std::span<double> recv, int root) {
  detail::check_root(root, size_, "gather");
  const std::size_t n = send.size();
  if (rank_ == root && recv.size() != n * static_cast<std::size_t>(size_)) {
    throw NcclError(
        fmt::format("gather: the root's receive buffer holds {} doubles, needs {} "
                    "({} ranks x {})",
                    recv.size(), n * size_, size_, n));
  }
  if (n == 0) return;
  const std::string what = fmt::format("NCCL gather of {} doubles per rank to rank {}", n, root);
  const auto deadline = begin();
  double* out = rank_ == root ? recv_d_.reserve(n * size_) : nullptr;
  double* in = upload(send);
  DMA_NCCL_CHECK(ncclGroupStart(), comm_);
  for (int r = 0; r < size_ && rank_ == root; ++r) {
    if (r != root) DMA_NCCL_CHECK(ncclRecv(out + r * n, n, ncclDouble, r, comm_, stream_), comm_);
  }
  if (rank_ != root) DMA_NCCL_CHECK(ncclSend(in, n, ncclDouble, root, comm_, stream_), comm_);
  DMA_NCCL_CHECK(ncclGroupEnd(), comm_);
  wait_ready(what, deadline);
  if (rank_ == root) {
    DMA_CUDA_CHECK(cudaMemcpyAsync(out + root * n, in, n * sizeof(double), cudaMemcpyDeviceToDevice, stream_));
    download(out, recv.size());
  }
  wait_stream(what, deadline);
  if (rank_ == root) std::memcpy(recv.data(), host_out_.reserve(recv.size()), recv.size_bytes());
  healthy_ = true;
}

void NcclCollective::scatter(std::span<const double> send, std::span<double> recv, int root) {
  detail::check_root(root, size_, "scatter");
  const std::size_t n = recv.size();
  if (rank_ == root && send.size() != n * static_cast<std::size_t>(size_)) {
    throw NcclError(
        fmt::format("scatter: the root's send buffer holds {} doubles, needs {} "
                    "({} ranks x {})",
                    send.size(), n * size_, size_, n));
  }
  if (n == 0) return;
  const std::string what = fmt::format("NCCL scatter of {} doubles per rank from rank {}", n, root);
  const auto deadline = begin();
  double* out = recv_d_.reserve(n);
  double* in = rank_ == root ? upload(send) : nullptr;
  DMA_NCCL_CHECK(ncclGroupStart(), comm_);
  for (int r = 0; r < size_ && rank_ == root; ++r) {
    if (r != root) DMA_NCCL_CHECK(ncclSend(in + r * n, n, ncclDouble, r, comm_, stream_), comm_);
  }
  if (rank_ != root) DMA_NCCL_CHECK(ncclRecv(out, n, ncclDouble, root, comm_, stream_), comm_);
  DMA_NCCL_CHECK(ncclGroupEnd(), comm_);
  wait_ready(what, deadline);
  if (rank_ == root) {
    DMA_CUDA_CHECK(cudaMemcpyAsync(out, in + root * n, n * sizeof(double), cudaMemcpyDeviceToDevice, stream_));
  }
  download(out, n);
  wait_stream(what, deadline);
  std::memcpy(recv.data(), host_out_.reserve(n), recv.size_bytes());
  healthy_ = true;
}

void NcclCollective::broadcast(std::span<double> data, int root) {
  detail::check_root(root, size_, "broadcast");
  const std::size_t n = data.size();
  if (n == 0) return;
  const std::string what = fmt::format("NCCL broadcast of {} doubles from rank {}", n, root);
  const auto deadline = begin();
  double* buffer = rank_ == root ? upload(data) : send_d_.reserve(n);
  DMA_NCCL_CHECK(ncclBroadcast(buffer, buffer, n, ncclDouble, root, comm_, stream_), comm_);
  wait_ready(what, deadline);
  if (rank_ != root) download(buffer, n);
  wait_stream(what, deadline);
  if (rank_ != root) std::memcpy(data.data(), host_out_.reserve(n), data.size_bytes());
  healthy_ = true;
}

}  // namespace

namespace detail {

std::unique_ptr<Collective> make_nccl_collective(const MpiSession& mpi, double timeout_s) {
  return std::make_unique<NcclCollective>(mpi, timeout_s);
}

}  // namespace detail
}  // namespace dma
