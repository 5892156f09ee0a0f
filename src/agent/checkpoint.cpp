#include "checkpoint.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "dma/agent.hpp"
#include "dma/error.hpp"

namespace dma::agent {
namespace {

// LibTorch's messages span several lines (with a backtrace): keep the first.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string read_string(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isString())
    throw CheckpointError(fmt::format("agent checkpoint '{}' lacks '{}': it is not a dma agent checkpoint", path, key));
  return v.toStringRef();
}

double read_double(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !(v.isDouble() || v.isInt()))
    throw CheckpointError(fmt::format("agent checkpoint '{}' lacks the number '{}': the file is damaged", path, key));
  return v.isDouble() ? v.toDouble() : static_cast<double>(v.toInt());
}

torch::Tensor read_tensor(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  torch::Tensor t;
  if (!ar.try_read(key, t))
    throw CheckpointError(fmt::format("agent checkpoint '{}' lacks the tensor '{}': the file is damaged", path, key));
  return t;
}

void read_module(torch::serialize::InputArchive& ar, const std::string& key, torch::nn::Module& m,
                 const std::string& path) {
  torch::serialize::InputArchive sub;
  if (!ar.try_read(key, sub))
    throw CheckpointError(fmt::format("agent checkpoint '{}' lacks the network '{}': the file is damaged", path, key));
  try {
    m.load(sub);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("agent checkpoint '{}': network '{}' does not match its recorded shape ({})",
                                      path, key, first_line(e.what_without_backtrace())));
  }
}

void write_module(torch::serialize::OutputArchive& ar, const std::string& key, const torch::nn::Module& m) {
  torch::serialize::OutputArchive sub;
  m.save(sub);
  ar.write(key, sub);
}

}  // namespace

AgentState AgentState::create(int d_token, int n_layers, int n_heads, int history, const std::string& actor_features) {
  AgentState s;
  s.shape = NetShape{history * kStepFeatures, d_token, n_layers, n_heads};
  s.history = history;
  s.actor = Actor(s.shape);
  s.actor_mask = actor_input_mask(history, actor_features);
  s.q1 = Critic(s.shape);
  s.q2 = Critic(s.shape);
  s.q1_target = Critic(s.shape);
  s.q2_target = Critic(s.shape);
  copy_parameters(*s.q1_target, *s.q1);
  copy_parameters(*s.q2_target, *s.q2);
  s.log_alpha = torch::full({1}, std::log(0.01));  // a weak entropy bonus next to the scaled Q
  s.norm.mean = torch::zeros({s.shape.in_features});
  s.norm.std = torch::ones({s.shape.in_features});
  return s;
}

void copy_parameters(torch::nn::Module& to, const torch::nn::Module& from) {
  torch::NoGradGuard no_grad;
  auto dst = to.parameters();
  auto src = from.parameters();
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
}

void save_agent(const std::string& path, const AgentState& s) {
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(std::string(kAgentFormat)));
  ar.write("format_version", c10::IValue(static_cast<int64_t>(kAgentFormatVersion)));
  ar.write("feature_layout", c10::IValue(feature_layout(s.history)));
  ar.write("history", c10::IValue(static_cast<int64_t>(s.history)));
  ar.write("d_token", c10::IValue(static_cast<int64_t>(s.shape.d_token)));
  ar.write("n_layers", c10::IValue(static_cast<int64_t>(s.shape.n_layers)));
  ar.write("n_heads", c10::IValue(static_cast<int64_t>(s.shape.n_heads)));
  ar.write("config_ini", c10::IValue(s.config_ini));
  ar.write("score", c10::IValue(s.score));
  ar.write("reward_mean", c10::IValue(s.reward_mean));
  ar.write("reward_scale", c10::IValue(s.reward_scale));
  ar.write("source_scale", c10::IValue(s.source_scale));
  ar.write("target_scale", c10::IValue(s.target_scale));
  ar.write("norm_mean", s.norm.mean);
  ar.write("norm_std", s.norm.std);
  ar.write("actor_mask", s.actor_mask);
  ar.write("field_balanced", c10::IValue(static_cast<int64_t>(s.field_balanced)));
  ar.write("log_alpha", s.log_alpha);
  if (s.rng_state.defined()) ar.write("rng_state", s.rng_state);
  write_module(ar, "actor", *s.actor);
  write_module(ar, "q1", *s.q1);
  write_module(ar, "q2", *s.q2);
  write_module(ar, "q1_target", *s.q1_target);
  write_module(ar, "q2_target", *s.q2_target);
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const std::string tmp = path + ".tmp";
  try {
    ar.save_to(tmp);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("cannot write agent checkpoint '{}' ({}): check the directory and free space",
                                      tmp, first_line(e.what_without_backtrace())));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw CheckpointError(fmt::format("cannot rename '{}' to '{}': {}", tmp, path, ec.message()));
}

