#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "pipeline/ordering.h"
#include "pipeline/replay.h"
#include "pipeline/stages.h"
#include "source/byte_source.h"
#include "test_topology.h"

using namespace qw;
using qw::testing::PlainTopology;

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
// 5 to 9, node 3 silent from minute 12 on (its file ends there).
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
  pipeline::ReplayResult result;
};

Run Replay(int threads, size_t batch_records, size_t max_read) {
  auto reg = match::Registry::LoadEmbedded();
  REQUIRE(reg);
  const Nanos t0 = 1735786800LL * kSecond;
  std::vector<pipeline::ReplayInput> inputs;
  // Given out of name order: replay takes them in name order anyway.
  for (int n : {2, 0, 3, 1}) {
    pipeline::ReplayInput in;
    in.path = "logs/node-" + std::to_string(n) + "_cosmos_gaiad-0123456789ab.log";
    in.bytes = source::MemorySource(NodeLog(n, t0), max_read);
    inputs.push_back(std::move(in));
  }
  record::Routing routing;
  routing.forced_chain = "cosmoshub";
  routing.forced_family = (*reg)->Find("cometbft");
  PlainTopology topology(**reg);
  Collect collect;
  pipeline::ReplayOptions opt;
  opt.threads = threads;
  opt.batch_records = batch_records;
  Run r;
  r.result = pipeline::Replay(**reg, routing, topology, std::move(inputs), {&collect}, opt);
  r.events = collect.lines;
  return r;
}

}  // namespace

TEST_CASE("replay output does not depend on threads, batch size or read size") {
  Run one = Replay(1, 2048, SIZE_MAX);
  REQUIRE_FALSE(one.events.empty());
  for (int threads : {2, 4}) {
    for (size_t batch : {size_t(7), size_t(2048)}) {
      for (size_t read : {size_t(13), size_t(4096)}) {
        Run other = Replay(threads, batch, read);
        CHECK(other.events == one.events);
        CHECK(other.result.matched == one.result.matched);
      }
    }
  }
}

TEST_CASE("replay finds the stall and the recovery; a file that ends early is a node gone silent") {
  Run r = Replay(2, 64, 1000);
  // node-1: stalled at its last commit + 60 s, recovered at minute 9.
  int stalled = 0, recovered = 0;
  std::vector<std::string> node3;
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
      node3.push_back(e);
    }
  }
  CHECK(stalled == 1);
  CHECK(recovered == 1);
  // node-3's file ends after height 1119 (11:54.021): the end of a captured
  // file is not the node's removal, so the others' times judge it. The head
  // reaches 1125 at 12:30.000 (node-0): more than max_lag 5 behind; its
  // stall deadline is 11:54.021 + 60 s.
  REQUIRE(node3.size() == 2);
  CHECK(node3[0].find("\"time\":\"2025-01-02T03:12:30.000Z\",\"event\":\"out_of_consensus\"") !=
        std::string::npos);
  CHECK(node3[0].find("\"reason\":\"lagging\"") != std::string::npos);
  CHECK(node3[1].find("\"time\":\"2025-01-02T03:12:54.021Z\",\"event\":\"node_stalled\"") !=
        std::string::npos);
  // 4 nodes x 200 commits + noise; matched = commits seen.
  CHECK(r.result.matched == 200 + 160 + 200 + 120);
  const auto& summary = r.result.summary;
  REQUIRE(summary.size() == 4);
  CHECK(summary[1].node == "node-1");
  CHECK(summary[1].commits == 160);
  CHECK(summary[1].lines_read == 320);
  CHECK(summary[1].longest_stall_seconds == doctest::Approx(246.0));
  CHECK(summary[3].last_height == 1119);
}

namespace {

// The ordering over a record stage fed by hand, as live reading feeds it.
struct Live {
  std::unique_ptr<match::Registry> reg = std::move(*match::Registry::LoadEmbedded());
  record::Routing routing;
  std::unique_ptr<record::RecordStage> stage;
  std::unique_ptr<pipeline::Ordering> ordering;
  pipeline::Batch batch;
  std::vector<pipeline::Batch> full;

