#pragma once
// Device placement and bf16 autocast. Only API present in both LibTorch 1.13 (CPU) and
// LibTorch 2.x (CUDA builds) is used; the autocast calls changed name in 2.4.
#include <torch/torch.h>

#include "dma/proxy.hpp"

namespace dma::proxy {

/// The torch device of a DeviceChoice ("cpu" or "cuda" with an index).
torch::Device to_torch_device(const DeviceChoice& choice);

/// Enables bf16 autocast on CUDA for its scope (no-op on CPU) and clears the cast cache on
/// exit, as Python's `torch.autocast` does.
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
