// MetricsSink: rendered families from status snapshots, /healthz, /readyz
// and slow or many clients, against the real HTTP server on loopback. One
// file of ~680 lines: the cases share the scrape helpers and fixture.
#include "sink/metrics_sink.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"

using namespace qw;
using namespace qw::sink;

namespace {

constexpr Nanos kT0 = 1'700'000'000LL * kSecond;

// ---------------------------------------------------------------------------
// A strict reader of the Prometheus text format (0.0.4): every line must be
// a HELP, a TYPE or a sample; a sample's family must be typed first; no
// series may appear twice. Anything else is an error naming the line.

struct Scrape {
  std::map<std::string, double> samples;     // SeriesKey(...) -> value
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, std::string> helps;  // family -> help (unescaped)
  std::string error;                         // "" when the text is well formed
};

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

// The identity of a series: its name and its labels in name order.
std::string SeriesKey(const std::string& name, MetricLabels labels) {
  std::sort(labels.begin(), labels.end());
  std::string k = name + "{";
  for (const auto& [n, v] : labels) k += n + "=" + v + "\x1f";
  return k + "}";
}

bool ParseValue(const std::string& s, double* out) {
  if (s == "NaN" || s == "+Inf" || s == "-Inf") {
    *out = s == "NaN" ? std::nan("") : (s[0] == '+' ? HUGE_VAL : -HUGE_VAL);
    return true;
  }
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// Parses `name{labels} value` at `line`; "" or an error.
std::string ParseSample(const std::string& line, std::string* name, MetricLabels* labels,
                        double* value) {
  size_t i = 0;
  if (i >= line.size() || !IsNameStart(line[i])) return "bad metric name";
  while (i < line.size() && IsNameChar(line[i])) ++i;
  *name = line.substr(0, i);
  if (i < line.size() && line[i] == '{') {
    ++i;
    std::set<std::string> seen;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t start = i;
      if (i >= line.size() || !IsNameStart(line[i]) || line[i] == ':') return "bad label name";
      while (i < line.size() && IsNameChar(line[i]) && line[i] != ':') ++i;
      std::string lname = line.substr(start, i - start);
      if (!seen.insert(lname).second) return "label " + lname + " twice";
      if (line.compare(i, 2, "=\"") != 0) return "expected =\" after label " + lname;
      i += 2;
      std::string v;
      while (true) {
        if (i >= line.size()) return "unterminated label value";
        char c = line[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= line.size()) return "bad escape";
          char e = line[i++];
          if (e == '\\') {
            v += '\\';
          } else if (e == '"') {
            v += '"';
          } else if (e == 'n') {
            v += '\n';
          } else {
            return "bad escape \\" + std::string(1, e);
          }
        } else if (c == '\n') {
          return "raw newline in label value";
        } else {
          v += c;
        }
      }
      labels->emplace_back(lname, v);
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        return "expected , or } after a label";
      }
    }
  }
  if (i >= line.size() || line[i] != ' ') return "expected one space before the value";
  std::string rest = line.substr(i + 1);
  std::string v = rest.substr(0, rest.find(' '));
  if (!ParseValue(v, value)) return "bad value '" + v + "'";
  if (v.size() < rest.size()) {
    std::string ts = rest.substr(v.size() + 1);
    if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos) {
      return "bad timestamp";
    }
  }
  return "";
}

Scrape ParseText(const std::string& text) {
  Scrape s;
  if (!text.empty() && text.back() != '\n') {
    s.error = "text does not end with a newline";
    return s;
  }
  std::set<std::string> sampled_families;
  size_t pos = 0;
  int n = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++n;
    auto fail = [&](const std::string& why) {
      s.error = "line " + std::to_string(n) + " '" + line + "': " + why;
    };
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      bool help = line[2] == 'H';
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      if (name.empty() || !IsNameStart(name[0]) ||
          !std::all_of(name.begin(), name.end(), IsNameChar)) {
        fail("bad family name");
        return s;
      }
      std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
      if (help) {
        if (s.helps.count(name)) {
          fail("HELP twice");
          return s;
        }
        std::string h;
        for (size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] == '\\' && i + 1 < arg.size() && (arg[i + 1] == '\\' || arg[i + 1] == 'n')) {
            h += arg[i + 1] == 'n' ? '\n' : '\\';
            ++i;
          } else if (arg[i] == '\\') {
            fail("bad escape in HELP");
            return s;
          } else {
            h += arg[i];
          }
        }
        s.helps[name] = h;
      } else {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.count(arg)) {
          fail("unknown type");
          return s;
        }
        if (s.types.count(name) || sampled_families.count(name)) {
          fail("TYPE twice or after samples");
          return s;
        }
        s.types[name] = arg;
      }
      continue;
    }
    if (line.empty() || line[0] == '#') {
      fail("neither HELP, TYPE nor a sample");
      return s;
    }
    std::string name;
    MetricLabels labels;
    double value = 0;
    if (std::string why = ParseSample(line, &name, &labels, &value); !why.empty()) {
      fail(why);
      return s;
    }
    if (!s.types.count(name)) {
      fail("sample without a TYPE line");
      return s;
    }
    sampled_families.insert(name);
    if (!s.samples.emplace(SeriesKey(name, labels), value).second) {
      fail("series twice");
      return s;
    }
  }
  return s;
}

