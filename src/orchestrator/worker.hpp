#pragma once
#include "run_context.hpp"

namespace dma {

/// A worker rank: waits for phases from the learner and serves episode rounds until done.
void run_worker(RunContext& ctx);

}  // namespace dma
