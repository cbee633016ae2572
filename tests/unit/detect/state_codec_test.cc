// Unit tests of the detector state codec (src/detect/state_codec.cc).
//
// A detector with two chains is driven to a rich state (stalled node, open
// out-of-consensus period, banned node, held ban, missed precommits, a
// learned signer, votes, a halted chain, evidence with non-ASCII text and
// quotes), encoded, and decoded into a fresh detector with the same chains and
// nodes. Both are then driven on with the same signals: they must decide the
// same events at the same times (a ban timer goes on where it was).
//
// One file of ~900 lines: every case starts from the one scenario and
// snapshot built at the top.
#include "detect/state_codec.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "common/json.h"
#include "common/signal.h"
#include "common/time.h"
#include "detect/detector.h"
#include "detect/node_state.h"
#include "detect/thresholds.h"

using namespace qw;
using namespace qw::detect;

namespace {

constexpr Nanos kT0 = 1'700'000'000 * kSecond;  // 2023-11-14T22:13:20Z
constexpr Nanos S(int64_t s) { return kT0 + s * kSecond; }
constexpr int64_t Ms(Nanos t) { return t / kMillisecond; }

const std::string kValA = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12";
const std::string kValL = "99887766554433221100FFEEDDCCBBAA99887766";
// Non-ASCII text, quotes, a backslash and one invalid UTF-8 byte.
const std::string kOdd = " msg=\"ünïcødé ✓ \\ «ok»\" raw=\xff";

constexpr int64_t kSnapshot = 2400;  // seconds after kT0
constexpr int64_t kEnd = 4620;

class Collector : public EventOutput {
 public:
  void Emit(Event e) override { events.push_back(std::move(e)); }
  std::vector<Event> events;
};

std::string Describe(const Event& e) {
  std::string s = std::to_string(e.time) + " ";
  AppendEventJson(s, e);
  return s;
}

// Raw JSON value of a detail key, or "<absent>".
std::string Detail(const Event& e, std::string_view key) {
  for (const auto& [k, v] : e.detail) {
    if (k == key) return v;
  }
  return "<absent>";
}

struct NodeDef {
  std::string name;
  std::string namespace_;
  std::string chain;
  bool signer = false;
  std::string validator;
  int max_bans = 0;       // 0: the chain's
  int missed_window = 0;  // 0: the chain's
  int streams = 1;
};

Thresholds ChainThresholds(const std::string& chain) {
  Thresholds t;
  t.max_lag = 1000;  // stopped nodes are stalled, not lagging
  if (chain == "cosmoshub") {
    t.missed_window = 10;
    t.missed_max = 2;
  }
  return t;
}

std::vector<NodeDef> AllNodes() {
  auto node = [](std::string name, std::string ns, std::string chain, bool signer = false,
                 std::string validator = "", int max_bans = 0) {
    NodeDef d;
    d.name = std::move(name);
    d.namespace_ = std::move(ns);
    d.chain = std::move(chain);
    d.signer = signer;
    d.validator = std::move(validator);
    d.max_bans = max_bans;
    return d;
  };
  return {
      node("val-a", "cosmos", "cosmoshub", true, kValA),
      node("sentry-b", "cosmos", "cosmoshub"),  // learns it signs (kValL)
      node("node-c", "cosmos", "cosmoshub"),    // stalls, banned before the snapshot
      node("node-d", "cosmos", "cosmoshub"),    // consensus failure, ban held (max_bans)
      node("node-e", "", "cosmoshub", false, "", 2),  // stalls, period open at the snapshot
      node("idle", "cosmos", "cosmoshub"),      // never commits (times stay kNoTime)
      node("osmo-1", "osmosis", "osmosis"),     // the chain halts
      node("osmo-2", "osmosis", "osmosis"),
  };
}

std::vector<NodeDef> Without(std::vector<NodeDef> defs, const std::string& name) {
  defs.erase(std::remove_if(defs.begin(), defs.end(),
                            [&](const NodeDef& d) { return d.name == name; }),
             defs.end());
  return defs;
}

NodeDef Def(const std::string& name) {
  for (const auto& d : AllNodes()) {
    if (d.name == name) return d;
  }
  FAIL("no node " << name);
  return {};
}

class World {
 public:
  explicit World(const std::vector<NodeDef>& defs,
                 std::vector<std::string> chains = {"cosmoshub", "osmosis"}) {
    std::vector<ChainSpec> specs;
    for (const auto& name : chains) {
      ChainSpec c;
      c.name = name;
      c.family = "cometbft";
      c.thresholds = ChainThresholds(name);
      specs.push_back(std::move(c));
    }
    chains_ = std::move(chains);
    det = std::make_unique<Detector>(std::move(specs), &out);
    for (const auto& d : defs) Add(d);
  }

  int Add(const NodeDef& d) {
    NodeSpec spec;
    spec.name = d.name;
    spec.namespace_ = d.namespace_;
    spec.chain = ChainIndex(d.chain);
    spec.signer = d.signer;
    spec.validator_address = d.validator;
    spec.thresholds = ChainThresholds(d.chain);
    if (d.max_bans > 0) spec.thresholds.max_bans = d.max_bans;
    if (d.missed_window > 0) spec.thresholds.missed_window = d.missed_window;
    int n = det->AddNode(std::move(spec));
    for (int i = 0; i < d.streams; ++i) det->AttachStream(n);
    index_[d.name] = n;
    return n;
  }

