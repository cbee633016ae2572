// Pipeline: sources -> N stateless matcher threads -> node state in batch
// order -> events. The replay driver merges its streams by time (k-way) on
// the calling thread; matchers take any batch; the detector thread restores
// batch order by sequence number, so the output does not depend on the
// thread count.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "detect/detector.h"
#include "match/registry.h"
#include "pipeline/batch.h"
#include "sink/event_sink.h"
#include "source/stream_reader.h"

namespace qw::pipeline {

// The matching stage and the ordered consumer, shared by replay and live
// mode: Dispatch() hands a filled batch to N matcher threads (any batch, any
// thread); one consumer thread receives the batches in Dispatch order and
// returns them to the pool. Memory is bounded by the pool.
class Stages {
 public:
  using Consumer = std::function<void(Batch&)>;
  Stages(const match::Registry& registry, int threads, size_t batch_bytes, size_t batch_records,
         Consumer consume);
  ~Stages();
  Stages(const Stages&) = delete;
  Stages& operator=(const Stages&) = delete;

  // A cleared batch from the pool; blocks while every batch is in flight
  // (back-pressure). REQUIRES: one producer thread.
  Batch* Acquire();
  // Hands a batch acquired before to the matchers.
  void Dispatch(Batch* b);
  // Returns an unused batch to the pool.
  void Release(Batch* b);
  // Waits until every dispatched batch was consumed, then stops the threads.
  void Finish();

  uint64_t matched() const;
  uint64_t prefilter_failures() const;
  uint64_t dispatched() const { return seq_; }
  size_t in_flight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t seq_ = 0;
};

struct ReplayStream {
  std::unique_ptr<source::StreamReader> reader;  // positioned at its first chunk
  int node = -1;    // detector node index
  int family = -1;  // registry index; -1: unknown family (records read, never matched)
};

struct PipelineStats {
  uint64_t batches = 0;
  uint64_t records = 0;
  uint64_t matched = 0;
  uint64_t prefilter_failures = 0;
  Nanos end_time = kNoTime;  // the final watermark
};

struct ReplayOptions {
  int threads = 1;
  size_t batch_bytes = 64 << 10;
  size_t batch_records = 2048;
  // Called on the calling thread every few batches with the records merged.
  std::function<void(uint64_t records)> progress;
};

// Runs a replay to the end. REQUIRES: every stream's reader has read its
// first chunk (NextChunk) and has its family matcher set.
PipelineStats RunReplay(const match::Registry& registry, std::vector<ReplayStream>& streams,
                        detect::Detector* detector, sink::EventOrderer* orderer,
                        const ReplayOptions& opt);

}  // namespace qw::pipeline
