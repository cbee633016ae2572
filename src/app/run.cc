#include "app/run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <memory>
#include <simdjson.h>
#include <thread>

#include "app/config.h"
#include "app/control.h"
#include "app/names.h"
#include "app/replay.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/metrics.h"
#include "detect/detector.h"
#include "detect/state_codec.h"
#include "pipeline/pipeline.h"
#include "sink/alertmanager_sink.h"
#include "sink/ban_sink.h"
#include "sink/event_sink.h"
#include "sink/metrics_sink.h"
#include "source/file_tailer.h"

namespace qw::app {
namespace {

std::atomic<int> g_stop{0};
std::atomic<int> g_reload{0};
std::atomic<int> g_wake_fd{-1};

void OnSignal(int sig) {
  if (sig == SIGHUP) {
    g_reload.store(1);
  } else {
    g_stop.store(1);
  }
  int fd = g_wake_fd.load();
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t r = ::write(fd, &one, sizeof one);
    (void)r;
  }
}

void Log(const std::string& msg) { std::fprintf(stderr, "quorumwatch: %s\n", msg.c_str()); }

Nanos WallNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FieldAt(std::string_view text, int index) {
  size_t start = 0;
  for (int i = 0; i < index; ++i) {
    start = text.find('\t', start);
    if (start == std::string_view::npos) return "";
    ++start;
  }
  size_t end = text.find('\t', start);
  return std::string(text.substr(start, end == std::string_view::npos ? text.size() - start
                                                                       : end - start));
}

// What the reading side (main thread) tells the detector side, and the
// counters both update. Lives for one configuration life.
struct RunShared {
  // Health, written by the main thread, read by the consumer thread.
  std::atomic<bool> caught_up{false};  // sticky once every file was read to its end
  std::atomic<bool> input_outage{false};
  std::atomic<Nanos> last_input{kNoTime};
  std::atomic<uint64_t> bytes_behind{0}, files_behind{0}, lines_cut{0}, lines_rejected{0};
  // Operator requests, handed from the main thread to the consumer thread.
  std::mutex mu;
  std::vector<ControlRequest> requests;  // guarded by mu
  // Telemetry (the registry outlives reloads).
  Metrics* metrics = nullptr;
  ComponentCounters source, match, detect;
  std::atomic<int64_t>* queue_depth = nullptr;
};

// ---------------------------------------------------------------------------
// Detector side (the pipeline's consumer thread).

class LiveConsumer {
 public:
  LiveConsumer(const Config& config, const match::Registry& registry,
               std::vector<sink::EventSink*> sinks, std::vector<sink::BanSink*> ban_sinks,
               RunShared* shared)
      : config_(config), registry_(registry), sinks_(sinks), ban_sinks_(std::move(ban_sinks)),
        shared_(shared), orderer_(std::move(sinks)), detector_({}, &orderer_) {}

