// AlertmanagerSink against a fake HttpTransport that records every request
// and can fail or hang per URL. Time is a ManualClock the tests step; a test
// waits for what the delivery threads do on a condition variable with a
// deadline, never by sleeping.
//
// One file of ~1000 lines: every case shares the fake network, the fixture
// and the parsing of posted bodies above them.
#include "sink/alertmanager_sink.h"

#include <doctest/doctest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/time.h"
#include "sink/http_transport.h"
#include "sink/status.h"
#include "test_net.h"

namespace qw::sink {
namespace {

constexpr Nanos kT0 = 1'735'787'000 * kSecond;  // 2025-01-02T03:03:20Z
constexpr Nanos kResend = 60 * kSecond;
constexpr Nanos kHold = 4 * kResend;
constexpr auto kDeadline = std::chrono::seconds(30);  // generous: only a failure waits it out
const char* kChain = "cosmoshub";
const char* kNs = "cosmos-mainnet";

std::string T(Nanos t) { return FormatRfc3339Millis(t); }

// One alert of a POST body.
struct Posted {
  std::map<std::string, std::string> labels, annotations;
  std::string starts_at, ends_at, generator_url;
  bool has_generator_url = false;
};

// One request as the fake network saw it.
struct Request {
  std::string url, body, content_type;
  Nanos at = 0;     // ctx.clock when sent
  bool ok = false;  // answered 2xx
  std::vector<Posted> alerts;
  bool parsed = false;  // the body was a JSON array of alert objects
};

std::vector<Posted> ParseBody(const std::string& body, bool* ok) {
  std::vector<Posted> out;
  *ok = false;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc)) return out;
  simdjson::dom::array arr;
  if (doc.get_array().get(arr)) return out;
  for (simdjson::dom::element e : arr) {
    Posted p;
    simdjson::dom::object labels, ann;
    std::string_view s, en;
    if (e["labels"].get_object().get(labels) || e["annotations"].get_object().get(ann) ||
        e["startsAt"].get_string().get(s) || e["endsAt"].get_string().get(en)) {
      return out;
    }
    p.starts_at = std::string(s);
    p.ends_at = std::string(en);
    for (auto f : labels) {
      std::string_view v;
      if (f.value.get_string().get(v)) return out;
      p.labels[std::string(f.key)] = std::string(v);
    }
    for (auto f : ann) {
      std::string_view v;
      if (f.value.get_string().get(v)) return out;
      p.annotations[std::string(f.key)] = std::string(v);
    }
    std::string_view g;
    if (!e["generatorURL"].get_string().get(g)) {
      p.has_generator_url = true;
      p.generator_url = std::string(g);
    }
    out.push_back(std::move(p));
  }
  *ok = true;
  return out;
}

// The network every fake transport of a test shares. Hosts are matched by
// substring of the request URL ("am-1").
class FakeNet {
 public:
  explicit FakeNet(const Clock* clock) : clock_(clock) {}

  // 200 by default; 0 = no response (a transport error).
  void SetStatus(const std::string& host, int status) {
    std::lock_guard<std::mutex> l(mu_);
    status_[host] = status;
  }
  // A blocked host holds every request until unblocked.
  void SetBlocked(const std::string& host, bool blocked) {
    std::lock_guard<std::mutex> l(mu_);
    if (blocked) {
      blocked_.insert(host);
    } else {
      blocked_.erase(host);
    }
    cv_.notify_all();
  }
  void Log(const std::string& line) {
    std::lock_guard<std::mutex> l(mu_);
    logs_.push_back(line);
    cv_.notify_all();
  }

  HttpResponse Send(const HttpRequest& req) {
    std::unique_lock<std::mutex> l(mu_);
    std::string host = HostOf(req.url);
    Request r;
    r.url = req.url;
    r.body = req.body;
    r.at = clock_->Now();
    for (const auto& [k, v] : req.headers) {
      if (k == "Content-Type") r.content_type = v;
    }
    r.alerts = ParseBody(req.body, &r.parsed);
    ++in_flight_[host];
    cv_.notify_all();
    cv_.wait(l, [&] { return blocked_.count(host) == 0; });
    --in_flight_[host];
    int status = status_.count(host) ? status_[host] : 200;
    HttpResponse resp;
    if (status == 0) {
      resp.error = "Failed to connect to " + host + " port 9093: Connection refused";
    } else {
      resp.status = status;
      if (status >= 300) resp.body = "fake failure\nsecond line";
    }
    r.ok = resp.ok();
    requests_.push_back(std::move(r));
    cv_.notify_all();
    return resp;
  }

  // Waits until `pred` (called with the net's lock held) holds.
  bool WaitUntil(const std::function<bool()>& pred) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kDeadline, pred);
  }

  // --- views (REQUIRE the lock when called inside a WaitUntil predicate;
  // the Copy* versions take it)
  const std::vector<Request>& requests() const { return requests_; }
  const std::vector<std::string>& logs() const { return logs_; }
  int in_flight(const std::string& host) const {
    auto it = in_flight_.find(host);
    return it == in_flight_.end() ? 0 : it->second;
  }
  std::vector<Request> CopyRequests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  std::vector<std::string> CopyLogs() {
    std::lock_guard<std::mutex> l(mu_);
    return logs_;
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    requests_.clear();
    logs_.clear();
  }

 private:
  static std::string HostOf(const std::string& url) {
    size_t a = url.find("://") + 3;
    std::string authority = url.substr(a, url.find('/', a) - a);
    authority = authority.substr(authority.find('@') + 1);  // npos + 1 == 0
    return authority.substr(0, authority.find(':'));
  }
  const Clock* clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> status_;
  std::set<std::string> blocked_;
  std::map<std::string, int> in_flight_;
  std::vector<Request> requests_;
  std::vector<std::string> logs_;
};

