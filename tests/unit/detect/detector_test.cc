// Unit tests of the detector (src/detect/detector.cc) against the rules of
// docs/DETECTION.md ("Per node", "Per chain", "Bans", "Heights on events")
// and the events contract of README.md ("Events"). One file of ~1400 lines,
// in DETECTION.md's order: every case shares the fixture below.
//
// Everything is driven by explicit event times: no clock, no sleeps. The
// fixture below owns one chain ("cosmoshub", family "cometbft") and feeds
// signals the way the pipeline does: OnTick(t) first, then OnSignal at t,
// with times that never decrease.
#include <doctest/doctest.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/event.h"
#include "common/signal.h"
#include "common/time.h"
#include "detect/detector.h"
#include "detect/node_state.h"
#include "detect/state_codec.h"
#include "detect/thresholds.h"

using namespace qw;
using namespace qw::detect;

namespace {

// ---------------------------------------------------------------------------
// Times

constexpr Nanos kT0 = 1'700'000'000 * kSecond;  // 2023-11-14T22:13:20Z
constexpr Nanos kBlock = 6 * kSecond;
constexpr Nanos kMinute = 60 * kSecond;

// Time `s` seconds after kT0.
constexpr Nanos S(int64_t s) { return kT0 + s * kSecond; }
constexpr int64_t Ms(Nanos t) { return t / kMillisecond; }

constexpr const char* kChain = "cosmoshub";
constexpr const char* kNamespace = "cosmos";
const std::string kValA = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12";
const std::string kValL = "99887766554433221100FFEEDDCCBBAA99887766";

// ---------------------------------------------------------------------------
// Fixture

class Collector : public EventOutput {
 public:
  void Emit(Event e) override { events.push_back(std::move(e)); }
  std::vector<Event> events;
};

std::string Describe(const Event& e) {
  std::string s;
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

// A detail string value without its quotes.
std::string DetailStr(const Event& e, std::string_view key) {
  std::string v = Detail(e, key);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

bool IsHexId(const std::string& id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Thresholds Defaults() { return Thresholds{}; }

// Defaults, but a max_lag no test reaches: a stopped node of a live chain is
// then only stalled (with the default max_lag of 5 it is lagging first, 6
// blocks = 36 s after it stops; see "lagging: a stopped node ...").
Thresholds NoLag() {
  Thresholds t;
  t.max_lag = 1000;
  return t;
}

struct Fx {
  explicit Fx(Thresholds t = Defaults(), std::vector<std::vector<std::string>> groups = {})
      : thresholds(t) {
    ChainSpec c;
    c.name = kChain;
    c.family = "cometbft";
    c.thresholds = t;
    c.signer_groups = std::move(groups);
    std::vector<ChainSpec> chains;
    chains.push_back(std::move(c));
    det = std::make_unique<Detector>(std::move(chains), &out);
  }

  // Adds a node of the chain with `streams` attached streams.
  int Add(const std::string& name, bool signer = false, const std::string& validator = "",
          int streams = 1) {
    NodeSpec spec;
    spec.name = name;
    spec.namespace_ = kNamespace;
    spec.chain = 0;
    spec.signer = signer;
    spec.validator_address = validator;
    spec.thresholds = thresholds;
    int n = det->AddNode(std::move(spec));
    for (int i = 0; i < streams; ++i) det->AttachStream(n);
    names.push_back(name);
    return n;
  }

  void Tick(Nanos t) {
    REQUIRE(t >= clock);
    clock = t;
    det->OnTick(t);
  }

  void Send(int n, Nanos t, const Signal& s, const std::string& line) {
    Tick(t);
    det->OnSignal(n, t, s, line);
  }

  std::string CommitLine(int n, int64_t h) const {
    return names[static_cast<size_t>(n)] + " committed height=" + std::to_string(h);
  }

  void Commit(int n, Nanos t, int64_t h) {
    Signal s;
    s.kind = SignalKind::kBlockCommitted;
    s.height = h;
    Send(n, t, s, CommitLine(n, h));
  }

  // The node commits the chain head (catches up after a stall or a lag).
  void CatchUp(int n, Nanos t) { Commit(n, t, det->chain(0).head); }

  void Vote(int n, Nanos t, int64_t h, VoteType type, const std::string& validator,
            const std::string& block_id, int64_t round = 0) {
    Signal s;
    s.kind = SignalKind::kVoteSigned;
    s.height = h;
    s.round = round;
    s.vote_type = type;
    s.type_raw = VoteTypeName(type);
    s.validator = validator;
    s.block_id = block_id;
    Send(n, t, s,
         names[static_cast<size_t>(n)] + " signed vote height=" + std::to_string(h) +
             " block=" + block_id);
  }

  void Precommit(int n, Nanos t, int64_t h, const std::string& validator) {
    Vote(n, t, h, VoteType::kPrecommit, validator, "BLOCK" + std::to_string(h));
  }

  void Detach(int n, Nanos t) {
    Tick(t);
    det->DetachStream(n, t);
  }

  // Block production: every node in `live` commits one height per 6 s block,
  // block times and heights continuing from the previous call (kT0 / 100 at
  // first), up to and including `until`; then the clock ticks to `until`.
  // Blocks before the current clock are skipped (heights stay time-based).
  void Advance(Nanos until, std::initializer_list<int> live) {
    while (next_t < clock) {
      next_t += kBlock;
      ++next_h;
    }
    for (; next_t <= until; next_t += kBlock, ++next_h) {
      for (int n : live) Commit(n, next_t, next_h);
    }
    Tick(until);
  }

  std::vector<Event> Of(EventKind k, std::string_view node = "*") const {
    std::vector<Event> r;
    for (const auto& e : out.events) {
      if (e.kind == k && (node == "*" || e.node == node)) r.push_back(e);
    }
    return r;
  }
  size_t Count(EventKind k, std::string_view node = "*") const { return Of(k, node).size(); }
  size_t CountNode(std::string_view node) const {
    return static_cast<size_t>(std::count_if(out.events.begin(), out.events.end(),
                                             [&](const Event& e) { return e.node == node; }));
  }

  std::string Dump() const {
    std::string s = "events:\n";
    for (const auto& e : out.events) s += "  " + Describe(e) + "\n";
    return s;
  }

  NodeSummary SummaryOf(const std::string& node) const {
    for (const auto& s : det->Summary()) {
      if (s.node == node) return s;
    }
    FAIL("no summary for " << node);
    return {};
  }

  Thresholds thresholds;
  Collector out;
  std::unique_ptr<Detector> det;
  std::vector<std::string> names;
  Nanos clock = kT0 - kSecond;
  Nanos next_t = kT0;
  int64_t next_h = 100;
};

// Exactly one event of `k` for `node`; copies it out.
Event One(const Fx& fx, EventKind k, std::string_view node) {
  auto v = fx.Of(k, node);
  INFO(fx.Dump());
  REQUIRE_MESSAGE(v.size() == 1u, "expected exactly one " << EventKindName(k) << " for '"
                                                          << node << "', got " << v.size());
  return v[0];
}

}  // namespace

// ===========================================================================
// Healthy chain

TEST_CASE("healthy: nodes committing every 6 s give no events") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(600), {a, b, c});  // blocks 100..200
  INFO(fx.Dump());
  CHECK(fx.out.events.empty());

  // A repeated commit line of the same height is no advance.
  fx.Commit(a, S(601), 200);
  CHECK(fx.out.events.empty());

  fx.det->Finish(S(601));
  for (const char* name : {"a", "b", "c"}) {
    CAPTURE(name);
    NodeSummary s = fx.SummaryOf(name);
    CHECK(s.chain == kChain);
    CHECK(s.family == "cometbft");
    CHECK(s.namespace_ == kNamespace);
    CHECK(s.first_height == 100);
    CHECK(s.last_height == 200);
    CHECK(s.commits == 101);
    CHECK(s.longest_stall_seconds == doctest::Approx(6.0));
    CHECK(s.seconds_out_of_consensus == doctest::Approx(0.0));
    CHECK(s.bans == 0);
    CHECK_FALSE(s.signer);
    CHECK(s.missed_precommits == -1);
    CHECK(s.status == "in_consensus");
  }
}

// ===========================================================================
// Stall

namespace {

// a, b, c commit 100..110 (S(0)..S(60)); a stops at 110; b, c go on to 119
// (S(114)); then one late tick at S(125) (a's deadline S(120) lies between
// ticks); b, c commit 121 at S(126); a catches up (121) at S(130).
void StallScenario(Fx& fx, bool fine_ticks) {
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(60), {a, b, c});
  if (fine_ticks) {
    for (int64_t s = 61; s <= 114; ++s) fx.Advance(S(s), {b, c});
  } else {
    fx.Advance(S(114), {b, c});
  }
  fx.Tick(S(125));
  fx.Advance(S(126), {b, c});
  fx.CatchUp(a, S(130));
}

}  // namespace

