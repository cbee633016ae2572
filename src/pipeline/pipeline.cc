#include "pipeline/pipeline.h"

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <queue>
#include <thread>

namespace qw::pipeline {

using Queue = moodycamel::BlockingConcurrentQueue<Batch*>;

struct Stages::Impl {
  const match::Registry& registry;
  Consumer consume;
  std::vector<std::unique_ptr<Batch>> pool;
  Queue free_batches, work, done;
  std::atomic<uint64_t> matched{0}, failures{0};
  std::atomic<uint64_t> total{UINT64_MAX};
  std::atomic<size_t> in_flight{0};
  std::vector<std::thread> matchers;
  std::thread consumer;
  std::unique_ptr<moodycamel::ProducerToken> work_token;
  bool finished = false;

  Impl(const match::Registry& r, size_t pool_size, Consumer c)
      : registry(r), consume(std::move(c)), free_batches(pool_size), work(pool_size),
        done(pool_size) {}

  // Matcher thread: owns its compiled matchers (RE2 objects are not shared
  // between threads, so no DFA-cache lock is contended), built on first use
  // of a family; the Vectorscan database is shared through the registry.
  void MatchLoop() {
    std::vector<std::unique_ptr<match::FamilyMatcher>> matchers(registry.size());
    std::vector<bool> tried(registry.size(), false);
    moodycamel::ConsumerToken ctok(work);
    moodycamel::ProducerToken ptok(done);
    uint64_t hits = 0;
    std::vector<uint32_t> starts, lengths;
    std::vector<uint8_t> active;
    std::vector<int> families;
    std::vector<Signal> scratch;
    while (true) {
      Batch* b = nullptr;
      work.wait_dequeue(ctok, b);
      if (b == nullptr) break;
      const size_t n = b->records.size();
      b->signals.resize(n);
      starts.resize(n);
      lengths.resize(n);
      active.resize(n);
      families.clear();
      for (size_t i = 0; i < n; ++i) {
        const Record& r = b->records[i];
        starts[i] = r.offset;
        lengths[i] = r.length;
        int fam = r.kind == RecordKind::kLine ? r.family : -1;
        if (fam >= 0 && static_cast<size_t>(fam) < registry.size() &&
            std::find(families.begin(), families.end(), fam) == families.end()) {
          families.push_back(fam);
        }
      }
      for (auto& sig : b->signals) sig.kind = SignalKind::kNone;
      // Usually one family per batch; a mixed batch is matched once per family.
      for (int fam : families) {
        const size_t f = static_cast<size_t>(fam);
        if (!tried[f]) {
          tried[f] = true;
          auto m = match::FamilyMatcher::Create(registry.file(f), registry.Prefilter(f));
          if (m) matchers[f] = std::move(*m);
        }
        match::FamilyMatcher* m = matchers[f].get();
        if (m == nullptr) continue;
        for (size_t i = 0; i < n; ++i) {
          const Record& r = b->records[i];
          active[i] = r.kind == RecordKind::kLine && r.family == fam;
        }
        if (families.size() == 1) {
          hits += m->MatchRecords(b->arena, starts.data(), lengths.data(), active.data(), n,
                                  b->signals.data());
        } else {
          scratch.resize(n);
          hits += m->MatchRecords(b->arena, starts.data(), lengths.data(), active.data(), n,
                                  scratch.data());
          for (size_t i = 0; i < n; ++i) {
            if (active[i]) b->signals[i] = scratch[i];
          }
        }
      }
      done.enqueue(ptok, b);
    }
    uint64_t fails = 0;
    for (const auto& m : matchers) {
      if (m) fails += m->prefilter_failures();
    }
    matched.fetch_add(hits);
    failures.fetch_add(fails);
  }