class FakeTransport : public HttpTransport {
 public:
  explicit FakeTransport(FakeNet* net) : net_(net) {}
  HttpResponse Send(const HttpRequest& req) override { return net_->Send(req); }

 private:
  FakeNet* net_;
};

// Every alert named `name` (and node `node`, "" for any) delivered to
// `host`, in order.
std::vector<Posted> Delivered(const std::vector<Request>& reqs, const std::string& host,
                              const std::string& name, const std::string& node = "") {
  std::vector<Posted> out;
  for (const Request& r : reqs) {
    if (!r.ok || r.url.find(host) == std::string::npos) continue;
    for (const Posted& p : r.alerts) {
      auto n = p.labels.find("node");
      if (p.labels.at("alertname") != name) continue;
      if (!node.empty() && (n == p.labels.end() || n->second != node)) continue;
      out.push_back(p);
    }
  }
  return out;
}

// True when `host` has been sent `name` with endsAt `ends` (and startsAt
// `starts` when given).
bool Has(const std::vector<Request>& reqs, const std::string& host, const std::string& name,
         const std::string& node, Nanos ends, Nanos starts = kNoTime) {
  for (const Posted& p : Delivered(reqs, host, name, node)) {
    if (p.ends_at == T(ends) && (starts == kNoTime || p.starts_at == T(starts))) return true;
  }
  return false;
}

int Failed(const std::vector<Request>& reqs, const std::string& host) {
  int n = 0;
  for (const Request& r : reqs) n += (!r.ok && r.url.find(host) != std::string::npos) ? 1 : 0;
  return n;
}

int CountLogs(const std::vector<std::string>& logs, const std::string& part) {
  int n = 0;
  for (const auto& l : logs) n += l.find(part) != std::string::npos ? 1 : 0;
  return n;
}