  Live() {
    // A family without continuation rules: a record goes as soon as the
    // next one starts or the stream is read to its end.
    routing.forced_chain = "c";
    routing.forced_family = reg->Find("cometbft-signers");
    stage = std::make_unique<record::RecordStage>(*reg, routing, record::StageOptions{},
                                                  [](const std::string&) {});
    pipeline::Ordering::Options opt;
    ordering = std::make_unique<pipeline::Ordering>(stage.get(), opt, [this](pipeline::Batch* b) {
      full.push_back(*b);
      b->Clear();
      return b;
    });
  }
  void Open(uint32_t id, const std::string& path) {
    record::Origin o;
    o.path = path;
    o.name = record::NameFromPath(path);
    stage->Open(id, o);
    ordering->Add(id);
  }
  // Line texts released so far, in order, as "<id>:<text>".
  std::vector<std::string> Release() {
    pipeline::Batch* b = &batch;
    ordering->Release(&b);
    full.push_back(batch);
    batch.Clear();
    std::vector<std::string> out;
    for (const auto& fb : full) {
      for (const auto& r : fb.records) {
        if (r.kind == pipeline::RecordKind::kLine) {
          out.push_back(std::to_string(r.stream) + ":" + std::string(fb.text(r)));
        }
      }
    }
    full.clear();
    return out;
  }
  uint64_t Position(uint32_t id) {
    uint64_t pos = UINT64_MAX;
    for (const auto& r : batch.records) {
      if (r.kind == pipeline::RecordKind::kPosition && r.stream == id) {
        pos = batch.progress[r.offset].position;
      }
    }
    return pos;
  }
};

std::string Line(int second, const std::string& text) {
  return "2025-01-02T03:00:" + std::string(second < 10 ? "0" : "") + std::to_string(second) +
         ".000000000Z stdout F " + text + "\n";
}

}  // namespace

TEST_CASE("live ordering: a stream that has not been read to its end holds the others back") {
  Live l;
  l.Open(0, "a.log");
  l.Open(1, "b.log");
  l.stage->Feed(0, Line(1, "a1") + Line(5, "a5"), 0);
  l.stage->AtEnd(0, 0);
  // b has not been read at all: nothing of a may go yet.
  CHECK(l.Release().empty());
  l.stage->Feed(1, Line(3, "b3"), 0);
  // b's next record could still be before a5.
  CHECK(l.Release() == std::vector<std::string>{"0:a1", "1:b3"});
  l.stage->AtEnd(1, 0);
  // Both read to their end: a5 goes, and everything is idle.
  CHECK(l.Release() == std::vector<std::string>{"0:a5"});
  CHECK(l.ordering->idle());
  // Later lines of b, even older ones, come after: time is not turned back.
  l.stage->Feed(1, Line(4, "b4"), 0);
  l.stage->AtEnd(1, 0);
  CHECK(l.Release() == std::vector<std::string>{"1:b4"});
}

TEST_CASE("live ordering: equal times go in stream id order; positions follow the records") {
  Live l;
  l.Open(0, "a.log");
  l.Open(1, "b.log");
  const std::string a = Line(1, "a") + "not a CRI line\n";
  l.stage->Feed(1, Line(1, "b"), 0);
  l.stage->Feed(0, a, 0);
  l.stage->AtEnd(0, 0);
  l.stage->AtEnd(1, 0);
  pipeline::Batch* b = &l.batch;
  l.ordering->Release(&b);
  std::vector<std::string> lines;
  for (const auto& r : l.batch.records) {
    if (r.kind == pipeline::RecordKind::kLine) lines.push_back(std::string(l.batch.text(r)));
  }
  CHECK(lines == std::vector<std::string>{"a", "b"});
  // a's rejected line is behind its position too.
  CHECK(l.Position(0) == a.size());
  CHECK(l.Position(1) == Line(1, "b").size());
}

TEST_CASE("a stream whose family is decided again moves its node to the new chain, lines and all") {
  const std::string dir = std::string(QW_SOURCE_ROOT) + "/tests/unit/record/testdata";
  auto reg = match::Registry::LoadFiles({dir + "/t.yaml", dir + "/u.yaml", dir + "/v.yaml"});
  REQUIRE(reg);
  // Its first records tie u and v (the refusal is critical in both); the
  // rest are v's commits. Two hundred records decide with what there is.
  const Nanos t0 = 1735786800LL * kSecond;
  std::string data = Stamp(t0) + " stdout F safety refused height 5\n";
  for (int i = 1; i < 230; ++i) {
    data += Stamp(t0 + i * kSecond) + " stdout F " +
            (i < 210 ? std::string("plain") : "vblock committed " + std::to_string(i)) + "\n";
  }
  std::vector<pipeline::ReplayInput> inputs(1);
  inputs[0].path = "logs/val-0_ns_app-0123456789ab.log";
  inputs[0].bytes = source::MemorySource(data, SIZE_MAX);
  PlainTopology topology(**reg);
  Collect collect;
  auto r = pipeline::Replay(**reg, record::Routing{}, topology, std::move(inputs), {&collect}, {});
  // The refusal was matched (as u's, the first candidate).
  REQUIRE_FALSE(collect.lines.empty());
  CHECK(collect.lines[0].find("\"event\":\"double_sign_risk\"") != std::string::npos);
  CHECK(collect.lines[0].find("\"chain\":\"u/ns\"") != std::string::npos);
  // One node, now on v's chain, with every line counted and v's commits.
  REQUIRE(r.summary.size() == 1);
  CHECK(r.summary[0].chain == "v/ns");
  CHECK(r.summary[0].family == "v");
  CHECK(r.summary[0].lines_read == 230);
  CHECK(r.summary[0].commits == 20);
  CHECK(r.summary[0].lines_matched == 21);
}

