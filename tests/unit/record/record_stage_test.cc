#include "record/record_stage.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "match/pattern_file.h"
#include "match/registry.h"

using namespace qw;
using namespace qw::record;

namespace {

const char* kCri1 = "2021-05-05T12:03:00.000000000Z stdout ";
const Nanos kT0 = 1620216180LL * kSecond;  // 2021-05-05T12:03:00Z

// A registry with one made-up family `t`: a `[YYYY-MM-DD|hh:mm:ss.fff]`
// stamp, continuation lines that start with white space, and a rule.
std::unique_ptr<match::Registry> TestRegistry() {
  const std::string dir = std::string(QW_SOURCE_ROOT) + "/tests/unit/record/testdata";
  auto reg = match::Registry::LoadFiles({dir + "/t.yaml"});
  REQUIRE(reg);
  return std::move(*reg);
}

struct Out {
  std::vector<std::string> texts;
  std::vector<Nanos> times;
  std::vector<int> families;
  uint64_t lines = 0, rejected = 0;
  std::vector<StreamInfo> starts;
  bool ended = false;
};

// Everything the stage has for the stream, taken as the ordering takes it.
void Take(Output& out, Out* o) {
  for (; out.head < out.ready; ++out.head) {
    const Entry& e = out.entries[out.head];
    switch (e.kind) {
      case EntryKind::kRecord:
        o->texts.emplace_back(out.text(e));
        o->times.push_back(e.time);
        o->families.push_back(e.family);
        o->lines += e.lines;
        o->rejected += e.rejected;
        break;
      case EntryKind::kStart:
        o->starts.push_back(out.infos[e.index]);
        break;
      case EntryKind::kEnd:
        o->lines += e.lines;
        o->rejected += e.rejected;
        o->ended = true;
        break;
      default:
        break;
    }
  }
}

// Feeds `data` in pieces of `piece` bytes, then closes the stream.
Out Run(match::Registry& reg, const Routing& routing, const std::string& data, size_t piece,
        const std::string& path = "node-a.log", StageOptions opt = {}) {
  RecordStage stage(reg, routing, opt, [](const std::string&) {});
  Origin o;
  o.path = path;
  o.name = NameFromPath(path);
  o.max_line_bytes = 1000;
  stage.Open(0, o);
  Out out;
  for (size_t at = 0; at < data.size(); at += piece) {
    stage.Feed(0, std::string_view(data).substr(at, piece), 1234 * kSecond);
    Take(*stage.output(0), &out);
  }
  stage.Close(0, false);
  Take(*stage.output(0), &out);
  return out;
}

Routing Forced(match::Registry& reg) {
  Routing r;
  r.forced_chain = "c";
  r.forced_family = reg.Find("t");
  return r;
}

}  // namespace

TEST_CASE("the same bytes give the same records whatever the read sizes") {
  auto reg = TestRegistry();
  std::string data;
  for (int i = 0; i < 30; ++i) {
    data += std::string(kCri1) + "P [2021-05-05|12:03:0" + std::to_string(i % 10) + ".000] part, \n";
    data += std::string(kCri1) + "F end " + std::to_string(i) + "\n";
    data += std::string(kCri1) + "F \tcontinued " + std::to_string(i) + "\n";
    data += "garbage that is not CRI\n";
  }
  Routing r = Forced(*reg);
  Out whole = Run(*reg, r, data, data.size());
  REQUIRE(whole.texts.size() == 30);
  CHECK(whole.texts[3] == "[2021-05-05|12:03:03.000] part, end 3\n\tcontinued 3");
  CHECK(whole.lines == 120);
  CHECK(whole.rejected == 30);
  for (size_t piece : {size_t(1), size_t(7), size_t(64), size_t(4096)}) {
    Out o = Run(*reg, r, data, piece);
    CHECK(o.texts == whole.texts);
    CHECK(o.times == whole.times);
    CHECK(o.lines == whole.lines);
    CHECK(o.rejected == whole.rejected);
  }
}

