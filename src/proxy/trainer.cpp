// ProxyTrainer: one trajectory's model, flat AdamW, sampler, torch generator and schedule.
#include <algorithm>
#include <bit>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <numbers>
#include <optional>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "checkpoint.hpp"
#include "device.hpp"
#include "dma/error.hpp"
#include "dma/proxy.hpp"
#include "dma/sampler.hpp"
#include "dma/seed.hpp"
#include "evaluation.hpp"
#include "model.hpp"
#include "optimizer.hpp"

namespace dma {

using proxy::ModelShape;

namespace {

/// glibc returns freed blocks above its mmap/trim thresholds to the OS, and every training
/// step's temporaries (hundreds of KiB each) then page-fault back in: a quarter of the demo
/// proxy's step. Keep freed memory in the heap instead (process-wide, once).
void keep_freed_memory() {
#ifdef __GLIBC__
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
#endif
}

/// Seed of one use (`stream`) of a trajectory seed.
std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) { return derive_seed(seed, stream_salt(stream)); }

ModelShape resolve_shape(const ProxyConfig& p, const DomainSpace& space) {
  ModelShape s;
  s.vocab = space.vocab_size();
  s.seq_len = p.seq_len > 0 ? p.seq_len : space.seq_len();
  s.d_model = p.d_model;
  s.n_layers = p.n_layers;
  s.n_heads = p.n_heads;
  s.ffn_hidden = proxy::ffn_hidden_for(p.ffn_mult, p.d_model);
  if (s.seq_len > space.seq_len())
    throw ConfigError(fmt::format("proxy.seq_len = {} exceeds the domain space's seq_len {}: use at most {} (or 0)",
                                  s.seq_len, space.seq_len(), space.seq_len()));
  if (p.n_heads <= 0 || p.d_model % p.n_heads != 0 || (p.d_model / p.n_heads) % 2 != 0)
    throw ConfigError(
        fmt::format("proxy.d_model = {} must split into proxy.n_heads = {} heads of even width: "
                    "pick n_heads dividing d_model with an even quotient",
                    p.d_model, p.n_heads));
  return s;
}

/// Learning rate after `step` completed steps: linear warm-up, then cosine to min_ratio.
double schedule_lr(std::int64_t step, std::int64_t total, double peak, int warmup, double min_ratio) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / warmup;
  const double span = static_cast<double>(std::max<std::int64_t>(1, total - warmup));
  const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
  return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

/// Copies weights into the model's parameters in place (they are views of the optimizer's
/// flat buffer), checking each shape; `get` returns the stored tensor of a parameter name.
template <class Get>
void assign_parameters(proxy::ProxyLM& model, Get&& get, const std::string& path, const std::string& fix) {
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const torch::Tensor w = get(item.key());
    if (w.sizes() != item.value().sizes())
      throw CheckpointError(fmt::format("checkpoint '{}' has shape [{}] for '{}' but the model needs [{}]: {}", path,
                                        fmt::join(w.sizes(), "x"), item.key(), fmt::join(item.value().sizes(), "x"),
                                        fix));
    item.value().copy_(w);
  }
}

}  // namespace

struct ProxyTrainer::Impl {
  ProxyTrainerConfig config;
  const DomainSpace* space;
  ModelShape shape;
  torch::Device device;
  proxy::ProxyLM model{nullptr};
  std::unique_ptr<proxy::FlatAdamW> optimizer;
  at::Generator generator;
  std::optional<MixtureSampler> sampler;
  proxy::EvalSet eval_set;
  proxy::MathSet math_set;
  // Schedule of the current trajectory.
  std::int64_t total_steps = 0;
  double peak_lr = 0;
  int warmup = 0;
  bool started = false;
  std::string failure;  // non-empty once the trajectory diverged
  // Base weights cached by (path, size, mtime): every generation restarts from them.
  std::string base_key;
  std::map<std::string, torch::Tensor> base_weights;

  Impl(const ProxyTrainerConfig& c, const DomainSpace& s, DeviceChoice choice, std::uint64_t init_seed)
      : config(c),
        space(&s),
        shape(resolve_shape(c.proxy, s)),
        device(proxy::to_torch_device(choice)),
        generator(at::make_generator<at::CPUGeneratorImpl>(init_seed)) {
    if (c.proxy.threads > 0) torch::set_num_threads(c.proxy.threads);
    keep_freed_memory();
    model = proxy::ProxyLM(shape);
    model->initialise(generator);
    model->to_device(device);
    proxy::AdamWOptions o;
    o.weight_decay = c.train.weight_decay;
    o.grad_clip = c.train.grad_clip;
    optimizer = std::make_unique<proxy::FlatAdamW>(*model, o);
    eval_set = proxy::load_eval_set(s, c.eval.eval_rows, shape.seq_len, device);
    math_set = proxy::load_math_set(s, c.eval.bench_problems);
  }

  std::uint64_t config_hash() const { return proxy_config_hash(config.proxy, shape.vocab, shape.seq_len); }

  void reseed(std::uint64_t seed) {
    sampler.emplace(*space, stream_seed(seed, kStreamSampler));
    generator.set_current_seed(stream_seed(seed, kStreamTorch));
  }

