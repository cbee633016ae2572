// Ban sink: decisions, the outbox and delivery (see ban_sink.h).
//
// Decision body
// -------------
// One JSON object, no whitespace, keys in this order; the webhook POSTs it
// and the exec program gets it on standard input (exactly these bytes, no
// trailing newline). The signature is computed over these same bytes.
//
//   {"version":1,                      always 1
//    "action":"ban"|"unban",
//    "id":"81ddc3b1d77d4d40",          the event's id (events contract)
//    "idempotency_key":"ban-<32 hex>", same as the Idempotency-Key header
//    "chain":"cosmoshub",
//    "namespace":"cosmos-mainnet",     absent when the namespace is unknown
//    "node":"gaiad-validator-0",       the pod (or file) name
//    "validator":"A1B2C3D4E5F6",       absent when the address is unknown
//    "reason":"stalled",               ban: stalled | consensus_failure |
//                                      lagging | syncing | double_sign;
//                                      unban: back_in_consensus, or
//                                      operator for an operator's unban
//    "since":"2025-01-02T03:04:54.000Z",     start of the out-of-consensus
//                                            period (RFC 3339 UTC, ms)
//    "decided_at":"2025-01-02T03:34:54.000Z",event time of the decision
//    "height":539,                     the node's last committed height;
//                                      absent when none is known
//    "evidence":["<time> <log line>",...],   the node's last lines before
//                                            the ban ([] for an unban)
//    "operator":false}                 true when an operator requested it
//                                      (`quorumwatch bans ...`)
//
// idempotency_key = action + "-" + the first 32 hex digits of
// SHA-256("<action>|<chain>|<namespace>/<node>|<since>") (the namespace part
// is just "<node>" when the namespace is unknown; the event id stands in for
// <since> when an event carries none). The same node and period give the
// same key however often the decision is made again (lines read twice after
// a crash, a restart): the receiver drops repeats by key.
//
// Webhook: POST <url> with the body and the headers
//   Content-Type: application/json
//   Idempotency-Key: <idempotency_key>
//   X-Quorumwatch-Signature: sha256=<hex HMAC-SHA256(secret, body)>
//                            (only when a secret is configured)
//   User-Agent: quorumwatch
// Any 2xx acknowledges. Anything else, or no response, is retried.
//
// Exec: the command's arguments, no shell, with the node appended as the
// last argument ("<namespace>/<node>", or "<node>" without a namespace);
// the body on stdin; stdout discarded; stderr kept (4 KiB) for the log; the
// inherited environment plus QW_ACTION, QW_ID, QW_IDEMPOTENCY_KEY, QW_CHAIN,
// QW_NAMESPACE, QW_NODE, QW_VALIDATOR, QW_REASON, QW_SINCE, QW_DECIDED_AT
// and, with a secret, QW_SIGNATURE=sha256=<hex>. The program runs in its own
// process group; after `timeout` the group is killed (SIGKILL). Exit status
// 0 acknowledges; anything else is retried. Timeouts are real time; the
// backoff between attempts and the acknowledgement times follow ctx.clock.
//
// Retries: in outbox order, one decision at a time, each until it is
// acknowledged; after a failure the next attempt waits 1 s, doubling up to
// 60 s, back to no wait after an acknowledgement.
//
// Outbox
// ------
// state_dir/ban-outbox-<action>-<8 hex of SHA-256 of the url or command>.jsonl,
// one record a line:
//   {"type":"decision","decision":<body>}                        fsynced
//   {"type":"attempt","key":K,"attempts":N,"error":"..."}        not fsynced
//   {"type":"ack","key":K,"at":"<RFC 3339>","attempts":N}        fsynced
// Compaction rewrites the file (temporary file, fsync, rename, fsync of the
// folder) with one line per decision kept, attempts, last_error and
// acked_at folded into it:
//   {"type":"decision","attempts":N,"last_error":"...","acked_at":"...",
//    "decision":<body>}
// It keeps every pending decision and the acknowledged ones acknowledged in
// the last 7 days or among the last 10000. Unreadable lines (a torn last
// line after a crash) are skipped; the file is then compacted at start.

#include "sink/ban_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>
#include <utility>

#include "common/file_util.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/time.h"
#include "sink/http_transport.h"

extern char** environ;