TEST_CASE("CRI partial records are joined, across small reads") {
  auto reg = TestRegistry();
  std::string data = std::string(kCri1) + "P first half, \n" + kCri1 + "P middle, \n" + kCri1 +
                     "F last\n" + kCri1 + "F next record\n";
  for (size_t piece : {size_t(1), size_t(7), size_t(4096)}) {
    Out o = Run(*reg, Forced(*reg), data, piece);
    REQUIRE(o.texts.size() == 2);
    CHECK(o.texts[0] == "first half, middle, last");
    CHECK(o.texts[1] == "next record");
    CHECK(o.lines == 4);
  }
}

TEST_CASE("a final line without newline is read at the end") {
  auto reg = TestRegistry();
  Out o = Run(*reg, Forced(*reg), "one\ntwo", 3);
  REQUIRE(o.texts.size() == 2);
  CHECK(o.texts[1] == "two");
  CHECK(o.lines == 2);
}

TEST_CASE("long lines are cut and counted; reading goes on") {
  auto reg = TestRegistry();
  RecordStage stage(*reg, Forced(*reg), {}, [](const std::string&) {});
  Origin origin;
  origin.path = "x.log";
  origin.max_line_bytes = 1000;
  stage.Open(0, origin);
  std::string big(1 << 20, 'x');
  std::string data = "before\n" + big + "\nafter\n";
  for (size_t at = 0; at < data.size(); at += 3000) {
    stage.Feed(0, std::string_view(data).substr(at, 3000), 0);
  }
  stage.Close(0, false);
  Out o;
  Take(*stage.output(0), &o);
  REQUIRE(o.texts.size() == 3);
  CHECK(o.texts[0] == "before");
  CHECK(o.texts[1].size() == 1000);
  CHECK(o.texts[2] == "after");
  CHECK(stage.counts(0).lines_cut == 1);
}

TEST_CASE("binary and invalid UTF-8 lines are skipped and counted") {
  auto reg = TestRegistry();
  std::string data = "good one\n";
  data += std::string("bin\0ary\n", 8);
  data += "bad \xff\xfe utf8\n";
  data += "caf\xc3\xa9 ok\n";
  Out o = Run(*reg, Forced(*reg), data, 5);
  REQUIRE(o.texts.size() == 2);
  CHECK(o.texts[1] == "caf\xc3\xa9 ok");
  CHECK(o.rejected == 2);
  CHECK(o.lines == 4);
}

TEST_CASE("times: runtime stamp, else message stamp, else the last good one; the first stamp goes back") {
  auto reg = TestRegistry();
  std::string data =
      "no stamp yet\n"
      "[2021-05-05|12:03:00.500] first stamp\n"
      "continued without stamp\n"
      "[2021-05-05|12:03:02.000] second\n";
  Out o = Run(*reg, Forced(*reg), data, 10);
  CHECK(o.times == std::vector<Nanos>{kT0 + 500 * kMillisecond, kT0 + 500 * kMillisecond,
                                      kT0 + 500 * kMillisecond, kT0 + 2 * kSecond});
}

TEST_CASE("a stream without any stamp takes the fallback (file) time") {
  auto reg = TestRegistry();
  Out o = Run(*reg, Forced(*reg), "a\nb\n", 1);
  CHECK(o.times == std::vector<Nanos>{1234 * kSecond, 1234 * kSecond});
}

TEST_CASE("the time zone of the rule, else of the chain, applies to zone-less stamps") {
  auto reg = TestRegistry();
  const std::string line = "[2021-05-05|12:03:00.000] x\n";
  Routing r = Forced(*reg);
  r.chains.push_back(KnownChain{"c", reg->Find("t"), 2 * 3600});
  CHECK(Run(*reg, r, line, 64).times == std::vector<Nanos>{kT0 - 2 * 3600 * kSecond});
  StreamRule rule;
  rule.tz_offset_seconds = -3600;
  r.rules.push_back(rule);
  CHECK(Run(*reg, r, line, 64).times == std::vector<Nanos>{kT0 + 3600 * kSecond});
}

TEST_CASE("the family is detected from the first records, which were held back") {
  auto reg = TestRegistry();
  std::string data = "[2021-05-05|12:03:00.000] tblock committed\n\tcontinued\nplain\n";
  Out o = Run(*reg, Routing{}, data, 4, "pod-0_ns_app-0123456789ab.log");
  REQUIRE(o.starts.size() == 1);
  CHECK(o.starts[0].family == reg->Find("t"));
  CHECK(o.starts[0].chain == "t/ns");  // <family>/<namespace>
  CHECK(o.texts == std::vector<std::string>{"[2021-05-05|12:03:00.000] tblock committed\n\tcontinued",
                                            "plain"});
  CHECK(o.families == std::vector<int>{reg->Find("t"), reg->Find("t")});
}

