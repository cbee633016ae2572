// Replay: captured logs through the pipeline on event time, to the end.
// The same record stage, ordering, matchers and detector side as live
// tailing; only the source (whole files, read as the ordering asks) and
// the end (timers stop at the last record) differ.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "match/registry.h"
#include "pipeline/driver.h"
#include "record/naming.h"
#include "sink/event_sink.h"
#include "source/byte_source.h"

namespace qw::pipeline {

struct ReplayInput {
  std::string path;
  std::unique_ptr<source::ByteSource> bytes;
  Nanos mtime = 0;  // the file's modification time (stamp-less files take it)
  uint64_t size = 0;  // bytes on disk (compressed for .zst); 0: unknown (a pipe)
};

// How far a replay is: records out, and bytes taken from the files of the
// bytes they hold (compressed bytes for .zst files).
struct ReplayProgress {
  uint64_t records = 0;
  uint64_t lines = 0;  // lines read (a record may span several)
  uint64_t bytes_read = 0;
  uint64_t bytes_total = 0;  // 0: unknown (an input of unknown size)
};

struct ReplayOptions {
  int threads = 1;
  size_t batch_bytes = 64 << 10;
  size_t batch_records = 2048;
  // Called on the calling thread every few batches, and once at the end.
  std::function<void(const ReplayProgress&)> progress;
  std::function<void(const std::string&)> log;  // operator messages
  // Sees heights and evidence (the report); nullptr: none.
  detect::DetectorObserver* observer = nullptr;
  // --since/--until (Driver::SetWindow); kNoTime: open.
  Nanos since = kNoTime, until = kNoTime;
};

struct ReplayFile {
  std::string path;
  record::LineCounts counts;
  record::LogFormat format = record::LogFormat::kAuto;
  std::string error;  // a read error ("" none)
};

struct ReplayResult {
  uint64_t batches = 0, records = 0, matched = 0, prefilter_failures = 0;
  std::vector<ReplayFile> files;  // in input order
  std::vector<NodeSummary> summary;
  uint64_t events = 0;
  Nanos end = kNoTime;  // the detector's time at the end
};

// Runs the inputs to their end. Files are taken in name order (base name,
// then path): stream ids, which break ties of equal times, follow it, as
// they do when a live instance finds the same files.
ReplayResult Replay(match::Registry& registry, const record::Routing& routing,
                    const Topology& topology, std::vector<ReplayInput> inputs,
                    std::vector<sink::EventSink*> sinks, const ReplayOptions& opt);

}  // namespace qw::pipeline
