#include "common/time.h"

#include <doctest/doctest.h>

using namespace qw;

TEST_CASE("RFC 3339 stamps parse to UTC nanoseconds") {
  // 2021-05-05T12:03:00Z = 1620216180
  CHECK(ParseRfc3339("2021-05-05T12:03:00Z") == 1620216180LL * kSecond);
  CHECK(ParseRfc3339("2021-05-05T12:03:00.156Z") == 1620216180LL * kSecond + 156 * kMillisecond);
  CHECK(ParseRfc3339("2021-05-05T12:03:00.123456789Z") == 1620216180LL * kSecond + 123456789);
  CHECK(ParseRfc3339("2021-05-05T14:03:00+02:00") == 1620216180LL * kSecond);
  CHECK(ParseRfc3339("2021-05-05 12:03:00") == 1620216180LL * kSecond);
  size_t used = 0;
  CHECK(ParseRfc3339("2016-10-06T00:17:09.669794202Z stdout F x", &used) != kNoTime);
  CHECK(used == 30);
  CHECK(ParseRfc3339("2021-13-05T12:03:00Z") == kNoTime);
  CHECK(ParseRfc3339("not a time") == kNoTime);
  CHECK(ParseRfc3339("2021-05-05") == kNoTime);
}

TEST_CASE("layouts parse the stamps chains print") {
  // Tendermint plain logger, no zone: UTC unless told otherwise.
  CHECK(ParseLayout("2021-05-05|12:03:00.156", "%Y-%m-%d|%H:%M:%S.%f", 1970, 0) ==
        1620216180LL * kSecond + 156 * kMillisecond);
  CHECK(ParseLayout("2021-05-05|14:03:00.156", "%Y-%m-%d|%H:%M:%S.%f", 1970, 7200) ==
        1620216180LL * kSecond + 156 * kMillisecond);
  // Tezos: no year, month name, space-padded day.
  CHECK(ParseLayout("May  5 12:03:00.156", "%b %e %H:%M:%S.%f", 2021, 0) ==
        1620216180LL * kSecond + 156 * kMillisecond);
  CHECK(ParseLayout("Mai  5 12:03:00", "%b %e %H:%M:%S", 2021, 0) == kNoTime);
  CHECK(ParseLayout("2021-05-05|12:03", "%Y-%m-%d|%H:%M:%S", 1970, 0) == kNoTime);
}

TEST_CASE("times format as RFC 3339 UTC with milliseconds") {
  CHECK(FormatRfc3339Millis(1620216180LL * kSecond + 156999999) == "2021-05-05T12:03:00.156Z");
  CHECK(FormatRfc3339Millis(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339Millis(951782400LL * kSecond) == "2000-02-29T00:00:00.000Z");
  CHECK(YearOf(1620216180LL * kSecond) == 2021);
  // Before 1970, and the extremes (kNoTime is INT64_MIN): defined, floor-divided.
  CHECK(FormatRfc3339Millis(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(YearOf(-1) == 1969);
  CHECK(FormatRfc3339Millis(kNoTime) == "1677-09-21T00:12:43.145Z");
  // Every field at its widest: 2099-12-31T23:59:59 is 4102444799 s.
  CHECK(FormatRfc3339Millis(4102444799LL * kSecond + 987654321) == "2099-12-31T23:59:59.987Z");
  // INT64_MAX ns: 9223372036.854775807 s.
  CHECK(FormatRfc3339Millis(INT64_MAX) == "2262-04-11T23:47:16.854Z");
  CHECK(YearOf(kNoTime) == 1677);
}

TEST_CASE("durations") {
  Nanos d = 0;
  CHECK(ParseDuration("60s", &d));
  CHECK(d == 60 * kSecond);
  CHECK(ParseDuration("1h30m", &d));
  CHECK(d == 5400 * kSecond);
  CHECK(ParseDuration("250ms", &d));
  CHECK(d == 250 * kMillisecond);
  CHECK_FALSE(ParseDuration("", &d));
  CHECK_FALSE(ParseDuration("5", &d));
  CHECK_FALSE(ParseDuration("5 minutes", &d));
  // Values beyond 64-bit nanoseconds (about 292 years) are refused, not wrapped.
  CHECK(ParseDuration("106751d", &d));
  CHECK(d == 106751LL * 86400 * kSecond);
  CHECK_FALSE(ParseDuration("106752d", &d));
  CHECK_FALSE(ParseDuration("999999999h", &d));
  CHECK_FALSE(ParseDuration("106751d106751d", &d));
  CHECK(FormatDuration(125 * kSecond) == "2m05s");
  CHECK(FormatDuration(3725 * kSecond) == "1h02m05s");
}
