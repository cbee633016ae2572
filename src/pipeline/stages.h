// Stages: the matching stage and the ordered consumer, shared by replay,
// live tailing and Kafka. Dispatch() hands a filled batch to N
// stateless matcher threads (any batch, any thread); one consumer thread
// receives the batches in Dispatch order again (by sequence number), so
// what the detector sees does not depend on the thread count. Live
// tailing may have small batches run on the dispatching thread instead
// (InlineUpTo); the consumer callback then runs there, in the same order,
// never at the same time as on the consumer thread (one lock).
#pragma once

#include <functional>
#include <memory>

#include "match/registry.h"
#include "pipeline/batch.h"

namespace qw::pipeline {

// Memory is bounded by the pool of batches.
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
  // Hands a batch acquired before to the matchers; with InlineUpTo(n), a
  // batch of at most n records dispatched when none is in flight is
  // matched and consumed on the calling thread instead, before Dispatch
  // returns.
  void Dispatch(Batch* b);
  // 0 (the default): never inline.
  void InlineUpTo(size_t records) { inline_records_ = records; }
  uint64_t inlined() const { return inlined_; }
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
  size_t inline_records_ = 0;
  uint64_t inlined_ = 0;
};

}  // namespace qw::pipeline