namespace qw::sink {
namespace {

constexpr Nanos kBackoffFirst = kSecond;
constexpr Nanos kBackoffMax = 60 * kSecond;
constexpr Nanos kAckKeepFor = 7 * 24 * 3600 * kSecond;
constexpr size_t kAckKeepLast = 10000;
constexpr Nanos kFailureLogEvery = 30 * kSecond;
constexpr size_t kStderrKeep = 4096;
constexpr size_t kStderrLog = 512;
constexpr size_t kErrorKeep = 300;
// Longest real-time wait before the delivery thread looks at the clock again
// (the clock may be a test's ManualClock) or at a running program.
constexpr auto kPollStep = std::chrono::milliseconds(50);

constexpr std::string_view kOutboxPrefix = "ban-outbox-";
constexpr std::string_view kOutboxSuffix = ".jsonl";

std::string Hex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

// The first `hex_digits` hex digits of SHA-256(s).
std::string Sha256Hex(std::string_view s, size_t hex_digits) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len).substr(0, hex_digits);
}

std::string NodeName(const std::string& ns, const std::string& node) {
  return ns.empty() ? node : ns + "/" + node;
}

std::string IdempotencyKey(const BanDecision& d, std::string_view period) {
  std::string in = d.action + "|" + d.chain + "|" + NodeName(d.namespace_, d.node) + "|";
  in.append(period);
  return d.action + "-" + Sha256Hex(in, 32);
}

// action + 8 hex of what the sink delivers to: one outbox per ban sink.
std::string OutboxName(const SinkConfig& c) {
  std::string target;
  if (c.action == "webhook") {
    target = c.url;
  } else {
    for (const auto& a : c.command) {
      target.append(a);
      target.push_back('\0');
    }
  }
  return c.action + "-" + Sha256Hex(target, 8);
}

void AppendBody(std::string& out, const BanDecision& d) {
  auto str = [&](std::string_view key, const std::string& v) {
    out.append(",\"").append(key).append("\":");
    AppendJsonString(out, v);
  };
  out.append("{\"version\":1");
  str("action", d.action);
  str("id", d.id);
  str("idempotency_key", d.idempotency_key);
  str("chain", d.chain);
  if (!d.namespace_.empty()) str("namespace", d.namespace_);
  str("node", d.node);
  if (!d.validator.empty()) str("validator", d.validator);
  str("reason", d.reason);
  str("since", d.since);
  str("decided_at", d.decided_at);
  if (d.height >= 0) out.append(",\"height\":").append(std::to_string(d.height));
  out.append(",\"evidence\":[");
  for (size_t i = 0; i < d.evidence.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(out, d.evidence[i]);
  }
  out.append("],\"operator\":").append(d.operator_request ? "true" : "false");
  out.push_back('}');
}

std::string Where(const SinkConfig& c) { return c.file + ":" + std::to_string(c.line) + ": "; }

// Printable, one line, at most `max` bytes (for logging a program's stderr
// or a receiver's answer).
std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (char ch : s) {
    if (out.size() >= max) {
      out.append("...");
      break;
    }
    unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : (c < 0x20 || c == 0x7f ? '?' : ch));
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// A decision as the outbox holds it in memory.
struct Item {
  OutboxEntry entry;
  Nanos decided_at = kNoTime;  // parsed entry.decision.decided_at
  Nanos acked_at = kNoTime;
};

// ---------------------------------------------------------------------------
// Reading outbox records

std::string GetString(simdjson::dom::object o, std::string_view key) {
  std::string_view v;
  if (o[key].get_string().get(v) != simdjson::SUCCESS) return "";
  return std::string(v);
}

// The body object -> decision (body rebuilt from the fields). false when it
// is not a decision.
bool DecisionFromJson(simdjson::dom::object o, BanDecision* d) {
  d->action = GetString(o, "action");
  d->id = GetString(o, "id");
  d->idempotency_key = GetString(o, "idempotency_key");
  d->chain = GetString(o, "chain");
  d->namespace_ = GetString(o, "namespace");
  d->node = GetString(o, "node");
  d->validator = GetString(o, "validator");
  d->reason = GetString(o, "reason");
  d->since = GetString(o, "since");
  d->decided_at = GetString(o, "decided_at");
  int64_t h = -1;
  if (o["height"].get_int64().get(h) == simdjson::SUCCESS) d->height = h;
  simdjson::dom::array ev;
  if (o["evidence"].get_array().get(ev) == simdjson::SUCCESS) {
    for (auto x : ev) {
      std::string_view s;
      if (x.get_string().get(s) == simdjson::SUCCESS) d->evidence.emplace_back(s);
    }
  }
  bool op = false;
  if (o["operator"].get_bool().get(op) == simdjson::SUCCESS) d->operator_request = op;
  if ((d->action != "ban" && d->action != "unban") || d->idempotency_key.empty()) return false;
  d->body.clear();
  AppendBody(d->body, *d);
  return true;
}