// Polls `pred` until it holds (for state no condition variable announces,
// such as the sink's counters).
bool Eventually(const std::function<bool()>& pred) {
  auto end = std::chrono::steady_clock::now() + kDeadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

NodeStatus Node(const std::string& name, bool signer = true) {
  NodeStatus n;
  n.chain = kChain;
  n.family = "cometbft";
  n.namespace_ = kNs;
  n.node = name;
  n.signer = signer;
  n.height = 500;
  n.last_advance = kT0 - 10 * kSecond;
  n.in_consensus = true;
  return n;
}

void Stall(NodeStatus& n, Nanos since) {
  n.in_consensus = false;
  n.stalled = true;
  n.stalled_since = since;
  n.last_advance = since - 2 * kSecond;
  n.out_of_consensus = true;
  n.out_of_consensus_since = since;
  n.out_of_consensus_reason = "stalled";
  n.period_start = since;
}

double Counter(Metrics& m, const std::string& which) {
  return m.Value("quorumwatch_component_" + which + "_total",
                 {{"kind", "sink"}, {"component", "alertmanager"}});
}

struct Fixture {
  ManualClock clock{kT0};
  Metrics metrics;
  FakeNet net{&clock};
  std::string state_dir;

  Fixture() {
    char tmpl[] = "/tmp/qw-am-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    state_dir = tmpl;
  }
  ~Fixture() { std::filesystem::remove_all(state_dir); }

  SinkConfig Config(std::vector<std::string> urls = {"http://am-1:9093"}) {
    SinkConfig c;
    c.type = "alertmanager";
    c.urls = std::move(urls);
    c.resend_interval = kResend;
    c.labels = {{"region", "eu-1"}};
    c.generator_url = "https://grafana.example/d/quorumwatch";
    c.timeout = 5 * kSecond;
    c.file = "qw.yaml";
    c.line = 7;
    return c;
  }
  SinkContext Ctx() {
    SinkContext ctx;
    ctx.state_dir = state_dir;
    ctx.metrics = &metrics;
    ctx.clock = &clock;
    ctx.log = [this](const std::string& l) { net.Log(l); };
    ctx.make_transport = [this] { return std::make_unique<FakeTransport>(&net); };
    return ctx;
  }
  std::unique_ptr<AlertmanagerSink> Make(const SinkConfig& c) {
    auto r = AlertmanagerSink::Create(c, Ctx());
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    return std::move(*r);
  }
  Status Snap(std::vector<NodeStatus> nodes) {
    Status s;
    s.now = clock.Now();
    s.detector_time = clock.Now();
    s.nodes = std::move(nodes);
    ChainStatus c;
    c.name = kChain;
    c.family = "cometbft";
    c.head = 510;
    s.chains.push_back(c);
    s.health.caught_up = true;
    s.health.last_input = clock.Now();
    return s;
  }
  bool Wait(const std::function<bool(const std::vector<Request>&)>& pred) {
    return net.WaitUntil([&] { return pred(net.requests()); });
  }
  std::string StateFile() {
    std::ifstream in(state_dir + "/alertmanager.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

TEST_CASE("Create refuses a bad configuration, naming file:line") {
  Fixture f;
  auto refuse = [&](SinkConfig c, const std::string& part) {
    auto r = AlertmanagerSink::Create(c, f.Ctx());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.rfind("qw.yaml:7: ", 0) == 0);
    CHECK_MESSAGE(r.error().message.find(part) != std::string::npos, r.error().message);
  };
  refuse(f.Config({}), "urls");
  refuse(f.Config({"am-1:9093"}), "http");
  refuse(f.Config({"http://"}), "http");
  refuse(f.Config({"http://am-1:9093", "http://am-1:9093"}), "twice");
  // Credentials in a URL are never shown.
  {
    auto r = AlertmanagerSink::Create(f.Config({"ftp://user:secret@am-1"}), f.Ctx());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("secret") == std::string::npos);
  }
  SinkConfig c = f.Config();
  c.labels = {{"bad-name", "x"}};
  refuse(c, "bad-name");
  c.labels = {{"severity", "x"}};
  refuse(c, "severity");
  c = f.Config();
  c.resend_interval = 0;
  refuse(c, "resend_interval");
  CHECK(AlertmanagerSink::Create(f.Config(), f.Ctx()).has_value());
}

TEST_CASE("Watchdog fires from Create on every URL and is not resolved at Close") {
  Fixture f;
  auto sink = f.Make(f.Config({"http://am-1:9093", "http://am-2:9093/"}));
  REQUIRE(f.Wait([](const auto& r) {
    return Has(r, "am-1", "Watchdog", "", kT0 + kHold) &&
           Has(r, "am-2", "Watchdog", "", kT0 + kHold);
  }));
  auto reqs = f.net.CopyRequests();
  CHECK(reqs[0].url.find("/api/v2/alerts") != std::string::npos);
  for (const Request& r : reqs) CHECK(r.url.find("//api") == std::string::npos);
  Posted w = Delivered(reqs, "am-1", "Watchdog").at(0);
  CHECK(w.labels == std::map<std::string, std::string>{
                        {"alertname", "Watchdog"}, {"severity", "none"}, {"region", "eu-1"}});
  CHECK(w.starts_at == T(kT0));
  CHECK_FALSE(w.annotations["summary"].empty());
  f.clock.Advance(5 * kSecond);
  sink->Close();
  for (const Request& r : f.net.CopyRequests()) {
    for (const Posted& p : r.alerts) CHECK(p.ends_at > T(f.clock.Now()));  // never resolved
  }
}

TEST_CASE("alert JSON: labels, annotations, startsAt from the state, endsAt, generatorURL") {
  Fixture f;
  auto sink = f.Make(f.Config());
  f.clock.Advance(kSecond);
  Nanos now = f.clock.Now();
  NodeStatus a = Node("val-a");
  Stall(a, kT0 - 5 * kSecond);
  NodeStatus b = Node("sentry-b", false);
  Stall(b, kT0 - 3 * kSecond);
  sink->OnStatus(f.Snap({a, b}));
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "NodeStalled", "val-a", now + kHold) &&
           Has(r, "am-1", "NodeOutOfConsensus", "val-a", now + kHold) &&
           Has(r, "am-1", "NodeOutOfConsensus", "sentry-b", now + kHold);
  }));
  auto reqs = f.net.CopyRequests();
  for (const Request& r : reqs) {
    CHECK(r.parsed);
    CHECK(r.content_type == "application/json");
    CHECK(r.url == "http://am-1:9093/api/v2/alerts");
  }
  Posted st = Delivered(reqs, "am-1", "NodeStalled", "val-a").back();
  CHECK(st.labels == std::map<std::string, std::string>{{"alertname", "NodeStalled"},
                                                        {"chain", kChain},
                                                        {"node", "val-a"},
                                                        {"namespace", kNs},
                                                        {"severity", "warning"},
                                                        {"region", "eu-1"}});
  CHECK(st.starts_at == T(kT0 - 5 * kSecond));
  CHECK(st.ends_at == T(now + kHold));
  CHECK(st.has_generator_url);
  CHECK(st.generator_url == "https://grafana.example/d/quorumwatch");
  CHECK(st.annotations["summary"].find("val-a on cosmoshub") != std::string::npos);
  CHECK(st.annotations["summary"].find("500") != std::string::npos);
  CHECK_FALSE(st.annotations["description"].empty());
  CHECK(st.annotations["since"] == T(kT0 - 5 * kSecond));
  CHECK(st.annotations["height"] == "500");

  Posted ooc = Delivered(reqs, "am-1", "NodeOutOfConsensus", "val-a").back();
  CHECK(ooc.labels["severity"] == "critical");  // a signer
  CHECK(ooc.annotations["reason"] == "stalled");
  CHECK(ooc.annotations["chain_head"] == "510");
  CHECK(ooc.annotations["summary"].find("out of consensus (stalled)") != std::string::npos);
  Posted ooc_b = Delivered(reqs, "am-1", "NodeOutOfConsensus", "sentry-b").back();
  CHECK(ooc_b.labels["severity"] == "warning");  // not a signer
  CHECK(ooc_b.starts_at == T(kT0 - 3 * kSecond));
  sink->Close();
  CHECK(Counter(f.metrics, "received") == 4);
  CHECK(Counter(f.metrics, "errors") == 0);
}

TEST_CASE("generatorURL is left out when not configured; one alert per (alertname, chain, node)") {
  Fixture f;
  SinkConfig c = f.Config();
  c.generator_url.clear();
  auto sink = f.Make(c);
  NodeStatus a = Node("val-a");
  Stall(a, kT0);
  // The same node twice in a snapshot still makes one alert.
  sink->OnStatus(f.Snap({a, a}));
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", kT0 + kHold); }));
  auto reqs = f.net.CopyRequests();
  for (const Request& r : reqs) {
    std::set<std::string> seen;
    for (const Posted& p : r.alerts) {
      CHECK_FALSE(p.has_generator_url);
      std::string key = p.labels.at("alertname") + "|" +
                        (p.labels.count("node") ? p.labels.at("node") : std::string());
      CHECK_MESSAGE(seen.insert(key).second, key);
    }
  }
  sink->Close();
}

