// `dma_agent serve`: sessions kept in memory and on disk (one JSON file each, replaced
// atomically), served over HTTP by cpp-httplib's thread pool.
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "dma/agent_service.hpp"
#include "session.hpp"

namespace dma::service {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxBody = 4 << 20;  // a 10 000-domain step fits many times over

std::string fresh_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", rd(), rd(), rd(), rd());
}

bool well_formed_id(const std::string& id) { return std::regex_match(id, std::regex("[0-9a-f]{32}")); }

// Writes `text` to `path` through a temporary file and a rename, so a kill at any moment
// leaves either the old file or the new one, never a torn one.
void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw RequestError(500, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == text.size() && ::fsync(fd) == 0;
  ::close(fd);
  std::error_code ec;
  if (ok) fs::rename(tmp, path, ec);
  if (!ok || ec) {
    fs::remove(tmp, ec);
    throw RequestError(
        500, fmt::format("cannot write session file '{}': check the state directory and free space", path.string()));
  }
}

class SessionStore {
 public:
  SessionStore(Agent agent, fs::path dir) : agent_(std::move(agent)), dir_(std::move(dir)) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (!fs::is_directory(dir_))
      throw Error(fmt::format("state directory '{}' cannot be created: pass --state-dir DIR", dir_.string()));
    for (const auto& entry : fs::directory_iterator(dir_)) restore(entry.path());
  }

  size_t size() {
    std::lock_guard lock(mu_);
    return sessions_.size();
  }
  const Agent& agent() const { return agent_; }

  Json open(const Json& request) {
    for (const char* key : {"steps", "weights"})
      if (request.is_object() && request.contains(key))
        throw RequestError(400, fmt::format("a new session starts at step 0, without '{}': post each step's losses to "
                                            "/v1/sessions/{{id}}/step",
                                            key));
    auto entry = std::make_shared<Entry>();
    const std::string id = fresh_id();
    entry->session = std::make_unique<Session>(Session::replay(request, agent_, id));
    write_atomically(file(id), entry->session->document().dump());
    std::lock_guard lock(mu_);
    sessions_[id] = entry;
    return entry->session->answer();
  }

  Json step(const std::string& id, const Json& request) {
    auto entry = find(id);
    std::lock_guard lock(entry->mu);
    live(*entry, id);
    return entry->session->step(request, [&](const Json& doc) { write_atomically(file(id), doc.dump()); });
  }

  Json get(const std::string& id) {
    auto entry = find(id);
    std::lock_guard lock(entry->mu);
    live(*entry, id);
    return entry->session->document();
  }

  Json remove(const std::string& id) {
    auto entry = find(id);
    std::lock_guard lock(entry->mu);
    live(*entry, id);
    std::error_code ec;
    fs::remove(file(id), ec);
    if (ec) throw RequestError(500, fmt::format("cannot delete '{}': {}", file(id).string(), ec.message()));
    entry->session.reset();
    std::lock_guard map_lock(mu_);
    sessions_.erase(id);
    return {{"schema", kSchema}, {"session", id}, {"deleted", true}};
  }

 private:
  struct Entry {
    std::mutex mu;                     // one request at a time per session
    std::unique_ptr<Session> session;  // null once deleted
  };

  fs::path file(const std::string& id) const { return dir_ / (id + ".json"); }

  static void live(const Entry& entry, const std::string& id) {
    if (!entry.session) throw RequestError(404, fmt::format("no session '{}': it was deleted", id));
  }

  std::shared_ptr<Entry> find(const std::string& id) {
    std::lock_guard lock(mu_);
    const auto it = sessions_.find(id);
    if (it == sessions_.end())
      throw RequestError(404, fmt::format("no session '{}': open one with POST /v1/sessions", id));
    return it->second;
  }

  // A file that does not restore is left where it is, with one line saying why.
  void restore(const fs::path& path) {
    const std::string id = path.stem().string();
    if (path.extension() != ".json" || !well_formed_id(id)) return;
    try {
      std::ifstream in(path);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const Json doc = parse_request(text);
      if (doc.value("agent", "") != agent_.id)
        throw RequestError(409, fmt::format("it was opened with another agent ({}), this service runs {}",
                                            doc.value("agent", "?"), agent_.id));
      auto entry = std::make_shared<Entry>();
      entry->session = std::make_unique<Session>(Session::replay(doc, agent_, id));
      sessions_[id] = entry;
    } catch (const std::exception& e) {  // dma's errors, and JSON fields of the wrong type
      std::cerr << fmt::format("dma_agent: session file '{}' not restored: {}\n", path.string(), e.what());
    }
  }

  Agent agent_;
  fs::path dir_;
  std::mutex mu_;  // guards sessions_
  std::map<std::string, std::shared_ptr<Entry>> sessions_;
};

void reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

// Runs a route's work; a refused request answers its status and one line, and changes nothing.
template <class Work>
void handle(httplib::Response& res, int status, Work&& work) {
  try {
    reply(res, status, work());
  } catch (const RequestError& e) {
    reply(res, e.status(), error_body(e.what()));
  } catch (const Error& e) {
    reply(res, 500, error_body(e.what()));
  }
}