struct LoadStats {
  size_t records = 0;   // lines read as records
  size_t bad = 0;       // lines skipped (torn or unreadable)
};

// Applies the records of one outbox file, in order, to `items`.
void ParseOutbox(std::string_view data, const std::string& sink_name, std::vector<Item>* items,
                 LoadStats* stats) {
  simdjson::dom::parser parser;
  std::map<std::string, size_t, std::less<>> index;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {  // torn last line
      stats->bad++;
      break;
    }
    std::string_view line = data.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    simdjson::dom::object o;
    if (parser.parse(line.data(), line.size()).get_object().get(o) != simdjson::SUCCESS) {
      stats->bad++;
      continue;
    }
    std::string type = GetString(o, "type");
    if (type == "decision") {
      simdjson::dom::object body;
      Item item;
      item.entry.sink = sink_name;
      if (o["decision"].get_object().get(body) != simdjson::SUCCESS ||
          !DecisionFromJson(body, &item.entry.decision)) {
        stats->bad++;
        continue;
      }
      stats->records++;
      if (index.count(item.entry.decision.idempotency_key) > 0) continue;
      int64_t attempts = 0;
      if (o["attempts"].get_int64().get(attempts) == simdjson::SUCCESS) {
        item.entry.attempts = static_cast<int>(attempts);
      }
      item.entry.last_error = GetString(o, "last_error");
      std::string acked = GetString(o, "acked_at");
      if (!acked.empty()) {
        item.entry.acknowledged = true;
        item.acked_at = ParseRfc3339(acked);
      }
      item.decided_at = ParseRfc3339(item.entry.decision.decided_at);
      index.emplace(item.entry.decision.idempotency_key, items->size());
      items->push_back(std::move(item));
    } else if (type == "attempt" || type == "ack") {
      auto it = index.find(GetString(o, "key"));
      stats->records++;
      if (it == index.end()) continue;
      Item& item = (*items)[it->second];
      int64_t attempts = 0;
      if (o["attempts"].get_int64().get(attempts) == simdjson::SUCCESS) {
        item.entry.attempts = std::max(item.entry.attempts, static_cast<int>(attempts));
      }
      if (type == "attempt") {
        item.entry.last_error = GetString(o, "error");
      } else {
        item.entry.acknowledged = true;
        item.acked_at = ParseRfc3339(GetString(o, "at"));
      }
    } else {
      stats->bad++;
    }
  }
}

// ---------------------------------------------------------------------------
// Outbox records

std::string DecisionRecord(const Item& item, bool compacted) {
  const OutboxEntry& e = item.entry;
  std::string out = "{\"type\":\"decision\"";
  if (compacted) {
    out.append(",\"attempts\":").append(std::to_string(e.attempts));
    if (!e.last_error.empty()) {
      out.append(",\"last_error\":");
      AppendJsonString(out, e.last_error);
    }
    if (e.acknowledged) {
      out.append(",\"acked_at\":");
      AppendJsonString(out, item.acked_at == kNoTime ? "" : FormatRfc3339Millis(item.acked_at));
    }
  }
  out.append(",\"decision\":").append(e.decision.body).append("}\n");
  return out;
}

// One open outbox per file in the process: two sinks writing one file would
// lose each other's records at compaction.
std::mutex open_outboxes_mu;
std::set<std::string> open_outboxes;  // guarded by open_outboxes_mu

// What one delivery attempt came to.
struct Attempt {
  bool ok = false;
  bool refused = false;    // the receiver said no (4xx other than 408/429)
  bool abandoned = false;  // stopped by Close (not counted as a failure)
  std::string error;       // for the log and the outbox ("" when ok)
  std::string detail;      // extra log text (a program's stderr); never stored
};

}  // namespace

// ---------------------------------------------------------------------------

struct BanSink::Impl {
  // Set at Create; read-only afterwards (any thread).
  SinkConfig config;
  SinkContext ctx;
  std::string secret;  // never logged, never stored
  std::string name;    // outbox name
  std::string path;    // outbox file
  ComponentCounters counters;
  std::atomic<int64_t>* pending_gauge = nullptr;

  // Detector thread (Write) only.
  simdjson::dom::parser parser;

  // State below is protected by mu.
  mutable std::mutex mu;
  std::condition_variable wake;
  std::vector<Item> items;                 // outbox order
  std::unordered_set<std::string> keys;    // idempotency keys of items
  int fd = -1;                             // outbox, O_APPEND; -1 until created
  size_t file_records = 0;                 // records in the file now
  std::atomic<bool> stop{false};           // written under mu, read anywhere

