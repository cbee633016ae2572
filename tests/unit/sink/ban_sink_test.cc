// Ban sink: outbox durability, idempotency across restarts, signatures,
// retries, exec delivery, dry run and held bans.
//
// Time: the sink runs on a ManualClock; a test that needs a retry advances
// it while it waits. Every wait polls a condition with a generous real-time
// deadline; nothing depends on how fast the machine is.
//
// One file of ~800 lines: every case shares the fake receiver, the fixture
// and the event builders above them.
#include "sink/ban_sink.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/event.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/time.h"
#include "sink/http_transport.h"
#include "test_files.h"
#include "test_net.h"

namespace qw::sink {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

constexpr Nanos kSince = 1735787094000000000;  // 2025-01-02T03:04:54Z
constexpr Nanos kBanAt = kSince + 1800 * kSecond;
constexpr auto kDeadline = std::chrono::seconds(30);

std::string Hex(const unsigned char* p, size_t n) {
  std::string out;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    out += b;
  }
  return out;
}

// Independent of the sink's code: OpenSSL's EVP_MAC interface.
std::string HmacSha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
  EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  EVP_MAC_final(ctx, out, &len, sizeof out);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return Hex(out, len);
}

std::string Sha256Hex(const std::string& s) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), d, &len, EVP_sha256(), nullptr);
  return Hex(d, len);
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::string line;
  std::istringstream in(s);
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}


// What the fake receiver saw and will answer. Shared by the test and the
// transport (the delivery thread).
struct Receiver {
  std::mutex mu;
  std::vector<HttpRequest> requests;  // every attempt
  std::vector<HttpResponse> script;   // answers to the next attempts, then 200
  size_t acked = 0;                   // 2xx answers given

  size_t attempts() {
    std::lock_guard<std::mutex> g(mu);
    return requests.size();
  }
  size_t acks() {
    std::lock_guard<std::mutex> g(mu);
    return acked;
  }
  void FailNext(std::vector<HttpResponse> answers) {
    std::lock_guard<std::mutex> g(mu);
    script = std::move(answers);
  }
  std::vector<HttpRequest> Requests() {
    std::lock_guard<std::mutex> g(mu);
    return requests;
  }
};

class FakeTransport : public HttpTransport {
 public:
  explicit FakeTransport(Receiver* r) : r_(r) {}
  HttpResponse Send(const HttpRequest& req) override {
    std::lock_guard<std::mutex> g(r_->mu);
    r_->requests.push_back(req);
    if (!r_->script.empty()) {
      HttpResponse resp = r_->script.front();
      r_->script.erase(r_->script.begin());
      if (resp.ok()) r_->acked++;
      return resp;
    }
    r_->acked++;
    HttpResponse ok;
    ok.status = 200;
    return ok;
  }

 private:
  Receiver* r_;
};

HttpResponse Status(int code, std::string body = "") {
  HttpResponse r;
  r.status = code;
  r.body = std::move(body);
  return r;
}

HttpResponse TransportError(std::string what) {
  HttpResponse r;
  r.error = std::move(what);
  return r;
}

// Everything a sink is built from, owned by the test.
struct Fixture {
  TempDir dir{"qw-ban-test"};
  ManualClock clock{kBanAt + 5 * kSecond};
  Metrics metrics;
  Receiver receiver;
  std::mutex log_mu;
  std::vector<std::string> log_lines;