std::string read_token(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("token file '{}' cannot be read: pass a file holding the bearer token", path));
  std::string token;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty())
    throw Error(fmt::format("token file '{}' is empty: write the bearer token on its first line", path));
  return token;
}

// Compares in time independent of where the strings differ.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::pair<std::string, int> host_port(const std::string& listen) {
  const auto colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0) {
    try {
      size_t used = 0;
      port = std::stoi(listen.substr(colon + 1), &used);
      if (used != listen.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
      port = -1;
    }
  }
  if (port < 0 || port > 65535)
    throw Error(
        fmt::format("--listen '{}' is not HOST:PORT: write e.g. 127.0.0.1:8642 (port 0 picks a free one)", listen));
  return {listen.substr(0, colon), port};
}

void add_routes(httplib::Server& svr, SessionStore& store, const std::string& token) {
  svr.set_payload_max_length(kMaxBody);
  svr.set_pre_routing_handler([token](const httplib::Request& req, httplib::Response& res) {
    if (token.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (same_secret(req.get_header_value("Authorization"), "Bearer " + token))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    reply(res, 401, error_body("this service requires a bearer token: send 'Authorization: Bearer <token>'"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // What httplib itself refuses (no route, a body too large) answers in the same JSON.
  const httplib::Server::HandlerWithResponse refused_by_httplib = [](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    reply(res, res.status,
          error_body(res.status == 404 ? fmt::format("no route {} {}: see docs/agent-service.md", req.method, req.path)
                     : res.status == 413 ? fmt::format("the body is larger than {} bytes", kMaxBody)
                                         : fmt::format("HTTP {} for {} {}", res.status, req.method, req.path)));
    return httplib::Server::HandlerResponse::Handled;
  };
  svr.set_error_handler(refused_by_httplib);
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply(res, 500, error_body(what));
  });
  svr.Get("/healthz", [&store](const httplib::Request&, httplib::Response& res) {
    handle(res, 200, [&] {
      return Json{{"schema", kSchema},
                  {"status", "ok"},
                  {"agent", store.agent().id},
                  {"checkpoint", store.agent().checkpoint},
                  {"sessions", store.size()}};
    });
  });
  svr.Post("/v1/sessions", [&store](const httplib::Request& req, httplib::Response& res) {
    handle(res, 201, [&] { return store.open(parse_request(req.body)); });
  });
  svr.Post(R"(/v1/sessions/([^/]+)/step)", [&store](const httplib::Request& req, httplib::Response& res) {
    handle(res, 200, [&] { return store.step(req.matches[1], parse_request(req.body)); });
  });
  svr.Get(R"(/v1/sessions/([^/]+))", [&store](const httplib::Request& req, httplib::Response& res) {
    handle(res, 200, [&] { return store.get(req.matches[1]); });
  });
  svr.Delete(R"(/v1/sessions/([^/]+))", [&store](const httplib::Request& req, httplib::Response& res) {
    handle(res, 200, [&] { return store.remove(req.matches[1]); });
  });
}

bool loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

}  // namespace

void serve(const ServeOptions& options) {
  set_agent_threads(options.threads);
  const auto [host, port] = host_port(options.listen);
  const std::string token = read_token(options.token_file);
  const fs::path dir =
      options.state_dir.empty() ? fs::path(options.checkpoint + ".sessions") : fs::path(options.state_dir);
  SessionStore store(Agent::load(options.checkpoint), dir);

  // SIGINT/SIGTERM go to one waiting thread (blocked everywhere else, the pool included),
  // which stops the server; the sessions are on disk already.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  httplib::Server svr;
  add_routes(svr, store, token);
  int listening = -1;
  svr.set_socket_options([&listening](int sock) {
    httplib::default_socket_options(sock);
    listening = sock;
  });
  const int bound = port == 0 ? svr.bind_to_any_port(host) : (svr.bind_to_port(host, port) ? port : -1);
  if (bound < 0)
    throw Error(
        fmt::format("cannot listen on {}: the port is taken or the address is not this machine's", options.listen));
  // cpp-httplib listens with a backlog of 5: more runs connecting at once than that waited
  // for the kernel's SYN retransmits (1 s and more). A second listen() sets a new backlog.
  ::listen(listening, SOMAXCONN);
  if (!loopback(host) && token.empty())
    std::cerr << fmt::format(
        "dma_agent: listening on {} without a token: anyone who reaches it can use it; pass "
        "--token-file\n",
        host);
  std::atomic<bool> listen_returned{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    // A signal between the "listening" line and the start of the loop would find nothing to
    // stop (and be lost): wait until the loop runs, or has ended on its own.
    while (!svr.is_running() && !listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    svr.stop();
  });
  std::cout << fmt::format("dma_agent: {} sessions restored from {}\n", store.size(), dir.string())
            << fmt::format("dma_agent: listening on http://{}:{}", host, bound) << std::endl;
  svr.listen_after_bind();
  listen_returned = true;
  if (svr.is_running()) svr.stop();
  pthread_kill(stopper.native_handle(), SIGTERM);  // wakes the waiter when the server stopped on its own
  stopper.join();
}

}  // namespace dma::service
