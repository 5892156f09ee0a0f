// proxy_check: the proxy's compute on one device, for tools/gpu/check.sh.
//   proxy_check [--device cpu|cuda] [--preset tiny|50m] [--steps N]
// Prints, each line starting "proxy_check:":
//   parity of the loss and gradients against CPU float32, in float32 and bf16 on the device;
//   train step time and MFU (bf16 on CUDA) against a matmul measured here;
//   evaluation throughput before (float32, a host copy per 4096-token chunk) and after
//   (bf16 autocast, large chunks, one host copy), and the evaluation cost of one
//   re-weighting step relative to its training.
// Exit 1 when a parity tolerance (docs/gpu.md) is exceeded, 2 on bad arguments.
//
// Shapes: B rows, T seq_len, V vocabulary, P parameters, R evaluation rows.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "device.hpp"
#include "dma/config.hpp"
#include "evaluation.hpp"
#include "model.hpp"
#include "optimizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using dma::proxy::ModelShape;
using dma::proxy::ProxyLM;

struct Preset {
  ModelShape shape;
  int batch = 8;                                             // rows per optimizer step
  int domains = 14;                                          // evaluation domains
  int eval_rows = 32;                                        // rows per domain measured here
  int config_eval_rows = dma::EvalConfig{}.eval_rows;        // rows per domain of the config the ratio is for
  int steps_per_round = dma::TrainConfig{}.steps_per_round;  // optimizer steps per re-weighting step of it
  const char* config = "the embedded default";
};