  // Checkpoint restore: chains first, then the detector's state (nodes wait
  // until their streams start), then the file positions for the tailers.
  Result<std::vector<source::SavedPosition>> Restore(const std::string& text) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(text).get(doc)) return Fail("checkpoint is not JSON");
    simdjson::dom::array chains, files;
    if (!doc["chains"].get(chains)) {
      for (auto c : chains) {
        std::string_view name, family;
        if (c["name"].get(name) || c["family"].get(family)) continue;
        EnsureChain(std::string(name), registry_.Find(family));
      }
    }
    std::string_view state;
    simdjson::dom::element det;
    if (!doc["detector"].get(det)) {
      std::string json = simdjson::minify(det);
      if (auto r = detect::DecodeState(json, &detector_); !r) return tl::unexpected(r.error());
    }
    std::vector<source::SavedPosition> out;
    if (!doc["files"].get(files)) {
      for (auto f : files) {
        source::SavedPosition p;
        std::string_view path;
        uint64_t dev = 0, ino = 0, fp = 0, fp_len = 0, offset = 0;
        if (f["path"].get(path) || f["dev"].get(dev) || f["ino"].get(ino) ||
            f["fingerprint"].get(fp) || f["fp_len"].get(fp_len) || f["offset"].get(offset)) {
          continue;
        }
        p.path = std::string(path);
        p.dev = dev;
        p.ino = ino;
        p.fingerprint = fp;
        p.fp_len = static_cast<uint32_t>(fp_len);
        p.offset = offset;
        out.push_back(p);
      }
    }
    return out;
  }

  // Time while catching up (history, a restart after downtime): files are
  // read one after another, so a file's later lines must not fire another
  // file's timers. Ticks follow the minimum latest time over the streams
  // not yet read to their end, as replay's merge does; once every stream is
  // at its end, the latest time (and the wall-clock ticks) lead.
  void Consume(pipeline::Batch& b) {
    uint64_t lines = 0, signals = 0;
    for (size_t i = 0; i < b.records.size(); ++i) {
      const pipeline::Record& r = b.records[i];
      switch (r.kind) {
        case pipeline::RecordKind::kStreamStart:
          StartStream(r.stream, b.text(r));
          break;
        case pipeline::RecordKind::kPosition: {
          auto it = streams_.find(r.stream);
          if (it == streams_.end()) break;
          std::string text(b.text(r));
          it->second.offset = std::stoull(text);
          it->second.at_end = text.find(" end") != std::string::npos;
          Tick();
          break;
        }
        case pipeline::RecordKind::kStreamEnd: {
          auto it = streams_.find(r.stream);
          if (it == streams_.end()) break;
          const int node = it->second.node;
          Nanos t = std::max(it->second.latest, tick_);
          streams_.erase(it);
          Tick();
          detector_.DetachStream(node, std::max(t, tick_));
          break;
        }
        case pipeline::RecordKind::kTick:
          if (r.time != kNoTime && (tick_ == kNoTime || r.time > tick_)) {
            bool behind = false;
            for (const auto& [id, st] : streams_) behind = behind || !st.at_end;
            if (!behind) {
              tick_ = r.time;
              detector_.OnTick(tick_);
            }
          }
          break;
        case pipeline::RecordKind::kLine: {
          auto it = streams_.find(r.stream);
          if (it == streams_.end()) break;
          Stream& st = it->second;
          if (r.time != kNoTime && r.time > st.latest) st.latest = r.time;
          st.at_end = false;
          Tick();
          const int node = st.node;
          const Signal& s = b.signals[i];
          ++lines;
          detector_.CountLines(node, 1, s.kind != SignalKind::kNone ? 1 : 0, 0);
          if (s.kind != SignalKind::kNone) {
            ++signals;
            Nanos at = r.time == kNoTime ? tick_ : std::max(r.time, tick_);
            detector_.OnSignal(node, at, s, b.text(r));
          }
          break;
        }
      }
    }
    shared_->match.processed->fetch_add(lines, std::memory_order_relaxed);
    shared_->detect.received->fetch_add(signals, std::memory_order_relaxed);
    shared_->detect.processed->fetch_add(signals, std::memory_order_relaxed);
    bool operator_changes = ApplyRequests();
    uint64_t before = orderer_.written();
    if (tick_ != kNoTime) orderer_.Release(tick_);
    Nanos now = WallNow();
    // Level-triggered sinks hear about changes at once, else once a second.
    if (orderer_.written() != before || operator_changes || now - last_status_ >= kSecond) {
      SendStatus(now);
    }
    if (operator_changes || now - last_checkpoint_ >= config_.checkpoint_interval) {
      WriteCheckpoint(now);
    }
  }

  // At shutdown, on the consumer's thread after the last batch (Finish).
  void Close() {
    orderer_.ReleaseAll();
    SendStatus(WallNow());
    WriteCheckpoint(WallNow());
  }

  uint64_t events() const { return orderer_.written(); }

 private:
  struct Stream {
    int node = -1;
    std::string path;
    uint64_t dev = 0, ino = 0, fp = 0, fp_len = 0, offset = 0;
    Nanos latest = kNoTime;  // latest record time
    bool at_end = false;     // read to the end of its file (caught up)
  };

  // Operator requests (`quorumwatch bans`), at the detector's time. Returns
  // true when one changed anything.
  bool ApplyRequests() {
    std::vector<ControlRequest> requests;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      requests.swap(shared_->requests);
    }
    bool changed = false;
    for (const auto& r : requests) {
      Nanos now = tick_ != kNoTime ? tick_ : WallNow();
      int known = 0;
      for (size_t i = 0; i < detector_.node_count(); ++i) {
        known += detector_.NodeMatches(static_cast<int>(i), r.node) ? 1 : 0;
      }
      std::string outcome;
      if (r.op == "hold") {
        detector_.SetHold(r.node, true, now);
        outcome = "held: no ban for " + r.node + " until released" +
                  (known == 0 ? " (no such node seen yet)" : "");
      } else if (r.op == "release") {
        bool was = detector_.holds().count(r.node) > 0;
        detector_.SetHold(r.node, false, now);
        outcome = was ? "released: " + r.node + " can be banned again"
                      : "error: " + r.node + " was not held";
      } else {
        int n = detector_.OperatorUnban(r.node, now);
        outcome = n > 0 ? "unbanned: " + r.node + " (an unban decision goes to the ban sinks)"
                        : (known == 0 ? "error: no node " + r.node
                                      : "error: " + r.node + " is not banned");
      }
      Log("operator request " + r.op + " " + r.node + ": " + outcome);
      CompleteRequest(config_.state_dir, r, outcome);
      changed = true;
    }
    return changed;
  }

  void SendStatus(Nanos now) {
    last_status_ = now;
    sink::Status st;
    st.now = now;
    st.detector_time = tick_;
    for (size_t c = 0; c < detector_.chain_count(); ++c) {
      const detect::ChainState& ch = detector_.chain(static_cast<int>(c));
      sink::ChainStatus cs;
      cs.name = ch.spec.name;
      cs.family = ch.spec.family;
      cs.head = ch.head;
      cs.halted = ch.halted;
      cs.halt_height = ch.halt_height;
      cs.halted_at = ch.halted_at;
      st.chains.push_back(std::move(cs));
    }
    for (size_t i = 0; i < detector_.node_count(); ++i) {
      const detect::NodeState& n = detector_.node(static_cast<int>(i));
      const detect::ChainState& ch = detector_.chain(n.spec.chain);
      sink::NodeStatus ns;
      ns.chain = ch.spec.name;
      ns.family = ch.spec.family;
      ns.namespace_ = n.spec.namespace_;
      ns.node = n.spec.name;
      ns.signer = n.signer || n.spec.signer;
      ns.retired = n.retired;
      ns.height = n.last_height;
      ns.last_advance = n.last_advance;
      ns.syncing = n.syncing;
      ns.in_consensus = !n.retired && !n.ooc && !n.syncing && n.last_height >= 0;
      ns.stalled = n.stalled && !ch.halted;
      if (ns.stalled && n.stall_base != kNoTime) {
        ns.stalled_since = n.stall_base + n.spec.thresholds.stall_after;
      }
      ns.out_of_consensus = n.ooc;
      ns.out_of_consensus_since = n.ooc_since;
      ns.out_of_consensus_reason = n.ooc_reason;
      ns.consensus_failure = n.failed;
      ns.consensus_failure_at = n.failed_at;
      ns.consensus_failure_height = n.failed_height;
      ns.missed_in_window = n.missed_in_window;
      ns.missed_window = n.spec.thresholds.missed_window;
      ns.missed_max = n.spec.thresholds.missed_max;
      ns.missed_total = n.missed_total;
      ns.double_sign_at = n.double_sign_at;
      ns.double_sign = n.double_sign_at != kNoTime;
      ns.double_sign_critical = n.double_sign_critical;
      ns.double_sign_reason = n.double_sign_reason;
      ns.double_sign_height = n.last_double_sign_height;
      ns.banned = n.banned;
      ns.banned_at = n.banned_at;
      ns.ban_held = n.ban_held && !n.banned && n.period_open;
      ns.ban_held_rail = n.ban_held_rail;
      ns.period_start = n.period_open ? n.period_start : kNoTime;
      ns.validator = n.validator.empty() ? n.spec.validator_address : n.validator;
      for (const auto& ref : detector_.holds()) {
        ns.operator_hold = ns.operator_hold || detector_.NodeMatches(static_cast<int>(i), ref);
      }
      st.nodes.push_back(std::move(ns));
    }
    sink::HealthStatus& h = st.health;
    h.caught_up = shared_->caught_up.load();
    h.input_outage = shared_->input_outage.load();
    h.last_input = shared_->last_input.load();
    h.bytes_behind = shared_->bytes_behind.load();
    h.files_behind = shared_->files_behind.load();
    h.lines_cut = shared_->lines_cut.load();
    h.lines_rejected = shared_->lines_rejected.load();
    for (const sink::BanSink* b : ban_sinks_) {
      h.ban_outbox_pending += b->pending();
      Nanos oldest = b->oldest_pending();
      if (oldest != kNoTime && (h.ban_outbox_oldest == kNoTime || oldest < h.ban_outbox_oldest)) {
        h.ban_outbox_oldest = oldest;
      }
    }
    for (sink::EventSink* s : sinks_) s->OnStatus(st);
  }

  // Moves the detector's time to the watermark (never backwards).
  void Tick() {
    Nanos behind = kNoTime, latest = kNoTime;
    bool any_behind = false;
    for (const auto& [id, st] : streams_) {
      // A stream still to be read whose time is unknown yet holds time back.
      if (st.latest == kNoTime && !st.at_end) return;
      if (st.latest == kNoTime) continue;
      if (latest == kNoTime || st.latest > latest) latest = st.latest;
      if (!st.at_end) {
        any_behind = true;
        if (behind == kNoTime || st.latest < behind) behind = st.latest;
      }
    }
    Nanos wm = any_behind ? behind : latest;
    if (wm != kNoTime && (tick_ == kNoTime || wm > tick_)) {
      tick_ = wm;
      detector_.OnTick(tick_);
    }
  }

  int EnsureChain(const std::string& name, int family) {
    int c = detector_.FindChain(name);
    if (c >= 0) return c;
    detect::ChainSpec spec = ChainSpecFor(config_, registry_, name, family);
    chain_family_[name] = spec.family;
    return detector_.AddChain(std::move(spec));
  }

  // text: path, namespace, pod, container, chain, family, signer, dev, ino,
  // fingerprint, fp_len, offset (tab-separated; see LiveSink::Start).
  void StartStream(uint32_t id, std::string_view text) {
    Stream s;
    s.path = FieldAt(text, 0);
    std::string ns = FieldAt(text, 1), pod = FieldAt(text, 2), chain = FieldAt(text, 4);
    int family = registry_.Find(FieldAt(text, 5));
    bool signer = FieldAt(text, 6) == "1";
    s.dev = std::stoull(FieldAt(text, 7));
    s.ino = std::stoull(FieldAt(text, 8));
    s.fp = std::stoull(FieldAt(text, 9));
    s.fp_len = std::stoull(FieldAt(text, 10));
    s.offset = std::stoull(FieldAt(text, 11));
    int node = -1;
    if (signer) {
      // A remote signer's votes count as its pod's node's own.
      for (const auto& [key, idx] : nodes_) {
        if (std::get<1>(key) == ns && std::get<2>(key) == pod) node = idx;
      }
    }
    if (node < 0) {
      int c = EnsureChain(chain, family);
      auto key = std::make_tuple(chain, ns, pod);
      auto it = nodes_.find(key);
      if (it != nodes_.end()) {
        node = it->second;
      } else {
        detect::NodeSpec spec;
        spec.name = pod;
        spec.namespace_ = ns;
        spec.chain = c;
        spec.thresholds = detector_.chain(c).spec.thresholds;
        if (const NodeConfig* nc = config_.FindNode(ns, pod)) {
          spec.signer = nc->signer;
          spec.validator_address = nc->validator_address;
          nc->overrides.ApplyTo(&spec.thresholds);
        }
        node = detector_.AddNode(std::move(spec));
        nodes_.emplace(key, node);
      }
    }
    s.node = node;
    detector_.AttachStream(node);
    streams_[id] = s;
  }

  void WriteCheckpoint(Nanos now) {
    last_checkpoint_ = now;
    std::string out = "{\"version\":1,\"written\":";
    out += std::to_string(now);
    out += ",\"chains\":[";
    bool first = true;
    for (const auto& [name, family] : chain_family_) {
      if (!first) out += ",";
      first = false;
      out += "{\"name\":" + JsonString(name) + ",\"family\":" + JsonString(family) + "}";
    }
    out += "],\"files\":[";
    first = true;
    for (const auto& [id, s] : streams_) {
      if (!first) out += ",";
      first = false;
      out += "{\"path\":" + JsonString(s.path) + ",\"dev\":" + std::to_string(s.dev) +
             ",\"ino\":" + std::to_string(s.ino) + ",\"fingerprint\":" + std::to_string(s.fp) +
             ",\"fp_len\":" + std::to_string(s.fp_len) + ",\"offset\":" + std::to_string(s.offset) +
             "}";
    }
    out += "],\"detector\":";
    out += detect::EncodeState(detector_);
    out += "}\n";
    if (auto w = WriteFileAtomic(config_.state_dir + "/checkpoint.json", out); !w) {
      Log("cannot write checkpoint " + w.error().message);
    }
  }

  const Config& config_;
  const match::Registry& registry_;
  std::vector<sink::EventSink*> sinks_;
  std::vector<sink::BanSink*> ban_sinks_;
  RunShared* shared_;
  sink::EventOrderer orderer_;
  detect::Detector detector_;
  Nanos last_status_ = 0;
  std::map<uint32_t, Stream> streams_;
  std::map<std::tuple<std::string, std::string, std::string>, int> nodes_;
  std::map<std::string, std::string> chain_family_;
  Nanos tick_ = kNoTime;  // the detector's time
  Nanos last_checkpoint_ = 0;
};

