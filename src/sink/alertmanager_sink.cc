#include "sink/alertmanager_sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/file_util.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/time.h"
#include "sink/alert_rules.h"
#include "sink/http_transport.h"

namespace qw::sink {
namespace {

constexpr Nanos kBackoffStart = 1 * kSecond;  // first retry after a failed POST
constexpr Nanos kBackoffMax = 30 * kSecond;   // doubling stops here
constexpr Nanos kLogEvery = 60 * kSecond;     // failure lines per URL, at most
// Status snapshots missing for this long (at least; see Impl::stale_after)
// mean the detector is wedged: re-sending stops, so the Watchdog expires.
constexpr Nanos kStaleStatusMin = 120 * kSecond;
constexpr size_t kMaxBatch = 64;        // alerts per POST, as Prometheus
constexpr auto kCloseGrace = std::chrono::seconds(3);
// Waits are computed on ctx.clock, which a test may step: a thread never
// sleeps longer than this in real time before it looks at the clock again.
constexpr auto kMaxRealWait = std::chrono::seconds(1);

constexpr std::string_view kStateFile = "alertmanager.json";

using Json = nlohmann::ordered_json;

// The URL as logs may show it: without "user:password@".
std::string Redact(const std::string& url) {
  size_t start = url.find("://");
  if (start == std::string::npos) return url;
  start += 3;
  size_t end = url.find_first_of("/?#", start);
  if (end == std::string::npos) end = url.size();
  size_t at = url.rfind('@', end);
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + url.substr(at + 1);
}

std::string Time(Nanos t) { return FormatRfc3339Millis(t); }
}  // namespace

std::string ParseAlertmanagerState(const std::string& text,
                                 std::map<std::string, std::shared_ptr<const Alert>>* restored) {
  auto doc = ParseJson(text);
  if (!doc) return "not valid JSON (" + doc.error().message + ")";
  auto alerts = doc->find("alerts");
  if (alerts == doc->end() || !alerts->is_array()) return "no \"alerts\" array";
  for (const Json& e : *alerts) {
    auto labels_in = e.find("labels");
    auto ann_in = e.find("annotations");
    auto starts = e.find("startsAt");
    if (labels_in == e.end() || !labels_in->is_object() || ann_in == e.end() ||
        !ann_in->is_object() || starts == e.end() || !starts->is_string()) {
      return "an alert without labels, annotations or startsAt";
    }
    std::map<std::string, std::string> labels;
    for (const auto& [k, v] : labels_in->items()) {
      if (!v.is_string() || !ValidLabelName(k)) return "a bad label in an alert";
      labels[k] = SanitizeLabelValue(v.get<std::string>(), kMaxLabelBytes);
    }
    Annotations ann;
    for (const auto& [k, v] : ann_in->items()) {
      if (!v.is_string() || !ValidLabelName(k)) return "a bad annotation in an alert";
      ann.emplace_back(k, v.get<std::string>());
    }
    std::string name = labels["alertname"];
    Nanos starts_at = ParseRfc3339(starts->get<std::string>());
    if (name.empty() || starts_at == kNoTime) return "an alert without alertname or time";
    if (name == kWatchdog) continue;
    auto a = std::make_shared<const Alert>(std::move(name), LabelsJson(labels),
                                           AnnotationsJson(ann), starts_at);
    restored->emplace(a->key, std::move(a));
  }
  return "";
}

struct AlertmanagerSink::Impl {
  // What one URL still has to send for one label set: only the latest
  // state is kept (coalescing), so memory is bounded by the alerts there
  // are, however long an Alertmanager stays away.
  struct Update {
    std::shared_ptr<const Alert> alert;
    Nanos resolved_at = kNoTime;  // kNoTime: firing (endsAt = send time + hold)
    uint64_t seq = 0;             // a delivery removes the entry only if unchanged since
  };

  struct Target {
    std::string endpoint;  // {url}/api/v2/alerts
    std::string shown;     // the URL for logs (no credentials)
    std::thread thread;
    // Guarded by Impl::mu:
    std::map<std::string, Update> pending;  // by label set
    Nanos next_resend = kNoTime;            // kNoTime: at once
    // Owned by the target's thread:
    Nanos backoff = 0;
    Nanos retry_at = kNoTime;  // kNoTime: no failure pending
    uint64_t failures = 0;     // consecutive failed POSTs
    Nanos last_log = kNoTime;
  };

