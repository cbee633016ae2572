#include "sink/event_sink.h"

#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/json.h"

namespace qw::sink {

constexpr Nanos kReportEvery = 60 * kSecond;  // a failing output: one line at most

void EventOrderer::Release(Nanos watermark) {
  if (pending_.empty()) return;
  auto ready = std::partition(pending_.begin(), pending_.end(),
                              [&](const Event& e) { return e.time < watermark; });
  if (ready == pending_.begin()) return;
  std::sort(pending_.begin(), ready, EventLess);
  for (auto it = pending_.begin(); it != ready; ++it) {
    for (EventSink* s : sinks_) s->Write(*it);
    ++written_;
  }
  pending_.erase(pending_.begin(), ready);
  // Live readers (and the Alertmanager later) see events as they are decided.
  for (EventSink* s : sinks_) s->Flush();
}

void EventOrderer::ReleaseAll() {
  std::sort(pending_.begin(), pending_.end(), EventLess);
  for (const Event& e : pending_) {
    for (EventSink* s : sinks_) s->Write(e);
    ++written_;
  }
  pending_.clear();
  for (EventSink* s : sinks_) s->Flush();
}

WriteErrorLog::WriteErrorLog(OutputOptions options) : options_(std::move(options)) {
  if (!options_.log) {
    options_.log = [](const std::string& line) { LogLine(line); };
  }
  if (options_.clock == nullptr) options_.clock = SystemClock::Get();
}

void WriteErrorLog::Failed(std::string_view what, int err) {
  FailedBecause(what, std::strerror(err));
}

void WriteErrorLog::FailedBecause(std::string_view what, std::string_view reason) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  const Nanos now = options_.clock->Now();
  if (!failing_) {
    failing_ = true;
    episode_failures_ = 1;
    unreported_ = 0;
    last_line_ = now;
    options_.log(
        fmt::format("{}: {} failed: {}; {}", options_.name, what, reason, options_.while_failing));
    return;
  }
  ++episode_failures_;
  ++unreported_;
  if (now - last_line_ < kReportEvery) return;
  options_.log(fmt::format("{}: still failing: {} more failed write(s) in the last {} ({})",
                           options_.name, unreported_, FormatDuration(now - last_line_), reason));
  unreported_ = 0;
  last_line_ = now;
}

void WriteErrorLog::Succeeded() {
  if (!failing_) return;
  failing_ = false;
  options_.log(fmt::format("{}: recovered: writing succeeds again after {} failed write(s)",
                           options_.name, episode_failures_));
}

FileSink::FileSink(std::FILE* f, ComponentCounters counters, OutputOptions options)
    : f_(f), counters_(counters), write_(options.write), errors_(std::move(options)) {}

void FileSink::WriteLine(std::string_view line) {
  counters_.received->fetch_add(1, std::memory_order_relaxed);
  pending_.append(line);
  ends_.push_back(pending_.size());
  if (pending_.size() > kMaxPendingBytes) {
    // Failing for long: the oldest go, counted; no checkpoint after this.
    size_t drop = 0, events = 0;
    while (!ends_.empty() && pending_.size() - ends_.front() > kMaxPendingBytes / 2) {
      drop = ends_.front();
      ends_.pop_front();
      ++events;
    }
    pending_.erase(0, drop);
    for (auto& e : ends_) e -= drop;
    counters_.dropped->fetch_add(events, std::memory_order_relaxed);
    lost_ = true;
  }
  if (pending_.size() >= (64u << 10)) FlushFile();
}

bool FileSink::FlushFile() {
  if (pending_.empty()) return true;
  std::fflush(f_);  // whatever else went to the stream goes first
  const int fd = ::fileno(f_);
  size_t done = 0;
  while (done < pending_.size()) {
    const ssize_t n = write_ ? write_(pending_.data() + done, pending_.size() - done)
                             : ::write(fd, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Kept: the next flush writes the rest after what did get out.
      counters_.errors->fetch_add(1, std::memory_order_relaxed);
      errors_.Failed("write", n < 0 ? errno : ENOSPC);
      break;
    }
    done += static_cast<size_t>(n);
  }
  uint64_t written = 0;
  while (!ends_.empty() && ends_.front() <= done) {
    ends_.pop_front();
    ++written;
  }
  pending_.erase(0, done);
  for (auto& e : ends_) e -= done;
  counters_.processed->fetch_add(written, std::memory_order_relaxed);
  if (!pending_.empty()) return false;
  errors_.Succeeded();
  return true;
}