  SinkContext Context() {
    SinkContext ctx;
    ctx.state_dir = dir.path();
    ctx.metrics = &metrics;
    ctx.clock = &clock;
    ctx.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> g(log_mu);
      log_lines.push_back(line);
    };
    ctx.make_transport = [this] { return std::make_unique<FakeTransport>(&receiver); };
    return ctx;
  }

  std::string Log() {
    std::lock_guard<std::mutex> g(log_mu);
    std::string all;
    for (const auto& l : log_lines) all += l + "\n";
    return all;
  }

  double Counter(const std::string& which) {
    return metrics.Value("quorumwatch_component_" + which + "_total",
                         {{"kind", "sink"}, {"component", "ban"}});
  }

  std::unique_ptr<BanSink> Make(const SinkConfig& c) {
    auto s = BanSink::Create(c, Context());
    REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
    return std::move(*s);
  }

  // The one outbox file of the state directory ("" when none).
  std::string OutboxPath() {
    std::string found;
    for (const auto& e : fs::directory_iterator(dir.path())) {
      std::string n = e.path().filename().string();
      if (n.rfind("ban-outbox-", 0) == 0 && n.size() > 6 && n.substr(n.size() - 6) == ".jsonl") {
        found = e.path().string();
      }
    }
    return found;
  }

  // Polls `cond` until it holds or the deadline passes. With `advance`, the
  // clock moves a minute a round, so backoff waits end.
  bool WaitFor(const std::function<bool()>& cond, bool advance = false) {
    auto end = std::chrono::steady_clock::now() + kDeadline;
    while (!cond()) {
      if (std::chrono::steady_clock::now() > end) return false;
      if (advance) clock.Advance(60 * kSecond);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
};

SinkConfig Webhook() {
  SinkConfig c;
  c.type = "ban";
  c.action = "webhook";
  c.url = "http://127.0.0.1:9/bans";
  c.file = "qw.yaml";
  c.line = 12;
  return c;
}

Event BanEvent(const std::string& node = "val-a", Nanos since = kSince) {
  Event e;
  e.time = since + 1800 * kSecond;
  e.kind = EventKind::kBan;
  e.severity = Severity::kCritical;
  e.chain = "cosmoshub";
  e.node = node;
  e.namespace_ = "cosmos";
  e.height = 539;
  e.id = MakeEventId(e.chain, e.node, EventKind::kBan, since / kMillisecond);
  e.AddDetailString("reason", "stalled");
  e.AddDetail("since", JsonString(FormatRfc3339Millis(since)));
  e.AddDetail("out_of_consensus_seconds", "1800");
  e.AddDetailString("validator", "A1B2C3");
  std::string ev = "[";
  AppendJsonString(ev, "2025-01-02T03:04:50.000Z committed state height=539");
  ev += ",";
  AppendJsonString(ev, "2025-01-02T03:04:53.000Z err=\"peer \\ gone\"");
  ev += "]";
  e.AddDetail("evidence", ev);
  return e;
}

Event UnbanEvent(const std::string& node = "val-a", bool by_operator = false) {
  Event e;
  e.time = kBanAt + 900 * kSecond;
  e.kind = EventKind::kUnban;
  e.severity = Severity::kInfo;
  e.chain = "cosmoshub";
  e.node = node;
  e.namespace_ = "cosmos";
  e.height = 560;
  e.id = MakeEventId(e.chain, e.node, EventKind::kUnban, kSince / kMillisecond);
  e.AddDetail("since", JsonString(FormatRfc3339Millis(kSince)));
  e.AddDetail("banned_at", JsonString(FormatRfc3339Millis(kBanAt)));
  if (by_operator) e.AddDetail("operator", "true");
  return e;
}

std::string ExpectedKey(const std::string& action, const std::string& node) {
  return action + "-" +
         Sha256Hex(action + "|cosmoshub|cosmos/" + node + "|2025-01-02T03:04:54.000Z").substr(0, 32);
}

std::string HeaderOf(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST_CASE("SignBody matches RFC 4231 test case 2 and an independent HMAC") {
  CHECK(SignBody("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  std::string body = "{\"version\":1,\"action\":\"ban\"}";
  CHECK(SignBody("s3cr3t", body) == HmacSha256("s3cr3t", body));
}

TEST_CASE("the decision is in the outbox, fsynced, before Write returns; body and headers") {
  Fixture f;
  // The receiver refuses for now, so nothing but the decision is certain.
  f.receiver.FailNext({Status(503)});
  WriteFile(f.dir / "secret", "s3cr3t-value\n");
  SinkConfig c = Webhook();
  c.secret_file = f.dir / "secret";
  auto sink = f.Make(c);
  CHECK(f.OutboxPath().empty());  // nothing decided yet, no file
  sink->Write(BanEvent());
  std::string path = f.OutboxPath();
  REQUIRE(!path.empty());
  CHECK(fs::path(path).filename().string().rfind("ban-outbox-webhook-", 0) == 0);
  auto lines = Lines(ReadFile(path));
  REQUIRE(lines.size() >= 1);
  const std::string key = ExpectedKey("ban", "val-a");
  const std::string body =
      "{\"version\":1,\"action\":\"ban\",\"id\":\"" + BanEvent().id +
      "\",\"idempotency_key\":\"" + key +
      "\",\"chain\":\"cosmoshub\",\"namespace\":\"cosmos\",\"node\":\"val-a\","
      "\"validator\":\"A1B2C3\",\"reason\":\"stalled\",\"since\":\"2025-01-02T03:04:54.000Z\","
      "\"decided_at\":\"2025-01-02T03:34:54.000Z\",\"height\":539,\"evidence\":["
      "\"2025-01-02T03:04:50.000Z committed state height=539\","
      "\"2025-01-02T03:04:53.000Z err=\\\"peer \\\\ gone\\\"\"],\"operator\":false}";
  CHECK(lines[0] == "{\"type\":\"decision\",\"decision\":" + body + "}");
  CHECK(sink->pending() + f.receiver.acks() == 1);

  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1; }, true));
  auto reqs = f.receiver.Requests();
  REQUIRE(reqs.size() == 2);
  for (const auto& r : reqs) {
    CHECK(r.method == "POST");
    CHECK(r.url == c.url);
    CHECK(r.body == body);
    CHECK(HeaderOf(r, "Content-Type") == "application/json");
    CHECK(HeaderOf(r, "Idempotency-Key") == key);
    CHECK(HeaderOf(r, "User-Agent") == "quorumwatch");
    // The trailing newline of the file is not part of the secret.
    CHECK(HeaderOf(r, "X-Quorumwatch-Signature") == "sha256=" + HmacSha256("s3cr3t-value", body));
  }
  REQUIRE(f.WaitFor([&] { return sink->pending() == 0; }));
  CHECK(sink->oldest_pending() == kNoTime);
  sink->Close();
  CHECK(f.Log().find("s3cr3t") == std::string::npos);
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 1);
  CHECK((*entries)[0].acknowledged);
  CHECK((*entries)[0].attempts == 2);
  CHECK((*entries)[0].decision.body == body);
  CHECK((*entries)[0].decision.evidence.size() == 2);
  CHECK((*entries)[0].sink == fs::path(path).stem().string().substr(11));
}

TEST_CASE("no secret: no signature header") {
  Fixture f;
  auto sink = f.Make(Webhook());
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1; }));
  CHECK(HeaderOf(f.receiver.Requests()[0], "X-Quorumwatch-Signature").empty());
}

