// The per-event JSON line (one per event written, on the detector's thread):
// the hand-written writer, AppendEventJson, against writers of the same
// bytes built on nlohmann::ordered_json, the library the documents use.
// The result decides whether the hand-written writer stays
// (benchmarks/RESULTS.md, "Event line: hand-written or nlohmann").
//
// Two nlohmann writers, because Event::detail holds already-encoded JSON
// text (the detector builds it with JsonString):
//   - ParsedDetail: today's Event; each detail value is parsed back into a
//     JSON value to be put into the document (what switching the line
//     alone would take);
//   - PrebuiltDetail: the detail already held as JSON values (what it would
//     take after changing Event::detail, the detector and the checkpoint):
//     only building the document and dumping it.
// Both are checked to give exactly AppendEventJson's bytes before timing.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/json.h"
#include "common/time.h"

namespace {

using namespace qw;
using Json = nlohmann::ordered_json;

constexpr Nanos kT0 = 1684219980LL * kSecond;  // 2023-05-16T06:53:00Z

// A typical event: node_stalled with its detail; with `evidence`, also the
// node's last six log lines (as a ban carries them), the heaviest detail an
// event has.
Event TypicalEvent(bool evidence) {
  Event e;
  e.time = kT0 + 60 * kSecond + 123 * kMillisecond;
  e.kind = EventKind::kNodeStalled;
  e.severity = Severity::kWarning;
  e.chain = "cometbft/cosmos";
  e.node = "validator-0";
  e.namespace_ = "cosmos";
  e.height = 15583000;
  e.id = MakeEventId(e.chain, e.node, e.kind, e.height);
  e.AddDetailString("stall_after", "1m00s");
  e.AddDetail("last_commit", JsonString(FormatRfc3339Millis(kT0)));
  if (evidence) {
    std::string ev = "[";
    for (int i = 0; i < 6; ++i) {
      if (i > 0) ev += ",";
      AppendJsonString(ev, FormatRfc3339Millis(kT0 - (6 - i) * kSecond) +
                               " 6:52AM INF committed state app_hash=6F0B2A4C1E3D5A7B9C8D0E1F2A3B4C"
                               "5D6E7F8091A2B3C4D5E6F708192A3B4C5D height=" +
                               std::to_string(15582994 + i) +
                               " module=state num_txs=0 msg=\"ok \\ fine\"");
    }
    ev += "]";
    e.AddDetail("evidence", ev);
  }
  return e;
}

Json Header(const Event& e) {
  Json j = Json::object();
  j.emplace("id", e.id);
  j.emplace("time", FormatRfc3339Millis(e.time));
  j.emplace("event", EventKindName(e.kind));
  j.emplace("severity", SeverityName(e.severity));
  j.emplace("chain", e.chain);
  j.emplace("node", e.node);
  if (!e.namespace_.empty()) j.emplace("namespace", e.namespace_);
  if (e.height >= 0) j.emplace("height", e.height);
  return j;
}

void AppendEventJsonParsedDetail(std::string& out, const Event& e) {
  Json j = Header(e);
  Json detail = Json::object();
  for (const auto& [k, v] : e.detail) detail.emplace(k, Json::parse(v, nullptr, false));
  j.emplace("detail", std::move(detail));
  out += DumpJson(j);
}

Json DetailValues(const Event& e) {
  Json detail = Json::object();
  for (const auto& [k, v] : e.detail) detail.emplace(k, Json::parse(v));
  return detail;
}

void AppendEventJsonPrebuiltDetail(std::string& out, const Event& e, const Json& detail) {
  Json j = Header(e);
  j.emplace("detail", Json(detail));
  out += DumpJson(j);
}

// The same bytes from every writer, or the benchmark is meaningless.
void CheckSameBytes(benchmark::State& state, const Event& e) {
  std::string hand, parsed, prebuilt;
  AppendEventJson(hand, e);
  AppendEventJsonParsedDetail(parsed, e);
  AppendEventJsonPrebuiltDetail(prebuilt, e, DetailValues(e));
  if (hand != parsed || hand != prebuilt) {
    state.SkipWithError("the writers disagree on the bytes");
    std::fprintf(stderr, "hand:     %s\nparsed:   %s\nprebuilt: %s\n", hand.c_str(),
                 parsed.c_str(), prebuilt.c_str());
  }
}

// Times `write(buf, event)` on the typical event (range(0): with evidence).
template <typename Write>
void Run(benchmark::State& state, Write write) {
  const Event e = TypicalEvent(state.range(0) != 0);
  CheckSameBytes(state, e);
  std::string buf;
  for (auto _ : state) {
    buf.clear();
    write(buf, e);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
  state.counters["line_bytes"] = static_cast<double>(buf.size());
}

void BM_EventLineHand(benchmark::State& state) {
  Run(state, [](std::string& buf, const Event& e) { AppendEventJson(buf, e); });
}

void BM_EventLineNlohmannParsedDetail(benchmark::State& state) {
  Run(state, [](std::string& buf, const Event& e) { AppendEventJsonParsedDetail(buf, e); });
}

void BM_EventLineNlohmannPrebuiltDetail(benchmark::State& state) {
  const Json detail = DetailValues(TypicalEvent(state.range(0) != 0));
  Run(state, [&](std::string& buf, const Event& e) {
    AppendEventJsonPrebuiltDetail(buf, e, detail);
  });
}

BENCHMARK(BM_EventLineHand)->ArgName("evidence")->Arg(0)->Arg(1);
BENCHMARK(BM_EventLineNlohmannParsedDetail)->ArgName("evidence")->Arg(0)->Arg(1);
BENCHMARK(BM_EventLineNlohmannPrebuiltDetail)->ArgName("evidence")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