TEST_CASE("stall: node_stalled and out_of_consensus at last_advance + stall_after") {
  Fx fx(NoLag());
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(60), {a, b, c});  // a's last advance: 110 at S(60)
  fx.Advance(S(114), {b, c});
  CHECK(fx.out.events.empty());

  SUBCASE("events carry the deadline as their time, even when the next tick is later") {
    fx.Tick(S(125));
    INFO(fx.Dump());
    REQUIRE(fx.out.events.size() == 2u);
    Event st = One(fx, EventKind::kNodeStalled, "a");
    CHECK(st.time == S(120));
    CHECK(st.severity == Severity::kWarning);
    CHECK(st.chain == kChain);
    CHECK(st.namespace_ == kNamespace);
    CHECK(st.height == 110);
    CHECK(IsHexId(st.id));
    Event ooc = One(fx, EventKind::kOutOfConsensus, "a");
    CHECK(ooc.time == S(120));
    CHECK(ooc.severity == Severity::kWarning);
    CHECK(ooc.height == 110);
    CHECK(DetailStr(ooc, "reason") == "stalled");
    // Period events are keyed by the period start (ms).
    CHECK(ooc.id == MakeEventId(kChain, "a", EventKind::kOutOfConsensus, Ms(S(120))));
    CHECK(fx.CountNode("b") == 0u);
    CHECK(fx.CountNode("c") == 0u);

    SUBCASE("the next advance recovers it") {
      fx.Advance(S(126), {b, c});  // 121
      fx.CatchUp(a, S(130));
      INFO(fx.Dump());
      REQUIRE(fx.out.events.size() == 4u);
      Event rec = One(fx, EventKind::kNodeRecovered, "a");
      CHECK(rec.time == S(130));
      CHECK(rec.severity == Severity::kInfo);
      CHECK(rec.height == 121);
      Event back = One(fx, EventKind::kBackInConsensus, "a");
      CHECK(back.time == S(130));
      CHECK(back.severity == Severity::kInfo);
      CHECK(DetailStr(back, "reason") == "stalled");
      CHECK(back.height == 121);  // caused by a commit: that commit's height
      CHECK(back.id == MakeEventId(kChain, "a", EventKind::kBackInConsensus, Ms(S(120))));
      // node_stalled and node_recovered of one stall share their period key.
      const int64_t keys[] = {Ms(S(60)), Ms(S(120))};
      int64_t stall_key = -1, rec_key = -1;
      for (int64_t k : keys) {
        if (st.id == MakeEventId(kChain, "a", EventKind::kNodeStalled, k)) stall_key = k;
        if (rec.id == MakeEventId(kChain, "a", EventKind::kNodeRecovered, k)) rec_key = k;
      }
      CHECK(stall_key != -1);
      CHECK(rec_key == stall_key);

      fx.det->Finish(S(130));
      NodeSummary s = fx.SummaryOf("a");
      CHECK(s.seconds_out_of_consensus == doctest::Approx(10.0));
      CHECK(s.longest_stall_seconds == doctest::Approx(70.0));
      CHECK(s.commits == 12);  // 100..110 and 121
      CHECK(s.last_height == 121);
      CHECK(s.status == "in_consensus");
    }
  }

  SUBCASE("nothing before the deadline") {
    fx.Tick(S(120) - 1);
    CHECK(fx.out.events.empty());
    fx.Tick(S(120));
    CHECK(fx.Count(EventKind::kNodeStalled, "a") == 1u);
  }
}

TEST_CASE("stall: event ids are stable when the same lines are read again") {
  Fx first(NoLag()), second(NoLag()), fine(NoLag());
  StallScenario(first, false);
  StallScenario(second, false);
  StallScenario(fine, true);  // same lines, other tick cadence

  auto key = [](const std::vector<Event>& v) {
    std::vector<std::tuple<Nanos, std::string, std::string, std::string>> r;
    for (const auto& e : v) r.emplace_back(e.time, e.node, std::string(EventKindName(e.kind)), e.id);
    std::sort(r.begin(), r.end());
    return r;
  };
  INFO(first.Dump());
  INFO(fine.Dump());
  REQUIRE(first.Count(EventKind::kNodeStalled, "a") == 1u);
  REQUIRE(first.Count(EventKind::kNodeRecovered, "a") == 1u);
  CHECK(key(first.out.events) == key(second.out.events));
  CHECK(key(first.out.events) == key(fine.out.events));
  // All ids distinct and well-formed.
  std::vector<std::string> ids;
  for (const auto& e : first.out.events) {
    CHECK(IsHexId(e.id));
    ids.push_back(e.id);
  }
  std::sort(ids.begin(), ids.end());
  CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
}

// ===========================================================================
// Chain halt

TEST_CASE("chain halt: all nodes stop within one block") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(54), {a, b, c});  // 109
  fx.Advance(S(60), {a, b});     // a, b: 110 at S(60); c stays at 109 (S(54))

  fx.Tick(S(119));  // c's deadline (S(114)) has passed, a's and b's not
  INFO(fx.Dump());
  CHECK(fx.out.events.empty());

  fx.Tick(S(200));
  REQUIRE(fx.out.events.size() == 1u);
  Event h = One(fx, EventKind::kChainHalted, "");
  CHECK(h.time == S(120));  // when the last of them reached its deadline
  CHECK(h.severity == Severity::kWarning);
  CHECK(h.chain == kChain);
  CHECK(h.node == "");
  CHECK(h.height == 110);   // highest height
  CHECK(IsHexId(h.id));

  // A long halt: still nothing per node (no stall, no out of consensus, no ban).
  fx.Tick(S(3000));
  CHECK(fx.out.events.size() == 1u);
  CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
  CHECK(fx.Count(EventKind::kOutOfConsensus) == 0u);
  CHECK(fx.Count(EventKind::kBan) == 0u);

  SUBCASE("the first advance above the halt height resumes the chain") {
    fx.Commit(c, S(3000), 110);  // not above the halt height
    CHECK(fx.Count(EventKind::kChainResumed) == 0u);
    fx.Commit(a, S(3001), 111);
    Event r = One(fx, EventKind::kChainResumed, "");
    CHECK(r.time == S(3001));
    CHECK(r.severity == Severity::kInfo);
    CHECK(r.height == 111);
    CHECK(r.id != h.id);

    // No immediate false stall for the nodes that have not logged yet.
    fx.Tick(S(3030));
    CHECK(fx.out.events.size() == 2u);
    fx.Commit(b, S(3031), 111);
    fx.Commit(c, S(3032), 111);
    fx.next_t = S(3036);
    fx.next_h = 112;
    fx.Advance(S(3600), {a, b, c});
    INFO(fx.Dump());
    CHECK(fx.out.events.size() == 2u);
  }

  SUBCASE("a node that does not resume is stalled stall_after after the resume") {
    fx.Commit(a, S(3001), 111);
    fx.Commit(b, S(3001), 111);
    fx.next_t = S(3007);
    fx.next_h = 112;
    fx.Advance(S(3060), {a, b});
    CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
    fx.Advance(S(3100), {a, b});
    Event st = One(fx, EventKind::kNodeStalled, "c");
    CHECK(st.time == S(3061));
    CHECK(st.height == 109);
  }
}

TEST_CASE("chain halt: a single visible node's stop is its own stall") {
  Fx fx;
  int a = fx.Add("a");
  fx.Advance(S(60), {a});
  fx.Tick(S(200));
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kChainHalted) == 0u);
  Event st = One(fx, EventKind::kNodeStalled, "a");
  CHECK(st.time == S(120));
  CHECK(st.height == 110);
  CHECK(DetailStr(One(fx, EventKind::kOutOfConsensus, "a"), "reason") == "stalled");
}

TEST_CASE("chain halt: the decision waits for the node with the later deadline") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(54), {a, b});  // 109
  fx.Commit(a, S(60), 110);   // a's deadline S(120)
  fx.Commit(b, S(65), 110);   // b's deadline S(125)

  SUBCASE("both reach their deadline: chain_halted at the later one") {
    fx.Tick(S(120));
    CHECK(fx.out.events.empty());
    fx.Tick(S(125) - 1);
    INFO(fx.Dump());
    CHECK(fx.out.events.empty());
    fx.Tick(S(125));
    REQUIRE(fx.out.events.size() == 1u);
    Event h = One(fx, EventKind::kChainHalted, "");
    CHECK(h.time == S(125));
    CHECK(h.height == 110);
    CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
    CHECK(fx.Count(EventKind::kOutOfConsensus) == 0u);
  }

  SUBCASE("both reach their deadline, seen by one late tick") {
    fx.Tick(S(500));
    INFO(fx.Dump());
    REQUIRE(fx.out.events.size() == 1u);
    CHECK(One(fx, EventKind::kChainHalted, "").time == S(125));
  }

  SUBCASE("the later node advances: the waiting node is stalled at that moment") {
    fx.Tick(S(122));
    CHECK(fx.out.events.empty());
    fx.Commit(b, S(122), 111);  // last advances now 62 s apart: no halt
    INFO(fx.Dump());
    CHECK(fx.Count(EventKind::kChainHalted) == 0u);
    Event st = One(fx, EventKind::kNodeStalled, "a");
    CHECK(st.time == S(122));
    CHECK(st.height == 110);
    Event ooc = One(fx, EventKind::kOutOfConsensus, "a");
    CHECK(ooc.time == S(122));
    CHECK(DetailStr(ooc, "reason") == "stalled");
    CHECK(fx.CountNode("b") == 0u);
  }

  SUBCASE("the later node jumps two blocks within stall_after: not within one block") {
    fx.Commit(b, S(120), 112);  // a is waiting since S(120); heights now 2 apart
    INFO(fx.Dump());
    CHECK(fx.Count(EventKind::kChainHalted) == 0u);
    Event st = One(fx, EventKind::kNodeStalled, "a");
    CHECK(st.time == S(120));
    CHECK(st.height == 110);
  }
}

// ===========================================================================
// Upgrade halt