bool Has(const Scrape& s, const std::string& name, const MetricLabels& labels) {
  return s.samples.count(SeriesKey(name, labels)) > 0;
}

double Get(const Scrape& s, const std::string& name, const MetricLabels& labels) {
  auto it = s.samples.find(SeriesKey(name, labels));
  if (it == s.samples.end()) {
    FAIL_CHECK("missing series " << name << RenderLabels(labels));
    return -12345;
  }
  return it->second;
}

// ---------------------------------------------------------------------------
// A sink on 127.0.0.1:0 with a manual clock and a captured log.

struct Fixture {
  Metrics metrics;
  ManualClock clock{kT0};
  std::mutex log_mu;
  std::vector<std::string> log_lines;  // guarded by log_mu
  SinkContext ctx;
  SinkConfig config;

  Fixture() {
    ctx.state_dir = "/nonexistent";
    ctx.metrics = &metrics;
    ctx.clock = &clock;
    ctx.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu);
      log_lines.push_back(line);
    };
    config.type = "metrics";
    config.listen = "127.0.0.1:0";
    config.file = "qw.yaml";
    config.line = 7;
  }

  std::vector<std::string> Logged() {
    std::lock_guard<std::mutex> lock(log_mu);
    return log_lines;
  }
};

std::unique_ptr<MetricsSink> MustCreate(Fixture& f) {
  auto r = MetricsSink::Create(f.config, f.ctx);
  if (!r) FAIL("Create: " << r.error().message);
  return std::move(*r);
}

httplib::Result Fetch(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(5);
  return cli.Get(path.c_str());
}

Scrape ScrapeMetrics(int port) {
  auto res = Fetch(port, "/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  Scrape s = ParseText(res->body);
  INFO(res->body);
  REQUIRE(s.error == "");
  return s;
}

NodeStatus Node(const std::string& name, int64_t height, Nanos last_advance) {
  NodeStatus n;
  n.chain = "cosmoshub";
  n.family = "cometbft";
  n.namespace_ = "cosmos";
  n.node = name;
  n.height = height;
  n.last_advance = last_advance;
  n.in_consensus = height >= 0;
  return n;
}

Status BaseStatus(Nanos now) {
  Status s;
  s.now = now;
  NodeStatus a = Node("val-a", 1200, now - 2500 * kMillisecond);
  a.signer = true;
  a.missed_total = 3;
  NodeStatus b = Node("val-b", -1, kNoTime);  // no commit seen yet
  b.stalled = true;
  b.out_of_consensus = true;
  b.ban_held = true;
  NodeStatus gone = Node("val-old", 900, now - 100 * kSecond);
  gone.retired = true;
  gone.in_consensus = false;
  NodeStatus plain = Node("sentry", 1199, now - 1 * kSecond);
  plain.namespace_ = "";  // no Kubernetes names: replay-style node
  plain.banned = true;
  s.nodes = {a, b, gone, plain};
  ChainStatus c;
  c.name = "cosmoshub";
  c.family = "cometbft";
  c.head = 1200;
  ChainStatus halted;
  halted.name = "terra";
  halted.family = "cometbft";
  halted.halted = true;  // and no head known
  s.chains = {c, halted};
  s.health.bytes_behind = 123456;
  s.health.event_write_errors = 4;
  s.health.files_behind = 2;
  s.health.ban_outbox_pending = 1;
  return s;
}

Event MakeEvent(EventKind kind, Severity sev, const std::string& chain) {
  Event e;
  e.time = kT0;
  e.kind = kind;
  e.severity = sev;
  e.chain = chain;
  e.node = "val-a";
  return e;
}

}  // namespace