  // Delivery thread only.
  Nanos backoff = 0;
  Nanos not_before = kNoTime;
  Nanos last_failure_log = kNoTime;
  uint64_t unlogged_failures = 0;

  // Creator thread only.
  std::thread thread;
  bool closed = false;
  bool registered = false;

  void Log(const std::string& line) const {
    if (ctx.log) ctx.log("ban sink " + name + ": " + line);
  }

  // REQUIRES: mu held.
  void UpdateGauge() const {
    if (pending_gauge == nullptr) return;
    int64_t n = 0;
    for (const Item& i : items) n += i.entry.acknowledged ? 0 : 1;
    pending_gauge->store(n);
  }

  // Appends one record; fsyncs when `sync`. Creates the file (and fsyncs the
  // folder) when needed. REQUIRES: mu held.
  bool Append(const std::string& record, bool sync) {
    if (fd < 0) {
      fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0) return false;
      if (!FsyncDir(ctx.state_dir)) return false;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) return false;
    if (!WriteAll(fd, record)) {
      // No half record for the next one to be glued to (disk full, say).
      int err = errno;
      bool cut = ::ftruncate(fd, st.st_size) == 0;  // best effort
      (void)cut;
      errno = err;
      return false;
    }
    file_records++;
    return !sync || ::fsync(fd) == 0;
  }

  // Rewrites the outbox with one record per kept decision, dropping
  // acknowledged ones older than kAckKeepFor beyond the last kAckKeepLast.
  // REQUIRES: mu held.
  void Compact() {
    Nanos cutoff = ctx.clock->Now() - kAckKeepFor;
    size_t acked_seen = 0;
    std::vector<bool> keep(items.size(), true);
    for (size_t i = items.size(); i-- > 0;) {
      const Item& it = items[i];
      if (!it.entry.acknowledged) continue;
      if (++acked_seen > kAckKeepLast && it.acked_at != kNoTime && it.acked_at < cutoff) {
        keep[i] = false;
      }
    }
    std::string data;
    size_t kept = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!keep[i]) continue;
      data.append(DecisionRecord(items[i], true));
      kept++;
    }
    if (auto w = WriteFileAtomic(path, data); !w) {
      Log("cannot compact the outbox: " + w.error().message);
      // Only the folder's fsync failed when the file was replaced: the
      // compacted file is the outbox now, and appends must go to it.
      if (!Replaced()) return;
    }
    if (fd >= 0) ::close(fd);
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    file_records = kept;
    std::vector<Item> rest;
    rest.reserve(kept);
    for (size_t i = 0; i < items.size(); ++i) {
      if (keep[i]) {
        rest.push_back(std::move(items[i]));
      } else {
        keys.erase(items[i].entry.decision.idempotency_key);
      }
    }
    items = std::move(rest);
  }

  // True when `path` is no longer the file `fd` has open (a rename replaced
  // it). REQUIRES: mu held.
  bool Replaced() const {
    struct stat open_st, path_st;
    if (fd < 0 || ::fstat(fd, &open_st) != 0 || ::stat(path.c_str(), &path_st) != 0) return false;
    return open_st.st_dev != path_st.st_dev || open_st.st_ino != path_st.st_ino;
  }

  // REQUIRES: mu held.
  void MaybeCompact() {
    if (file_records > 2 * items.size() + 64) Compact();
  }

  void Run();
  Attempt Deliver(HttpTransport* transport, const BanDecision& d);
  Attempt Post(HttpTransport* transport, const BanDecision& d);
  Attempt Exec(const BanDecision& d);
  void LogFailure(const OutboxEntry& e, const Attempt& a, Nanos retry_in);
  bool DecisionFromEvent(const Event& e, BanDecision* d);
};

