// A session: the payloads of docs/agent-service.md checked field by field, the run's
// observations through obs::Tracker, the mixtures through the `agent:` policy.
#include "session.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>

#include "dma/sampler.hpp"
#include "dma/score.hpp"
#include "dma/seed.hpp"

namespace dma::service {
namespace {

constexpr int kMaxHorizon = 100000;

[[noreturn]] void refuse(const std::string& message) { throw RequestError(400, message); }

void check_object(const Json& body) {
  if (!body.is_object())
    refuse(fmt::format("the body is {}, not a JSON object: see docs/agent-service.md", body.type_name()));
  if (const auto it = body.find("schema"); it != body.end() && *it != kSchema)
    refuse(fmt::format("schema {} is not {}: this service speaks {}", it->dump(), kSchema, kSchema));
}

const Json& member(const Json& body, const char* key) {
  const auto it = body.find(key);
  if (it == body.end()) refuse(fmt::format("'{}' is missing: see docs/agent-service.md", key));
  return *it;
}

// `count` finite numbers (count 0: at least one).
std::vector<double> numbers(const Json& value, const std::string& what, size_t count) {
  if (!value.is_array()) refuse(fmt::format("'{}' is {}, not an array of numbers", what, value.type_name()));
  if (count > 0 && value.size() != count)
    refuse(fmt::format("'{}' has {} entries for the session's {} domains: send one per domain, in the session's order",
                       what, value.size(), count));
  if (value.empty()) refuse(fmt::format("'{}' is empty: send one entry per domain", what));
  std::vector<double> out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_number()) refuse(fmt::format("{}[{}] is {}, not a number", what, i, value[i].dump()));
    out.push_back(value[i].get<double>());
    if (!std::isfinite(out.back())) refuse(fmt::format("{}[{}] is not finite", what, i));
  }
  return out;
}

// Held-out losses (mean token NLL): finite and > 0, as observations divide by them.
std::vector<float> losses(const Json& value, const std::string& what, size_t count) {
  std::vector<float> out;
  for (const double x : numbers(value, what, count)) {
    if (!(x > 0) || !std::isfinite(static_cast<float>(x)))
      refuse(fmt::format("{}[{}] is {}: held-out losses must be finite and > 0", what, out.size(), x));
    out.push_back(static_cast<float>(x));
  }
  return out;
}

std::vector<std::string> domain_names(const Json& value) {
  if (!value.is_array() || value.empty()) refuse("'domains' must be a non-empty array of domain names");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string() || value[i].get<std::string>().empty())
      refuse(fmt::format("domains[{}] is {}, not a domain name", i, value[i].dump()));
    out.push_back(value[i].get<std::string>());
    if (!seen.insert(out.back()).second) refuse(fmt::format("domain '{}' is listed twice in 'domains'", out.back()));
  }
  return out;
}

std::vector<Field> field_list(const Json& value, size_t count) {
  if (!value.is_array() || value.size() != count)
    refuse(fmt::format("'fields' must list one field (\"source\" or \"target\") for each of the {} domains", count));
  std::vector<Field> out;
  for (size_t i = 0; i < count; ++i) {
    if (value[i] == "source")
      out.push_back(Field::kSource);
    else if (value[i] == "target")
      out.push_back(Field::kTarget);
    else
      refuse(fmt::format("fields[{}] is {}: a field is \"source\" or \"target\"", i, value[i].dump()));
  }
  const auto targets = std::count(out.begin(), out.end(), Field::kTarget);
  if (targets == 0 || targets == static_cast<long>(count))
    refuse("'fields' must name at least one source and one target domain: the agent balances the two");
  return out;
}

// Natural token shares: any non-negative numbers, divided by their sum unless they sum to 1.
std::vector<double> normalised_shares(const std::vector<double>& given) {
  double total = 0;
  for (size_t i = 0; i < given.size(); ++i) {
    if (given[i] < 0) refuse(fmt::format("token_shares[{}] is {}: shares are >= 0", i, given[i]));
    total += given[i];
  }
  if (!(total > 0)) refuse("'token_shares' sum to 0: send each domain's share of the training tokens");
  std::vector<double> out = given;
  if (std::abs(total - 1.0) > 1e-9)
    for (double& s : out) s /= total;
  return out;
}

