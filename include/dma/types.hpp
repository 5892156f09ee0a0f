#pragma once
/// Small value types shared by every part (no LibTorch, no HDF5).
#include <cstdint>
#include <string>
#include <string_view>

namespace dma {

/// Each domain belongs to a field: what the model knew (source) or what CPT adds (target).
enum class Field : std::uint8_t { kSource = 0, kTarget = 1 };

inline std::string_view field_name(Field f) { return f == Field::kTarget ? "target" : "source"; }

/// Episode status as stored in /episodes/status (DESIGN §5).
enum class EpisodeStatus : std::uint8_t { kRunning = 0, kComplete = 1, kFailed = 2, kInterrupted = 3 };

}  // namespace dma