TEST_CASE("upgrade halt: halts the chain at once at H, no stall or ban, resumes above H") {
  // DETECTION.md: nodes log "finalizing commit" of H, then
  // `UPGRADE "v15" NEEDED at height: H`; the chain is halted at H.
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(60), {a, b});  // both committed 110; the upgrade is at 110

  Signal up;
  up.kind = SignalKind::kUpgradeHalt;
  up.height = 110;
  up.name = "v15";
  const std::string line = "UPGRADE \"v15\" NEEDED at height: 110";
  fx.Send(a, S(61), up, line);

  INFO(fx.Dump());
  REQUIRE(fx.out.events.size() == 2u);
  Event u = One(fx, EventKind::kUpgradeHalt, "a");
  CHECK(u.time == S(61));
  CHECK(u.severity == Severity::kWarning);
  CHECK(u.height == 110);
  CHECK(DetailStr(u, "name") == "v15");
  CHECK(u.id == MakeEventId(kChain, "a", EventKind::kUpgradeHalt, 110));
  Event h = One(fx, EventKind::kChainHalted, "");
  CHECK(h.time == S(61));
  CHECK(h.severity == Severity::kWarning);
  CHECK(h.chain == kChain);
  CHECK(h.height == 110);

  // The other node logs it too: its own upgrade_halt, no second chain_halted.
  fx.Send(b, S(62), up, line);
  Event ub = One(fx, EventKind::kUpgradeHalt, "b");
  CHECK(ub.height == 110);
  CHECK(fx.Count(EventKind::kChainHalted) == 1u);

  // 40 minutes of silence: no stall, no out of consensus, no ban.
  const Nanos t = S(62) + 40 * kMinute;
  fx.Tick(t);
  CHECK(fx.out.events.size() == 3u);

  // The restarted node replays H: no resume.
  fx.Commit(a, t + 1 * kSecond, 110);
  CHECK(fx.Count(EventKind::kChainResumed) == 0u);
  // The first advance above H resumes the chain.
  fx.Commit(a, t + 7 * kSecond, 111);
  Event r = One(fx, EventKind::kChainResumed, "");
  CHECK(r.time == t + 7 * kSecond);
  CHECK(r.height == 111);
  CHECK(r.severity == Severity::kInfo);
  fx.Commit(b, t + 8 * kSecond, 111);
  fx.next_t = t + 13 * kSecond;
  fx.next_h = 112;
  fx.Advance(t + 10 * kMinute, {a, b});
  CHECK(fx.out.events.size() == 4u);
  CHECK(fx.Count(EventKind::kChainResumed) == 1u);
  CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
  CHECK(fx.Count(EventKind::kOutOfConsensus) == 0u);
  CHECK(fx.Count(EventKind::kBan) == 0u);
}

TEST_CASE("upgrade halt: a node logging H only after the halt does not resume the chain") {
  // b had not logged H (111) when a logged the upgrade halt; b's commit of H
  // afterwards is no advance above the halt height.
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(60), {a, b});  // 110
  fx.Commit(a, S(61), 111);
  Signal up;
  up.kind = SignalKind::kUpgradeHalt;
  up.height = 111;
  up.name = "v15";
  fx.Send(a, S(62), up, "UPGRADE \"v15\" NEEDED at height: 111");
  REQUIRE(fx.Count(EventKind::kChainHalted) == 1u);
  fx.Tick(S(62) + 20 * kMinute);
  fx.Commit(b, S(62) + 20 * kMinute, 111);  // b logs 111 late: not a resume
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kChainResumed) == 0u);
  fx.Commit(a, S(62) + 20 * kMinute + 6 * kSecond, 112);
  Event r = One(fx, EventKind::kChainResumed, "");
  CHECK(r.height == 112);
  CHECK(r.time == S(62) + 20 * kMinute + 6 * kSecond);
  CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
}

// ===========================================================================
// Missed precommits

TEST_CASE("missed precommits: judged one block later, info then warning over missed.max") {
  Thresholds t;
  t.missed_window = 10;
  t.missed_max = 2;
  Fx fx(t);
  int v = fx.Add("v", /*signer=*/true, kValA);  // configured signer
  int o = fx.Add("o");                           // never votes: not a signer
  int l = fx.Add("l");                           // learns it signs from its first vote (115)

  auto missed_v = [](int64_t h) { return h == 105 || h == 110 || h == 111 || h == 112; };
  for (int64_t k = 0; k <= 30; ++k) {
    const Nanos at = S(6 * k);
    const int64_t h = 100 + k;
    if (!missed_v(h)) fx.Precommit(v, at, h, kValA);
    if (h >= 115 && h != 120) fx.Precommit(l, at, h, kValL);
    fx.Commit(v, at, h);
    fx.Commit(o, at, h);
    fx.Commit(l, at, h);
  }
  INFO(fx.Dump());

  auto ev = fx.Of(EventKind::kMissedPrecommit, "v");
  std::sort(ev.begin(), ev.end(), EventLess);
  REQUIRE(ev.size() == 4u);
  struct Want {
    int64_t height;
    Nanos time;
    Severity sev;
    const char* in_window;
  };
  const Want want[] = {
      {105, S(36), Severity::kInfo, "1"},
      {110, S(66), Severity::kInfo, "2"},
      {111, S(72), Severity::kWarning, "3"},  // 3 of the last 10 > max 2
      {112, S(78), Severity::kWarning, "4"},
  };
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(ev[i].height == want[i].height);
    CHECK(ev[i].time == want[i].time);  // when height+1 commits
    CHECK(ev[i].severity == want[i].sev);
    CHECK(Detail(ev[i], "missed_in_window") == want[i].in_window);
    CHECK(DetailStr(ev[i], "kind") == "precommit");
    CHECK(DetailStr(ev[i], "validator") == kValA);
    CHECK(ev[i].id == MakeEventId(kChain, "v", EventKind::kMissedPrecommit, want[i].height));
  }

  CHECK(fx.CountNode("o") == 0u);

  // The learned signer is judged from its first vote (115) on: only 120.
  Event lm = One(fx, EventKind::kMissedPrecommit, "l");
  CHECK(lm.height == 120);
  CHECK(lm.time == S(126));
  CHECK(lm.severity == Severity::kInfo);
  CHECK(DetailStr(lm, "validator") == kValL);  // learned from its first vote

  CHECK(fx.out.events.size() == 5u);

  NodeSummary sv = fx.SummaryOf("v"), so = fx.SummaryOf("o"), sl = fx.SummaryOf("l");
  CHECK(sv.signer);
  CHECK(sv.missed_precommits == 4);
  CHECK_FALSE(so.signer);
  CHECK(so.missed_precommits == -1);
  CHECK(sl.signer);
  CHECK(sl.missed_precommits == 1);
}

TEST_CASE("missed precommits: one block of grace for a late own precommit") {
  Fx fx;
  int v = fx.Add("v", true, kValA);
  SUBCASE("a precommit logged a few ms after its commit counts") {
    for (int64_t k = 0; k <= 10; ++k) {
      fx.Commit(v, S(6 * k), 100 + k);
      fx.Precommit(v, S(6 * k) + 5 * kMillisecond, 100 + k, kValA);
    }
    INFO(fx.Dump());
    CHECK(fx.out.events.empty());
    CHECK(fx.SummaryOf("v").missed_precommits == 0);
  }
  SUBCASE("a precommit logged after the next commit is too late") {
    fx.Precommit(v, S(0), 100, kValA);
    fx.Commit(v, S(0), 100);
    fx.Commit(v, S(6), 101);
    fx.Commit(v, S(12), 102);  // judges 101: no precommit seen
    fx.Precommit(v, S(12) + 5 * kMillisecond, 101, kValA);
    INFO(fx.Dump());
    Event m = One(fx, EventKind::kMissedPrecommit, "v");
    CHECK(m.height == 101);
    CHECK(m.time == S(12));
  }
}

TEST_CASE("missed precommits: heights passed over by one commit are judged too") {
  // DETECTION.md: "height H counts as missed when the node commits a height
  // above H without an own precommit for H having been seen".
  Fx fx;
  int v = fx.Add("v", true, kValA);
  for (int64_t k = 0; k <= 20; ++k) {
    fx.Precommit(v, S(6 * k), 100 + k, kValA);
    fx.Commit(v, S(6 * k), 100 + k);
  }
  fx.Precommit(v, S(126), 121, kValA);  // 121 and 122 have no commit line,
  fx.Precommit(v, S(138), 123, kValA);  // 122 no precommit either
  fx.Commit(v, S(138), 123);
  INFO(fx.Dump());
  Event m = One(fx, EventKind::kMissedPrecommit, "v");
  CHECK(m.height == 122);
  CHECK(m.time == S(138));
  CHECK(fx.SummaryOf("v").missed_precommits == 1);
}

TEST_CASE("missed precommits: a chain's own missed-vote message gives the same event") {
  Fx fx;
  int v = fx.Add("v");
  fx.Commit(v, S(0), 100);
  Signal s;
  s.kind = SignalKind::kVoteMissed;
  s.height = 101;
  fx.Send(v, S(6), s, "validator missed vote height=101");
  INFO(fx.Dump());
  Event m = One(fx, EventKind::kMissedPrecommit, "v");
  CHECK(m.height == 101);
  CHECK(m.time == S(6));
  CHECK(m.severity == Severity::kInfo);
  CHECK(Detail(m, "kind") != "<absent>");
  NodeSummary sum = fx.SummaryOf("v");
  CHECK(sum.signer);
  CHECK(sum.missed_precommits == 1);
}

