#include "sink/metrics_sink.h"

#include "sink/http_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qw::sink {
namespace {

// /healthz turns 503 when no status snapshot arrived for this long: the
// detector thread delivers one about every second, so a gap this long means
// the pipeline is stuck.
constexpr Nanos kStatusStaleAfter = 30 * kSecond;

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

struct ListenAddress {
  std::string host;  // without IPv6 brackets
  int port = 0;
};

// "host:port", "[v6]:port" or ":port" (all addresses). False when malformed.
bool ParseListen(std::string_view s, ListenAddress* out) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = s.substr(0, colon);
  std::string_view port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return false;  // an IPv6 address needs brackets
  }
  if (port.empty() || port.size() > 5) return false;
  int p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
  }
  if (p > 65535) return false;
  out->host = host.empty() ? "0.0.0.0" : std::string(host);
  out->port = p;
  return true;
}

double Bool(bool b) { return b ? 1 : 0; }

}  // namespace

struct MetricsSink::Impl {
  // Set in Create, then read-only (any thread).
  std::string listen;  // as configured, for messages
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  std::function<void(const std::string&)> log;
  ComponentCounters counters;
  int port = 0;

  // Used when the context has no registry (tests of other parts, replay).
  Metrics own_metrics;

  // The server (http_server.h): one thread, poll(), a deadline per
  // connection; its handlers only read the atomics below and render the
  // registry.
  std::unique_ptr<HttpServer> server;
  bool closed = false;  // creating thread only

  // Written by the detector thread (OnStatus), read by the handlers. Plain
  // atomics: a handler never waits for the detector, nor the reverse.
  std::atomic<Nanos> last_status_at{kNoTime};  // ctx.clock time of the last OnStatus
  std::atomic<Nanos> started_at{0};            // ctx.clock time of Create
  std::atomic<bool> caught_up{false};          // sticky once a caught-up status came
  // Why the instance runs degraded ("" when it does not): a line for
  // /healthz, which still answers 200 (a restart would not free the disk).
  mutable std::mutex degraded_mu;
  std::string degraded;  // guarded by degraded_mu

  // Detector thread only (Write): the events_total cell of each
  // (event, severity, chain), so registration takes the registry's lock once
  // per label set, not once per event.
  std::map<std::string, std::atomic<uint64_t>*, std::less<>> event_cells;
  std::string event_key;  // scratch for the lookup

  void PublishStatus(const Status& status);
  ServerResponse Handle(const ServerRequest& req);
  ServerResponse HandleMetrics();
  ServerResponse HandleHealthz() const;
  ServerResponse HandleReadyz() const;
};

Result<std::unique_ptr<MetricsSink>> MetricsSink::Create(const SinkConfig& config,
                                                         const SinkContext& ctx) {
  auto impl = std::make_unique<Impl>();
  const std::string where = config.file + ":" + std::to_string(config.line);
  impl->listen = config.listen;
  impl->metrics = ctx.metrics != nullptr ? ctx.metrics : &impl->own_metrics;
  impl->clock = ctx.clock != nullptr ? ctx.clock : SystemClock::Get();
  impl->log = ctx.log;
  impl->counters = ComponentCounters::For(impl->metrics, "sink", "metrics");
  impl->started_at.store(impl->clock->Now());

  ListenAddress addr;
  if (!ParseListen(config.listen, &addr)) {
    return Fail(where + ": cannot listen on " + config.listen +
                ": expected host:port (port 0-65535)");
  }

  Impl* p = impl.get();
  auto server = HttpServer::Listen(addr.host, addr.port,
                                   [p](const ServerRequest& req) { return p->Handle(req); });
  if (!server) {
    return Fail(where + ": cannot listen on " + config.listen + ": " + server.error().message);
  }
  impl->server = std::move(*server);
  impl->port = impl->server->port();
  impl->server->Start();
  if (impl->log) {
    bool v6 = addr.host.find(':') != std::string::npos;
    impl->log(fmt::format("metrics: listening on {}{}{}:{}", v6 ? "[" : "", addr.host,
                          v6 ? "]" : "", impl->port));
  }
  return std::unique_ptr<MetricsSink>(new MetricsSink(std::move(impl)));
}

MetricsSink::MetricsSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsSink::~MetricsSink() { Close(); }

int MetricsSink::port() const { return impl_->port; }

