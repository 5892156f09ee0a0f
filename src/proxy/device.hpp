#pragma once
// Device placement and bf16 autocast. Only API present in both LibTorch 1.13 (CPU) and
// LibTorch 2.x (CUDA builds) is used; the autocast calls changed name in 2.4.
#include <torch/torch.h>

#include "dma/proxy.hpp"

namespace dma::proxy {

/// The torch device of a DeviceChoice ("cpu" or "cuda" with an index).
torch::Device to_torch_device(const DeviceChoice& choice);

/// Whether a GPU of this compute capability (major version) computes in bf16: Ampere (8.x)
/// and later. Older GPUs train and evaluate in float32.
bool bf16_capable(int compute_major);

/// Enables bf16 autocast on a bf16-capable CUDA device for its scope (no-op on CPU and on older
/// GPUs) and clears the cast cache on exit, as Python's `torch.autocast` does.
class AutocastScope {
 public:
  explicit AutocastScope(const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool previous_ = false;
};

}  // namespace dma::proxy
