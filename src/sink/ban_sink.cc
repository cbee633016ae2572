// Ban sink (ban_sink.h): turning events into decisions, and delivering them
// by webhook or exec until acknowledged. The outbox is ban_outbox.cc; the
// rules both follow are in docs/BAN-OUTBOX.md. (Some 630 lines: the two
// delivery actions share the delivery loop and its Attempt; the exec
// runner alone is 170 of them.)
#include "sink/ban_sink.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
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
constexpr Nanos kFailureLogEvery = 30 * kSecond;
constexpr size_t kStderrKeep = 4096;
constexpr size_t kStderrLog = 512;
constexpr size_t kErrorKeep = 300;
// Longest real-time wait before the delivery thread looks at the clock again
// (the clock may be a test's ManualClock) or at a running program.
constexpr auto kPollStep = std::chrono::milliseconds(50);

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

std::string IdempotencyKey(const BanDecision& d, std::string_view period) {
  std::string in = d.action + "|" + d.chain + "|" + BanNodeName(d) + "|";
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

// An event's detail value (already-encoded JSON), parsed; null when it is
// not JSON.
nlohmann::ordered_json DetailValue(const std::string& json) {
  auto v = ParseJson(json);
  return v ? std::move(*v) : nlohmann::ordered_json(nullptr);
}

}  // namespace

// ---------------------------------------------------------------------------

struct BanSink::Impl {
  // Set at Create; read-only afterwards (any thread).
  SinkConfig config;
  SinkContext ctx;
  std::string secret;  // never logged, never stored
  std::string name;    // outbox name
  ComponentCounters counters;
  std::atomic<int64_t>* pending_gauge = nullptr;

  // State below is protected by mu.
  mutable std::mutex mu;
  std::condition_variable wake;
  std::unique_ptr<Outbox> outbox;   // null in a dry run
  std::atomic<bool> stop{false};    // written under mu, read anywhere

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
    if (pending_gauge != nullptr) pending_gauge->store(static_cast<int64_t>(outbox->pending()));
  }

  void Run();
  Attempt Deliver(HttpTransport* transport, const BanDecision& d);
  Attempt Post(HttpTransport* transport, const BanDecision& d);
  Attempt Exec(const BanDecision& d);
  void LogFailure(const BanDecision& d, int attempts, const Attempt& a, Nanos retry_in);
  static bool DecisionFromEvent(const Event& e, BanDecision* d);
};

bool BanSink::Impl::DecisionFromEvent(const Event& e, BanDecision* d) {
  auto text = [](const std::string& json) {
    auto v = DetailValue(json);
    return v.is_string() ? v.get<std::string>() : std::string();
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
      auto lines = DetailValue(v);
      if (!lines.is_array()) continue;
      for (const auto& line : lines) {
        if (line.is_string()) d->evidence.push_back(line.get<std::string>());
      }
    }
  }
  if (d->reason.empty()) {
    d->reason = d->action == "ban" ? "out_of_consensus"
                                   : (d->operator_request ? "operator" : "back_in_consensus");
  }
  d->idempotency_key = IdempotencyKey(*d, d->since.empty() ? std::string_view(e.id) : d->since);
  d->body = DecisionBody(*d);
  return true;
}