  // Set in Create, read-only afterwards (any thread).
  SinkConfig config;
  SinkContext ctx;
  const Clock* clock = nullptr;
  ComponentCounters counters;
  std::string state_path;                            // "" without a state_dir
  Nanos hold = 0;                                    // 4 x resend_interval
  Nanos stale_after = 0;
  std::shared_ptr<const Alert> watchdog;
  std::vector<std::unique_ptr<Target>> targets;  // the vector is fixed once threads run
  std::thread writer;                            // state file writer (with a state_dir)

  // Delivery threads and the writer wait on `wake`; everything below is
  // guarded by `mu`. Nobody holds `mu` across a request or a disk write.
  std::mutex mu;
  std::condition_variable wake;
  // The alerts firing now, by label set; always holds the Watchdog.
  std::map<std::string, std::shared_ptr<const Alert>> firing;
  // Alerts the previous run left firing (the state file), until evaluated.
  std::map<std::string, std::shared_ptr<const Alert>> restored;
  bool evaluated = false;  // a status snapshot was seen
  bool dirty = false;      // the firing set changed since the file was written
  bool closing = false;
  std::atomic<bool> stop_requests{false};  // set with closing: requests in flight give up
  std::chrono::steady_clock::time_point close_deadline;
  Nanos last_status = 0;
  bool stale = false;  // re-sending paused for want of status snapshots
  uint64_t seq = 0;

  // Owned by the detector's thread (OnStatus).
  AlertRules rules;

  // Owned by the thread that created the sink.
  bool closed = false;

  void Log(const std::string& msg) const {
    if (ctx.log) ctx.log(msg);
  }

  // --- the firing set (any thread; REQUIRES: mu held)

  void QueueAll(const std::shared_ptr<const Alert>& a, Nanos resolved_at) {
    for (auto& t : targets) t->pending[a->key] = Update{a, resolved_at, ++seq};
  }

  // Diffs the desired alerts against the firing set and queues the changes
  // for every URL. Returns a line to log ("" for none). REQUIRES: mu held.
  std::string Apply(std::vector<Alert> desired, Nanos now) {
    std::map<std::string, std::shared_ptr<const Alert>> before = firing;
    before.erase(watchdog->key);
    if (!evaluated) before.insert(restored.begin(), restored.end());
    std::map<std::string, std::shared_ptr<const Alert>> next;
    bool changed = !evaluated;
    for (Alert& a : desired) {
      if (next.count(a.key)) continue;
      auto prev = before.find(a.key);
      bool known = prev != before.end();
      if (a.starts_at == kNoTime) {
        a.starts_at = known ? prev->second->starts_at : now;
      } else {
        a.starts_at = std::min(a.starts_at, now);
      }
      bool restarted = known && prev->second->starts_at != a.starts_at;
      auto sp = std::make_shared<const Alert>(std::move(a));
      if (!known) counters.received->fetch_add(1);
      // A new alert or a new start goes out at once; after a (re)start
      // every firing alert does. The rest waits for the re-send tick.
      if (!known || restarted || !evaluated) QueueAll(sp, kNoTime);
      changed = changed || !known || restarted;
      next.emplace(sp->key, std::move(sp));
    }
    for (const auto& [key, a] : before) {
      if (next.count(key)) continue;
      counters.received->fetch_add(1);
      QueueAll(a, std::max(now, a->starts_at));
      changed = true;
    }
    next.emplace(watchdog->key, watchdog);
    firing = std::move(next);
    restored.clear();
    evaluated = true;
    if (changed && !state_path.empty()) dirty = true;
    last_status = now;
    if (!stale) return "";
    // Re-sending was paused: some alerts may have run out meanwhile.
    stale = false;
    for (const auto& [key, a] : firing) QueueAll(a, kNoTime);
    return "alertmanager: status snapshots again: firing alerts are re-sent";
  }

  // While history is read (status not caught up) the detector's state is a
  // past one: nothing is fired or resolved from it. Alerts firing before a
  // restart keep being re-sent as they were, and the Watchdog goes on.
  // Returns a line to log ("" for none). REQUIRES: mu held.
  std::string KeepFiring(Nanos now) {
    if (!evaluated && !restored.empty()) {
      for (const auto& [key, a] : restored) {
        firing.emplace(key, a);
        QueueAll(a, kNoTime);
      }
      restored.clear();
    }
    last_status = now;
    if (!stale) return "";
    stale = false;
    for (const auto& [key, a] : firing) QueueAll(a, kNoTime);
    return "alertmanager: status snapshots again: firing alerts are re-sent";
  }