bool BanSink::Impl::DecisionFromEvent(const Event& e, BanDecision* d) {
  auto text = [&](const std::string& json) {
    std::string_view s;
    if (parser.parse(json).get_string().get(s) != simdjson::SUCCESS) return std::string();
    return std::string(s);
  };
  d->action = e.kind == EventKind::kBan ? "ban" : "unban";
  d->id = e.id;
  d->chain = e.chain;
  d->namespace_ = e.namespace_;
  d->node = e.node;
  d->height = e.height;
  d->decided_at = FormatRfc3339Millis(e.time);
  for (const auto& [k, v] : e.detail) {
    if (k == "held" && v == "true") return false;
    if (k == "reason") d->reason = text(v);
    if (k == "since") d->since = text(v);
    if (k == "validator") d->validator = text(v);
    if (k == "operator") d->operator_request = v == "true";
    if (k == "evidence") {
      simdjson::dom::array arr;
      if (parser.parse(v).get_array().get(arr) == simdjson::SUCCESS) {
        for (auto x : arr) {
          std::string_view s;
          if (x.get_string().get(s) == simdjson::SUCCESS) d->evidence.emplace_back(s);
        }
      }
    }
  }
  if (d->reason.empty()) {
    d->reason = d->action == "ban" ? "out_of_consensus"
                                   : (d->operator_request ? "operator" : "back_in_consensus");
  }
  d->idempotency_key = IdempotencyKey(*d, d->since.empty() ? std::string_view(e.id) : d->since);
  AppendBody(d->body, *d);
  return true;
}

void BanSink::Impl::LogFailure(const OutboxEntry& e, const Attempt& a, Nanos retry_in) {
  Nanos now = ctx.clock->Now();
  // Always the first failure of a decision; then at most one line per
  // kFailureLogEvery.
  if (e.attempts > 1 && last_failure_log != kNoTime && now - last_failure_log < kFailureLogEvery) {
    unlogged_failures++;
    return;
  }
  const BanDecision& d = e.decision;
  std::string line = a.refused ? "the ban controller refused " : "delivery failed: ";
  line += d.action + " " + NodeName(d.namespace_, d.node) + " (chain " + d.chain + ", key " +
          d.idempotency_key + ", attempt " + std::to_string(e.attempts) + "): " + a.error;
  if (!a.detail.empty()) line += "; " + a.detail;
  line += "; retrying in " + FormatDuration(retry_in);
  if (unlogged_failures > 0) {
    line += " (" + std::to_string(unlogged_failures) + " earlier failure(s) not logged)";
  }
  Log(line);
  last_failure_log = now;
  unlogged_failures = 0;
}

void BanSink::Impl::Run() {
  // A program that exits without reading stdin must not kill us (SIGPIPE is
  // thread-directed: blocked here, the write fails with EPIPE instead).
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

  std::unique_ptr<HttpTransport> transport;
  if (config.action == "webhook") {
    transport = ctx.make_transport ? ctx.make_transport() : MakeCurlTransport();
  }
  std::unique_lock<std::mutex> lock(mu);
  while (!stop) {
    size_t next = items.size();
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].entry.acknowledged) {
        next = i;
        break;
      }
    }
    if (next == items.size()) {
      wake.wait(lock);
      continue;
    }
    Nanos now = ctx.clock->Now();
    if (not_before != kNoTime && now < not_before) {
      wake.wait_for(lock, std::min<std::chrono::nanoseconds>(
                              std::chrono::nanoseconds(not_before - now), kPollStep));
      continue;
    }
    BanDecision d = items[next].entry.decision;
    lock.unlock();
    Attempt a = Deliver(transport.get(), d);
    {
      // Consume a SIGPIPE left pending by a write to a closed pipe.
      timespec zero{0, 0};
      while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
      }
    }
    lock.lock();
    if (a.abandoned) break;
    // Only this thread removes items (Compact), so `next` still names it.
    Item& item = items[next];
    OutboxEntry& e = item.entry;
    e.attempts++;
    if (a.ok) {
      e.acknowledged = true;
      item.acked_at = ctx.clock->Now();
      std::string rec = "{\"type\":\"ack\",\"key\":";
      AppendJsonString(rec, d.idempotency_key);
      rec.append(",\"at\":\"");
      AppendRfc3339Millis(rec, item.acked_at);
      rec.append("\",\"attempts\":").append(std::to_string(e.attempts)).append("}\n");
      if (!Append(rec, true)) {
        Log("cannot record an acknowledgement in " + path + ": " + std::strerror(errno));
      }
      counters.processed->fetch_add(1);
      Log("delivered " + d.action + " " + NodeName(d.namespace_, d.node) + " (chain " + d.chain +
          ", key " + d.idempotency_key +
          (e.attempts > 1 ? ", after " + std::to_string(e.attempts) + " attempts" : "") + ")");
      backoff = 0;
      not_before = kNoTime;
      UpdateGauge();
      MaybeCompact();
      continue;
    }
    counters.errors->fetch_add(1);
    e.last_error = a.error.substr(0, kErrorKeep);
    backoff = backoff == 0 ? kBackoffFirst : std::min(2 * backoff, kBackoffMax);
    not_before = ctx.clock->Now() + backoff;
    std::string rec = "{\"type\":\"attempt\",\"key\":";
    AppendJsonString(rec, d.idempotency_key);
    rec.append(",\"attempts\":").append(std::to_string(e.attempts)).append(",\"error\":");
    AppendJsonString(rec, e.last_error);
    rec.append("}\n");
    Append(rec, false);  // informational: losing it loses nothing
    LogFailure(e, a, backoff);
    MaybeCompact();
  }
}

