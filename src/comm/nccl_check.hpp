#pragma once
// Private to src/comm: NCCL and CUDA call checks. The macros capture only the expression and
// the location; the functions throw NcclError with the library's own words, so RAII cleans up.
#include <cuda_runtime.h>
#include <nccl.h>

namespace dma::detail {

/// Throws NcclError when rc is neither ncclSuccess nor ncclInProgress (non-blocking comms).
void check_nccl(ncclResult_t rc, ncclComm_t comm, const char* expr, const char* file, int line);
/// Throws NcclError with cudaGetErrorName/String when rc != cudaSuccess.
void check_cuda(cudaError_t rc, const char* expr, const char* file, int line);

}  // namespace dma::detail

#define DMA_NCCL_CHECK(expr, comm) ::dma::detail::check_nccl((expr), (comm), #expr, __FILE__, __LINE__)
#define DMA_CUDA_CHECK(expr) ::dma::detail::check_cuda((expr), #expr, __FILE__, __LINE__)