TEST_CASE("label values are sanitised; chain-level alerts have no node label") {
  Fixture f;
  SinkConfig c = f.Config();
  c.labels = {{"region", std::string("eu\x01-1\xff")}};
  auto sink = f.Make(c);
  NodeStatus a = Node(std::string("val\x02\x7f-a\xc3") + std::string(900, 'x'));
  a.namespace_.clear();
  Stall(a, kT0);
  Status s = f.Snap({a});
  s.chains[0].halted = true;
  s.chains[0].halt_height = 77;
  s.chains[0].halted_at = kT0 - kSecond;
  sink->OnStatus(s);
  REQUIRE(f.Wait([&](const auto& r) {
    return !Delivered(r, "am-1", "NodeStalled").empty() &&
           !Delivered(r, "am-1", "ChainHalted").empty();
  }));
  auto reqs = f.net.CopyRequests();
  Posted st = Delivered(reqs, "am-1", "NodeStalled").back();
  const std::string& node = st.labels.at("node");
  CHECK(IsValidUtf8(node));
  CHECK(node.size() <= 512);
  CHECK(node.rfind("val  -a\xEF\xBF\xBDxxx", 0) == 0);
  CHECK(node.substr(node.size() - 3) == "...");
  CHECK(std::none_of(node.begin(), node.end(),
                     [](char ch) { return static_cast<unsigned char>(ch) < 0x20; }));
  CHECK(st.labels.count("namespace") == 0);  // unknown: absent
  CHECK(st.labels.at("region") == "eu -1\xEF\xBF\xBD");
  Posted halt = Delivered(reqs, "am-1", "ChainHalted").back();
  CHECK(halt.labels.count("node") == 0);
  CHECK(halt.labels.at("chain") == kChain);
  CHECK(halt.labels.at("severity") == "warning");
  CHECK(halt.starts_at == T(kT0 - kSecond));
  CHECK(halt.annotations.at("height") == "77");
  sink->Close();
}

TEST_CASE("firing alerts are re-sent every resend_interval with a later endsAt") {
  Fixture f;
  auto sink = f.Make(f.Config());
  NodeStatus a = Node("val-a");
  Stall(a, kT0 - kSecond);
  f.clock.Advance(kSecond);
  Nanos t1 = f.clock.Now();
  sink->OnStatus(f.Snap({a}));
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", t1 + kHold); }));
  for (int round = 1; round <= 2; ++round) {
    f.clock.Advance(kResend);
    Nanos now = f.clock.Now();
    sink->OnStatus(f.Snap({a}));
    REQUIRE_MESSAGE(f.Wait([&](const auto& r) {
      return Has(r, "am-1", "NodeStalled", "val-a", now + kHold, kT0 - kSecond) &&
             Has(r, "am-1", "NodeOutOfConsensus", "val-a", now + kHold) &&
             Has(r, "am-1", "Watchdog", "", now + kHold, kT0);
    }),
                    "re-send round " << round);
  }
  sink->Close();
  CHECK(Counter(f.metrics, "received") == 2);  // two alerts started; re-sends are no changes
}

TEST_CASE("a resolved alert is sent at once with endsAt = now, then forgotten") {
  Fixture f;
  auto sink = f.Make(f.Config());
  NodeStatus a = Node("val-a");
  Stall(a, kT0);
  sink->OnStatus(f.Snap({a}));
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", kT0 + kHold); }));
  f.clock.Advance(5 * kSecond);
  Nanos resolved = f.clock.Now();
  NodeStatus ok = Node("val-a");
  ok.last_advance = resolved;
  sink->OnStatus(f.Snap({ok}));
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "NodeStalled", "val-a", resolved, kT0) &&
           Has(r, "am-1", "NodeOutOfConsensus", "val-a", resolved, kT0);
  }));
  // The next re-send carries the Watchdog but no longer the resolved alerts.
  f.clock.Advance(kResend);
  Nanos now = f.clock.Now();
  sink->OnStatus(f.Snap({ok}));
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "Watchdog", "", now + kHold); }));
  auto stalled = Delivered(f.net.CopyRequests(), "am-1", "NodeStalled");
  CHECK(stalled.back().ends_at == T(resolved));
  sink->Close();
  CHECK(Counter(f.metrics, "received") == 4);  // 2 started, 2 ended
}

TEST_CASE("every URL gets every alert while another fails; failures are logged rate-limited") {
  Fixture f;
  f.net.SetStatus("am-2", 0);  // connection refused
  auto sink = f.Make(f.Config({"http://am-1:9093", "http://user:secret@am-2:9093"}));
  NodeStatus a = Node("val-a");
  Stall(a, kT0);
  sink->OnStatus(f.Snap({a}));
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "NodeStalled", "val-a", kT0 + kHold) &&
           Has(r, "am-1", "Watchdog", "", kT0 + kHold) && Failed(r, "am-2") >= 1;
  }));
  // More failures within a minute: backoff 1, 2, 4 s; one log line. Each
  // failure is settled (its retry time fixed) before the clock moves on.
  for (int k = 1; k <= 3; ++k) {
    REQUIRE(Eventually([&] { return Counter(f.metrics, "errors") >= k; }));
    f.clock.Advance((Nanos{1} << (k - 1)) * kSecond);
    sink->OnStatus(f.Snap({a}));
    REQUIRE(f.Wait([&](const auto& r) { return Failed(r, "am-2") >= k + 1; }));
  }
  REQUIRE(Eventually([&] { return Counter(f.metrics, "errors") >= 4; }));
  REQUIRE(f.net.WaitUntil([&] { return CountLogs(f.net.logs(), "am-2") >= 1; }));
  auto logs = f.net.CopyLogs();
  CHECK(CountLogs(logs, "am-2:9093: delivery failed: Failed to connect") == 1);
  CHECK(CountLogs(logs, "secret") == 0);
  CHECK(CountLogs(logs, "am-1") == 0);
  // A minute later the next failure is logged again.
  f.clock.Advance(61 * kSecond);
  sink->OnStatus(f.Snap({a}));
  REQUIRE(
      f.net.WaitUntil([&] { return CountLogs(f.net.logs(), "failed attempts in a row") >= 1; }));
  // am-2 comes back: it gets every alert.
  f.net.SetStatus("am-2", 200);
  f.clock.Advance(31 * kSecond);
  sink->OnStatus(f.Snap({a}));
  REQUIRE(f.Wait([&](const auto& r) {
    return !Delivered(r, "am-2", "NodeStalled", "val-a").empty() &&
           !Delivered(r, "am-2", "NodeOutOfConsensus", "val-a").empty() &&
           !Delivered(r, "am-2", "Watchdog").empty();
  }));
  REQUIRE(f.net.WaitUntil([&] { return CountLogs(f.net.logs(), "delivering again") == 1; }));
  sink->Close();
  auto reqs = f.net.CopyRequests();
  CHECK(Counter(f.metrics, "errors") == Failed(reqs, "am-2"));
  CHECK(Failed(reqs, "am-1") == 0);
  // processed counts each alert delivered to each URL.
  size_t delivered = 0;
  for (const Request& r : reqs) delivered += r.ok ? r.alerts.size() : 0;
  CHECK(Counter(f.metrics, "processed") == delivered);
}

