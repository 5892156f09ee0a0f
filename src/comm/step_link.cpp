// Step messages between the learner and the workers, point-to-point: the learner posts one
// receive per worker that holds a command and takes records in the order they arrive.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "dma/comm.hpp"
#include "dma/error.hpp"
#include "internal.hpp"

namespace dma {
namespace {

constexpr int kCommandTag = 81;
constexpr int kRecordTag = 82;

using Clock = std::chrono::steady_clock;

class MpiStepLink final : public StepLink {
 public:
  MpiStepLink(const MpiSession& mpi, int command_block, int record_block, double timeout_s)
      : comm_(mpi.comm()),
        size_(mpi.size()),
        command_block_(command_block),
        record_block_(record_block),
        timeout_s_(timeout_s),
        inbox_(static_cast<std::size_t>(size_ * record_block), 0.0),
        requests_(static_cast<std::size_t>(size_), MPI_REQUEST_NULL),
        sent_at_(static_cast<std::size_t>(size_)) {}

  ~MpiStepLink() override {
    // Receives left posted (a stop or an error) are cancelled so that MPI_Finalize finds none.
    for (auto& r : requests_) {
      if (r == MPI_REQUEST_NULL) continue;
      MPI_Cancel(&r);
      MPI_Request_free(&r);
    }
  }

  int size() const override { return size_; }

  void send(int rank, std::span<const double> command) override {
    check(rank, command);
    auto& request = requests_[static_cast<std::size_t>(rank)];
    // The receive goes first, so the record always finds it posted.
    DMA_MPI_CHECK(MPI_Irecv(inbox_.data() + static_cast<std::size_t>(rank * record_block_), record_block_, MPI_DOUBLE,
                            rank, kRecordTag, comm_, &request));
    DMA_MPI_CHECK(MPI_Send(command.data(), command_block_, MPI_DOUBLE, rank, kCommandTag, comm_));
    sent_at_[static_cast<std::size_t>(rank)] = Clock::now();
    ++awaited_;
  }

  void release(int rank, std::span<const double> command) override {
    check(rank, command);
    DMA_MPI_CHECK(MPI_Send(command.data(), command_block_, MPI_DOUBLE, rank, kCommandTag, comm_));
  }

  std::vector<int> receive(std::span<double> records, double window_s) override {
    if (awaited_ == 0) throw MpiError("step link: receive() with no command awaiting its record");
    std::vector<int> arrived;
    Clock::time_point first{};
    detail::Backoff backoff;
    for (;;) {
      collect(records, arrived);
      const auto now = Clock::now();
      if (!arrived.empty()) {
        if (first == Clock::time_point{}) {
          first = now;
          backoff = detail::Backoff{};
        }
        if (awaited_ == 0 || std::chrono::duration<double>(now - first).count() >= window_s) break;
      } else {
        check_deadlines(now);
      }
      backoff.pause();
    }
    std::sort(arrived.begin(), arrived.end());
    return arrived;
  }

  int awaited() const override { return awaited_; }

 private:
  void check(int rank, std::span<const double> command) const {
    if (rank < 1 || rank >= size_) throw MpiError(fmt::format("step link: {} is not a worker rank", rank));
    if (command.size() != static_cast<std::size_t>(command_block_))
      throw MpiError(
          fmt::format("step link: a command of {} values where {} were expected", command.size(), command_block_));
    if (requests_[static_cast<std::size_t>(rank)] != MPI_REQUEST_NULL)
      throw MpiError(fmt::format("step link: rank {} still owes the record of its last command", rank));
  }

  void collect(std::span<double> records, std::vector<int>& arrived) {
    int count = 0;
    indices_.resize(requests_.size());
    DMA_MPI_CHECK(MPI_Testsome(static_cast<int>(requests_.size()), requests_.data(), &count, indices_.data(),
                               MPI_STATUSES_IGNORE));
    if (count == MPI_UNDEFINED) return;
    for (int i = 0; i < count; ++i) {
      const int rank = indices_[static_cast<std::size_t>(i)];
      const auto from = inbox_.begin() + static_cast<long>(rank * record_block_);
      std::copy(from, from + record_block_, records.begin() + static_cast<long>(rank * record_block_));
      arrived.push_back(rank);
      --awaited_;
    }
  }

  void check_deadlines(Clock::time_point now) const {
    for (int r = 1; r < size_; ++r) {
      if (requests_[static_cast<std::size_t>(r)] == MPI_REQUEST_NULL) continue;
      if (std::chrono::duration<double>(now - sent_at_[static_cast<std::size_t>(r)]).count() > timeout_s_)
        detail::throw_timeout(0, fmt::format("the step record of rank {}", r), timeout_s_);
    }
  }

  MPI_Comm comm_;
  int size_, command_block_, record_block_;
  double timeout_s_;
  std::vector<double> inbox_;
  std::vector<MPI_Request> requests_;
  std::vector<int> indices_;
  std::vector<Clock::time_point> sent_at_;
  int awaited_ = 0;
};

}  // namespace

std::unique_ptr<StepLink> make_mpi_step_link(const MpiSession& mpi, int command_block, int record_block,
                                             double timeout_s) {
  return std::make_unique<MpiStepLink>(mpi, command_block, record_block, timeout_s);
}

void receive_command(std::span<double> command, const MpiSession& mpi, double timeout_s) {
  MPI_Request request;
  DMA_MPI_CHECK(MPI_Irecv(command.data(), detail::to_count(command.size(), "receive_command"), MPI_DOUBLE, 0,
                          kCommandTag, mpi.comm(), &request));
  wait_with_watchdog(request, timeout_s, mpi.rank(), "waiting for the learner's next step command");
}

void send_record(std::span<const double> record, const MpiSession& mpi) {
  DMA_MPI_CHECK(
      MPI_Send(record.data(), detail::to_count(record.size(), "send_record"), MPI_DOUBLE, 0, kRecordTag, mpi.comm()));
}

}  // namespace dma