void MetricsSink::Write(const Event& e) {
  Impl& m = *impl_;
  m.counters.received->fetch_add(1, std::memory_order_relaxed);
  std::string_view kind = EventKindName(e.kind);
  std::string_view severity = SeverityName(e.severity);
  // Kind and severity names hold no '\x1f'; the chain comes last.
  m.event_key.clear();
  m.event_key.append(kind).push_back('\x1f');
  m.event_key.append(severity).push_back('\x1f');
  m.event_key.append(e.chain);
  auto it = m.event_cells.find(m.event_key);
  if (it == m.event_cells.end()) {
    std::atomic<uint64_t>* cell = m.metrics->Counter(
        "quorumwatch_events_total",
        {{"event", std::string(kind)}, {"severity", std::string(severity)}, {"chain", e.chain}},
        "Events decided, by kind, severity and chain.");
    it = m.event_cells.emplace(m.event_key, cell).first;
  }
  it->second->fetch_add(1, std::memory_order_relaxed);
}

void MetricsSink::OnStatus(const Status& status) { impl_->PublishStatus(status); }

void MetricsSink::Impl::PublishStatus(const Status& status) {
  last_status_at.store(clock->Now(), std::memory_order_relaxed);
  if (status.health.caught_up) caught_up.store(true, std::memory_order_relaxed);
  {
    std::string why;
    if (status.health.checkpoint_failing) {
      why = "degraded: checkpoints fail (" + status.health.checkpoint_error + ")";
      if (status.health.last_checkpoint != kNoTime) {
        why += fmt::format("; the last one was written {}s ago",
                           std::max<Nanos>(0, status.now - status.health.last_checkpoint) / kSecond);
      }
      why += "\n";
    }
    std::lock_guard<std::mutex> l(degraded_mu);
    degraded = std::move(why);
  }

  using Series = std::vector<std::pair<MetricLabels, double>>;
  Series height, in_consensus, since_commit, missed, ooc, stalled, banned, ban_held;
  for (const NodeStatus& n : status.nodes) {
    if (n.retired) continue;  // a removed file's node: its series go away
    MetricLabels l = {{"chain", n.chain}, {"namespace", n.namespace_}, {"node", n.node}};
    if (n.height >= 0) height.emplace_back(l, static_cast<double>(n.height));
    in_consensus.emplace_back(l, Bool(n.in_consensus));
    if (n.last_advance != kNoTime) {
      // A log stamp ahead of this host's clock is not a negative age.
      Nanos age = std::max<Nanos>(0, status.now - n.last_advance);
      since_commit.emplace_back(l, static_cast<double>(age) / kSecond);
    }
    if (n.signer) missed.emplace_back(l, static_cast<double>(n.missed_total));
    ooc.emplace_back(l, Bool(n.out_of_consensus));
    stalled.emplace_back(l, Bool(n.stalled));
    banned.emplace_back(l, Bool(n.banned));
    ban_held.emplace_back(std::move(l), Bool(n.ban_held));
  }
  Series head, halted;
  for (const ChainStatus& c : status.chains) {
    MetricLabels l = {{"chain", c.name}};
    if (c.head >= 0) head.emplace_back(l, static_cast<double>(c.head));
    halted.emplace_back(std::move(l), Bool(c.halted));
  }
  const HealthStatus& h = status.health;
  auto one = [](double v) { return Series{{MetricLabels{}, v}}; };

  Metrics& r = *metrics;
  r.SetFamily("quorumwatch_node_height", "gauge", "Last committed height of the node.",
              std::move(height));
  r.SetFamily("quorumwatch_node_in_consensus", "gauge",
              "1 when the node has a height and is neither out of consensus, syncing nor retired.",
              std::move(in_consensus));
  r.SetFamily("quorumwatch_node_seconds_since_commit", "gauge",
              "Seconds from the node's last height advance to the latest status snapshot.",
              std::move(since_commit));
  r.SetFamily("quorumwatch_missed_precommits_total", "counter",
              "Precommits the node missed since it was first seen (signers only).",
              std::move(missed));
  r.SetFamily("quorumwatch_node_out_of_consensus", "gauge", "1 while the node is out of consensus.",
              std::move(ooc));
  r.SetFamily("quorumwatch_node_stalled", "gauge",
              "1 while the node's height has not advanced for stall_after.", std::move(stalled));
  r.SetFamily("quorumwatch_node_banned", "gauge", "1 while the node is banned.", std::move(banned));
  r.SetFamily("quorumwatch_node_ban_held", "gauge",
              "1 while a ban that is due is held back by a safety rail or an operator hold.",
              std::move(ban_held));
  r.SetFamily("quorumwatch_chain_head_height", "gauge",
              "Highest height committed by any node of the chain that this instance reads.",
              std::move(head));
  r.SetFamily("quorumwatch_chain_halted", "gauge", "1 while the chain is halted.",
              std::move(halted));
  r.SetFamily("quorumwatch_bytes_behind", "gauge", "Bytes not yet read over all input files.",
              one(static_cast<double>(h.bytes_behind)));
  r.SetFamily("quorumwatch_files_behind", "gauge", "Input files not yet read to their end.",
              one(static_cast<double>(h.files_behind)));
  r.SetFamily("quorumwatch_input_outage", "gauge",
              "1 while no stream has produced a line for input_outage_after.",
              one(Bool(h.input_outage)));
  r.SetFamily("quorumwatch_ban_outbox_pending", "gauge",
              "Ban decisions written to the outbox and not yet acknowledged.",
              one(static_cast<double>(h.ban_outbox_pending)));
  r.SetFamily("quorumwatch_event_write_errors", "gauge",
              "Events the jsonl sinks failed to write since start (disk full, ...).",
              one(static_cast<double>(h.event_write_errors)));
  r.SetFamily("quorumwatch_checkpoint_failing", "gauge",
              "1 while writing the checkpoint to state_dir fails (full, read-only, ...).",
              one(Bool(h.checkpoint_failing)));
  r.SetFamily("quorumwatch_checkpoint_write_errors", "gauge",
              "Checkpoint writes that failed since start.",
              one(static_cast<double>(h.checkpoint_errors)));
  if (h.last_checkpoint != kNoTime) {
    r.SetFamily("quorumwatch_last_checkpoint_timestamp_seconds", "gauge",
                "Wall time the last checkpoint was written (Unix seconds).",
                one(static_cast<double>(h.last_checkpoint) / kSecond));
  }
  r.SetFamily("quorumwatch_prefilter_info", "gauge",
              "1, labelled with the prefilter built in (hyperscan, vectorscan or re2-set).",
              Series{{MetricLabels{{"engine", h.prefilter}}, 1.0}});
  r.SetFamily("quorumwatch_prefilter_fallbacks", "gauge",
              "Families whose prefilter disagreed with RE2 at its start-up self-check "
              "(they run on RE2::Set; see stderr).",
              one(static_cast<double>(h.prefilter_fallbacks)));
  r.SetFamily("quorumwatch_caught_up", "gauge",
              "1 once every input file was read to its end since start.", one(Bool(h.caught_up)));
}

