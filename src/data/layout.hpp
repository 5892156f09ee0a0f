#pragma once
// Names of the domain-space file layout (DESIGN §5), shared by the reader and the writer.
#include <cstdint>

namespace dma::layout {

inline constexpr const char* kFormat = "format";
inline constexpr const char* kFormatName = "dma-domain-space";
inline constexpr const char* kFormatVersion = "format_version";
inline constexpr std::int64_t kVersion = 1;
inline constexpr const char* kVocab = "vocab_size";
inline constexpr const char* kSeqLen = "seq_len";
inline constexpr const char* kTokenizer = "tokenizer";
inline constexpr const char* kTokenizerModel = "tokenizer_model";
inline constexpr const char* kTokenizerModelSha256 = "tokenizer_model_sha256";
inline constexpr const char* kDomainOrder = "domain_order";
inline constexpr const char* kField = "field";
inline constexpr const char* kProvenance = "provenance";
inline constexpr const char* kMathBench = "benchmarks/math";
inline constexpr std::int64_t kMaxVocab = 2147483647;
inline constexpr std::int64_t kMaxSeqLen = 1 << 20;

}  // namespace dma::layout