// ---------------------------------------------------------------------------
// Source side (the main thread): tailer records into batches.

class LiveSink : public source::TailSink {
 public:
  // `registry`: detection (Registry::Detect) happens on this thread only.
  LiveSink(const Config& config, match::Registry& registry, pipeline::Stages* stages,
           RunShared* shared)
      : config_(config), registry_(registry), stages_(stages), shared_(shared),
        matchers_(registry.size()) {
    batch_ = stages_->Acquire();
  }

  void OnStart(const source::TailedFile& f) override {
    LiveStream& s = streams_[f.stream];
    s.file = f;
    s.position = f.offset;  // a quiet file keeps the offset it was opened at
    s.name = NameFromPath(f.path);
    const StreamRule* rule = nullptr;
    for (const auto& r : config_.streams) {
      if (r.Matches(s.name.namespace_, s.name.pod, s.name.container)) {
        rule = &r;
        break;
      }
    }
    if (rule != nullptr) {
      s.signer = rule->signer;
      if (!rule->timezone.empty()) ParseTimezone(rule->timezone, &s.tz);
      if (!rule->chain.empty() && rule->chain != "auto") {
        if (const ChainConfig* cc = config_.FindChain(rule->chain)) {
          s.family = registry_.Find(cc->family);
          s.tz = cc->tz_offset_seconds;
        } else {
          s.family = registry_.Find(rule->chain);
        }
        if (s.family >= 0) s.chain = rule->chain;
      }
    }
    s.detecting = s.family < 0;
    if (!s.detecting) Start(f.stream, s);
  }

