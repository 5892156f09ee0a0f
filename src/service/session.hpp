#pragma once
// One outside training run steered by the agent: its domain space, the steps it reported,
// the mixtures it was given. D domains, T horizon.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dma/agent.hpp"
#include "dma/agent_service.hpp"
#include "dma/observation.hpp"
#include "dma/policy.hpp"

namespace dma::service {

using Json = nlohmann::json;

/// The loaded agent every session acts with, and what identifies it in a session file.
struct Agent {
  std::shared_ptr<const AgentModel> model;
  std::string checkpoint;  ///< the path it was loaded from
  std::string id;          ///< hash of the checkpoint's bytes

  static Agent load(const std::string& checkpoint);
};

/// What a run reported after one step.
struct StepReport {
  std::vector<float> losses;    ///< (D) held-out losses after the step
  std::int64_t tokens = -1;     ///< tokens trained so far, -1 when not reported
  std::vector<double> weights;  ///< (D) the mixture trained on, when the run reports one
};

class Session {
 public:
  /// A session from a state document: the opening fields, then the steps in "steps" replayed,
  /// each observed with the mixture it reports it trained on, else its entry of "weights"
  /// (the agent's own where "weights" stops short). Throws RequestError(400) naming the
  /// field that is wrong.
  static Session replay(const Json& state, const Agent& agent, std::string id);

  /// Takes one step's report (a step request); `persist` receives the new document and must
  /// store it before the session changes. Throws RequestError and leaves the session as it
  /// was. A repeat of the last step with the same losses gets the same answer again.
  Json step(const Json& request, const std::function<void(const Json& document)>& persist);

  /// The answer to the last request: step, horizon, done, the next weights, field scores.
  Json answer() const;
  /// Everything needed to rebuild the session (what the state directory and GET hold).
  Json document() const;
  const std::string& id() const { return id_; }
  const std::string& agent_id() const { return agent_id_; }

 private:
  Session() = default;
  std::vector<double> decide();
  /// The mixture step k was trained on: the run's report of it, else the one given.
  const std::vector<double>& trained_weights(size_t k) const;

  std::string id_, agent_id_;
  std::vector<std::string> names_;    // (D)
  std::vector<double> given_shares_;  // (D) as the run sent them
  obs::Tracker track_;
  std::unique_ptr<Policy> policy_;
  std::vector<StepReport> steps_;             // one per step done
  std::vector<std::vector<double>> weights_;  // w_0 .. w_{min(step, T-1)}
  int history_ = 1;                           // observations the agent reads
  bool replayed_ = false;                     // the last answer repeated an earlier one
};

/// The body as JSON; malformed text is RequestError(400) naming where it breaks.
Json parse_request(const std::string& body);
/// {"schema": ..., "error": message}.
Json error_body(const std::string& message);

}  // namespace dma::service
