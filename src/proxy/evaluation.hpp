#pragma once
// The evaluation environment: per-domain held-out loss on a fixed eval subset and exact
// match on the math benchmark by greedy decoding. Internal to src/proxy (and its tests).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "dma/domain_space.hpp"
#include "model.hpp"

namespace dma::proxy {

/// The fixed eval subset: the first `rows_per_domain` eval rows of every domain (fewer when
/// a domain has fewer), cropped to the model's seq_len + 1 tokens.
struct EvalSet {
  torch::Tensor tokens;         // (R, T+1) int64 on the model's device
  std::vector<int> row_domain;  // (R) domain of each row
  int domains = 0;
};
EvalSet load_eval_set(const DomainSpace& space, int rows_per_domain, int seq_len, const torch::Device& device);

/// Logit values one evaluation chunk may hold on a GPU (2^28: 512 MiB in bf16).
inline constexpr std::int64_t kEvalLogitValues = std::int64_t{1} << 28;

/// Rows per evaluation forward pass: about 4096 tokens on CPU; on a GPU as many rows of
/// `row_tokens` as keep the (rows, T, vocab) logits within kEvalLogitValues. At least 1.
int default_eval_chunk_rows(const torch::Device& device, std::int64_t row_tokens, std::int64_t vocab);

/// Mean token NLL per domain over the eval set (NaN for a domain without rows), computed in
/// forward passes of `chunk_rows` rows (0: default_eval_chunk_rows) under bf16 autocast on
/// CUDA, with one copy of all row losses to the host.
std::vector<float> domain_losses(ProxyLM& model, const EvalSet& set, int chunk_rows = 0);

/// The same in float32 without autocast, copying each chunk's row losses to the host
/// (chunk_rows 0: the CPU chunk of about 4096 tokens): the baseline that the GPU check and
/// the tests measure domain_losses against. On CPU both give the same bits.
std::vector<float> domain_losses_host_per_chunk(ProxyLM& model, const EvalSet& set, int chunk_rows = 0);

/// Math problems with prompts as token ids (bytes tokenizer).
struct MathSet {
  std::vector<std::vector<std::int64_t>> prompts;
  std::vector<std::string> answers;
};
/// The first `count` problems of the space's benchmark; empty unless the tokenizer is bytes.
MathSet load_math_set(const DomainSpace& space, int count);

/// Greedy continuation of each prompt by `max_tokens` tokens (at most seq_len - 1; a prompt
/// keeps its last seq_len - max_tokens tokens), decoded as bytes; all prompts in one batch.
std::vector<std::string> greedy_generate(ProxyLM& model, const std::vector<std::vector<std::int64_t>>& prompts,
                                         int max_tokens, const torch::Device& device);

/// True when more text can no longer change parse_answer(text) (its first number has ended).
bool answer_complete(std::string_view text);

/// True when the generated text's first number equals the answer's (both parsed).
bool exact_match(std::string_view generated, std::string_view answer);

/// Fraction of problems answered exactly; -1 when the set is empty.
float math_accuracy(ProxyLM& model, const MathSet& set, int max_tokens, const torch::Device& device);

}  // namespace dma::proxy