  // --- delivery (a target's thread)

  void Deliver(Target& t) {
    std::unique_ptr<HttpTransport> transport =
        ctx.make_transport ? ctx.make_transport() : MakeCurlTransport();
    std::unique_lock<std::mutex> lock(mu);
    while (!closing) {
      Nanos now = clock->Now();
      if (t.next_resend == kNoTime || now >= t.next_resend) {
        t.next_resend = now + config.resend_interval;
        if (now - last_status <= stale_after) {
          for (const auto& [key, a] : firing) t.pending[key] = Update{a, kNoTime, ++seq};
        } else if (!stale) {
          stale = true;
          lock.unlock();
          Log("alertmanager: no status snapshot since " + Time(last_status) +
              ": firing alerts (the Watchdog too) are no longer re-sent");
          lock.lock();
          continue;
        }
      }
      ExpireResolved(t, now);
      if (!t.pending.empty() && (t.retry_at == kNoTime || now >= t.retry_at)) {
        // A shutdown abandons this request (a receiver that accepts and
        // never answers must not hold SIGTERM up for the whole timeout).
        SendBatch(t, *transport, lock, config.timeout, &stop_requests);
        continue;
      }
      Nanos until = t.next_resend - now;
      if (!t.pending.empty()) until = std::min(until, t.retry_at - now);
      auto real = std::min<std::chrono::nanoseconds>(
          std::chrono::nanoseconds(std::max<Nanos>(until, kMillisecond)), kMaxRealWait);
      wake.wait_for(lock, real);
    }
    // Shutdown: one more try for what is pending, ignoring the backoff,
    // within the grace period; no re-send tick and nothing resolved.
    while (!t.pending.empty()) {
      auto left = close_deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::milliseconds(50)) break;
      Nanos timeout = std::min<Nanos>(
          config.timeout, std::chrono::duration_cast<std::chrono::nanoseconds>(left).count());
      if (!SendBatch(t, *transport, lock, timeout)) break;
    }
    if (!t.pending.empty()) {
      counters.dropped->fetch_add(t.pending.size());
      std::string msg = fmt::format("alertmanager {}: {} alert update(s) undelivered at shutdown",
                                    t.shown, t.pending.size());
      t.pending.clear();
      lock.unlock();
      Log(msg);
    }
  }

  // A resolve is pointless once the firing alert it ends has expired in
  // Alertmanager anyway (its endsAt was at most `hold` after it).
  // REQUIRES: mu held.
  void ExpireResolved(Target& t, Nanos now) {
    for (auto it = t.pending.begin(); it != t.pending.end();) {
      if (it->second.resolved_at != kNoTime && now - it->second.resolved_at > hold) {
        counters.dropped->fetch_add(1);
        it = t.pending.erase(it);
      } else {
        ++it;
      }
    }
  }

