#pragma once
// Checkpoint archives (LibTorch OutputArchive / InputArchive) with a format name and version,
// and every LibTorch failure turned into a CheckpointError that names the file and the fix.
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "dma/proxy.hpp"

namespace dma::proxy {

inline constexpr const char* kBaseFormat = "dma-proxy-base";
inline constexpr const char* kStateFormat = "dma-proxy-state";
inline constexpr std::int64_t kFormatVersion = 1;

/// Opens `path` and checks its format name and version; `what` names the file's role in
/// errors ("base checkpoint", "trainer state"), `fix` says how to get a good one.
torch::serialize::InputArchive open_archive(const std::string& path, const std::string& format, const std::string& what,
                                            const std::string& fix);
/// Writes the archive to `path` via a temporary file and a rename (never a half file).
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path, const std::string& format);

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, std::int64_t value);
void write_string(torch::serialize::OutputArchive& archive, const std::string& key, const std::string& value);
std::int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path);
std::string read_string(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path);
torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path);

void write_base_info(torch::serialize::OutputArchive& archive, const BaseInfo& info);
BaseInfo read_base_info(torch::serialize::InputArchive& archive, const std::string& path);

}  // namespace dma::proxy
