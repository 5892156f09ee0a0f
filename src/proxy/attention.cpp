#include "attention.hpp"

#include "cpu_kernels.hpp"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#ifdef DMA_HAVE_CBLAS
// The C interface every CBLAS exports (OpenBLAS, the reference BLAS, MKL); declared here so no
// header package is needed. Row-major order 101, no transpose 111, transpose 112.
extern "C" void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float* a,
                            int lda, const float* b, int ldb, float beta, float* c, int ldc);
#endif

namespace dma::proxy {

using torch::Tensor;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// Geometry of one call: BH (batch, head) pairs of Tq queries against Tk keys of width hd.
struct Geometry {
  std::int64_t bh = 0, heads = 1, tq = 0, tk = 0, hd = 0;
  std::int64_t offset() const { return tk - tq; }  // query i sees keys j <= i + offset
};

Tensor causal_bias(const Geometry& g, const Tensor& key_bias, const torch::TensorOptions& options) {
  auto bias = torch::full({g.tq, g.tk}, kNegInf, options).triu(g.offset() + 1);  // (Tq, Tk)
  if (!key_bias.defined()) return bias.unsqueeze(0);                             // (1, Tq, Tk)
  const auto b = g.bh / g.heads;
  bias =
      (key_bias.to(options).view({b, 1, 1, g.tk}) + bias).expand({b, g.heads, g.tq, g.tk}).reshape({g.bh, g.tq, g.tk});
  // A query that sees no key attends to its own column (never a NaN row).
  const auto blind = torch::isinf(bias).all(/*dim=*/-1);  // (BH, Tq)
  bias.diagonal(g.offset(), /*dim1=*/-2, /*dim2=*/-1).masked_fill_(blind, 0.0);
  return bias;
}

#ifdef DMA_HAVE_CBLAS
constexpr std::int64_t kBlock = 64;  // query rows per causal block: only keys j < block end are multiplied

/// Row-major C (m x n) = op(A) op(B) + beta C.
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
          const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f,
              a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

/// Columns a block of query rows [r0, r1) needs.
std::int64_t block_columns(const Geometry& g, std::int64_t r1) { return std::min(g.tk, r1 + g.offset()); }

/// Forward of one (batch, head): probabilities into p (Tq, Tk; row stride Tk), output into o.
void forward_one(const Geometry& g, const float* q, const float* k, const float* v, const float* bias, float* p,
                 float* o) {
  for (std::int64_t r0 = 0; r0 < g.tq; r0 += kBlock) {
    const auto r1 = std::min(g.tq, r0 + kBlock), rows = r1 - r0, cols = block_columns(g, r1);
    float* pb = p + r0 * g.tk;
    gemm(false, true, rows, cols, g.hd, q + r0 * g.hd, g.hd, k, g.hd, 0.0f, pb, g.tk);  // scores
    for (std::int64_t i = r0; i < r1; ++i) {
      float* row = p + i * g.tk;
      if (!cpu::softmax_row(row, bias, std::min(g.tk, i + g.offset() + 1), cols)) row[i + g.offset()] = 1.0f;
    }
    gemm(false, false, rows, g.hd, cols, pb, g.tk, v, g.hd, 0.0f, o + r0 * g.hd, g.hd);
  }
}

/// Backward of one (batch, head) from the saved probabilities; `scratch` holds kBlock x Tk.
void backward_one(const Geometry& g, const float* q, const float* k, const float* v, const float* p, const float* dout,
                  float* dq, float* dk, float* dv, float* scratch) {
  std::fill(dk, dk + g.tk * g.hd, 0.0f);
  std::fill(dv, dv + g.tk * g.hd, 0.0f);
  for (std::int64_t r0 = 0; r0 < g.tq; r0 += kBlock) {
    const auto r1 = std::min(g.tq, r0 + kBlock), rows = r1 - r0, cols = block_columns(g, r1);
    const float* pb = p + r0 * g.tk;
    const float* db = dout + r0 * g.hd;
    gemm(false, true, rows, cols, g.hd, db, g.hd, v, g.hd, 0.0f, scratch, cols);  // dP = dO V^T
    gemm(true, false, cols, g.hd, rows, pb, g.tk, db, g.hd, 1.0f, dv, g.hd);      // dV += P^T dO
    for (std::int64_t i = 0; i < rows; ++i) cpu::softmax_grad_row(pb + i * g.tk, scratch + i * cols, cols);
    gemm(false, false, rows, g.hd, cols, scratch, cols, k, g.hd, 0.0f, dq + r0 * g.hd, g.hd);  // dQ = dS K
    gemm(true, false, cols, g.hd, rows, scratch, cols, q + r0 * g.hd, g.hd, 1.0f, dk, g.hd);   // dK += dS^T Q
  }
}

const float* bias_of(const Tensor& key_bias, const Geometry& g, std::int64_t bh) {
  return key_bias.defined() ? key_bias.data_ptr<float>() + (bh / g.heads) * g.tk : nullptr;
}

/// Runs the fused forward; `probs` (BH, Tq, Tk) keeps the probabilities when defined.
Tensor fused_forward(const Geometry& g, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_bias,
                     const Tensor& probs) {
  auto out = torch::empty({g.bh, g.tq, g.hd}, q.options());
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* pp = probs.defined() ? probs.data_ptr<float>() : nullptr;
  at::parallel_for(0, g.bh, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scratch(pp ? 0 : static_cast<std::size_t>(g.tq * g.tk));
    for (auto b = begin; b < end; ++b)
      forward_one(g, qp + b * g.tq * g.hd, kp + b * g.tk * g.hd, vp + b * g.tk * g.hd, bias_of(key_bias, g, b),
                  pp ? pp + b * g.tq * g.tk : scratch.data(), op + b * g.tq * g.hd);
  });
  return out;
}

