// Event sinks (the output side) and the orderer that puts events into the
// contract's order before they reach the sinks.
#pragma once

#include <atomic>
#include <cstdio>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/clock.h"
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
  // Makes what was written so far durable (a file's data on disk), for the
  // checkpoint that implies it (docs/PIPELINE.md, "Checkpoints"). False
  // when that failed. Sinks with their own durability (the ban outbox) or
  // none to offer return true. Detector's thread.
  virtual bool Sync() { return true; }
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

// How a file sink names itself and reports failed writes.
struct OutputOptions {
  std::string name = "event output";  // in messages: the path, or "stdout"
  // Receives one line per report; default: stderr, "quorumwatch: <line>".
  std::function<void(const std::string&)> log;
  const Clock* clock = nullptr;  // for the rate limit; default: the system clock
  // Tests: writes go here instead of the file's descriptor (returns bytes
  // written, or -1 with errno set).
  std::function<ssize_t(const char*, size_t)> write;
  // What follows while writes fail, in the first report of an episode.
  std::string while_failing =
      "events wait and are written when writing succeeds again (no checkpoint meanwhile)";
};

// Failed writes of one output, counted and reported without flooding: the
// first failure of an episode at once, then at most one line a minute with
// the number of failures since the last line, and one line when writing
// succeeds again. Detector's thread, but errors() from any thread.
class WriteErrorLog {
 public:
  explicit WriteErrorLog(OutputOptions options);
  // A failed write (`what`: "write", "flush", "sync"), errno `err`.
  void Failed(std::string_view what, int err);
  // The same with the reason in words (an error message of its own).
  void FailedBecause(std::string_view what, std::string_view reason);
  // A write that reached the file: ends an episode of failures.
  void Succeeded();
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  bool failing() const { return failing_; }

 private:
  OutputOptions options_;
  std::atomic<uint64_t> errors_{0};
  bool failing_ = false;
  uint64_t episode_failures_ = 0;  // failures in this episode
  uint64_t unreported_ = 0;        // failures since the last line
  Nanos last_line_ = kNoTime;
};

// Lines to a file (a stdio stream, not owned, written through its
// descriptor). Lines wait in the sink's own buffer until written: a failed
// write (disk full, an I/O error) keeps them and the next flush tries again,
// so nothing is dropped while it fails, up to kMaxPendingBytes; beyond
// that the oldest are dropped, counted, and Sync fails from then on, so no
// checkpoint implies them (a restart decides them again). Counters:
// received = events, processed = events written, dropped = events lost,
// errors = failed writes and syncs (also write_errors()), each reported
// (WriteErrorLog).
class FileSink : public EventSink {
 public:
  static constexpr size_t kMaxPendingBytes = 64 << 20;
  void Flush() override { FlushFile(); }
  // Everything written, then fdatasync of the file (a pipe or terminal,
  // which cannot be synced, counts as done). false while lines wait or
  // after any was lost.
  bool Sync() override;
  uint64_t write_errors() const { return errors_.errors(); }

 protected:
  FileSink(std::FILE* f, ComponentCounters counters, OutputOptions options);
  // One event's text, with its newline.
  void WriteLine(std::string_view line);

 private:
  bool FlushFile();

  std::FILE* f_;
  ComponentCounters counters_;
  std::function<ssize_t(const char*, size_t)> write_;
  WriteErrorLog errors_;
  std::string pending_;        // bytes not yet written
  std::deque<size_t> ends_;    // end offset in pending_ of each waiting event
  bool lost_ = false;          // an event was dropped: no Sync succeeds again
};

class JsonlSink : public FileSink {
 public:
  explicit JsonlSink(std::FILE* f, ComponentCounters counters = ComponentCounters::Detached(),
                     OutputOptions options = {})
      : FileSink(f, counters, std::move(options)) {}
  void Write(const Event& e) override;

 private:
  std::string buf_;
};

// A readable timeline line per event.
class TextSink : public FileSink {
 public:
  explicit TextSink(std::FILE* f, ComponentCounters counters = ComponentCounters::Detached(),
                    OutputOptions options = {})
      : FileSink(f, counters, std::move(options)) {}
  void Write(const Event& e) override;
};

// One node's summary object (the --summary array's element; the report's
// table).
nlohmann::ordered_json SummaryObject(const NodeSummary& s);
// The --summary JSON array (README.md, "Summary (--summary FILE)"): one
// node object a line.
std::string SummaryJson(const std::vector<NodeSummary>& nodes);
// The summary as a table for the text format.
std::string SummaryTable(const std::vector<NodeSummary>& nodes);

}  // namespace qw::sink