Attempt BanSink::Impl::Deliver(HttpTransport* transport, const BanDecision& d) {
  return config.action == "webhook" ? Post(transport, d) : Exec(d);
}

Attempt BanSink::Impl::Post(HttpTransport* transport, const BanDecision& d) {
  HttpRequest req;
  req.method = "POST";
  req.url = config.url;
  req.body = d.body;
  req.timeout = config.timeout;
  req.headers = {{"Content-Type", "application/json"},
                 {"Idempotency-Key", d.idempotency_key},
                 {"User-Agent", "quorumwatch"}};
  if (!secret.empty()) {
    req.headers.emplace_back("X-Quorumwatch-Signature", "sha256=" + SignBody(secret, d.body));
  }
  HttpResponse resp = transport->Send(req);
  Attempt a;
  a.ok = resp.ok();
  if (!a.ok) {
    a.error = Printable(resp.Describe(), kErrorKeep);
    a.refused = resp.error.empty() && resp.status >= 400 && resp.status < 500 &&
                resp.status != 408 && resp.status != 429;
  }
  return a;
}

Attempt BanSink::Impl::Exec(const BanDecision& d) {
  Attempt a;
  // Everything the child needs is built before the spawn.
  std::vector<std::string> args = config.command;
  args.push_back(NodeName(d.namespace_, d.node));
  std::vector<std::pair<std::string, std::string>> vars = {
      {"QW_ACTION", d.action},          {"QW_ID", d.id},
      {"QW_IDEMPOTENCY_KEY", d.idempotency_key},
      {"QW_CHAIN", d.chain},            {"QW_NAMESPACE", d.namespace_},
      {"QW_NODE", d.node},              {"QW_VALIDATOR", d.validator},
      {"QW_REASON", d.reason},          {"QW_SINCE", d.since},
      {"QW_DECIDED_AT", d.decided_at}};
  if (!secret.empty()) vars.emplace_back("QW_SIGNATURE", "sha256=" + SignBody(secret, d.body));
  std::vector<std::string> env;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    std::string_view kv(*p);
    std::string_view k = kv.substr(0, kv.find('='));
    bool ours = std::any_of(vars.begin(), vars.end(), [&](const auto& v) { return v.first == k; });
    if (!ours) env.emplace_back(kv);
  }
  for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);

  int in[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    a.error = std::string("pipe: ") + std::strerror(errno);
    return a;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    a.error = std::string("pipe: ") + std::strerror(errno);
    ::close(in[0]);
    ::close(in[1]);
    return a;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, def;
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills it all
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(err[0]);
    a.error = "cannot run " + config.command[0] + ": " + std::strerror(rc);
    return a;
  }
  int to_child = in[1], from_child = err[0];
  ::fcntl(to_child, F_SETFL, O_NONBLOCK);
  ::fcntl(from_child, F_SETFL, O_NONBLOCK);
  std::string_view input = d.body;
  std::string errors;
  auto drain = [&] {
    char buf[4096];
    while (from_child >= 0) {
      ssize_t n = ::read(from_child, buf, sizeof buf);
      if (n > 0) {
        if (errors.size() < kStderrKeep) {
          errors.append(buf, std::min(static_cast<size_t>(n), kStderrKeep - errors.size()));
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        ::close(from_child);
        from_child = -1;
      }
      break;  // EOF, EAGAIN or an error
    }
  };
  if (input.empty()) {
    ::close(to_child);
    to_child = -1;
  }
  // The attempt's timeout is real time, as an HTTP request's is (the
  // program runs in real time whatever ctx.clock says).
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(config.timeout);
  int status = 0;
  bool timed_out = false;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (stop) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      a.abandoned = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      timed_out = true;
      break;
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (to_child >= 0) fds[n++] = {to_child, POLLOUT, 0};
    if (from_child >= 0) fds[n++] = {from_child, POLLIN, 0};
    ::poll(fds, n, static_cast<int>(kPollStep.count()));
    if (to_child >= 0) {
      ssize_t wr = ::write(to_child, input.data(), input.size());
      if (wr > 0) input.remove_prefix(static_cast<size_t>(wr));
      if (input.empty() || (wr < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(to_child);  // all written, or the program closed its stdin
        to_child = -1;
      }
    }
    drain();
  }
  drain();
  if (to_child >= 0) ::close(to_child);
  if (from_child >= 0) ::close(from_child);
  if (a.abandoned) return a;
  if (timed_out) {
    a.error = "timed out after " + FormatDuration(config.timeout) + " (killed)";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    a.ok = true;
    return a;
  } else if (WIFEXITED(status)) {
    a.error = "exit status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    a.error = "killed by signal " + std::to_string(WTERMSIG(status));
  } else {
    a.error = "ended abnormally";
  }
  std::string shown = Printable(errors, kStderrLog);
  if (!shown.empty()) a.detail = "stderr: " + shown;
  return a;
}