  int ChainIndex(const std::string& name) const {
    auto it = std::find(chains_.begin(), chains_.end(), name);
    REQUIRE(it != chains_.end());
    return static_cast<int>(it - chains_.begin());
  }
  bool Has(const std::string& name) const { return index_.count(name) > 0; }
  int Index(const std::string& name) const {
    auto it = index_.find(name);
    REQUIRE_MESSAGE(it != index_.end(), "no node " << name);
    return it->second;
  }
  const NodeState& Node(const std::string& name) const { return det->node(Index(name)); }
  const ChainState& Chain(const std::string& name) const { return det->chain(ChainIndex(name)); }

  void Tick(Nanos t) {
    REQUIRE(t >= clock_);
    clock_ = t;
    det->OnTick(t);
  }
  void Send(const std::string& name, Nanos t, const Signal& s, const std::string& line) {
    if (!Has(name)) return;
    Tick(t);
    det->OnSignal(Index(name), t, s, line);
  }
  void Commit(const std::string& name, Nanos t, int64_t h, const std::string& extra = "") {
    Signal s;
    s.kind = SignalKind::kBlockCommitted;
    s.height = h;
    Send(name, t, s, name + " committed height=" + std::to_string(h) + extra);
    if (Has(name)) det->CountLines(Index(name), 3, 1, name == "node-c" ? 1 : 0);
  }
  void Vote(const std::string& name, Nanos t, int64_t h, const std::string& validator,
            const std::string& block_id) {
    Signal s;
    s.kind = SignalKind::kVoteSigned;
    s.height = h;
    s.round = 0;
    s.vote_type = VoteType::kPrecommit;
    s.type_raw = "precommit";
    s.validator = validator;
    s.block_id = block_id;
    Send(name, t, s, name + " signed precommit height=" + std::to_string(h));
  }
  void Failure(const std::string& name, Nanos t, int64_t h) {
    Signal s;
    s.kind = SignalKind::kConsensusFailure;
    s.height = h;
    s.reason = "panic";
    Send(name, t, s, name + " CONSENSUS FAILURE!!! err=\"panic: «boom»\"");
  }
  void Syncing(const std::string& name, Nanos t, int64_t target) {
    Signal s;
    s.kind = SignalKind::kSyncing;
    s.target_height = target;
    Send(name, t, s, name + " syncing");
  }

  std::vector<Event> Of(EventKind k, const std::string& node) const {
    std::vector<Event> r;
    for (const auto& e : out.events) {
      if (e.kind == k && e.node == node) r.push_back(e);
    }
    return r;
  }

  Collector out;
  std::unique_ptr<Detector> det;

