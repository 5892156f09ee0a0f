// The NCCL-or-MPI decision from given device identities (no GPU needed): NCCL only when every
// rank can run it and no two ranks of one host share a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dma/comm.hpp"

namespace {

using dma::RankDevice;

TEST(BackendChoice, DistinctGpusOnOneHostRunNccl) {
  const std::vector<RankDevice> ranks{
      {0, "n1", "0000:01:00.0", ""}, {1, "n1", "0000:41:00.0", ""}, {2, "n1", "0000:81:00.0", ""}};
  EXPECT_EQ(dma::nccl_problem(ranks), "");
}

TEST(BackendChoice, TwoRanksOnOneGpuAreNamed) {
  const std::vector<RankDevice> ranks{
      {0, "n1", "0000:01:00.0", ""}, {1, "n1", "0000:41:00.0", ""}, {2, "n1", "0000:01:00.0", ""}};
  EXPECT_EQ(dma::nccl_problem(ranks),
            "needs a GPU per rank: ranks 0 and 2 on host n1 share GPU 0000:01:00.0 (start one rank "
            "per GPU, e.g. srun --gpus-per-task=1)");
}

TEST(BackendChoice, OneGpuWorkstationWithLearnerAndWorker) {
  const std::vector<RankDevice> ranks{{0, "ws", "0000:65:00.0", ""}, {1, "ws", "0000:65:00.0", ""}};
  EXPECT_NE(dma::nccl_problem(ranks).find("ranks 0 and 1 on host ws share GPU 0000:65:00.0"), std::string::npos);
}

TEST(BackendChoice, SameBusIdOnDifferentHostsIsFine) {
  // Every node numbers its GPUs alike; so does NCCL_HOSTID posing ranks of one machine as hosts.
  const std::vector<RankDevice> ranks{{0, "n1", "0000:01:00.0", ""}, {1, "n2", "0000:01:00.0", ""}};
  EXPECT_EQ(dma::nccl_problem(ranks), "");
}

TEST(BackendChoice, AnUnavailableRankComesFirst) {
  const std::vector<RankDevice> ranks{{0, "n1", "0000:01:00.0", ""},
                                      {1, "n1", "0000:01:00.0", ""},
                                      {2, "n1", "", "needs a CUDA device: cudaGetDeviceCount says 0 devices"},
                                      {3, "n1", "", "needs a CUDA device: other"}};
  EXPECT_EQ(dma::nccl_problem(ranks),
            "needs a CUDA device: cudaGetDeviceCount says 0 devices (seen on rank 2 on host n1)");
}

TEST(BackendChoice, OneRankAlone) {
  EXPECT_EQ(dma::nccl_problem({{0, "n1", "0000:01:00.0", ""}}), "");
  EXPECT_EQ(dma::nccl_problem({}), "");
}

}  // namespace
