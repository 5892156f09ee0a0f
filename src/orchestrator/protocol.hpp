#pragma once
// The per-step messages between learner and workers, as fixed-size blocks of doubles
// (what a StepLink moves). D domains, S slots per worker. Integer fields travel as the bits
// of an int64 in a double's slot (to_slot / from_slot), so every id is exact, not only those
// below 2^53; the blocks are only ever copied, never computed on.
//
//   command block (learner -> one worker):             1 + S * (5 + D)
//     [kind, {episode_id, seed_id, step, parent, keep_state, weights (D)} per slot]
//     episode_id -1: idle slot; parent >= 0: a tree branch that starts from its parent's kept
//     state; keep_state 1: save the trainer state after this step (a tree's root)
//   record block (one worker -> learner):              2 + S * (6 + 2D)
//     [stop_flag, error_flag, {status, episode_id, step, tokens, seconds, math_accuracy,
//                              eval_loss (D), train_loss (D)} per slot]
//   phase block (learner -> all, broadcast):           kPhaseSize
//     [phase, argument]
#include <bit>
#include <cstdint>
#include <span>
#include <vector>

namespace dma::protocol {

enum Command : int { kShutdownEpisodes = 0, kStep = 1 };
enum Phase : int { kPhaseDone = 0, kPhaseEpisodes = 1 };
enum SlotStatus : int { kIdle = 0, kOk = 1, kFailed = 2 };
inline constexpr int kPhaseSize = 2;
/// MPI tag of the text a failing worker sends the learner (control, outside the Collective).
inline constexpr int kWorkerErrorTag = 77;

/// An integer field in a double's slot, bit for bit.
inline double to_slot(std::int64_t value) { return std::bit_cast<double>(value); }
inline std::int64_t from_slot(double slot) { return std::bit_cast<std::int64_t>(slot); }

struct Sizes {
  int domains = 0;
  int slots = 0;
  int command_block() const { return 1 + slots * command_slot(); }
  int command_slot() const { return 5 + domains; }
  int record_block() const { return 2 + slots * (6 + 2 * domains); }
  int record_slot() const { return 6 + 2 * domains; }
};

/// One slot's order for its next step.
struct SlotCommand {
  std::int64_t episode_id = -1;
  std::int64_t seed_id = 0;
  int step = 0;
  std::int64_t parent = -1;
  bool keep_state = false;
  std::span<const double> weights;  // (D)
};

/// One slot's report of its step.
struct SlotRecord {
  int status = kIdle;
  std::int64_t episode_id = -1;
  int step = 0;
  std::int64_t tokens = 0;
  double seconds = 0;
  double math_accuracy = -1;
  std::vector<float> eval_loss;   // (D)
  std::vector<float> train_loss;  // (D)
};

inline SlotCommand read_command(std::span<const double> block, const Sizes& z, int slot) {
  const double* p = block.data() + 1 + slot * z.command_slot();
  return {from_slot(p[0]), from_slot(p[1]),      static_cast<int>(from_slot(p[2])),
          from_slot(p[3]), from_slot(p[4]) != 0, std::span<const double>(p + 5, static_cast<size_t>(z.domains))};
}

/// Writes one slot's order (`c.weights` is read only for a running episode, episode_id >= 0).
inline void write_command(std::span<double> block, const Sizes& z, int slot, const SlotCommand& c) {
  double* p = block.data() + 1 + slot * z.command_slot();
  p[0] = to_slot(c.episode_id);
  p[1] = to_slot(c.seed_id);
  p[2] = to_slot(c.step);
  p[3] = to_slot(c.parent);
  p[4] = to_slot(c.keep_state ? 1 : 0);
  for (int d = 0; d < z.domains; ++d) p[5 + d] = c.episode_id >= 0 ? c.weights[static_cast<size_t>(d)] : 0.0;
}

inline void write_record(std::span<double> block, const Sizes& z, int slot, const SlotRecord& r) {
  double* p = block.data() + 2 + slot * z.record_slot();
  p[0] = to_slot(r.status);
  p[1] = to_slot(r.episode_id);
  p[2] = to_slot(r.step);
  p[3] = to_slot(r.tokens);
  p[4] = r.seconds;
  p[5] = r.math_accuracy;
  for (int d = 0; d < z.domains; ++d) {
    p[6 + d] = r.status == kOk ? r.eval_loss[static_cast<size_t>(d)] : 0.0;
    p[6 + z.domains + d] = r.status == kOk ? r.train_loss[static_cast<size_t>(d)] : 0.0;
  }
}

inline SlotRecord read_record(std::span<const double> block, const Sizes& z, int slot) {
  const double* p = block.data() + 2 + slot * z.record_slot();
  SlotRecord r;
  r.status = static_cast<int>(from_slot(p[0]));
  r.episode_id = from_slot(p[1]);
  r.step = static_cast<int>(from_slot(p[2]));
  r.tokens = from_slot(p[3]);
  r.seconds = p[4];
  r.math_accuracy = p[5];
  r.eval_loss.assign(p + 6, p + 6 + z.domains);
  r.train_loss.assign(p + 6 + z.domains, p + 6 + 2 * z.domains);
  return r;
}

}  // namespace dma::protocol
