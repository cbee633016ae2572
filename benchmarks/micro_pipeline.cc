// Pipeline: the batch hand-off between threads (moodycamel
// BlockingConcurrentQueue of Batch*, as pipeline/stages.cc uses it) and
// pipeline::Replay end to end on an in-memory corpus.
#include <benchmark/benchmark.h>
#include <concurrentqueue/blockingconcurrentqueue.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/time.h"
#include "detect/detector.h"
#include "match/matcher.h"
#include "match/registry.h"
#include "pipeline/batch.h"
#include "pipeline/replay.h"
#include "sink/event_sink.h"
#include "source/byte_source.h"

// ---- declared in micro_corpus.cc (keep in step) ----
namespace qwbench {
enum class Shape { kPlain = 0, kTmJson = 1, kSdkConsole = 2, kSdkJson = 3 };
struct GenLine {
  std::string text;
  qw::Nanos time;
  bool consensus;
};
std::vector<GenLine> NodeLog(Shape shape, size_t lines, double consensus_fraction, int node,
                             qw::Nanos t0, int64_t first_height);
std::string CriFile(const std::vector<GenLine>& lines, double partial_fraction);
}  // namespace qwbench
// ----

namespace {

using namespace qw;
using Queue = moodycamel::BlockingConcurrentQueue<pipeline::Batch*>;

constexpr Nanos kT0 = 1684219980LL * kSecond;  // 2023-05-16T06:53:00Z
constexpr size_t kBatchRecords = 2048;

const std::vector<qwbench::GenLine>& BatchLines() {
  static const std::vector<qwbench::GenLine> lines =
      qwbench::NodeLog(qwbench::Shape::kSdkConsole, kBatchRecords, 0.08, 0, kT0, 15583000);
  return lines;
}

// Fills a 2048-record batch the way the ordering on the reading thread does
// (record text copied into the arena, '\n' after each).
void FillBatch(pipeline::Batch* b) {
  b->Clear();
  for (const auto& l : BatchLines()) {
    b->records.push_back(pipeline::Record{0, static_cast<uint32_t>(b->arena.size()),
                                          static_cast<uint32_t>(l.text.size()),
                                          pipeline::RecordKind::kLine, -1, l.time});
    b->arena.append(l.text);
    b->arena.push_back('\n');
  }
}

// Producer (benchmark thread) takes a free batch and queues it; the consumer
// thread dequeues it and gives it back, as the matcher/detector threads do.
// One iteration = one batch hand-off (plus its return trip); items = the
// 2048 records it carries.
//   fill=0: pointers only (the queue cost).
//   fill=1: the producer also refills the batch first, as RunReplay's
//           reading thread does (the per-line copy into the batch arena).
void BM_QueueHandoff(benchmark::State& state) {
  const bool fill = state.range(0) != 0;
  const size_t pool_size = 2 * 4 + 4;  // pipeline.cc with 2 threads
  std::vector<std::unique_ptr<pipeline::Batch>> pool;
  Queue free_batches(pool_size), work(pool_size);
  for (size_t i = 0; i < pool_size; ++i) {
    pool.push_back(std::make_unique<pipeline::Batch>());
    pool.back()->arena.reserve((64 << 10) + 4096);
    pool.back()->records.reserve(kBatchRecords);
    FillBatch(pool.back().get());
    free_batches.enqueue(pool.back().get());
  }
  const int64_t batch_bytes = static_cast<int64_t>(pool.front()->arena.size());
  std::thread consumer([&] {
    moodycamel::ConsumerToken ctok(work);
    while (true) {
      pipeline::Batch* b = nullptr;
      work.wait_dequeue(ctok, b);
      if (b == nullptr) break;
      benchmark::DoNotOptimize(b->records.size());
      free_batches.enqueue(b);
    }
  });
  moodycamel::ProducerToken ptok(work);
  for (auto _ : state) {
    pipeline::Batch* b = nullptr;
    free_batches.wait_dequeue(b);
    if (fill) FillBatch(b);
    b->seq++;
    work.enqueue(ptok, b);
  }
  work.enqueue(ptok, nullptr);
  consumer.join();
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatchRecords));
  // Bytes only when they are copied (fill=1); fill=0 moves pointers.
  if (fill) state.SetBytesProcessed(state.iterations() * batch_bytes);
}
BENCHMARK(BM_QueueHandoff)
    ->ArgName("fill")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->MeasureProcessCPUTime();  // CPU column: both threads