TEST_CASE("held-back records are bounded; an undecided stream goes on unknown") {
  auto reg = TestRegistry();
  StageOptions opt;
  opt.hold_records = 10;
  opt.hold_bytes = 1 << 20;
  std::string data;
  for (int i = 0; i < 25; ++i) data += "nothing any family knows " + std::to_string(i) + "\n";
  RecordStage stage(*reg, Routing{}, opt, [](const std::string&) {});
  Origin origin;
  origin.path = "x.log";
  stage.Open(0, origin);
  Out o;
  // Ten records decide (as unknown) before the end: they go on.
  stage.Feed(0, data, 0);
  Take(*stage.output(0), &o);
  REQUIRE(o.starts.size() == 1);
  CHECK(o.starts[0].family == -1);
  CHECK(o.texts.size() == 25);
}

TEST_CASE("live: a record that may take continuation lines waits hold_wait at the end, then goes") {
  auto reg = TestRegistry();
  StageOptions opt;
  opt.hold_wait = 50 * kMillisecond;
  RecordStage stage(*reg, Forced(*reg), opt, [](const std::string&) {});
  Origin origin;
  origin.path = "x.log";
  stage.Open(0, origin);
  Out o;
  stage.Feed(0, "[2021-05-05|12:03:00.000] a\n[2021-05-05|12:03:01.000] b\n", 0);
  stage.AtEnd(0, 1000 * kMillisecond);
  Take(*stage.output(0), &o);
  CHECK(o.texts == std::vector<std::string>{"[2021-05-05|12:03:00.000] a"});
  CHECK_FALSE(stage.Ready(0));  // b may still be continued: the others wait
  CHECK(stage.ResumePosition(0) == 28);  // b's first byte
  CHECK(stage.Expire(1020 * kMillisecond) == 1050 * kMillisecond);
  stage.Feed(0, "\tmore of b\n", 0);  // a continuation arrives in time
  stage.AtEnd(0, 1030 * kMillisecond);
  CHECK(stage.Expire(1079 * kMillisecond) == 1080 * kMillisecond);
  CHECK(stage.Expire(1080 * kMillisecond) == kNoTime);
  Take(*stage.output(0), &o);
  CHECK(o.texts.back() == "[2021-05-05|12:03:01.000] b\n\tmore of b");
  CHECK(stage.Ready(0));
  CHECK(stage.ResumePosition(0) == 67);
}

TEST_CASE("live, by default: a record at the end of what was read goes at once") {
  auto reg = TestRegistry();
  RecordStage stage(*reg, Forced(*reg), {}, [](const std::string&) {});
  Origin origin;
  origin.path = "x.log";
  stage.Open(0, origin);
  stage.Feed(0, "[2021-05-05|12:03:00.000] a\n\tcontinued in the same read\n", 0);
  Out o;
  Take(*stage.output(0), &o);
  CHECK(o.texts.empty());  // it may still take continuation lines from this read
  stage.AtEnd(0, 0);
  Take(*stage.output(0), &o);
  CHECK(o.texts == std::vector<std::string>{"[2021-05-05|12:03:00.000] a\n\tcontinued in the same read"});
  CHECK(stage.Ready(0));
  // A continuation line in a later read starts a record of its own.
  stage.Feed(0, "\tlate continuation\n", 0);
  stage.AtEnd(0, 1);
  Take(*stage.output(0), &o);
  CHECK(o.texts.back() == "\tlate continuation");
}

