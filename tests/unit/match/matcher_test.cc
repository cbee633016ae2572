#include "match/matcher.h"

#include <doctest/doctest.h>

#include "match/registry.h"

using namespace qw;
using namespace qw::match;

namespace {

const char* kPatterns = R"(
family: demo
aliases: [demo-alias]
rules:
  - name: vote
    signal: vote_signed
    regex: 'signed and pushed vote.*Vote\{\d+:(?P<validator>[0-9A-F]+) (?P<height>\d+)/0*(?P<round>\d+)/\w+\((?P<type>\w+)\) (?P<block_id>[0-9A-F]+)'
    tests:
      - line: 'signed and pushed vote vote="Vote{0:A1B2C3D4E5F6 7/00/SIGNED_MSG_TYPE_PRECOMMIT(Precommit) 8C1DDE2A4B6F 3F2E1D0C9B8A @ 2025-01-02T03:00:05.123Z}"'
        source: test
        want: {validator: A1B2C3D4E5F6, height: 7, round: 0, type: Precommit, block_id: 8C1DDE2A4B6F}
  - name: commit
    signal: block_committed
    regex: '(?i)committed state'
    fields: {height: height}
    tests:
      - line: 'committed state height=5'
        source: test
        want: {height: 5}
  - name: failure
    signal: consensus_failure
    regex: 'CONSENSUS FAILURE'
    reason: consensus_failure
    tests:
      - line: 'CONSENSUS FAILURE!!! committed state'
        source: test
)";

}  // namespace

TEST_CASE("key=value and JSON fields are found without regex captures") {
  std::string_view v;
  CHECK(FindKeyValue("I[x] committed state module=state height=15 num_txs=0", "height", &v));
  CHECK(v == "15");
  CHECK(FindKeyValue(R"({"level":"info","height":329687,"num_txs":0})", "height", &v));
  CHECK(v == "329687");
  CHECK(FindKeyValue(R"({"height":"12","x":1})", "height", &v));
  CHECK(v == "12");
  CHECK(FindKeyValue(R"(msg err="a b c" height=3)", "err", &v));
  CHECK(v == "a b c");
  // A key that is only the end of another key does not count.
  CHECK_FALSE(FindKeyValue("max_peer_height=99", "height", &v));
  CHECK(FindKeyValue("max_peer_height=99 height=7", "height", &v));
  CHECK(v == "7");
  CHECK_FALSE(FindKeyValue("no fields here", "height", &v));
}

TEST_CASE("the first matching rule wins and extracts its fields") {
  auto pf = LoadPatternText("demo.yaml", kPatterns);
  REQUIRE(pf);
  auto m = FamilyMatcher::Create(*pf);
  REQUIRE(m);
  Signal s;
  REQUIRE((*m)->Match("3:00AM INF committed state height=42 module=state", &s));
  CHECK(s.kind == SignalKind::kBlockCommitted);
  CHECK(s.height == 42);
  // Matches both 'commit' and 'failure': the earlier rule in the file wins.
  REQUIRE((*m)->Match("CONSENSUS FAILURE!!! committed state", &s));
  CHECK(s.kind == SignalKind::kBlockCommitted);
  REQUIRE((*m)->Match("CONSENSUS FAILURE!!! err=boom", &s));
  CHECK(s.kind == SignalKind::kConsensusFailure);
  CHECK(s.reason == "consensus_failure");
  REQUIRE((*m)->Match(pf->rules[0].tests[0].line, &s));
  CHECK(s.kind == SignalKind::kVoteSigned);
  CHECK(s.vote_type == VoteType::kPrecommit);
  CHECK(s.validator == "A1B2C3D4E5F6");
  CHECK(s.round == 0);
  CHECK_FALSE((*m)->Match("p2p noise Receive peer=abc", &s));
}

TEST_CASE("bad pattern files are refused with file, line and reason") {
  auto bad_regex = LoadPatternText("x.yaml", "family: x\nrules:\n  - name: a\n    signal: peers\n    regex: '(unclosed'\n    tests: [{line: a, source: s}]\n");
  REQUIRE_FALSE(bad_regex);
  CHECK(bad_regex.error().message.find("x.yaml:5:") == 0);
  CHECK(bad_regex.error().message.find("bad regex") != std::string::npos);
  auto bad_key = LoadPatternText("x.yaml", "family: x\nrulez: []\n");
  REQUIRE_FALSE(bad_key);
  CHECK(bad_key.error().message.find("x.yaml:2: unknown key 'rulez'") == 0);
  auto bad_signal = LoadPatternText("x.yaml", "family: x\nrules:\n  - name: a\n    signal: nope\n    regex: a\n    tests: [{line: a, source: s}]\n");
  REQUIRE_FALSE(bad_signal);
  CHECK(bad_signal.error().message.find("x.yaml:4: unknown signal 'nope'") == 0);
  auto bad_group = LoadPatternText("x.yaml", "family: x\nrules:\n  - name: a\n    signal: peers\n    regex: '(?P<bogus>a)'\n    tests: [{line: a, source: s}]\n");
  REQUIRE_FALSE(bad_group);
  CHECK(bad_group.error().message.find("'bogus' is not a field") != std::string::npos);
  auto no_tests = LoadPatternText("x.yaml", "family: x\nrules:\n  - name: a\n    signal: peers\n    regex: a\n");
  REQUIRE_FALSE(no_tests);
  CHECK(no_tests.error().message.find("has no tests") != std::string::npos);
  auto yaml_error = LoadPatternText("x.yaml", "family: x\nrules: [\n");
  REQUIRE_FALSE(yaml_error);
  CHECK(yaml_error.error().message.find("x.yaml:") == 0);
}

