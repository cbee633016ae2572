// A small HTTP/1.1 server for the metrics sink's three GET endpoints,
// built to stay answering whatever its clients do.
//
// cpp-httplib's server (Debian 0.11) gives each connection a pool thread
// until the request is read, and its read timeout restarts with every byte:
// four clients sending a byte a second held every thread and /healthz went
// unanswered (a failed liveness probe, a restart loop; anyone who can reach
// the port blinds the monitoring). Here one thread serves every connection
// with poll() and non-blocking sockets, so a slow client costs a slot, not a
// thread:
//   - each connection has kExchangeDeadline from accept to the last byte of
//     the answer (request read, answer written), then it is closed;
//   - at most kMaxConnections at once: a new one closes the oldest (a slow
//     or idle client; a real scrape completes within milliseconds);
//   - the request head is at most kMaxHead bytes (else 431), the body of a
//     GET is not read; every answer closes the connection.
// Handlers run on the server thread and must be quick (rendering metrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/clock.h"
#include "common/result.h"

namespace qw::sink {

struct ServerRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // without the query
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Parses a request head (through the blank line). Returns false when it is
// not a valid HTTP/1.x request line; `*error_status` is then 400 or 505.
// Exposed for tests and the fuzz target.
bool ParseRequestHead(std::string_view head, ServerRequest* out, int* error_status);

// The whole answer bytes for a response (HEAD: headers only).
std::string FormatResponse(const ServerResponse& r, bool head_only);

class HttpServer {
 public:
  static constexpr size_t kMaxConnections = 64;
  static constexpr size_t kMaxHead = 8192;
  static constexpr Nanos kExchangeDeadline = 5 * kSecond;

  using Handler = std::function<ServerResponse(const ServerRequest&)>;

  // Binds and listens on host:port (port 0: any free one; host "" or
  // "0.0.0.0": all IPv4 addresses; IPv6 without brackets). The error says
  // why (cannot resolve, address in use, ...).
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> Listen(const std::string& host,
                                                                  int port, Handler handler);
  ~HttpServer();  // Stop()

  int port() const { return port_; }
  // Starts the serving thread.
  void Start();
  // Closes every connection and the listening socket; joins the thread.
  void Stop();

  // Figures for tests: connections closed by the deadline or to admit a new one.
  uint64_t timed_out() const { return timed_out_.load(std::memory_order_relaxed); }
  uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }

 private:
  HttpServer(int fd, int port, int wake_fd, Handler handler);
  void Loop();

  int listen_fd_;
  int port_;
  int wake_fd_;  // eventfd: Stop wakes the loop
  Handler handler_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> timed_out_{0}, evicted_{0};
};

}  // namespace qw::sink
