// Event sinks (the output side) and the orderer that puts events into the
// contract's order before they reach the sinks.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "common/event.h"
#include "detect/detector.h"

namespace qw::sink {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called in output order from the detector's thread.
  virtual void Write(const Event& e) = 0;
  virtual void Flush() {}
};

// Buffers events and releases them ordered by (time, chain, node, kind)
// once the watermark has passed their time: no later decision can precede
// them then. Owned by the detector's thread.
class EventOrderer : public detect::EventOutput {
 public:
  explicit EventOrderer(std::vector<EventSink*> sinks) : sinks_(std::move(sinks)) {}
  void Emit(Event e) override { pending_.push_back(std::move(e)); }
  // Writes every pending event with time < watermark.
  void Release(Nanos watermark);
  // Writes everything pending.
  void ReleaseAll();
  uint64_t written() const { return written_; }

 private:
  std::vector<EventSink*> sinks_;
  std::vector<Event> pending_;
  uint64_t written_ = 0;
};

// One JSON object per line (the events contract). Does not own `f`.
class JsonlSink : public EventSink {
 public:
  explicit JsonlSink(std::FILE* f) : f_(f) {}
  void Write(const Event& e) override;
  void Flush() override { std::fflush(f_); }

 private:
  std::FILE* f_;
  std::string buf_;
};

// A readable timeline line per event. Does not own `f`.
class TextSink : public EventSink {
 public:
  explicit TextSink(std::FILE* f) : f_(f) {}
  void Write(const Event& e) override;
  void Flush() override { std::fflush(f_); }

 private:
  std::FILE* f_;
};

// The --summary JSON array (DESIGN.md, "Summary").
std::string SummaryJson(const std::vector<detect::NodeSummary>& nodes);
// The summary as a table for the text format.
std::string SummaryTable(const std::vector<detect::NodeSummary>& nodes);

}  // namespace qw::sink
