// Ordering: the one merge of streams on event time, shared by replay, live
// tailing and Kafka (docs/PIPELINE.md, "Ordering and time").
//
// Records leave in (time, stream id) order across streams and in stream
// order within one. A record goes only when no stream can still produce
// an earlier one: every stream has a record ready, or has ended, or (live)
// has been read to its end with nothing held back. So history is merged
// exactly as replay merges it, and a stream that is behind holds the
// others back until it has been read. Stream events (open, placed, end)
// and resume positions travel in the same order.
//
// Threading: owned by the reading thread, like the record stage it reads.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "pipeline/batch.h"
#include "record/record_stage.h"

namespace qw::pipeline {

class Ordering {
 public:
  struct Options {
    size_t batch_bytes = 64 << 10;
    size_t batch_records = 2048;
    bool positions = true;  // hand on resume positions (live checkpoints)
  };
  // `full(b)` takes a full batch and returns an empty one to go on with.
  Ordering(record::RecordStage* stage, Options opt, std::function<Batch*(Batch*)> full);

  // A stream opened in the stage. REQUIRES: ids ascend.
  void Add(uint32_t id);

  // Moves into `*batch` (and further batches through `full`) every entry
  // that can go now. Returns the streams whose next bytes are needed
  // before anything more can go: replay reads them and calls again; live
  // reading goes on with its next poll. Streams that ended are forgotten
  // (in the stage too) once their end went out.
  std::vector<uint32_t> Release(Batch** batch);

  // True after Release when nothing is ready anywhere and no stream holds
  // the others back: everything read so far has gone.
  bool idle() const { return idle_; }
  size_t streams() const { return slots_.size(); }

 private:
  struct Slot {
    uint32_t id;
    record::RecordStage::Stream* st;  // valid until the stage forgets it
    record::Output* out;
    uint64_t position = 0;  // resume position as far as handed on or pending
    bool position_known = false;
    bool position_dirty = false;  // changed since last handed on
    uint64_t lines = 0, rejected = 0;  // lines taken since last handed on
    bool ended = false;
  };
  // opens_only: stop at a stream's end too (Release takes every stream's
  // opening first, so a rotated file's successor is known before the old
  // file's end reaches the detector).
  void TakeTimeless(size_t slot, Batch** batch, bool opens_only = false);
  void SetPosition(size_t slot, uint64_t position, uint64_t lines, uint64_t rejected);
  // Positions travel with the batch that holds the records before them.
  void FlushPositions(Batch* b);
  // Hands on a full batch (after its positions).
  void Room(Batch** batch, size_t bytes);

  record::RecordStage* stage_;
  Options opt_;
  std::function<Batch*(Batch*)> full_;
  std::vector<Slot> slots_;  // by ascending id
  std::vector<size_t> dirty_;  // slots whose position changed
  bool idle_ = false;
};

}  // namespace qw::pipeline