bool FileSink::Sync() {
  if (!FlushFile() || lost_) return false;
  if (::fdatasync(::fileno(f_)) != 0 && errno != EINVAL) {  // EINVAL: a pipe or a terminal
    counters_.errors->fetch_add(1, std::memory_order_relaxed);
    errors_.Failed("sync", errno);
    return false;
  }
  return true;
}

void JsonlSink::Write(const Event& e) {
  buf_.clear();
  AppendEventJson(buf_, e);
  buf_.push_back('\n');
  WriteLine(buf_);
}

void TextSink::Write(const Event& e) {
  std::string line = FormatRfc3339Millis(e.time);
  std::string sev(SeverityName(e.severity));
  for (auto& c : sev) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string who = e.chain + "/" + (e.node.empty() ? "-" : e.node);
  line += fmt::format("  {:<8} {:<18} {:<32}", sev, EventKindName(e.kind), who);
  if (e.height >= 0) line += fmt::format(" height={}", e.height);
  for (const auto& [k, v] : e.detail) {
    if (k == "evidence" || k == "line") continue;
    line += " " + k + "=" + v;
  }
  line.push_back('\n');
  WriteLine(line);
}

namespace {

using Json = nlohmann::ordered_json;

Json HeightJson(int64_t h) { return h < 0 ? Json(nullptr) : Json(h); }

// Seconds to the millisecond, written without trailing zeros ("2049",
// "6.372"): an integer when whole, else the double nearest to the 3-decimal
// value, which prints as exactly those decimals.
Json SecondsJson(double v) {
  const double r = std::strtod(fmt::format("{:.3f}", v).c_str(), nullptr);
  if (r == std::trunc(r) && std::fabs(r) < 9e15) return Json(static_cast<int64_t>(r));
  return Json(r);
}

}  // namespace

nlohmann::ordered_json SummaryObject(const NodeSummary& s) {
  Json o = Json::object();
  o.emplace("node", s.node);
  if (!s.namespace_.empty()) o.emplace("namespace", s.namespace_);
  o.emplace("chain", s.chain);
  o.emplace("family", s.family);
  o.emplace("signer", s.signer);
  o.emplace("first_height", HeightJson(s.first_height));
  o.emplace("last_height", HeightJson(s.last_height));
  o.emplace("commits", s.commits);
  o.emplace("missed_precommits", HeightJson(s.missed_precommits));
  o.emplace("longest_stall_seconds", SecondsJson(s.longest_stall_seconds));
  o.emplace("seconds_out_of_consensus", SecondsJson(s.seconds_out_of_consensus));
  o.emplace("bans", s.bans);
  o.emplace("lines_read", s.lines_read);
  o.emplace("lines_matched", s.lines_matched);
  o.emplace("lines_rejected", s.lines_rejected);
  o.emplace("status", s.status);
  return o;
}

std::string SummaryJson(const std::vector<NodeSummary>& nodes) {
  if (nodes.empty()) return "[]\n";
  // One node a line: a person can read it, a diff shows the node that changed.
  std::string out = "[";
  for (const auto& s : nodes) {
    out += out.size() == 1 ? "\n  " : ",\n  ";
    out += DumpJson(SummaryObject(s));
  }
  out += "\n]\n";
  return out;
}

std::string SummaryTable(const std::vector<NodeSummary>& nodes) {
  std::string out = fmt::format("{:<28} {:<14} {:>10} {:>10} {:>8} {:>7} {:>10} {:>10} {:>5}  {}\n",
                                "NODE", "CHAIN", "FIRST", "LAST", "COMMITS", "MISSED",
                                "MAX STALL", "OUT OF C.", "BANS", "STATUS");
  for (const auto& s : nodes) {
    std::string name = s.namespace_.empty() ? s.node : s.namespace_ + "/" + s.node;
    auto h = [](int64_t v) { return v < 0 ? std::string("-") : std::to_string(v); };
    out += fmt::format("{:<28} {:<14} {:>10} {:>10} {:>8} {:>7} {:>10} {:>10} {:>5}  {}\n", name,
                       s.chain, h(s.first_height), h(s.last_height), s.commits,
                       s.missed_precommits < 0 ? std::string("-") : std::to_string(s.missed_precommits),
                       FormatDuration(static_cast<Nanos>(s.longest_stall_seconds * kSecond)),
                       FormatDuration(static_cast<Nanos>(s.seconds_out_of_consensus * kSecond)),
                       s.bans, s.status);
  }
  return out;
}

}  // namespace qw::sink