TEST_CASE("the built-in registry finds families by name and alias and detects them") {
  auto reg = Registry::LoadEmbedded();
  REQUIRE(reg);
  int c = (*reg)->Find("cometbft");
  REQUIRE(c >= 0);
  for (const char* alias : {"cosmos", "cosmoshub", "gaia", "terra", "iris", "tendermint"}) {
    CHECK((*reg)->Find(alias) == c);
  }
  CHECK((*reg)->Find("no-such-chain") == -1);
  std::vector<std::string_view> samples = {
      "I[2021-05-05|12:03:00.156] Committed state                              module=state height=5 txs=0 appHash=AB",
      "3:04PM INF committed state height=6 module=state num_txs=0"};
  CHECK((*reg)->Detect(samples).family == c);
  auto unknown = (*reg)->Detect({"hello world", "nothing to see"});
  CHECK(unknown.family == -1);
  CHECK_FALSE(unknown.reason.empty());
}

TEST_CASE("matching a whole buffer gives what matching each record gives") {
  auto reg = Registry::LoadEmbedded();
  REQUIRE(reg);
  for (size_t f = 0; f < (*reg)->size(); ++f) {
    const PatternFile& pf = (*reg)->file(f);
    // Every test line of the family, noise between them, and records that
    // are excluded (inactive) from matching.
    std::vector<std::string> lines;
    for (const auto& r : pf.rules) {
      for (const auto& t : r.tests) lines.push_back(t.line);
    }
    for (const auto& t : pf.non_matching) lines.push_back(t.line);
    lines.push_back("D[2021-05-05|12:03:00.156] Receive   module=p2p peer=abc chId=32");
    lines.push_back("");
    std::string buf;
    std::vector<uint32_t> starts, lengths;
    std::vector<uint8_t> active;
    for (size_t i = 0; i < lines.size(); ++i) {
      starts.push_back(static_cast<uint32_t>(buf.size()));
      lengths.push_back(static_cast<uint32_t>(lines[i].size()));
      active.push_back(i % 7 != 3);
      buf += lines[i];
      buf += '\n';
    }
    auto with_prefilter = FamilyMatcher::Create(pf, (*reg)->Prefilter(f));
    auto plain = FamilyMatcher::Create(pf);
    REQUIRE(with_prefilter);
    REQUIRE(plain);
    (*plain)->DisableVectorscan();
    INFO(pf.family, " prefilter: ", (*with_prefilter)->prefilter_name(), " ",
         (*with_prefilter)->prefilter_note());
    // Built with libhs, every family uses it unless its self-check failed
    // (then stderr said so and RE2::Set runs: slower, never wrong).
    if (HsDatabase::Available() && (*reg)->prefilter_fallbacks() == 0) {
      CHECK(std::string((*with_prefilter)->prefilter_name()) == HsDatabase::Engine());
    }
    std::vector<Signal> a(lines.size()), b(lines.size());
    size_t hits_a = (*with_prefilter)->MatchRecords(buf, starts.data(), lengths.data(),
                                                    active.data(), lines.size(), a.data());
    size_t hits_b = (*plain)->MatchRecords(buf, starts.data(), lengths.data(), active.data(),
                                           lines.size(), b.data());
    CHECK(hits_a == hits_b);
    CHECK(hits_a > 0);
    for (size_t i = 0; i < lines.size(); ++i) {
      INFO(lines[i]);
      Signal one;
      bool matched = (*plain)->Match(lines[i], &one);
      CHECK(a[i].kind == b[i].kind);
      CHECK(a[i].rule == b[i].rule);
      CHECK(a[i].height == b[i].height);
      CHECK(a[i].validator == b[i].validator);
      if (active[i]) {
        CHECK(a[i].kind == (matched ? one.kind : SignalKind::kNone));
      } else {
        CHECK(a[i].kind == SignalKind::kNone);
      }
    }
  }
}

TEST_CASE("the prefilter self-check passes every family, and catches a prefilter that loses a match") {
  auto reg = Registry::LoadEmbedded();
  REQUIRE(reg);
  for (size_t f = 0; f < (*reg)->size(); ++f) {
    const PatternFile& pf = (*reg)->file(f);
    std::string why;
    auto db = HsDatabase::Compile(pf, &why);
    if (!HsDatabase::Available()) {
      CHECK(db == nullptr);
      continue;
    }
    REQUIRE_MESSAGE(db != nullptr, why);
    INFO(pf.family);
    CHECK(PrefilterSelfCheck(pf, db) == "");
    // A database built from rules that differ in one regex (rule 0 can
    // never match) stands for a prefilter that loses that rule's matches.
    PatternFile broken = pf;
    broken.rules[0].regex = "qw-self-check-never-matches-this";
    auto bad = HsDatabase::Compile(broken, &why);
    REQUIRE(bad != nullptr);
    const std::string d = PrefilterSelfCheck(pf, bad);
    CHECK(d.find("record") == 0);
    CHECK(d.find("re2-set") != std::string::npos);
  }
  CHECK((*reg)->prefilter_fallbacks() == 0);
}
