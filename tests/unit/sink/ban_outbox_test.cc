// The ban decision body's exact bytes (README.md, "Ban controller": they are
// signed) and the outbox file on its own (docs/BAN-OUTBOX.md): records,
// reloading, compaction, files written by earlier versions.
#include "sink/ban_outbox.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/time.h"
#include "test_files.h"

namespace qw::sink {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;

const std::string kFffd = "\xEF\xBF\xBD";
constexpr Nanos kNow = 1735790000000000000;  // 2025-01-02T03:53:20Z

BanDecision Decision(const std::string& key) {
  BanDecision d;
  d.action = "ban";
  d.id = "81ddc3b1d77d4d40";
  d.idempotency_key = key;
  d.chain = "cosmoshub";
  d.node = "val-a";
  d.reason = "stalled";
  d.since = "2025-01-02T03:04:54.000Z";
  d.decided_at = "2025-01-02T03:34:54.000Z";
  d.body = DecisionBody(d);
  return d;
}

OutboxItem Item(const std::string& key) {
  OutboxItem i;
  i.entry.sink = "webhook-0123abcd";
  i.entry.decision = Decision(key);
  i.decided_at = ParseRfc3339(i.entry.decision.decided_at);
  return i;
}

TEST_CASE("decision body: documented key order, optional keys left out, no newline") {
  BanDecision d = Decision("ban-00112233445566778899aabbccddeeff");
  CHECK(DecisionBody(d) ==
        "{\"version\":1,\"action\":\"ban\",\"id\":\"81ddc3b1d77d4d40\","
        "\"idempotency_key\":\"ban-00112233445566778899aabbccddeeff\",\"chain\":\"cosmoshub\","
        "\"node\":\"val-a\",\"reason\":\"stalled\",\"since\":\"2025-01-02T03:04:54.000Z\","
        "\"decided_at\":\"2025-01-02T03:34:54.000Z\",\"evidence\":[],\"operator\":false}");
  d.namespace_ = "cosmos";
  d.validator = "A1B2C3";
  d.height = 0;  // a known height, even 0, is written
  d.operator_request = true;
  std::string body = DecisionBody(d);
  CHECK(body.find("\"chain\":\"cosmoshub\",\"namespace\":\"cosmos\",\"node\":\"val-a\","
                  "\"validator\":\"A1B2C3\",\"reason\"") != std::string::npos);
  CHECK(body.find("\"decided_at\":\"2025-01-02T03:34:54.000Z\",\"height\":0,\"evidence\":[],"
                  "\"operator\":true}") != std::string::npos);
}

TEST_CASE("decision body: evidence lines with non-ASCII, invalid UTF-8 and control characters") {
  BanDecision d = Decision("ban-k");
  d.evidence = {
      "caf\xC3\xA9 \xE2\x9C\x93 ok",                   // UTF-8 stays as it is
      "bad \xFF byte, cut \xE2\x82",                  // each bad byte: U+FFFD
      "tab\there \x01 bs\b ff\f del\x7f",            // JSON's escapes
      "err=\"peer \\ gone\"",
  };
  const std::string body = DecisionBody(d);
  CHECK(body.find("\"evidence\":["
                  "\"caf\xC3\xA9 \xE2\x9C\x93 ok\","
                  "\"bad " + kFffd + " byte, cut " + kFffd + kFffd + "\","
                  "\"tab\\there \\u0001 bs\\b ff\\f del\x7f\","
                  "\"err=\\\"peer \\\\ gone\\\"\""
                  "],\"operator\":false}") != std::string::npos);
}

TEST_CASE("outbox: records appended, reloaded by a new instance, acknowledgements kept") {
  TempDir dir("qw-outbox-test");
  ManualClock clock(kNow);
  std::vector<std::string> log;
  auto logger = [&](const std::string& l) { log.push_back(l); };
  std::string path;
  {
    Outbox box(dir.path(), "webhook-0123abcd", &clock, logger);
    REQUIRE(box.Open().has_value());
    CHECK_FALSE(fs::exists(box.path()));  // created with the first decision
    OutboxItem a = Item("ban-a");
    a.entry.decision.evidence = {"line \xFF"};
    a.entry.decision.body = DecisionBody(a.entry.decision);
    REQUIRE(box.Add(a));
    REQUIRE(box.Add(Item("ban-b")));
    CHECK(box.Has("ban-a"));
    CHECK_FALSE(box.Has("ban-c"));
    CHECK(box.RecordFailure(0, "HTTP 503") == 1);
    REQUIRE(box.RecordAck(0, kNow + kSecond));
    CHECK(box.pending() == 1);
    CHECK(box.oldest_pending() == ParseRfc3339("2025-01-02T03:34:54.000Z"));
    path = box.path();
  }
  CHECK(fs::path(path).filename() == "ban-outbox-webhook-0123abcd.jsonl");
  std::string data = ReadFile(path);
  std::istringstream lines(data);
  std::string l1, l2, l3, l4;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  std::getline(lines, l4);
  CHECK(l1.rfind("{\"type\":\"decision\",\"decision\":{\"version\":1,\"action\":\"ban\"", 0) == 0);
  CHECK(l1.find("\"evidence\":[\"line " + kFffd + "\"]") != std::string::npos);
  CHECK(l3 == "{\"type\":\"attempt\",\"key\":\"ban-a\",\"attempts\":1,\"error\":\"HTTP 503\"}");
  CHECK(l4 == "{\"type\":\"ack\",\"key\":\"ban-a\",\"at\":\"2025-01-02T03:53:21.000Z\",\"attempts\":2}");

  Outbox again(dir.path(), "webhook-0123abcd", &clock, logger);
  REQUIRE(again.Open().has_value());
  REQUIRE(again.items().size() == 2);
  const OutboxEntry& a = again.items()[0].entry;
  CHECK(a.acknowledged);
  CHECK(a.attempts == 2);
  CHECK(a.last_error == "HTTP 503");
  CHECK(a.decision.evidence == std::vector<std::string>{"line " + kFffd});
  CHECK(again.items()[0].acked_at == kNow + kSecond);
  CHECK_FALSE(again.items()[1].entry.acknowledged);
  CHECK(again.Has("ban-b"));
  CHECK(log.empty());

  auto all = ReadOutboxes(dir.path());
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].sink == "webhook-0123abcd");
  CHECK((*all)[1].decision.body == DecisionBody(Decision("ban-b")));
}