ServerResponse MetricsSink::Impl::Handle(const ServerRequest& req) {
  try {
    if (req.path == "/metrics") return HandleMetrics();
    if (req.path == "/healthz") return HandleHealthz();
    if (req.path == "/readyz") return HandleReadyz();
  } catch (const std::exception&) {
    counters.errors->fetch_add(1, std::memory_order_relaxed);
    ServerResponse res;
    res.status = 500;
    res.body = "internal error\n";
    return res;
  }
  ServerResponse res;
  res.status = 404;
  res.body = "not found: /metrics, /healthz and /readyz are served\n";
  return res;
}

ServerResponse MetricsSink::Impl::HandleMetrics() {
  // Render holds the registry's lock only while it formats; the detector
  // thread's SetFamily calls wait at most that long.
  ServerResponse res;
  res.body = metrics->Render();
  res.content_type = std::string(kMetricsContentType);
  counters.processed->fetch_add(1, std::memory_order_relaxed);
  return res;
}

ServerResponse MetricsSink::Impl::HandleHealthz() const {
  ServerResponse res;
  Nanos now = clock->Now();
  Nanos last = last_status_at.load(std::memory_order_relaxed);
  Nanos since = last != kNoTime ? last : started_at.load(std::memory_order_relaxed);
  Nanos age = now - since;
  if (age <= kStatusStaleAfter) {
    std::lock_guard<std::mutex> l(degraded_mu);
    res.body = "ok\n" + degraded;
    return res;
  }
  res.status = 503;
  res.body =
      last != kNoTime
          ? fmt::format("no status snapshot for {}s: the pipeline is stuck\n", age / kSecond)
          : fmt::format("no status snapshot since start {}s ago: the pipeline is stuck\n",
                        age / kSecond);
  return res;
}

ServerResponse MetricsSink::Impl::HandleReadyz() const {
  ServerResponse res;
  if (caught_up.load(std::memory_order_relaxed)) {
    res.body = "ok\n";
    return res;
  }
  res.status = 503;
  res.body = "catching up\n";
  return res;
}

void MetricsSink::Close() {
  if (impl_->closed) return;
  impl_->closed = true;
  if (impl_->server) impl_->server->Stop();
}

}  // namespace qw::sink
