// Batch: the one type that crosses from the sources to the matchers and on
// to node state. Records are views into the batch's own arena, so a batch
// can travel between threads without anything else staying alive.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/signal.h"
#include "common/time.h"

namespace qw::pipeline {

enum class RecordKind : uint8_t {
  kLine,         // a log record to match
  kStreamEnd,    // the stream ended (file finished or removed)
  kStreamStart,  // live: a new stream; its text describes it (see live.h)
  kPosition,     // live: the stream's safe resume offset so far (text: decimal)
  kTick,         // live: wall-clock time passes (time is the tick)
};

struct Record {
  uint32_t stream;
  uint32_t offset;
  uint32_t length;
  RecordKind kind;
  int16_t family;  // registry index for kLine records; -1: not matched
  Nanos time;
};

struct Batch {
  uint64_t seq = 0;         // order of the batch in the source's output
  std::string arena;        // record texts, each followed by '\n'
  std::vector<Record> records;
  std::vector<Signal> signals;  // parallel to records, filled by a matcher

  std::string_view text(const Record& r) const {
    return std::string_view(arena.data() + r.offset, r.length);
  }
  void Clear() {
    arena.clear();
    records.clear();
    signals.clear();
  }
};

}  // namespace qw::pipeline
