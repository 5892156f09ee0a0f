// The mixtures an agent gives a run observed by obs::Tracker directly, as dma's own
// environment observes its proxy runs: the service's answers are checked against them.
//   tracker_mixtures AGENT.pt RUN.json
// RUN.json: {"fields", "token_shares" (summing to 1), "base_losses", "horizon",
//            "steps": [{"losses": [...], "weights": [...]}, ...]}; a step's "weights" are the
// mixture trained on (the agent's own when absent). Prints the mixture given before each
// step and the next one, as a JSON array. D domains.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dma/agent.hpp"
#include "dma/observation.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tracker_mixtures AGENT.pt RUN.json\n");
    return 2;
  }
  try {
    dma::set_agent_threads(1);
    std::ifstream in(argv[2]);
    const auto run = nlohmann::json::parse(in);
    dma::obs::EpisodeFrame frame;
    for (const auto& f : run.at("fields"))
      frame.fields.push_back(f == "target" ? dma::Field::kTarget : dma::Field::kSource);
    frame.token_shares = run.at("token_shares").get<std::vector<double>>();
    frame.base_losses = run.at("base_losses").get<std::vector<float>>();
    frame.horizon = run.at("horizon").get<int>();
    const size_t D = frame.fields.size();
    std::vector<std::string> names;
    for (size_t d = 0; d < D; ++d) names.push_back(std::to_string(d));  // distinct; the agent reads no names
    auto policy = dma::make_agent_policy(std::make_shared<const dma::AgentModel>(dma::AgentModel::load(argv[1])),
                                         "agent", {names, frame.fields, frame.token_shares, frame.horizon});
    policy->begin_episode(0, 0);
    dma::obs::Tracker tracker(frame);
    nlohmann::json given = nlohmann::json::array();
    const auto& steps = run.at("steps");
    for (size_t k = 0; k <= steps.size() && tracker.step() < frame.horizon; ++k) {
      const auto o = tracker.observation();
      const std::int64_t ids[1] = {0};
      const std::int32_t at[1] = {tracker.step()};
      std::vector<double> w(D);
      policy->act({1, static_cast<int>(o.size()), ids, at, o}, w);
      given.push_back(w);
      if (k == steps.size()) break;
      const auto& step = steps[k];
      if (step.contains("weights")) w = step["weights"].get<std::vector<double>>();
      tracker.advance(w, step.at("losses").get<std::vector<float>>());
    }
    std::cout << given.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tracker_mixtures: %s\n", e.what());
    return 1;
  }
}
