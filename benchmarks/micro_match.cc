// Match stage: FamilyMatcher::Match (RE2::Set prefilter, then the rule's
// captures / key=value fields) on single lines and on realistic mixes.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/signal.h"
#include "common/time.h"
#include "match/matcher.h"
#include "match/registry.h"

// ---- declared in micro_corpus.cc (keep in step) ----
namespace qwbench {
enum class Shape { kPlain = 0, kTmJson = 1, kSdkConsole = 2, kSdkJson = 3 };
struct GenLine {
  std::string text;
  qw::Nanos time;
  bool consensus;
};
const char* ShapeName(Shape s);
std::vector<GenLine> NodeLog(Shape shape, size_t lines, double consensus_fraction, int node,
                             qw::Nanos t0, int64_t first_height);
}  // namespace qwbench
// ----

namespace {

using namespace qw;

constexpr Nanos kT0 = 1684219980LL * kSecond;  // 2023-05-16T06:53:00Z

const match::Registry* Reg() {
  static std::unique_ptr<match::Registry> reg = [] {
    auto r = match::Registry::LoadEmbedded();
    return r ? std::move(*r) : std::unique_ptr<match::Registry>();
  }();
  return reg.get();
}

// One matcher per prefilter mode, built once. Match() always runs the
// RE2::Set path; MatchRecords() uses Vectorscan when the matcher has it (the
// family's database comes from the registry, compiled once per process).
match::FamilyMatcher* Matcher(bool vectorscan) {
  static std::unique_ptr<match::FamilyMatcher> cache[2];
  auto& m = cache[vectorscan ? 1 : 0];
  if (!m) {
    const match::Registry* reg = Reg();
    if (reg == nullptr) return nullptr;
    int fam = reg->Find("cometbft");
    if (fam < 0) return nullptr;
    auto made = match::FamilyMatcher::Create(
        reg->file(static_cast<size_t>(fam)),
        vectorscan ? reg->Prefilter(static_cast<size_t>(fam)) : nullptr);
    if (!made) return nullptr;
    m = std::move(*made);
  }
  return m.get();
}

// p2p noise (a miss), plain tmfmt shape.
const char kMissLine[] =
    "D[2021-05-05|12:03:00.156] Receive                                      module=p2p "
    "peer=3c7c0f1f9e1b5a2d8e4f6a7b8c9d0e1f2a3b4c5d@10.0.0.12:26656 chId=32 msgBytes=1024";
// block_committed with height= from key=value.
const char kHitLine[] =
    "I[2023-05-16|06:53:41.528] committed state                              module=state "
    "height=15583000 num_txs=0 "
    "app_hash=6F0B2A4C1E3D5A7B9C8D0E1F2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D";
// vote_signed: five captures out of the Vote{...} string.
const char kVoteLine[] =
    "D[2023-05-16|06:53:41.102] signed and pushed vote                       module=consensus "
    "height=15583000 round=0 vote=\"Vote{12:B00A6323737F "
    "15583000/00/SIGNED_MSG_TYPE_PRECOMMIT(Precommit) 2A1B3C4D5E6F 9F8E7D6C5B4A @ "
    "2023-05-16T06:53:41.098213412Z}\"";

void RunSingle(benchmark::State& state, std::string_view line, bool want_hit, SignalKind want) {
  match::FamilyMatcher* m = Matcher(false);
  if (m == nullptr) {
    state.SkipWithError("no cometbft matcher");
    return;
  }
  Signal s;
  bool hit = false;
  for (auto _ : state) {
    hit = m->Match(line, &s);
    benchmark::DoNotOptimize(hit);
    benchmark::DoNotOptimize(s);
  }
  if (hit != want_hit || (want_hit && s.kind != want)) state.SkipWithError("unexpected match result");
  state.counters["prefilter_failures"] = static_cast<double>(m->prefilter_failures());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line.size()));
}

// Set-up cost, not per line: what every matcher thread pays per family at
// the start of a replay (RE2 rules and RE2::Set; the Vectorscan database is
// compiled once per process and shared, see BM_VectorscanCompile).
void BM_FamilyMatcherCreate(benchmark::State& state) {
  const match::Registry* reg = Reg();
  int fam = reg != nullptr ? reg->Find("cometbft") : -1;
  if (fam < 0) {
    state.SkipWithError("no cometbft family");
    return;
  }
  const char* prefilter = "";
  for (auto _ : state) {
    auto m = match::FamilyMatcher::Create(reg->file(static_cast<size_t>(fam)));
    if (!m) {
      state.SkipWithError("matcher does not compile");
      break;
    }
    prefilter = (*m)->prefilter_name();
  }
  state.counters["rules"] = static_cast<double>(reg->file(static_cast<size_t>(fam)).rules.size());
  state.SetLabel(prefilter);
}
BENCHMARK(BM_FamilyMatcherCreate)->Unit(benchmark::kMillisecond);