// ---------------------------------------------------------------------------

BanSink::BanSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BanSink::~BanSink() { Close(); }

Result<std::unique_ptr<BanSink>> BanSink::Create(const SinkConfig& config,
                                                 const SinkContext& ctx) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->ctx = ctx;
  if (impl->ctx.clock == nullptr) return Fail(Where(config) + "ban sink: no clock (internal)");
  if (config.action == "webhook") {
    if (config.url.rfind("http://", 0) != 0 && config.url.rfind("https://", 0) != 0) {
      return Fail(Where(config) + "a webhook ban sink's url must start with http:// or https://");
    }
  } else if (config.action == "exec") {
    if (config.command.empty() || config.command[0].empty()) {
      return Fail(Where(config) + "an exec ban sink needs a non-empty 'command'");
    }
  } else {
    return Fail(Where(config) + "a ban sink's action must be webhook or exec");
  }
  if (config.timeout <= 0) return Fail(Where(config) + "a ban sink's timeout must be positive");
  if (!config.secret_file.empty() && !config.secret_env.empty()) {
    return Fail(Where(config) + "set only one of secret_file and secret_env");
  }
  if (!config.secret_file.empty()) {
    auto data = ReadWholeFile(config.secret_file);
    if (!data) {
      return Fail(Where(config) + "cannot read secret_file " + config.secret_file + ": " +
                  data.error().message);
    }
    std::string s = std::move(*data);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    if (!s.empty() && s.back() == '\r') s.pop_back();
    if (s.empty()) return Fail(Where(config) + "secret_file " + config.secret_file + " is empty");
    impl->secret = std::move(s);
  } else if (!config.secret_env.empty()) {
    const char* v = std::getenv(config.secret_env.c_str());
    if (v == nullptr || *v == '\0') {
      return Fail(Where(config) + "secret_env: the environment variable " + config.secret_env +
                  " is not set or empty");
    }
    impl->secret = v;
  }
  impl->name = OutboxName(config);
  impl->counters = ComponentCounters::For(ctx.metrics, "sink", "ban");
  if (config.dry_run) return std::unique_ptr<BanSink>(new BanSink(std::move(impl)));

  impl->path = ctx.state_dir + "/" + std::string(kOutboxPrefix) + impl->name +
               std::string(kOutboxSuffix);
  {
    std::lock_guard<std::mutex> g(open_outboxes_mu);
    if (!open_outboxes.insert(impl->path).second) {
      return Fail(Where(config) + "another ban sink already delivers to the same " +
                  (config.action == "webhook" ? "url" : "command") + " (outbox " + impl->path +
                  " in use)");
    }
  }
  impl->registered = true;
  std::unique_ptr<BanSink> sink(new BanSink(std::move(impl)));
  Impl& im = *sink->impl_;
  if (ctx.metrics != nullptr) {
    im.pending_gauge = ctx.metrics->Gauge("quorumwatch_ban_decisions_pending", {{"sink", im.name}},
                                          "Ban decisions in the outbox not yet acknowledged");
  }
  struct stat st;
  if (::stat(im.path.c_str(), &st) == 0) {
    auto data = ReadWholeFile(im.path);
    if (!data) {
      return Fail(Where(config) + "cannot read the ban outbox " + im.path + ": " +
                  data.error().message);
    }
    LoadStats stats;
    ParseOutbox(*data, im.name, &im.items, &stats);
    std::lock_guard<std::mutex> g(im.mu);
    for (const Item& i : im.items) im.keys.insert(i.entry.decision.idempotency_key);
    im.fd = ::open(im.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (im.fd < 0) {
      return Fail(Where(config) + "cannot open the ban outbox " + im.path + ": " +
                  std::strerror(errno));
    }
    im.file_records = stats.records + stats.bad;
    if (stats.bad > 0) {
      im.Log(std::to_string(stats.bad) + " unreadable line(s) in " + im.path +
             " skipped (a write cut short by a crash?); rewriting it");
      im.Compact();
    } else {
      im.MaybeCompact();
    }
    size_t pending = 0;
    for (const Item& i : im.items) pending += i.entry.acknowledged ? 0 : 1;
    if (pending > 0) im.Log(std::to_string(pending) + " pending decision(s) to deliver");
    im.UpdateGauge();
  } else if (errno != ENOENT) {
    return Fail(Where(config) + "cannot read the ban outbox " + im.path + ": " +
                std::strerror(errno));
  }
  im.thread = std::thread([&im] { im.Run(); });
  return sink;
}