  void OnRecord(uint32_t id, std::string_view msg, Nanos runtime_time) override {
    last_input_ = WallNow();
    shared_->last_input.store(last_input_, std::memory_order_relaxed);
    shared_->source.received->fetch_add(1, std::memory_order_relaxed);
    LiveStream& s = streams_[id];
    if (s.detecting) {
      s.held.emplace_back(std::string(msg), runtime_time);
      size_t n = s.held.size();
      if (n == 1 || n == 5 || n == 20 || n == 50 || n >= kDetectLimit) TryDetect(id, s, n >= kDetectLimit);
      return;
    }
    Append(id, s, msg, runtime_time);
  }

  void OnPosition(uint32_t id, uint64_t offset, bool at_end) override {
    LiveStream& s = streams_[id];
    s.position = offset;
    s.at_end = at_end;
    if (!s.started) return;  // reported with the start
    AppendMeta(id, pipeline::RecordKind::kPosition,
               std::to_string(offset) + (at_end ? " end" : ""), kNoTime);
  }

  void OnEnd(uint32_t id) override {
    LiveStream& s = streams_[id];
    if (s.detecting) TryDetect(id, s, true);
    AppendMeta(id, pipeline::RecordKind::kStreamEnd, "", s.last_time);
    streams_.erase(id);
  }

