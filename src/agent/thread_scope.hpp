#pragma once
// Sets LibTorch's intra-op threads for a scope, in training and while acting.
#include <ATen/Parallel.h>

namespace dma::agent {

// Sets LibTorch's intra-op threads for a scope. The agent's tensors are small: on a busy
// 2-core machine 2 threads ran 2x slower than 1, and once 15x slower (spinning workers).
class ThreadScope {
 public:
  // threads <= 0 leaves LibTorch's setting alone (and touches nothing, so concurrent callers may use it).
  explicit ThreadScope(int threads) : saved_(threads > 0 ? at::get_num_threads() : 0) {
    if (threads > 0) at::set_num_threads(threads);
  }
  ~ThreadScope() {
    if (saved_ > 0) at::set_num_threads(saved_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_;
};

}  // namespace dma::agent