TEST_CASE("missed precommits: a family that does not derive misses records votes, judges no height") {
  // Tezos: a baker attests only where it holds slots; its votes still show
  // two of our bakers signing for one delegate.
  Thresholds t = Defaults();
  t.derive_misses = false;
  Fx fx(t);
  int a = fx.Add("baker-a", true), b = fx.Add("baker-b");
  const std::string delegate = "tz1Mxr2tB5Qn9Q2xaqkXUvDNKNLqMNuizHgm";
  for (int h = 100; h < 130; ++h) {
    fx.Commit(a, S(h - 100), h);
    fx.Commit(b, S(h - 100) + kMillisecond, h);
  }
  fx.Vote(a, S(31), 129, VoteType::kPrecommit, delegate, "");
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kMissedPrecommit) == 0u);
  CHECK(fx.SummaryOf("baker-a").missed_precommits == 0);
  fx.Vote(b, S(32), 129, VoteType::kPrecommit, delegate, "");
  Event d = One(fx, EventKind::kDoubleSignRisk, "baker-b");
  CHECK(DetailStr(d, "reason") == "dual_active_signer");
  CHECK(DetailStr(d, "other_node") == "baker-a");
  // The same with derived misses: every committed height without an own
  // precommit would be judged missed.
  Fx derived;
  int c = derived.Add("baker-a", true);
  for (int h = 100; h < 130; ++h) derived.Commit(c, S(h - 100), h);
  CHECK(derived.Count(EventKind::kMissedPrecommit) > 0u);
}

TEST_CASE("missed precommits: height-less miss lines of one height are distinct events") {
  // nodeos logs "Not producing block because ..." once per block of a
  // missed round, without a block number: each is a missed block.
  Fx fx;
  int v = fx.Add("v");
  fx.Commit(v, S(0), 100);
  Signal s;
  s.kind = SignalKind::kSlotSkipped;
  for (int i = 0; i < 3; ++i) {
    fx.Send(v, S(1) + i * 500 * kMillisecond, s, "Not producing block because it isn't my turn");
  }
  INFO(fx.Dump());
  std::vector<std::string> ids;
  for (const Event& e : fx.out.events) {
    if (e.kind == EventKind::kMissedPrecommit) ids.push_back(e.id);
  }
  REQUIRE(ids.size() == 3u);
  CHECK(ids[0] != ids[1]);
  CHECK(ids[1] != ids[2]);
  CHECK(ids[0] != ids[2]);
  CHECK(fx.SummaryOf("v").missed_precommits == 3);
  // The same line read again (at-least-once) gives the same id.
  Fx again;
  int w = again.Add("v");
  again.Commit(w, S(0), 100);
  again.Send(w, S(1), s, "Not producing block because it isn't my turn");
  REQUIRE(again.Count(EventKind::kMissedPrecommit) == 1u);
  CHECK(One(again, EventKind::kMissedPrecommit, "v").id == ids[0]);
}

// ===========================================================================
// Double-sign risk

TEST_CASE("double sign: own double_sign_risk signal is critical") {
  Fx fx;
  int a = fx.Add("a", true, kValA);
  fx.Add("b");
  Signal s;
  s.kind = SignalKind::kDoubleSignRisk;
  s.height = 105;
  s.reason = "conflicting data";
  fx.Send(a, S(10), s, "E[privval] error signing vote: conflicting data");
  INFO(fx.Dump());
  REQUIRE(fx.out.events.size() == 1u);
  Event d = One(fx, EventKind::kDoubleSignRisk, "a");
  CHECK(d.time == S(10));
  CHECK(d.severity == Severity::kCritical);
  CHECK(d.height == 105);
  CHECK(DetailStr(d, "reason") == "conflicting data");
  CHECK(fx.Count(EventKind::kBan) == 0u);  // ban_on_double_sign is false by default
}

TEST_CASE("double sign: two of our nodes voting for one validator") {
  SUBCASE("different block ids: critical conflicting_votes") {
    Fx fx;
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrecommit, kValA, "AAAA11112222");
    fx.Vote(b, S(10) + kMillisecond, 105, VoteType::kPrecommit, kValA, "BBBB33334444");
    INFO(fx.Dump());
    REQUIRE(fx.Count(EventKind::kDoubleSignRisk) == 1u);
    Event d = One(fx, EventKind::kDoubleSignRisk, "b");
    CHECK(d.severity == Severity::kCritical);
    CHECK(DetailStr(d, "reason") == "conflicting_votes");
    CHECK(d.height == 105);
    CHECK(d.time == S(10) + kMillisecond);
    CHECK(DetailStr(d, "other_node") == "a");
    CHECK(DetailStr(d, "validator") == kValA);
  }
  SUBCASE("same block id: warning dual_active_signer") {
    Fx fx;
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrevote, kValA, "AAAA11112222");
    fx.Vote(b, S(11), 105, VoteType::kPrevote, kValA, "AAAA11112222");
    INFO(fx.Dump());
    REQUIRE(fx.Count(EventKind::kDoubleSignRisk) == 1u);
    Event d = One(fx, EventKind::kDoubleSignRisk, "b");
    CHECK(d.severity == Severity::kWarning);
    CHECK(DetailStr(d, "reason") == "dual_active_signer");
    CHECK(d.height == 105);
  }
  SUBCASE("same block id within one signer group: nothing") {
    Fx fx(Defaults(), {{"a", "b"}});
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrecommit, kValA, "AAAA11112222");
    fx.Vote(b, S(11), 105, VoteType::kPrecommit, kValA, "AAAA11112222");
    INFO(fx.Dump());
    CHECK(fx.out.events.empty());
  }
  SUBCASE("different round or type: nothing") {
    Fx fx;
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrecommit, kValA, "AAAA11112222", 0);
    fx.Vote(b, S(11), 105, VoteType::kPrecommit, kValA, "BBBB33334444", 1);
    fx.Vote(b, S(12), 105, VoteType::kPrevote, kValA, "BBBB33334444", 0);
    INFO(fx.Dump());
    CHECK(fx.out.events.empty());
  }
  SUBCASE("a vote without an address is for the node's configured validator") {
    Fx fx;
    int a = fx.Add("a", false, kValA), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrecommit, "", "AAAA11112222");
    fx.Vote(b, S(11), 105, VoteType::kPrecommit, kValA, "BBBB33334444");
    INFO(fx.Dump());
    Event d = One(fx, EventKind::kDoubleSignRisk, "b");
    CHECK(d.severity == Severity::kCritical);
    CHECK(DetailStr(d, "reason") == "conflicting_votes");
  }
  SUBCASE("nil votes logged differently by a signer and a node are the same nil") {
    // tmkms logs `PreCommit:<nil>` (its rule keeps "<nil>" or nothing),
    // CometBFT's Vote string `000000000000`, a WAL replay `:0:000000000000`.
    for (const char* other : {"000000000000", ":0:000000000000", "", "(none)"}) {
      Fx fx(Defaults(), {{"a", "b"}});
      int a = fx.Add("a"), b = fx.Add("b");
      fx.Vote(a, S(10), 105, VoteType::kPrecommit, kValA, "<nil>");
      fx.Vote(b, S(11), 105, VoteType::kPrecommit, kValA, other);
      INFO(other, " ", fx.Dump());
      CHECK(fx.out.events.empty());
    }
  }
  SUBCASE("a nil vote and a block vote for one validator conflict") {
    Fx fx;
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrevote, kValA, "000000000000");
    fx.Vote(b, S(11), 105, VoteType::kPrevote, kValA, "AAAA11112222");
    INFO(fx.Dump());
    Event d = One(fx, EventKind::kDoubleSignRisk, "b");
    CHECK(d.severity == Severity::kCritical);
    CHECK(DetailStr(d, "reason") == "conflicting_votes");
    CHECK(DetailStr(d, "other_block_id") == "nil");
  }
  SUBCASE("a signer's 10-digit block id prefix and the node's 12-digit one are one block") {
    Fx fx(Defaults(), {{"a", "b"}});
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrecommit, kValA, "A56C0AF51D");
    fx.Vote(b, S(11), 105, VoteType::kPrecommit, kValA, "a56c0af51d3f");
    CHECK(fx.out.events.empty());
  }
  SUBCASE("one node logging its vote twice: nothing") {
    Fx fx;
    int a = fx.Add("a");
    fx.Add("b");
    fx.Vote(a, S(10), 105, VoteType::kPrecommit, kValA, "AAAA11112222");
    fx.Vote(a, S(11), 105, VoteType::kPrecommit, kValA, "AAAA11112222");
    CHECK(fx.out.events.empty());
  }
}

TEST_CASE("double sign: others' misbehaviour is info and never bans") {
  Thresholds t;
  t.ban_on_double_sign = true;
  Fx fx(t);
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(6), {a, b});
  Signal s;
  s.kind = SignalKind::kOthersMisbehaviour;
  s.height = 101;
  s.validator = "FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000";
  fx.Send(a, S(7), s, "found conflicting vote from validator FFFF0000");
  fx.Advance(S(3600), {a, b});
  INFO(fx.Dump());
  REQUIRE(fx.out.events.size() == 1u);
  Event d = One(fx, EventKind::kDoubleSignRisk, "a");
  CHECK(d.severity == Severity::kInfo);
  CHECK(DetailStr(d, "reason") == "others_misbehaviour");
  CHECK(d.time == S(7));
  CHECK(d.height == 101);
  CHECK(fx.Count(EventKind::kBan) == 0u);
}

TEST_CASE("double sign: ban_on_double_sign bans at once on an own critical risk") {
  Thresholds t;
  t.ban_on_double_sign = true;
  Fx fx(t);
  int a = fx.Add("a", false, kValA), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(6), {a, b, c});
  Signal s;
  s.kind = SignalKind::kDoubleSignRisk;
  s.height = 102;
  s.reason = "attempted double sign";
  fx.Send(a, S(7), s, "attempted double sign");
  INFO(fx.Dump());
  Event ban = One(fx, EventKind::kBan, "a");
  CHECK(ban.time == S(7));
  CHECK(ban.severity == Severity::kCritical);
  CHECK(Detail(ban, "held") == "<absent>");
  CHECK(fx.SummaryOf("a").bans == 1);
}

