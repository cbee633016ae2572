#include "sink/http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <vector>

#include <fmt/format.h>

namespace qw::sink {
namespace {

std::string_view Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

bool IsTokenChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

struct Connection {
  int fd = -1;
  Nanos accepted = 0;
  std::string in;   // the request head so far
  std::string out;  // the answer, once known
  size_t sent = 0;
  bool answering = false;
  bool draining = false;  // answered and half-closed: waits for the client's end
};

}  // namespace

bool ParseRequestHead(std::string_view head, ServerRequest* out, int* error_status) {
  *error_status = 400;
  size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // method SP target SP HTTP/1.x
  size_t sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos) return false;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (char c : method) {
    if (!IsTokenChar(c)) return false;
  }
  if (target.front() != '/' && target != "*") return false;
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return false;
  }
  if (version[5] != '1') {
    *error_status = 505;
    return false;
  }
  out->method = std::string(method);
  out->path = std::string(target.substr(0, target.find('?')));
  return true;
}

std::string FormatResponse(const ServerResponse& r, bool head_only) {
  std::string s = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
      r.status, Reason(r.status), r.content_type, r.body.size());
  if (!head_only) s += r.body;
  return s;
}

Result<std::unique_ptr<HttpServer>> HttpServer::Listen(const std::string& host, int port,
                                                       Handler handler) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return Fail("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  int fd = -1;
  int last_errno = 0;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    // SO_REUSEADDR only: a restart may bind over TIME_WAIT connections, but
    // a port another process listens on is refused.
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) break;
    last_errno = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return Fail(last_errno != 0 ? std::strerror(last_errno) : "bind or listen failed");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int bound = port;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int err = errno;
    ::close(fd);
    return Fail(std::string("eventfd: ") + std::strerror(err));
  }
  return std::unique_ptr<HttpServer>(new HttpServer(fd, bound, wake, std::move(handler)));
}

HttpServer::HttpServer(int fd, int port, int wake_fd, Handler handler)
    : listen_fd_(fd), port_(port), wake_fd_(wake_fd), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  Stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void HttpServer::Start() { thread_ = std::thread([this] { Loop(); }); }

void HttpServer::Stop() {
  stopping_.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
  (void)ignored;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void HttpServer::Loop() {
  std::deque<Connection> conns;  // oldest first
  std::vector<pollfd> fds;
  auto close_conn = [&](size_t i) {
    ::close(conns[i].fd);
    conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
  };
  while (!stopping_.load()) {
    const Nanos now = SteadyNow();
    // Deadlines: whatever a client has not finished in time is closed.
    for (size_t i = 0; i < conns.size();) {
      if (now - conns[i].accepted >= kExchangeDeadline) {
        timed_out_.fetch_add(1, std::memory_order_relaxed);
        close_conn(i);
      } else {
        ++i;
      }
    }
    fds.clear();
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    for (const Connection& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.answering ? POLLOUT : POLLIN), 0});
    }
    Nanos wait = kExchangeDeadline;
    if (!conns.empty()) wait = conns.front().accepted + kExchangeDeadline - now;
    int timeout_ms = static_cast<int>(std::max<Nanos>(1, (wait + kMillisecond - 1) / kMillisecond));
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (stopping_.load()) break;
    // Existing connections first (indexes match fds[2..]), newest last.
    std::vector<bool> drop(conns.size(), false);
    for (size_t i = 0; i < conns.size(); ++i) {
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      Connection& c = conns[i];
      if (c.draining) {
        // Whatever the client still sends is read and dropped until it
        // closes: closing with unread bytes would reset the connection and
        // could cost the client the end of the answer.
        char buf[4096];
        ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) drop[i] = true;
        continue;
      }
      if (!c.answering) {
        char buf[4096];
        ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
          drop[i] = true;
          continue;
        }
        if (got < 0) continue;
        c.in.append(buf, static_cast<size_t>(got));
        size_t end = c.in.find("\r\n\r\n");
        size_t end_lf = c.in.find("\n\n");
        if (end == std::string::npos && end_lf == std::string::npos) {
          if (c.in.size() > kMaxHead) {
            ServerResponse r;
            r.status = 431;
            r.body = "request head too large\n";
            c.out = FormatResponse(r, false);
            c.answering = true;
          }
          continue;
        }
        ServerRequest req;
        int error_status = 400;
        ServerResponse r;
        bool head_only = false;
        if (!ParseRequestHead(c.in, &req, &error_status)) {
          r.status = error_status;
          r.body = error_status == 505 ? "HTTP/1.x only\n" : "bad request\n";
        } else if (req.method != "GET" && req.method != "HEAD") {
          r.status = 405;
          r.body = "GET or HEAD only\n";
        } else {
          head_only = req.method == "HEAD";
          r = handler_(req);
        }
        c.out = FormatResponse(r, head_only);
        c.answering = true;
        // Answer at once when the socket takes it (the usual case).
      }
      while (c.sent < c.out.size()) {
        ssize_t put = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (put > 0) {
          c.sent += static_cast<size_t>(put);
          continue;
        }
        if (put < 0 && (errno == EAGAIN || errno == EINTR)) break;
        drop[i] = true;
        break;
      }
      if (!drop[i] && c.sent == c.out.size()) {
        // All sent: half-close (the client sees the end of the answer) and
        // wait for its close, within the same deadline.
        ::shutdown(c.fd, SHUT_WR);
        c.draining = true;
        c.answering = false;
        c.out.clear();
        c.out.shrink_to_fit();
      }
    }
    for (size_t i = conns.size(); i-- > 0;) {
      if (drop[i]) close_conn(i);
    }
    if (fds[0].revents != 0) {
      while (true) {
        int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) break;  // EAGAIN (or EMFILE: tried again next round)
        if (conns.size() >= kMaxConnections) {
          evicted_.fetch_add(1, std::memory_order_relaxed);
          close_conn(0);
        }
        Connection c;
        c.fd = cfd;
        c.accepted = SteadyNow();
        conns.push_back(std::move(c));
      }
    }
  }
  for (Connection& c : conns) ::close(c.fd);
}

}  // namespace qw::sink