  // After each poll: streams still detecting get another try, a tick goes
  // out once history is read, and the batch is handed on (latency first).
  void EndOfPoll(bool caught_up) {
    for (auto& [id, s] : streams_) {
      if (s.detecting && !s.held.empty()) TryDetect(id, s, false);
    }
    Nanos now = WallNow();
    if (caught_up) {
      // Silence counts only while lines still arrive somewhere: when every
      // stream is quiet, ticks stop at the last input plus the outage grace.
      Nanos tick = std::min(now, std::max(last_input_, started_) + config_.input_outage_after);
      if (now - std::max(last_input_, started_) > config_.input_outage_after) {
        if (!outage_) Log("input outage: no line from any stream for " +
                          FormatDuration(now - std::max(last_input_, started_)) +
                          "; node stalls are not judged until lines arrive again");
        outage_ = true;
      } else {
        if (outage_) Log("input resumed");
        outage_ = false;
      }
      shared_->input_outage.store(outage_);
      AppendMeta(0, pipeline::RecordKind::kTick, "", tick);
    }
    Flush();
  }

  void Flush() {
    if (batch_->records.empty()) return;
    shared_->source.processed->fetch_add(lines_in_batch_, std::memory_order_relaxed);
    shared_->match.received->fetch_add(lines_in_batch_, std::memory_order_relaxed);
    lines_in_batch_ = 0;
    stages_->Dispatch(batch_);
    batch_ = stages_->Acquire();
  }

  // Hands back the unused batch (before Stages::Finish).
  void Done() {
    Flush();
    stages_->Release(batch_);
    batch_ = nullptr;
  }

 private:
  static constexpr size_t kDetectLimit = 200;
  struct LiveStream {
    source::TailedFile file;
    StreamName name;
    std::string chain;
    int family = -1;
    bool signer = false;
    bool detecting = false;
    bool started = false;
    int32_t tz = 0;
    std::vector<std::pair<std::string, Nanos>> held;
    uint64_t position = 0;
    bool at_end = false;
    Nanos last_time = kNoTime;
    match::FamilyMatcher::TimeHint hint;
  };

  void TryDetect(uint32_t id, LiveStream& s, bool final) {
    std::vector<std::string_view> samples;
    for (const auto& [text, t] : s.held) samples.push_back(text);
    auto d = registry_.Detect(samples);
    if (d.family < 0 && !final) return;
    if (d.family < 0) Log(s.file.path + ": family unknown (" + d.reason + "); its lines are counted, not matched");
    s.family = d.family;
    s.detecting = false;
    Start(id, s);
    auto held = std::move(s.held);
    s.held.clear();
    for (const auto& [text, t] : held) Append(id, s, text, t);
  }

