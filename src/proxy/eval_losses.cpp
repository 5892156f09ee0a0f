// Held-out loss per domain: the evaluation's forward passes (the math benchmark's decoding is
// in evaluation.cpp). Kept apart from the domain-space reading so that the GPU check builds
// it without HDF5.
#include <algorithm>
#include <limits>

#include "device.hpp"
#include "evaluation.hpp"

namespace dma::proxy {

namespace {

// Sums row losses (R) on the host into the per-domain mean; NaN for a domain without rows.
std::vector<float> domain_means(const double* row_loss, const EvalSet& set, std::int64_t rows) {
  std::vector<double> sum(static_cast<std::size_t>(set.domains), 0.0);
  std::vector<std::int64_t> count(static_cast<std::size_t>(set.domains), 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto d = static_cast<std::size_t>(set.row_domain[static_cast<std::size_t>(r)]);
    sum[d] += row_loss[r];  // every row has T targets, so the mean of row means is the token mean
    ++count[d];
  }
  std::vector<float> out(sum.size(), std::numeric_limits<float>::quiet_NaN());
  for (std::size_t d = 0; d < sum.size(); ++d)
    if (count[d] > 0) out[d] = static_cast<float>(sum[d] / static_cast<double>(count[d]));
  return out;
}

}  // namespace

int default_eval_chunk_rows(const torch::Device& device, std::int64_t row_tokens, std::int64_t vocab) {
  row_tokens = std::max<std::int64_t>(1, row_tokens);
  // CPU: about 4096 tokens, whose activations stay in cache. GPU: as many rows as keep the
  // logits within kEvalLogitValues, so that a few large launches replace many small ones.
  const auto rows =
      device.is_cpu() ? 4096 / row_tokens : kEvalLogitValues / (row_tokens * std::max<std::int64_t>(1, vocab));
  return static_cast<int>(std::clamp<std::int64_t>(rows, 1, std::numeric_limits<int>::max()));
}

std::vector<float> domain_losses(ProxyLM& model, const EvalSet& set, int chunk_rows) {
  c10::InferenceMode inference;
  const auto device = set.tokens.device();
  AutocastScope autocast(device);  // bf16 on CUDA; nothing on CPU
  const auto rows = set.tokens.size(0);
  if (chunk_rows <= 0) chunk_rows = default_eval_chunk_rows(device, set.tokens.size(1), model->shape().vocab);
  // Row losses stay on the device until all are done: one copy to the host, not one per chunk.
  std::vector<torch::Tensor> parts;
  for (std::int64_t start = 0; start < rows; start += chunk_rows) {
    const auto n = std::min<std::int64_t>(chunk_rows, rows - start);
    parts.push_back(row_losses(model, set.tokens.narrow(0, start, n)).to(torch::kFloat64));
  }
  const auto losses =
      parts.empty() ? torch::empty({0}, torch::kFloat64) : torch::cat(parts).to(torch::kCPU).contiguous();
  return domain_means(losses.data_ptr<double>(), set, rows);
}

std::vector<float> domain_losses_host_per_chunk(ProxyLM& model, const EvalSet& set, int chunk_rows) {
  c10::InferenceMode inference;
  const auto rows = set.tokens.size(0);
  if (chunk_rows <= 0) chunk_rows = default_eval_chunk_rows(torch::kCPU, set.tokens.size(1), model->shape().vocab);
  std::vector<double> row_loss;
  for (std::int64_t start = 0; start < rows; start += chunk_rows) {
    const auto n = std::min<std::int64_t>(chunk_rows, rows - start);
    const auto losses = row_losses(model, set.tokens.narrow(0, start, n)).to(torch::kCPU, torch::kFloat64).contiguous();
    row_loss.insert(row_loss.end(), losses.data_ptr<double>(), losses.data_ptr<double>() + n);
  }
  return domain_means(row_loss.data(), set, rows);
}

}  // namespace dma::proxy
