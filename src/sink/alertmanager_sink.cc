#include "sink/alertmanager_sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
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
#include "sink/http_transport.h"

namespace qw::sink {
namespace {

constexpr Nanos kBackoffStart = 1 * kSecond;  // first retry after a failed POST
constexpr Nanos kBackoffMax = 30 * kSecond;   // doubling stops here
constexpr Nanos kLogEvery = 60 * kSecond;     // failure lines per URL, at most
constexpr Nanos kDoubleSignHold = 3600 * kSecond;
constexpr Nanos kDroppingWindow = 600 * kSecond;
constexpr uint64_t kLaggingBytes = uint64_t{64} << 20;
constexpr Nanos kBanUndeliveredAfter = 120 * kSecond;
// Status snapshots missing for this long (at least; see Impl::stale_after)
// mean the detector is wedged: re-sending stops, so the Watchdog expires.
constexpr Nanos kStaleStatusMin = 120 * kSecond;
constexpr size_t kMaxBatch = 64;        // alerts per POST, as Prometheus
constexpr size_t kMaxLabelBytes = 512;  // per label value
constexpr size_t kMaxAnnotationBytes = 4096;
constexpr auto kCloseGrace = std::chrono::seconds(3);
// Waits are computed on ctx.clock, which a test may step: a thread never
// sleeps longer than this in real time before it looks at the clock again.
constexpr auto kMaxRealWait = std::chrono::seconds(1);

constexpr std::string_view kWatchdog = "Watchdog";
constexpr std::string_view kStateFile = "alertmanager.json";

using Annotations = std::vector<std::pair<std::string, std::string>>;

// A label or annotation value Alertmanager accepts and a pager shows:
// well-formed UTF-8 (a bad byte becomes U+FFFD), control characters (C0,
// DEL, C1) become spaces, and at most `max` bytes, cut on a character
// boundary and marked with "...".
std::string Sanitize(std::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  bool cut = false;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = Utf8SeqLen(s, i, &cp);
    std::string_view piece;
    if (n == 0) {
      piece = "\xEF\xBF\xBD";
      n = 1;
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
      piece = " ";
    } else {
      piece = s.substr(i, n);
    }
    if (out.size() + piece.size() > max) {
      cut = true;
      break;
    }
    out.append(piece);
    i += n;
  }
  if (cut) {
    // Make room for the marker without splitting a character.
    while (!out.empty() && out.size() + 3 > max) {
      size_t k = out.size() - 1;
      while (k > 0 && (static_cast<unsigned char>(out[k]) & 0xC0) == 0x80) --k;
      out.resize(k);
    }
    out.append("...");
  }
  return out;
}

// Prometheus' label name syntax, which Alertmanager enforces.
bool ValidLabelName(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool Reserved(std::string_view n) {
  return n == "alertname" || n == "chain" || n == "node" || n == "namespace" || n == "severity" ||
         n.substr(0, 2) == "__";
}

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

std::string LabelsJson(const std::map<std::string, std::string>& labels) {
  std::string out = "{";
  for (const auto& [k, v] : labels) {
    if (v.empty()) continue;  // Alertmanager drops empty labels: absent is the same
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(out, k);
    out.push_back(':');
    AppendJsonString(out, v);
  }
  out.push_back('}');
  return out;
}

std::string AnnotationsJson(const Annotations& ann) {
  std::string out = "{";
  for (const auto& [k, v] : ann) {
    if (v.empty()) continue;
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(out, k);
    out.push_back(':');
    AppendJsonString(out, Sanitize(v, kMaxAnnotationBytes));
  }
  out.push_back('}');
  return out;
}

// One alert as Alertmanager identifies it: its label set. Immutable once
// built, shared between the firing set and the URLs' pending updates.
struct Alert {
  std::string name;         // alertname
  std::string labels;       // JSON object, sorted by name: the identity
  std::string annotations;  // JSON object
  Nanos starts_at = kNoTime;
};

}  // namespace

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
  std::map<std::string, std::string> static_labels;  // sanitised values
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
  std::chrono::steady_clock::time_point close_deadline;
  Nanos last_status = 0;
  bool stale = false;  // re-sending paused for want of status snapshots
  uint64_t seq = 0;

  // Owned by the detector's thread (OnStatus).
  uint64_t bad_lines = 0;
  Nanos bad_lines_at = kNoTime;
  Nanos outbox_seen = kNoTime;  // when a non-empty ban outbox was first seen