int horizon_of(const Json& value) {
  if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > kMaxHorizon)
    refuse(fmt::format("'horizon' is {}: the number of re-weighting steps, an integer in [1, {}]", value.dump(),
                       kMaxHorizon));
  return value.get<int>();
}

std::vector<double> mixture(const Json& value, const std::string& what, size_t count) {
  auto w = numbers(value, what, count);
  try {
    validate_weights(w, count);
  } catch (const Error& e) {
    refuse(fmt::format("'{}': {}", what, e.what()));
  }
  return w;
}

StepReport step_report(const Json& body, const std::string& where, size_t count) {
  check_object(body);
  StepReport r;
  r.losses = losses(member(body, "losses"), where + "losses", count);
  if (const auto it = body.find("tokens"); it != body.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0)
      refuse(fmt::format("'{}tokens' is {}: tokens trained so far, an integer >= 0", where, it->dump()));
    r.tokens = it->get<std::int64_t>();
  }
  if (const auto it = body.find("weights"); it != body.end()) r.weights = mixture(*it, where + "weights", count);
  return r;
}

}  // namespace

Agent Agent::load(const std::string& checkpoint) {
  Agent a{std::make_shared<const AgentModel>(AgentModel::load(checkpoint)), checkpoint, ""};
  std::ifstream in(checkpoint, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  a.id = fmt::format("{:016x}", fnv1a64(bytes));
  return a;
}

Session Session::replay(const Json& state, const Agent& agent, std::string id) {
  check_object(state);
  Session s;
  s.id_ = std::move(id);
  s.agent_id_ = agent.id;
  s.history_ = agent.model->history();
  s.names_ = domain_names(member(state, "domains"));
  const size_t D = s.names_.size();
  auto fields = field_list(member(state, "fields"), D);
  s.given_shares_ = numbers(member(state, "token_shares"), "token_shares", D);
  const auto shares = normalised_shares(s.given_shares_);
  const int T = horizon_of(member(state, "horizon"));
  s.track_ = obs::Tracker({fields, shares, losses(member(state, "base_losses"), "base_losses", D), T});
  s.policy_ = make_agent_policy(agent.model, to_string(agent_spec({agent.checkpoint})), {s.names_, fields, shares, T});
  s.policy_->begin_episode(0, 0);

  const Json none = Json::array();
  const auto steps_it = state.find("steps"), weights_it = state.find("weights");
  const Json& steps = steps_it == state.end() ? none : *steps_it;
  const Json& given = weights_it == state.end() ? none : *weights_it;
  if (!steps.is_array() || steps.size() > static_cast<size_t>(T))
    refuse(fmt::format("'steps' must be an array of at most horizon = {} step reports", T));
  const size_t n = steps.size(), wanted = std::min(n + 1, static_cast<size_t>(T));
  if (!given.is_array() || given.size() > wanted)
    refuse(fmt::format("'weights' must be an array of at most {} mixtures (one per step done, and the next)", wanted));
  for (size_t k = 0; k < wanted; ++k) {
    // The agent reads the last history_ observations: act on those (and wherever no mixture
    // was given) so its memory is what it was when the run went through them.
    std::vector<double> w;
    if (k >= given.size() || k + static_cast<size_t>(s.history_) > n) w = s.decide();
    if (k < given.size()) w = mixture(given[k], fmt::format("weights[{}]", k), D);
    s.weights_.push_back(w);
    if (k < n) {
      s.steps_.push_back(step_report(steps[k], fmt::format("steps[{}].", k), D));
      s.track_.advance(s.trained_weights(k), s.steps_.back().losses);
    }
  }
  return s;
}

const std::vector<double>& Session::trained_weights(size_t k) const {
  return steps_[k].weights.empty() ? weights_[k] : steps_[k].weights;
}

std::vector<double> Session::decide() {
  const auto o = track_.observation();
  const std::int64_t ids[1] = {0};
  const std::int32_t steps[1] = {track_.step()};
  std::vector<double> w(names_.size());
  policy_->act({1, static_cast<int>(o.size()), ids, steps, o}, w);
  validate_weights(w, names_.size());
  return w;
}

Json Session::step(const Json& request, const std::function<void(const Json&)>& persist) {
  check_object(request);
  const auto n = static_cast<std::int64_t>(steps_.size());
  const int T = track_.frame().horizon;
  if (const auto it = request.find("step"); it != request.end()) {
    if (!it->is_number_integer())
      refuse(fmt::format("'step' is {}: the index of the step just trained (0 for the first)", it->dump()));
    const auto reported = it->get<std::int64_t>();
    if (n > 0 && reported == n - 1) {
      // The answer to this step was lost on its way (a dropped connection, a restart): a
      // repeat with the same losses (and mixture trained on) gets it again; others would
      // rewrite history.
      const StepReport again = step_report(request, "", names_.size());
      const auto& trained = again.weights.empty() ? weights_[static_cast<size_t>(n - 1)] : again.weights;
      if (again.losses != steps_.back().losses || trained != trained_weights(static_cast<size_t>(n - 1)))
        throw RequestError(409, fmt::format("step {} was already reported with other losses or weights; the session is "
                                            "at step {}",
                                            reported, n));
      replayed_ = true;
      return answer();
    }
    if (reported != n && n < T)
      throw RequestError(409, fmt::format("the session is at step {}, not {}: report steps in order", n, reported));
  }
  if (n >= T)
    throw RequestError(409, fmt::format("the session has done its horizon of {} steps: there is no step {}; open a new "
                                        "session for another run",
                                        T, n));
  StepReport report = step_report(request, "", names_.size());
  const obs::Tracker before = track_;
  const size_t steps_before = steps_.size(), weights_before = weights_.size();
  try {
    steps_.push_back(std::move(report));
    track_.advance(trained_weights(steps_.size() - 1), steps_.back().losses);
    if (track_.step() < T) weights_.push_back(decide());
    persist(document());
  } catch (...) {
    // As before the request, so the run can send it again (the agent's memory of this
    // observation is replaced when it comes back).
    track_ = before;
    steps_.resize(steps_before);
    weights_.resize(weights_before);
    throw;
  }
  replayed_ = false;
  return answer();
}

Json Session::answer() const {
  const auto& f = track_.frame();
  const auto scores = field_scores(track_.losses(), f.base_losses, f.fields);
  const bool done = track_.step() >= f.horizon;
  Json a = {{"schema", kSchema},
            {"step", track_.step()},
            {"horizon", f.horizon},
            {"done", done},
            {"weights", done ? Json(nullptr) : Json(weights_.back())},
            {"source_score", scores.source},
            {"target_score", scores.target}};
  if (!id_.empty()) a["session"] = id_;
  if (replayed_) a["replayed"] = true;
  return a;
}

Json Session::document() const {
  const auto& f = track_.frame();
  Json fields = Json::array(), steps = Json::array();
  for (const Field x : f.fields) fields.push_back(std::string(field_name(x)));
  for (const auto& s : steps_) {
    Json r = {{"losses", s.losses}};
    if (s.tokens >= 0) r["tokens"] = s.tokens;
    if (!s.weights.empty()) r["weights"] = s.weights;
    steps.push_back(std::move(r));
  }
  Json doc = answer();
  doc.erase("replayed");
  doc.update({{"agent", agent_id_},
              {"domains", names_},
              {"fields", fields},
              {"base_losses", f.base_losses},
              {"token_shares", given_shares_},
              {"steps", steps},
              {"weights", weights_}});
  return doc;
}

Json parse_request(const std::string& body) {
  try {
    return Json::parse(body);
  } catch (const Json::exception& e) {  // a syntax error, or a number beyond a double
    std::string what = e.what();
    if (const auto at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
    for (char& c : what)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';  // one line, whatever the body held
    const bool nan = body.find("NaN") != std::string::npos || body.find("Infinity") != std::string::npos ||
                     e.id == 406;  // out_of_range.406: a number too large for a double
    refuse(fmt::format("malformed JSON: {}{}", what,
                       nan ? " (JSON has no NaN or Infinity: every number must be finite)" : ""));
  }
}

Json error_body(const std::string& message) { return {{"schema", kSchema}, {"error", message}}; }

std::string act(const std::string& checkpoint, const std::string& state_json) {
  const Agent agent = Agent::load(checkpoint);
  return Session::replay(parse_request(state_json), agent, "").answer().dump();
}

}  // namespace dma::service
