#include "pipeline/pipeline.h"

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <queue>
#include <thread>

namespace qw::pipeline {
namespace {

using Queue = moodycamel::BlockingConcurrentQueue<Batch*>;

// Matcher thread: owns its compiled matchers (RE2 objects are not shared
// between threads, so no DFA-cache lock is contended).
void MatchLoop(const match::Registry& registry, const std::vector<int>& stream_family,
               Queue* work, Queue* done, std::atomic<uint64_t>* matched,
               std::atomic<uint64_t>* dfa_oom) {
  std::vector<std::unique_ptr<match::FamilyMatcher>> matchers;
  std::vector<bool> needed(registry.size(), false);
  for (int f : stream_family) {
    if (f >= 0) needed[static_cast<size_t>(f)] = true;
  }
  for (size_t i = 0; i < registry.size(); ++i) {
    if (!needed[i]) {
      matchers.push_back(nullptr);
      continue;
    }
    auto m = match::FamilyMatcher::Create(registry.file(i), registry.Prefilter(i));
    matchers.push_back(m ? std::move(*m) : nullptr);
  }
  moodycamel::ConsumerToken ctok(*work);
  moodycamel::ProducerToken ptok(*done);
  uint64_t hits = 0;
  // Scratch reused for every batch.
  std::vector<uint32_t> starts, lengths;
  std::vector<uint8_t> active;
  std::vector<int> families;
  std::vector<Signal> scratch;
  while (true) {
    Batch* b = nullptr;
    work->wait_dequeue(ctok, b);
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
      int fam = r.kind == RecordKind::kLine ? stream_family[r.stream] : -1;
      if (fam >= 0 && std::find(families.begin(), families.end(), fam) == families.end()) {
        families.push_back(fam);
      }
    }
    for (auto& s : b->signals) s.kind = SignalKind::kNone;
    // Usually one family per batch; a mixed batch is matched once per family.
    for (int fam : families) {
      auto* m = matchers[static_cast<size_t>(fam)].get();
      if (m == nullptr) continue;
      for (size_t i = 0; i < n; ++i) {
        const Record& r = b->records[i];
        active[i] = r.kind == RecordKind::kLine && stream_family[r.stream] == fam;
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
    done->enqueue(ptok, b);
  }
  uint64_t oom = 0;
  for (const auto& m : matchers) {
    if (m) oom += m->prefilter_failures();
  }
  matched->fetch_add(hits);
  dfa_oom->fetch_add(oom);
}

// Detector thread: consumes batches in sequence order.
// The queue keeps order only per producer, so the end marker (from the
// reading thread) can overtake batches still queued by matcher threads:
// the loop ends when it has processed `total` batches, which the reading
// thread publishes before the marker.
void DetectLoop(Queue* done, Queue* free_batches, const std::vector<int>& stream_node,
                detect::Detector* detector, sink::EventOrderer* orderer,
                const std::atomic<uint64_t>* total, Nanos* end_time) {
  std::map<uint64_t, Batch*> waiting;
  uint64_t next = 0;
  Nanos wm = kNoTime;
  moodycamel::ConsumerToken ctok(*done);
  auto process = [&](Batch* b) {
    for (size_t i = 0; i < b->records.size(); ++i) {
      const Record& r = b->records[i];
      Nanos now = wm == kNoTime || r.time > wm ? r.time : wm;
      wm = now;
      int node = stream_node[r.stream];
      if (r.kind == RecordKind::kStreamEnd) {
        detector->OnTick(now);
        detector->DetachStream(node, now);
        continue;
      }
      detector->OnTick(now);
      const Signal& s = b->signals[i];
      if (s.kind != SignalKind::kNone) {
        detector->CountLines(node, 0, 1, 0);
        detector->OnSignal(node, now, s, b->text(r));
      }
    }
    if (wm != kNoTime) orderer->Release(wm);
    b->Clear();
    free_batches->enqueue(b);
  };
  bool ended = false;
  while (!ended || next < total->load(std::memory_order_acquire)) {
    Batch* b = nullptr;
    done->wait_dequeue(ctok, b);
    if (b == nullptr) {
      ended = true;
      continue;
    }
    waiting.emplace(b->seq, b);
    while (!waiting.empty() && waiting.begin()->first == next) {
      Batch* ready = waiting.begin()->second;
      waiting.erase(waiting.begin());
      process(ready);
      ++next;
    }
  }
  if (wm != kNoTime) detector->OnTick(wm);
  *end_time = wm;
}

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
  const int threads = std::max(1, opt.threads);
  std::vector<int> stream_family, stream_node;
  for (const auto& s : streams) {
    stream_family.push_back(s.family);
    stream_node.push_back(s.node);
  }
  // Bounded memory: a fixed pool of batches circulates.
  const size_t pool_size = static_cast<size_t>(threads) * 4 + 4;
  std::vector<std::unique_ptr<Batch>> pool;
  Queue free_batches(pool_size), work(pool_size), done(pool_size);
  for (size_t i = 0; i < pool_size; ++i) {
    pool.push_back(std::make_unique<Batch>());
    pool.back()->arena.reserve(opt.batch_bytes + 4096);
    pool.back()->records.reserve(opt.batch_records);
    free_batches.enqueue(pool.back().get());
  }
  std::atomic<uint64_t> matched{0}, dfa_oom{0};
  std::vector<std::thread> matchers;
  for (int i = 0; i < threads; ++i) {
    matchers.emplace_back(MatchLoop, std::cref(registry), std::cref(stream_family), &work, &done,
                          &matched, &dfa_oom);
  }
  Nanos end_time = kNoTime;
  std::atomic<uint64_t> total{UINT64_MAX};
  std::thread detect_thread(DetectLoop, &done, &free_batches, std::cref(stream_node), detector,
                            orderer, &total, &end_time);

  PipelineStats stats;
  moodycamel::ProducerToken wtok(work);
  std::vector<size_t> pos(streams.size(), 0);
  std::vector<Nanos> last_time(streams.size(), kNoTime);
  std::priority_queue<HeadEntry, std::vector<HeadEntry>, std::greater<HeadEntry>> heads;
  Batch* batch = nullptr;
  uint64_t seq = 0;
  auto get_batch = [&] {
    free_batches.wait_dequeue(batch);
    batch->seq = seq++;
  };
  auto dispatch = [&] {
    stats.records += batch->records.size();
    ++stats.batches;
    work.enqueue(wtok, batch);
    batch = nullptr;
    if (opt.progress && stats.batches % 64 == 0) opt.progress(stats.records);
  };
  auto push_head = [&](size_t s) {
    const auto& recs = streams[s].reader->records();
    if (pos[s] < recs.size()) heads.push(HeadEntry{recs[pos[s]].time, s});
  };
  for (size_t s = 0; s < streams.size(); ++s) {
    if (streams[s].reader->records().empty()) {
      // Nothing at all in this stream: it ends at once.
      heads.push(HeadEntry{INT64_MIN, s});
    } else {
      push_head(s);
    }
  }
  get_batch();
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
      batch->arena.append(reader.arena().substr(first, recs[p1 - 1].offset + recs[p1 - 1].length + 1 - first));
      for (size_t i = p0; i < p1; ++i) {
        batch->records.push_back(Record{static_cast<uint32_t>(s), base + (recs[i].offset - first),
                                        recs[i].length, RecordKind::kLine, recs[i].time});
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
                                      RecordKind::kStreamEnd, t});
    } else {
      push_head(s);
    }
    if (batch->arena.size() >= opt.batch_bytes || batch->records.size() >= opt.batch_records) {
      dispatch();
      get_batch();
    }
  }
  uint64_t seq_dispatched;
  if (!batch->records.empty()) {
    dispatch();
    seq_dispatched = seq;
  } else {
    // The unused batch took a sequence number: give it back.
    seq_dispatched = seq - 1;
    free_batches.enqueue(batch);
  }
  for (int i = 0; i < threads; ++i) work.enqueue(wtok, nullptr);
  for (auto& t : matchers) t.join();
  total.store(seq_dispatched, std::memory_order_release);
  done.enqueue(nullptr);
  detect_thread.join();
  if (opt.progress) opt.progress(stats.records);
  stats.matched = matched.load();
  stats.prefilter_failures = dfa_oom.load();
  stats.end_time = end_time;
  detector->Finish(end_time);
  orderer->ReleaseAll();
  return stats;
}

}  // namespace qw::pipeline