void BanSink::Write(const Event& e) {
  if (e.kind != EventKind::kBan && e.kind != EventKind::kUnban) return;
  Impl& im = *impl_;
  BanDecision d;
  if (!im.DecisionFromEvent(e, &d)) return;  // a held ban: not a decision
  im.counters.received->fetch_add(1);
  if (im.config.dry_run) {
    im.Log("dry run: would " + d.action + " " + NodeName(d.namespace_, d.node) + " (chain " +
           d.chain + ", reason " + d.reason + ", since " + d.since + ", key " +
           d.idempotency_key + ")");
    return;
  }
  std::lock_guard<std::mutex> g(im.mu);
  if (im.keys.count(d.idempotency_key) > 0) return;  // decided before (same node and period)
  if (im.stop) {  // REQUIRES of Close broken: say so rather than lose it quietly
    im.counters.dropped->fetch_add(1);
    im.Log("decision after Close dropped: " + d.action + " " + NodeName(d.namespace_, d.node));
    return;
  }
  Item item;
  item.entry.sink = im.name;
  item.entry.decision = std::move(d);
  item.decided_at = e.time;
  if (!im.Append(DecisionRecord(item, false), true)) {
    // Never dropped: delivered from memory, but lost if we crash first.
    im.counters.errors->fetch_add(1);
    im.Log("cannot write the decision to the outbox " + im.path + ": " + std::strerror(errno) +
           "; delivering it without a durable record");
  }
  im.keys.insert(item.entry.decision.idempotency_key);
  im.items.push_back(std::move(item));
  im.UpdateGauge();
  im.wake.notify_all();
}

void BanSink::Close() {
  if (!impl_ || impl_->closed) return;
  Impl& im = *impl_;
  im.closed = true;
  {
    std::lock_guard<std::mutex> g(im.mu);
    im.stop = true;
  }
  im.wake.notify_all();
  if (im.thread.joinable()) im.thread.join();
  {
    std::lock_guard<std::mutex> g(im.mu);
    if (im.fd >= 0) ::close(im.fd);
    im.fd = -1;
  }
  if (im.registered) {
    std::lock_guard<std::mutex> g(open_outboxes_mu);
    open_outboxes.erase(im.path);
    im.registered = false;
  }
}

uint64_t BanSink::pending() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  uint64_t n = 0;
  for (const Item& i : impl_->items) n += i.entry.acknowledged ? 0 : 1;
  return n;
}

Nanos BanSink::oldest_pending() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  Nanos oldest = kNoTime;
  for (const Item& i : impl_->items) {
    if (!i.entry.acknowledged && (oldest == kNoTime || i.decided_at < oldest)) {
      oldest = i.decided_at;
    }
  }
  return oldest;
}

Result<std::vector<OutboxEntry>> ReadOutboxes(const std::string& state_dir) {
  DIR* dir = ::opendir(state_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return std::vector<OutboxEntry>{};
    return Fail(state_dir + ": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* de = ::readdir(dir)) {
    std::string_view n(de->d_name);
    if (n.size() > kOutboxPrefix.size() + kOutboxSuffix.size() && n.starts_with(kOutboxPrefix) &&
        n.ends_with(kOutboxSuffix)) {
      names.emplace_back(n);
    }
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  std::vector<OutboxEntry> out;
  for (const auto& n : names) {
    std::string path = state_dir + "/" + n;
    auto data = ReadWholeFile(path);
    if (!data) return Fail(path + ": " + data.error().message);
    std::string sink_name =
        n.substr(kOutboxPrefix.size(), n.size() - kOutboxPrefix.size() - kOutboxSuffix.size());
    std::vector<Item> items;
    LoadStats stats;
    ParseOutbox(*data, sink_name, &items, &stats);
    for (auto& i : items) out.push_back(std::move(i.entry));
  }
  return out;
}

std::string SignBody(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return Hex(mac, len);
}

}  // namespace qw::sink