  void Start(uint32_t id, LiveStream& s) {
    if (s.family >= 0 && registry_.file(static_cast<size_t>(s.family)).signer_role) s.signer = true;
    if (s.chain.empty()) {
      std::string fam = s.family >= 0 ? registry_.file(static_cast<size_t>(s.family)).family : "unknown";
      // chain: auto forms <family>/<namespace>, so namespaces never merge;
      // the one configured chain of the family wins when there is one.
      s.chain = DefaultChain(config_, registry_, s.family,
                             s.name.namespace_.empty() ? fam : fam + "/" + s.name.namespace_);
    }
    std::string desc = s.file.path + "\t" + s.name.namespace_ + "\t" + s.name.pod + "\t" +
                       s.name.container + "\t" + s.chain + "\t" +
                       (s.family >= 0 ? registry_.file(static_cast<size_t>(s.family)).family : "") +
                       "\t" + (s.signer ? "1" : "0") + "\t" + std::to_string(s.file.dev) + "\t" +
                       std::to_string(s.file.ino) + "\t" + std::to_string(s.file.fingerprint) +
                       "\t" + std::to_string(s.file.fp_len) + "\t" + std::to_string(s.position);
    AppendMeta(id, pipeline::RecordKind::kStreamStart, desc, kNoTime);
    s.started = true;
    if (s.at_end) {
      AppendMeta(id, pipeline::RecordKind::kPosition, std::to_string(s.position) + " end", kNoTime);
    }
  }

  Nanos TimeOf(LiveStream& s, std::string_view msg, Nanos runtime_time) {
    Nanos t = runtime_time;
    if (t == kNoTime && s.family >= 0) {
      auto& m = matchers_[static_cast<size_t>(s.family)];
      if (!m) {
        auto made = match::FamilyMatcher::Create(registry_.file(static_cast<size_t>(s.family)));
        if (made) m = std::move(*made);
      }
      if (m) t = m->MessageTime(msg, YearOf(WallNow()), s.tz, &s.hint);
    }
    if (t == kNoTime) t = s.last_time != kNoTime ? s.last_time : WallNow();
    s.last_time = t;
    return t;
  }

  void Append(uint32_t id, LiveStream& s, std::string_view msg, Nanos runtime_time) {
    Nanos t = TimeOf(s, msg, runtime_time);
    pipeline::Record r{id, static_cast<uint32_t>(batch_->arena.size()),
                       static_cast<uint32_t>(msg.size()), pipeline::RecordKind::kLine,
                       static_cast<int16_t>(s.family), t};
    batch_->arena.append(msg);
    batch_->arena.push_back('\n');
    batch_->records.push_back(r);
    ++lines_in_batch_;
    if (batch_->arena.size() >= kBatchBytes || batch_->records.size() >= kBatchRecords) Flush();
  }

  void AppendMeta(uint32_t id, pipeline::RecordKind kind, const std::string& text, Nanos t) {
    pipeline::Record r{id, static_cast<uint32_t>(batch_->arena.size()),
                       static_cast<uint32_t>(text.size()), kind, -1, t};
    batch_->arena.append(text);
    batch_->arena.push_back('\n');
    batch_->records.push_back(r);
    if (batch_->arena.size() >= kBatchBytes || batch_->records.size() >= kBatchRecords) Flush();
  }

 public:
  static constexpr size_t kBatchBytes = 64 << 10;
  static constexpr size_t kBatchRecords = 2048;

 private:
  const Config& config_;
  match::Registry& registry_;
  pipeline::Stages* stages_;
  RunShared* shared_;
  pipeline::Batch* batch_ = nullptr;
  uint64_t lines_in_batch_ = 0;
  std::map<uint32_t, LiveStream> streams_;
  std::vector<std::unique_ptr<match::FamilyMatcher>> matchers_;
  Nanos started_ = WallNow();
  Nanos last_input_ = kNoTime;
  bool outage_ = false;
};

struct Loaded {
  Config config;
  std::unique_ptr<match::Registry> registry;
};

Result<Loaded> Load(const RunArgs& args) {
  Loaded l;
  auto c = LoadConfig(args.config_path);
  if (!c) return tl::unexpected(c.error());
  l.config = std::move(*c);
  auto r = LoadRegistry(args.patterns_dir);
  if (!r) return tl::unexpected(r.error());
  l.registry = std::move(*r);
  for (const auto& ch : l.config.chains) {
    if (l.registry->Find(ch.family) < 0) {
      return Fail(l.config.path + ":" + std::to_string(ch.line) + ": chain '" + ch.name +
                  "': unknown family '" + ch.family + "'");
    }
  }
  if (l.config.sources.empty()) return Fail(l.config.path + ":1: 'sources' is empty: nothing to read");
  bool jsonl = false;
  for (const auto& s : l.config.sinks) jsonl = jsonl || s.type == "jsonl";
  if (!jsonl) Log(l.config.path + ": no jsonl sink: events go to standard output");
  return l;
}

enum class Outcome { kStop, kReload, kError };

