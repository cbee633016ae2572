// The metrics endpoint's HTTP server against slow and hostile clients: more
// slow clients than httplib had threads, more connections than the server
// keeps, oversized and malformed requests. Waits are event-driven (a read
// that returns when the server answers or closes) with generous deadlines.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "sink/http_server.h"

using namespace qw;
using namespace qw::sink;

namespace {

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

void SendAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may have closed (that is what some tests want)
    done += static_cast<size_t>(n);
  }
}

// Everything the server sends until it closes, or "<timeout>" after
// `deadline_s` (a hang guard only).
std::string ReadToEnd(int fd, int deadline_s = 60) {
  std::string out;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(deadline_s);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;  // closed (or reset)
    out.append(buf, static_cast<size_t>(n));
  }
  return "<timeout>";
}

std::string Exchange(int port, const std::string& request) {
  int fd = Connect(port);
  SendAll(fd, request);
  std::string r = ReadToEnd(fd);
  ::close(fd);
  return r;
}

std::unique_ptr<HttpServer> Serve(std::atomic<int>* served = nullptr) {
  auto s = HttpServer::Listen("127.0.0.1", 0, [served](const ServerRequest& req) {
    if (served != nullptr) served->fetch_add(1);
    ServerResponse r;
    if (req.path == "/healthz") {
      r.body = "ok\n";
    } else {
      r.status = 404;
      r.body = "no\n";
    }
    return r;
  });
  REQUIRE(s);
  (*s)->Start();
  return std::move(*s);
}

}  // namespace

TEST_CASE("request lines") {
  ServerRequest r;
  int status = 0;
  CHECK(ParseRequestHead("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, &status));
  CHECK(r.method == "GET");
  CHECK(r.path == "/metrics");
  CHECK(ParseRequestHead("HEAD /healthz?verbose=1 HTTP/1.0\n\n", &r, &status));
  CHECK(r.method == "HEAD");
  CHECK(r.path == "/healthz");
  for (const char* bad : {"", "\r\n\r\n", "GET\r\n\r\n", "GET /x\r\n\r\n", "GET  /x HTTP/1.1\r\n\r\n",
                          "GET x HTTP/1.1\r\n\r\n", "G(T /x HTTP/1.1\r\n\r\n",
                          "GET /x HTTP/1.10\r\n\r\n", "GET /x FTP/1.1\r\n\r\n", "GET /x HTTP/1.1 \r\n\r\n",
                          "GET /a\x01 HTTP/1.1\r\n\r\n"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseRequestHead(bad, &r, &status));
    CHECK(status == 400);
  }
  CHECK_FALSE(ParseRequestHead("GET /x HTTP/2.0\r\n\r\n", &r, &status));
  CHECK(status == 505);
}

TEST_CASE("answers: status line, length, close; HEAD without body; 404, 405, 400, 431") {
  auto s = Serve();
  const int port = s->port();
  CHECK(Exchange(port, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        "Connection: close\r\n\r\nok\n");
  CHECK(Exchange(port, "HEAD /healthz HTTP/1.1\r\n\r\n") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        "Connection: close\r\n\r\n");
  CHECK(Exchange(port, "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  CHECK(Exchange(port, "POST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")
            .rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
  CHECK(Exchange(port, "hello\r\n\r\n").rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  // A head that never ends: refused once it passes the limit.
  std::string huge = "GET /healthz HTTP/1.1\r\nX: " + std::string(HttpServer::kMaxHead, 'a');
  CHECK(Exchange(port, huge).rfind("HTTP/1.1 431 ", 0) == 0);
}

TEST_CASE("slow clients, more of them than httplib had threads, never hold /healthz up") {
  std::atomic<int> served{0};
  auto s = Serve(&served);
  const int port = s->port();
  // 16 clients that send their request a byte at a time, slowly, and keep
  // going: each is a connection the server must not wait for.
  constexpr int kSlow = 16;
  std::vector<int> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(Connect(port));
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Pad: ";
    for (size_t k = 0; !stop.load(); ++k) {
      for (int fd : slow) {
        char c = req[std::min(k, req.size() - 1)];
        (void)::send(fd, &c, 1, MSG_NOSIGNAL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  // Meanwhile ordinary probes are answered, every one.
  for (int i = 0; i < 20; ++i) {
    CHECK(Exchange(port, "GET /healthz HTTP/1.1\r\n\r\n").find("\r\n\r\nok\n") != std::string::npos);
  }
  // The slow ones are closed by the server at their deadline (they never
  // finished a request): each read ends without an answer.
  for (int fd : slow) CHECK(ReadToEnd(fd) == "");
  stop = true;
  drip.join();
  for (int fd : slow) ::close(fd);
  CHECK(served.load() == 20);
  CHECK(s->timed_out() >= static_cast<uint64_t>(kSlow));
}

TEST_CASE("more idle connections than the server keeps: the oldest go, new ones are served") {
  auto s = Serve();
  const int port = s->port();
  std::vector<int> idle;
  for (size_t i = 0; i < HttpServer::kMaxConnections + 36; ++i) idle.push_back(Connect(port));
  CHECK(Exchange(port, "GET /healthz HTTP/1.1\r\n\r\n").find("\r\n\r\nok\n") != std::string::npos);
  // The first 36 (and the probe's place) were closed to make room, without
  // an answer.
  for (size_t i = 0; i < 36; ++i) CHECK(ReadToEnd(idle[i]) == "");
  CHECK(s->evicted() >= 36);
  for (int fd : idle) ::close(fd);
}

TEST_CASE("Stop closes every connection and the port") {
  auto s = Serve();
  const int port = s->port();
  int open = Connect(port);
  SendAll(open, "GET /hea");
  s->Stop();
  CHECK(ReadToEnd(open) == "");
  ::close(open);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0);
  ::close(fd);
}
