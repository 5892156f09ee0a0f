#pragma once
// Causal attention core. On CPU (float32, a CBLAS found at build time) it is one fused kernel
// per (batch, head): score tiles stay in cache, only the causal lower blocks are multiplied,
// and no per-batch tensor views are dispatched (LibTorch 1.13's CPU bmm loops over the batch
// with a select and an addmm per item, which dominated the demo proxy's step). Elsewhere
// (CUDA, bf16) it is LibTorch's scaled_dot_product_attention where LibTorch has it (2.1 and
// later: flash or memory-efficient kernels), else the same maths in tensor ops.
//
// Shapes: BH = batch * heads, Tq queries, Tk keys (Tk >= Tq), hd head width.
#include <cstdint>

#include <torch/torch.h>

namespace dma::proxy {

/// softmax(q k^T + key_bias) v where query i sees keys j <= i + (Tk - Tq). q (BH, Tq, hd) is
/// already scaled; k, v (BH, Tk, hd); key_bias (B, Tk) additive per batch row (-inf hides a
/// padding key; undefined for none), B = BH / heads. A query that sees no key attends to its
/// own column. Differentiable in q, k, v.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& key_bias, std::int64_t heads);

/// Same maths in plain tensor ops (the non-CPU path of LibTorch 1.x, and the reference in tests).
torch::Tensor causal_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& key_bias, std::int64_t heads);

/// True when causal_attention uses the fused CPU kernel for tensors like `q`.
bool fused_attention_available(const torch::Tensor& q);

}  // namespace dma::proxy