TEST_CASE("secret from the environment") {
  Fixture f;
  ::setenv("QW_BAN_TEST_SECRET", "env-secret", 1);
  SinkConfig c = Webhook();
  c.secret_env = "QW_BAN_TEST_SECRET";
  auto sink = f.Make(c);
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1; }));
  auto r = f.receiver.Requests()[0];
  CHECK(HeaderOf(r, "X-Quorumwatch-Signature") == "sha256=" + HmacSha256("env-secret", r.body));
  ::unsetenv("QW_BAN_TEST_SECRET");
}

TEST_CASE("dedupe by idempotency key, also across a destroy and re-create") {
  Fixture f;
  {
    auto sink = f.Make(Webhook());
    sink->Write(BanEvent());
    sink->Write(BanEvent());  // the same lines decided again
    REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1 && sink->pending() == 0; }));
  }
  {
    auto sink = f.Make(Webhook());
    CHECK(sink->pending() == 0);
    sink->Write(BanEvent());  // re-read after a restart: same period, same key
    CHECK(sink->pending() == 0);
    // Another period of the same node is another decision.
    sink->Write(BanEvent("val-a", kSince + 3600 * kSecond));
    REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 2 && sink->pending() == 0; }));
    sink->Close();
  }
  CHECK(f.receiver.attempts() == 2);
  auto reqs = f.receiver.Requests();
  CHECK(HeaderOf(reqs[0], "Idempotency-Key") != HeaderOf(reqs[1], "Idempotency-Key"));
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  CHECK(entries->size() == 2);
  CHECK(Count(ReadFile(f.OutboxPath()), "\"type\":\"decision\"") == 2);
  CHECK(f.Counter("received") == 4);
  CHECK(f.Counter("processed") == 2);
  CHECK(f.Counter("dropped") == 0);
}