TEST_CASE("the sink binds 127.0.0.1:0, logs the port and serves the status as gauges") {
  Fixture f;
  auto sink = MustCreate(f);
  REQUIRE(sink->port() > 0);
  auto logged = f.Logged();
  REQUIRE(logged.size() == 1);
  CHECK(logged[0] == "metrics: listening on 127.0.0.1:" + std::to_string(sink->port()));

  // Before any status: only the sink's own counters.
  Scrape s0 = ScrapeMetrics(sink->port());
  CHECK(!s0.types.count("quorumwatch_node_height"));
  CHECK(Has(s0, "quorumwatch_component_processed_total",
            {{"kind", "sink"}, {"component", "metrics"}}));

  sink->OnStatus(BaseStatus(kT0));
  Scrape s = ScrapeMetrics(sink->port());
  MetricLabels a = {{"chain", "cosmoshub"}, {"namespace", "cosmos"}, {"node", "val-a"}};
  MetricLabels b = {{"chain", "cosmoshub"}, {"namespace", "cosmos"}, {"node", "val-b"}};
  MetricLabels old = {{"chain", "cosmoshub"}, {"namespace", "cosmos"}, {"node", "val-old"}};
  MetricLabels sentry = {{"chain", "cosmoshub"}, {"namespace", ""}, {"node", "sentry"}};

  CHECK(s.types["quorumwatch_node_height"] == "gauge");
  CHECK(s.types["quorumwatch_missed_precommits_total"] == "counter");
  CHECK(!s.helps["quorumwatch_node_height"].empty());

  CHECK(Get(s, "quorumwatch_node_height", a) == 1200);
  CHECK(Get(s, "quorumwatch_node_height", sentry) == 1199);
  CHECK(!Has(s, "quorumwatch_node_height", b));  // height unknown: absent
  CHECK(Get(s, "quorumwatch_node_in_consensus", a) == 1);
  CHECK(Get(s, "quorumwatch_node_in_consensus", b) == 0);
  CHECK(Get(s, "quorumwatch_node_seconds_since_commit", a) == doctest::Approx(2.5));
  CHECK(Get(s, "quorumwatch_node_seconds_since_commit", sentry) == doctest::Approx(1.0));
  CHECK(!Has(s, "quorumwatch_node_seconds_since_commit", b));  // no commit yet
  CHECK(Get(s, "quorumwatch_missed_precommits_total", a) == 3);
  CHECK(!Has(s, "quorumwatch_missed_precommits_total", b));  // not a signer
  CHECK(Get(s, "quorumwatch_node_out_of_consensus", a) == 0);
  CHECK(Get(s, "quorumwatch_node_out_of_consensus", b) == 1);
  CHECK(Get(s, "quorumwatch_node_stalled", b) == 1);
  CHECK(Get(s, "quorumwatch_node_stalled", a) == 0);
  CHECK(Get(s, "quorumwatch_node_banned", sentry) == 1);
  CHECK(Get(s, "quorumwatch_node_banned", a) == 0);
  CHECK(Get(s, "quorumwatch_node_ban_held", b) == 1);
  // A retired node has no series at all.
  for (const auto& [key, v] : s.samples) CHECK(key.find("val-old") == std::string::npos);
  CHECK(!Has(s, "quorumwatch_node_in_consensus", old));

  CHECK(Get(s, "quorumwatch_chain_head_height", {{"chain", "cosmoshub"}}) == 1200);
  CHECK(!Has(s, "quorumwatch_chain_head_height", {{"chain", "terra"}}));
  CHECK(Get(s, "quorumwatch_chain_halted", {{"chain", "cosmoshub"}}) == 0);
  CHECK(Get(s, "quorumwatch_chain_halted", {{"chain", "terra"}}) == 1);

  CHECK(Get(s, "quorumwatch_bytes_behind", {}) == 123456);
  CHECK(Get(s, "quorumwatch_files_behind", {}) == 2);
  CHECK(Get(s, "quorumwatch_input_outage", {}) == 0);
  CHECK(Get(s, "quorumwatch_ban_outbox_pending", {}) == 1);
  CHECK(Get(s, "quorumwatch_caught_up", {}) == 0);
  CHECK(Get(s, "quorumwatch_event_write_errors", {}) == 4);

  // The registry holds the same values (what other readers see).
  CHECK(f.metrics.Value("quorumwatch_node_height", a) == 1200);
  sink->Close();
}

