#pragma once
/// `dma_agent`: a trained agent outside the orchestrator. An outside training run opens a
/// session with its domain space and the base model's losses, posts each step's held-out
/// losses and gets the next mixture back, observed through obs::Tracker exactly as dma's own
/// environment observes a proxy run. Payloads follow docs/agent-service.md (schema kSchema).
#include <string>

#include "dma/error.hpp"

namespace dma::service {

/// Version of every request and answer; a payload naming another is refused.
inline constexpr const char* kSchema = "dma.agent/1";

/// A request the service refuses: the HTTP status it answers with and a one-line message.
class RequestError : public Error {
 public:
  RequestError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

/// `dma_agent act`: the answer (JSON text) to a state document (JSON text): a session's opening
/// request, optionally with the steps done so far, as GET /v1/sessions/{id} returns it.
/// Throws CheckpointError for a checkpoint that is not an agent, RequestError for a bad state.
std::string act(const std::string& checkpoint, const std::string& state_json);

struct ServeOptions {
  std::string checkpoint;
  std::string listen = "127.0.0.1:8642";  ///< HOST:PORT; port 0 picks a free one
  std::string state_dir;                  ///< sessions on disk; empty: <checkpoint>.sessions
  std::string token_file;                 ///< when set, /v1 routes require this bearer token
  int threads = 1;                        ///< LibTorch intra-op threads per forward pass
};

/// `dma_agent serve`: loads the agent and the sessions kept in the state directory, prints
/// "listening on http://HOST:PORT" and serves until SIGINT or SIGTERM. Throws Error (one
/// line) for a bad checkpoint, token file, state directory or address.
void serve(const ServeOptions& options);

}  // namespace dma::service