TEST_CASE("pending decisions are delivered after a re-create, in order") {
  Fixture f;
  {
    f.receiver.FailNext({TransportError("Connection refused"), TransportError("Connection refused"),
                         TransportError("Connection refused")});
    auto sink = f.Make(Webhook());
    sink->Write(BanEvent("val-a"));
    sink->Write(BanEvent("val-b"));
    CHECK(sink->pending() == 2);
    CHECK(sink->oldest_pending() == kBanAt);
    // Wait for a failed attempt, then stop with both pending (the clock does
    // not move, so the backoff holds the next attempt).
    REQUIRE(f.WaitFor([&] { return f.Counter("errors") >= 1; }));
    sink->Close();
    CHECK(sink->pending() == 2);
    CHECK(f.receiver.acks() == 0);
  }
  auto before = ReadOutboxes(f.dir.path());
  REQUIRE(before.has_value());
  REQUIRE(before->size() == 2);
  CHECK(!(*before)[0].acknowledged);
  CHECK((*before)[0].attempts >= 1);
  CHECK((*before)[0].last_error == "Connection refused");
  f.receiver.FailNext({});
  auto sink = f.Make(Webhook());
  REQUIRE(f.WaitFor([&] { return sink->pending() == 0; }));
  CHECK(f.receiver.acks() == 2);
  auto reqs = f.receiver.Requests();
  std::vector<std::string> acked_keys;
  for (const auto& r : reqs) acked_keys.push_back(HeaderOf(r, "Idempotency-Key"));
  CHECK(acked_keys.back() == ExpectedKey("ban", "val-b"));
  CHECK(acked_keys[acked_keys.size() - 2] == ExpectedKey("ban", "val-a"));
  CHECK(f.Log().find("2 pending decision(s) to deliver") != std::string::npos);
}

TEST_CASE("retries after failures, then exactly one acknowledged delivery") {
  Fixture f;
  f.receiver.FailNext({Status(503, "busy"), TransportError("Connection refused"),
                       Status(400, "bad signature"), Status(429)});
  auto sink = f.Make(Webhook());
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1; }, true));
  REQUIRE(f.WaitFor([&] { return sink->pending() == 0; }));
  auto reqs = f.receiver.Requests();
  CHECK(reqs.size() == 5);
  for (const auto& r : reqs) {
    CHECK(r.body == reqs[0].body);
    CHECK(HeaderOf(r, "Idempotency-Key") == ExpectedKey("ban", "val-a"));
  }
  CHECK(f.Counter("errors") == 4);
  CHECK(f.Counter("processed") == 1);
  CHECK(f.Counter("received") == 1);
  CHECK(f.Counter("dropped") == 0);
  std::string log = f.Log();
  CHECK(log.find("HTTP 503: busy") != std::string::npos);  // the first failure is logged
  CHECK(log.find("after 5 attempts") != std::string::npos);
  // Nothing more goes out once acknowledged.
  f.clock.Advance(3600 * kSecond);
  sink->Close();
  CHECK(f.receiver.attempts() == 5);
}

TEST_CASE("a 4xx refusal is logged as such and retried") {
  Fixture f;
  f.receiver.FailNext({Status(403, "forbidden")});
  auto sink = f.Make(Webhook());
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1; }, true));
  CHECK(f.Log().find("the ban controller refused ban cosmos/val-a") != std::string::npos);
}

TEST_CASE("unban decisions: reason, operator flag, own key") {
  Fixture f;
  auto sink = f.Make(Webhook());
  sink->Write(BanEvent());
  sink->Write(UnbanEvent());
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 2; }));
  auto reqs = f.receiver.Requests();
  const std::string& body = reqs[1].body;
  CHECK(HeaderOf(reqs[1], "Idempotency-Key") == ExpectedKey("unban", "val-a"));
  CHECK(body.find("\"action\":\"unban\"") != std::string::npos);
  CHECK(body.find("\"reason\":\"back_in_consensus\"") != std::string::npos);
  CHECK(body.find("\"evidence\":[],\"operator\":false}") != std::string::npos);
  CHECK(body.find("\"validator\"") == std::string::npos);
  CHECK(body.find("\"height\":560") != std::string::npos);

  Fixture g;
  auto op = g.Make(Webhook());
  op->Write(UnbanEvent("val-b", true));
  REQUIRE(g.WaitFor([&] { return g.receiver.acks() == 1; }));
  const std::string b2 = g.receiver.Requests()[0].body;
  CHECK(b2.find("\"reason\":\"operator\"") != std::string::npos);
  CHECK(b2.find("\"operator\":true}") != std::string::npos);
}