TEST_CASE("retries back off exponentially and deliver the latest state per alert") {
  Fixture f;
  f.net.SetStatus("am-1", 503);
  auto sink = f.Make(f.Config());
  REQUIRE(f.Wait([](const auto& r) { return Failed(r, "am-1") >= 1; }));
  REQUIRE(Eventually([&] { return Counter(f.metrics, "errors") >= 1; }));
  NodeStatus a = Node("val-a");
  // While failing: val-a stalls, then recovers. Only its latest state (the
  // resolve) is kept for the next attempt.
  Stall(a, kT0);
  sink->OnStatus(f.Snap({a}));
  f.clock.Advance(kSecond / 4);
  Nanos resolved = f.clock.Now();
  NodeStatus ok = Node("val-a");
  sink->OnStatus(f.Snap({ok}));
  for (int k = 1; k <= 3; ++k) {
    // Failure k settled (its retry time fixed) before the clock moves.
    REQUIRE(Eventually([&] { return Counter(f.metrics, "errors") >= k; }));
    f.clock.Set(f.net.CopyRequests().back().at + (Nanos{1} << (k - 1)) * kSecond);
    sink->OnStatus(f.Snap({ok}));
    REQUIRE(f.Wait([&](const auto& r) { return Failed(r, "am-1") >= k + 1; }));
  }
  REQUIRE(Eventually([&] { return Counter(f.metrics, "errors") >= 4; }));
  auto reqs = f.net.CopyRequests();
  REQUIRE(reqs.size() == 4);
  // The clock moved only when the test stepped it: a retry came exactly
  // when its backoff (1, 2, 4 s) had passed, not earlier.
  CHECK(reqs[1].at - reqs[0].at == 1 * kSecond);
  CHECK(reqs[2].at - reqs[1].at == 2 * kSecond);
  CHECK(reqs[3].at - reqs[2].at == 4 * kSecond);
  size_t failed_before = reqs.size();
  // The Alertmanager comes back: the next attempt, 8 s later, delivers the
  // Watchdog and the resolve, each once.
  f.net.SetStatus("am-1", 200);
  f.clock.Set(reqs[3].at + 8 * kSecond);
  sink->OnStatus(f.Snap({ok}));
  REQUIRE(f.Wait([&](const auto& r) { return r.size() > failed_before; }));
  reqs = f.net.CopyRequests();
  const Request& first_ok = reqs[failed_before];
  REQUIRE(first_ok.ok);
  int stalled = 0, watchdog = 0;
  for (const Posted& p : first_ok.alerts) {
    if (p.labels.at("alertname") == "NodeStalled") {
      ++stalled;
      CHECK(p.ends_at == T(resolved));
    }
    watchdog += p.labels.at("alertname") == "Watchdog" ? 1 : 0;
  }
  CHECK(stalled == 1);
  CHECK(watchdog == 1);
  CHECK(first_ok.at - reqs[3].at == 8 * kSecond);
  sink->Close();
  CHECK(Counter(f.metrics, "dropped") == 0);
}

TEST_CASE("a batch Alertmanager rejects (HTTP 400) is dropped, not retried forever") {
  Fixture f;
  f.net.SetStatus("am-1", 400);
  auto sink = f.Make(f.Config());
  REQUIRE(f.Wait([](const auto& r) { return Failed(r, "am-1") >= 1; }));
  REQUIRE(f.net.WaitUntil([&] { return CountLogs(f.net.logs(), "rejected") >= 1; }));
  CHECK(CountLogs(f.net.CopyLogs(), "HTTP 400: fake failure") == 1);
  CHECK(Counter(f.metrics, "dropped") == 1);  // the Watchdog of that batch
  f.net.SetStatus("am-1", 200);
  NodeStatus a = Node("val-a");
  Stall(a, kT0);
  f.clock.Advance(2 * kSecond);  // past the backoff
  Nanos now = f.clock.Now();
  sink->OnStatus(f.Snap({a}));
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", now + kHold); }));
  sink->Close();
}

TEST_CASE("a hanging Alertmanager blocks neither OnStatus nor the other URL") {
  Fixture f;
  f.net.SetBlocked("am-1", true);
  auto sink = f.Make(f.Config({"http://am-1:9093", "http://am-2:9093"}));
  REQUIRE(f.net.WaitUntil([&] { return f.net.in_flight("am-1") == 1; }));
  NodeStatus a = Node("val-a");
  Stall(a, kT0);
  // Returns although am-1's thread is stuck in a request.
  sink->OnStatus(f.Snap({a}));
  sink->Write(Event{});
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-2", "NodeStalled", "val-a", kT0 + kHold); }));
  CHECK(Delivered(f.net.CopyRequests(), "am-1", "Watchdog").empty());
  f.net.SetBlocked("am-1", false);
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", kT0 + kHold); }));
  sink->Close();
}