  void begin(std::uint64_t seed, std::int64_t total, double lr, int warmup_steps) {
    if (total < 1) throw Error(fmt::format("a trajectory needs at least one optimizer step, got {}", total));
    optimizer->reset();
    reseed(seed);
    total_steps = total;
    peak_lr = lr;
    warmup = warmup_steps;
    failure.clear();
    started = true;
  }

  torch::Tensor batch_tokens(const TokenBatch& batch) const {
    auto t = torch::from_blob(const_cast<std::int32_t*>(batch.tokens.data()), {batch.rows, batch.width}, torch::kInt32);
    return t.narrow(1, 0, shape.seq_len + 1).to(torch::kInt64).to(device);
  }

  void load_base(const std::string& path);
  TrainResult train(std::span<const double> weights, int steps);
};

void ProxyTrainer::Impl::load_base(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto key = fmt::format("{}|{}|{}", path, fs::file_size(path, ec),
                               ec ? 0 : fs::last_write_time(path, ec).time_since_epoch().count());
  if (key != base_key) {
    auto archive = proxy::open_archive(path, proxy::kBaseFormat, "base checkpoint",
                                       "re-run --mode pretrain for this config/domain space");
    const auto info = proxy::read_base_info(archive, path);
    const auto want_hash = config_hash(), want_print = space->fingerprint();
    if (info.config_hash != want_hash || info.space_fingerprint != want_print)
      throw CheckpointError(fmt::format(
          "base checkpoint '{}' was trained for config hash {:016x} and domain space {:016x}, but this run has config "
          "hash {:016x} and domain space {:016x} ('{}'): re-run --mode pretrain for this config/domain space",
          path, info.config_hash, info.space_fingerprint, want_hash, want_print, space->path()));
    std::map<std::string, torch::Tensor> weights;
    for (const auto& item : model->named_parameters())
      weights[item.key()] = proxy::read_tensor(archive, "model." + item.key(), path);
    base_weights = std::move(weights);
    base_key = key;
  }
  assign_parameters(
      model, [&](const std::string& name) { return base_weights.at(name); }, path,
      "re-run --mode pretrain for this config/domain space");
}

TrainResult ProxyTrainer::Impl::train(std::span<const double> weights, int steps) {
  if (!started) throw Error("ProxyTrainer::train called before start_trajectory or start_from_scratch");
  validate_weights(weights, static_cast<std::size_t>(space->num_domains()));
  TrainResult result;
  const auto domains = static_cast<std::size_t>(space->num_domains());
  std::vector<double> loss_sum(domains, 0.0);
  std::vector<std::int64_t> rows(domains, 0);
  result.domain_train_loss.assign(domains, std::numeric_limits<float>::quiet_NaN());
  if (!failure.empty()) {
    result.ok = false;
    result.failure = "trajectory already diverged: " + failure;
    return result;
  }
  model->train();
  double total_loss = 0;
  std::int64_t total_rows = 0;
  for (int s = 0; s < steps; ++s) {
    const auto batch = sampler->sample(weights, config.train.batch_size);
    const auto tokens = batch_tokens(batch);
    optimizer->zero_grad();
    torch::Tensor losses;
    {
      proxy::AutocastScope autocast(device);
      losses = proxy::row_losses(model, tokens);
    }
    auto loss = losses.mean();
    loss.backward();
    const auto host = losses.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    const double loss_value = host.mean().item<double>();
    const auto step = optimizer->steps() + 1;
    const double norm = std::isfinite(loss_value) ? optimizer->grad_norm() : 0.0;
    if (!std::isfinite(loss_value) || !std::isfinite(norm)) {
      failure = fmt::format("non-finite {} at optimizer step {} (lr {:.3g})",
                            std::isfinite(loss_value) ? "gradient norm" : "loss", step,
                            schedule_lr(step - 1, total_steps, peak_lr, warmup, config.train.min_lr_ratio));
      optimizer->zero_grad();
      result.ok = false;
      result.failure = failure;
      break;
    }
    optimizer->step(schedule_lr(step - 1, total_steps, peak_lr, warmup, config.train.min_lr_ratio), norm);
    const double* l = host.data_ptr<double>();
    for (int r = 0; r < batch.rows; ++r) {
      const auto d = static_cast<std::size_t>(batch.domain[static_cast<std::size_t>(r)]);
      loss_sum[d] += l[r];
      ++rows[d];
      total_loss += l[r];
    }
    total_rows += batch.rows;
    result.tokens += static_cast<std::int64_t>(batch.rows) * shape.seq_len;
  }
  for (std::size_t d = 0; d < domains; ++d)
    if (rows[d] > 0) result.domain_train_loss[d] = static_cast<float>(loss_sum[d] / static_cast<double>(rows[d]));
  result.mean_loss = total_rows > 0 ? static_cast<float>(total_loss / static_cast<double>(total_rows))
                                    : std::numeric_limits<float>::quiet_NaN();
  return result;
}

ProxyTrainer::ProxyTrainer(const ProxyTrainerConfig& config, const DomainSpace& space, DeviceChoice device,
                           std::uint64_t init_seed)
    : impl_(std::make_unique<Impl>(config, space, device, init_seed)) {}