TEST_CASE("a held ban is not a decision") {
  Fixture f;
  auto sink = f.Make(Webhook());
  Event e = BanEvent();
  e.detail.clear();
  e.id = MakeEventId(e.chain, e.node, "ban/held", kSince / kMillisecond);
  e.AddDetail("held", "true");
  e.AddDetailString("rail", "require_healthy_peer");
  e.AddDetailString("reason", "stalled");
  e.AddDetail("since", JsonString(FormatRfc3339Millis(kSince)));
  sink->Write(e);
  Event other = BanEvent();
  other.kind = EventKind::kOutOfConsensus;
  sink->Write(other);
  CHECK(sink->pending() == 0);
  CHECK(f.OutboxPath().empty());
  CHECK(f.Counter("received") == 0);
  sink->Close();
  CHECK(f.receiver.attempts() == 0);
}

TEST_CASE("dry_run logs what it would do and writes nothing") {
  Fixture f;
  SinkConfig c = Webhook();
  c.dry_run = true;
  auto sink = f.Make(c);
  sink->Write(BanEvent());
  sink->Write(UnbanEvent());
  sink->Close();
  CHECK(fs::is_empty(f.dir.path()));
  CHECK(f.receiver.attempts() == 0);
  std::string log = f.Log();
  CHECK(log.find("dry run: would ban cosmos/val-a") != std::string::npos);
  CHECK(log.find("dry run: would unban cosmos/val-a") != std::string::npos);
}

TEST_CASE("configuration refusals name file:line and never print the secret") {
  Fixture f;
  auto refused = [&](const SinkConfig& c) {
    auto s = BanSink::Create(c, f.Context());
    REQUIRE(!s.has_value());
    return s.error().message;
  };
  SinkConfig c = Webhook();
  c.url = "ftp://host/bans";
  std::string m = refused(c);
  CHECK(m.rfind("qw.yaml:12: ", 0) == 0);
  CHECK(m.find("http://") != std::string::npos);

  c = Webhook();
  WriteFile(f.dir / "empty", "\n");
  c.secret_file = f.dir / "empty";
  CHECK(refused(c).find("is empty") != std::string::npos);

  c.secret_file = f.dir / "missing";
  m = refused(c);
  CHECK(m.rfind("qw.yaml:12: cannot read secret_file", 0) == 0);

  c = Webhook();
  ::unsetenv("QW_BAN_TEST_UNSET");
  c.secret_env = "QW_BAN_TEST_UNSET";
  CHECK(refused(c).find("QW_BAN_TEST_UNSET") != std::string::npos);

  c = Webhook();
  WriteFile(f.dir / "secret", "top-secret-value");
  c.secret_file = f.dir / "secret";
  c.secret_env = "X";
  m = refused(c);
  CHECK(m.find("only one") != std::string::npos);
  CHECK(m.find("top-secret-value") == std::string::npos);

  // Two sinks may not share one outbox.
  c = Webhook();
  auto first = f.Make(c);
  CHECK(refused(c).find("same url") != std::string::npos);
  first->Close();
  auto again = f.Make(c);  // free once the first is closed
}

TEST_CASE("a torn last line is skipped and the outbox rewritten") {
  Fixture f;
  std::string path;
  {
    f.receiver.FailNext({TransportError("down")});
    auto sink = f.Make(Webhook());
    sink->Write(BanEvent("val-a"));
    REQUIRE(f.WaitFor([&] { return f.Counter("errors") >= 1; }));
    sink->Close();
    path = f.OutboxPath();
  }
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << "{\"type\":\"decision\",\"decision\":{\"version\":1,\"act";  // cut by a crash
  }
  auto sink = f.Make(Webhook());
  CHECK(f.Log().find("1 unreadable line(s)") != std::string::npos);
  sink->Write(BanEvent("val-b"));
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 2 && sink->pending() == 0; }));
  sink->Close();
  std::string data = ReadFile(path);
  CHECK(data.find("\"act\n") == std::string::npos);
  for (const auto& l : Lines(data)) CHECK(l.back() == '}');
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 2);
  CHECK((*entries)[0].acknowledged);
  CHECK((*entries)[1].acknowledged);
}

