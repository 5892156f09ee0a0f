// Writes a small trained agent for the service's tests: BC + CQL on a store of simulated CPT
// runs (tests/agent/sim.hpp), a second of training on one core. It reads two steps of history,
// so a restored session must rebuild the agent's memory, not just its last observation.
// ACTOR_FEATURES sets agent.actor_features ("all": the actor also reads the previous mixture).
//   make_agent OUT.pt [ACTOR_FEATURES]
#include <cstdio>
#include <string>

#include <torch/torch.h>

#include "../agent/sim.hpp"
#include "dma/agent.hpp"
#include "dma/config.hpp"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: make_agent OUT.pt [ACTOR_FEATURES]\n");
    return 2;
  }
  torch::set_num_threads(1);
  dma::Config c = dma::parse_ini_text(
      "[run]\nseed = 5\nprogress_seconds = 1000\n"
      "[agent]\nd_token = 16\nn_layers = 1\nn_heads = 2\nbatch_size = 32\nbc_steps = 30\ncql_steps = 30\n" +
      (argc == 3 ? std::string("actor_features = ") + argv[2] + "\n" : std::string()));
  c.agent.history = 2;  // fixed parts of the recipe, set in code
  c.agent.n_sampled_actions = 4;
  const auto run = dma::agent_test::sim_run(8, c.eval, 12, 1);
  dma::train_agent_offline(c, {run.store}, argv[1]);
  return 0;
}