TEST_CASE("each status replaces the node series: retired and vanished nodes drop out") {
  Fixture f;
  auto sink = MustCreate(f);
  sink->OnStatus(BaseStatus(kT0));
  MetricLabels a = {{"chain", "cosmoshub"}, {"namespace", "cosmos"}, {"node", "val-a"}};
  MetricLabels b = {{"chain", "cosmoshub"}, {"namespace", "cosmos"}, {"node", "val-b"}};
  CHECK(Has(ScrapeMetrics(sink->port()), "quorumwatch_node_height", a));

  Status next = BaseStatus(kT0 + kSecond);
  next.nodes[0].retired = true;  // val-a's file was removed
  next.nodes[0].in_consensus = false;
  next.nodes.erase(next.nodes.begin() + 3);  // sentry gone from the snapshot
  next.nodes[1].height = 5;                  // val-b got a height
  next.nodes[1].last_advance = kT0;
  Scrape s;
  sink->OnStatus(next);
  s = ScrapeMetrics(sink->port());
  for (const auto& [key, v] : s.samples) {
    CHECK(key.find("val-a") == std::string::npos);
    CHECK(key.find("sentry") == std::string::npos);
  }
  CHECK(Get(s, "quorumwatch_node_height", b) == 5);
  CHECK(Get(s, "quorumwatch_node_seconds_since_commit", b) == doctest::Approx(1.0));
  // val-a was the only signer: the family stays declared, without series.
  CHECK(s.types["quorumwatch_missed_precommits_total"] == "counter");

  // A log stamp ahead of the host clock is no negative age.
  Status ahead = BaseStatus(kT0);
  ahead.nodes[0].last_advance = kT0 + 3 * kSecond;
  sink->OnStatus(ahead);
  CHECK(Get(ScrapeMetrics(sink->port()), "quorumwatch_node_seconds_since_commit", a) == 0);
}

TEST_CASE("events are counted by kind, severity and chain; the component counters add up") {
  Fixture f;
  auto sink = MustCreate(f);
  sink->Write(MakeEvent(EventKind::kMissedPrecommit, Severity::kInfo, "cosmoshub"));
  sink->Write(MakeEvent(EventKind::kMissedPrecommit, Severity::kInfo, "cosmoshub"));
  sink->Write(MakeEvent(EventKind::kMissedPrecommit, Severity::kWarning, "cosmoshub"));
  sink->Write(MakeEvent(EventKind::kNodeStalled, Severity::kWarning, "terra"));
  sink->Write(MakeEvent(EventKind::kChainHalted, Severity::kWarning, "odd \"chain\"\\x"));
  sink->Flush();

  Scrape s = ScrapeMetrics(sink->port());
  CHECK(s.types["quorumwatch_events_total"] == "counter");
  CHECK(Get(s, "quorumwatch_events_total",
            {{"event", "missed_precommit"}, {"severity", "info"}, {"chain", "cosmoshub"}}) == 2);
  CHECK(Get(s, "quorumwatch_events_total",
            {{"event", "missed_precommit"}, {"severity", "warning"}, {"chain", "cosmoshub"}}) == 1);
  CHECK(Get(s, "quorumwatch_events_total",
            {{"event", "node_stalled"}, {"severity", "warning"}, {"chain", "terra"}}) == 1);
  CHECK(Get(s, "quorumwatch_events_total",
            {{"event", "chain_halted"}, {"severity", "warning"}, {"chain", "odd \"chain\"\\x"}}) ==
        1);

  MetricLabels me = {{"kind", "sink"}, {"component", "metrics"}};
  CHECK(Get(s, "quorumwatch_component_received_total", me) == 5);
  // The scrape is counted once it is served: this one rendered 0.
  CHECK(Get(s, "quorumwatch_component_processed_total", me) == 0);
  CHECK(Get(s, "quorumwatch_component_dropped_total", me) == 0);
  CHECK(Get(s, "quorumwatch_component_errors_total", me) == 0);
  CHECK(f.metrics.Value("quorumwatch_component_processed_total", me) == 1);
  ScrapeMetrics(sink->port());
  Scrape third = ScrapeMetrics(sink->port());
  CHECK(Get(third, "quorumwatch_component_processed_total", me) == 2);
  // Probes are not scrapes.
  REQUIRE(Fetch(sink->port(), "/healthz"));
  CHECK(f.metrics.Value("quorumwatch_component_processed_total", me) == 3);
}

