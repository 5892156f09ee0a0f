#include "device.hpp"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/version.h>
#ifdef DMA_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "dma/error.hpp"

namespace dma {

DeviceChoice choose_device(const std::string& requested, int local_rank) {
  if (requested == "cpu") return {"cpu", 0};
  const bool cuda = torch::cuda::is_available();
  if (requested == "cuda" && !cuda)
    throw ConfigError(
        "proxy.device = cuda but this LibTorch build has no CUDA or sees no GPU: use proxy.device=cpu or auto");
  if (requested != "cuda" && requested != "auto")
    throw ConfigError(fmt::format("proxy.device = '{}' is not valid: use auto, cpu or cuda", requested));
  if (!cuda) return {"cpu", 0};
  const auto count = static_cast<int>(torch::cuda::device_count());
  return {"cuda", (local_rank < 0 ? 0 : local_rank) % count};
}

namespace proxy {

torch::Device to_torch_device(const DeviceChoice& choice) {
  if (choice.kind == "cuda") return {torch::kCUDA, static_cast<c10::DeviceIndex>(choice.index)};
  return torch::Device(torch::kCPU);
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DMA_AUTOCAST_BY_DEVICE 1
#endif

bool bf16_capable(int compute_major) { return compute_major >= 8; }

namespace {

/// The compute capability's major version of a CUDA device; 0 where this LibTorch has no CUDA.
int compute_major([[maybe_unused]] const torch::Device& device) {
#ifdef DMA_TORCH_CUDA
  return at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->major;
#else
  return 0;
#endif
}

}  // namespace

AutocastScope::AutocastScope(const torch::Device& device)
    : active_(device.is_cuda() && bf16_capable(compute_major(device))) {
  if (!active_) return;
#ifdef DMA_AUTOCAST_BY_DEVICE
  previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
  previous_ = at::autocast::is_enabled();
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(true);
#endif
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  at::autocast::clear_cache();
#ifdef DMA_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCUDA, previous_);
#else
  at::autocast::set_enabled(previous_);
#endif
}

}  // namespace proxy
}  // namespace dma