  // Owned by the thread that created the sink.
  bool closed = false;

  void Log(const std::string& msg) const {
    if (ctx.log) ctx.log(msg);
  }

  // --- building alerts (detector's thread; reads only set-up state)

  Alert Make(std::string_view name, std::string_view severity, std::string_view chain,
             std::string_view node, std::string_view ns, Nanos own_start,
             const Annotations& ann) const {
    std::map<std::string, std::string> labels = static_labels;
    labels["alertname"] = Sanitize(name, kMaxLabelBytes);
    labels["severity"] = Sanitize(severity, kMaxLabelBytes);
    labels["chain"] = Sanitize(chain, kMaxLabelBytes);
    labels["node"] = Sanitize(node, kMaxLabelBytes);
    labels["namespace"] = Sanitize(ns, kMaxLabelBytes);
    Alert a;
    a.name = std::string(name);
    a.labels = LabelsJson(labels);
    a.annotations = AnnotationsJson(ann);
    a.starts_at = own_start;
    return a;
  }

  // The alerts a status snapshot calls for. starts_at is the state's own
  // time when it has one, else kNoTime (filled in from the firing set).
  std::vector<Alert> Evaluate(const Status& s, Nanos now) {
    std::vector<Alert> out;
    auto h = [](int64_t v) { return v < 0 ? std::string("unknown") : std::to_string(v); };
    auto t = [](Nanos v) { return v == kNoTime ? std::string("unknown") : Time(v); };
    std::map<std::string, int64_t> heads;
    for (const ChainStatus& c : s.chains) heads[c.name] = c.head;

    for (const NodeStatus& n : s.nodes) {
      if (n.retired) continue;  // its log is gone: nothing to say about it
      std::string who = n.node + " on " + n.chain;
      int64_t head = heads.count(n.chain) ? heads[n.chain] : -1;
      auto add = [&](std::string_view name, std::string_view severity, Nanos start,
                     Annotations ann) {
        if (!n.validator.empty()) ann.emplace_back("validator", n.validator);
        out.push_back(Make(name, severity, n.chain, n.node, n.namespace_, start, ann));
      };
      if (n.signer && n.missed_window > 0 && n.missed_in_window > n.missed_max) {
        add("ValidatorMissedPrecommits", "warning", kNoTime,
            {{"summary", fmt::format("{} missed {} of its last {} precommits (more than {})", who,
                                     n.missed_in_window, n.missed_window, n.missed_max)},
             {"description",
              fmt::format("The validator signed too few of the recent heights: {} missed in the "
                          "window of {} (threshold {}), {} missed since quorumwatch started "
                          "following it. Last committed height {}.",
                          n.missed_in_window, n.missed_window, n.missed_max, n.missed_total,
                          h(n.height))},
             {"missed_in_window", std::to_string(n.missed_in_window)},
             {"missed_window", std::to_string(n.missed_window)},
             {"missed_max", std::to_string(n.missed_max)},
             {"height", h(n.height)}});
      }
      if (n.stalled) {
        add("NodeStalled", "warning", n.stalled_since,
            {{"summary", fmt::format("{} has committed no block since {} (height {})", who,
                                     t(n.last_advance), h(n.height))},
             {"description",
              fmt::format("No height advance for longer than the chain's stall_after while the "
                          "node's log still arrives. Last committed height {} at {}; chain head "
                          "{}.",
                          h(n.height), t(n.last_advance), h(head))},
             {"height", h(n.height)},
             {"last_commit", t(n.last_advance)},
             {"since", t(n.stalled_since)}});
      }
      if (n.out_of_consensus) {
        // Critical for a signer: it misses blocks and heads for a ban.
        add("NodeOutOfConsensus", n.signer ? "critical" : "warning", n.out_of_consensus_since,
            {{"summary", fmt::format("{} is out of consensus ({}) since {}", who,
                                     n.out_of_consensus_reason, t(n.out_of_consensus_since))},
             {"description",
              fmt::format("Reason: {}. Height {}, chain head {}. After ban_after out of "
                          "consensus (period started {}) a ban is decided so the standby "
                          "takes over.",
                          n.out_of_consensus_reason, h(n.height), h(head), t(n.period_start))},
             {"reason", n.out_of_consensus_reason},
             {"height", h(n.height)},
             {"chain_head", h(head)},
             {"since", t(n.out_of_consensus_since)}});
      }
      if (n.consensus_failure) {
        add("ConsensusFailure", "critical", n.consensus_failure_at,
            {{"summary", fmt::format("{} logged CONSENSUS FAILURE at height {}", who,
                                     h(n.consensus_failure_height))},
             {"description",
              fmt::format("The node's consensus stopped with a failure at {} (height {}). The "
                          "alert lasts until the node commits a new height.",
                          t(n.consensus_failure_at), h(n.consensus_failure_height))},
             {"height", h(n.consensus_failure_height)},
             {"since", t(n.consensus_failure_at)}});
      }
      Nanos ref = s.detector_time != kNoTime ? s.detector_time : s.now;
      if (n.double_sign && n.double_sign_at != kNoTime &&
          ref - n.double_sign_at < kDoubleSignHold) {
        add("DoubleSignRisk", n.double_sign_critical ? "critical" : "warning", n.double_sign_at,
            {{"summary", fmt::format("{}: double-sign risk ({}) at height {}", who,
                                     n.double_sign_reason, h(n.double_sign_height))},
             {"description",
              fmt::format("{} at {} (height {}). The alert lasts an hour after the latest risk.",
                          n.double_sign_critical
                              ? "Our validator may sign conflicting votes: stop all but one signer"
                              : "Two of our nodes sign for the same validator: only one producer "
                                "should be live",
                          t(n.double_sign_at), h(n.double_sign_height))},
             {"reason", n.double_sign_reason},
             {"height", h(n.double_sign_height)},
             {"since", t(n.double_sign_at)}});
      }
      if (n.banned) {
        add("NodeBanned", "critical", n.banned_at,
            {{"summary", fmt::format("{} is banned since {}", who, t(n.banned_at))},
             {"description",
              fmt::format("The node was out of consensus for ban_after: the ban controller was "
                          "asked to take it out of service (out-of-consensus period started {}).",
                          t(n.period_start))},
             {"height", h(n.height)},
             {"since", t(n.banned_at)}});
      }
      if (n.ban_held && !n.banned) {
        // An operator's own hold is known to them; a rail holding a due
        // ban leaves a broken node in service: someone must act.
        add("NodeBanHeld", n.operator_hold ? "warning" : "critical", kNoTime,
            {{"summary", fmt::format("A ban of {} is due but held back ({})", who,
                                     n.ban_held_rail.empty() ? "hold" : n.ban_held_rail)},
             {"description",
              fmt::format("The node has been out of consensus for ban_after (period started {}) "
                          "but the ban is held by '{}'; the standby does not take over.",
                          t(n.period_start), n.ban_held_rail)},
             {"rail", n.ban_held_rail},
             {"since", t(n.period_start)}});
      }
    }

    for (const ChainStatus& c : s.chains) {
      if (!c.halted) continue;
      out.push_back(
          Make("ChainHalted", "warning", c.name, "", "", c.halted_at,
               {{"summary", fmt::format("Chain {} is halted at height {} since {}", c.name,
                                        h(c.halt_height), t(c.halted_at))},
                {"description",
                 "Every visible node stopped at the same height (or an upgrade halt was logged): "
                 "nodes are not judged stalled or out of consensus while the chain is halted."},
                {"height", h(c.halt_height)},
                {"since", t(c.halted_at)}}));
    }

    const HealthStatus& hs = s.health;
    if (hs.input_outage) {
      out.push_back(Make("QuorumwatchInputStalled", "warning", "", "", "", kNoTime,
                         {{"summary", fmt::format("quorumwatch receives no log line from "
                                                  "any stream (the last one at {})",
                                                  t(hs.last_input))},
                          {"description",
                           "No stream has produced a line for input_outage_after: stalls are "
                           "not judged meanwhile. Check the log files, the runtime and the "
                           "mounts."},
                          {"since", t(hs.last_input)}}));
    }
    if (hs.bytes_behind > kLaggingBytes) {
      out.push_back(
          Make("QuorumwatchLagging", "warning", "", "", "", kNoTime,
               {{"summary", fmt::format("quorumwatch is {} MiB behind the logs in {} file(s)",
                                        hs.bytes_behind >> 20, hs.files_behind)},
                {"description", "Reading falls behind what the nodes write: alerts come late."},
                {"bytes_behind", std::to_string(hs.bytes_behind)}}));
    }
    uint64_t bad = hs.lines_cut + hs.lines_rejected;
    if (bad > bad_lines) bad_lines_at = now;
    bad_lines = bad;
    if (bad_lines_at != kNoTime && now - bad_lines_at < kDroppingWindow) {
      out.push_back(
          Make("QuorumwatchDroppingLines", "warning", "", "", "", kNoTime,
               {{"summary", fmt::format("quorumwatch cut or rejected log lines in the last 10 "
                                        "minutes ({} cut, {} rejected since start)",
                                        hs.lines_cut, hs.lines_rejected)},
                {"description",
                 "Lines over max_line_bytes are cut; undecodable lines are skipped. "
                 "What they said is not judged."},
                {"lines_cut", std::to_string(hs.lines_cut)},
                {"lines_rejected", std::to_string(hs.lines_rejected)}}));
    }
    if (hs.ban_outbox_pending == 0) {
      outbox_seen = kNoTime;
    } else if (outbox_seen == kNoTime) {
      outbox_seen = now;
    }
    // Undelivered since the decision, but not before this sink saw it (a
    // decision replayed from old history is not two minutes late at once).
    Nanos since = outbox_seen;
    if (since != kNoTime && hs.ban_outbox_oldest != kNoTime) {
      since = std::max(since, hs.ban_outbox_oldest);
    }
    if (since != kNoTime && now - since > kBanUndeliveredAfter) {
      out.push_back(
          Make("QuorumwatchBanUndelivered", "critical", "", "", "", kNoTime,
               {{"summary", fmt::format("{} ban decision(s) not delivered to the ban controller, "
                                        "the oldest since {}",
                                        hs.ban_outbox_pending, t(hs.ban_outbox_oldest))},
                {"description",
                 "The failover a ban asks for has not happened: check the ban "
                 "controller and quorumwatch's log."},
                {"pending", std::to_string(hs.ban_outbox_pending)},
                {"since", t(hs.ban_outbox_oldest)}}));
    }
    return out;
  }

