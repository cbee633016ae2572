#include "sink/event_sink.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/json.h"

namespace qw::sink {

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

void JsonlSink::Write(const Event& e) {
  buf_.clear();
  AppendEventJson(buf_, e);
  buf_.push_back('\n');
  counters_.received->fetch_add(1, std::memory_order_relaxed);
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) == buf_.size()) {
    counters_.processed->fetch_add(1, std::memory_order_relaxed);
  } else {
    counters_.errors->fetch_add(1, std::memory_order_relaxed);
  }
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
  std::fwrite(line.data(), 1, line.size(), f_);
}

namespace {
std::string Num(double v) {
  std::string s = fmt::format("{:.3f}", v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

std::string SummaryJson(const std::vector<NodeSummary>& nodes) {
  std::string out = "[";
  bool first = true;
  for (const auto& s : nodes) {
    out += first ? "\n  {" : ",\n  {";
    first = false;
    out += "\"node\":" + JsonString(s.node);
    if (!s.namespace_.empty()) out += ",\"namespace\":" + JsonString(s.namespace_);
    out += ",\"chain\":" + JsonString(s.chain);
    out += ",\"family\":" + JsonString(s.family);
    out += fmt::format(",\"signer\":{}", s.signer ? "true" : "false");
    auto h = [](int64_t v) { return v < 0 ? std::string("null") : std::to_string(v); };
    out += ",\"first_height\":" + h(s.first_height);
    out += ",\"last_height\":" + h(s.last_height);
    out += fmt::format(",\"commits\":{}", s.commits);
    out += ",\"missed_precommits\":" + h(s.missed_precommits);
    out += ",\"longest_stall_seconds\":" + Num(s.longest_stall_seconds);
    out += ",\"seconds_out_of_consensus\":" + Num(s.seconds_out_of_consensus);
    out += fmt::format(",\"bans\":{}", s.bans);
    out += fmt::format(",\"lines_read\":{},\"lines_matched\":{},\"lines_rejected\":{}",
                       s.lines_read, s.lines_matched, s.lines_rejected);
    out += ",\"status\":" + JsonString(s.status);
    out += "}";
  }
  out += nodes.empty() ? "]\n" : "\n]\n";
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
