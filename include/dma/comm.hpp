#pragma once
/// Communication between ranks. The learner (rank 0) and the workers exchange their step
/// messages point to point over MPI (StepLink), so the learner takes each worker's record
/// as it arrives. Collectives over MPI or NCCL (Collective, make_collective) are what
/// comm_probe checks on a new cluster. Every wait is bounded by a watchdog: a wait still
/// pending after comm.timeout_s throws CommTimeout naming the rank, and the app exits non-zero.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dma/config.hpp"

namespace dma {

/// MPI_Init/Finalize owner (one per process). Asks for MPI_THREAD_SERIALIZED, sets
/// MPI_ERRORS_RETURN on the world communicator and, under `srun`, aborts with a one-line
/// error when the world size differs from the step's task count (a PMI mismatch starts
/// singletons). While an exception unwinds it skips MPI_Finalize (a finalize fence would
/// wait for ranks that wait for this one): declare it before main's `try` and call abort().
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  ///< rank among this node's processes
  int local_size() const { return local_size_; }
  /// Cores this rank should use (see cores_per_rank); computed once at start.
  int cores() const { return cores_; }
  std::string host() const;
  MPI_Comm comm() const { return MPI_COMM_WORLD; }

  /// Aborts every rank with `code` (after printing `rank N: message`).
  [[noreturn]] void abort(const std::string& message, int code = 1) const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, cores_ = 1;
};

/// Throws MpiError with the call, rank, file:line and MPI_Error_string when rc != MPI_SUCCESS.
void check_mpi(int rc, const char* expr, const char* file, int line);
#define DMA_MPI_CHECK(expr) ::dma::check_mpi((expr), #expr, __FILE__, __LINE__)

/// Moves fixed-size blocks of doubles between ranks. All ranks call each method in the same
/// order. Counts are per rank.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Root receives size() blocks of send.size() (rank-major) in recv; others pass empty recv.
  virtual void gather(std::span<const double> send, std::span<double> recv, int root) = 0;
  /// Root sends size() blocks of recv.size() (rank-major); every rank receives its block.
  virtual void scatter(std::span<const double> send, std::span<double> recv, int root) = 0;
  virtual void broadcast(std::span<double> data, int root) = 0;
  virtual void barrier() = 0;
};

/// The learner's side of the step messages: one command block to one worker, and the record
/// blocks of whichever workers have answered. Unlike a Collective it never waits for every
/// rank, so a slow worker holds up only its own trajectories.
class StepLink {
 public:
  virtual ~StepLink() = default;
  virtual int size() const = 0;  ///< ranks, the learner included
  /// Sends `command` to worker `rank` (1..size()-1) and awaits its record.
  virtual void send(int rank, std::span<const double> command) = 0;
  /// Sends `command` to worker `rank` without awaiting a record (its last command of a call).
  virtual void release(int rank, std::span<const double> command) = 0;
  /// Waits until an awaited record is in, then up to `window_s` longer for more (less when
  /// every awaited record is in); copies each into its rank's block of `records` (rank-major,
  /// size() blocks) and returns those ranks in ascending order. Throws CommTimeout naming a
  /// worker whose record is overdue by the watchdog's limit.
  virtual std::vector<int> receive(std::span<double> records, double window_s) = 0;
  /// Workers sent a command whose record has not been returned by receive().
  virtual int awaited() const = 0;
};

/// StepLink over MPI point-to-point messages (tags kCommandTag and kRecordTag).
std::unique_ptr<StepLink> make_mpi_step_link(const MpiSession& mpi, int command_block, int record_block,
                                             double timeout_s);
/// A worker's side: waits (watchdog-bounded) for its next command from rank 0.
void receive_command(std::span<double> command, const MpiSession& mpi, double timeout_s);
/// A worker's side: returns its record to rank 0 (the learner awaits it already).
void send_record(std::span<const double> record, const MpiSession& mpi);

/// Chooses and builds the backend: "mpi"; "nccl" (throws NcclError with the reason when
/// NCCL is not built in, no GPU is visible, or two ranks of a node share a GPU); "auto" (NCCL
/// where it can form, else MPI, saying which and why on rank 0).
std::unique_ptr<Collective> make_collective(const CommConfig& config, const MpiSession& mpi);

/// The GPU one rank would run NCCL on, as NCCL tells ranks apart: `host` is NCCL_HOSTID when
/// set, else the host name; `device` the GPU's PCI bus id; `unavailable` says why this rank
/// cannot run NCCL at all ("" when it can), worded as nccl_unavailable_reason.
struct RankDevice {
  int rank = 0;
  std::string host;
  std::string device;
  std::string unavailable;
};

/// This rank's RankDevice: the device NCCL would use (local rank modulo the visible devices).
RankDevice this_rank_device(const MpiSession& mpi);

/// Why NCCL cannot run on these ranks, worded to follow "NCCL " ("" when it can): the lowest
/// rank's `unavailable`, else the first two ranks with the same host and device (NCCL refuses
/// them with "Duplicate GPU detected"). Pure: the whole decision, given every rank's device.
std::string nccl_problem(const std::vector<RankDevice>& ranks);

/// Every rank of this node's RankDevice, rank order, gathered on the node-local communicator
/// (MPI_COMM_TYPE_SHARED). Collective over all ranks; bounded by the watchdog's timeout_s.
std::vector<RankDevice> gather_node_devices(const MpiSession& mpi, const RankDevice& mine, double timeout_s);

/// The backend make_collective builds, "mpi" or "nccl", agreed by all ranks (collective):
/// each node judges its ranks' devices with nccl_problem, and the lowest rank with a problem
/// names it for all. "auto" says on rank 0 what it chose and why; "nccl" with a problem throws
/// NcclError naming it; anything else is a ConfigError.
std::string agree_on_backend(const CommConfig& config, const MpiSession& mpi, const RankDevice& mine);

/// Waits on an MPI request, polling, with the watchdog's limit; throws CommTimeout
/// "rank R: <what> did not complete within N s" past it. Sleeps between polls so that an
/// idle rank does not spin a core.
void wait_with_watchdog(MPI_Request& request, double timeout_s, int rank, const char* what);

/// Point-to-point text (control: error messages from workers). send_text is a plain
/// MPI_Send: keep texts short (eager) so it returns without a matching receive.
void send_text(const std::string& text, int dest, int tag, MPI_Comm comm);
/// Receives one text from `source` (or MPI_ANY_SOURCE) with `tag`; CommTimeout past timeout_s.
std::string recv_text(int source, int tag, MPI_Comm comm, double timeout_s, int rank);

/// Cores this rank should use: the CPUs it may run on divided by the ranks on the node that
/// share the same CPU set (so a rank bound to its own cores keeps them all); at least 1.
int cores_per_rank(const MpiSession& mpi);

/// Why this process cannot run the NCCL backend ("" when it can), worded to follow "NCCL ":
/// "is unavailable: built without NCCL (...)" or "needs a CUDA device: cudaGetDeviceCount says ...".
std::string nccl_unavailable_reason();

}  // namespace dma