  // POSTs up to kMaxBatch pending updates; mu is released during the
  // request. Returns false when the request failed and should be retried.
  // REQUIRES: mu held (through `lock`).
  bool SendBatch(Target& t, HttpTransport& transport, std::unique_lock<std::mutex>& lock,
                 Nanos timeout, const std::atomic<bool>* cancel = nullptr) {
    Nanos now = clock->Now();
    std::vector<std::pair<std::string, uint64_t>> sent;
    HttpRequest req;
    req.url = t.endpoint;
    req.headers = {{"Content-Type", "application/json"}, {"User-Agent", "quorumwatch"}};
    req.timeout = timeout;
    req.cancel = cancel;
    Json batch = Json::array();
    for (const auto& [key, u] : t.pending) {
      if (sent.size() == kMaxBatch) break;
      Nanos ends = u.resolved_at != kNoTime ? u.resolved_at : now + hold;
      batch.push_back(AlertJson(*u.alert, ends, config.generator_url));
      sent.emplace_back(key, u.seq);
    }
    req.body = DumpJson(batch);

    lock.unlock();
    HttpResponse resp = transport.Send(req);
    lock.lock();
    if (resp.cancelled) return false;  // shutdown: the grace period tries once more

    now = clock->Now();
    // 4xx (but timeouts and rate limits) will not pass however often sent.
    bool rejected = resp.error.empty() && resp.status >= 400 && resp.status < 500 &&
                    resp.status != 408 && resp.status != 429;
    if (resp.ok() || rejected) {
      for (const auto& [key, s] : sent) {
        auto it = t.pending.find(key);
        if (it != t.pending.end() && it->second.seq == s) t.pending.erase(it);
      }
    }
    std::string msg;
    if (resp.ok()) {
      counters.processed->fetch_add(sent.size());
      if (t.failures > 0) {
        msg = fmt::format("alertmanager {}: delivering again after {} failed attempt(s)", t.shown,
                          t.failures);
      }
      t.failures = 0;
      t.backoff = 0;
      t.retry_at = kNoTime;
    } else {
      counters.errors->fetch_add(1);
      if (rejected) counters.dropped->fetch_add(sent.size());
      ++t.failures;
      t.backoff = t.backoff == 0 ? kBackoffStart : std::min(2 * t.backoff, kBackoffMax);
      t.retry_at = now + t.backoff;
      if (t.failures == 1 || t.last_log == kNoTime || now - t.last_log >= kLogEvery) {
        t.last_log = now;
        msg = fmt::format("alertmanager {}: {}: {}", t.shown,
                          rejected ? fmt::format("{} alert(s) rejected", sent.size())
                                   : std::string("delivery failed"),
                          resp.Describe());
        if (t.failures > 1) msg += fmt::format(" ({} failed attempts in a row)", t.failures);
        if (!closing) msg += "; retrying in " + FormatDuration(t.backoff);
      }
    }
    if (!msg.empty()) {
      lock.unlock();
      Log(msg);
      lock.lock();
    }
    return resp.ok() || rejected;
  }

  // --- the state file (the writer thread; with a state_dir)

  // REQUIRES: mu held.
  std::string StateJson() const {
    Json alerts = Json::array();
    for (const auto& [key, a] : firing) {
      if (a == watchdog) continue;
      Json o = Json::object();
      o.emplace("labels", Json(a->labels));
      o.emplace("annotations", Json(a->annotations));
      o.emplace("startsAt", Time(a->starts_at));
      alerts.push_back(std::move(o));
    }
    Json doc = Json::object();
    doc.emplace("version", 1);
    doc.emplace("alerts", std::move(alerts));
    return DumpJson(doc) + "\n";
  }

  void WriteState() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      wake.wait(lock, [&] { return dirty || closing; });
      if (!dirty) break;  // closing with nothing left to write
      dirty = false;
      std::string text = StateJson();
      lock.unlock();
      if (auto w = WriteFileAtomic(state_path, text, state_path + ".prev"); !w) {
        Log("alertmanager: cannot save the firing alerts: " + w.error().message);
      }
      lock.lock();
    }
  }

  // Reads the alerts a previous run left firing. Called before any thread
  // runs. A damaged file is reported and the generation before it (.prev)
  // read instead; when that is damaged too, both are reported and the
  // alerts that ended while quorumwatch was down are not resolved (they
  // expire in Alertmanager by their endsAt).
  void LoadState() {
    std::string first_error;
    for (const std::string& path : {state_path, state_path + ".prev"}) {
      std::ifstream in(path, std::ios::binary);
      if (!in) continue;
      std::stringstream ss;
      ss << in.rdbuf();
      std::string error = ReadState(ss.str());
      if (error.empty()) {
        if (!first_error.empty()) {
          Log(state_path + ": " + first_error + "; the previous generation " + path +
              " is used instead");
        }
        return;
      }
      restored.clear();
      if (first_error.empty()) {
        first_error = error;
        continue;
      }
      Log(state_path + ": " + first_error + "; " + path + ": " + error +
          "; previously firing alerts are not resolved");
      return;
    }
    if (!first_error.empty()) {
      Log(state_path + ": " + first_error + "; previously firing alerts are not resolved");
    }
  }

  // Fills `restored` from the file's text; returns what is wrong with it
  // ("" when nothing).
  std::string ReadState(const std::string& text) { return ParseAlertmanagerState(text, &restored); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (closing) return;
      closing = true;
      close_deadline = std::chrono::steady_clock::now() + kCloseGrace;
    }
    stop_requests.store(true);
    wake.notify_all();
    for (auto& t : targets) {
      if (t->thread.joinable()) t->thread.join();
    }
    if (writer.joinable()) writer.join();
  }
};

AlertmanagerSink::AlertmanagerSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AlertmanagerSink::~AlertmanagerSink() {
  if (impl_ != nullptr) impl_->Shutdown();
}

