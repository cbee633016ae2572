#include "pipeline/stages.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QW_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define QW_TSAN 1
#endif

#ifdef QW_TSAN
#include <condition_variable>
#include <deque>
#include <mutex>
#else
#include <concurrentqueue/blockingconcurrentqueue.h>
#endif

namespace qw::pipeline {

#ifdef QW_TSAN
// ThreadSanitizer does not model the fences moodycamel's lock-free queue
// synchronises with (GCC refuses to compile them under -fsanitize=thread),
// so a TSan build passes batches through this locked queue instead: the
// same calls, FIFO over all producers (the code below relies only on the
// per-producer order moodycamel gives). Every
// other shared access is then checked as in the release build.
namespace mq {
template <typename T>
class BlockingQueue {
 public:
  explicit BlockingQueue(size_t) {}
  template <typename Token>
  void enqueue(Token&, T v) { enqueue(v); }
  void enqueue(T v) {
    {
      std::lock_guard<std::mutex> l(mu_);
      items_.push_back(v);
    }
    cv_.notify_one();
  }
  template <typename Token>
  void wait_dequeue(Token&, T& v) { wait_dequeue(v); }
  void wait_dequeue(T& v) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return !items_.empty(); });
    v = items_.front();
    items_.pop_front();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
};
struct ProducerToken {
  template <typename Q>
  explicit ProducerToken(Q&) {}
};
struct ConsumerToken {
  template <typename Q>
  explicit ConsumerToken(Q&) {}
};
}  // namespace mq
using Queue = mq::BlockingQueue<Batch*>;
#else
namespace mq = moodycamel;
using Queue = moodycamel::BlockingConcurrentQueue<Batch*>;
#endif

struct Stages::Impl {
  const match::Registry& registry;
  Consumer consume;
  std::vector<std::unique_ptr<Batch>> pool;
  Queue free_batches, work, done;
  std::atomic<uint64_t> matched{0}, failures{0};
  std::atomic<uint64_t> total{UINT64_MAX};
  std::atomic<size_t> in_flight{0};
  // The next sequence number to consume; written under consume_mu.
  std::atomic<uint64_t> next{0};
  std::mutex consume_mu;
  // The dispatching thread's own matchers, for batches it runs inline.
  struct MatcherSet;
  std::unique_ptr<MatcherSet> inline_set;
  std::vector<std::thread> matchers;
  std::thread consumer;
  std::unique_ptr<mq::ProducerToken> work_token;
  bool finished = false;

  Impl(const match::Registry& r, size_t pool_size, Consumer c)
      : registry(r), consume(std::move(c)), free_batches(pool_size), work(pool_size),
        done(pool_size) {}

  // A thread's compiled matchers (RE2 objects are not shared between
  // threads, so no DFA-cache lock is contended), built on first use of a
  // family; the Vectorscan database is shared through the registry.
  struct MatcherSet {
    explicit MatcherSet(const match::Registry& r) : registry(r), matchers(r.size()), tried(r.size(), false) {}
    const match::Registry& registry;
    std::vector<std::unique_ptr<match::FamilyMatcher>> matchers;
    std::vector<bool> tried;
    uint64_t hits = 0;
    std::vector<uint32_t> starts, lengths;
    std::vector<uint8_t> active;
    std::vector<int> families;
    std::vector<Signal> scratch;

    void Match(Batch* b) {
      const size_t n = b->records.size();
      b->signals.resize(n);
      starts.resize(n);
      lengths.resize(n);
      active.resize(n);
      families.clear();
      // Non-line records take an empty place at the arena position where
      // they stand: starts must not decrease (the prefilter maps matches to
      // records by offset).
      uint32_t cursor = 0;
      for (size_t i = 0; i < n; ++i) {
        const Record& r = b->records[i];
        const bool line = r.kind == RecordKind::kLine;
        starts[i] = line ? r.offset : cursor;
        lengths[i] = line ? r.length : 0;
        if (line) cursor = r.offset + r.length;
        int fam = line ? r.family : -1;
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
    }
    uint64_t failures() const {
      uint64_t fails = 0;
      for (const auto& m : matchers) {
        if (m) fails += m->prefilter_failures();
      }
      return fails;
    }
  };

  void MatchLoop() {
    MatcherSet set(registry);
    mq::ConsumerToken ctok(work);
    mq::ProducerToken ptok(done);
    while (true) {
      Batch* b = nullptr;
      work.wait_dequeue(ctok, b);
      if (b == nullptr) break;
      set.Match(b);
      done.enqueue(ptok, b);
    }
    matched.fetch_add(set.hits);
    failures.fetch_add(set.failures());
  }

  // One batch to the consumer callback, in sequence: under consume_mu, so
  // the consumer thread and an inline Dispatch never run it at once, and
  // what one wrote the other sees.
  void ConsumeOne(Batch* ready) {
    {
      std::lock_guard<std::mutex> lock(consume_mu);
      consume(*ready);
      next.store(ready->seq + 1, std::memory_order_relaxed);
    }
    ready->Clear();
    in_flight.fetch_sub(1, std::memory_order_release);
    free_batches.enqueue(ready);
  }

  // Consumer thread: batches in sequence order. The queue keeps order only
  // per producer, so the end marker can overtake batches still queued by
  // matcher threads: the loop ends when it has consumed `total` batches,
  // published before the marker.
  void ConsumeLoop() {
    std::map<uint64_t, Batch*> waiting;
    mq::ConsumerToken ctok(done);
    bool ended = false;
    while (!ended || next.load(std::memory_order_relaxed) < total.load(std::memory_order_acquire)) {
      Batch* b = nullptr;
      done.wait_dequeue(ctok, b);
      if (b == nullptr) {
        ended = true;
        continue;
      }
      waiting.emplace(b->seq, b);
      while (!waiting.empty() && waiting.begin()->first == next.load(std::memory_order_relaxed)) {
        Batch* ready = waiting.begin()->second;
        waiting.erase(waiting.begin());
        ConsumeOne(ready);
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
  impl_->work_token = std::make_unique<mq::ProducerToken>(impl_->work);
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
  // A small batch with nothing before it in flight (live tailing at a
  // modest rate): matched and consumed on this thread at once. Two thread
  // wake-ups per batch cost more than the work; the order is the same,
  // since every batch before it has been consumed.
  const bool alone = impl_->in_flight.load(std::memory_order_acquire) == 0;
  impl_->in_flight.fetch_add(1);
  if (inline_records_ > 0 && alone && b->records.size() <= inline_records_) {
    if (!impl_->inline_set) impl_->inline_set = std::make_unique<Impl::MatcherSet>(impl_->registry);
    impl_->inline_set->Match(b);
    ++inlined_;
    impl_->ConsumeOne(b);
    return;
  }
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
  if (impl_->inline_set) {
    impl_->matched.fetch_add(impl_->inline_set->hits);
    impl_->failures.fetch_add(impl_->inline_set->failures());
  }
  impl_->total.store(seq_, std::memory_order_release);
  impl_->done.enqueue(nullptr);
  impl_->consumer.join();
}

uint64_t Stages::matched() const { return impl_->matched.load(); }
uint64_t Stages::prefilter_failures() const { return impl_->failures.load(); }
size_t Stages::in_flight() const { return impl_->in_flight.load(); }

}  // namespace qw::pipeline