TEST_CASE("Close is bounded when an Alertmanager accepts connections and never answers") {
  // A real listener on loopback (libcurl, as in production) that never
  // accepts: the kernel completes connections, nobody answers.
  qw::testing::SilentListener hung;
  Fixture f;
  SinkConfig c = f.Config({hung.url()});
  c.timeout = 600 * kSecond;
  SinkContext ctx = f.Ctx();
  ctx.make_transport = nullptr;
  auto made = AlertmanagerSink::Create(c, ctx);
  REQUIRE(made);
  auto sink = std::move(*made);
  // The Watchdog's POST is in flight once its connection is queued.
  hung.Accept();
  const auto start = std::chrono::steady_clock::now();
  sink->Close();
  // A hang guard, not a speed test: without cancellation Close waited out
  // the 600 s request timeout.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(300));
  CHECK(CountLogs(f.net.CopyLogs(), "undelivered at shutdown") == 1);
}

TEST_CASE("more alerts than one batch: several POSTs, every alert delivered") {
  Fixture f;
  auto sink = f.Make(f.Config());
  std::vector<NodeStatus> nodes;
  for (int i = 0; i < 150; ++i) {
    nodes.push_back(Node("val-" + std::to_string(i)));
    Stall(nodes.back(), kT0);
  }
  sink->OnStatus(f.Snap(nodes));
  REQUIRE(f.Wait([&](const auto& r) {
    return Delivered(r, "am-1", "NodeStalled").size() == 150 &&
           Delivered(r, "am-1", "NodeOutOfConsensus").size() == 150;
  }));
  for (const Request& r : f.net.CopyRequests()) CHECK(r.alerts.size() <= 64);
  sink->Close();
}

TEST_CASE("restart: firing alerts are re-sent, alerts that ended while down are resolved") {
  Fixture f;
  NodeStatus a = Node("val-a");
  Stall(a, kT0 - kSecond);
  NodeStatus b = Node("sentry-b", false);
  b.in_consensus = false;
  b.out_of_consensus = true;
  b.out_of_consensus_since = kT0 - 2 * kSecond;
  b.out_of_consensus_reason = "lagging";
  NodeStatus c = Node("val-c");
  c.missed_window = 100;
  c.missed_max = 5;
  c.missed_in_window = 9;  // no own start time: first seen at kT0
  {
    auto sink = f.Make(f.Config());
    sink->OnStatus(f.Snap({a, b, c}));
    REQUIRE(f.Wait([&](const auto& r) {
      return Has(r, "am-1", "NodeStalled", "val-a", kT0 + kHold) &&
             Has(r, "am-1", "NodeOutOfConsensus", "sentry-b", kT0 + kHold) &&
             Has(r, "am-1", "ValidatorMissedPrecommits", "val-c", kT0 + kHold, kT0);
    }));
    f.clock.Advance(kSecond);
    sink->Close();
  }
  // Close resolved nothing.
  for (const Request& r : f.net.CopyRequests()) {
    for (const Posted& p : r.alerts) CHECK(p.ends_at > T(f.clock.Now()));
  }
  std::string saved = f.StateFile();
  CHECK(saved.find("\"sentry-b\"") != std::string::npos);
  CHECK(saved.find("\"NodeStalled\"") != std::string::npos);
  CHECK(saved.find("Watchdog") == std::string::npos);

  // Down for 30 s: sentry-b caught up meanwhile, val-a and val-c did not.
  f.net.Clear();
  f.clock.Advance(30 * kSecond);
  Nanos now = f.clock.Now();
  auto sink = f.Make(f.Config());
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "Watchdog", "", now + kHold, now); }));
  // Nothing restored goes out before the first status snapshot.
  for (const Request& r : f.net.CopyRequests()) {
    for (const Posted& p : r.alerts) CHECK(p.labels.at("alertname") == "Watchdog");
  }
  NodeStatus b_ok = Node("sentry-b", false);
  sink->OnStatus(f.Snap({a, b_ok, c}));
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "NodeStalled", "val-a", now + kHold, kT0 - kSecond) &&
           Has(r, "am-1", "NodeOutOfConsensus", "val-a", now + kHold, kT0 - kSecond) &&
           Has(r, "am-1", "ValidatorMissedPrecommits", "val-c", now + kHold, kT0) &&
           Has(r, "am-1", "NodeOutOfConsensus", "sentry-b", now, kT0 - 2 * kSecond);
  }));
  Posted resolved =
      Delivered(f.net.CopyRequests(), "am-1", "NodeOutOfConsensus", "sentry-b").back();
  CHECK(resolved.labels.at("severity") == "warning");  // the label set it fired with
  sink->Close();
  saved = f.StateFile();
  CHECK(saved.find("\"sentry-b\"") == std::string::npos);
  CHECK(saved.find("\"val-a\"") != std::string::npos);
}

TEST_CASE("a damaged state file: the previous generation is read instead, and an ended alert resolved") {
  Fixture f;
  NodeStatus b = Node("sentry-b", false);
  b.in_consensus = false;
  b.out_of_consensus = true;
  b.out_of_consensus_since = kT0 - 2 * kSecond;
  b.out_of_consensus_reason = "lagging";
  {
    auto sink = f.Make(f.Config());
    sink->OnStatus(f.Snap({b}));
    REQUIRE(f.Wait([&](const auto& r) {
      return Has(r, "am-1", "NodeOutOfConsensus", "sentry-b", kT0 + kHold);
    }));
    sink->Close();
  }
  std::string good = f.StateFile();
  REQUIRE(good.find("\"sentry-b\"") != std::string::npos);
  // The newest generation torn (a disk fault); the one before it intact.
  std::filesystem::rename(f.state_dir + "/alertmanager.json", f.state_dir + "/alertmanager.json.prev");
  {
    std::ofstream out(f.state_dir + "/alertmanager.json");
    out << good.substr(0, good.size() / 2);
  }
  f.net.Clear();
  f.clock.Advance(30 * kSecond);
  Nanos now = f.clock.Now();
  auto sink = f.Make(f.Config());
  CHECK(CountLogs(f.net.CopyLogs(), "is used instead") == 1);
  // sentry-b recovered while down: its alert is resolved, which needs the
  // restored state.
  sink->OnStatus(f.Snap({Node("sentry-b", false)}));
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "NodeOutOfConsensus", "sentry-b", now, kT0 - 2 * kSecond);
  }));
  sink->Close();
}