  // --- the firing set (any thread; REQUIRES: mu held)

  void QueueAll(const std::shared_ptr<const Alert>& a, Nanos resolved_at) {
    for (auto& t : targets) t->pending[a->labels] = Update{a, resolved_at, ++seq};
  }

  // Diffs the desired alerts against the firing set and queues the changes
  // for every URL. Returns a line to log ("" for none). REQUIRES: mu held.
  std::string Apply(std::vector<Alert> desired, Nanos now) {
    std::map<std::string, std::shared_ptr<const Alert>> before = firing;
    before.erase(watchdog->labels);
    if (!evaluated) before.insert(restored.begin(), restored.end());
    std::map<std::string, std::shared_ptr<const Alert>> next;
    bool changed = !evaluated;
    for (Alert& a : desired) {
      if (next.count(a.labels)) continue;
      auto prev = before.find(a.labels);
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
      next.emplace(sp->labels, std::move(sp));
    }
    for (const auto& [key, a] : before) {
      if (next.count(key)) continue;
      counters.received->fetch_add(1);
      QueueAll(a, std::max(now, a->starts_at));
      changed = true;
    }
    next.emplace(watchdog->labels, watchdog);
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
        SendBatch(t, *transport, lock, config.timeout);
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
                 Nanos timeout) {
    Nanos now = clock->Now();
    std::vector<std::pair<std::string, uint64_t>> sent;
    HttpRequest req;
    req.url = t.endpoint;
    req.headers = {{"Content-Type", "application/json"}, {"User-Agent", "quorumwatch"}};
    req.timeout = timeout;
    req.body = "[";
    for (const auto& [key, u] : t.pending) {
      if (sent.size() == kMaxBatch) break;
      if (!sent.empty()) req.body.push_back(',');
      const Alert& a = *u.alert;
      Nanos ends = u.resolved_at != kNoTime ? u.resolved_at : now + hold;
      req.body += "{\"labels\":" + a.labels + ",\"annotations\":" + a.annotations;
      req.body += ",\"startsAt\":\"" + Time(a.starts_at) + "\",\"endsAt\":\"" +
                  Time(std::max(ends, a.starts_at)) + "\"";
      if (!config.generator_url.empty()) {
        req.body += ",\"generatorURL\":";
        AppendJsonString(req.body, config.generator_url);
      }
      req.body.push_back('}');
      sent.emplace_back(key, u.seq);
    }
    req.body.push_back(']');

    lock.unlock();
    HttpResponse resp = transport.Send(req);
    lock.lock();

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
    std::string out = "{\"version\":1,\"alerts\":[";
    bool first = true;
    for (const auto& [key, a] : firing) {
      if (a == watchdog) continue;
      out += first ? "\n" : ",\n";
      first = false;
      out += "{\"labels\":" + a->labels + ",\"annotations\":" + a->annotations +
             ",\"startsAt\":\"" + Time(a->starts_at) + "\"}";
    }
    out += "]}\n";
    return out;
  }

