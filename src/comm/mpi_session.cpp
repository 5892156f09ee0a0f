// MPI session: init/finalize, the Slurm task-count check, node-local ranks, cores per rank,
// and the MPI error check used by every MPI call in dma.
#include <fmt/format.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "internal.hpp"

namespace dma {
namespace {

bool mpi_running() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

std::string hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

// True when an mpirun-style launcher (Open MPI's orted, MPICH's hydra) started us: then
// SLURM_* describe the launcher's own step (one daemon per node), not our ranks.
bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("MPI_LOCALNRANKS") != nullptr;
}

// Under `srun` (SLURM_STEP_ID set) the world must have one rank per task; a PMI that does not
// match the MPI library silently starts N singletons of size 1 instead. Returns "" when fine.
std::string slurm_mismatch(int world_size, bool by_mpirun) {
  if (by_mpirun || std::getenv("SLURM_STEP_ID") == nullptr) return "";
  const char* name = "SLURM_STEP_NUM_TASKS";
  const char* value = std::getenv(name);
  if (value == nullptr) {
    name = "SLURM_NTASKS";
    value = std::getenv(name);
  }
  if (value == nullptr) return "";
  const int tasks = std::atoi(value);
  if (tasks <= 0 || tasks == world_size) return "";
  return fmt::format(
      "MPI world size is {} but {}={}: srun's PMI does not match this MPI, so each task "
      "started alone; launch with `srun --mpi=pmix` (see `srun --mpi=list`) or use mpirun",
      world_size, name, tasks);
}

// CPUs this process may run on (its affinity mask), or the machine's count as a fallback.
cpu_set_t own_cpus(int* count) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    *count = CPU_COUNT(&set);
  } else {
    *count = std::max(1u, std::thread::hardware_concurrency());
    CPU_ZERO(&set);
  }
  return set;
}

// Ranks on a node that share one CPU set split it; a rank bound to its own cores keeps them.
int compute_cores(MPI_Comm node) {
  int count = 1, node_size = 1;
  cpu_set_t mine = own_cpus(&count);
  DMA_MPI_CHECK(MPI_Comm_size(node, &node_size));
  std::vector<cpu_set_t> all(static_cast<std::size_t>(node_size));
  DMA_MPI_CHECK(MPI_Allgather(&mine, sizeof(cpu_set_t), MPI_BYTE, all.data(), sizeof(cpu_set_t), MPI_BYTE, node));
  const auto sharing = std::count_if(all.begin(), all.end(), [&](const cpu_set_t& other) {
    return std::memcmp(&other, &mine, sizeof(cpu_set_t)) == 0;
  });
  return std::max(1, count / static_cast<int>(std::max<std::ptrdiff_t>(1, sharing)));
}

}  // namespace

namespace detail {

std::string where() {
  int rank = -1;
  if (mpi_running()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return fmt::format("rank {} on host {}", rank < 0 ? std::string("?") : std::to_string(rank), hostname());
}

}  // namespace detail

void check_mpi(int rc, const char* expr, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) std::snprintf(text, sizeof(text), "code %d", rc);
  throw MpiError(fmt::format("{} failed: {} ({}, {}:{})", expr, text, detail::where(), file, line));
}

MpiSession::MpiSession(int* argc, char*** argv) {
  const bool by_mpirun = launched_by_mpirun();  // read before MPI_Init sets anything
  int provided = 0;
  // MPI_Init's errors are fatal by default; this only catches an MPI that returns instead.
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    throw MpiError(
        fmt::format("MPI_Init_thread failed on host {}: start dma with mpirun or "
                    "`srun --mpi=pmix`",
                    hostname()));
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (const std::string problem = slurm_mismatch(size_, by_mpirun); !problem.empty()) abort(problem);
  try {
    MPI_Comm node = MPI_COMM_NULL;
    DMA_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    DMA_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    DMA_MPI_CHECK(MPI_Comm_size(node, &local_size_));
    cores_ = compute_cores(node);
    MPI_Comm_free(&node);
  } catch (const Error& e) {
    abort(e.what());
  }
}

MpiSession::~MpiSession() {
  // During unwinding another rank may be waiting for us inside a collective; MPI_Finalize's
  // fence would then wait for it. main's catch prints the error and calls abort() instead.
  if (std::uncaught_exceptions() > 0) return;
  if (mpi_running()) MPI_Finalize();
}

std::string MpiSession::host() const { return hostname(); }

void MpiSession::abort(const std::string& message, int code) const {
  // Errors that already name this rank (CommTimeout's "rank R: ...") are not prefixed twice.
  const std::string prefix = fmt::format("rank {}: ", rank_);
  const bool named = message.rfind(prefix, 0) == 0;
  std::fprintf(stderr, "%s%s\n", named ? "" : prefix.c_str(), message.c_str());
  std::fflush(stderr);
  if (mpi_running()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

int cores_per_rank(const MpiSession& mpi) { return mpi.cores(); }

}  // namespace dma