struct FusedAttentionFn : public torch::autograd::Function<FusedAttentionFn> {
  // key_bias is no autograd input (it has no gradient and may be undefined): passed by pointer.
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor* key_bias, std::int64_t heads) {
    const Geometry g{q.size(0), heads, q.size(1), k.size(1), q.size(2)};
    auto probs = torch::empty({g.bh, g.tq, g.tk}, q.options());
    auto out = fused_forward(g, q, k, v, *key_bias, probs);
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["heads"] = heads;
    return out;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const Geometry g{q.size(0), ctx->saved_data["heads"].toInt(), q.size(1), k.size(1), q.size(2)};
    const auto dout = grads[0].contiguous();
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    at::parallel_for(0, g.bh, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> scratch(static_cast<std::size_t>(kBlock * g.tk));
      for (auto b = begin; b < end; ++b) {
        const auto qo = b * g.tq * g.hd, ko = b * g.tk * g.hd;
        backward_one(g, q.data_ptr<float>() + qo, k.data_ptr<float>() + ko, v.data_ptr<float>() + ko,
                     probs.data_ptr<float>() + b * g.tq * g.tk, dout.data_ptr<float>() + qo, dq.data_ptr<float>() + qo,
                     dk.data_ptr<float>() + ko, dv.data_ptr<float>() + ko, scratch.data());
      }
    });
    return {dq, dk, dv, Tensor(), Tensor()};
  }
};
#endif

}  // namespace

bool fused_attention_available(const Tensor& q) {
#ifdef DMA_HAVE_CBLAS
  return q.device().is_cpu() && q.scalar_type() == torch::kFloat32;
#else
  (void)q;
  return false;
#endif
}

Tensor causal_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_bias,
                                  std::int64_t heads) {
  const Geometry g{q.size(0), heads, q.size(1), k.size(1), q.size(2)};
  const auto bias = causal_bias(g, key_bias, q.options().dtype(torch::kFloat32));
  auto scores = at::baddbmm(bias.to(q.scalar_type()), q, k.transpose(1, 2));  // (BH, Tq, Tk)
  return at::bmm(at::softmax(scores, /*dim=*/-1), v);
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
// LibTorch's fused kernels (flash, memory-efficient): no (Tq, Tk) probabilities in memory.
// They take (B, H, T, hd); the softmax scale is already in q, so scale 1. Training (Tq = Tk, no
// padding) is plain causal; decoding passes the bias as a mask, which the flash kernel
// does not take but the memory-efficient one does.
Tensor sdpa_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_bias, std::int64_t heads) {
  const Geometry g{q.size(0), heads, q.size(1), k.size(1), q.size(2)};
  const auto b = g.bh / heads;
  const auto q4 = q.reshape({b, heads, g.tq, g.hd}), k4 = k.reshape({b, heads, g.tk, g.hd}),
             v4 = v.reshape({b, heads, g.tk, g.hd});
  Tensor out;
  if (!key_bias.defined() && g.tq == g.tk) {
    out = at::scaled_dot_product_attention(q4, k4, v4, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                           /*scale=*/1.0);
  } else {
    const auto mask = causal_bias(g, key_bias, q.options()).view({-1, key_bias.defined() ? heads : 1, g.tq, g.tk});
    out = at::scaled_dot_product_attention(q4, k4, v4, mask, /*dropout_p=*/0.0, /*is_causal=*/false, /*scale=*/1.0);
  }
  return out.reshape({g.bh, g.tq, g.hd});
}
#define DMA_HAVE_SDPA 1
#endif

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_bias, std::int64_t heads) {
#ifdef DMA_HAVE_CBLAS
  if (fused_attention_available(q) && fused_attention_available(k) && fused_attention_available(v)) {
    const auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
    const auto bias = key_bias.defined() ? key_bias.to(torch::kFloat32).contiguous() : key_bias;
    const bool needs_grad =
        torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
    if (needs_grad) return FusedAttentionFn::apply(qc, kc, vc, &bias, heads);
    const Geometry g{q.size(0), heads, q.size(1), k.size(1), q.size(2)};
    return fused_forward(g, qc, kc, vc, bias, Tensor());  // inference: probabilities in per-thread scratch
  }
#endif
#ifdef DMA_HAVE_SDPA
  if (!q.device().is_cpu()) return sdpa_attention(q, k, v, key_bias, heads);
#endif
  return causal_attention_reference(q, k, v, key_bias, heads);
}

}  // namespace dma::proxy
