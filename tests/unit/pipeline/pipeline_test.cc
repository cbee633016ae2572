#include "pipeline/pipeline.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/time.h"
#include "source/byte_source.h"

using namespace qw;

namespace {

class Collect : public sink::EventSink {
 public:
  void Write(const Event& e) override {
    std::string s;
    AppendEventJson(s, e);
    lines.push_back(s);
  }
  std::vector<std::string> lines;
};

std::string Stamp(Nanos t) {
  std::string s = FormatRfc3339Millis(t);
  return s.substr(0, 23) + "000000Z";
}

// Four nodes committing every 6 s for 20 minutes; node 1 silent from minute
// 5 to 9, node 3 silent from minute 12 on.
std::string NodeLog(int node, Nanos t0) {
  std::string out;
  for (int i = 0; i < 200; ++i) {
    Nanos t = t0 + i * 6 * kSecond + node * 7 * kMillisecond;
    double minute = i * 6 / 60.0;
    if (node == 1 && minute >= 5 && minute < 9) continue;
    if (node == 3 && minute >= 12) continue;
    out += Stamp(t) + " stdout F 3:00AM INF committed state height=" + std::to_string(1000 + i) +
           " module=state num_txs=0\n";
    out += Stamp(t) + " stdout F 3:00AM DBG Receive module=p2p peer=abc chId=32\n";
  }
  return out;
}

struct Run {
  std::vector<std::string> events;
  std::vector<detect::NodeSummary> summary;
  pipeline::PipelineStats stats;
};

Run Replay(int threads, size_t batch_records) {
  auto reg = match::Registry::LoadEmbedded();
  REQUIRE(reg);
  int fam = (*reg)->Find("cometbft");
  REQUIRE(fam >= 0);
  auto matcher = match::FamilyMatcher::Create((*reg)->file(static_cast<size_t>(fam)));
  REQUIRE(matcher);
  detect::ChainSpec chain;
  chain.name = "cosmoshub";
  chain.family = "cometbft";
  Collect collect;
  sink::EventOrderer orderer({&collect});
  detect::Detector detector({chain}, &orderer);
  std::vector<pipeline::ReplayStream> streams;
  const Nanos t0 = 1735786800LL * kSecond;
  for (int n = 0; n < 4; ++n) {
    detect::NodeSpec spec;
    spec.name = "node-" + std::to_string(n);
    spec.chain = 0;
    int idx = detector.AddNode(spec);
    detector.AttachStream(idx);
    source::StreamOptions opt;
    opt.chunk_bytes = 4096;
    pipeline::ReplayStream rs;
    rs.reader = std::make_unique<source::StreamReader>(source::MemorySource(NodeLog(n, t0)), opt);
    rs.reader->NextChunk();
    rs.reader->SetMatcher(matcher->get());
    rs.node = idx;
    rs.family = fam;
    streams.push_back(std::move(rs));
  }
  pipeline::ReplayOptions opt;
  opt.threads = threads;
  opt.batch_records = batch_records;
  Run r;
  r.stats = pipeline::RunReplay(**reg, streams, &detector, &orderer, opt);
  r.events = collect.lines;
  r.summary = detector.Summary();
  return r;
}

}  // namespace

TEST_CASE("replay output does not depend on threads or batch size") {
  Run one = Replay(1, 2048);
  REQUIRE_FALSE(one.events.empty());
  for (int threads : {2, 4}) {
    for (size_t batch : {size_t(7), size_t(2048)}) {
      Run other = Replay(threads, batch);
      CHECK(other.events == one.events);
      CHECK(other.stats.matched == one.stats.matched);
    }
  }
}

TEST_CASE("replay finds the stall, the recovery and the retired node") {
  Run r = Replay(2, 64);
  // node-1: stalled at its last commit + 60 s, recovered at minute 9.
  int stalled = 0, recovered = 0, other = 0;
  for (const auto& e : r.events) {
    bool n1 = e.find("\"node\":\"node-1\"") != std::string::npos;
    if (n1 && e.find("\"event\":\"node_stalled\"") != std::string::npos) {
      ++stalled;
      // last commit before minute 5 is i=49 at 04:54.007; + 60 s.
      CHECK(e.find("\"time\":\"2025-01-02T03:05:54.007Z\"") != std::string::npos);
    } else if (n1 && e.find("\"event\":\"node_recovered\"") != std::string::npos) {
      ++recovered;
      CHECK(e.find("\"time\":\"2025-01-02T03:09:00.007Z\"") != std::string::npos);
    } else if (e.find("\"node\":\"node-3\"") != std::string::npos) {
      ++other;  // node-3's file ends: it retires, it is not stalled
    }
  }
  CHECK(stalled == 1);
  CHECK(recovered == 1);
  CHECK(other == 0);
  // 4 nodes x 200 commits + noise; matched = commits seen.
  CHECK(r.stats.matched == 200 + 160 + 200 + 120);
  REQUIRE(r.summary.size() == 4);
  CHECK(r.summary[1].node == "node-1");
  CHECK(r.summary[1].commits == 160);
  CHECK(r.summary[1].longest_stall_seconds == doctest::Approx(246.0));
  CHECK(r.summary[3].last_height == 1119);
}