TEST_CASE("a damaged state file is reported and ignored") {
  Fixture f;
  {
    std::ofstream out(f.state_dir + "/alertmanager.json");
    out << "{\"alerts\": [garbage";
  }
  auto sink = f.Make(f.Config());
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "Watchdog", "", kT0 + kHold); }));
  CHECK(CountLogs(f.net.CopyLogs(), "alertmanager.json: not valid JSON") == 1);
  sink->OnStatus(f.Snap({Node("val-a")}));
  sink->Close();
}

TEST_CASE("a state file in the earlier layout (one alert a line) is read; the new one is a document") {
  Fixture f;
  const Nanos started = kT0 - 300 * kSecond;
  {
    std::ofstream out(f.state_dir + "/alertmanager.json");
    out << "{\"version\":1,\"alerts\":[\n"
           "{\"labels\":{\"alertname\":\"NodeStalled\",\"chain\":\"cosmoshub\","
           "\"namespace\":\"cosmos-mainnet\",\"node\":\"val-a\",\"region\":\"eu-1\","
           "\"severity\":\"warning\"},\"annotations\":{\"summary\":\"val-a stalled\"},"
           "\"startsAt\":\"" << T(started) << "\"},\n"
           "{\"labels\":{\"alertname\":\"Watchdog\",\"severity\":\"none\"},"
           "\"annotations\":{},\"startsAt\":\"" << T(started) << "\"}]}\n";
  }
  auto sink = f.Make(f.Config());
  // val-a is fine now: the alert restored from the file is resolved at once.
  sink->OnStatus(f.Snap({Node("val-a")}));
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", kT0, started); }));
  Posted resolved = Delivered(f.net.CopyRequests(), "am-1", "NodeStalled", "val-a").back();
  CHECK(resolved.annotations.at("summary") == "val-a stalled");
  CHECK(resolved.labels.at("region") == "eu-1");
  CHECK(f.net.CopyLogs().empty());

  // Firing again: saved as one compact document with a final newline.
  NodeStatus a = Node("val-a");
  Stall(a, kT0);
  sink->OnStatus(f.Snap({a}));
  sink->Close();
  std::string saved = f.StateFile();
  REQUIRE(!saved.empty());
  CHECK(saved.rfind("{\"version\":1,\"alerts\":[{\"labels\":{\"alertname\":", 0) == 0);
  CHECK(saved.find('\n') == saved.size() - 1);
  CHECK(saved.find("\"startsAt\":\"" + T(kT0) + "\"}") != std::string::npos);
  CHECK(saved.find("Watchdog") == std::string::npos);
}

