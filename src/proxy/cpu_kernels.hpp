#pragma once
// Hand-fused CPU loops for the proxy's memory-bound steps (float32, contiguous rows). Each
// replaces a chain of ATen calls that read and write the whole tensor several times; the
// loops are plain arithmetic the compiler vectorizes (built for AVX2 and a baseline, picked
// at run time). Rows run in parallel with at::parallel_for; every reduction across rows
// sums fixed chunks in a fixed order, so results depend on nothing but the inputs.
//
// Shapes: N rows, D width (model width d, SwiGLU hidden F, vocabulary V).
#include <bit>
#include <cstdint>

namespace dma::proxy::cpu {

/// exp(x) for x <= 0 to a few ulp (Cephes' expf: x = n ln 2 + r, a degree-6 polynomial in
/// r, scaled by 2^n), in arithmetic the compiler vectorizes; 0 below -87 (float underflow),
/// so -inf gives 0.
inline float exp_nonpositive(float x) {
  const float c = x < -87.0f ? -87.0f : x;
  const float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = c - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : p * scale;
}

/// Softmax of row `s` over its first n columns (plus `bias`, may be null), zeros in [n, width).
/// Returns false when no column is visible (every value -inf); the row is then all zeros.
bool softmax_row(float* s, const float* bias, std::int64_t n, std::int64_t width);
/// Softmax backward over one row in place: dp = p (dp - sum_j p dp).
void softmax_grad_row(const float* p, float* dp, std::int64_t n);

/// y = x / rms(x) * w per row; rstd (N) = 1 / rms(x).
void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, std::int64_t n, std::int64_t d, float eps);
/// dx (N, D) and dw (D) of rmsnorm_forward from the upstream gradient g (N, D).
void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* g, float* dx, float* dw,
                      std::int64_t n, std::int64_t d);

/// out (N, F) = silu(gate) * up for rows gu (N, 2F) = [gate | up].
void swiglu_forward(const float* gu, float* out, std::int64_t n, std::int64_t f);
/// dgu (N, 2F) from the upstream gradient go (N, F).
void swiglu_backward(const float* gu, const float* go, float* dgu, std::int64_t n, std::int64_t f);

/// Per-row cross entropy of logits (N, V) against targets (N): loss = lse - logit[target];
/// lse (N) is kept for the backward.
void cross_entropy_forward(const float* logits, const std::int64_t* target, float* loss, float* lse, std::int64_t n,
                           std::int64_t v);
/// dlogits (N, V) = g_row * (softmax - onehot(target)).
void cross_entropy_backward(const float* logits, const std::int64_t* target, const float* lse, const float* grad,
                            float* dlogits, std::int64_t n, std::int64_t v);

}  // namespace dma::proxy::cpu