ProxyTrainer::~ProxyTrainer() = default;
ProxyTrainer::ProxyTrainer(ProxyTrainer&&) noexcept = default;
ProxyTrainer& ProxyTrainer::operator=(ProxyTrainer&&) noexcept = default;

std::int64_t ProxyTrainer::parameter_count() const { return impl_->model->parameter_count(); }

void ProxyTrainer::start_trajectory(const std::string& base_checkpoint, std::uint64_t seed, std::int64_t total_steps) {
  impl_->load_base(base_checkpoint);
  const auto& t = impl_->config.train;
  impl_->begin(seed, total_steps, t.lr, t.warmup_steps);
}

void ProxyTrainer::start_from_scratch(std::uint64_t seed, std::int64_t total_steps, double peak_lr, int warmup_steps) {
  impl_->begin(seed, total_steps, peak_lr, warmup_steps);
}

TrainResult ProxyTrainer::train(std::span<const double> weights, int steps) { return impl_->train(weights, steps); }

EvalResult ProxyTrainer::evaluate() {
  auto& m = *impl_;
  m.model->eval();
  EvalResult r;
  r.domain_loss = proxy::domain_losses(m.model, m.eval_set);
  r.math_accuracy = proxy::math_accuracy(m.model, m.math_set, m.config.eval.max_answer_tokens, m.device);
  return r;
}

void ProxyTrainer::save_base(const std::string& path, const EvalResult& base_eval) const {
  const auto& m = *impl_;
  torch::serialize::OutputArchive archive;
  for (const auto& item : m.model->named_parameters())
    archive.write("model." + item.key(), item.value().detach().cpu());
  BaseInfo info;
  info.config_hash = m.config_hash();
  info.space_fingerprint = m.space->fingerprint();
  info.eval_loss = base_eval.domain_loss;
  info.math_accuracy = base_eval.math_accuracy;
  info.parameters = parameter_count();
  proxy::write_base_info(archive, info);
  proxy::save_archive(archive, path, proxy::kBaseFormat);
}

void ProxyTrainer::save_state(const std::string& path) const {
  const auto& m = *impl_;
  if (!m.started) throw Error("ProxyTrainer::save_state called before a trajectory started");
  torch::serialize::OutputArchive archive;
  for (const auto& item : m.model->named_parameters())
    archive.write("model." + item.key(), item.value().detach().cpu());
  m.optimizer->save(archive);
  proxy::write_string(archive, "sampler.rng", m.sampler->rng_state());
  archive.write("torch.generator", m.generator.get_state());
  proxy::write_int(archive, "config_hash", std::bit_cast<std::int64_t>(m.config_hash()));
  proxy::write_int(archive, "space_fingerprint", std::bit_cast<std::int64_t>(m.space->fingerprint()));
  proxy::write_int(archive, "schedule.total_steps", m.total_steps);
  archive.write("schedule.peak_lr", torch::tensor(m.peak_lr, torch::kFloat64));
  proxy::write_int(archive, "schedule.warmup", m.warmup);
  proxy::write_string(archive, "failure", m.failure);
  proxy::save_archive(archive, path, proxy::kStateFormat);
}

void ProxyTrainer::reseed(std::uint64_t seed) {
  if (!impl_->started) throw Error("ProxyTrainer::reseed called before a trajectory started");
  impl_->reseed(seed);
}

void ProxyTrainer::load_state(const std::string& path) {
  auto& m = *impl_;
  const std::string fix = "resume from another state file or start the trajectory again";
  auto archive = proxy::open_archive(path, proxy::kStateFormat, "trainer state", fix);
  const auto hash = std::bit_cast<std::uint64_t>(proxy::read_int(archive, "config_hash", path));
  const auto print = std::bit_cast<std::uint64_t>(proxy::read_int(archive, "space_fingerprint", path));
  if (hash != m.config_hash() || print != m.space->fingerprint())
    throw CheckpointError(
        fmt::format("trainer state '{}' belongs to config hash {:016x} / domain space {:016x}, not "
                    "{:016x} / {:016x}: {}",
                    path, hash, print, m.config_hash(), m.space->fingerprint(), fix));
  assign_parameters(
      m.model, [&](const std::string& name) { return proxy::read_tensor(archive, "model." + name, path); }, path, fix);
  try {
    m.optimizer->load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("trainer state '{}': {}: {}", path, e.what_without_backtrace(), fix));
  }
  if (!m.sampler) m.sampler.emplace(*m.space, 0);
  m.sampler->set_rng_state(proxy::read_string(archive, "sampler.rng", path));
  m.generator.set_state(proxy::read_tensor(archive, "torch.generator", path));
  m.total_steps = proxy::read_int(archive, "schedule.total_steps", path);
  m.peak_lr = proxy::read_tensor(archive, "schedule.peak_lr", path).item<double>();
  m.warmup = static_cast<int>(proxy::read_int(archive, "schedule.warmup", path));
  m.failure = proxy::read_string(archive, "failure", path);
  m.started = true;
}

}  // namespace dma