Preset preset(const std::string& name) {
  Preset p;
  if (name == "tiny") {
    p.shape = {256, 128, 64, 2, 4, 128};
    return p;
  }
  if (name == "50m") {  // configs/cluster-52d.ini's proxy at seq_len 1024 with a 32K vocabulary
    p.shape = {32000, 1024, 512, 10, 8, dma::proxy::ffn_hidden_for(2.75, 512)};
    p.batch = 32;
    p.domains = 52;
    p.config_eval_rows = 256;
    p.steps_per_round = 50;
    p.config = "configs/cluster-52d.ini";
    return p;
  }
  throw std::invalid_argument("--preset " + name + " is not a preset: use tiny or 50m");
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

template <class F>
double best_seconds(const torch::Device& device, int reps, F&& work) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    sync(device);
    const auto start = Clock::now();
    work();
    sync(device);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

ProxyLM make_model(const ModelShape& shape, const torch::Device& device) {
  ProxyLM model(shape);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  model->initialise(gen);  // on CPU: every device starts from the same weights
  model->to_device(device);
  return model;
}

struct LossGrads {
  double loss = 0;
  torch::Tensor grads;  // (P) float32 on CPU
};

LossGrads loss_and_grads(ProxyLM& model, const torch::Tensor& tokens, bool bf16) {
  const auto device = model->parameters().front().device();
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  torch::Tensor loss;
  {
    std::optional<dma::proxy::AutocastScope> autocast;
    if (bf16) autocast.emplace(device);
    loss = dma::proxy::row_losses(model, tokens.to(device)).mean();
  }
  loss.backward();
  std::vector<torch::Tensor> flat;
  for (const auto& p : model->parameters()) flat.push_back(p.grad().flatten().to(torch::kCPU, torch::kFloat32));
  return {loss.item<double>(), torch::cat(flat)};
}

// Tolerances of docs/gpu.md: float32 agrees to rounding; bf16 keeps 8 bits of mantissa.
bool check_parity(const Preset& p, const torch::Device& device) {
  torch::manual_seed(3);
  const auto tokens = torch::randint(p.shape.vocab, {2, p.shape.seq_len + 1}, torch::kInt64);
  auto cpu_model = make_model(p.shape, torch::kCPU);
  const auto want = loss_and_grads(cpu_model, tokens, false);
  auto model = make_model(p.shape, device);
  bool ok = true;
  for (bool bf16 : {false, true}) {
    if (bf16 && !device.is_cuda()) {
      fmt::print("proxy_check: parity bf16: skipped (autocast is for CUDA; CPU trains in float32)\n");
      continue;
    }
    const auto got = loss_and_grads(model, tokens, bf16);
    const double loss_rel = std::abs(got.loss - want.loss) / std::abs(want.loss);
    const double grad_rel = ((got.grads - want.grads).abs().max() / want.grads.abs().max()).item<double>();
    const double cosine = torch::cosine_similarity(got.grads, want.grads, /*dim=*/0).item<double>();
    const bool pass = bf16 ? loss_rel <= 2e-2 && cosine >= 0.99 : loss_rel <= 1e-4 && grad_rel <= 1e-3;
    ok = ok && pass;
    fmt::print(
        "proxy_check: parity {} on {} vs CPU float32: loss {:.6f} vs {:.6f} (rel {:.2e}), gradient max-abs "
        "rel {:.2e}, cosine {:.6f}: {}\n",
        bf16 ? "bf16" : "float32", device.str(), got.loss, want.loss, loss_rel, grad_rel, cosine,
        pass ? "PASS" : "FAIL");
  }
  return ok;
}

double matmul_flops(const torch::Device& device) {
  const int n = device.is_cuda() ? 8192 : 1024;
  const auto options =
      torch::TensorOptions().device(device).dtype(device.is_cuda() ? torch::kBFloat16 : torch::kFloat32);
  auto a = torch::randn({n, n}, options), b = torch::randn({n, n}, options), c = torch::empty({n, n}, options);
  const double s = best_seconds(device, 5, [&] { at::mm_out(c, a, b); });
  return 2.0 * n * n * static_cast<double>(n) / s;
}

// Seconds per optimizer step (forward, backward, AdamW) in the precision the trainer uses.
double train_step_seconds(const Preset& p, ProxyLM& model, const torch::Device& device, int steps) {
  dma::proxy::FlatAdamW optimizer(*model, {});
  const auto tokens = torch::randint(p.shape.vocab, {p.batch, p.shape.seq_len + 1}, torch::kInt64).to(device);
  auto step = [&] {
    optimizer.zero_grad();
    torch::Tensor loss;
    {
      dma::proxy::AutocastScope autocast(device);
      loss = dma::proxy::row_losses(model, tokens).mean();
    }
    loss.backward();
    optimizer.step(1e-4, optimizer.grad_norm());
  };
  step();
  step();
  return best_seconds(device, 1,
                      [&] {
                        for (int s = 0; s < steps; ++s) step();
                      }) /
         steps;
}

void report_training(const Preset& p, ProxyLM& model, const torch::Device& device, double step_s) {
  const double tokens = static_cast<double>(p.batch) * p.shape.seq_len;
  const double per_token = 6.0 * static_cast<double>(model->parameter_count()) +
                           12.0 * p.shape.n_layers * p.shape.seq_len * p.shape.d_model;  // dense + attention
  const double peak = matmul_flops(device);
  fmt::print(
      "proxy_check: train P={:.1f}M B={} T={} on {} ({}): {:.1f} ms/step, {:.0f} tokens/s, {:.1f} TFLOP/s "
      "= MFU {:.1f}% of a measured {} matmul at {:.1f} TFLOP/s\n",
      model->parameter_count() / 1e6, p.batch, p.shape.seq_len, device.str(),
      device.is_cuda() ? "bf16 autocast" : "float32", 1e3 * step_s, tokens / step_s, per_token * tokens / step_s / 1e12,
      100.0 * per_token * tokens / step_s / peak, device.is_cuda() ? "bf16" : "float32", peak / 1e12);
}

void report_evaluation(const Preset& p, ProxyLM& model, const torch::Device& device, double step_s) {
  dma::proxy::EvalSet set;
  set.domains = p.domains;
  const auto rows = static_cast<std::int64_t>(p.domains) * p.eval_rows;
  set.tokens = torch::randint(p.shape.vocab, {rows, p.shape.seq_len + 1}, torch::kInt64).to(device);
  for (int d = 0; d < p.domains; ++d)
    set.row_domain.insert(set.row_domain.end(), static_cast<std::size_t>(p.eval_rows), d);
  std::vector<float> before, after;
  const double before_s =
      best_seconds(device, 2, [&] { before = dma::proxy::domain_losses_host_per_chunk(model, set); });
  const double after_s = best_seconds(device, 2, [&] { after = dma::proxy::domain_losses(model, set); });
  double diff = 0;
  for (std::size_t d = 0; d < before.size(); ++d)
    diff = std::max(diff, static_cast<double>(std::abs(after[d] - before[d]) / before[d]));
  const double tokens = static_cast<double>(rows) * p.shape.seq_len;
  fmt::print(
      "proxy_check: eval R={} rows: before {:.0f} tokens/s (float32, {}-row chunks, a host copy each), after "
      "{:.0f} tokens/s ({}{}-row chunks, one host copy): {:.2f}x; domain losses differ by at most {:.2e} (relative)\n",
      rows, tokens / before_s, dma::proxy::default_eval_chunk_rows(torch::kCPU, p.shape.seq_len + 1, p.shape.vocab),
      tokens / after_s, device.is_cuda() ? "bf16 autocast, " : "",
      dma::proxy::default_eval_chunk_rows(device, p.shape.seq_len + 1, p.shape.vocab), before_s / after_s, diff);
  const double scale = static_cast<double>(p.config_eval_rows) / p.eval_rows, round_s = p.steps_per_round * step_s;
  fmt::print(
      "proxy_check: evaluation per re-weighting step of {} ({} eval rows x {} domains vs {} optimizer steps): "
      "before {:.3f}x its training, after {:.3f}x\n",
      p.config, p.config_eval_rows, p.domains, p.steps_per_round, scale * before_s / round_s,
      scale * after_s / round_s);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cuda", preset_name = "50m";
  int steps = 10;
  Preset p;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      if (a == "--device")
        device_name = argv[++i];
      else if (a == "--preset")
        preset_name = argv[++i];
      else if (a == "--steps")
        steps = std::stoi(argv[++i]);
      else
        throw std::invalid_argument("unknown option " + a + ": use --device cpu|cuda, --preset tiny|50m, --steps N");
    }
    p = preset(preset_name);
    if (device_name != "cpu" && device_name != "cuda")
      throw std::invalid_argument("--device " + device_name + ": use cpu or cuda");
    if (device_name == "cuda" && !torch::cuda::is_available())
      throw std::invalid_argument("--device cuda: this LibTorch has no CUDA or sees no GPU; use --device cpu");
  } catch (const std::exception& e) {
    fmt::print(stderr, "proxy_check: {}\n", e.what());
    return 2;
  }
  const torch::Device device = device_name == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  fmt::print("proxy_check: LibTorch {} on {}, preset {}\n", TORCH_VERSION, device.str(), preset_name);
  const bool parity = check_parity(p, device);
  auto model = make_model(p.shape, device);
  const double step_s = train_step_seconds(p, model, device, steps);
  report_training(p, model, device, step_s);
  model->eval();
  report_evaluation(p, model, device, step_s);
  return parity ? 0 : 1;
}
