// comm_probe: runs every Collective operation on real ranks and checks every value.
//   mpirun -n N comm_probe [--backend mpi|nccl|auto] [--rounds K] [--count C] [--timeout S]
//   mpirun -n N comm_probe --skip-rank R --timeout S   rank R never joins: the others must
//                                                      stop with CommTimeout, non-zero exit
//   comm_probe --nccl-check                            says whether NCCL can run here (no MPI)
//   mpirun -n N comm_probe --backend B --gpus-per-node G
//       every rank poses as using GPU (local rank mod G) of its node; the ranks agree on a
//       backend from these ids as make_collective does, and rank 0 prints it (builds nothing)
// Rank 0 ends a good run with "comm_probe: ok ...". Any failure: "rank N: what", MPI_Abort.
#include <fmt/format.h>
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dma/comm.hpp"
#include "dma/error.hpp"

namespace {

struct Options {
  std::string backend = "mpi";
  int rounds = 3;
  int count = 5;  // doubles per rank and operation
  double timeout_s = 30.0;
  int skip_rank = -1;
  bool nccl_check = false;
  int gpus_per_node = 0;  // > 0: agree on a backend for these posed GPU ids, then stop
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--backend")
      o.backend = next();
    else if (a == "--rounds")
      o.rounds = std::stoi(next());
    else if (a == "--count")
      o.count = std::stoi(next());
    else if (a == "--timeout")
      o.timeout_s = std::stod(next());
    else if (a == "--skip-rank")
      o.skip_rank = std::stoi(next());
    else if (a == "--nccl-check")
      o.nccl_check = true;
    else if (a == "--gpus-per-node")
      o.gpus_per_node = std::stoi(next());
    else
      throw std::invalid_argument("unknown option " + a);
  }
  return o;
}

// Exactly representable, distinct per (tag, rank, index): any misplaced block shows.
double value(int tag, int rank, int i) { return tag * 1e6 + rank * 1e3 + i + 0.25; }

void expect(double got, double want, const std::string& where) {
  if (got != want) throw dma::Error(fmt::format("{}: got {}, expected {}", where, got, want));
}

// One round of gather, scatter and broadcast, all rooted at `root`; returns values checked.
long round_trip(dma::Collective& c, int round, int root, int count) {
  const int rank = c.rank(), size = c.size();
  long checked = 0;
  std::vector<double> mine(count), all(rank == root ? count * size : 0);
  for (int i = 0; i < count; ++i) mine[i] = value(round, rank, i);
  c.gather(mine, all, root);
  for (int r = 0; r < size && rank == root; ++r) {
    for (int i = 0; i < count; ++i, ++checked) {
      expect(all[r * count + i], value(round, r, i), fmt::format("gather round {} block {} [{}]", round, r, i));
    }
  }
  std::vector<double> blocks(rank == root ? count * size : 0), block(count);
  for (int r = 0; r < size && rank == root; ++r) {
    for (int i = 0; i < count; ++i) blocks[r * count + i] = value(round + 100, r, i);
  }
  c.scatter(blocks, block, root);
  for (int i = 0; i < count; ++i, ++checked) {
    expect(block[i], value(round + 100, rank, i), fmt::format("scatter round {} [{}]", round, i));
  }
  std::vector<double> data(count, -1.0);
  for (int i = 0; i < count && rank == root; ++i) data[i] = value(round + 200, root, i);
  c.broadcast(data, root);
  for (int i = 0; i < count; ++i, ++checked) {
    expect(data[i], value(round + 200, root, i), fmt::format("broadcast round {} [{}]", round, i));
  }
  c.barrier();
  return checked;
}

// Workers' texts reach rank 0 exactly once each; a text that never comes times out.
void check_texts(const dma::MpiSession& mpi, double timeout_s) {
  constexpr int kTag = 7, kSilentTag = 8;
  if (mpi.rank() != 0) {
    dma::send_text(fmt::format("hello from rank {}", mpi.rank()), 0, kTag, mpi.comm());
    return;
  }
  std::set<std::string> got;
  for (int r = 1; r < mpi.size(); ++r) got.insert(dma::recv_text(MPI_ANY_SOURCE, kTag, mpi.comm(), timeout_s, 0));
  for (int r = 1; r < mpi.size(); ++r) {
    if (!got.count(fmt::format("hello from rank {}", r))) throw dma::Error(fmt::format("no text from rank {}", r));
  }
  if (mpi.size() < 2) return;
  try {
    dma::recv_text(1, kSilentTag, mpi.comm(), 0.3, 0);
  } catch (const dma::CommTimeout& e) {
    if (std::string(e.what()).find("rank 0: receiving a text (tag 8) from rank 1") != 0) throw;
    return;
  }
  throw dma::Error("recv_text of a text never sent returned instead of timing out");
}

void run(const dma::MpiSession& mpi, const Options& o) {
  if (mpi.local_rank() < 0 || mpi.local_rank() >= mpi.local_size() || mpi.cores() < 1 ||
      dma::cores_per_rank(mpi) != mpi.cores()) {
    throw dma::Error(
        fmt::format("bad session: local rank {} of {}, {} cores", mpi.local_rank(), mpi.local_size(), mpi.cores()));
  }
  dma::CommConfig config;
  config.backend = o.backend;
  config.timeout_s = o.timeout_s;
  if (o.gpus_per_node > 0) {
    const dma::RankDevice posed{mpi.rank(), mpi.host(),
                                fmt::format("0000:{:02x}:00.0", mpi.local_rank() % o.gpus_per_node), ""};
    const auto backend = dma::agree_on_backend(config, mpi, posed);
    if (mpi.rank() == 0) fmt::print("comm_probe: agreed backend={} ranks={}\n", backend, mpi.size());
    return;
  }
  auto c = dma::make_collective(config, mpi);
  if (mpi.rank() == o.skip_rank) {  // never joins: the watchdog of the others must fire
    std::this_thread::sleep_for(std::chrono::duration<double>(10 * o.timeout_s + 5));
    throw dma::Error("the other ranks did not abort the job within 10x the watchdog limit");
  }
  long checked = 0;
  for (int round = 0; round < o.rounds; ++round) checked += round_trip(*c, round, round % mpi.size(), o.count);
  check_texts(mpi, o.timeout_s);
  if (o.skip_rank >= 0) throw dma::Error("every collective completed although a rank never joined");
  c->barrier();
  if (mpi.rank() == 0) {
    fmt::print(
        "comm_probe: ok backend={} ranks={} local_size={} cores_per_rank={} rounds={} "
        "values_checked_on_rank0={}\n",
        c->name(), mpi.size(), mpi.local_size(), mpi.cores(), o.rounds, checked);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "comm_probe: {}\n", e.what());
    return 2;
  }
  if (options.nccl_check) {
    const std::string why = dma::nccl_unavailable_reason();
    fmt::print("{}\n", why.empty() ? "nccl: available" : "nccl: unavailable: NCCL " + why);
    return 0;
  }
  dma::MpiSession mpi(&argc, &argv);
  try {
    run(mpi, options);
  } catch (const dma::Error& e) {
    mpi.abort(e.what(), 3);
  }
  return 0;
}