void BanSink::Impl::LogFailure(const BanDecision& d, int attempts, const Attempt& a,
                               Nanos retry_in) {
  Nanos now = ctx.clock->Now();
  // Always the first failure of a decision; then at most one line per
  // kFailureLogEvery.
  if (attempts > 1 && last_failure_log != kNoTime && now - last_failure_log < kFailureLogEvery) {
    unlogged_failures++;
    return;
  }
  std::string line = a.refused ? "the ban controller refused " : "delivery failed: ";
  line += d.action + " " + BanNodeName(d) + " (chain " + d.chain + ", key " + d.idempotency_key +
          ", attempt " + std::to_string(attempts) + "): " + a.error;
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
    const auto& items = outbox->items();
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
    // Only this thread removes items (compaction), so `next` still names it.
    if (a.ok) {
      const int attempts = outbox->items()[next].entry.attempts + 1;
      if (!outbox->RecordAck(next, ctx.clock->Now())) {
        Log("cannot record an acknowledgement in " + outbox->path() + ": " +
            std::strerror(errno));
      }
      counters.processed->fetch_add(1);
      Log("delivered " + d.action + " " + BanNodeName(d) + " (chain " + d.chain + ", key " +
          d.idempotency_key +
          (attempts > 1 ? ", after " + std::to_string(attempts) + " attempts" : "") + ")");
      backoff = 0;
      not_before = kNoTime;
      UpdateGauge();
      continue;
    }
    counters.errors->fetch_add(1);
    backoff = backoff == 0 ? kBackoffFirst : std::min(2 * backoff, kBackoffMax);
    not_before = ctx.clock->Now() + backoff;
    const int attempts = outbox->RecordFailure(next, a.error.substr(0, kErrorKeep));
    LogFailure(d, attempts, a, backoff);
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
  req.cancel = &stop;  // Close abandons a request the receiver never answers
  req.headers = {{"Content-Type", "application/json"},
                 {"Idempotency-Key", d.idempotency_key},
                 {"User-Agent", "quorumwatch"}};
  if (!secret.empty()) {
    req.headers.emplace_back("X-Quorumwatch-Signature", "sha256=" + SignBody(secret, d.body));
  }
  HttpResponse resp = transport->Send(req);
  Attempt a;
  if (resp.cancelled) {
    a.abandoned = true;  // the decision stays in the outbox for the next start
    return a;
  }
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
  args.push_back(BanNodeName(d));
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

  Impl* im = impl.get();
  impl->outbox = std::make_unique<Outbox>(ctx.state_dir, impl->name, ctx.clock,
                                          [im](const std::string& line) { im->Log(line); });
  const std::string& path = impl->outbox->path();
  {
    std::lock_guard<std::mutex> g(open_outboxes_mu);
    if (!open_outboxes.insert(path).second) {
      return Fail(Where(config) + "another ban sink already delivers to the same " +
                  (config.action == "webhook" ? "url" : "command") + " (outbox " + path +
                  " in use)");
    }
  }
  impl->registered = true;
  std::unique_ptr<BanSink> sink(new BanSink(std::move(impl)));
  if (ctx.metrics != nullptr) {
    im->pending_gauge = ctx.metrics->Gauge("quorumwatch_ban_decisions_pending", {{"sink", im->name}},
                                           "Ban decisions in the outbox not yet acknowledged");
  }
  {
    std::lock_guard<std::mutex> g(im->mu);
    if (auto opened = im->outbox->Open(); !opened) {
      return Fail(Where(config) + opened.error().message);
    }
    if (uint64_t pending = im->outbox->pending(); pending > 0) {
      im->Log(std::to_string(pending) + " pending decision(s) to deliver");
    }
    im->UpdateGauge();
  }
  im->thread = std::thread([im] { im->Run(); });
  return sink;
}

void BanSink::Write(const Event& e) {
  if (e.kind != EventKind::kBan && e.kind != EventKind::kUnban) return;
  Impl& im = *impl_;
  BanDecision d;
  if (!Impl::DecisionFromEvent(e, &d)) return;  // a held ban: not a decision
  im.counters.received->fetch_add(1);
  if (im.config.dry_run) {
    im.Log("dry run: would " + d.action + " " + BanNodeName(d) + " (chain " + d.chain +
           ", reason " + d.reason + ", since " + d.since + ", key " + d.idempotency_key + ")");
    return;
  }
  std::lock_guard<std::mutex> g(im.mu);
  if (im.outbox->Has(d.idempotency_key)) return;  // decided before (same node and period)
  if (im.stop) {  // REQUIRES of Close broken: say so rather than lose it quietly
    im.counters.dropped->fetch_add(1);
    im.Log("decision after Close dropped: " + d.action + " " + BanNodeName(d));
    return;
  }
  OutboxItem item;
  item.entry.sink = im.name;
  item.entry.decision = std::move(d);
  item.decided_at = e.time;
  if (!im.outbox->Add(std::move(item))) {
    // Never dropped: delivered from memory, but lost if we crash first.
    im.counters.errors->fetch_add(1);
    im.Log("cannot write the decision to the outbox " + im.outbox->path() + ": " +
           std::strerror(errno) + "; delivering it without a durable record");
  }
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
  if (im.outbox != nullptr) {
    std::lock_guard<std::mutex> g(im.mu);
    im.outbox->Close();
  }
  if (im.registered) {
    std::lock_guard<std::mutex> g(open_outboxes_mu);
    open_outboxes.erase(im.outbox->path());
    im.registered = false;
  }
}

uint64_t BanSink::pending() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->outbox != nullptr ? impl_->outbox->pending() : 0;
}

Nanos BanSink::oldest_pending() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->outbox != nullptr ? impl_->outbox->oldest_pending() : kNoTime;
}

std::string SignBody(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return Hex(mac, len);
}

}  // namespace qw::sink