// ===========================================================================
// Consensus failure

TEST_CASE("consensus failure: critical, out of consensus until the next advance") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(60), {a, b, c});  // 110
  Signal s;
  s.kind = SignalKind::kConsensusFailure;
  s.height = 111;
  s.reason = "panic in state machine";
  fx.Send(a, S(63), s, "CONSENSUS FAILURE!!! err=panic");
  fx.Send(a, S(64), s, "CONSENSUS FAILURE!!! err=panic");  // once per height
  INFO(fx.Dump());
  REQUIRE(fx.out.events.size() == 2u);
  Event f = One(fx, EventKind::kConsensusFailure, "a");
  CHECK(f.time == S(63));
  CHECK(f.severity == Severity::kCritical);
  CHECK(f.height == 111);
  CHECK(f.id == MakeEventId(kChain, "a", EventKind::kConsensusFailure, 111));
  Event ooc = One(fx, EventKind::kOutOfConsensus, "a");
  CHECK(ooc.time == S(63));
  CHECK(ooc.height == 110);  // its last committed height
  CHECK(DetailStr(ooc, "reason") == "consensus_failure");

  fx.Advance(S(84), {b, c});  // 114
  fx.CatchUp(a, S(85));
  REQUIRE(fx.out.events.size() == 3u);
  Event back = One(fx, EventKind::kBackInConsensus, "a");
  CHECK(back.time == S(85));
  CHECK(back.severity == Severity::kInfo);
  CHECK(DetailStr(back, "reason") == "consensus_failure");
  CHECK(back.height == 114);
  CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
}

TEST_CASE("consensus failure: without a height it concerns the height being decided") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(60), {a, b});  // 110
  Signal s;
  s.kind = SignalKind::kConsensusFailure;
  fx.Send(a, S(63), s, "CONSENSUS FAILURE!!!");
  INFO(fx.Dump());
  Event f = One(fx, EventKind::kConsensusFailure, "a");
  CHECK(f.height == 111);
  CHECK(f.severity == Severity::kCritical);
  CHECK(One(fx, EventKind::kOutOfConsensus, "a").height == 110);
}

// ===========================================================================
// Lagging

TEST_CASE("lagging: an advancing node more than max_lag blocks behind the head") {
  Fx fx;  // max_lag 5
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  // a and b commit every 6 s, c only every 18 s (one block in three): c falls
  // further behind but never stops (no stall).
  auto run = [&](int64_t until_s) {
    for (int64_t k = fx.next_h - 100; 6 * k <= until_s; ++k) {
      fx.Commit(a, S(6 * k), 100 + k);
      fx.Commit(b, S(6 * k), 100 + k);
      if (k % 3 == 0) fx.Commit(c, S(6 * k), 100 + k / 3);
      fx.next_h = 100 + k + 1;
    }
  };
  run(42);  // head 107, c at 102: exactly max_lag behind, still in consensus
  INFO(fx.Dump());
  CHECK(fx.out.events.empty());
  run(48);  // head 108, c at 102
  REQUIRE(fx.out.events.size() == 1u);
  Event ooc = One(fx, EventKind::kOutOfConsensus, "c");
  CHECK(ooc.time == S(48));  // checked on the advance of any node of the chain
  CHECK(ooc.severity == Severity::kWarning);
  CHECK(ooc.height == 102);
  CHECK(DetailStr(ooc, "reason") == "lagging");
  CHECK(ooc.id == MakeEventId(kChain, "c", EventKind::kOutOfConsensus, Ms(S(48))));

  run(120);  // c keeps advancing, further and further behind: one period
  CHECK(fx.out.events.size() == 1u);

  fx.CatchUp(c, S(121));
  REQUIRE(fx.out.events.size() == 2u);
  Event back = One(fx, EventKind::kBackInConsensus, "c");
  CHECK(back.time == S(121));
  CHECK(back.severity == Severity::kInfo);
  CHECK(DetailStr(back, "reason") == "lagging");
  CHECK(back.id == MakeEventId(kChain, "c", EventKind::kBackInConsensus, Ms(S(48))));
  CHECK(fx.Count(EventKind::kNodeStalled) == 0u);
}

TEST_CASE("lagging: a stopped node of a live chain lags before its stall deadline") {
  // DETECTION.md: lagging is "checked on every advance of any node of the
  // chain", so with 6 s blocks and max_lag 5 a node that stops is out of
  // consensus (lagging) 6 blocks later, before stall_after (60 s).
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
  fx.Advance(S(60), {a, b, c});  // a stops at 110
  fx.Advance(S(90), {b, c});     // head 115: 5 behind
  INFO(fx.Dump());
  CHECK(fx.out.events.empty());
  fx.Advance(S(96), {b, c});     // head 116: 6 behind
  Event ooc = One(fx, EventKind::kOutOfConsensus, "a");
  CHECK(ooc.time == S(96));
  CHECK(ooc.height == 110);
  CHECK(DetailStr(ooc, "reason") == "lagging");

  fx.Advance(S(130), {b, c});
  Event st = One(fx, EventKind::kNodeStalled, "a");  // still reported at its deadline
  CHECK(st.time == S(120));
  CHECK(st.height == 110);
  CHECK(fx.Count(EventKind::kOutOfConsensus, "a") == 1u);  // no second entry

  // The first advance ends the stall; back in consensus only once within
  // max_lag of the head (121).
  fx.Commit(a, S(131), 115);
  Event rec = One(fx, EventKind::kNodeRecovered, "a");
  CHECK(rec.time == S(131));
  CHECK(rec.height == 115);
  CHECK(fx.Count(EventKind::kBackInConsensus, "a") == 0u);
  fx.Commit(a, S(132), 116);  // 5 behind
  Event back = One(fx, EventKind::kBackInConsensus, "a");
  CHECK(back.time == S(132));
  CHECK(back.height == 116);
  CHECK(DetailStr(back, "reason") == "lagging");
  CHECK(back.id == MakeEventId(kChain, "a", EventKind::kBackInConsensus, Ms(S(96))));
  CHECK(fx.CountNode("b") == 0u);
  CHECK(fx.CountNode("c") == 0u);
}

TEST_CASE("lagging: the head is the highest height among visible nodes") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b"), x = fx.Add("x");
  fx.Advance(S(30), {a, b});   // 105
  fx.Commit(x, S(30), 120);    // x is far ahead: a and b lag behind it
  INFO(fx.Dump());
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "a") == 1u);
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "b") == 1u);
  CHECK(fx.Of(EventKind::kOutOfConsensus, "a").at(0).time == S(30));
  fx.Detach(x, S(40));         // x's stream ends: x retires, it is no longer the head,
  fx.Commit(a, S(42), 106);    // and the chain is re-checked at once
  Event back_a = One(fx, EventKind::kBackInConsensus, "a");
  CHECK(back_a.time == S(40));
  Event back_b = One(fx, EventKind::kBackInConsensus, "b");
  CHECK(back_b.time == S(40));
  fx.Commit(b, S(42), 106);
  fx.next_t = S(48);
  fx.next_h = 107;
  fx.Advance(S(120), {a, b});
  CHECK(fx.Count(EventKind::kOutOfConsensus) == 2u);
}

// ===========================================================================
// Syncing

TEST_CASE("syncing: out of consensus only after having been in consensus") {
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b");
  SUBCASE("a node in consensus starts syncing") {
    fx.Advance(S(30), {a, b});  // 105
    Signal s;
    s.kind = SignalKind::kSyncing;
    s.height = 105;
    s.target_height = 300;
    fx.Send(a, S(31), s, "syncing target=300");
    fx.Send(a, S(32), s, "syncing target=300");  // once per spell
    INFO(fx.Dump());
    Event sy = One(fx, EventKind::kNodeSyncing, "a");
    CHECK(sy.time == S(31));
    CHECK(sy.severity == Severity::kWarning);
    Event ooc = One(fx, EventKind::kOutOfConsensus, "a");
    CHECK(ooc.time == S(31));
    CHECK(DetailStr(ooc, "reason") == "syncing");
    Signal done;
    done.kind = SignalKind::kSynced;
    fx.Send(a, S(40), done, "synced");
    Event sd = One(fx, EventKind::kNodeSynced, "a");
    CHECK(sd.time == S(40));
    CHECK(sd.severity == Severity::kInfo);
    CHECK(One(fx, EventKind::kBackInConsensus, "a").time == S(40));
  }
  SUBCASE("a new node syncing up is neither out of consensus nor lagging") {
    fx.Advance(S(30), {b});  // b at 105
    Signal s;
    s.kind = SignalKind::kSyncing;
    s.target_height = 105;
    fx.Send(a, S(31), s, "syncing target=105");
    fx.Commit(a, S(32), 50);
    fx.Commit(a, S(33), 80);
    fx.Commit(a, S(34), 104);  // within max_lag of the head: synced
    INFO(fx.Dump());
    CHECK(fx.Count(EventKind::kNodeSyncing, "a") == 1u);
    Event sd = One(fx, EventKind::kNodeSynced, "a");
    CHECK(sd.time == S(34));
    CHECK(fx.Count(EventKind::kOutOfConsensus) == 0u);
    CHECK(fx.Count(EventKind::kBackInConsensus) == 0u);
  }
}

