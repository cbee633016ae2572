// Record stage: runtime line decoders and RecordStage (line split + decode +
// partial and continuation joins + time resolution) over in-memory corpora.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "match/matcher.h"
#include "match/registry.h"
#include "record/decode.h"
#include "record/record_stage.h"

// ---- declared in micro_corpus.cc (keep in step) ----
namespace qwbench {
enum class Shape { kPlain = 0, kTmJson = 1, kSdkConsole = 2, kSdkJson = 3 };
struct GenLine {
  std::string text;
  qw::Nanos time;
  bool consensus;
};
const char* ShapeName(Shape s);
std::string NanoStamp(qw::Nanos t);
std::vector<GenLine> NodeLog(Shape shape, size_t lines, double consensus_fraction, int node,
                             qw::Nanos t0, int64_t first_height);
std::string CriFile(const std::vector<GenLine>& lines, double partial_fraction);
std::string RawFile(const std::vector<GenLine>& lines);
std::string DockerLine(std::string_view msg, qw::Nanos t);
}  // namespace qwbench
// ----

namespace {

using namespace qw;

constexpr Nanos kT0 = 1684219980LL * kSecond;  // 2023-05-16T06:53:00Z

// A typical line: the most frequent kind (p2p debug noise) in SDK console form.
const char kTypicalMessage[] =
    "6:53AM DBG Receive chId=32 module=p2p msgBytes=1024 "
    "peer=3c7c0f1f9e1b5a2d8e4f6a7b8c9d0e1f2a3b4c5d@10.0.0.12:26656";

void BM_DecodeCri(benchmark::State& state) {
  std::string line = qwbench::NanoStamp(kT0 + 156 * kMillisecond) + " stderr F " + kTypicalMessage;
  record::Decoded d;
  for (auto _ : state) {
    bool ok = record::DecodeCri(line, &d);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(d.message.data());
  }
  if (!record::DecodeCri(line, &d) || d.message != kTypicalMessage) {
    state.SkipWithError("CRI line did not decode");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line.size()));
}
BENCHMARK(BM_DecodeCri);

void BM_DecodeDocker(benchmark::State& state) {
  std::string line = qwbench::DockerLine(kTypicalMessage, kT0 + 156 * kMillisecond);
  record::DockerDecoder dec;
  record::Decoded d;
  for (auto _ : state) {
    bool ok = dec.Decode(line, &d);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(d.message.data());
  }
  if (!dec.Decode(line, &d) || d.message != kTypicalMessage) {
    state.SkipWithError("docker line did not decode");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line.size()));
}
BENCHMARK(BM_DecodeDocker);

// --- RecordStage -----------------------------------------------------------

constexpr size_t kStreamLines = 50000;
constexpr double kConsensusFraction = 0.08;
constexpr double kPartialFraction = 0.01;  // records split by the runtime (P + F)
constexpr size_t kReadBytes = 256 << 10;   // as replay reads one file among few

match::Registry* Registry() {
  static std::unique_ptr<match::Registry> reg = [] {
    auto r = match::Registry::LoadEmbedded();
    if (!r) return std::unique_ptr<match::Registry>();
    return std::move(*r);
  }();
  return reg.get();
}

struct Corpus {
  std::string text;
  size_t physical_lines = 0;
};

const Corpus& StreamCorpus(qwbench::Shape shape, bool cri) {
  static Corpus cache[2][4];
  Corpus& c = cache[cri ? 1 : 0][static_cast<int>(shape)];
  if (c.text.empty()) {
    auto lines = qwbench::NodeLog(shape, kStreamLines, kConsensusFraction, 0, kT0, 15583000);
    c.text = cri ? qwbench::CriFile(lines, kPartialFraction) : qwbench::RawFile(lines);
    for (char ch : c.text) c.physical_lines += ch == '\n';
  }
  return c;
}

// args: shape. The family is cometbft (continuation rules, message times).
void RunStream(benchmark::State& state, bool cri) {
  auto shape = static_cast<qwbench::Shape>(state.range(0));
  const Corpus& corpus = StreamCorpus(shape, cri);
  match::Registry* reg = Registry();
  if (reg == nullptr || reg->Find("cometbft") < 0) {
    state.SkipWithError("no cometbft patterns");
    return;
  }
  record::Routing routing;
  routing.forced_chain = "cosmoshub";
  routing.forced_family = reg->Find("cometbft");
  uint64_t records = 0, rejected = 0;
  for (auto _ : state) {
    record::RecordStage stage(*reg, routing, record::StageOptions{}, [](const std::string&) {});
    record::Origin origin;
    origin.path = "node-0.log";
    origin.format = cri ? record::LogFormat::kCri : record::LogFormat::kRaw;
    stage.Open(0, origin);
    record::Output& out = *stage.output(0);
    uint64_t n = 0;
    auto take = [&] {
      for (; out.head < out.ready; ++out.head) {
        const record::Entry& e = out.entries[out.head];
        if (e.kind != record::EntryKind::kRecord) continue;
        benchmark::DoNotOptimize(e.time);
        ++n;
      }
      out.Compact();
    };
    const std::string_view text = corpus.text;
    for (size_t at = 0; at < text.size(); at += kReadBytes) {
      stage.Feed(0, text.substr(at, kReadBytes), kT0);
      take();
    }
    stage.Close(0, false);
    take();
    records = n;
    rejected = stage.counts(0).lines_rejected;
  }
  state.counters["records"] = static_cast<double>(records);
  if (rejected != 0) state.SkipWithError("lines rejected");
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(corpus.physical_lines));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(corpus.text.size()));
  state.SetLabel(qwbench::ShapeName(shape));
}

void BM_RecordStageCri(benchmark::State& state) { RunStream(state, true); }
BENCHMARK(BM_RecordStageCri)
    ->ArgNames({"shape"})
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)
    ->Unit(benchmark::kMillisecond);

// Raw files (no runtime stamp): every record's time comes from
// FamilyMatcher::MessageTime (the family's timestamp regexes). sdkcon has no
// full stamp in the message, so every timestamp regex is tried and fails.
void BM_RecordStageRaw(benchmark::State& state) { RunStream(state, false); }
BENCHMARK(BM_RecordStageRaw)->ArgNames({"shape"})->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