TEST_CASE("outbox: a file written by the earlier writer (\\u escapes, compacted records) loads") {
  TempDir dir("qw-outbox-test");
  ManualClock clock(kNow);
  const std::string body =
      "{\"version\":1,\"action\":\"unban\",\"id\":\"x1\",\"idempotency_key\":\"unban-k\","
      "\"chain\":\"c\",\"namespace\":\"ns\",\"node\":\"n\",\"reason\":\"operator\","
      "\"since\":\"2025-01-02T03:04:54.000Z\",\"decided_at\":\"2025-01-02T03:34:54.000Z\","
      "\"height\":7,\"evidence\":[\"a\\u0008b\\u007f\"],\"operator\":true}";
  {
    std::ofstream out(dir.path() + "/ban-outbox-exec-deadbeef.jsonl", std::ios::binary);
    out << "{\"type\":\"decision\",\"attempts\":3,\"last_error\":\"exit status 1\","
           "\"decision\":" << body << "}\n"
        << "not json\n"
        << "{\"type\":\"attempt\",\"key\":\"unban-k\",\"attempts\":4,\"error\":\"exit status 2\"}\n";
  }
  std::vector<std::string> log;
  Outbox box(dir.path(), "exec-deadbeef", &clock, [&](const std::string& l) { log.push_back(l); });
  REQUIRE(box.Open().has_value());
  REQUIRE(box.items().size() == 1);
  const OutboxEntry& e = box.items()[0].entry;
  CHECK(e.attempts == 4);
  CHECK(e.last_error == "exit status 2");
  CHECK(e.decision.operator_request);
  CHECK(e.decision.height == 7);
  CHECK(e.decision.evidence == std::vector<std::string>{"a\bb\x7f"});
  // The body is rebuilt from the fields, as this version writes it.
  CHECK(e.decision.body.find("\"evidence\":[\"a\\bb\x7f\"]") != std::string::npos);
  // The unreadable line was reported and the file rewritten, one line per
  // decision with what the records said folded in.
  REQUIRE(log.size() == 1);
  CHECK(log[0].rfind("1 unreadable line(s) in ", 0) == 0);
  CHECK(ReadFile(box.path()) ==
        "{\"type\":\"decision\",\"attempts\":4,\"last_error\":\"exit status 2\",\"decision\":" +
            e.decision.body + "}\n");
}

