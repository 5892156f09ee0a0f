// `--mode pretrain`: the base proxy, trained on the source field at natural token shares.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/progress.hpp"
#include "dma/proxy.hpp"
#include "dma/seed.hpp"

namespace dma {

namespace {

/// Natural token shares restricted to the source field (zero on target domains).
std::vector<double> source_shares(const DomainSpace& space) {
  auto shares = space.token_shares();
  double total = 0;
  for (std::size_t d = 0; d < shares.size(); ++d) {
    if (space.domains()[d].field != Field::kSource) shares[d] = 0;
    total += shares[d];
  }
  if (total <= 0)
    throw DataError(
        fmt::format("domain space '{}' has no source-field train rows: pretraining needs at least one "
                    "source domain (rebuild it with dma_prepare)",
                    space.path()));
  for (auto& s : shares) s /= total;
  return shares;
}

void print_eval(const DomainSpace& space, const EvalResult& eval) {
  log_line("pretrain: held-out loss per domain of the base model:");
  const auto& domains = space.domains();
  for (std::size_t d = 0; d < domains.size(); ++d)
    log_line(fmt::format("  {:<24} {:<6} {:.4f}", domains[d].name, field_name(domains[d].field), eval.domain_loss[d]));
  if (eval.math_accuracy >= 0) log_line(fmt::format("  math exact match {:.3f}", eval.math_accuracy));
}

}  // namespace

EvalResult run_pretrain(const Config& config, const DomainSpace& space) {
  Config c = config;
  c.train.batch_size = config.pretrain.batch_size;  // the trainer reads its batch size from train.*
  const auto steps = c.pretrain.steps;
  if (steps < 1) throw ConfigError("pretrain.steps must be at least 1");
  const auto seed = trajectory_seed(c.run.seed, /*id=*/-1);  // id -1: never a collected trajectory
  ProxyTrainer trainer(proxy_trainer_config(c), space, choose_device(c.proxy.device, 0),
                       trajectory_seed(c.run.seed, -1, kStreamTorch));
  log_line(fmt::format("pretrain: proxy with {} parameters (n_layers {}, d_model {}, n_heads {}), {} steps of {} rows",
                       trainer.parameter_count(), c.proxy.n_layers, c.proxy.d_model, c.proxy.n_heads, steps,
                       c.pretrain.batch_size));
  const auto weights = source_shares(space);
  trainer.start_from_scratch(seed, steps, c.pretrain.lr, c.pretrain.warmup_steps);

  Progress progress("pretrain", steps, "steps", c.run.progress_seconds);
  const int chunk = std::clamp(steps / 50, 1, 10);  // train() per chunk: loss and rate per line
  std::int64_t done = 0, tokens = 0;
  float loss = 0;
  while (done < steps) {
    const int n = static_cast<int>(std::min<std::int64_t>(chunk, steps - done));
    const auto r = trainer.train(weights, n);
    if (!r.ok)
      throw Error(fmt::format("pretraining diverged: {}: lower pretrain.lr or raise pretrain.warmup_steps", r.failure));
    done += n;
    tokens += r.tokens;
    loss = r.mean_loss;
    const double rate = static_cast<double>(tokens) / std::max(progress.elapsed_seconds(), 1e-9);
    progress.update(done, fmt::format("loss {:.4f}, {:.0f} tokens/s", loss, rate));
  }
  progress.finish(fmt::format("loss {:.4f}, {} tokens", loss, tokens));

  const auto eval = trainer.evaluate();
  print_eval(space, eval);
  const auto path = (std::filesystem::path(c.run.dir) / "base.pt").string();
  trainer.save_base(path, eval);
  log_line(fmt::format("pretrain: wrote {}", path));
  return eval;
}

}  // namespace dma
