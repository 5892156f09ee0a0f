#pragma once
/// Seeds and hashes. A trajectory's seed derives from (run seed, trajectory id) only, so a
/// trajectory is the same whatever the number of ranks or slots.
#include <cstdint>
#include <string_view>

namespace dma {

/// SplitMix64 finaliser: a good 64-bit mix of one word.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// The one way a seed gives another: an independent seed for one use of `seed`, told apart
/// by `salt` (a named constant of that use, or stream_salt of a trajectory stream).
constexpr std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t salt) { return mix64(seed ^ salt); }

/// The salt of stream `stream` (kStreamSampler, ...) of a trajectory seed.
constexpr std::uint64_t stream_salt(std::uint64_t stream) { return mix64(stream + 0x51ULL); }

/// Seed of trajectory `id` in a run seeded `run_seed`; `stream` separates independent uses
/// (sampler, policy, model init) of the same trajectory.
constexpr std::uint64_t trajectory_seed(std::uint64_t run_seed, std::int64_t id, std::uint64_t stream = 0) {
  return mix64(derive_seed(run_seed, 0x5eedULL) ^ mix64(static_cast<std::uint64_t>(id)) ^ stream_salt(stream));
}

/// Streams of one trajectory's seed.
inline constexpr std::uint64_t kStreamSampler = 1;
inline constexpr std::uint64_t kStreamPolicy = 2;
inline constexpr std::uint64_t kStreamTorch = 3;

/// FNV-1a 64 over bytes, for config and domain-space fingerprints.
constexpr std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

}  // namespace dma
