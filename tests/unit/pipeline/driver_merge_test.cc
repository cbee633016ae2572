// Driver::Merge when a Kafka partition is revoked and given back to the same
// member (an eager rebalance): the chain's state comes back from what the
// member wrote to the changelog at the revoke, and the partition's old
// streams, whose gone-ends may reach the driver after that state, must leave
// their nodes without closing the periods the state keeps (docs/KAFKA.md,
// "State handoff"). Batches are built by hand as the Kafka reader hands them
// on, so the order of restore, new streams and old ends is the test's; the
// lines are matched by the real stages with the embedded cometbft pack.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common/time.h"
#include "detect/state_codec.h"
#include "pipeline/checkpoint.h"
#include "pipeline/driver.h"
#include "pipeline/stages.h"
#include "test_topology.h"

using namespace qw;
using qw::testing::PlainTopology;

namespace {

class Collect : public sink::EventSink {
 public:
  void Write(const Event& e) override { events.push_back(e); }
  std::vector<Event> events;
};

// Chains take the family's built-in thresholds: the cometbft family's
// defaults (docs/DETECTION.md, "Defaults": stall_after 60s, max_lag 5;
// ban_after 30m, unban_after 10m).
constexpr char kTopic[] = "t";
constexpr char kChain[] = "cosmoshub";
constexpr Nanos kT0 = 1735786800LL * kSecond;  // 2025-01-02T03:00:00Z
constexpr Nanos kBlock = 6 * kSecond;
constexpr Nanos kMinute = 60 * kSecond;
const std::vector<std::string> kPods = {"val-a", "val-b", "val-c", "val-d"};
constexpr int kValB = 1;

// The script, in blocks i (height 1000 + i at kT0 + i * 6 s, node k's line
// k * 7 ms later, so lines of one block have distinct times):
constexpr int kBLastCommit = 9;   // val-b commits 1000..1009, then is silent
constexpr int kRevokeAfter = 50;  // the partition is revoked after block 50
constexpr int kBLogsAgain = 60;   // val-b's pod logs again, still not committing
constexpr int kBRecovers = 330;   // val-b commits again, at the chain's height
constexpr int kLastBlock = 440;

Nanos At(int i, int node) { return kT0 + i * kBlock + node * 7 * kMillisecond; }

// What the pod logs at block i ("" nothing): a line the cometbft pack takes
// as a commit, or (val-b stuck) a p2p line it matches nothing in.
std::string Message(int node, int i) {
  const std::string commit =
      "3:00AM INF committed state height=" + std::to_string(1000 + i) + " module=state num_txs=0";
  if (node != kValB || i <= kBLastCommit || i >= kBRecovers) return commit;
  return i >= kBLogsAgain ? "3:00AM DBG Receive module=p2p peer=abc chId=32" : "";
}

// One member of the consumer group, reading partition t/0 of a topic that
// carries every pod of the chain.
class Member {
 public:
  Member()
      : reg_(std::move(*match::Registry::LoadEmbedded())),
        family_(reg_->Find("cometbft")),
        topology_(*reg_),
        driver_(topology_, *reg_, {&sink_}),
        // Every batch matched and consumed on this thread, in order; restored
        // states merged ahead of the batch's records, as the live consumer
        // does (pipeline/live.cc).
        stages_(*reg_, 1, 64 << 10, 2048, [this](pipeline::Batch& b) {
          for (const pipeline::Checkpoint& cp : b.restores) REQUIRE(driver_.Merge(cp));
          driver_.Consume(b);
        }) {
    stages_.InlineUpTo(SIZE_MAX);
  }

  // A new stream of `node`'s pod (the Kafka reader makes one per container
  // on its first record of an assignment): opened and placed.
  uint32_t Open(int node) {
    const uint32_t id = next_id_++;
    record::StreamInfo info;
    info.id = id;
    info.path = pipeline::KafkaStreamPrefix(kTopic, 0) + "cosmos/" + kPods[node] + "/node";
    info.name = record::StreamName{kPods[node], "cosmos", "node", true};
    info.chain = kChain;
    info.family = family_;
    for (pipeline::RecordKind kind : {pipeline::RecordKind::kOpen, pipeline::RecordKind::kStart}) {
      Add(pipeline::Record{id, static_cast<uint32_t>(batch_->infos.size()), 0, kind, -1, kNoTime});
      batch_->infos.push_back(info);
    }
    return id;
  }
  // Block i's lines of the pods whose streams are given (-1: none now).
  void Block(int i, const std::vector<int64_t>& stream_of) {
    for (int node = 0; node < static_cast<int>(kPods.size()); ++node) {
      const std::string text = Message(node, i);
      if (stream_of[static_cast<size_t>(node)] < 0 || text.empty()) continue;
      Add(pipeline::Record{static_cast<uint32_t>(stream_of[static_cast<size_t>(node)]),
                           static_cast<uint32_t>(batch_->arena.size()),
                           static_cast<uint32_t>(text.size()), pipeline::RecordKind::kLine,
                           static_cast<int16_t>(family_), At(i, node)});
      batch_->arena += text;
      batch_->arena += '\n';
    }
  }
  // The stream ends as gone: its partition was revoked (KafkaInput::OnRevoked).
  void End(uint32_t id) {
    Add(pipeline::Record{id, static_cast<uint32_t>(batch_->progress.size()), 0,
                         pipeline::RecordKind::kEnd, -1, kNoTime, record::kEntryGone});
    batch_->progress.push_back(pipeline::StreamProgress{});
  }
  void Restore(pipeline::Checkpoint cp) { batch_->restores.push_back(std::move(cp)); }
  // Hands the batch on: everything there is has been read (all_idle), so
  // every decided event is written.
  void Dispatch() {
    batch_->all_idle = true;
    stages_.Dispatch(batch_);
    batch_ = stages_.Acquire();
  }