TEST_CASE("stages: a small batch dispatched with none in flight is matched and consumed inline, in order") {
  auto reg = match::Registry::LoadEmbedded();
  REQUIRE(reg);
  const int16_t fam = static_cast<int16_t>((*reg)->Find("cometbft"));
  REQUIRE(fam >= 0);
  // What the consumer saw: (sequence, thread, commit heights matched).
  struct Seen {
    uint64_t seq;
    std::thread::id thread;
    std::vector<int64_t> heights;
  };
  std::vector<Seen> seen;  // written by whichever thread consumes, under Stages' lock
  pipeline::Stages stages(**reg, 2, 64 << 10, 64, [&seen](pipeline::Batch& b) {
    Seen s{b.seq, std::this_thread::get_id(), {}};
    for (size_t i = 0; i < b.records.size(); ++i) {
      if (b.signals[i].kind == SignalKind::kBlockCommitted) s.heights.push_back(b.signals[i].height);
    }
    seen.push_back(std::move(s));
  });
  stages.InlineUpTo(4);
  auto fill = [&](pipeline::Batch* b, int64_t first, int n) {
    for (int k = 0; k < n; ++k) {
      const std::string line = "I[2025-01-02|03:04:05.678] committed state module=state height=" +
                               std::to_string(first + k) + " num_txs=0 app_hash=AB12";
      b->records.push_back(pipeline::Record{0, static_cast<uint32_t>(b->arena.size()),
                                            static_cast<uint32_t>(line.size()), pipeline::RecordKind::kLine,
                                            fam, 0, 0});
      b->arena += line;
      b->arena += '\n';
    }
  };
  const auto me = std::this_thread::get_id();
  // 1: small, nothing in flight: inline, done before Dispatch returns.
  pipeline::Batch* b = stages.Acquire();
  fill(b, 100, 3);
  stages.Dispatch(b);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].thread == me);
  CHECK(stages.inlined() == 1);
  // 2: too big for inline: to the matcher threads. 3 (small) may then find
  // it in flight and follow it through the threads; either way the order
  // and the signals are those of the dispatches.
  b = stages.Acquire();
  fill(b, 200, 10);
  stages.Dispatch(b);
  b = stages.Acquire();
  fill(b, 300, 2);
  stages.Dispatch(b);
  stages.Finish();
  REQUIRE(seen.size() == 3);
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].seq == i);
  CHECK(seen[0].heights == std::vector<int64_t>{100, 101, 102});
  CHECK(seen[1].heights.size() == 10);
  CHECK(seen[1].thread != me);
  CHECK(seen[2].heights == std::vector<int64_t>{300, 301});
  CHECK(stages.matched() == 15);
}

TEST_CASE("checkpoint: a Kafka offset keeps the input offsets read before it (repartition), old ones read") {
  pipeline::Checkpoint cp;
  cp.written = 1620216180LL * kSecond;
  cp.kafka_offsets.push_back(pipeline::KafkaOffset{"g-by-chain", 2, 118, {{"in/0", 41}, {"in/3", 7}}});
  cp.kafka_offsets.push_back(pipeline::KafkaOffset{"logs", 0, 5, {}});
  auto back = pipeline::DecodeCheckpoint(pipeline::EncodeCheckpoint(cp));
  REQUIRE(back);
  REQUIRE(back->kafka_offsets.size() == 2);
  const auto& a = back->kafka_offsets[0];
  CHECK(a.topic == "g-by-chain");
  CHECK(a.partition == 2);
  CHECK(a.offset == 118);
  REQUIRE(a.origins.size() == 2);
  CHECK(a.origins[0] == std::pair<std::string, int64_t>{"in/0", 41});
  CHECK(a.origins[1] == std::pair<std::string, int64_t>{"in/3", 7});
  CHECK(back->kafka_offsets[1].origins.empty());
  // Written before origins existed: read, none.
  auto old = pipeline::DecodeCheckpoint(
      R"({"version":2,"written":1620216180000000000,"chains":[],"streams":[],)"
      R"("pending_events":[],"kafka_offsets":[{"topic":"t","partition":1,"offset":9}]})");
  REQUIRE_MESSAGE(old, (old ? "" : old.error().message));
  REQUIRE(old->kafka_offsets.size() == 1);
  CHECK(old->kafka_offsets[0].offset == 9);
  CHECK(old->kafka_offsets[0].origins.empty());
  // Damaged: refused with a reason, not half read.
  auto bad = pipeline::DecodeCheckpoint(
      R"({"version":2,"written":1620216180000000000,"chains":[],"streams":[],)"
      R"("pending_events":[],"kafka_offsets":[{"topic":"t","partition":1,"offset":9,"origins":[1]}]})");
  CHECK_FALSE(bad);
}
