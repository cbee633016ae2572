// Event sinks (the output side) and the orderer that puts events into the
// contract's order before they reach the sinks.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/metrics.h"
#include "common/summary.h"
#include "sink/status.h"

namespace qw::sink {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called in output order from the detector's thread. Must not block on
  // the network or a slow disk: delivering sinks queue and return.
  virtual void Write(const Event& e) = 0;
  // After a group of writes (detector's thread).
  virtual void Flush() {}
  // A state snapshot, about once a second and after batches with events
  // (detector's thread). Level-triggered sinks work from these.
  virtual void OnStatus(const Status& status) { (void)status; }
  // Shutdown: finish what can be finished quickly, keep the rest for the
  // next start. Called once, after the last Write, from the thread that
  // created the sink.
  virtual void Close() {}
};

// Buffers events and releases them ordered by (time, chain, node, kind)
// once the watermark has passed their time: no later decision can precede
// them then. Owned by the detector's thread.
class EventOrderer : public EventOutput {
 public:
  explicit EventOrderer(std::vector<EventSink*> sinks) : sinks_(std::move(sinks)) {}
  void Emit(Event e) override { pending_.push_back(std::move(e)); }
  // Writes every pending event with time < watermark.
  void Release(Nanos watermark);
  // Writes everything pending.
  void ReleaseAll();
  uint64_t written() const { return written_; }
  // Decided, not yet written (a checkpoint keeps them).
  const std::vector<Event>& pending() const { return pending_; }

 private:
  std::vector<EventSink*> sinks_;
  std::vector<Event> pending_;
  uint64_t written_ = 0;
};

// One JSON object per line (the events contract). Does not own `f`.
// Counts events received and written (processed) or failed (errors).
class JsonlSink : public EventSink {
 public:
  explicit JsonlSink(std::FILE* f, ComponentCounters counters = ComponentCounters::Detached())
      : f_(f), counters_(counters) {}
  void Write(const Event& e) override;
  void Flush() override { std::fflush(f_); }

 private:
  std::FILE* f_;
  ComponentCounters counters_;
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

// The --summary JSON array (README.md, "Summary (--summary FILE)").
std::string SummaryJson(const std::vector<NodeSummary>& nodes);
// The summary as a table for the text format.
std::string SummaryTable(const std::vector<NodeSummary>& nodes);

}  // namespace qw::sink
