#include "checkpoint.hpp"

#include <bit>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/seed.hpp"
#include "model.hpp"

namespace dma {

std::uint64_t proxy_config_hash(const ProxyConfig& proxy, int vocab_size, int seq_len) {
  const auto key = fmt::format("llama;n_layers={};d_model={};n_heads={};ffn_hidden={};vocab={};seq_len={}",
                               proxy.n_layers, proxy.d_model, proxy.n_heads,
                               proxy::ffn_hidden_for(proxy.ffn_mult, proxy.d_model), vocab_size, seq_len);
  return fnv1a64(key);
}

BaseInfo read_base_info(const std::string& path) {
  auto archive = proxy::open_archive(path, proxy::kBaseFormat, "base checkpoint", "re-run --mode pretrain to write it");
  return proxy::read_base_info(archive, path);
}

namespace proxy {
namespace fs = std::filesystem;

torch::serialize::InputArchive open_archive(const std::string& path, const std::string& format, const std::string& what,
                                            const std::string& fix) {
  if (!fs::is_regular_file(path)) throw CheckpointError(fmt::format("{} '{}' does not exist: {}", what, path, fix));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("{} '{}' is not a readable LibTorch archive ({}): {}", what, path,
                                      e.what_without_backtrace(), fix));
  }
  c10::IValue value;
  if (!archive.try_read("format", value) || !value.isString() || value.toStringRef() != format)
    throw CheckpointError(fmt::format("{} '{}' is not a {} file: {}", what, path, format, fix));
  if (!archive.try_read("format_version", value) || !value.isInt() || value.toInt() != kFormatVersion)
    throw CheckpointError(fmt::format("{} '{}' has format version {} but this build reads {}: {}", what, path,
                                      value.isInt() ? value.toInt() : -1, kFormatVersion, fix));
  return archive;
}

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path, const std::string& format) {
  write_string(archive, "format", format);
  write_int(archive, "format_version", kFormatVersion);
  const auto parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  const auto tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("cannot write checkpoint '{}' ({}): check the directory exists and is writable",
                                      tmp, e.what_without_backtrace()));
  }
  fs::rename(tmp, path, ec);
  if (ec)
    throw CheckpointError(fmt::format("cannot rename '{}' to '{}' ({}): check permissions", tmp, path, ec.message()));
}

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, std::int64_t value) {
  archive.write(key, c10::IValue(value));
}

void write_string(torch::serialize::OutputArchive& archive, const std::string& key, const std::string& value) {
  archive.write(key, c10::IValue(value));
}

std::int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isInt())
    throw CheckpointError(
        fmt::format("checkpoint '{}' lacks the integer '{}': it is corrupt or from another version", path, key));
  return value.toInt();
}

std::string read_string(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isString())
    throw CheckpointError(
        fmt::format("checkpoint '{}' lacks the string '{}': it is corrupt or from another version", path, key));
  return value.toStringRef();
}

torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path) {
  torch::Tensor t;
  if (!archive.try_read(key, t))
    throw CheckpointError(
        fmt::format("checkpoint '{}' lacks the tensor '{}': it is corrupt or from another version", path, key));
  return t;
}

void write_base_info(torch::serialize::OutputArchive& archive, const BaseInfo& info) {
  write_int(archive, "info.config_hash", std::bit_cast<std::int64_t>(info.config_hash));
  write_int(archive, "info.space_fingerprint", std::bit_cast<std::int64_t>(info.space_fingerprint));
  archive.write("info.eval_loss", torch::tensor(info.eval_loss, torch::kFloat32));
  archive.write("info.math_accuracy", torch::tensor(info.math_accuracy, torch::kFloat32));
  write_int(archive, "info.parameters", info.parameters);
}

BaseInfo read_base_info(torch::serialize::InputArchive& archive, const std::string& path) {
  BaseInfo info;
  info.config_hash = std::bit_cast<std::uint64_t>(read_int(archive, "info.config_hash", path));
  info.space_fingerprint = std::bit_cast<std::uint64_t>(read_int(archive, "info.space_fingerprint", path));
  auto losses = read_tensor(archive, "info.eval_loss", path).to(torch::kFloat32).contiguous();
  info.eval_loss.assign(losses.data_ptr<float>(), losses.data_ptr<float>() + losses.numel());
  info.math_accuracy = read_tensor(archive, "info.math_accuracy", path).item<float>();
  info.parameters = read_int(archive, "info.parameters", path);
  return info;
}

}  // namespace proxy
}  // namespace dma
