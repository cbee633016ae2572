// Batch: what crosses from the reading thread to the matchers and on to the
// detector side. Record texts are views into the batch's own arena, and
// everything else a record refers to travels in the batch as typed values,
// so a batch can move between threads without anything else staying alive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/signal.h"
#include "common/time.h"
#include "pipeline/checkpoint.h"
#include "record/record_stage.h"
#include "sink/status.h"

namespace qw::pipeline {

enum class RecordKind : uint8_t {
  kLine,      // a log record to match: arena[offset, offset + length)
  kOpen,      // a stream exists: infos[offset]
  kStart,     // a stream is placed (node, chain, family): infos[offset]
  kPosition,  // the stream's resume position so far: progress[offset]
  kEnd,       // the stream ended: progress[offset] has its last lines
};

// How far a stream has been handled: its resume position, and the lines
// read since the stream's previous progress (they belong to its node).
struct StreamProgress {
  uint64_t position = 0;
  uint64_t lines_read = 0;
  uint64_t lines_rejected = 0;
};

struct Record {
  uint32_t stream;
  uint32_t offset;  // see RecordKind
  uint32_t length;  // kLine only
  RecordKind kind;
  int16_t family;   // kLine: registry index; -1: not matched
  Nanos time;       // kLine: the record's time
  uint8_t flags = 0;  // record::kEntryFallbackTime (kLine), record::kEntryGone (kEnd)
};

// An operator's request (`quorumwatch bans hold|release|unban`), handed to
// the detector side with a batch.
struct OperatorRequest {
  std::string name;  // the request's handle, for its answer
  std::string op;    // hold | release | unban
  std::string node;  // pod, namespace/pod or chain|namespace/pod
};

struct Batch {
  uint64_t seq = 0;  // order of the batch in the reading thread's output
  std::string arena;
  std::vector<Record> records;
  std::vector<Signal> signals;  // parallel to records, filled by a matcher
  std::vector<record::StreamInfo> infos;
  std::vector<StreamProgress> progress;

  // From the reading side, about the moment the batch was handed on:
  // every stream was read to its end with nothing held back (what the
  // detector has decided can all be written).
  bool all_idle = false;
  Nanos wall = kNoTime;  // wall clock (live)
  std::vector<OperatorRequest> requests;
  std::optional<sink::HealthStatus> health;
  // Chains' states handed over with Kafka partitions (KafkaInput::
  // TakeRestores): merged into the detector before the batch's records.
  std::vector<Checkpoint> restores;
  // A checkpoint is written right after this batch (Kafka partitions are
  // being revoked: KafkaInput::SetFlush).
  bool checkpoint = false;

  std::string_view text(const Record& r) const {
    return std::string_view(arena.data() + r.offset, r.length);
  }
  bool empty() const {
    return records.empty() && requests.empty() && !health && !all_idle && restores.empty() &&
           !checkpoint;
  }
  void Clear() {
    arena.clear();
    records.clear();
    signals.clear();
    infos.clear();
    progress.clear();
    all_idle = false;
    wall = kNoTime;
    requests.clear();
    health.reset();
    restores.clear();
    checkpoint = false;
  }
};

}  // namespace qw::pipeline
