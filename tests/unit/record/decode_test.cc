#include "record/decode.h"

#include <doctest/doctest.h>

using namespace qw;
using namespace qw::record;

TEST_CASE("CRI lines") {
  Decoded d;
  REQUIRE(DecodeCri("2016-10-06T00:17:09.669794202Z stdout F I[x] committed state", &d));
  CHECK(d.message == "I[x] committed state");
  CHECK_FALSE(d.partial);
  CHECK(d.runtime_time == 1475713029LL * kSecond + 669794202);
  REQUIRE(DecodeCri("2016-10-06T00:17:09.669794202+02:00 stderr P part one ", &d));
  CHECK(d.partial);
  CHECK(d.message == "part one ");
  REQUIRE(DecodeCri("2016-10-06T00:17:09.669794202Z stdout F", &d));
  CHECK(d.message.empty());
  CHECK_FALSE(DecodeCri("2016-10-06T00:17:09Z stdin F x", &d));
  CHECK_FALSE(DecodeCri("2016-10-06T00:17:09Z stdout X x", &d));
  CHECK_FALSE(DecodeCri("I[2016-10-06|00:17:09.669] committed state", &d));
}

TEST_CASE("docker json-file lines") {
  DockerDecoder dec;
  Decoded d;
  REQUIRE(dec.Decode(
      R"({"log":"I[2021] committed state height=5\n","stream":"stdout","time":"2021-05-05T12:03:00.156Z"})",
      &d));
  CHECK(d.message == "I[2021] committed state height=5");
  CHECK_FALSE(d.partial);
  CHECK(d.runtime_time == 1620216180LL * kSecond + 156 * kMillisecond);
  // Escapes are undone; a record without newline is a partial (16 KiB split).
  REQUIRE(dec.Decode(R"({"log":"say \"hi\"\u00e9","stream":"stdout","time":"2021-05-05T12:03:00Z"})", &d));
  CHECK(d.message == "say \"hi\"\xc3\xa9");
  CHECK(d.partial);
  // Duplicate keys: the first wins.
  REQUIRE(dec.Decode(R"({"log":"one\n","log":"two\n","time":"2021-05-05T12:03:00Z"})", &d));
  CHECK(d.message == "one");
  CHECK_FALSE(dec.Decode(R"({"log":"truncated\n","stream":"std)", &d));
  CHECK_FALSE(dec.Decode(R"({"level":"info","message":"committed state"})", &d));
  CHECK_FALSE(dec.Decode("plain text line", &d));
}

TEST_CASE("format sniffing") {
  CHECK(SniffFormat("2016-10-06T00:17:09.669794202Z stdout F x") == LogFormat::kCri);
  CHECK(SniffFormat(R"({"log":"x\n","stream":"stdout","time":"2021-05-05T12:03:00Z"})") ==
        LogFormat::kDocker);
  CHECK(SniffFormat(R"({"level":"info","height":5,"message":"committed state"})") ==
        LogFormat::kRaw);
  CHECK(SniffFormat("3:04PM INF committed state height=5") == LogFormat::kRaw);
}
