// Node state stage: Detector::OnTick + OnSignal on a healthy chain (no
// events fire in steady state, so this is the per-signal bookkeeping cost).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/signal.h"
#include "common/time.h"
#include "detect/detector.h"

namespace {

using namespace qw;

constexpr Nanos kT0 = 1684219980LL * kSecond;  // 2023-05-16T06:53:00Z
constexpr Nanos kBlock = 6 * kSecond;
constexpr int64_t kH0 = 15583000;

class CountEvents : public EventOutput {
 public:
  void Emit(Event) override { ++count; }
  uint64_t count = 0;
};

const char kCommitLine[] =
    "6:53AM INF committed state "
    "app_hash=6F0B2A4C1E3D5A7B9C8D0E1F2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D "
    "height=15583000 module=state num_txs=0";
const char kVoteLine[] =
    "6:53AM DBG signed and pushed vote height=15583000 module=consensus round=0 "
    "vote=\"Vote{12:B00A6323737F 15583000/00/SIGNED_MSG_TYPE_PRECOMMIT(Precommit) 2A1B3C4D5E6F "
    "9F8E7D6C5B4A 000000000000 @ 2023-05-16T06:53:41.098213412Z}\"";

detect::Detector MakeDetector(int nodes, CountEvents* out) {
  detect::ChainSpec chain;
  chain.name = "cosmoshub";
  chain.family = "cometbft";
  detect::Detector d({chain}, out);
  for (int n = 0; n < nodes; ++n) {
    detect::NodeSpec spec;
    spec.name = "node-" + std::to_string(n);
    spec.namespace_ = "cosmos";
    spec.chain = 0;
    int idx = d.AddNode(spec);
    d.AttachStream(idx);
  }
  return d;
}

// Every node commits every height (6 s apart, nodes 10 ms apart); one
// iteration = OnTick + one block_committed signal of one node.
void BM_DetectorCommit(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  CountEvents out;
  detect::Detector d = MakeDetector(nodes, &out);
  const std::string_view line = kCommitLine;
  Signal s;
  s.kind = SignalKind::kBlockCommitted;
  int64_t k = 0;
  for (auto _ : state) {
    int64_t step = k / nodes;
    int node = static_cast<int>(k % nodes);
    Nanos now = kT0 + step * kBlock + node * 10 * kMillisecond;
    s.height = kH0 + step;
    d.OnTick(now);
    d.OnSignal(node, now, s, line);
    ++k;
  }
  state.counters["events"] = static_cast<double>(out.count);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line.size()));
}
BENCHMARK(BM_DetectorCommit)->ArgName("nodes")->Arg(10);

// Every node is a signer: per height each node logs its prevote and
// precommit, then each node commits. One iteration = OnTick + one signal;
// two thirds of them are votes (VoteKey map insert, per-chain, pruned at
// 4096 entries to the last 100 heights).
void BM_DetectorVoteCommit(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  CountEvents out;
  detect::Detector d = MakeDetector(nodes, &out);
  std::vector<std::string> validators;
  for (int n = 0; n < nodes; ++n) {
    char b[16];
    std::snprintf(b, sizeof b, "%012llX", static_cast<unsigned long long>(0xB00A6323737LL + n * 7919));
    validators.emplace_back(b);
  }
  const int per_height = 3 * nodes;
  const Nanos step_time = kBlock / per_height;
  int64_t k = 0;
  int64_t bytes = 0;
  Signal s;
  for (auto _ : state) {
    int64_t h = k / per_height;
    int r = static_cast<int>(k % per_height);
    Nanos now = kT0 + h * kBlock + r * step_time;
    s = Signal{};
    s.height = kH0 + h;
    int node;
    std::string_view line;
    if (r < 2 * nodes) {
      node = r / 2;
      s.kind = SignalKind::kVoteSigned;
      s.round = 0;
      s.vote_type = r % 2 == 0 ? VoteType::kPrevote : VoteType::kPrecommit;
      s.validator = validators[static_cast<size_t>(node)];
      s.block_id = "2A1B3C4D5E6F";
      line = kVoteLine;
    } else {
      node = r - 2 * nodes;
      s.kind = SignalKind::kBlockCommitted;
      line = kCommitLine;
    }
    d.OnTick(now);
    d.OnSignal(node, now, s, line);
    bytes += static_cast<int64_t>(line.size());
    ++k;
  }
  state.counters["events"] = static_cast<double>(out.count);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
// 32 signing nodes keep more than 4096 votes in the last 100 heights.
BENCHMARK(BM_DetectorVoteCommit)->ArgName("nodes")->Arg(10)->Arg(32);

}  // namespace

BENCHMARK_MAIN();
