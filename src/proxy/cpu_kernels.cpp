#include "cpu_kernels.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

// Row functions are compiled twice (AVX2 and baseline x86-64) and picked at load time; eight
// explicit lanes let the compiler vectorize reductions without reassociation flags.
#define DMA_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))

namespace dma::proxy::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr std::int64_t kChunkRows = 256;  // rows per partial sum of a cross-row reduction

/// Rows per parallel task: enough work to amortize the task.
std::int64_t grain(std::int64_t width) { return std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(width, 1)); }

/// The sum of term(j) over j < n in eight lanes, then the tail: an order the compiler can
/// vectorize without reassociation flags. Inlined so each clone vectorizes its own copy.
template <class Term>
[[gnu::always_inline]] inline float lane_sum(std::int64_t n, Term term) {
  float lane[8] = {};
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) lane[l] += term(j + l);
  float s = 0;
  for (float x : lane) s += x;
  for (; j < n; ++j) s += term(j);
  return s;
}

/// The largest of x[0..n), in eight lanes, then the tail (-inf when n is 0).
[[gnu::always_inline]] inline float lane_max(const float* x, std::int64_t n) {
  float lane[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
  float m = *std::max_element(lane, lane + 8);
  for (; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

/// 1 / (1 + exp(-g)) for any g, from exp of a non-positive argument.
inline float sigmoid(float g) {
  const float e = exp_nonpositive(g >= 0 ? -g : g);
  return g >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

DMA_VECTOR_CLONES float rmsnorm_row(const float* x, const float* w, float* y, std::int64_t d, float eps) {
  const float ss = lane_sum(d, [x](std::int64_t j) { return x[j] * x[j]; });
  const float rstd = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
  for (std::int64_t j = 0; j < d; ++j) y[j] = x[j] * rstd * w[j];
  return rstd;
}

// With r = rstd and xhat = x r: dx = r g w - x r^3 sum(g w x) / D; dw += g x r.
DMA_VECTOR_CLONES void rmsnorm_row_backward(const float* x, const float* w, float r, const float* g, float* dx,
                                            float* dw, std::int64_t d) {
  const float dot = lane_sum(d, [g, w, x](std::int64_t j) { return g[j] * w[j] * x[j]; });
  const float k = r * r * r * dot / static_cast<float>(d);
  for (std::int64_t j = 0; j < d; ++j) {
    dx[j] = r * g[j] * w[j] - k * x[j];
    dw[j] += g[j] * x[j] * r;
  }
}

DMA_VECTOR_CLONES void swiglu_row(const float* gu, float* out, std::int64_t f) {
  for (std::int64_t j = 0; j < f; ++j) {
    const float g = gu[j];
    out[j] = g * sigmoid(g) * gu[f + j];
  }
}

// silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g).
DMA_VECTOR_CLONES void swiglu_row_backward(const float* gu, const float* go, float* dgu, std::int64_t f) {
  for (std::int64_t j = 0; j < f; ++j) {
    const float g = gu[j], u = gu[f + j], s = sigmoid(g);
    dgu[j] = go[j] * u * s * (1.0f + g * (1.0f - s));
    dgu[f + j] = go[j] * g * s;
  }
}

DMA_VECTOR_CLONES float logsumexp_row(const float* x, std::int64_t v) {
  const float m = lane_max(x, v);
  return m + std::log(lane_sum(v, [x, m](std::int64_t j) { return exp_nonpositive(x[j] - m); }));
}

DMA_VECTOR_CLONES void softmax_minus_onehot_row(const float* x, float lse, float scale, float* d, std::int64_t v) {
  for (std::int64_t j = 0; j < v; ++j) d[j] = scale * exp_nonpositive(x[j] - lse);
}

}  // namespace

DMA_VECTOR_CLONES bool softmax_row(float* s, const float* bias, std::int64_t n, std::int64_t width) {
  if (bias)
    for (std::int64_t j = 0; j < n; ++j) s[j] += bias[j];
  const float m = lane_max(s, n);
  if (m == kNegInf) {
    std::fill(s, s + width, 0.0f);
    return false;
  }
  std::fill(s + n, s + width, 0.0f);
  for (std::int64_t j = 0; j < n; ++j) s[j] = exp_nonpositive(s[j] - m);
  const float inv = 1.0f / lane_sum(n, [s](std::int64_t j) { return s[j]; });
  for (std::int64_t j = 0; j < n; ++j) s[j] *= inv;
  return true;
}

DMA_VECTOR_CLONES void softmax_grad_row(const float* p, float* dp, std::int64_t n) {
  const float dot = lane_sum(n, [p, dp](std::int64_t j) { return p[j] * dp[j]; });
  for (std::int64_t j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - dot);
}

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, std::int64_t n, std::int64_t d, float eps) {
  at::parallel_for(0, n, grain(d), [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) rstd[i] = rmsnorm_row(x + i * d, w, y + i * d, d, eps);
  });
}

void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* g, float* dx, float* dw,
                      std::int64_t n, std::int64_t d) {
  const auto chunks = (n + kChunkRows - 1) / kChunkRows;
  std::vector<float> partial(static_cast<std::size_t>(chunks * d), 0.0f);  // (chunks, D)
  at::parallel_for(0, chunks, 1, [&](std::int64_t begin, std::int64_t end) {
    for (auto c = begin; c < end; ++c)
      for (auto i = c * kChunkRows; i < std::min(n, (c + 1) * kChunkRows); ++i)
        rmsnorm_row_backward(x + i * d, w, rstd[i], g + i * d, dx + i * d, partial.data() + c * d, d);
  });
  std::fill(dw, dw + d, 0.0f);
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::int64_t j = 0; j < d; ++j) dw[j] += partial[static_cast<std::size_t>(c * d + j)];
}

void swiglu_forward(const float* gu, float* out, std::int64_t n, std::int64_t f) {
  at::parallel_for(0, n, grain(f), [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) swiglu_row(gu + i * 2 * f, out + i * f, f);
  });
}

void swiglu_backward(const float* gu, const float* go, float* dgu, std::int64_t n, std::int64_t f) {
  at::parallel_for(0, n, grain(f), [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) swiglu_row_backward(gu + i * 2 * f, go + i * f, dgu + i * 2 * f, f);
  });
}

void cross_entropy_forward(const float* logits, const std::int64_t* target, float* loss, float* lse, std::int64_t n,
                           std::int64_t v) {
  at::parallel_for(0, n, grain(v), [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) {
      lse[i] = logsumexp_row(logits + i * v, v);
      loss[i] = lse[i] - logits[i * v + target[i]];
    }
  });
}

void cross_entropy_backward(const float* logits, const std::int64_t* target, const float* lse, const float* grad,
                            float* dlogits, std::int64_t n, std::int64_t v) {
  at::parallel_for(0, n, grain(v), [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) {
      softmax_minus_onehot_row(logits + i * v, lse[i], grad[i], dlogits + i * v, v);
      dlogits[i * v + target[i]] -= grad[i];
    }
  });
}

}  // namespace dma::proxy::cpu