  // What the member writes to the changelog for the chain at the revoke
  // (Consumer::WriteCheckpoint's checkpoint cut to the chain by
  // KafkaInput::WriteState), as the text it is there, read back as
  // KafkaInput::Restore reads it when the partition comes back.
  pipeline::Checkpoint ChangelogValue(int64_t offset) const {
    pipeline::Checkpoint cp;
    driver_.Save(&cp);
    cp.detector = detect::EncodeStateJson(driver_.detector());
    pipeline::Checkpoint v;
    for (const auto& [name, family] : cp.chains) {
      if (name == kChain) v.chains.emplace_back(name, family);
    }
    for (const auto& e : cp.pending) {
      if (e.chain == kChain) v.pending.push_back(e);
    }
    v.kafka_offsets.push_back(pipeline::KafkaOffset{kTopic, 0, offset, {}});
    v.detector = detect::ChainStateJson(cp.detector, kChain);
    auto back = pipeline::DecodeCheckpoint(pipeline::EncodeCheckpoint(v));
    REQUIRE(back);
    return *back;
  }

  sink::NodeStatus Status(int node) const {
    for (const auto& n : driver_.BuildStatus(0).nodes) {
      if (n.node == kPods[static_cast<size_t>(node)]) return n;
    }
    FAIL("no node " << kPods[static_cast<size_t>(node)]);
    return {};
  }
  int OpenStreams(int node) const {
    for (size_t i = 0; i < driver_.detector().node_count(); ++i) {
      const detect::NodeState& n = driver_.detector().node(static_cast<int>(i));
      if (n.spec.name == kPods[static_cast<size_t>(node)]) return n.open_streams;
    }
    return -1;
  }
  const std::vector<Event>& events() const { return sink_.events; }

 private:
  void Add(pipeline::Record r) { batch_->records.push_back(r); }