TEST_CASE("the outbox is compacted when it grows") {
  Fixture f;
  // 100 failed attempts of one decision: each adds an attempt record.
  std::vector<HttpResponse> fails(100, Status(500));
  f.receiver.FailNext(fails);
  auto sink = f.Make(Webhook());
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return f.receiver.acks() == 1 && sink->pending() == 0; }, true));
  sink->Close();
  auto lines = Lines(ReadFile(f.OutboxPath()));
  CHECK(lines.size() < 70);
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 1);
  CHECK((*entries)[0].acknowledged);
  CHECK((*entries)[0].attempts == 101);
}

// --- exec

TEST_CASE("webhook: Close abandons a request the receiver accepted and never answers") {
  // A real listener on loopback that reads the request and says nothing.
  qw::testing::SilentListener hung;
  Fixture f;
  SinkConfig c = Webhook();
  c.url = hung.url("/bans");
  c.timeout = 600 * kSecond;  // far longer than any wait below
  SinkContext ctx = f.Context();
  ctx.make_transport = nullptr;  // libcurl, as in production
  auto made = BanSink::Create(c, ctx);
  REQUIRE(made);
  auto sink = std::move(*made);
  sink->Write(BanEvent());
  // The request arrives whole; no answer is ever sent.
  int cfd = hung.Accept();
  std::string got;
  char buf[4096];
  while (got.find("\"action\"") == std::string::npos) {
    ssize_t n = ::recv(cfd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  const auto start = std::chrono::steady_clock::now();
  sink->Close();
  // Close returned (it no longer waits out the 600 s timeout; the bound
  // here is a hang guard, not a speed test) and the decision is kept.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(300));
  CHECK(sink->pending() == 1);
  sink.reset();
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 1);
  CHECK(!(*entries)[0].acknowledged);
  CHECK(f.Log().find("failed") == std::string::npos);  // not counted as a failed delivery
}

struct ExecFixture : Fixture {
  // A program that records its stdin, environment and arguments, fails with
  // a message on stderr the first time (marker file) and succeeds after.
  SinkConfig Program(const std::string& extra_first_run = "") {
    std::string script = "#!/bin/sh\n"
                         "d='" + dir.path() + "'\n"
                         "cat > \"$d/stdin.$$\"\n"
                         "env > \"$d/env.$$\"\n"
                         "printf '%s\\n' \"$@\" > \"$d/args.$$\"\n"
                         "echo $$ >> \"$d/runs\"\n"
                         "if [ ! -e \"$d/marker\" ]; then\n"
                         "  touch \"$d/marker\"\n" +
                         extra_first_run +
                         "  echo 'receiver: first attempt refused' >&2\n"
                         "  exit 3\n"
                         "fi\n"
                         "exit 0\n";
    WriteFile(dir / "program.sh", script, true);
    SinkConfig c;
    c.type = "ban";
    c.action = "exec";
    c.command = {dir / "program.sh", "--node"};
    c.timeout = 600 * kSecond;  // real time: never reached by these programs
    c.file = "qw.yaml";
    c.line = 20;
    return c;
  }
  std::vector<std::string> Runs() { return Lines(ReadFile(dir / "runs")); }
};

TEST_CASE("exec: a failing then succeeding program gets the body, arguments and environment") {
  ExecFixture f;
  SinkConfig c = f.Program();
  WriteFile(f.dir / "secret", "exec-secret\n");
  c.secret_file = f.dir / "secret";
  auto sink = f.Make(c);
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return sink->pending() == 0; }, true));
  sink->Close();
  auto runs = f.Runs();
  REQUIRE(runs.size() == 2);
  CHECK(f.Counter("errors") == 1);
  CHECK(f.Counter("processed") == 1);
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 1);
  const BanDecision& d = (*entries)[0].decision;
  CHECK((*entries)[0].acknowledged);
  CHECK(fs::path(f.OutboxPath()).filename().string().rfind("ban-outbox-exec-", 0) == 0);
  for (const auto& pid : runs) {
    CHECK(ReadFile(f.dir / ("stdin." + pid)) == d.body);
    CHECK(Lines(ReadFile(f.dir / ("args." + pid))) ==
          std::vector<std::string>{"--node", "cosmos/val-a"});
  }
  std::string env = ReadFile(f.dir / ("env." + runs[1]));
  const std::vector<std::string> wanted = {
      "QW_ACTION=ban",
      "QW_ID=" + d.id,
      "QW_IDEMPOTENCY_KEY=" + ExpectedKey("ban", "val-a"),
      "QW_CHAIN=cosmoshub",
      "QW_NAMESPACE=cosmos",
      "QW_NODE=val-a",
      "QW_VALIDATOR=A1B2C3",
      "QW_REASON=stalled",
      "QW_SINCE=2025-01-02T03:04:54.000Z",
      "QW_DECIDED_AT=2025-01-02T03:34:54.000Z",
      "QW_SIGNATURE=sha256=" + HmacSha256("exec-secret", d.body)};
  for (const std::string& want : wanted) {
    CHECK_MESSAGE(env.find(want + "\n") != std::string::npos, want);
  }
  CHECK(env.find("PATH=") != std::string::npos);  // inherited
  std::string log = f.Log();
  CHECK(log.find("exit status 3") != std::string::npos);
  CHECK(log.find("stderr: receiver: first attempt refused") != std::string::npos);
  CHECK(log.find("exec-secret") == std::string::npos);
}

