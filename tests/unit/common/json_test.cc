// UTF-8 validation and repair, JSON string escaping, and the document
// helpers (DumpJson, ParseJson). Expected bytes are worked out from the
// UTF-8 definition (RFC 3629) and the JSON grammar (RFC 8259).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "common/json.h"

using namespace qw;

namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

TEST_CASE("UTF-8: well-formed sequences of every length and the range limits") {
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("plain ascii"));
  CHECK(IsValidUtf8("h\xC3\xA9"));                // é, 2 bytes
  CHECK(IsValidUtf8("\xE2\x82\xAC"));             // €, 3 bytes
  CHECK(IsValidUtf8("\xF0\x9F\x98\x80"));         // U+1F600, 4 bytes
  CHECK(IsValidUtf8("\xC2\x80"));                 // U+0080, smallest 2-byte
  CHECK(IsValidUtf8("\xE0\xA0\x80"));             // U+0800, smallest 3-byte
  CHECK(IsValidUtf8("\xF0\x90\x80\x80"));         // U+10000, smallest 4-byte
  CHECK(IsValidUtf8("\xF4\x8F\xBF\xBF"));         // U+10FFFF, the last code point
  CHECK(IsValidUtf8("\xED\x9F\xBF"));             // U+D7FF, just below the surrogates
  CHECK(IsValidUtf8("\xEE\x80\x80"));             // U+E000, just above them
  CHECK(IsValidUtf8(std::string("a\0b", 3)));     // NUL is a character
  CHECK(IsValidUtf8(Repeat("\xC3\xA9", 100)));    // long enough for the vector path
}

TEST_CASE("UTF-8: invalid bytes, overlong forms, surrogates, truncation are refused") {
  // Bytes that never occur.
  CHECK_FALSE(IsValidUtf8("\xFF"));
  CHECK_FALSE(IsValidUtf8("\xFE"));
  CHECK_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));   // lead byte past U+10FFFF
  // A continuation byte without a lead.
  CHECK_FALSE(IsValidUtf8("\x80"));
  CHECK_FALSE(IsValidUtf8("a\xBF" "b"));
  // Overlong encodings (the same code point in more bytes than needed).
  CHECK_FALSE(IsValidUtf8("\xC0\x80"));           // NUL in 2 bytes
  CHECK_FALSE(IsValidUtf8("\xC1\xBF"));           // U+007F in 2 bytes
  CHECK_FALSE(IsValidUtf8("\xE0\x80\xAF"));       // '/' in 3 bytes
  CHECK_FALSE(IsValidUtf8("\xE0\x9F\xBF"));       // U+07FF in 3 bytes
  CHECK_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));   // '/' in 4 bytes
  CHECK_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));   // U+FFFF in 4 bytes
  // UTF-16 surrogates are not characters.
  CHECK_FALSE(IsValidUtf8("\xED\xA0\x80"));       // U+D800
  CHECK_FALSE(IsValidUtf8("\xED\xBF\xBF"));       // U+DFFF
  CHECK_FALSE(IsValidUtf8("\xED\xA0\xBD\xED\xB8\x80"));  // a CESU-8 pair
  // Above U+10FFFF.
  CHECK_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));   // U+110000
  // Truncated sequences, at the end and before another character.
  CHECK_FALSE(IsValidUtf8("\xC3"));
  CHECK_FALSE(IsValidUtf8("\xE2\x82"));
  CHECK_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  CHECK_FALSE(IsValidUtf8("\xE2\x82" "x"));
  CHECK_FALSE(IsValidUtf8("\xF0\x9F\x98\xC3\xA9"));
  // A fault far into a long string (past the first vector blocks).
  CHECK_FALSE(IsValidUtf8(Repeat("a", 200) + "\xC3"));
  CHECK_FALSE(IsValidUtf8(Repeat("\xC3\xA9", 100) + "\xED\xA0\x80" + Repeat("b", 50)));
}

TEST_CASE("UTF-8: sequence lengths and code points") {
  uint32_t cp = 0;
  CHECK(Utf8SeqLen("A", 0, &cp) == 1);
  CHECK(cp == 0x41);
  CHECK(Utf8SeqLen("h\xC3\xA9", 1, &cp) == 2);
  CHECK(cp == 0xE9);
  CHECK(Utf8SeqLen("\xE2\x82\xAC", 0, &cp) == 3);
  CHECK(cp == 0x20AC);
  CHECK(Utf8SeqLen("\xF0\x9F\x98\x80", 0, &cp) == 4);
  CHECK(cp == 0x1F600);
  CHECK(Utf8SeqLen("\xF4\x8F\xBF\xBF", 0, &cp) == 4);
  CHECK(cp == 0x10FFFF);
  CHECK(Utf8SeqLen("\xC2\x85", 0, &cp) == 2);  // NEL, a C1 control
  CHECK(cp == 0x85);
  // None at all.
  CHECK(Utf8SeqLen("\x80", 0) == 0);
  CHECK(Utf8SeqLen("\xC3", 0) == 0);               // truncated at the end
  CHECK(Utf8SeqLen("\xE2\x82" "x", 0) == 0);       // truncated before 'x'
  CHECK(Utf8SeqLen("\xC0\x80", 0) == 0);           // overlong
  CHECK(Utf8SeqLen("\xED\xA0\x80", 0) == 0);       // surrogate
  CHECK(Utf8SeqLen("\xF4\x90\x80\x80", 0) == 0);   // above U+10FFFF
  CHECK(Utf8SeqLen("\xFF", 0) == 0);
  // Only the sequence at i counts: what follows it may be anything.
  CHECK(Utf8SeqLen("\xC3\xA9\xFF", 0) == 2);
}