// Once per family per process: the Vectorscan database.
void BM_VectorscanCompile(benchmark::State& state) {
  const match::Registry* reg = Reg();
  int fam = reg != nullptr ? reg->Find("cometbft") : -1;
  if (fam < 0 || !match::HsDatabase::Available()) {
    state.SkipWithError("no cometbft family or no Vectorscan");
    return;
  }
  for (auto _ : state) {
    std::string why;
    auto db = match::HsDatabase::Compile(reg->file(static_cast<size_t>(fam)), &why);
    if (!db) {
      state.SkipWithError(why.c_str());
      break;
    }
  }
}
BENCHMARK(BM_VectorscanCompile)->Unit(benchmark::kMillisecond);

void BM_MatchMiss(benchmark::State& state) { RunSingle(state, kMissLine, false, SignalKind::kNone); }
BENCHMARK(BM_MatchMiss);

void BM_MatchHitCommit(benchmark::State& state) {
  RunSingle(state, kHitLine, true, SignalKind::kBlockCommitted);
}
BENCHMARK(BM_MatchHitCommit);

void BM_MatchHitVote(benchmark::State& state) {
  RunSingle(state, kVoteLine, true, SignalKind::kVoteSigned);
}
BENCHMARK(BM_MatchHitVote);

// A realistic mix (8% consensus lines) in one of the four shapes; the lines
// are matched in log order, cycling over the corpus.
constexpr size_t kMixLines = 8192;

void BM_MatchMix(benchmark::State& state) {
  auto shape = static_cast<qwbench::Shape>(state.range(0));
  auto lines = qwbench::NodeLog(shape, kMixLines, 0.08, 0, kT0, 15583000);
  match::FamilyMatcher* m = Matcher(false);
  if (m == nullptr) {
    state.SkipWithError("no cometbft matcher");
    return;
  }
  // Check once that the rules take exactly the consensus lines.
  size_t expect_hits = 0, wrong = 0;
  Signal s;
  for (const auto& l : lines) {
    bool hit = m->Match(l.text, &s);
    expect_hits += l.consensus;
    wrong += hit != l.consensus;
  }
  if (wrong != 0) {
    state.SkipWithError("the generated lines do not match as intended");
    return;
  }
  int64_t bytes = 0;
  size_t i = 0;
  uint64_t hits = 0;
  for (auto _ : state) {
    const std::string& line = lines[i].text;
    hits += m->Match(line, &s);
    benchmark::DoNotOptimize(s);
    bytes += static_cast<int64_t>(line.size());
    if (++i == lines.size()) i = 0;
  }
  state.counters["hit_pct"] = 100.0 * static_cast<double>(hits) / static_cast<double>(state.iterations());
  state.counters["prefilter_failures"] = static_cast<double>(m->prefilter_failures());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
  state.SetLabel(qwbench::ShapeName(shape));
}
BENCHMARK(BM_MatchMix)->ArgName("shape")->DenseRange(0, 3);

// The matcher threads' path: MatchRecords over one 2048-record batch laid out
// as pipeline.cc lays it out (records '\n'-separated in one arena), with the
// Vectorscan prefilter (one scan of the whole batch, RE2 confirms) or with
// RE2::Set per record. One iteration = one batch; items = records.
void BM_MatchRecordsBatch(benchmark::State& state) {
  auto shape = static_cast<qwbench::Shape>(state.range(0));
  const bool vectorscan = state.range(1) != 0;
  constexpr size_t kBatch = 2048;
  auto lines = qwbench::NodeLog(shape, kBatch, 0.08, 0, kT0, 15583000);
  match::FamilyMatcher* m = Matcher(vectorscan);
  if (m == nullptr) {
    state.SkipWithError("no cometbft matcher");
    return;
  }
  if (vectorscan && std::string_view(m->prefilter_name()) != "hyperscan") {
    state.SkipWithError(("no Vectorscan prefilter: " + m->prefilter_note()).c_str());
    return;
  }
  std::string arena;
  std::vector<uint32_t> starts, lengths;
  std::vector<uint8_t> active(kBatch, 1);
  size_t want_hits = 0;
  for (const auto& l : lines) {
    starts.push_back(static_cast<uint32_t>(arena.size()));
    lengths.push_back(static_cast<uint32_t>(l.text.size()));
    arena += l.text;
    arena.push_back('\n');
    want_hits += l.consensus;
  }
  std::vector<Signal> out(kBatch);
  size_t hits = 0;
  for (auto _ : state) {
    hits = m->MatchRecords(arena, starts.data(), lengths.data(), active.data(), kBatch,
                           out.data());
    benchmark::DoNotOptimize(out.data());
  }
  if (hits != want_hits) state.SkipWithError("unexpected number of hits");
  state.counters["prefilter_failures"] = static_cast<double>(m->prefilter_failures());
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(arena.size()));
  state.SetLabel(std::string(qwbench::ShapeName(shape)) + "/" + m->prefilter_name());
}
BENCHMARK(BM_MatchRecordsBatch)
    ->ArgNames({"shape", "vectorscan"})
    ->ArgsProduct({{0, 1, 2, 3}, {0, 1}});

}  // namespace

BENCHMARK_MAIN();
