#include <doctest/doctest.h>

#include "common/event.h"
#include "common/json.h"

using namespace qw;

TEST_CASE("JSON strings are escaped and always valid UTF-8") {
  CHECK(JsonString("a\"b\\c\n") == "\"a\\\"b\\\\c\\n\"");
  CHECK(JsonString(std::string("\x01", 1)) == "\"\\u0001\"");
  CHECK(JsonString("h\xc3\xa9") == "\"h\xc3\xa9\"");
  // Invalid bytes become U+FFFD.
  CHECK(JsonString("x\xff") == "\"x\xef\xbf\xbd\"");
  CHECK(IsValidUtf8("h\xc3\xa9"));
  CHECK_FALSE(IsValidUtf8("\xc3"));
  CHECK_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
}

TEST_CASE("event JSON follows the contract's field order and omits unknowns") {
  Event e;
  e.time = 1620216180LL * kSecond + 156 * kMillisecond;
  e.kind = EventKind::kNodeStalled;
  e.severity = Severity::kWarning;
  e.chain = "cosmoshub";
  e.node = "val-a";
  e.height = 42;
  e.id = MakeEventId(e.chain, e.node, e.kind, 42);
  e.AddDetailString("reason", "stalled");
  std::string out;
  AppendEventJson(out, e);
  CHECK(out ==
        "{\"id\":\"" + e.id +
            "\",\"time\":\"2021-05-05T12:03:00.156Z\",\"event\":\"node_stalled\","
            "\"severity\":\"warning\",\"chain\":\"cosmoshub\",\"node\":\"val-a\",\"height\":42,"
            "\"detail\":{\"reason\":\"stalled\"}}");
  e.namespace_ = "cosmos";
  e.height = -1;
  out.clear();
  AppendEventJson(out, e);
  CHECK(out.find("\"namespace\":\"cosmos\"") != std::string::npos);
  CHECK(out.find("\"height\"") == std::string::npos);
}

TEST_CASE("event ids are stable and distinguish what they concern") {
  auto a = MakeEventId("c", "n", EventKind::kBan, 1000);
  CHECK(a.size() == 16);
  CHECK(a == MakeEventId("c", "n", EventKind::kBan, 1000));
  CHECK(a != MakeEventId("c", "n", EventKind::kBan, 1001));
  CHECK(a != MakeEventId("c", "n", EventKind::kUnban, 1000));
  CHECK(a != MakeEventId("c", "m", EventKind::kBan, 1000));
  CHECK(a != MakeEventId("c", "n", "ban/held", 1000));
}

TEST_CASE("output order is time, chain, node, kind") {
  Event a, b;
  a.time = b.time = 5;
  a.chain = b.chain = "c";
  a.node = "x";
  b.node = "y";
  CHECK(EventLess(a, b));
  b.node = "x";
  a.kind = EventKind::kNodeStalled;
  b.kind = EventKind::kOutOfConsensus;
  CHECK(EventLess(a, b));
  CHECK_FALSE(EventLess(b, a));
  b.time = 4;
  CHECK(EventLess(b, a));
}