TEST_CASE("/healthz follows the status snapshots by the context's clock") {
  Fixture f;
  auto sink = MustCreate(f);
  // Fresh start, no snapshot yet: healthy for the first 30 s.
  auto r = Fetch(sink->port(), "/healthz");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ok\n");
  f.clock.Advance(31 * kSecond);
  r = Fetch(sink->port(), "/healthz");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body.find("no status snapshot since start 31s ago") != std::string::npos);

  sink->OnStatus(BaseStatus(f.clock.Now()));
  r = Fetch(sink->port(), "/healthz");
  REQUIRE(r);
  CHECK(r->status == 200);
  f.clock.Advance(30 * kSecond);
  CHECK(Fetch(sink->port(), "/healthz")->status == 200);  // 30 s is still in time
  f.clock.Advance(1 * kSecond);
  r = Fetch(sink->port(), "/healthz");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body.find("no status snapshot for 31s") != std::string::npos);
  CHECK(r->body.find("stuck") != std::string::npos);
  sink->OnStatus(BaseStatus(f.clock.Now()));
  CHECK(Fetch(sink->port(), "/healthz")->status == 200);
}

TEST_CASE("/readyz turns 200 once a caught-up status was seen, and stays") {
  Fixture f;
  auto sink = MustCreate(f);
  auto r = Fetch(sink->port(), "/readyz");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body == "catching up\n");
  Status s = BaseStatus(kT0);
  sink->OnStatus(s);
  CHECK(Fetch(sink->port(), "/readyz")->status == 503);
  s.health.caught_up = true;
  sink->OnStatus(s);
  r = Fetch(sink->port(), "/readyz");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "ok\n");
  CHECK(Get(ScrapeMetrics(sink->port()), "quorumwatch_caught_up", {}) == 1);
  // Falling behind later (a burst of lines) is visible in the gauges, not
  // in readiness.
  s.health.caught_up = false;
  sink->OnStatus(s);
  CHECK(Fetch(sink->port(), "/readyz")->status == 200);
  CHECK(Get(ScrapeMetrics(sink->port()), "quorumwatch_caught_up", {}) == 0);
}

TEST_CASE("other paths are 404; the answer to HEAD has no body") {
  Fixture f;
  auto sink = MustCreate(f);
  auto r = Fetch(sink->port(), "/nothing");
  REQUIRE(r);
  CHECK(r->status == 404);
  httplib::Client cli("127.0.0.1", sink->port());
  auto h = cli.Head("/metrics");
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(h->body.empty());
}

TEST_CASE("Close stops the server and frees the port; Close twice and destruction are safe") {
  Fixture f;
  auto sink = MustCreate(f);
  int port = sink->port();
  REQUIRE(Fetch(port, "/healthz"));
  // A client that keeps its connection open must not hold Close up.
  httplib::Client keep("127.0.0.1", port);
  keep.set_keep_alive(true);
  REQUIRE(keep.Get("/metrics"));
  sink->Close();
  sink->Close();
  auto r = Fetch(port, "/healthz");
  CHECK(!r);
  // The port is free again: a new sink binds it.
  f.config.listen = "127.0.0.1:" + std::to_string(port);
  auto again = MetricsSink::Create(f.config, f.ctx);
  REQUIRE_MESSAGE(again.has_value(), (again ? "" : again.error().message));
  CHECK((*again)->port() == port);
  CHECK(Fetch(port, "/healthz")->status == 200);
  again->reset();  // destruction without Close
  CHECK(!Fetch(port, "/healthz"));
}