AgentState load_agent(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw CheckpointError(fmt::format("agent checkpoint '{}' does not exist: run --mode train-agent first", path));
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw CheckpointError(
        fmt::format("agent checkpoint '{}' is not a readable LibTorch archive ({}): the file is corrupt "
                    "or truncated; train the agent again",
                    path, first_line(e.what_without_backtrace())));
  }
  const auto format = read_string(ar, "format", path);
  if (format != kAgentFormat)
    throw CheckpointError(fmt::format("'{}' is a '{}' file, not a '{}' checkpoint: pass an agent checkpoint (agent.pt)",
                                      path, format, kAgentFormat));
  const auto version = static_cast<int>(read_double(ar, "format_version", path));
  if (version < kAgentOldestFormatVersion || version > kAgentFormatVersion)
    throw CheckpointError(
        fmt::format("agent checkpoint '{}' has format version {}, this build reads {}..{}: retrain the "
                    "agent",
                    path, version, kAgentOldestFormatVersion, kAgentFormatVersion));
  const int history = static_cast<int>(read_double(ar, "history", path));
  const auto layout = read_string(ar, "feature_layout", path);
  if (history < 1 || layout != feature_layout(history))
    throw CheckpointError(
        fmt::format("agent checkpoint '{}' reads features '{}', this build makes '{}': retrain the agent", path, layout,
                    feature_layout(std::max(history, 1))));
  const int d = static_cast<int>(read_double(ar, "d_token", path));
  const int layers = static_cast<int>(read_double(ar, "n_layers", path));
  const int heads = static_cast<int>(read_double(ar, "n_heads", path));
  if (d < 1 || layers < 1 || heads < 1 || d % heads != 0 || d > 65536 || layers > 1024)
    throw CheckpointError(
        fmt::format("agent checkpoint '{}' records an impossible network ({}x{}, {} heads): the file is "
                    "damaged",
                    path, layers, d, heads));
  AgentState s = AgentState::create(d, layers, heads, history);
  s.config_ini = read_string(ar, "config_ini", path);
  s.score = read_string(ar, "score", path);
  s.reward_mean = read_double(ar, "reward_mean", path);
  s.reward_scale = read_double(ar, "reward_scale", path);
  s.source_scale = read_double(ar, "source_scale", path);
  s.target_scale = read_double(ar, "target_scale", path);
  s.norm.mean = read_tensor(ar, "norm_mean", path);
  s.norm.std = read_tensor(ar, "norm_std", path);
  s.actor_mask = read_tensor(ar, "actor_mask", path);
  s.field_balanced = version >= 3 && read_double(ar, "field_balanced", path) != 0;
  if (s.norm.mean.numel() != s.shape.in_features || s.norm.std.numel() != s.shape.in_features ||
      s.actor_mask.numel() != s.shape.in_features)
    throw CheckpointError(fmt::format("agent checkpoint '{}': feature statistics do not match its layout", path));
  s.log_alpha = read_tensor(ar, "log_alpha", path);
  torch::Tensor rng;
  if (ar.try_read("rng_state", rng)) s.rng_state = rng;
  read_module(ar, "actor", *s.actor, path);
  read_module(ar, "q1", *s.q1, path);
  read_module(ar, "q2", *s.q2, path);
  read_module(ar, "q1_target", *s.q1_target, path);
  read_module(ar, "q2_target", *s.q2_target, path);
  return s;
}

}  // namespace dma::agent