Result<std::unique_ptr<AlertmanagerSink>> AlertmanagerSink::Create(const SinkConfig& config,
                                                                   const SinkContext& ctx) {
  std::string where = config.file + ":" + std::to_string(config.line) + ": ";
  if (config.urls.empty()) return Fail(where + "an alertmanager sink needs 'urls'");
  for (size_t i = 0; i < config.urls.size(); ++i) {
    const std::string& u = config.urls[i];
    size_t scheme = u.rfind("http://", 0) == 0 ? 7 : u.rfind("https://", 0) == 0 ? 8 : 0;
    if (scheme == 0 || u.size() == scheme || u[scheme] == '/') {
      return Fail(where + "alertmanager url '" + Redact(u) +
                  "' must be http:// or https:// and a host");
    }
    for (size_t j = 0; j < i; ++j) {
      if (config.urls[j] == u) {
        return Fail(where + "alertmanager url '" + Redact(u) + "' is listed twice");
      }
    }
  }
  if (config.resend_interval < kSecond) {
    return Fail(where + "'resend_interval' must be at least 1s");
  }
  if (config.timeout <= 0) return Fail(where + "'timeout' must be positive");
  for (const auto& [name, value] : config.labels) {
    if (!ValidLabelName(name)) {
      return Fail(where + "label name '" + SanitizeLabelValue(name, 64) +
                  "' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)");
    }
    if (ReservedLabel(name)) {
      return Fail(where + "label '" + name +
                  "' is set by quorumwatch itself and cannot be "
                  "configured");
    }
  }

  auto m = std::make_unique<Impl>();
  m->config = config;
  m->ctx = ctx;
  m->clock = ctx.clock != nullptr ? ctx.clock : SystemClock::Get();
  m->counters = ComponentCounters::For(ctx.metrics, "sink", "alertmanager");
  std::map<std::string, std::string> static_labels;
  for (const auto& [name, value] : config.labels) {
    static_labels[name] = SanitizeLabelValue(value, kMaxLabelBytes);
  }
  m->rules = AlertRules(std::move(static_labels));
  m->hold = 4 * config.resend_interval;
  m->stale_after = std::max(kStaleStatusMin, 3 * config.resend_interval);
  Nanos now = m->clock->Now();
  m->last_status = now;
  m->watchdog = std::make_shared<const Alert>(
      m->rules.Make(kWatchdog, "none", "", "", "", now,
              {{"summary", "quorumwatch is running: this alert always fires"},
               {"description",
                "Route it to a dead man's switch: its absence means quorumwatch or its "
                "delivery to Alertmanager has stopped."}}));
  m->firing.emplace(m->watchdog->key, m->watchdog);
  if (!ctx.state_dir.empty()) {
    m->state_path = ctx.state_dir + "/" + std::string(kStateFile);
    m->LoadState();
  }
  for (const std::string& u : config.urls) {
    auto t = std::make_unique<Impl::Target>();
    std::string base = u;
    while (!base.empty() && base.back() == '/') base.pop_back();
    t->endpoint = base + "/api/v2/alerts";
    t->shown = Redact(u);
    m->targets.push_back(std::move(t));
  }
  Impl* p = m.get();
  for (auto& t : p->targets) {
    Impl::Target* tp = t.get();
    tp->thread = std::thread([p, tp] { p->Deliver(*tp); });
  }
  if (!p->state_path.empty()) p->writer = std::thread([p] { p->WriteState(); });
  return std::unique_ptr<AlertmanagerSink>(new AlertmanagerSink(std::move(m)));
}

void AlertmanagerSink::Write(const Event& e) {
  // Alerts are level-triggered from OnStatus, which follows every batch
  // that produced events: an event adds nothing the next snapshot lacks.
  (void)e;
}

void AlertmanagerSink::OnStatus(const Status& status) {
  Impl& m = *impl_;
  Nanos now = m.clock->Now();
  std::string msg;
  if (!status.health.caught_up) {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.closing) return;
    msg = m.KeepFiring(now);
  } else {
    std::vector<Alert> desired = m.rules.Evaluate(status, now);
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.closing) return;
    msg = m.Apply(std::move(desired), now);
  }
  m.wake.notify_all();
  if (!msg.empty()) m.Log(msg);
}

void AlertmanagerSink::Close() {
  if (impl_->closed) return;
  impl_->closed = true;
  impl_->Shutdown();
}

}  // namespace qw::sink