TEST_CASE("syncing: both ends of a syncing spell are keyed by its start") {
  // DETECTION.md "Event ids": period events are keyed by the start of the
  // period (as out_of_consensus/back_in_consensus, node_stalled/node_recovered).
  Fx fx;
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(30), {a, b});
  Signal s;
  s.kind = SignalKind::kSyncing;
  s.height = 105;
  s.target_height = 300;
  fx.Send(a, S(31), s, "syncing target=300");
  Signal done;
  done.kind = SignalKind::kSynced;
  fx.Send(a, S(40), done, "synced");
  INFO(fx.Dump());
  Event sy = One(fx, EventKind::kNodeSyncing, "a");
  Event sd = One(fx, EventKind::kNodeSynced, "a");
  CHECK(sy.id == MakeEventId(kChain, "a", EventKind::kNodeSyncing, Ms(S(31))));
  CHECK(sd.id == MakeEventId(kChain, "a", EventKind::kNodeSynced, Ms(S(31))));
}

// ===========================================================================
// Bans

namespace {

// a, b, c commit 100..110 by S(60); a stops; it is stalled (out of
// consensus, period start) at S(120); its ban is due at S(1920).
struct BanFx : Fx {
  explicit BanFx(Thresholds t = NoLag()) : Fx(t) {
    a = Add("a");
    b = Add("b");
    c = Add("c");
    Advance(S(60), {a, b, c});
    Advance(S(120), {b, c});
    REQUIRE(Count(EventKind::kOutOfConsensus, "a") == 1u);
  }
  int a = -1, b = -1, c = -1;
};

constexpr Nanos kPeriodStart = S(120);
constexpr Nanos kBanDue = S(120) + 30 * kMinute;  // S(1920)

}  // namespace

TEST_CASE("ban: out of consensus for ban_after gives exactly one ban at period_start + ban_after") {
  BanFx fx;
  fx.Advance(kBanDue - 1, {fx.b, fx.c});
  CHECK(fx.Count(EventKind::kBan) == 0u);
  fx.Advance(kBanDue + 60 * kMinute, {fx.b, fx.c});
  INFO(fx.Dump());
  REQUIRE(fx.Count(EventKind::kBan) == 1u);
  Event ban = One(fx, EventKind::kBan, "a");
  CHECK(ban.time == kBanDue);
  CHECK(ban.severity == Severity::kCritical);
  CHECK(ban.height == 110);
  CHECK(Detail(ban, "held") == "<absent>");
  CHECK(DetailStr(ban, "reason") == "stalled");
  CHECK(DetailStr(ban, "since") == FormatRfc3339Millis(kPeriodStart));
  CHECK(Detail(ban, "out_of_consensus_seconds") == "1800");
  const std::string evidence = Detail(ban, "evidence");
  CHECK(evidence.front() == '[');
  CHECK(evidence.find("a committed height=110") != std::string::npos);
  CHECK(evidence.find(FormatRfc3339Millis(S(60))) != std::string::npos);
  CHECK(ban.id == MakeEventId(kChain, "a", EventKind::kBan, Ms(kPeriodStart)));
  CHECK(fx.Count(EventKind::kUnban) == 0u);
  NodeSummary s = fx.SummaryOf("a");
  CHECK(s.bans == 1);
  CHECK(s.status == "banned");
}

TEST_CASE("ban: a flapping node is still banned at the first period start + ban_after") {
  BanFx fx;
  fx.Advance(S(420), {fx.b, fx.c});
  fx.CatchUp(fx.a, S(421));  // back in consensus after 5 min...
  CHECK(fx.Count(EventKind::kBackInConsensus, "a") == 1u);
  fx.Advance(S(482), {fx.b, fx.c});  // ...and stalled again at S(481), before stable_after
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "a") == 2u);
  fx.Advance(kBanDue + 10 * kMinute, {fx.b, fx.c});
  INFO(fx.Dump());
  Event ban = One(fx, EventKind::kBan, "a");
  CHECK(ban.time == kBanDue);
  CHECK(DetailStr(ban, "since") == FormatRfc3339Millis(kPeriodStart));
}

TEST_CASE("ban: the period is still open less than stable_after after coming back") {
  BanFx fx;
  const Nanos back = kBanDue - 2 * kMinute;  // back 2 min before the ban is due
  fx.Advance(back - kSecond, {fx.b, fx.c});
  fx.CatchUp(fx.a, back);
  fx.Advance(kBanDue + kMinute, {fx.a, fx.b, fx.c});
  INFO(fx.Dump());
  Event ban = One(fx, EventKind::kBan, "a");
  CHECK(ban.time == kBanDue);
  CHECK(DetailStr(ban, "since") == FormatRfc3339Millis(kPeriodStart));
  // Back in consensus since `back`: unbanned unban_after after that.
  fx.Advance(back + 20 * kMinute, {fx.a, fx.b, fx.c});
  CHECK(One(fx, EventKind::kUnban, "a").time == back + 10 * kMinute);
}

TEST_CASE("ban: back in consensus for stable_after before ban_after ends the period") {
  BanFx fx;
  fx.Advance(S(720), {fx.b, fx.c});
  fx.CatchUp(fx.a, S(721));
  fx.Advance(kBanDue + 5 * kMinute, {fx.a, fx.b, fx.c});  // a stays in consensus
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kBan) == 0u);

  SUBCASE("a later stall opens a new period with its own ban_after") {
    const Nanos last = fx.clock;  // a's last commit
    const Nanos stall = last + 60 * kSecond;
    fx.Advance(stall + 30 * kMinute + 10 * kSecond, {fx.b, fx.c});
    Event ban = One(fx, EventKind::kBan, "a");
    CHECK(ban.time == stall + 30 * kMinute);
    CHECK(DetailStr(ban, "since") == FormatRfc3339Millis(stall));
  }
}

TEST_CASE("ban: unban after unban_after back in consensus") {
  SUBCASE("auto_unban") {
    BanFx fx;
    fx.Advance(kBanDue + 3 * kMinute, {fx.b, fx.c});
    REQUIRE(fx.Count(EventKind::kBan, "a") == 1u);
    const Nanos back = kBanDue + 3 * kMinute + kSecond;
    fx.CatchUp(fx.a, back);
    CHECK(One(fx, EventKind::kBackInConsensus, "a").time == back);
    fx.Advance(back + 10 * kMinute - kSecond, {fx.a, fx.b, fx.c});
    CHECK(fx.Count(EventKind::kUnban) == 0u);
    fx.Advance(back + 40 * kMinute, {fx.a, fx.b, fx.c});
    INFO(fx.Dump());
    Event unban = One(fx, EventKind::kUnban, "a");
    CHECK(unban.time == back + 10 * kMinute);
    CHECK(unban.severity == Severity::kInfo);
    CHECK(unban.id == MakeEventId(kChain, "a", EventKind::kUnban, Ms(kPeriodStart)));
    CHECK(unban.height == 550);  // a's last commit: block of S(2700)
    CHECK(fx.Count(EventKind::kBan) == 1u);
    NodeSummary s = fx.SummaryOf("a");
    CHECK(s.bans == 1);
    CHECK(s.status == "in_consensus");
  }
  SUBCASE("auto_unban false: no unban") {
    Thresholds t = NoLag();
    t.auto_unban = false;
    BanFx fx(t);
    fx.Advance(kBanDue + 3 * kMinute, {fx.b, fx.c});
    REQUIRE(fx.Count(EventKind::kBan, "a") == 1u);
    fx.CatchUp(fx.a, kBanDue + 3 * kMinute + kSecond);
    fx.Advance(kBanDue + 90 * kMinute, {fx.a, fx.b, fx.c});
    INFO(fx.Dump());
    CHECK(fx.Count(EventKind::kUnban) == 0u);
    CHECK(fx.SummaryOf("a").status == "banned");
  }
}

// ===========================================================================
// Safety rails

TEST_CASE("safety rail max_bans: the second ban is held, then decided at the first unban") {
  Fx fx(NoLag());  // max_bans 1
  int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c"), d = fx.Add("d");
  fx.Advance(S(60), {a, b, c, d});     // a stops at 110 -> out at S(120)
  fx.Advance(S(120), {b, c, d});       // b stops at 120 -> out at S(180)
  fx.Advance(S(180), {c, d});
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "a") == 1u);
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "b") == 1u);

  const Nanos a_ban = S(120) + 30 * kMinute, b_ban = S(180) + 30 * kMinute;
  fx.Advance(b_ban + kMinute, {c, d});
  INFO(fx.Dump());
  Event ban_a = One(fx, EventKind::kBan, "a");
  CHECK(ban_a.time == a_ban);
  CHECK(Detail(ban_a, "held") == "<absent>");
  Event held = One(fx, EventKind::kBan, "b");
  CHECK(held.time == b_ban);
  CHECK(held.severity == Severity::kCritical);
  CHECK(Detail(held, "held") == "true");
  CHECK(DetailStr(held, "rail") == "max_bans");
  CHECK(held.id != MakeEventId(kChain, "b", EventKind::kBan, Ms(S(180))));

  // a comes back; its unban frees the rail and b's ban is decided then.
  const Nanos back = b_ban + 2 * kMinute;
  fx.CatchUp(a, back);
  fx.Advance(back + 10 * kMinute - kSecond, {a, c, d});
  CHECK(fx.Count(EventKind::kBan, "b") == 1u);
  fx.Advance(back + 15 * kMinute, {a, c, d});
  Event unban = One(fx, EventKind::kUnban, "a");
  CHECK(unban.time == back + 10 * kMinute);
  auto bans_b = fx.Of(EventKind::kBan, "b");
  std::sort(bans_b.begin(), bans_b.end(), EventLess);
  REQUIRE(bans_b.size() == 2u);
  CHECK(bans_b[1].time == back + 10 * kMinute);
  CHECK(Detail(bans_b[1], "held") == "<absent>");
  CHECK(DetailStr(bans_b[1], "since") == FormatRfc3339Millis(S(180)));
  CHECK(bans_b[1].id != bans_b[0].id);
  CHECK(fx.Count(EventKind::kBan, "a") == 1u);
}