TEST_CASE("every alert kind from the status; retired nodes raise none") {
  Fixture f;
  auto sink = f.Make(f.Config());
  f.clock.Advance(kSecond);
  Nanos now = f.clock.Now();
  NodeStatus retired = Node("gone-0");
  Stall(retired, kT0);
  retired.retired = true;
  retired.banned = true;
  NodeStatus missed = Node("val-m");
  missed.missed_window = 100;
  missed.missed_max = 5;
  missed.missed_in_window = 6;
  NodeStatus under = Node("val-u");  // at the threshold: no alert
  under.missed_window = 100;
  under.missed_max = 5;
  under.missed_in_window = 5;
  NodeStatus failure = Node("val-f");
  failure.consensus_failure = true;
  failure.consensus_failure_at = kT0 - 4 * kSecond;
  failure.consensus_failure_height = 499;
  NodeStatus ds = Node("val-d");
  ds.double_sign = true;
  ds.double_sign_critical = true;
  ds.double_sign_reason = "conflicting_votes";
  ds.double_sign_at = now - 3000 * kSecond;  // runs out 600 s later
  ds.double_sign_height = 480;
  NodeStatus dual = Node("val-e");
  dual.double_sign = true;
  dual.double_sign_reason = "dual_active_signer";
  dual.double_sign_at = now - 60 * kSecond;
  NodeStatus old_ds = Node("val-o");
  old_ds.double_sign = true;
  old_ds.double_sign_critical = true;
  old_ds.double_sign_at = now - 7200 * kSecond;
  NodeStatus banned = Node("val-b");
  banned.banned = true;
  banned.banned_at = kT0 - 7 * kSecond;
  NodeStatus held = Node("val-h");
  held.ban_held = true;
  held.ban_held_rail = "max_bans";
  NodeStatus op_held = Node("val-i");
  op_held.ban_held = true;
  op_held.operator_hold = true;
  op_held.ban_held_rail = "operator_hold";
  Status s = f.Snap({retired, missed, under, failure, ds, dual, old_ds, banned, held, op_held});
  s.health.input_outage = true;
  s.health.last_input = kT0 - 90 * kSecond;
  s.health.bytes_behind = 65ull << 20;
  s.health.files_behind = 2;
  s.health.lines_rejected = 3;
  s.health.event_write_errors = 2;
  s.health.checkpoint_failing = true;
  s.health.checkpoint_errors = 4;
  s.health.checkpoint_error = "/state/checkpoint.json.tmp: No space left on device";
  s.health.ban_outbox_pending = 1;
  s.health.ban_outbox_oldest = now - 600 * kSecond;
  sink->OnStatus(s);
  struct Want {
    const char* name;
    const char* node;
    const char* severity;
  };
  std::vector<Want> want = {
      {"ValidatorMissedPrecommits", "val-m", "warning"},
      {"ConsensusFailure", "val-f", "critical"},
      {"DoubleSignRisk", "val-d", "critical"},
      {"DoubleSignRisk", "val-e", "warning"},
      {"NodeBanned", "val-b", "critical"},
      {"NodeBanHeld", "val-h", "critical"},
      {"NodeBanHeld", "val-i", "warning"},
      {"QuorumwatchInputStalled", "", "warning"},
      {"QuorumwatchLagging", "", "warning"},
      {"QuorumwatchDroppingLines", "", "warning"},
      {"QuorumwatchEventsUnwritten", "", "critical"},
      {"QuorumwatchCheckpointFailing", "", "warning"},
  };
  REQUIRE(f.Wait([&](const auto& r) {
    for (const Want& w : want) {
      if (!Has(r, "am-1", w.name, w.node, now + kHold)) return false;
    }
    return true;
  }));
  auto reqs = f.net.CopyRequests();
  for (const Want& w : want) {
    Posted p = Delivered(reqs, "am-1", w.name, w.node).back();
    CHECK_MESSAGE(p.labels.at("severity") == w.severity, w.name << " " << w.node);
    CHECK_MESSAGE(p.labels.count("node") == (w.node[0] != '\0' ? 1u : 0u), w.name);
    CHECK_MESSAGE(!p.annotations["summary"].empty(), w.name);
  }
  CHECK(Delivered(reqs, "am-1", "ConsensusFailure").back().starts_at == T(kT0 - 4 * kSecond));
  CHECK(Delivered(reqs, "am-1", "ConsensusFailure").back().annotations.at("height") == "499");
  CHECK(Delivered(reqs, "am-1", "DoubleSignRisk", "val-d").back().annotations.at("reason") ==
        "conflicting_votes");
  CHECK(Delivered(reqs, "am-1", "NodeBanned").back().starts_at == T(kT0 - 7 * kSecond));
  CHECK(Delivered(reqs, "am-1", "NodeBanHeld", "val-h").back().annotations.at("rail") ==
        "max_bans");
  CHECK(Delivered(reqs, "am-1", "ValidatorMissedPrecommits", "val-u").empty());
  CHECK(Delivered(reqs, "am-1", "DoubleSignRisk", "val-o").empty());
  for (const Request& r : reqs) {
    for (const Posted& p : r.alerts) {
      bool retired = p.labels.count("node") && p.labels.at("node") == "gone-0";
      CHECK_MESSAGE(!retired, p.labels.at("alertname"));
    }
  }
  // The outbox was first seen now: undelivered for over 2 minutes later.
  CHECK(Delivered(reqs, "am-1", "QuorumwatchBanUndelivered").empty());
  f.clock.Advance(121 * kSecond);
  Nanos later = f.clock.Now();
  s.now = s.detector_time = later;
  sink->OnStatus(s);
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "QuorumwatchBanUndelivered", "", later + kHold, later);
  }));
  CHECK(Delivered(f.net.CopyRequests(), "am-1", "QuorumwatchBanUndelivered")
            .back()
            .labels.at("severity") == "critical");
  // Ten minutes without a new bad line: DroppingLines resolves; the
  // double-sign alert lasts an hour after its risk.
  f.clock.Advance(600 * kSecond);
  Nanos end = f.clock.Now();
  s.now = s.detector_time = end;
  sink->OnStatus(s);
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "QuorumwatchDroppingLines", "", end) &&
           Has(r, "am-1", "QuorumwatchEventsUnwritten", "", end) &&
           Has(r, "am-1", "DoubleSignRisk", "val-d", end) &&
           Has(r, "am-1", "DoubleSignRisk", "val-e", end + kHold);
  }));
  sink->Close();
}

TEST_CASE("no status snapshots for long: nothing is re-sent, so the Watchdog runs out") {
  Fixture f;
  auto sink = f.Make(f.Config());
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "Watchdog", "", kT0 + kHold); }));
  // Three resend intervals pass without a status snapshot (the detector is
  // wedged): the delivery thread stops re-sending and says so.
  f.clock.Advance(3 * kResend + kSecond);
  REQUIRE(f.net.WaitUntil([&] { return CountLogs(f.net.logs(), "no longer re-sent") == 1; }));
  CHECK(Delivered(f.net.CopyRequests(), "am-1", "Watchdog").size() == 1);
  // Snapshots again: every firing alert is re-sent at once, and re-sending
  // resumes.
  Nanos now = f.clock.Now();
  sink->OnStatus(f.Snap({}));
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "Watchdog", "", now + kHold); }));
  f.clock.Advance(kResend);
  sink->OnStatus(f.Snap({}));
  REQUIRE(
      f.Wait([&](const auto& r) { return Has(r, "am-1", "Watchdog", "", now + kResend + kHold); }));
  CHECK(CountLogs(f.net.CopyLogs(), "status snapshots again") == 1);
  sink->Close();
}

TEST_CASE("while history is read (not caught up) nothing fires or resolves from the state") {
  Fixture f;
  auto sink = f.Make(f.Config());
  NodeStatus a = Node("val-a");
  Stall(a, kT0 - 5 * kSecond);
  Status catching_up = f.Snap({a});
  catching_up.health.caught_up = false;
  sink->OnStatus(catching_up);
  // The Watchdog goes out; the past stall does not.
  REQUIRE(f.Wait([](const auto& r) { return Has(r, "am-1", "Watchdog", "", kT0 + kHold); }));
  f.clock.Advance(kResend + kSecond);
  sink->OnStatus(catching_up);
  Nanos resend_at = f.clock.Now();
  REQUIRE(f.Wait([&](const auto& r) {
    return Has(r, "am-1", "Watchdog", "", resend_at + kHold);
  }));
  CHECK(Delivered(f.net.CopyRequests(), "am-1", "NodeStalled", "val-a").empty());
  // Caught up, the same state fires.
  f.clock.Advance(kSecond);
  Nanos now = f.clock.Now();
  sink->OnStatus(f.Snap({a}));
  REQUIRE(f.Wait([&](const auto& r) { return Has(r, "am-1", "NodeStalled", "val-a", now + kHold); }));
  sink->Close();
}

}  // namespace
}  // namespace qw::sink