  // Consumer thread: batches in sequence order. The queue keeps order only
  // per producer, so the end marker can overtake batches still queued by
  // matcher threads: the loop ends when it has consumed `total` batches,
  // published before the marker.
  void ConsumeLoop() {
    std::map<uint64_t, Batch*> waiting;
    uint64_t next = 0;
    moodycamel::ConsumerToken ctok(done);
    bool ended = false;
    while (!ended || next < total.load(std::memory_order_acquire)) {
      Batch* b = nullptr;
      done.wait_dequeue(ctok, b);
      if (b == nullptr) {
        ended = true;
        continue;
      }
      waiting.emplace(b->seq, b);
      while (!waiting.empty() && waiting.begin()->first == next) {
        Batch* ready = waiting.begin()->second;
        waiting.erase(waiting.begin());
        consume(*ready);
        ready->Clear();
        in_flight.fetch_sub(1);
        free_batches.enqueue(ready);
        ++next;
      }
    }
  }
};

Stages::Stages(const match::Registry& registry, int threads, size_t batch_bytes,
               size_t batch_records, Consumer consume) {
  threads = std::max(1, threads);
  const size_t pool_size = static_cast<size_t>(threads) * 4 + 4;
  impl_ = std::make_unique<Impl>(registry, pool_size, std::move(consume));
  for (size_t i = 0; i < pool_size; ++i) {
    impl_->pool.push_back(std::make_unique<Batch>());
    impl_->pool.back()->arena.reserve(batch_bytes + 4096);
    impl_->pool.back()->records.reserve(batch_records);
    impl_->free_batches.enqueue(impl_->pool.back().get());
  }
  impl_->work_token = std::make_unique<moodycamel::ProducerToken>(impl_->work);
  for (int i = 0; i < threads; ++i) impl_->matchers.emplace_back([this] { impl_->MatchLoop(); });
  impl_->consumer = std::thread([this] { impl_->ConsumeLoop(); });
}

Stages::~Stages() { Finish(); }

Batch* Stages::Acquire() {
  Batch* b = nullptr;
  impl_->free_batches.wait_dequeue(b);
  b->Clear();
  return b;
}

void Stages::Dispatch(Batch* b) {
  b->seq = seq_++;
  impl_->in_flight.fetch_add(1);
  impl_->work.enqueue(*impl_->work_token, b);
}

void Stages::Release(Batch* b) {
  b->Clear();
  impl_->free_batches.enqueue(b);
}

void Stages::Finish() {
  if (impl_->finished) return;
  impl_->finished = true;
  for (size_t i = 0; i < impl_->matchers.size(); ++i) impl_->work.enqueue(*impl_->work_token, nullptr);
  for (auto& t : impl_->matchers) t.join();
  impl_->total.store(seq_, std::memory_order_release);
  impl_->done.enqueue(nullptr);
  impl_->consumer.join();
}

uint64_t Stages::matched() const { return impl_->matched.load(); }
uint64_t Stages::prefilter_failures() const { return impl_->failures.load(); }
size_t Stages::in_flight() const { return impl_->in_flight.load(); }

namespace {

struct HeadEntry {
  Nanos time;
  size_t stream;
  bool operator>(const HeadEntry& o) const {
    return time != o.time ? time > o.time : stream > o.stream;
  }
};

}  // namespace

PipelineStats RunReplay(const match::Registry& registry, std::vector<ReplayStream>& streams,
                        detect::Detector* detector, sink::EventOrderer* orderer,
                        const ReplayOptions& opt) {
  std::vector<int> stream_node;
  for (const auto& s : streams) stream_node.push_back(s.node);
  Nanos wm = kNoTime;
  // The detector's side: runs on the consumer thread, batches in order.
  auto consume = [&](Batch& b) {
    for (size_t i = 0; i < b.records.size(); ++i) {
      const Record& r = b.records[i];
      Nanos now = wm == kNoTime || r.time > wm ? r.time : wm;
      wm = now;
      int node = stream_node[r.stream];
      detector->OnTick(now);
      if (r.kind == RecordKind::kStreamEnd) {
        detector->DetachStream(node, now);
        continue;
      }
      const Signal& s = b.signals[i];
      if (s.kind != SignalKind::kNone) {
        detector->CountLines(node, 0, 1, 0);
        detector->OnSignal(node, now, s, b.text(r));
      }
    }
    if (wm != kNoTime) orderer->Release(wm);
  };
  Stages stages(registry, opt.threads, opt.batch_bytes, opt.batch_records, consume);

  PipelineStats stats;
  std::vector<size_t> pos(streams.size(), 0);
  std::vector<Nanos> last_time(streams.size(), kNoTime);
  std::priority_queue<HeadEntry, std::vector<HeadEntry>, std::greater<HeadEntry>> heads;
  auto push_head = [&](size_t s) {
    const auto& recs = streams[s].reader->records();
    if (pos[s] < recs.size()) heads.push(HeadEntry{recs[pos[s]].time, s});
  };
  for (size_t s = 0; s < streams.size(); ++s) {
    if (streams[s].reader->records().empty()) {
      heads.push(HeadEntry{INT64_MIN, s});  // nothing at all: it ends at once
    } else {
      push_head(s);
    }
  }
  Batch* batch = stages.Acquire();
  auto dispatch = [&] {
    stats.records += batch->records.size();
    ++stats.batches;
    stages.Dispatch(batch);
    batch = nullptr;
    if (opt.progress && stats.batches % 64 == 0) opt.progress(stats.records);
  };
  while (!heads.empty()) {
    HeadEntry h = heads.top();
    heads.pop();
    const size_t s = h.stream;
    auto& reader = *streams[s].reader;
    bool ended = reader.records().empty();
    if (!ended) {
      // Take the run of this stream's records that come before every other
      // stream's head (all of them with a single stream), copied at once.
      const auto& recs = reader.records();
      const bool has_next = !heads.empty();
      const HeadEntry next = has_next ? heads.top() : HeadEntry{0, 0};
      const size_t p0 = pos[s];
      size_t p1 = p0 + 1;
      size_t room = opt.batch_records - std::min(opt.batch_records, batch->records.size());
      uint32_t bytes = recs[p0].length + 1;
      while (p1 < recs.size() && p1 - p0 < room && batch->arena.size() + bytes < opt.batch_bytes) {
        const source::StreamRecord& r = recs[p1];
        if (has_next && !(r.time < next.time || (r.time == next.time && s < next.stream))) break;
        bytes += r.length + 1;
        ++p1;
      }
      const uint32_t base = static_cast<uint32_t>(batch->arena.size());
      const uint32_t first = recs[p0].offset;
      batch->arena.append(
          reader.arena().substr(first, recs[p1 - 1].offset + recs[p1 - 1].length + 1 - first));
      const int16_t family = static_cast<int16_t>(streams[s].family);
      for (size_t i = p0; i < p1; ++i) {
        batch->records.push_back(Record{static_cast<uint32_t>(s), base + (recs[i].offset - first),
                                        recs[i].length, RecordKind::kLine, family, recs[i].time});
      }
      last_time[s] = recs[p1 - 1].time;
      pos[s] = p1;
      if (p1 == recs.size()) {
        pos[s] = 0;
        ended = !reader.NextChunk();
      }
    }
    if (ended) {
      Nanos t = last_time[s] == kNoTime ? (batch->records.empty() ? 0 : batch->records.back().time)
                                        : last_time[s];
      // Offsets stay increasing (the prefilter maps matches to records by offset).
      batch->records.push_back(Record{static_cast<uint32_t>(s),
                                      static_cast<uint32_t>(batch->arena.size()), 0,
                                      RecordKind::kStreamEnd, -1, t});
    } else {
      push_head(s);
    }
    if (batch->arena.size() >= opt.batch_bytes || batch->records.size() >= opt.batch_records) {
      dispatch();
      batch = stages.Acquire();
    }
  }
  if (!batch->records.empty()) {
    dispatch();
  } else {
    stages.Release(batch);
  }
  stages.Finish();
  if (wm != kNoTime) detector->OnTick(wm);
  if (opt.progress) opt.progress(stats.records);
  stats.matched = stages.matched();
  stats.prefilter_failures = stages.prefilter_failures();
  stats.end_time = wm;
  detector->Finish(wm);
  orderer->ReleaseAll();
  return stats;
}

}  // namespace qw::pipeline