// --- Replay ----------------------------------------------------------------

constexpr int kNodes = 4;

struct ReplayCorpus {
  std::vector<std::string> files;  // one CRI file per node
  size_t lines = 0, bytes = 0;
};

const ReplayCorpus& ReplayFiles(size_t lines_per_node) {
  static std::map<size_t, ReplayCorpus> cache;
  ReplayCorpus& c = cache[lines_per_node];
  if (c.files.empty()) {
    for (int n = 0; n < kNodes; ++n) {
      auto lines = qwbench::NodeLog(qwbench::Shape::kSdkConsole, lines_per_node, 0.08, n, kT0,
                                    15583000);
      c.files.push_back(qwbench::CriFile(lines, 0.0));
      c.lines += lines.size();
      c.bytes += c.files.back().size();
    }
  }
  return c;
}

match::Registry* Reg() {
  static std::unique_ptr<match::Registry> reg = [] {
    auto r = match::Registry::LoadEmbedded();
    return r ? std::move(*r) : std::unique_ptr<match::Registry>();
  }();
  return reg.get();
}

class BenchTopology : public pipeline::Topology {
 public:
  detect::ChainSpec Chain(const std::string& name, int) const override {
    detect::ChainSpec spec;
    spec.name = name;
    spec.family = "cometbft";
    return spec;
  }
  void Node(detect::NodeSpec*) const override {}
};

// 4 nodes of one chain, CRI files, SDK console lines, 8% consensus lines;
// args: matcher threads, lines per node (50000: the 200k-line corpus; 25:
// almost nothing, i.e. the fixed cost of a replay, mostly every matcher
// thread compiling its own FamilyMatchers).
// Timed: the record stage (reading thread), the merge on event time,
// batching, matching, node state, event ordering. Not timed: copying the
// corpus into the memory sources.
void BM_Replay(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const ReplayCorpus& corpus = ReplayFiles(static_cast<size_t>(state.range(1)));
  const size_t total_lines = corpus.lines, total_bytes = corpus.bytes;
  match::Registry* reg = Reg();
  int fam = reg != nullptr ? reg->Find("cometbft") : -1;
  if (fam < 0) {
    state.SkipWithError("no cometbft family");
    return;
  }
  record::Routing routing;
  routing.forced_chain = "cosmoshub";
  routing.forced_family = fam;
  BenchTopology topology;
  pipeline::ReplayResult result;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<pipeline::ReplayInput> inputs;
    for (int n = 0; n < kNodes; ++n) {
      pipeline::ReplayInput in;
      in.path = "node-" + std::to_string(n) + "_cosmos_gaiad-0123456789ab.log";
      in.bytes = source::MemorySource(corpus.files[static_cast<size_t>(n)]);
      inputs.push_back(std::move(in));
    }
    state.ResumeTiming();
    pipeline::ReplayOptions opt;
    opt.threads = threads;
    result = pipeline::Replay(*reg, routing, topology, std::move(inputs), {}, opt);
  }
  if (result.records != total_lines) state.SkipWithError("not every line was replayed");
  state.counters["matched"] = static_cast<double>(result.matched);
  state.counters["batches"] = static_cast<double>(result.batches);
  state.counters["events"] = static_cast<double>(result.events);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(total_lines));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(total_bytes));
}
BENCHMARK(BM_Replay)
    ->ArgNames({"threads", "lines_per_node"})
    ->Args({1, 50000})
    ->Args({2, 50000})
    ->Args({1, 25})
    ->Args({2, 25})
    ->UseRealTime()
    ->MeasureProcessCPUTime()  // CPU column: every thread of the replay
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