// One life of the pipeline with one configuration.
Outcome RunWith(const RunArgs& args, Loaded& loaded, std::unique_ptr<Loaded>* next,
                Metrics* metrics) {
  const Config& config = loaded.config;
  if (::mkdir(config.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    Log("cannot create state_dir " + config.state_dir + ": " + std::strerror(errno));
    return Outcome::kError;
  }
  auto lock = StateLock::Acquire(config.state_dir);
  if (!lock) {
    Log(lock.error().message);
    return Outcome::kError;
  }
  RunShared shared;
  shared.metrics = metrics;
  shared.source = ComponentCounters::For(metrics, "source", "file");
  shared.match = ComponentCounters::For(metrics, "stage", "match");
  shared.detect = ComponentCounters::For(metrics, "stage", "detect");
  shared.queue_depth = metrics->Gauge("quorumwatch_queue_depth", {{"queue", "batches"}},
                                      "Line batches between the reader and the detector.");

  // Sinks.
  sink::SinkContext ctx;
  ctx.state_dir = config.state_dir;
  ctx.metrics = metrics;
  ctx.clock = SystemClock::Get();
  ctx.log = [](const std::string& msg) { Log(msg); };
  std::vector<std::unique_ptr<std::FILE, int (*)(std::FILE*)>> files;
  std::vector<std::unique_ptr<sink::EventSink>> owned;
  std::vector<sink::EventSink*> sinks;
  std::vector<sink::BanSink*> ban_sinks;
  auto close_sinks = [&owned]() {
    for (auto& o : owned) o->Close();
  };
  for (const auto& s : config.sinks) {
    Result<std::unique_ptr<sink::EventSink>> made = Fail("");
    if (s.type == "jsonl") {
      std::FILE* f = s.path == "/dev/stdout" || s.path == "-" ? stdout : std::fopen(s.path.c_str(), "a");
      if (f == nullptr) {
        made = Fail(s.path + ": cannot open for appending: " + std::strerror(errno));
      } else {
        if (f != stdout) files.emplace_back(f, &std::fclose);
        made = std::unique_ptr<sink::EventSink>(std::make_unique<sink::JsonlSink>(
            f, ComponentCounters::For(metrics, "sink", "jsonl")));
      }
    } else if (s.type == "alertmanager") {
      made = sink::AlertmanagerSink::Create(s, ctx);
    } else if (s.type == "ban") {
      auto b = sink::BanSink::Create(s, ctx);
      if (b) ban_sinks.push_back(b->get());
      made = b ? Result<std::unique_ptr<sink::EventSink>>(std::move(*b))
               : tl::unexpected(b.error());
    } else if (s.type == "metrics") {
      made = sink::MetricsSink::Create(s, ctx);
    }
    if (!made) {
      Log(made.error().message);
      close_sinks();
      return Outcome::kError;
    }
    owned.push_back(std::move(*made));
    sinks.push_back(owned.back().get());
  }
  bool has_jsonl = false;
  for (const auto& s : config.sinks) has_jsonl = has_jsonl || s.type == "jsonl";
  if (!has_jsonl) {
    owned.push_back(std::make_unique<sink::JsonlSink>(
        stdout, ComponentCounters::For(metrics, "sink", "jsonl")));
    sinks.push_back(owned.back().get());
  }

  LiveConsumer consumer(config, *loaded.registry, sinks, ban_sinks, &shared);
  auto cp = ReadWholeFile(config.state_dir + "/checkpoint.json");
  bool had_checkpoint = cp.has_value();
  std::vector<source::SavedPosition> saved;
  if (had_checkpoint) {
    auto r = consumer.Restore(*cp);
    if (!r) {
      Log(config.state_dir + "/checkpoint.json: " + r.error().message +
          "; starting without it");
      had_checkpoint = false;
    } else {
      saved = std::move(*r);
    }
  }

  std::vector<std::unique_ptr<source::FileTailer>> tailers;
  Nanos poll_interval = 250 * kMillisecond;
  for (size_t i = 0; i < config.sources.size(); ++i) {
    const SourceConfig& sc = config.sources[i];
    source::FileTailer::Options o;
    o.include = sc.include;
    o.exclude = sc.exclude;
    source::ParseLogFormat(sc.format, &o.format);
    o.read_from_end = sc.read_from == "end";
    o.max_line_bytes = static_cast<size_t>(sc.max_line_bytes);
    o.rescan_interval = sc.poll_interval;
    poll_interval = std::min(poll_interval, sc.poll_interval);
    auto t = std::make_unique<source::FileTailer>(o);
    t->set_stream_base(static_cast<uint32_t>(i) << 24);
    if (had_checkpoint) t->Restore(saved);
    tailers.push_back(std::move(t));
  }
  g_wake_fd.store(tailers.front()->wake_fd());

  int threads = args.threads > 0
                    ? args.threads
                    : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  pipeline::Stages stages(*loaded.registry, threads, LiveSink::kBatchBytes, LiveSink::kBatchRecords,
                          [&consumer](pipeline::Batch& b) { consumer.Consume(b); });
  LiveSink sink(config, *loaded.registry, &stages, &shared);
  Log("running: " + std::to_string(config.sources.size()) + " source(s), state in " +
      config.state_dir + (had_checkpoint ? " (resumed from checkpoint)" : ""));

  Outcome outcome = Outcome::kStop;
  Nanos last_lag_report = WallNow();
  Nanos last_control = 0, last_health = 0;
  std::set<std::string> taken;  // requests handed to the detector thread
  source::TailStats published;  // tail counters already added to the metrics
  while (true) {
    if (g_stop.load()) break;
    Nanos loop_now = WallNow();
    if (loop_now - last_control >= 200 * kMillisecond) {
      // Operator requests go to the detector thread with the next batch.
      last_control = loop_now;
      std::vector<std::string> bad;
      auto requests = PendingRequests(config.state_dir, &bad);
      for (const auto& b : bad) Log(b);
      if (!requests.empty()) {
        std::lock_guard<std::mutex> guard(shared.mu);
        for (auto& r : requests) {
          if (taken.insert(r.name).second) shared.requests.push_back(std::move(r));
        }
      }
    }
    if (g_reload.exchange(0)) {
      auto fresh = Load(args);
      if (!fresh) {
        Log("reload refused, keeping the running configuration: " + fresh.error().message);
      } else {
        *next = std::make_unique<Loaded>(std::move(*fresh));
        outcome = Outcome::kReload;
        Log("reloading " + args.config_path);
        break;
      }
    }
    bool caught_up = true;
    size_t bytes = 0;
    for (auto& t : tailers) {
      bytes += t->Poll(&sink);
      caught_up = caught_up && t->caught_up();
    }
    sink.EndOfPoll(caught_up);
    Nanos now = WallNow();
    if (now - last_health >= 500 * kMillisecond) {
      // Health and telemetry for the sinks. Back-pressure shows as bytes
      // behind: the batch pool is bounded, so a slow pipeline slows reading
      // instead of growing memory.
      last_health = now;
      uint64_t behind = 0, files_behind = 0;
      source::TailStats total;
      for (auto& t : tailers) {
        for (const auto& lag : t->Lag()) {
          behind += lag.bytes_behind;
          files_behind += lag.bytes_behind > 0 ? 1 : 0;
        }
        total.lines_read += t->stats().lines_read;
        total.lines_rejected += t->stats().lines_rejected;
        total.lines_cut += t->stats().lines_cut;
      }
      shared.bytes_behind.store(behind);
      shared.files_behind.store(files_behind);
      shared.lines_cut.store(total.lines_cut);
      shared.lines_rejected.store(total.lines_rejected);
      if (caught_up) shared.caught_up.store(true);
      // Rejected lines never reach the sink: received counts them here.
      shared.source.received->fetch_add(total.lines_rejected - published.lines_rejected);
      shared.source.dropped->fetch_add(total.lines_rejected - published.lines_rejected);
      shared.source.errors->fetch_add(total.lines_cut - published.lines_cut);
      published = total;
      shared.queue_depth->store(static_cast<int64_t>(stages.in_flight()));
      if (now - last_lag_report >= 30 * kSecond && behind > (1u << 20)) {
        last_lag_report = now;
        Log("lag: " + std::to_string(behind) + " bytes behind in " +
            std::to_string(files_behind) + " file(s)");
      }
    }
    if (bytes == 0) tailers.front()->Wait(poll_interval);
  }
  sink.Done();
  stages.Finish();
  consumer.Close();  // the consumer thread has ended: safe here
  close_sinks();
  g_wake_fd.store(-1);
  Log("stopped: " + std::to_string(consumer.events()) + " event(s) written");
  return outcome;
}

}  // namespace

int RunLive(const RunArgs& args) {
  auto loaded = Load(args);
  if (!loaded) {
    Log(loaded.error().message);
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  auto current = std::make_unique<Loaded>(std::move(*loaded));
  std::unique_ptr<Loaded> last_good;  // the configuration before a reload
  Metrics metrics;  // telemetry keeps counting across reloads
  while (true) {
    std::unique_ptr<Loaded> next;
    Outcome o = RunWith(args, *current, &next, &metrics);
    if (o == Outcome::kError) {
      // A reloaded configuration that cannot start (a sink's port taken, a
      // secret missing) must not take the instance down: the one that ran
      // before goes on. At the first start there is none: exit.
      if (!last_good) return 1;
      Log("reload refused, the new configuration could not start; running the previous one "
          "again");
      current = std::move(last_good);
      continue;
    }
    if (o == Outcome::kStop) return 0;
    last_good = std::move(current);
    current = std::move(next);
  }
}

}  // namespace qw::app