TEST_CASE("an unusable address is refused at start with file:line and the reason") {
  Fixture f;
  auto first = MustCreate(f);
  std::string used = "127.0.0.1:" + std::to_string(first->port());
  f.config.listen = used;
  auto r = MetricsSink::Create(f.config, f.ctx);
  REQUIRE(!r);
  CHECK(r.error().message == "qw.yaml:7: cannot listen on " + used + ": Address already in use");
  // The first one still serves.
  CHECK(Fetch(first->port(), "/healthz")->status == 200);

  for (const char* bad :
       {"nonsense", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:80a", "::1:80", "127.0.0.1:-1"}) {
    f.config.listen = bad;
    auto b = MetricsSink::Create(f.config, f.ctx);
    REQUIRE(!b);
    CHECK(b.error().message == std::string("qw.yaml:7: cannot listen on ") + bad +
                                   ": expected host:port (port 0-65535)");
  }
  f.config.listen = "no-such-host.invalid:0";
  auto unresolved = MetricsSink::Create(f.config, f.ctx);
  REQUIRE(!unresolved);
  CHECK(unresolved.error().message.rfind("qw.yaml:7: cannot listen on no-such-host.invalid:0: "
                                         "cannot resolve 'no-such-host.invalid': ",
                                         0) == 0);
  // An address this host does not have (TEST-NET-1).
  f.config.listen = "192.0.2.1:0";
  auto foreign = MetricsSink::Create(f.config, f.ctx);
  REQUIRE(!foreign);
  CHECK(foreign.error().message ==
        "qw.yaml:7: cannot listen on 192.0.2.1:0: Cannot assign requested address");
  // Only the first sink logged.
  CHECK(f.Logged().size() == 1);
}

TEST_CASE("IPv6 addresses in brackets") {
  Fixture f;
  f.config.listen = "[::1]:0";
  auto r = MetricsSink::Create(f.config, f.ctx);
  if (!r) {
    // No IPv6 loopback here: the reason must say so, not be empty.
    MESSAGE("IPv6 unavailable: " << r.error().message);
    CHECK(r.error().message.rfind("qw.yaml:7: cannot listen on [::1]:0: ", 0) == 0);
    return;
  }
  REQUIRE(f.Logged().size() == 1);
  CHECK(f.Logged()[0] == "metrics: listening on [::1]:" + std::to_string((*r)->port()));
  httplib::Client cli("::1", (*r)->port());
  auto res = cli.Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("without a registry in the context the sink keeps its own") {
  Fixture f;
  f.ctx.metrics = nullptr;
  f.ctx.log = nullptr;
  auto sink = MustCreate(f);
  sink->OnStatus(BaseStatus(kT0));
  sink->Write(MakeEvent(EventKind::kBan, Severity::kCritical, "cosmoshub"));
  Scrape s = ScrapeMetrics(sink->port());
  CHECK(Get(s, "quorumwatch_node_height",
            {{"chain", "cosmoshub"}, {"namespace", "cosmos"}, {"node", "val-a"}}) == 1200);
  CHECK(Get(s, "quorumwatch_events_total",
            {{"event", "ban"}, {"severity", "critical"}, {"chain", "cosmoshub"}}) == 1);
  CHECK(f.metrics.Render() == "");
}

TEST_CASE("scrapes stay well formed while the detector thread publishes") {
  Fixture f;
  auto sink = MustCreate(f);
  std::atomic<bool> stop{false};
  std::atomic<int> published{0};
  // The detector thread: statuses with a changing node set, and events.
  std::thread detector([&] {
    for (int i = 0; !stop.load() || i < 50; ++i) {
      Status s = BaseStatus(kT0 + i * kSecond);
      for (int k = 0; k < i % 7; ++k) {
        s.nodes.push_back(Node("extra-" + std::to_string(k), 1000 + i, kT0));
      }
      s.health.caught_up = i > 10;
      sink->OnStatus(s);
      sink->Write(MakeEvent(EventKind::kMissedPrecommit, Severity::kInfo, "cosmoshub"));
      published.fetch_add(1);
      std::this_thread::yield();  // the real detector publishes about once a second
    }
  });
  // Two scrapers at once, each with its own connection. (CHECK, not
  // REQUIRE: an exception must not leave a thread.)
  auto scraper = [&] {
    httplib::Client cli("127.0.0.1", sink->port());
    cli.set_keep_alive(true);
    for (int i = 0; i < 40; ++i) {
      auto res = cli.Get("/metrics");
      bool ok = res && res->status == 200;
      CHECK(ok);
      if (!ok) return;
      Scrape s = ParseText(res->body);
      CHECK_MESSAGE(s.error == "", s.error);
    }
  };
  std::thread s1(scraper), s2(scraper);
  s1.join();
  s2.join();
  stop.store(true);
  detector.join();
  sink->Close();
  CHECK(f.metrics.Value("quorumwatch_component_processed_total",
                        {{"kind", "sink"}, {"component", "metrics"}}) == 80);
  CHECK(f.metrics.Value("quorumwatch_component_received_total",
                        {{"kind", "sink"}, {"component", "metrics"}}) == published.load());
  CHECK(f.metrics.Value("quorumwatch_events_total", {{"event", "missed_precommit"},
                                                     {"severity", "info"},
                                                     {"chain", "cosmoshub"}}) == published.load());
}