TEST_CASE("live: an incomplete last line does not hold others back and goes after incomplete_wait") {
  auto reg = TestRegistry();
  StageOptions opt;
  opt.incomplete_wait = 5 * kSecond;
  opt.hold_wait = 50 * kMillisecond;
  RecordStage stage(*reg, Routing{}, opt, [](const std::string&) {});
  Origin origin;
  origin.path = "x.log";
  stage.Open(0, origin);
  stage.Feed(0, "no newline yet", 0);
  stage.AtEnd(0, 0);
  Out o;
  Take(*stage.output(0), &o);
  CHECK(stage.Ready(0));
  CHECK(stage.ResumePosition(0) == 0);
  // Complete now, it is a record held back for the family: it waits
  // hold_wait more, then goes on unmatched (the family is still unknown).
  CHECK(stage.Expire(5 * kSecond) == 5 * kSecond + opt.hold_wait);
  CHECK_FALSE(stage.Ready(0));
  CHECK(stage.Expire(5 * kSecond + opt.hold_wait) == kNoTime);
  Take(*stage.output(0), &o);
  CHECK(o.texts == std::vector<std::string>{"no newline yet"});
  CHECK(o.families == std::vector<int>{-1});
  CHECK(stage.Ready(0));
}

TEST_CASE("a checkpoint's family stands when the rules leave it open") {
  auto reg = TestRegistry();
  Routing routing;
  StreamRule rule;
  rule.chain = "auto";
  routing.rules.push_back(rule);
  RecordStage stage(*reg, routing, {}, [](const std::string&) {});
  Origin origin;
  origin.path = "pod-0_ns_app-0123456789ab.log";
  origin.name = NameFromPath(origin.path);
  origin.saved_family = "t";  // a checkpoint's decision
  stage.Open(0, origin);
  Out o;
  Take(*stage.output(0), &o);
  REQUIRE(o.starts.size() == 1);
  CHECK(o.starts[0].family == reg->Find("t"));
}

TEST_CASE("a new file of a stream that is still open (rotation) keeps its family") {
  auto reg = TestRegistry();
  RecordStage stage(*reg, Routing{}, {}, [](const std::string&) {});
  Origin old_file;
  old_file.path = "pod-0_ns_app-0123456789ab.log";
  old_file.name = NameFromPath(old_file.path);
  stage.Open(0, old_file);
  stage.Feed(0, "[2021-05-05|12:03:00.000] tblock committed\n", 0);
  Origin new_file = old_file;
  new_file.path = "pod-0_ns_app-abcdef012345.log";  // the container restarted
  new_file.name = NameFromPath(new_file.path);
  stage.Open(1, new_file);
  Out o;
  Take(*stage.output(1), &o);
  REQUIRE(o.starts.size() == 1);  // placed at once, before any record of its own
  CHECK(o.starts[0].family == reg->Find("t"));
  CHECK(o.starts[0].chain == "t/ns");
}

TEST_CASE("records held back for the family are bounded in bytes, whatever their count") {
  auto reg = TestRegistry();
  StageOptions opt;
  opt.hold_records = 1000;
  opt.hold_bytes = 4096;
  RecordStage stage(*reg, Routing{}, opt, [](const std::string&) {});
  Origin origin;
  origin.path = "x.log";
  origin.max_line_bytes = 1 << 20;
  stage.Open(0, origin);
  // Two lines of 2100 bytes that no family knows: the second passes the
  // bound, so the family is decided (unknown) there and they go on.
  const std::string line(2100, 'q');
  stage.Feed(0, line + "\n" + line + "\n", 0);
  Out o;
  Take(*stage.output(0), &o);
  REQUIRE(o.starts.size() == 1);
  CHECK(o.starts[0].family == -1);
  CHECK(o.texts.size() == 2);
}

