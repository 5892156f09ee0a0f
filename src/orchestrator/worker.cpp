// Workers are dumb environments: they train and evaluate what the learner says, with the
// weights it says, and report fixed-size records. They never decide a mixture.
#include "worker.hpp"

#include <chrono>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "dma/error.hpp"
#include "dma/orchestrator.hpp"
#include "dma/progress.hpp"
#include "dma/proxy.hpp"
#include "dma/seed.hpp"
#include "protocol.hpp"

namespace dma {
namespace {

class SlotHost {
 public:
  explicit SlotHost(RunContext& ctx)
      : ctx_(ctx), trainers_(static_cast<size_t>(ctx.config.orchestrator.slots)), current_(trainers_.size(), -1) {}

  protocol::SlotRecord step(int slot, const protocol::SlotCommand& c) {
    protocol::SlotRecord r;
    r.episode_id = c.episode_id;
    r.step = c.step;
    if (c.episode_id < 0) return r;
    auto& trainer = trainers_[static_cast<size_t>(slot)];
    const auto& cfg = ctx_.config;
    // The device is chosen here, inside the round, so that a failure reaches the learner
    // through the protocol and the store records the episodes as interrupted.
    if (!device_) device_ = choose_device(cfg.proxy.device, ctx_.mpi.local_rank());
    if (!trainer)
      trainer.emplace(proxy_trainer_config(cfg), ctx_.space, *device_,
                      trajectory_seed(cfg.run.seed, c.seed_id, kStreamTorch));
    if (current_[static_cast<size_t>(slot)] != c.episode_id || c.step == 0) {
      const auto seed = trajectory_seed(cfg.run.seed, c.seed_id);
      trainer->start_trajectory(ctx_.base_path(), seed,
                                static_cast<std::int64_t>(cfg.train.horizon) * cfg.train.steps_per_round);
      if (c.parent >= 0) {  // a tree branch: the root's trained prefix, then its own draws
        trainer->load_state(ctx_.kept_state_path(c.parent));
        trainer->reseed(seed);
      }
      current_[static_cast<size_t>(slot)] = c.episode_id;
    }
    const auto t0 = std::chrono::steady_clock::now();
    TrainResult tr = trainer->train(c.weights, cfg.train.steps_per_round);
    r.tokens = tr.tokens;
    if (!tr.ok) return failed(r, slot, tr.failure, t0);
    EvalResult ev = trainer->evaluate();
    for (float x : ev.domain_loss)
      if (!std::isfinite(x)) return failed(r, slot, "non-finite held-out loss", t0);
    r.status = protocol::kOk;
    r.eval_loss = std::move(ev.domain_loss);
    r.train_loss = std::move(tr.domain_train_loss);
    r.math_accuracy = ev.math_accuracy;
    // Kept before the record goes back, so a root reported past this step has its state on disk.
    if (c.keep_state) trainer->save_state(ctx_.kept_state_path(c.episode_id));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }

 private:
  protocol::SlotRecord failed(protocol::SlotRecord r, int slot, const std::string& why,
                              std::chrono::steady_clock::time_point t0) {
    log_line(fmt::format("rank {}: episode {} failed at step {}: {}", ctx_.mpi.rank(), r.episode_id, r.step, why));
    current_[static_cast<size_t>(slot)] = -1;
    r.status = protocol::kFailed;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }

  RunContext& ctx_;
  std::optional<DeviceChoice> device_;
  std::vector<std::optional<ProxyTrainer>> trainers_;
  std::vector<std::int64_t> current_;
};

void serve_episodes(RunContext& ctx, SlotHost& host) {
  const protocol::Sizes z{ctx.space.num_domains(), ctx.config.orchestrator.slots};
  std::vector<double> command(static_cast<size_t>(z.command_block()));
  std::vector<double> record(static_cast<size_t>(z.record_block()));
  for (;;) {
    receive_command(command, ctx.mpi, ctx.config.comm.timeout_s);
    if (static_cast<int>(command[0]) == protocol::kShutdownEpisodes) return;
    std::string error;
    for (int s = 0; s < z.slots && error.empty(); ++s) {
      try {
        protocol::write_record(record, z, s, host.step(s, protocol::read_command(command, z, s)));
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    record[0] = stop_requested() ? 1.0 : 0.0;
    record[1] = error.empty() ? 0.0 : 1.0;
    send_record(record, ctx.mpi);
    if (!error.empty()) {
      // The learner marks the episodes interrupted, flushes the store and aborts the job.
      send_text(error, 0, protocol::kWorkerErrorTag, ctx.mpi.comm());
      broadcast_phase(ctx, protocol::kPhaseDone);
      throw Error(error);
    }
  }
}

}  // namespace

void run_worker(RunContext& ctx) {
  SlotHost host(ctx);
  for (;;) {
    const int phase = broadcast_phase(ctx, protocol::kPhaseDone);
    if (phase == protocol::kPhaseDone) return;
    serve_episodes(ctx, host);
  }
}

}  // namespace dma