TEST_CASE("safety rail require_healthy_peer: no ban while no other node is in consensus") {
  Fx fx(NoLag());  // require_healthy_peer auto: on with 2 visible nodes
  int a = fx.Add("a"), b = fx.Add("b");
  fx.Advance(S(60), {a, b});   // a stops at 110 -> out at S(120)
  fx.Advance(S(120), {b});     // b stops at 120 -> out at S(180)
  fx.Tick(S(180));
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "a") == 1u);
  REQUIRE(fx.Count(EventKind::kOutOfConsensus, "b") == 1u);
  REQUIRE(fx.Count(EventKind::kChainHalted) == 0u);

  const Nanos a_ban = S(120) + 30 * kMinute, b_ban = S(180) + 30 * kMinute;
  fx.Tick(b_ban + kMinute);
  INFO(fx.Dump());
  Event held = One(fx, EventKind::kBan, "a");
  CHECK(held.time == a_ban);
  CHECK(Detail(held, "held") == "true");
  CHECK(DetailStr(held, "rail") == "require_healthy_peer");
  Event held_b = One(fx, EventKind::kBan, "b");
  CHECK(held_b.time == b_ban);
  CHECK(Detail(held_b, "held") == "true");
  CHECK(DetailStr(held_b, "rail") == "require_healthy_peer");

  // b comes back in consensus: a's ban is decided at that moment.
  const Nanos back = b_ban + 2 * kMinute;
  fx.Commit(b, back, 121);
  CHECK(One(fx, EventKind::kBackInConsensus, "b").time == back);
  auto bans_a = fx.Of(EventKind::kBan, "a");
  std::sort(bans_a.begin(), bans_a.end(), EventLess);
  REQUIRE(bans_a.size() == 2u);
  CHECK(bans_a[1].time == back);
  CHECK(Detail(bans_a[1], "held") == "<absent>");
  CHECK(fx.Count(EventKind::kBan, "b") == 1u);  // b is not banned on coming back
}

TEST_CASE("safety rail require_healthy_peer: auto needs two visible nodes, false disables it") {
  SUBCASE("a single visible node is banned without a peer") {
    Fx fx(NoLag());
    int a = fx.Add("a");
    fx.Advance(S(60), {a});
    fx.Tick(S(120) + 31 * kMinute);
    INFO(fx.Dump());
    Event ban = One(fx, EventKind::kBan, "a");
    CHECK(ban.time == S(120) + 30 * kMinute);
    CHECK(Detail(ban, "held") == "<absent>");
  }
  SUBCASE("require_healthy_peer false: both nodes out, the first is banned") {
    Thresholds t = NoLag();
    t.require_healthy_peer = Tristate::kFalse;
    Fx fx(t);
    int a = fx.Add("a"), b = fx.Add("b");
    fx.Advance(S(60), {a, b});
    fx.Advance(S(120), {b});
    fx.Tick(S(180) + 31 * kMinute);
    INFO(fx.Dump());
    Event ban = One(fx, EventKind::kBan, "a");
    CHECK(ban.time == S(120) + 30 * kMinute);
    CHECK(Detail(ban, "held") == "<absent>");
    Event held = One(fx, EventKind::kBan, "b");  // max_bans 1 still holds
    CHECK(Detail(held, "held") == "true");
    CHECK(DetailStr(held, "rail") == "max_bans");
  }
}

// ===========================================================================
// Retirement

TEST_CASE("retirement: a node whose last stream ended is not judged any more") {
  SUBCASE("no stall after its last stream ends") {
    Fx fx;
    int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
    fx.Advance(S(60), {a, b, c});
    fx.Detach(a, S(61));
    fx.Advance(S(3600), {b, c});
    INFO(fx.Dump());
    CHECK(fx.out.events.empty());
  }
  SUBCASE("one of two streams ending does not retire it") {
    Fx fx;
    int a = fx.Add("a", false, "", /*streams=*/2), b = fx.Add("b"), c = fx.Add("c");
    fx.Advance(S(60), {a, b, c});
    fx.Detach(a, S(61));
    fx.Advance(S(130), {b, c});
    INFO(fx.Dump());
    CHECK(One(fx, EventKind::kNodeStalled, "a").time == S(120));
  }
  SUBCASE("a retired node is not visible: the others stopping is a chain halt") {
    Fx fx;
    int a = fx.Add("a"), b = fx.Add("b"), c = fx.Add("c");
    fx.Advance(S(60), {a, b, c});  // a retires at 110
    fx.Detach(a, S(61));
    fx.Advance(S(120), {b, c});    // b, c stop at 120
    fx.Tick(S(300));
    INFO(fx.Dump());
    REQUIRE(fx.out.events.size() == 1u);
    Event h = One(fx, EventKind::kChainHalted, "");
    CHECK(h.time == S(180));
    CHECK(h.height == 120);
  }
}

// ===========================================================================
// A pod replaced by a newer pod of its workload (DETECTION.md)

// The replacement cases' chain: the Deployment pod p stops at 60 (its last
// commit), sentries b and c go on; pod `successor` is added at 84 and
// commits from 90 with them (through `until`). Returns {p, b, c, n}.
struct Restart {
  int p, b, c, n;
};
Restart PodRestart(Fx& fx, Nanos until, const std::string& successor = "val-7d9f8c6b5-p8m4z") {
  Restart r;
  r.p = fx.Add("val-7d9f8c6b5-x2k4q");
  r.b = fx.Add("sentry-0");
  r.c = fx.Add("sentry-1");
  fx.Advance(S(60), {r.p, r.b, r.c});  // heights 100..110
  fx.Advance(S(84), {r.b, r.c});
  r.n = fx.Add(successor);
  fx.Advance(until, {r.b, r.c, r.n});
  return r;
}
// A fresh detector with the same four nodes, restored from `saved`, its
// block clock where `from`'s is.
void RestoreInto(Fx& to, const Fx& from, const std::string& saved) {
  to.Add("val-7d9f8c6b5-x2k4q");
  to.Add("sentry-0");
  to.Add("sentry-1");
  to.Add("val-7d9f8c6b5-p8m4z");
  REQUIRE(DecodeState(saved, to.det.get()).has_value());
  to.next_t = from.next_t;
  to.next_h = from.next_h;
  to.clock = from.clock;
}

TEST_CASE("replacement: the workload of a pod name") {
  CHECK(Detector::Workload("val-7d9f8c6b5-x2k4q") == "val");        // Deployment
  CHECK(Detector::Workload("cosmos-sentry-6c9d8f7b4d-p8m4z") == "cosmos-sentry");
  CHECK(Detector::Workload("fluent-bit-x2k4q") == "fluent-bit");    // DaemonSet
  CHECK(Detector::Workload("val-0") == "");                          // StatefulSet
  CHECK(Detector::Workload("validator") == "");
  CHECK(Detector::Workload("val-x2k4a") == "");    // 'a' is never generated
  CHECK(Detector::Workload("val-x2k4qq") == "");   // six characters: not a pod suffix
  CHECK(Detector::Workload("-x2k4q") == "");
}

TEST_CASE("replacement: a Deployment pod back under a new name retires the old one, no ban") {
  // Defaults: stall_after 60 s, max_lag 5, replace_window 5 min, ban_after 30 min.
  Fx fx;
  const int p = PodRestart(fx, S(3600)).p;  // p's last signal at 60, n's first at 90
  INFO(fx.Dump());
  // p lags from the head 116 (at 96), is stalled at 60 + 60; n started 30 s
  // after p went silent, and at 120 p has been silent for stall_after: the
  // decision (every older pod of the workload silent) is then.
  CHECK(One(fx, EventKind::kOutOfConsensus, "val-7d9f8c6b5-x2k4q").time == S(96));
  CHECK(One(fx, EventKind::kNodeStalled, "val-7d9f8c6b5-x2k4q").time == S(120));
  Event r = One(fx, EventKind::kNodeReplaced, "val-7d9f8c6b5-x2k4q");
  CHECK(r.time == S(120));
  CHECK(r.severity == Severity::kInfo);
  CHECK(DetailStr(r, "by") == "val-7d9f8c6b5-p8m4z");
  CHECK(DetailStr(r, "last_seen") == FormatRfc3339Millis(S(60)));
  CHECK(fx.CountNode("val-7d9f8c6b5-x2k4q") == 3u);  // no ban 30 min later
  CHECK(fx.CountNode("val-7d9f8c6b5-p8m4z") == 0u);
  CHECK(fx.det->node(p).retired);
  CHECK(fx.SummaryOf("val-7d9f8c6b5-x2k4q").status == "replaced");
  CHECK(fx.SummaryOf("val-7d9f8c6b5-p8m4z").status == "in_consensus");
}

TEST_CASE("replacement: without a newer pod of the workload a silent pod is banned as before") {
  Fx fx;
  PodRestart(fx, S(2000), "other-7d9f8c6b5-p8m4z");  // another workload
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kNodeReplaced) == 0u);
  CHECK(One(fx, EventKind::kBan, "val-7d9f8c6b5-x2k4q").time == S(96) + 30 * 60 * kSecond);
}

TEST_CASE("replacement: pods found running at the start are not successors") {
  // Both pods log from the chain's first minute: a healthy replica is not a
  // replacement for its hung sibling.
  Fx fx;
  int a = fx.Add("val-7d9f8c6b5-x2k4q"), b = fx.Add("val-7d9f8c6b5-bcdfg"), c = fx.Add("sentry-0");
  fx.Advance(S(60), {a, b, c});
  fx.Advance(S(2000), {b, c});
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kNodeReplaced) == 0u);
  CHECK(One(fx, EventKind::kBan, "val-7d9f8c6b5-x2k4q").time == S(96) + 30 * 60 * kSecond);
}

