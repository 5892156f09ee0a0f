#pragma once
/// dma_orchestrate's modes (DESIGN §3): rank 0 is the learner (store, policies, agent),
/// ranks 1..N-1 are workers hosting `orchestrator.slots` proxies each.
#include "dma/comm.hpp"
#include "dma/config.hpp"

namespace dma {

/// Runs config.mode on every rank; returns the process exit code (0 also after a
/// SIGTERM/SIGUSR1 stop, so a requeued job can --resume). Throws dma::Error on failure.
int run_orchestrator(const Config& config, MpiSession& mpi);

/// Set by SIGTERM/SIGUSR1; the learner finishes the round, flushes, saves and exits 0.
bool stop_requested();
void install_stop_handlers();
/// A worker reported a signal: the learner stops as if it had received it.
void request_stop_from_worker();

}  // namespace dma