TEST_CASE("exec: a program over its timeout is killed with its group and retried") {
  ExecFixture f;
  // First run: a background child in the group, then hang.
  SinkConfig c = f.Program(
      "  sleep 300 &\n"
      "  echo $! > \"$d/child\"\n"
      "  exec sleep 300\n");
  // The timeout is real time: a short one here, and the hanging program is
  // killed however slow the machine is.
  c.timeout = 2 * kSecond;
  {
    auto sink = f.Make(c);
    sink->Write(BanEvent());
    REQUIRE(f.WaitFor([&] { return f.Counter("errors") >= 1; }));
    sink->Close();
    CHECK(sink->pending() == 1);
  }
  CHECK(f.Log().find("timed out after 2s (killed)") != std::string::npos);
  auto gone = [](const std::string& pid) {
    std::string stat = ReadFile("/proc/" + pid + "/stat");
    if (stat.empty()) return true;
    size_t p = stat.rfind(')');
    return p != std::string::npos && p + 2 < stat.size() && stat[p + 2] == 'Z';
  };
  REQUIRE(f.Runs().size() == 1);
  std::string first = f.Runs()[0];
  CHECK(gone(first));  // reaped by the sink
  if (fs::exists(f.dir / "child")) {  // written unless killed before that line
    std::string child = Lines(ReadFile(f.dir / "child"))[0];
    CHECK(f.WaitFor([&] { return gone(child); }));  // killed with the group
  }
  // Retried at the next start with a generous timeout: the program succeeds.
  c.timeout = 600 * kSecond;
  auto sink = f.Make(c);
  REQUIRE(f.WaitFor([&] { return sink->pending() == 0; }, true));
  CHECK(f.Runs().size() >= 2);
}

TEST_CASE("exec: Close stops a running program; the decision stays pending") {
  ExecFixture f;
  SinkConfig c = f.Program("  exec sleep 300\n");
  c.timeout = 600 * kSecond;
  {
    auto sink = f.Make(c);
    sink->Write(BanEvent());
    REQUIRE(f.WaitFor([&] { return f.Runs().size() == 1; }));
    sink->Close();
    CHECK(sink->pending() == 1);
  }
  auto entries = ReadOutboxes(f.dir.path());
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 1);
  CHECK(!(*entries)[0].acknowledged);
  std::string stat = ReadFile("/proc/" + f.Runs()[0] + "/stat");
  CHECK((stat.empty() || stat.find(") Z") != std::string::npos));
  // The next start delivers it (the program succeeds now).
  auto sink = f.Make(c);
  REQUIRE(f.WaitFor([&] { return sink->pending() == 0; }));
  CHECK(f.Runs().size() == 2);
}

TEST_CASE("exec: a program that cannot be started is a failed attempt") {
  ExecFixture f;
  SinkConfig c = f.Program();
  c.command = {f.dir / "no-such-program"};
  auto sink = f.Make(c);
  sink->Write(BanEvent());
  REQUIRE(f.WaitFor([&] { return f.Counter("errors") >= 1; }));
  sink->Close();
  CHECK(f.Log().find("cannot run") != std::string::npos);
  CHECK(sink->pending() == 1);
}

}  // namespace
}  // namespace qw::sink