  void WriteState() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      wake.wait(lock, [&] { return dirty || closing; });
      if (!dirty) break;  // closing with nothing left to write
      dirty = false;
      std::string text = StateJson();
      lock.unlock();
      if (auto w = WriteFileAtomic(state_path, text); !w) {
        Log("alertmanager: cannot save the firing alerts: " + w.error().message);
      }
      lock.lock();
    }
  }

  // Reads the alerts a previous run left firing. Called before any thread
  // runs. A damaged file is reported and ignored.
  void LoadState() {
    std::ifstream in(state_path, std::ios::binary);
    if (!in) return;
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    std::string error = ReadState(text);
    if (!error.empty()) {
      restored.clear();
      Log(state_path + ": " + error + "; previously firing alerts are not resolved");
    }
  }

  std::string ReadState(const std::string& text) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(text);
    simdjson::dom::element doc;
    if (parser.parse(padded).get(doc)) return "not valid JSON";
    simdjson::dom::array alerts;
    if (doc["alerts"].get_array().get(alerts)) return "no \"alerts\" array";
    for (simdjson::dom::element e : alerts) {
      simdjson::dom::object labels_obj, ann_obj;
      std::string_view starts;
      if (e["labels"].get_object().get(labels_obj) || e["annotations"].get_object().get(ann_obj) ||
          e["startsAt"].get_string().get(starts)) {
        return "an alert without labels, annotations or startsAt";
      }
      std::map<std::string, std::string> labels;
      for (auto field : labels_obj) {
        std::string_view v;
        if (field.value.get_string().get(v) || !ValidLabelName(field.key)) {
          return "a bad label in an alert";
        }
        labels[std::string(field.key)] = Sanitize(v, kMaxLabelBytes);
      }
      Annotations ann;
      for (auto field : ann_obj) {
        std::string_view v;
        if (field.value.get_string().get(v) || !ValidLabelName(field.key)) {
          return "a bad annotation in an alert";
        }
        ann.emplace_back(std::string(field.key), std::string(v));
      }
      Alert a;
      a.name = labels["alertname"];
      a.starts_at = ParseRfc3339(starts);
      if (a.name.empty() || a.starts_at == kNoTime) return "an alert without alertname or time";
      if (a.name == kWatchdog) continue;
      a.labels = LabelsJson(labels);
      a.annotations = AnnotationsJson(ann);
      std::string key = a.labels;
      restored.emplace(std::move(key), std::make_shared<const Alert>(std::move(a)));
    }
    return "";
  }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (closing) return;
      closing = true;
      close_deadline = std::chrono::steady_clock::now() + kCloseGrace;
    }
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
      return Fail(where + "label name '" + Sanitize(name, 64) +
                  "' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)");
    }
    if (Reserved(name)) {
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
  for (const auto& [name, value] : config.labels) {
    m->static_labels[name] = Sanitize(value, kMaxLabelBytes);
  }
  m->hold = 4 * config.resend_interval;
  m->stale_after = std::max(kStaleStatusMin, 3 * config.resend_interval);
  Nanos now = m->clock->Now();
  m->last_status = now;
  m->watchdog = std::make_shared<const Alert>(
      m->Make(kWatchdog, "none", "", "", "", now,
              {{"summary", "quorumwatch is running: this alert always fires"},
               {"description",
                "Route it to a dead man's switch: its absence means quorumwatch or its "
                "delivery to Alertmanager has stopped."}}));
  m->firing.emplace(m->watchdog->labels, m->watchdog);
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
    std::vector<Alert> desired = m.Evaluate(status, now);
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
