// SIGTERM and SIGUSR1 (Slurm's --signal) ask for a clean stop: finish the round, flush,
// save, exit 0 so the job can be requeued and --resume'd.
#include <csignal>

#include "dma/orchestrator.hpp"

namespace dma {
namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }
}  // namespace

bool stop_requested() { return g_stop != 0; }
void request_stop_from_worker() { g_stop = 1; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

}  // namespace dma