TEST_CASE("outbox: compaction keeps every pending decision and folds the attempts in") {
  TempDir dir("qw-outbox-test");
  ManualClock clock(kNow);
  Outbox box(dir.path(), "webhook-1", &clock, [](const std::string&) {});
  REQUIRE(box.Open().has_value());
  REQUIRE(box.Add(Item("ban-a")));
  REQUIRE(box.Add(Item("ban-b")));
  // 2 decisions: compaction when the file holds more than 2*2+64 records.
  for (int i = 0; i < 80; ++i) box.RecordFailure(1, "HTTP 500");
  REQUIRE(box.RecordAck(0, kNow));
  std::string data = ReadFile(box.path());
  size_t lines = 0;
  for (char c : data) lines += c == '\n';
  CHECK(lines < 68);
  Outbox again(dir.path(), "webhook-1", &clock, [](const std::string&) {});
  REQUIRE(again.Open().has_value());
  REQUIRE(again.items().size() == 2);
  CHECK(again.items()[0].entry.acknowledged);
  CHECK(again.items()[1].entry.attempts == 80);
  CHECK(again.items()[1].entry.last_error == "HTTP 500");
  CHECK_FALSE(again.items()[1].entry.acknowledged);
}

TEST_CASE("outbox: a damaged line loses no undelivered decision (previous generation, file kept)") {
  TempDir dir("qw-outbox-test");
  ManualClock clock(kNow);
  {
    Outbox box(dir.path(), "webhook-1", &clock, [](const std::string&) {});
    REQUIRE(box.Open().has_value());
    REQUIRE(box.Add(Item("ban-a")));
    REQUIRE(box.Add(Item("ban-b")));
    // Enough failures to compact: the file before it becomes .prev.
    for (int i = 0; i < 80; ++i) box.RecordFailure(1, "HTTP 500");
    REQUIRE(box.Add(Item("ban-c")));
  }
  const std::string path = dir / "ban-outbox-webhook-1.jsonl";
  REQUIRE(fs::exists(path + ".prev"));
  // A disk fault garbles the record of ban-a (the first line) in the newest file.
  std::string data = ReadFile(path);
  size_t a = data.find("ban-a");
  REQUIRE(a != std::string::npos);
  REQUIRE(a < data.find('\n'));
  std::string damaged = data;
  for (size_t i = 0; i < data.find('\n'); ++i) damaged[i] = '#';
  testing::WriteFile(path, damaged);
  std::vector<std::string> log;
  Outbox again(dir.path(), "webhook-1", &clock, [&](const std::string& l) { log.push_back(l); });
  REQUIRE(again.Open().has_value());
  // ban-a comes back from the previous generation;
  // ban-b and ban-c are read from the file itself.
  REQUIRE(again.items().size() == 3);
  CHECK(again.Has("ban-a"));
  CHECK(again.Has("ban-b"));
  CHECK(again.Has("ban-c"));
  CHECK(again.pending() == 3);
  REQUIRE(log.size() == 1);
  CHECK(log[0].find("1 unreadable line(s)") != std::string::npos);
  CHECK(log[0].find("kept as " + path + ".damaged") != std::string::npos);
  CHECK(log[0].find("1 undelivered decision(s) taken back from " + path + ".prev") !=
        std::string::npos);
  // The damaged file is kept as found, for a person to look at.
  CHECK(ReadFile(path + ".damaged") == damaged);
  // The rewritten file holds all three: a further start reads them cleanly.
  Outbox third(dir.path(), "webhook-1", &clock, [](const std::string&) {});
  REQUIRE(third.Open().has_value());
  CHECK(third.pending() == 3);
}

}  // namespace
}  // namespace qw::sink