TEST_CASE("UTF-8: repair replaces each bad byte with U+FFFD and keeps the rest") {
  CHECK(ToValidUtf8("h\xC3\xA9") == "h\xC3\xA9");
  CHECK(ToValidUtf8("x\xFF") == "x" + kFffd);
  // A truncated 3-byte sequence is two bad bytes: two replacements.
  CHECK(ToValidUtf8("a\xE2\x82" "b") == "a" + kFffd + kFffd + "b");
  // A surrogate's three bytes: the lead is bad (its sequence is not
  // well-formed), then two stray continuation bytes.
  CHECK(ToValidUtf8("\xED\xA0\x80") == kFffd + kFffd + kFffd);
  // An overlong NUL: two replacements, never a NUL.
  CHECK(ToValidUtf8("\xC0\x80") == kFffd + kFffd);
  // A good character right after a bad byte survives.
  CHECK(ToValidUtf8("\xFF\xF0\x9F\x98\x80") == kFffd + "\xF0\x9F\x98\x80");
  CHECK(IsValidUtf8(ToValidUtf8(Repeat("\xC3", 70) + Repeat("\xA9", 3))));
}

TEST_CASE("JSON strings: escapes, and invalid bytes replaced one by one") {
  CHECK(JsonString("") == "\"\"");
  CHECK(JsonString("a\"b\\c\n\r\t") == "\"a\\\"b\\\\c\\n\\r\\t\"");
  CHECK(JsonString(std::string("\x01\x08\x0c\x1b\x1f", 5)) ==
        "\"\\u0001\\u0008\\u000c\\u001b\\u001f\"");
  CHECK(JsonString("\x7f") == "\"\\u007f\"");
  CHECK(JsonString(std::string("\0", 1)) == "\"\\u0000\"");
  CHECK(JsonString("/ and \xE2\x82\xAC") == "\"/ and \xE2\x82\xAC\"");  // no \u escapes
  CHECK(JsonString("q\"\xE2\x82" "z") == "\"q\\\"" + kFffd + kFffd + "z\"");
  std::string out = "prefix:";
  AppendJsonString(out, "v");
  CHECK(out == "prefix:\"v\"");
}

TEST_CASE("documents: compact, in insertion order, UTF-8 kept, bad bytes replaced") {
  nlohmann::ordered_json j;
  j["zeta"] = 1;
  j["alpha"] = "caf\xC3\xA9";
  j["list"] = {true, nullptr, -7, "x"};
  j["nested"] = {{"b", 2}, {"a", 1}};
  CHECK(DumpJson(j) ==
        "{\"zeta\":1,\"alpha\":\"caf\xC3\xA9\",\"list\":[true,null,-7,\"x\"],"
        "\"nested\":{\"b\":2,\"a\":1}}");

  // nlohmann's escaping of control characters.
  nlohmann::ordered_json c;
  c["s"] = std::string("\b\f\n\x01\x7f\"\\", 7);
  CHECK(DumpJson(c) == "{\"s\":\"\\b\\f\\n\\u0001\x7f\\\"\\\\\"}");

  // Invalid UTF-8 in values and keys, nested: one U+FFFD per bad byte.
  nlohmann::ordered_json bad;
  bad["ok"] = "fine";
  bad["k\xFF"] = nlohmann::ordered_json::array({"a\xE2\x82" "b", {{"in\xC0\x80", "\xED\xA0\x80"}}});
  CHECK(DumpJson(bad) == "{\"ok\":\"fine\",\"k" + kFffd + "\":[\"a" + kFffd + kFffd + "b\",{\"in" +
                             kFffd + kFffd + "\":\"" + kFffd + kFffd + kFffd + "\"}]}");
}

TEST_CASE("documents: parsing errors are returned with their position, never thrown") {
  auto ok = ParseJson(" {\"a\":[1,2],\"b\":\"\xC3\xA9\"} \n");
  REQUIRE(ok.has_value());
  CHECK((*ok)["a"][1] == 2);
  CHECK((*ok)["b"] == "\xC3\xA9");
  // Keys keep the file's order.
  CHECK(ok->begin().key() == "a");

  for (const char* bad : {"", "   ", "{", "{\"a\":}", "[1,]", "nul", "{} x", "{\"a\":1}{}",
                          "\"\xFF\"", "\"\xED\xA0\x80\"", "1e400", "{\"a\":\"\x01\"}"}) {
    CAPTURE(bad);
    auto r = ParseJson(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("[json.exception") == std::string::npos);
    CHECK_FALSE(r.error().message.empty());
  }
  auto r = ParseJson("{\n\"a\": tru}");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("line 2") != std::string::npos);
}
