#pragma once
// AdamW over one flat parameter buffer. The model's parameters and gradients are rebound to
// views of two contiguous buffers, so clipping and the update are a handful of vector ops
// whatever the number of tensors (the per-tensor loop dominated at the demo size).
#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace dma::proxy {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  ///< max global grad norm; <= 0 disables clipping
};

class FlatAdamW {
 public:
  /// Rebinds every parameter of `module` to a view of one buffer (matrices first: they take
  /// weight decay; vectors and the embedding do not) and allocates the moments.
  FlatAdamW(torch::nn::Module& module, AdamWOptions options);

  /// Sets every gradient to zero (the views stay bound, so autograd accumulates in place).
  void zero_grad();
  /// Global L2 norm of the gradient (a host value; non-finite when the step diverged).
  double grad_norm() const;
  /// Clips by `grad_norm` (already computed) and applies one AdamW update at `lr`.
  void step(double lr, double grad_norm);
  /// Clears the moments and the step count (a new trajectory).
  void reset();

  std::int64_t steps() const { return step_; }
  const torch::Tensor& params() const { return params_; }  // (P) flat parameters
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  AdamWOptions options_;
  torch::Tensor params_, grads_, exp_avg_, exp_avg_sq_;  // (P) each
  std::int64_t decayed_ = 0;                             // the first `decayed_` entries decay
  std::int64_t step_ = 0;
};

}  // namespace dma::proxy