namespace {

// Families t, u and v (testdata/u.yaml): u and v both know the `safety
// refused` line; each has a rule and a fingerprint of its own.
std::unique_ptr<match::Registry> TieRegistry() {
  const std::string dir = std::string(QW_SOURCE_ROOT) + "/tests/unit/record/testdata";
  auto reg = match::Registry::LoadFiles({dir + "/t.yaml", dir + "/u.yaml", dir + "/v.yaml"});
  REQUIRE(reg);
  return std::move(*reg);
}

struct Logged {
  std::vector<std::string> lines;
  bool Has(const std::string& part) const {
    for (const auto& l : lines) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

Out RunLogged(match::Registry& reg, const std::string& data, StageOptions opt, Logged* log) {
  RecordStage stage(reg, Routing{}, opt, [log](const std::string& m) { log->lines.push_back(m); });
  Origin o;
  o.path = "pod-0_ns_app-0123456789ab.log";
  o.name = NameFromPath(o.path);
  stage.Open(0, o);
  Out out;
  stage.Feed(0, data, 0);
  stage.Close(0, false);
  Take(*stage.output(0), &out);
  return out;
}

}  // namespace

TEST_CASE("undecided: a line two families tie on is matched, and the family follows the evidence") {
  auto reg = TieRegistry();
  const int u = reg->Find("u"), v = reg->Find("v");
  StageOptions opt;
  opt.hold_records = 3;
  Logged log;
  // Three records decide nothing clearly (u and v tie on the first); then
  // the stream shows itself as v's.
  std::string data = "safety refused height 7\nplain\nplain\nvblock committed 1\nvblock committed 2\n";
  Out o = RunLogged(*reg, data, opt, &log);
  REQUIRE(o.texts.size() == 5);
  // Placed as the first candidate, not left unmatched.
  REQUIRE(o.starts.size() == 2);
  CHECK(o.starts[0].family == u);
  CHECK(o.families[0] == u);
  CHECK(log.Has("ambiguous: u, v"));
  // The first v-only line moves it to v, and it is matched as v's.
  CHECK(o.starts[1].family == v);
  CHECK(o.starts[1].chain == "v/ns");
  CHECK(o.families[3] == v);
  CHECK(o.families[4] == v);
  CHECK(log.Has("family decided again: u -> v"));
}

TEST_CASE("undecided: a fingerprint breaks a tie at once") {
  auto reg = TieRegistry();
  Logged log;
  Out o = RunLogged(*reg, "safety refused height 7 vmod::signer\nplain\n", {}, &log);
  REQUIRE(o.starts.size() == 1);
  CHECK(o.starts[0].family == reg->Find("v"));
  CHECK(o.families == std::vector<int>{reg->Find("v"), reg->Find("v")});
  CHECK(log.lines.empty());
}

TEST_CASE("undecided: an unknown stream is placed as soon as a line matches a family's rule") {
  auto reg = TieRegistry();
  StageOptions opt;
  opt.hold_records = 4;
  Logged log;
  std::string data;
  for (int i = 0; i < 6; ++i) data += "nothing anyone knows " + std::to_string(i) + "\n";
  data += "ublock committed 1\n";
  Out o = RunLogged(*reg, data, opt, &log);
  REQUIRE(o.texts.size() == 7);
  REQUIRE(o.starts.size() == 2);
  CHECK(o.starts[0].family == -1);
  CHECK(o.starts[1].family == reg->Find("u"));
  CHECK(o.families[6] == reg->Find("u"));
  CHECK(log.Has("family unknown"));
}

TEST_CASE("undecided, live: a held line some family's rules match is never released unmatched") {
  auto reg = TieRegistry();
  Logged log;
  RecordStage stage(*reg, Routing{}, {}, [&log](const std::string& m) { log.lines.push_back(m); });
  Origin origin;
  origin.path = "pod-0_ns_app-0123456789ab.log";
  origin.name = NameFromPath(origin.path);
  stage.Open(0, origin);
  stage.Feed(0, "safety refused height 9\n", 0);
  stage.AtEnd(0, 0);  // hold_wait 0: what was read goes on now
  Out o;
  Take(*stage.output(0), &o);
  REQUIRE(o.texts.size() == 1);
  REQUIRE(o.starts.size() == 1);
  CHECK(o.starts[0].family == reg->Find("u"));
  CHECK(o.families[0] == reg->Find("u"));
}

TEST_CASE("an indented line with its own stamp starts a record; one without continues") {
  auto reg = TestRegistry();
  std::string data =
      "[2021-05-05|12:03:00.000] tblock committed\n"
      "  [2021-05-05|12:03:01.000] tblock committed\n"
      "\tcontinued\n";
  Out o = Run(*reg, Forced(*reg), data, data.size());
  CHECK(o.texts == std::vector<std::string>{"[2021-05-05|12:03:00.000] tblock committed",
                                            "  [2021-05-05|12:03:01.000] tblock committed\n\tcontinued"});
}

TEST_CASE("a collector prefix comes off; the node's own stamp wins, the prefix's stands in") {
  auto reg = TestRegistry();
  std::string data =
      "May  5 13:00:00 host app[1]: [2021-05-05|12:03:00.000] tblock committed\n"
      "May  5 13:00:05 host app[1]: no stamp of its own\n"
      "May  5 13:00:06 host app[1]: \tcontinued\n";
  // Raw file (no runtime stamp); the file's year completes the syslog stamp.
  Out o = Run(*reg, Forced(*reg), data, 5, "node-a.log");
  REQUIRE(o.texts.size() == 2);
  CHECK(o.texts[0] == "[2021-05-05|12:03:00.000] tblock committed");
  CHECK(o.texts[1] == "no stamp of its own\n\tcontinued");
  CHECK(o.times[0] == kT0);
  CHECK(o.times[1] == ParseRfc3339("1970-05-05T13:00:05Z"));
}

TEST_CASE("the chain key (Kafka repartition): the chain a rule names, else the namespace") {
  auto reg = TestRegistry();
  Routing routing;
  StreamRule named;
  named.pod_re = std::make_shared<RE2>("val-.*");
  named.chain = "cosmoshub";
  routing.rules.push_back(named);
  StreamRule family;  // a family as the chain's name: that chain
  family.pod_re = std::make_shared<RE2>("tz-.*");
  family.chain = "t";
  routing.rules.push_back(family);
  StreamRule open;  // auto: the family decides, one chain per family and namespace
  open.chain = "auto";
  routing.rules.push_back(open);
  RecordStage stage(*reg, routing, {}, [](const std::string&) {});
  auto name = [](std::string pod, std::string ns) {
    return StreamName{std::move(pod), std::move(ns), "app", true};
  };
  CHECK(stage.ChainKey(name("val-a", "ns1")) == "cosmoshub");
  CHECK(stage.ChainKey(name("val-b", "ns2")) == "cosmoshub");  // whatever the namespace
  CHECK(stage.ChainKey(name("tz-0", "ns1")) == "t");
  CHECK(stage.ChainKey(name("other", "osmo")) == "osmo");
  CHECK(stage.ChainKey(StreamName{"bare", "", "", false}) == "");
  // Every stream of an automatic chain ("<family>/<namespace>") has its key.
  Out o = Run(*reg, Routing{}, "[2021-05-05|12:03:00.000] tblock committed\n", 64,
              "pod-0_ns_app-0123456789ab.log");
  REQUIRE(o.starts.size() == 1);
  RecordStage plain(*reg, Routing{}, {}, [](const std::string&) {});
  CHECK(o.starts[0].chain == "t/" + plain.ChainKey(NameFromPath("pod-0_ns_app-0123456789ab.log")));
  Routing forced = Forced(*reg);  // replay --chain
  RecordStage all(*reg, forced, {}, [](const std::string&) {});
  CHECK(all.ChainKey(name("x", "ns1")) == forced.forced_chain);
}

TEST_CASE("abandoned (a Kafka partition revoked): what was not taken is dropped, then a gone end") {
  auto reg = TestRegistry();
  RecordStage stage(*reg, Forced(*reg), {}, [](const std::string&) {});
  Origin origin;
  origin.path = "kafka:t/0/ns/pod/app";
  stage.Open(0, origin);
  Out o;
  // One record taken (handled, as by the flush before the revoke); the
  // next waits for what may continue it; two more fed and not taken
  // (waiting in the merge), and half a line.
  stage.Feed(0, "[2021-05-05|12:03:00.000] one\n[2021-05-05|12:03:01.000] two\n", 0);
  Take(*stage.output(0), &o);
  REQUIRE(o.texts == std::vector<std::string>{"[2021-05-05|12:03:00.000] one"});
  stage.Feed(0, "[2021-05-05|12:03:02.000] three\n[2021-05-05|12:03:03.000] four\n[2021-05-05|12:0",
             0);
  stage.Abandon(0);
  Out rest;
  Take(*stage.output(0), &rest);
  CHECK(rest.texts.empty());
  CHECK(rest.ended);
  // Lines dropped are not counted here: whoever reads them again counts them.
  CHECK(rest.lines == 0);
  const Output& out = *stage.output(0);
  REQUIRE(out.head > 0);
  CHECK((out.entries[out.head - 1].flags & kEntryGone) != 0);
  CHECK(stage.ended(0));
  // Nothing more comes of it, and a Close after it adds nothing.
  stage.Close(0, false);
  Take(*stage.output(0), &rest);
  CHECK(rest.texts.empty());
}