TEST_CASE("replacement: of two silent pods the newer pod replaces the one that stopped last") {
  // a hangs at 60; b (its replica) is restarted at 600 and comes back as n at
  // 630. The decision waits until both are silent for stall_after (600 + 60):
  // n replaced b; a is still banned at its own time.
  Fx fx;
  int a = fx.Add("val-7d9f8c6b5-x2k4q"), b = fx.Add("val-7d9f8c6b5-bcdfg"), c = fx.Add("sentry-0");
  fx.Advance(S(60), {a, b, c});
  fx.Advance(S(600), {b, c});  // b's last commit at 600 (a block time)
  fx.Advance(S(624), {c});
  int n = fx.Add("val-7d9f8c6b5-p8m4z");
  fx.Advance(S(2400), {c, n});  // n's first commit at 630
  INFO(fx.Dump());
  Event r = One(fx, EventKind::kNodeReplaced, "val-7d9f8c6b5-bcdfg");
  CHECK(r.time == S(660));
  CHECK(DetailStr(r, "by") == "val-7d9f8c6b5-p8m4z");
  CHECK(fx.Count(EventKind::kNodeReplaced) == 1u);
  CHECK(fx.Count(EventKind::kBan, "val-7d9f8c6b5-bcdfg") == 0u);
  CHECK(One(fx, EventKind::kBan, "val-7d9f8c6b5-x2k4q").time == S(96) + 30 * 60 * kSecond);
}

TEST_CASE("replacement: a sibling still logging at the window's end is not replaced") {
  // Scale-up: n starts while a and b both log on; at 90 + 5 min nothing is
  // silent, so n replaced nobody, and a hanging after that is banned.
  Fx fx;
  int a = fx.Add("val-7d9f8c6b5-x2k4q"), b = fx.Add("val-7d9f8c6b5-bcdfg");
  fx.Advance(S(84), {a, b});
  int n = fx.Add("val-7d9f8c6b5-p8m4z");
  fx.Advance(S(600), {a, b, n});
  fx.Advance(S(2600), {b, n});
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kNodeReplaced) == 0u);
  CHECK(One(fx, EventKind::kBan, "val-7d9f8c6b5-x2k4q").time == S(636) + 30 * 60 * kSecond);
}

TEST_CASE("replacement: replace_window 0s turns it off") {
  Thresholds t;
  t.replace_window = 0;
  Fx fx(t);
  PodRestart(fx, S(2000));
  INFO(fx.Dump());
  CHECK(fx.Count(EventKind::kNodeReplaced) == 0u);
  CHECK(One(fx, EventKind::kBan, "val-7d9f8c6b5-x2k4q").time == S(96) + 30 * 60 * kSecond);
}

TEST_CASE("replacement: the decision and a pending one survive a restore from saved state") {
  // Saved at 96 (n open, p silent 36 s): the restored detector decides at
  // 120 as the original; saved again after it, p stays retired and unbanned.
  Fx fx;
  const Restart r = PodRestart(fx, S(96));
  Fx again;
  RestoreInto(again, fx, EncodeState(*fx.det));
  again.Advance(S(600), {r.b, r.c, r.n});
  INFO(again.Dump());
  CHECK(One(again, EventKind::kNodeReplaced, "val-7d9f8c6b5-x2k4q").time == S(120));
  Fx third;
  RestoreInto(third, again, EncodeState(*again.det));
  CHECK(third.det->node(r.p).retired);
  CHECK(third.det->node(r.p).replaced_by == "val-7d9f8c6b5-p8m4z");
  third.Advance(S(3600), {r.b, r.c, r.n});
  INFO(third.Dump());
  CHECK(third.CountNode("val-7d9f8c6b5-x2k4q") == 0u);
}

TEST_CASE("replacement: a replaced pod that logs again is judged again") {
  Fx fx;
  const auto [p, b, c, n] = PodRestart(fx, S(198));  // p replaced at 120
  fx.Advance(S(396), {p, b, c, n});  // p logs again from 204 at the head: not gone
  fx.Advance(S(2400), {b, c, n});
  INFO(fx.Dump());
  CHECK(One(fx, EventKind::kNodeReplaced, "val-7d9f8c6b5-x2k4q").time == S(120));
  CHECK_FALSE(fx.det->node(p).retired);
  // Its last commit at 396 (height 166): lagging at head 172 (432), banned 30 min later.
  CHECK(fx.Count(EventKind::kBan, "val-7d9f8c6b5-x2k4q") == 1u);
  CHECK(One(fx, EventKind::kBan, "val-7d9f8c6b5-x2k4q").time == S(432) + 30 * 60 * kSecond);
}

// ===========================================================================
// Operator control (`quorumwatch bans hold|release|unban`)

TEST_CASE("operator hold: a due ban is held with rail operator_hold, release decides it") {
  BanFx fx;
  fx.det->SetHold("cosmos/a", true, fx.clock);
  fx.Advance(kBanDue + kMinute, {fx.b, fx.c});
  INFO(fx.Dump());
  Event held = One(fx, EventKind::kBan, "a");
  CHECK(held.time == kBanDue);
  CHECK(Detail(held, "held") == "true");
  CHECK(DetailStr(held, "rail") == "operator_hold");
  CHECK(fx.det->node(fx.a).ban_held_rail == "operator_hold");
  CHECK_FALSE(fx.det->node(fx.a).banned);

  // Releasing another name changes nothing; releasing the hold bans now.
  fx.det->SetHold("b", false, fx.clock);
  CHECK(fx.Count(EventKind::kBan, "a") == 1u);
  const Nanos release = kBanDue + 2 * kMinute;
  fx.Advance(release, {fx.b, fx.c});
  fx.det->SetHold("cosmos/a", false, release);
  auto bans = fx.Of(EventKind::kBan, "a");
  REQUIRE(bans.size() == 2u);
  std::sort(bans.begin(), bans.end(), EventLess);
  CHECK(bans[1].time == release);
  CHECK(Detail(bans[1], "held") == "<absent>");
  CHECK(DetailStr(bans[1], "since") == FormatRfc3339Millis(kPeriodStart));
  CHECK(bans[1].id == MakeEventId(kChain, "a", EventKind::kBan, Ms(kPeriodStart)));
  CHECK(fx.det->node(fx.a).banned);
  CHECK(fx.det->holds().empty());
}

TEST_CASE("operator hold: matches pod, namespace/pod and node key, not other nodes") {
  BanFx fx;
  CHECK(fx.det->NodeMatches(fx.a, "a"));
  CHECK(fx.det->NodeMatches(fx.a, "cosmos/a"));
  CHECK(fx.det->NodeMatches(fx.a, "cosmoshub|cosmos/a"));
  CHECK_FALSE(fx.det->NodeMatches(fx.a, "other/a"));
  CHECK_FALSE(fx.det->NodeMatches(fx.b, "a"));
  // A hold on b does not keep a from being banned.
  fx.det->SetHold("b", true, fx.clock);
  fx.Advance(kBanDue + kMinute, {fx.b, fx.c});
  Event ban = One(fx, EventKind::kBan, "a");
  CHECK(Detail(ban, "held") == "<absent>");
}

TEST_CASE("operator unban: unbans at once with detail.operator; still out restarts the timer") {
  BanFx fx;
  fx.Advance(kBanDue + kMinute, {fx.b, fx.c});
  REQUIRE(fx.det->node(fx.a).banned);
  CHECK(fx.det->OperatorUnban("b", fx.clock) == 0);  // b is not banned
  const Nanos at = kBanDue + 2 * kMinute;
  fx.Advance(at, {fx.b, fx.c});
  CHECK(fx.det->OperatorUnban("a", at) == 1);
  INFO(fx.Dump());
  Event unban = One(fx, EventKind::kUnban, "a");
  CHECK(unban.time == at);
  CHECK(Detail(unban, "operator") == "true");
  CHECK(DetailStr(unban, "since") == FormatRfc3339Millis(kPeriodStart));
  CHECK(unban.id == MakeEventId(kChain, "a", EventKind::kUnban, Ms(kPeriodStart)));
  // a is still stalled: a new period starts at the unban, and a second ban
  // follows ban_after later with its own id.
  CHECK(fx.det->node(fx.a).period_open);
  CHECK(fx.det->node(fx.a).period_start == at);
  fx.Advance(at + 30 * kMinute + kMinute, {fx.b, fx.c});
  auto bans = fx.Of(EventKind::kBan, "a");
  REQUIRE(bans.size() == 2u);
  std::sort(bans.begin(), bans.end(), EventLess);
  CHECK(bans[1].time == at + 30 * kMinute);
  CHECK(bans[1].id == MakeEventId(kChain, "a", EventKind::kBan, Ms(at)));
}

TEST_CASE("a node key splits back into the chain, namespace and pod it was made of") {
  Detector::NodeKeyParts p;
  REQUIRE(Detector::SplitNodeKey(Detector::NodeKey("cosmoshub", "validators", "val-a-0"), &p));
  CHECK(p.chain == "cosmoshub");
  CHECK(p.namespace_ == "validators");
  CHECK(p.pod == "val-a-0");
  REQUIRE(Detector::SplitNodeKey(Detector::NodeKey("osmosis", "", "val-b"), &p));
  CHECK(p.chain == "osmosis");
  CHECK(p.namespace_.empty());
  CHECK(p.pod == "val-b");
  CHECK_FALSE(Detector::SplitNodeKey("no-bar", &p));
  CHECK_FALSE(Detector::SplitNodeKey("|pod", &p));
  CHECK_FALSE(Detector::SplitNodeKey("chain|ns/", &p));
}