  std::unique_ptr<match::Registry> reg_;
  int family_;
  PlainTopology topology_;
  Collect sink_;
  pipeline::Driver driver_;
  pipeline::Stages stages_;
  pipeline::Batch* batch_ = stages_.Acquire();
  uint32_t next_id_ = 1;
};

struct Outcome {
  std::vector<Event> events;
  std::vector<int> written_at;  // per event: the block whose batch wrote it
  size_t events_before_old_ends = 0, events_after_old_ends = 0;
  sink::NodeStatus b_after_old_ends;
  std::vector<int> open_streams;  // per pod, at the end
};

// The script, with the partition given back with its state (give_back) or
// kept without a word (the old streams still end as gone). b_returns: val-b's
// pod logs again from block kBLogsAgain; else it logs nothing after the
// revoke (hung).
Outcome Run(bool give_back, bool b_returns = true) {
  Member m;
  Outcome out;
  auto written = [&](int block) { out.written_at.resize(m.events().size(), block); };
  std::vector<int64_t> stream_of(kPods.size());
  for (size_t node = 0; node < kPods.size(); ++node) {
    stream_of[node] = m.Open(static_cast<int>(node));
  }
  const std::vector<int64_t> old_streams = stream_of;
  for (int i = 0; i <= kRevokeAfter; ++i) {
    m.Block(i, stream_of);
    m.Dispatch();
    written(i);
  }
  // The revoke: the state as of everything read, then the same partition
  // assigned again. Its state comes ahead of its records; the new streams
  // (val-b's pod logs nothing yet, so it has none) and their first block
  // come before the old streams' ends.
  if (give_back) {
    // The offset only names the partition to Merge here.
    m.Restore(m.ChangelogValue(/*offset=*/1000));
    m.Dispatch();
  }
  for (int node = 0; node < static_cast<int>(kPods.size()); ++node) {
    stream_of[static_cast<size_t>(node)] = node == kValB ? -1 : m.Open(node);
  }
  m.Block(kRevokeAfter + 1, stream_of);
  m.Dispatch();
  out.events_before_old_ends = m.events().size();
  for (int64_t id : old_streams) m.End(static_cast<uint32_t>(id));
  m.Dispatch();
  written(kRevokeAfter + 1);
  out.events_after_old_ends = m.events().size();
  out.b_after_old_ends = m.Status(kValB);
  for (int i = kRevokeAfter + 2; i <= kLastBlock; ++i) {
    if (i == kBLogsAgain && b_returns) stream_of[kValB] = m.Open(kValB);
    m.Block(i, stream_of);
    m.Dispatch();
    written(i);
  }
  out.events = m.events();
  for (int node = 0; node < static_cast<int>(kPods.size()); ++node) {
    out.open_streams.push_back(m.OpenStreams(node));
  }
  return out;
}

// The same script up to the revoke on member A; then member B, which never
// held the partition, takes it over with A's changelog value: val-a, c and
// d's pods log on new streams there; val-b's pod logs nothing more.
// Returns B's events.
Outcome Takeover() {
  Member a;
  std::vector<int64_t> stream_of(kPods.size());
  for (size_t node = 0; node < kPods.size(); ++node) {
    stream_of[node] = a.Open(static_cast<int>(node));
  }
  for (int i = 0; i <= kRevokeAfter; ++i) {
    a.Block(i, stream_of);
    a.Dispatch();
  }
  Member b;
  Outcome out;
  b.Restore(a.ChangelogValue(/*offset=*/1000));
  b.Dispatch();
  for (int node = 0; node < static_cast<int>(kPods.size()); ++node) {
    stream_of[static_cast<size_t>(node)] = node == kValB ? -1 : b.Open(node);
  }
  for (int i = kRevokeAfter + 1; i <= kLastBlock; ++i) {
    b.Block(i, stream_of);
    b.Dispatch();
    out.written_at.resize(b.events().size(), i);
  }
  out.events = b.events();
  out.b_after_old_ends = b.Status(kValB);
  return out;
}

std::vector<Event> About(const std::vector<Event>& events, const std::string& node) {
  std::vector<Event> out;
  std::copy_if(events.begin(), events.end(), std::back_inserter(out),
               [&](const Event& e) { return e.node == node; });
  return out;
}

std::string Detail(const Event& e, const std::string& key) {
  for (const auto& [k, v] : e.detail) {
    if (k == key) return v;
  }
  return "";
}

// val-b's last commit is 1009 at block 9 (+7 ms). The others' commits of
// 1015 at block 15 put the head 6 > max_lag 5 blocks ahead: out of
// consensus (lagging) at val-a's line, 03:01:30.000, which opens the ban
// period. Its stall deadline is its last commit + stall_after 60 s.
const Nanos kOutAt = At(15, 0);
const Nanos kStalledAt = At(kBLastCommit, kValB) + kMinute;
// ban_after 30 m after the period started: block 315 exactly (1890 s).
const Nanos kBanAt = kOutAt + 30 * kMinute;
// val-b's commit of 1330 brings it to the head: recovered and back in
// consensus at once; unban_after 10 m later (block 430 + 7 ms).
const Nanos kBackAt = At(kBRecovers, kValB);
const Nanos kUnbanAt = kBackAt + 10 * kMinute;

}  // namespace