 private:
  std::vector<std::string> chains_;
  std::map<std::string, int> index_;
  Nanos clock_ = 0;
};

// Chain cosmoshub: a block every 6 s (height = seconds / 6). val-a precommits
// (but skips some heights), sentry-b signs as kValL from height 300, node-c
// stops at 60 s, node-d at 120 s (consensus failure at 130 s), node-e at
// 1800 s. Chain osmosis: a block every 5 s up to 300 s, then both nodes stop
// (halt at 360 s). idle syncs at 200 s.
bool SkipsPrecommit(int64_t h) { return h % 7 == 3 || h == 396 || h == 398; }

void ChainABlock(World& w, int64_t s) {
  const int64_t h = s / 6;
  const Nanos t = S(s);
  if (!SkipsPrecommit(h)) w.Vote("val-a", t, h, kValA, "BLOCK" + std::to_string(h));
  w.Commit("val-a", t, h);
  if (h >= 300) w.Vote("sentry-b", t, h, kValL, "BLOCK" + std::to_string(h));
  w.Commit("sentry-b", t, h);
}

void Before(World& w) {
  for (int64_t s = 1; s <= kSnapshot; ++s) {
    const Nanos t = S(s);
    if (s % 6 == 0) {
      const int64_t h = s / 6;
      ChainABlock(w, s);
      if (s <= 60) w.Commit("node-c", t, h, kOdd);
      if (s <= 120) w.Commit("node-d", t, h);
      if (s <= 1800) w.Commit("node-e", t, h, kOdd);
    }
    if (s % 5 == 0 && s <= 300) {
      w.Commit("osmo-1", t, 1000 + s / 5);
      w.Commit("osmo-2", t, 1000 + s / 5);
    }
    if (s == 130) w.Failure("node-d", t, 22);
    if (s == 200) w.Syncing("idle", t, 5000);
    w.Tick(t);
  }
}

// node-c catches up at 2502 s (unban 10 min later, which frees node-d's held
// ban) and signs a conflicting vote as kValL at 2700 s; osmosis resumes at
// 3000 s and halts again; cosmoshub stops at 4500 s.
void After(World& w) {
  for (int64_t s = kSnapshot + 1; s <= kEnd; ++s) {
    const Nanos t = S(s);
    if (s % 6 == 0 && s <= 4500) {
      ChainABlock(w, s);
      if (s >= 2502) w.Commit("node-c", t, s / 6, kOdd);
    }
    if (s == 2700) w.Vote("node-c", t, 400, kValL, "OTHERBLOCK");
    if (s % 5 == 0 && s >= 3000 && s <= 3100) {
      w.Commit("osmo-1", t, 1061 + (s - 3000) / 5);
      w.Commit("osmo-2", t, 1061 + (s - 3000) / 5);
    }
    w.Tick(t);
  }
}

// Every saved field of two node states (all but spec, open_streams and
// retired). Evidence is compared as JSON: an invalid UTF-8 byte comes back
// as U+FFFD.
void CheckSameNode(const NodeState& a, const NodeState& b) {
  CHECK(a.first_height == b.first_height);
  CHECK(a.last_height == b.last_height);
  CHECK(a.last_advance == b.last_advance);
  CHECK(a.stall_base == b.stall_base);
  CHECK(a.commits == b.commits);
  CHECK(a.longest_gap == b.longest_gap);
  CHECK(a.stalled == b.stalled);
  CHECK(a.stall_pending == b.stall_pending);
  CHECK(a.failed == b.failed);
  CHECK(a.failed_height == b.failed_height);
  CHECK(a.syncing == b.syncing);
  CHECK(a.sync_since == b.sync_since);
  CHECK(a.lagging == b.lagging);
  CHECK(a.was_in_consensus == b.was_in_consensus);
  CHECK(a.upgrade_height == b.upgrade_height);
  CHECK(a.ooc == b.ooc);
  CHECK(a.ooc_since == b.ooc_since);
  CHECK(a.ooc_reason == b.ooc_reason);
  CHECK(a.ooc_total == b.ooc_total);
  CHECK(a.period_open == b.period_open);
  CHECK(a.period_start == b.period_start);
  CHECK(a.period_reason == b.period_reason);
  CHECK(a.back_since == b.back_since);
  CHECK(a.banned == b.banned);
  CHECK(a.ban_held == b.ban_held);
  CHECK(a.banned_at == b.banned_at);
  CHECK(a.bans == b.bans);
  CHECK(a.signer == b.signer);
  CHECK(a.validator == b.validator);
  CHECK(a.first_vote_height == b.first_vote_height);
  CHECK(a.own_precommit == b.own_precommit);
  CHECK(a.last_judged == b.last_judged);
  CHECK(a.missed_ring == b.missed_ring);
  CHECK(a.missed_ring_pos == b.missed_ring_pos);
  CHECK(a.missed_in_window == b.missed_in_window);
  CHECK(a.missed_total == b.missed_total);
  CHECK(a.last_double_sign_height == b.last_double_sign_height);
  CHECK(a.first_seen == b.first_seen);
  CHECK(a.last_seen == b.last_seen);
  CHECK(a.successor_open == b.successor_open);
  CHECK(a.replaced_by == b.replaced_by);
  for (size_t i = 0; i < a.evidence.size(); ++i) {
    CHECK(JsonString(a.evidence[i]) == JsonString(b.evidence[i]));
  }
  CHECK(a.evidence_next == b.evidence_next);
  CHECK(a.lines_read == b.lines_read);
  CHECK(a.lines_matched == b.lines_matched);
  CHECK(a.lines_rejected == b.lines_rejected);
}

void CheckSameChain(const ChainState& a, const ChainState& b) {
  CHECK(a.head == b.head);
  CHECK(a.halted == b.halted);
  CHECK(a.halt_height == b.halt_height);
  CHECK(a.halted_at == b.halted_at);
  CHECK(a.votes_pruned_at == b.votes_pruned_at);
  CHECK(a.votes.size() == b.votes.size());
}

// Events from `from` on, in a canonical order (node indexes may differ).
std::vector<std::string> Canonical(const std::vector<Event>& events, size_t from = 0) {
  std::vector<std::string> r;
  for (size_t i = from; i < events.size(); ++i) r.push_back(Describe(events[i]));
  std::sort(r.begin(), r.end());
  return r;
}

void CheckSameEvents(const std::vector<std::string>& want, const std::vector<std::string>& got) {
  CHECK(want.size() == got.size());
  for (size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
    if (want[i] != got[i]) {
      CAPTURE(i);
      CHECK(want[i] == got[i]);
      break;
    }
  }
}

std::string ReplaceFirst(std::string s, const std::string& from, const std::string& to) {
  size_t p = s.find(from);
  REQUIRE_MESSAGE(p != std::string::npos, "no '" << from << "' in the state");
  s.replace(p, from.size(), to);
  return s;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  size_t p = s.find(from);
  REQUIRE_MESSAGE(p != std::string::npos, "no '" << from << "' in the state");
  for (; p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// The original world at the snapshot, and its state (built once).
struct Snapshot {
  std::string json;
  std::vector<std::string> after_events;  // canonical, from the snapshot on
  std::string final_json;
  size_t val_a_votes = 0;
};

const Snapshot& TheSnapshot() {
  static const Snapshot snap = [] {
    Snapshot s;
    World w(AllNodes());
    Before(w);
    s.json = EncodeState(*w.det);
    for (const auto& [key, seen] : w.Chain("cosmoshub").votes) {
      if (seen.node == w.Index("val-a")) ++s.val_a_votes;
    }
    size_t mark = w.out.events.size();
    After(w);
    s.after_events = Canonical(w.out.events, mark);
    s.final_json = EncodeState(*w.det);
    return s;
  }();
  return snap;
}

}  // namespace

// ===========================================================================

TEST_CASE("state: the scenario reaches the rich state the round trip needs") {
  World w(AllNodes());
  Before(w);

  const NodeState& c = w.Node("node-c");
  CHECK(c.banned);
  CHECK(c.banned_at == S(1920));
  CHECK(c.period_start == S(120));
  CHECK(c.stalled);

  const NodeState& d = w.Node("node-d");
  CHECK(d.ban_held);
  CHECK_FALSE(d.banned);
  CHECK(d.failed);
  CHECK(d.period_start == S(130));
  CHECK(w.Of(EventKind::kBan, "node-d").size() == 1);  // the held one

  const NodeState& e = w.Node("node-e");
  CHECK(e.stalled);
  CHECK(e.ooc);
  CHECK(e.period_open);
  CHECK_FALSE(e.banned);
  CHECK_FALSE(e.ban_held);
  CHECK(e.period_start == S(1860));
  CHECK(e.evidence[static_cast<size_t>((e.evidence_next + kEvidenceLines - 1) % kEvidenceLines)]
            .find("ünïcødé") != std::string::npos);

  const NodeState& a = w.Node("val-a");
  CHECK(a.missed_in_window >= 3);
  CHECK(a.missed_total > 3);

  const NodeState& b = w.Node("sentry-b");
  CHECK(b.signer);
  CHECK(b.validator == kValL);
  CHECK(b.first_vote_height == 300);

  const NodeState& idle = w.Node("idle");
  CHECK(idle.syncing);
  CHECK(idle.last_advance == kNoTime);

  CHECK(w.Chain("osmosis").halted);
  CHECK(w.Chain("osmosis").halted_at == S(360));
  CHECK(w.Chain("cosmoshub").votes.size() > 100);
}

TEST_CASE("state: encode, decode into a fresh detector, encode again gives the same JSON") {
  const Snapshot& snap = TheSnapshot();
  const std::string& json = snap.json;
  CHECK(IsValidUtf8(json));
  CHECK(json.rfind("{\"version\":1,", 0) == 0);
  CHECK(json.find("\"cosmoshub|cosmos/val-a\":{") != std::string::npos);
  CHECK(json.find("\"cosmoshub|node-e\":{") != std::string::npos);  // no namespace
  CHECK(json.find("\"last_advance\":null") != std::string::npos);   // idle: kNoTime
  CHECK(json.find("\\\"ünïcødé ✓ \\\\ «ok»\\\"") != std::string::npos);
  CHECK(json.find("\"open_streams\"") == std::string::npos);
  CHECK(json.find("\"retired\"") == std::string::npos);

  World fresh(AllNodes());
  auto r = DecodeState(json, fresh.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(EncodeState(*fresh.det) == json);

  // Field by field against the original (same add order: same indexes).
  World original(AllNodes());
  Before(original);
  for (const auto& d : AllNodes()) {
    CAPTURE(d.name);
    CheckSameNode(original.Node(d.name), fresh.Node(d.name));
  }
  for (const char* chain : {"cosmoshub", "osmosis"}) {
    CAPTURE(chain);
    CheckSameChain(original.Chain(chain), fresh.Chain(chain));
    for (const auto& [key, seen] : original.Chain(chain).votes) {
      auto it = fresh.Chain(chain).votes.find(key);
      REQUIRE(it != fresh.Chain(chain).votes.end());
      CHECK(it->second.node == seen.node);
      CHECK(it->second.block_id == seen.block_id);
    }
  }
  // node-c's evidence held an invalid byte: it comes back as U+FFFD.
  CHECK(original.Node("node-c").evidence[0].find('\xff') != std::string::npos);
  CHECK(fresh.Node("node-c").evidence[0].find("\xEF\xBF\xBD") != std::string::npos);

  // A few fields, directly.
  CHECK(fresh.Node("node-e").period_start == S(1860));
  CHECK(fresh.Node("node-c").banned_at == S(1920));
  CHECK(fresh.Node("idle").last_advance == kNoTime);
  CHECK(fresh.Node("idle").stall_base == kNoTime);
  CHECK(fresh.Node("sentry-b").validator == kValL);
  CHECK(fresh.Node("val-a").open_streams == 1);
  CHECK(fresh.Node("val-a").spec.validator_address == kValA);
  CHECK(fresh.Chain("osmosis").halted_at == S(360));

  // Decoding its own state again changes nothing.
  r = DecodeState(json, fresh.det.get());
  REQUIRE(r.has_value());
  CHECK(EncodeState(*fresh.det) == json);
}

TEST_CASE("state: one chain's part (the Kafka changelog's value) sets that chain alone") {
  const Snapshot& snap = TheSnapshot();
  auto whole = ParseJson(snap.json);
  REQUIRE(whole.has_value());
  World original(AllNodes());
  Before(original);
  const World untouched(AllNodes());

  const nlohmann::ordered_json part = ChainStateJson(*whole, "osmosis");
  CHECK(part["chains"].size() == 1);
  CHECK(part["chains"].contains("osmosis"));
  size_t osmosis_nodes = 0;
  for (const auto& d : AllNodes()) osmosis_nodes += d.chain == "osmosis" ? 1 : 0;
  REQUIRE(osmosis_nodes > 0);
  CHECK(part["nodes"].size() == osmosis_nodes);
  for (const auto& [key, v] : part["nodes"].items()) CHECK(key.rfind("osmosis|", 0) == 0);
  CHECK(part["holds"] == (*whole)["holds"]);

  // Into a fresh detector: osmosis as in the original, cosmoshub as fresh.
  World fresh(AllNodes());
  auto r = DecodeStateJson(part, fresh.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  for (const auto& d : AllNodes()) {
    CAPTURE(d.name);
    CheckSameNode(d.chain == "osmosis" ? original.Node(d.name) : untouched.Node(d.name),
                  fresh.Node(d.name));
  }
  CheckSameChain(original.Chain("osmosis"), fresh.Chain("osmosis"));
  CheckSameChain(untouched.Chain("cosmoshub"), fresh.Chain("cosmoshub"));

  // The other chain's part completes it: the whole state, byte for byte.
  r = DecodeStateJson(ChainStateJson(*whole, "cosmoshub"), fresh.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(EncodeState(*fresh.det) == snap.json);

  // A chain the state does not have: its part holds nothing of the others.
  const nlohmann::ordered_json none = ChainStateJson(*whole, "osmo");  // a prefix of a name
  CHECK(none["chains"].empty());
  CHECK(none["nodes"].empty());
}

TEST_CASE("state: a restored detector goes on deciding exactly as the original") {
  const Snapshot& snap = TheSnapshot();
  World fresh(AllNodes());
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  After(fresh);

  CheckSameEvents(snap.after_events, Canonical(fresh.out.events));
  CHECK(EncodeState(*fresh.det) == snap.final_json);

  // The ban timer goes on: node-e's period began at 1860 s, before the
  // restart; its ban comes 30 min after that, not 30 min after the restart.
  auto bans_e = fresh.Of(EventKind::kBan, "node-e");
  REQUIRE(bans_e.size() == 1);
  CHECK(bans_e[0].time == S(1860) + 30 * 60 * kSecond);
  CHECK(Detail(bans_e[0], "since") == std::string("\"2023-11-14T22:44:20.000Z\""));

  // node-c's unban (10 min after it is back at 2502 s) decides node-d's
  // held ban.
  auto unban_c = fresh.Of(EventKind::kUnban, "node-c");
  REQUIRE(unban_c.size() == 1);
  CHECK(unban_c[0].time == S(3102));
  auto bans_d = fresh.Of(EventKind::kBan, "node-d");
  REQUIRE(bans_d.size() == 1);
  CHECK(bans_d[0].time == S(3102));

  // The vote map came back: node-c signing as kValL at 400 conflicts with
  // sentry-b's saved vote.
  bool conflict = false;
  for (const auto& e : fresh.Of(EventKind::kDoubleSignRisk, "node-c")) {
    if (Detail(e, "reason") == std::string("\"conflicting_votes\"") &&
        Detail(e, "other_node") == std::string("\"sentry-b\"")) {
      conflict = true;
    }
  }
  CHECK(conflict);

  // The halt came back: the resume carries the saved halt time in its id.
  auto resumed = fresh.Of(EventKind::kChainResumed, "");
  REQUIRE(!resumed.empty());
  CHECK(resumed[0].time == S(3000));
  CHECK(resumed[0].id == MakeEventId("osmosis", "", EventKind::kChainResumed, Ms(S(360))));
}

TEST_CASE("state: nodes are matched by key, not by index") {
  const Snapshot& snap = TheSnapshot();
  auto defs = AllNodes();
  std::reverse(defs.begin(), defs.end());
  World fresh(defs);
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  CHECK(EncodeState(*fresh.det) == snap.json);
  After(fresh);
  CheckSameEvents(snap.after_events, Canonical(fresh.out.events));
  CHECK(EncodeState(*fresh.det) == snap.final_json);
}

TEST_CASE("state: a node added after the decode takes its saved state") {
  const Snapshot& snap = TheSnapshot();
  World fresh(Without(AllNodes(), "node-e"));
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  CHECK(fresh.det->node_count() == AllNodes().size() - 1);

  int e = fresh.Add(Def("node-e"));
  const NodeState& n = fresh.det->node(e);
  CHECK(n.period_open);
  CHECK(n.ooc);
  CHECK(n.stalled);
  CHECK(n.period_start == S(1860));
  CHECK(n.open_streams == 1);
  CHECK(n.spec.thresholds.max_bans == 2);
  CHECK(n.evidence[static_cast<size_t>((n.evidence_next + kEvidenceLines - 1) % kEvidenceLines)]
            .find("ünïcødé") != std::string::npos);
  CHECK(EncodeState(*fresh.det) == snap.json);

  After(fresh);
  CheckSameEvents(snap.after_events, Canonical(fresh.out.events));
  auto bans = fresh.Of(EventKind::kBan, "node-e");
  REQUIRE(bans.size() == 1);
  CHECK(bans[0].time == S(1860) + 30 * 60 * kSecond);
}

TEST_CASE("state: a node not back yet keeps its saved state through the next checkpoint") {
  const Snapshot& snap = TheSnapshot();
  World fresh(Without(AllNodes(), "node-e"));
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  // A checkpoint written before node-e's file reappears still holds it...
  std::string again = EncodeState(*fresh.det);
  CHECK(again.find("node-e\":{") != std::string::npos);
  World later(Without(AllNodes(), "node-e"));
  REQUIRE(DecodeState(again, later.det.get()).has_value());
  // ...so when it does come back after a second restart, its period goes on.
  int e = later.Add(Def("node-e"));
  CHECK(later.det->node(e).period_open);
  CHECK(later.det->node(e).period_start == S(1860));
}

TEST_CASE("state: votes of a node missing at decode time are dropped") {
  const Snapshot& snap = TheSnapshot();
  World fresh(Without(AllNodes(), "sentry-b"));
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  const ChainState& c = fresh.Chain("cosmoshub");
  CHECK(c.votes.size() == snap.val_a_votes);
  for (const auto& [key, seen] : c.votes) CHECK(seen.node == fresh.Index("val-a"));

  // Its node state still comes back when it is added.
  int b = fresh.Add(Def("sentry-b"));
  CHECK(fresh.det->node(b).validator == kValL);
  CHECK(fresh.det->node(b).signer);
  CHECK(fresh.det->node(b).first_vote_height == 300);
}

TEST_CASE("state: spec, streams and a changed missed window of a present node") {
  const Snapshot& snap = TheSnapshot();
  World original(AllNodes());
  REQUIRE(DecodeState(snap.json, original.det.get()).has_value());

  auto defs = AllNodes();
  for (auto& d : defs) {
    if (d.name == "val-a") {
      d.missed_window = 20;
      d.streams = 2;
    }
  }
  World fresh(defs);
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  const NodeState& a = fresh.Node("val-a");
  CHECK(a.open_streams == 2);
  CHECK_FALSE(a.retired);
  CHECK(a.spec.thresholds.missed_window == 20);
  CHECK(a.missed_ring.size() == 20u);
  CHECK(std::count(a.missed_ring.begin(), a.missed_ring.end(), 1) == 0);
  CHECK(a.missed_ring_pos == 0);
  CHECK(a.missed_in_window == 0);
  CHECK(a.missed_total == original.Node("val-a").missed_total);
  CHECK(a.last_judged == original.Node("val-a").last_judged);
  CHECK(a.own_precommit == original.Node("val-a").own_precommit);

  // The unchanged window keeps its ring.
  CHECK(original.Node("val-a").missed_ring.size() == 10u);
  CHECK(original.Node("val-a").missed_in_window >= 3);
}

TEST_CASE("state: unknown chains are ignored") {
  const Snapshot& snap = TheSnapshot();
  std::vector<NodeDef> defs;
  for (const auto& d : AllNodes()) {
    if (d.chain == "cosmoshub") defs.push_back(d);
  }
  World fresh(defs, {"cosmoshub", "polkadot"});
  REQUIRE(DecodeState(snap.json, fresh.det.get()).has_value());
  CHECK(fresh.Chain("cosmoshub").head == 400);
  CHECK(fresh.Chain("polkadot").head == -1);
  CHECK_FALSE(fresh.Chain("polkadot").halted);
  std::string json = EncodeState(*fresh.det);
  CHECK(json.find("\"osmosis\"") == std::string::npos);
  CHECK(json.find("\"polkadot\":{\"head\":-1,") != std::string::npos);
}

TEST_CASE("state: an empty state is valid and changes nothing") {
  World w(AllNodes());
  Before(w);
  std::string before = EncodeState(*w.det);
  auto r = DecodeState("{\"version\":1,\"chains\":{},\"nodes\":{}}", w.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(EncodeState(*w.det) == before);
}

TEST_CASE("state: malformed input fails with a reason and leaves the detector as it was") {
  const Snapshot& snap = TheSnapshot();
  const std::string& json = snap.json;
  World w(AllNodes());
  Before(w);
  // Some other state, so a partial application would show.
  REQUIRE(DecodeState(snap.json, w.det.get()).has_value());
  After(w);
  const std::string before = EncodeState(*w.det);

  auto expect_error = [&](const std::string& input, const std::string& label) {
    CAPTURE(label);
    auto r = DecodeState(input, w.det.get());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.rfind("state: ", 0) == 0);
    CHECK(EncodeState(*w.det) == before);
    return r.error().message;
  };

  // Not JSON, or not the document.
  expect_error("", "empty");
  expect_error("   ", "blank");
  expect_error("not json", "text");
  expect_error("{", "brace");
  expect_error("null", "null");
  expect_error("[]", "array");
  expect_error("42", "number");
  expect_error("{\"version\":1}", "no chains or nodes");
  expect_error("{\"version\":1,\"chains\":{},\"nodes\":{\"\xff\":{}}}", "invalid UTF-8");
  expect_error("{\"version\":1,\"chains\":{},\"nodes\":{\"x\":{}}}", "empty node");
  expect_error("{\"version\":1,\"chains\":{\"c\":[]},\"nodes\":{}}", "chain not an object");
  expect_error(json + "x", "trailing garbage");

  // Wrong version.
  CHECK(expect_error(ReplaceFirst(json, "\"version\":1", "\"version\":2"), "version 2")
            .find("version") != std::string::npos);
  expect_error(ReplaceFirst(json, "\"version\":1", "\"version\":\"1\""), "version string");

  // Wrong types and values (an unknown key "zz" keeps the JSON valid).
  struct Mutation {
    const char* from;
    const char* to;
  };
  const Mutation mutations[] = {
      {"\"nodes\":{", "\"nodes\":[],\"zz\":{"},
      {"\"chains\":{", "\"chains\":7,\"zz\":{"},
      {"\"last_height\":", "\"last_height\":\"x\",\"zz\":"},
      {"\"last_height\":", "\"last_height\":-2,\"zz\":"},
      {"\"halted\":", "\"halted\":1,\"zz\":"},
      {"\"halted_at\":", "\"halted_at\":\"now\",\"zz\":"},
      {"\"commits\":", "\"commits\":1.5,\"zz\":"},
      {"\"commits\":", "\"commits\":1e400,\"zz\":"},
      {"\"commits\":", "\"commits\":99999999999999999999999,\"zz\":"},
      {"\"commits\":", "\"commits\":9223372036854775808,\"zz\":"},
      {"\"lines_read\":", "\"lines_read\":-1,\"zz\":"},
      {"\"lines_read\":", "\"lines_read\":18446744073709551616,\"zz\":"},
      {"\"bans\":", "\"bans\":4294967296,\"zz\":"},
      {"\"bans\":", "\"bans_renamed\":"},
      {"\"last_advance\":", "\"last_advance\":true,\"zz\":"},
      {"\"longest_gap\":", "\"longest_gap\":null,\"zz\":"},
      {"\"ooc_reason\":", "\"ooc_reason\":null,\"zz\":"},
      {"\"missed_ring\":\"", "\"missed_ring\":\"2"},
      {"\"missed_ring\":", "\"missed_ring\":\"\",\"zz\":"},
      {"\"missed_ring\":", "\"missed_ring\":[0,1],\"zz\":"},
      {"\"missed_ring_pos\":", "\"missed_ring_pos\":100000,\"zz\":"},
      {"\"missed_in_window\":", "\"missed_in_window\":-1,\"zz\":"},
      {"\"evidence_next\":", "\"evidence_next\":6,\"zz\":"},
      {"\"evidence\":[", "\"evidence\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\","},
      {"\"evidence\":[\"\"", "\"evidence\":[3"},
      {"\"own_precommit\":[[", "\"own_precommit\":[[256,1],["},
      {"\"own_precommit\":[[", "\"own_precommit\":[[1],["},
      {"\"own_precommit\":[[", "\"own_precommit\":[\"x\",["},
      {"\"own_precommit\":", "\"own_precommit\":{},\"zz\":"},
      {"\"votes\":", "\"votes\":{},\"zz\":"},
      {"\"type\":", "\"type\":9,\"zz\":"},
      {"\"round\":", "\"round\":-5,\"zz\":"},
      {"\"node\":", "\"node\":5,\"zz\":"},
      {"\"block_id\":", "\"block_id_renamed\":"},
  };
  for (const auto& m : mutations) {
    expect_error(ReplaceFirst(json, m.from, m.to), m.from + std::string(" -> ") + m.to);
  }
  // States the detector never produces.
  expect_error(ReplaceAll(json, "\"period_start\":", "\"period_start\":null,\"zz\":"),
               "period_open without period_start");
  expect_error(ReplaceAll(json, "\"banned_at\":", "\"banned_at\":null,\"zz\":"),
               "banned without banned_at");
  expect_error(ReplaceAll(json, "\"halted_at\":", "\"halted_at\":null,\"zz\":"),
               "halted without halted_at");

  // The reason names the field.
  std::string msg = expect_error(ReplaceFirst(json, "\"last_height\":", "\"last_height\":\"x\",\"zz\":"),
                                 "named");
  CHECK(msg.find("last_height") != std::string::npos);
  CHECK(msg.find("cosmoshub|cosmos/idle") != std::string::npos);

  // Truncated anywhere.
  // Every length near both ends, about a thousand between.
  const size_t stride = std::max<size_t>(1, json.size() / 1000);
  for (size_t len = 0; len < json.size(); len += (len < 200 || json.size() - len < 200) ? 1 : stride) {
    CAPTURE(len);
    auto r = DecodeState(json.substr(0, len), w.det.get());
    REQUIRE_FALSE(r.has_value());
  }
  CHECK(EncodeState(*w.det) == before);

  // Still usable: it goes on, and a valid state still decodes.
  w.Tick(S(kEnd + 100));
  w.Commit("val-a", S(kEnd + 101), 2000);
  CHECK(w.Node("val-a").last_height == 2000);
  auto r = DecodeState(snap.json, w.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(EncodeState(*w.det) == snap.json);
}

TEST_CASE("state: damaged bytes never crash the decoder or the detector") {
  const Snapshot& snap = TheSnapshot();
  const std::string& json = snap.json;
  const char replacements[] = {'"', '{', '}', '[', ']', ',', ':', '9', '-', 'x', '\0', '\\'};
  // 400 places, three of the replacements at each in turn (all twelve come
  // round every four places): broad enough to reach every kind of field, and
  // cheap enough for the sanitizer build, where each decode is ~30x slower.
  // The state fuzz target covers the rest.
  const size_t stride = std::max<size_t>(1, json.size() / 400);
  size_t decoded = 0, failed = 0, place = 0;
  for (size_t pos = 0; pos < json.size(); pos += stride, ++place) {
    for (size_t k = 0; k < 3; ++k) {
      const char c = replacements[(place * 3 + k) % sizeof replacements];
      std::string damaged = json;
      damaged[pos] = c;
      World w(AllNodes());
      auto r = DecodeState(damaged, w.det.get());
      if (r.has_value()) {
        ++decoded;
        // Whatever came in, the detector runs on.
        w.Tick(S(kEnd));
        w.Commit("val-a", S(kEnd), 5000);
        w.Tick(S(kEnd + 7200));
      } else {
        ++failed;
        CHECK(r.error().message.rfind("state: ", 0) == 0);
      }
    }
  }
  CHECK(failed > 0);
  CHECK(decoded > 0);
}

TEST_CASE("state: operator holds and the delivery fields survive the round trip") {
  World w(AllNodes());
  Before(w);
  w.det->SetHold("cosmos/val-a", true, kNoTime);
  w.det->SetHold("node-e", true, kNoTime);
  std::string json = EncodeState(*w.det);
  CHECK(json.find("\"holds\":[\"cosmos/val-a\",\"node-e\"]") != std::string::npos);
  CHECK(json.find("\"ban_held_rail\":\"") != std::string::npos);
  CHECK(json.find("\"failed_at\":") != std::string::npos);
  World fresh(AllNodes());
  auto r = DecodeState(json, fresh.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(fresh.det->holds() == w.det->holds());
  CHECK(fresh.Node("node-d").ban_held_rail == w.Node("node-d").ban_held_rail);
  CHECK(fresh.Node("node-d").failed_at == w.Node("node-d").failed_at);
  CHECK(fresh.Node("node-d").failed_at != kNoTime);
  CHECK(EncodeState(*fresh.det) == json);
}

TEST_CASE("state: a checkpoint written before the delivery fields existed still decodes") {
  const Snapshot& snap = TheSnapshot();
  std::string old = snap.json;
  for (const char* key : {"\"failed_at\":", "\"ban_held_rail\":", "\"double_sign_at\":",
                          "\"double_sign_critical\":", "\"double_sign_reason\":"}) {
    // Drop every ,"key":value (values here are null, numbers, booleans or
    // plain strings without commas).
    for (size_t p = old.find(key); p != std::string::npos; p = old.find(key)) {
      size_t start = p - 1;  // the comma before
      size_t end = old.find_first_of(",}", p + std::strlen(key) + 1);
      if (old[p + std::strlen(key)] == '"') end = old.find('"', p + std::strlen(key) + 1) + 1;
      old.erase(start, end - start);
    }
  }
  old = ReplaceFirst(old, ",\"holds\":[]", "");
  CHECK(old.find("failed_at") == std::string::npos);
  World fresh(AllNodes());
  auto r = DecodeState(old, fresh.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(fresh.Node("node-c").banned);
  CHECK(fresh.det->holds().empty());
}

TEST_CASE("state: the document form goes into a checkpoint and back without text") {
  const Snapshot& snap = TheSnapshot();
  World w(AllNodes());
  Before(w);
  nlohmann::ordered_json doc = EncodeStateJson(*w.det);
  CHECK(DumpJson(doc) == snap.json);

  // Embedded in a larger document next to other keys, as the checkpoint
  // does, and decoded from there: numbers built in memory are signed
  // (parsed ones unsigned), and both decode alike.
  nlohmann::ordered_json checkpoint = {{"version", 2}, {"streams", nlohmann::ordered_json::array()}};
  checkpoint["detector"] = doc;
  World fresh(AllNodes());
  auto r = DecodeStateJson(checkpoint["detector"], fresh.det.get());
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(EncodeState(*fresh.det) == snap.json);
  // node-c's evidence held an invalid byte: the document already has U+FFFD.
  CHECK(doc["nodes"]["cosmoshub|cosmos/node-c"]["evidence"][0].get<std::string>().find("\xEF\xBF\xBD") !=
        std::string::npos);

  // The document form refuses what the text form refuses, with a reason.
  World other(AllNodes());
  Before(other);
  const std::string before = EncodeState(*other.det);
  for (const auto& bad : {nlohmann::ordered_json(nullptr), nlohmann::ordered_json::array(),
                          nlohmann::ordered_json{{"version", 1}}}) {
    auto e = DecodeStateJson(bad, other.det.get());
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error().message.rfind("state: ", 0) == 0);
  }
  nlohmann::ordered_json wrong = doc;
  wrong["nodes"]["cosmoshub|cosmos/val-a"]["lines_read"] = -3;
  auto e = DecodeStateJson(wrong, other.det.get());
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error().message.find("nodes[\"cosmoshub|cosmos/val-a\"].lines_read") != std::string::npos);
  CHECK(EncodeState(*other.det) == before);
}

TEST_CASE("state: text that is not JSON fails with the parser's reason and position") {
  World w(AllNodes());
  auto r = DecodeState("{\"version\":1,\n\"nodes\":{,}}", w.det.get());
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.rfind("state: not valid JSON (", 0) == 0);
  CHECK(r.error().message.find("line 2") != std::string::npos);
}