TEST_CASE(
    "merge: a partition given back to its member keeps a node out of consensus across the "
    "old streams' ends; the ban comes once, ban_after from the period's start") {
  const Outcome r = Run(/*give_back=*/true);
  REQUIRE(kOutAt == ParseRfc3339("2025-01-02T03:01:30Z"));
  REQUIRE(kBanAt == ParseRfc3339("2025-01-02T03:31:30Z"));

  // The old ends, after the state and the new streams, leave the nodes
  // quietly: no event, val-b still out of consensus since 03:01:30.
  CHECK(r.events_after_old_ends == r.events_before_old_ends);
  CHECK(r.b_after_old_ends.out_of_consensus);
  CHECK(r.b_after_old_ends.out_of_consensus_since == kOutAt);
  CHECK(r.b_after_old_ends.period_start == kOutAt);

  const std::vector<Event> b = About(r.events, "val-b");
  REQUIRE(b.size() == 6);
  CHECK(b[0].kind == EventKind::kOutOfConsensus);
  CHECK(b[0].time == kOutAt);
  CHECK(b[0].height == 1009);
  CHECK(Detail(b[0], "reason") == "\"lagging\"");
  // Already out of consensus at its stall deadline: node_stalled only.
  CHECK(b[1].kind == EventKind::kNodeStalled);
  CHECK(b[1].time == kStalledAt);
  CHECK(b[2].kind == EventKind::kBan);
  CHECK(b[2].time == kBanAt);
  // Decided, not held: the others are in consensus (require_healthy_peer)
  // and no node of the chain is banned yet (max_bans 1).
  CHECK(Detail(b[2], "held").empty());
  CHECK(Detail(b[2], "since") == "\"2025-01-02T03:01:30.000Z\"");
  CHECK(Detail(b[2], "out_of_consensus_seconds") == "1800");
  CHECK(b[3].kind == EventKind::kBackInConsensus);
  CHECK(b[3].time == kBackAt);
  CHECK(b[3].height == 1000 + kBRecovers);
  CHECK(b[4].kind == EventKind::kNodeRecovered);
  CHECK(b[4].time == kBackAt);
  CHECK(b[5].kind == EventKind::kUnban);
  CHECK(b[5].time == kUnbanAt);

  // The other nodes went on committing every block: nothing about them, and
  // no chain event. Each has one stream now, its new one: the old ones left
  // without counting twice.
  CHECK(About(r.events, "val-a").empty());
  CHECK(About(r.events, "val-c").empty());
  CHECK(About(r.events, "val-d").empty());
  CHECK(About(r.events, "").empty());
  CHECK(r.open_streams == std::vector<int>{1, 1, 1, 1});
}

TEST_CASE(
    "merge: without the state given back, the old stream's end of a node with no successor "
    "closes its out of consensus quietly: its later return is not reported, nor unbanned") {
  // The sequence above without the restore: what Merge's quiet leave keeps
  // from happening. val-b's old stream is its node's last one when its end
  // comes (the others' ends only take them from two streams to one).
  const Outcome r = Run(/*give_back=*/false);
  CHECK(r.b_after_old_ends.retired);
  CHECK_FALSE(r.b_after_old_ends.out_of_consensus);

  const std::vector<Event> b = About(r.events, "val-b");
  // Closed without back_in_consensus; the ban period stays open, so the ban
  // still comes, but the recovery finds the node in consensus already: no
  // back_in_consensus, so no unban (banned for good while committing).
  REQUIRE(b.size() == 4);
  CHECK(b[0].kind == EventKind::kOutOfConsensus);
  CHECK(b[0].time == kOutAt);
  CHECK(b[1].kind == EventKind::kNodeStalled);
  CHECK(b[2].kind == EventKind::kBan);
  CHECK(b[2].time == kBanAt);
  CHECK(b[3].kind == EventKind::kNodeRecovered);
  CHECK(b[3].time == kBackAt);
  CHECK(r.open_streams == std::vector<int>{1, 1, 1, 1});
}

TEST_CASE(
    "merge: a node whose pod logs nothing more after its partition is given back is still "
    "judged by the others' time: banned ban_after from the period's start, when that time comes") {
  const Outcome r = Run(/*give_back=*/true, /*b_returns=*/false);
  const std::vector<Event> b = About(r.events, "val-b");
  REQUIRE(b.size() == 3);
  CHECK(b[0].kind == EventKind::kOutOfConsensus);
  CHECK(b[1].kind == EventKind::kNodeStalled);
  CHECK(b[2].kind == EventKind::kBan);
  CHECK(b[2].time == kBanAt);
  // Written with the batch of block 315, whose first line (val-a's) is at
  // kBanAt: not later, when (if ever) val-b's pod logs again.
  REQUIRE(kBanAt == At(315, 0));
  size_t ban = 0;
  while (ban < r.events.size() && r.events[ban].kind != EventKind::kBan) ++ban;
  REQUIRE(ban < r.written_at.size());
  CHECK(r.written_at[ban] == 315);
}

TEST_CASE(
    "merge: another member taking the partition over judges a node whose pod logs nothing more "
    "there: the ban comes ban_after from the period's start, once") {
  const Outcome r = Takeover();
  // A wrote out_of_consensus and node_stalled; B only the ban, on time.
  const std::vector<Event> b = About(r.events, "val-b");
  REQUIRE(b.size() == 1);
  CHECK(b[0].kind == EventKind::kBan);
  CHECK(b[0].time == kBanAt);
  CHECK(Detail(b[0], "since") == "\"2025-01-02T03:01:30.000Z\"");
  CHECK(r.written_at[0] == 315);
  CHECK(r.b_after_old_ends.banned);
  CHECK(r.b_after_old_ends.out_of_consensus);
  CHECK(About(r.events, "val-a").empty());
  CHECK(About(r.events, "val-c").empty());
  CHECK(About(r.events, "val-d").empty());
}
