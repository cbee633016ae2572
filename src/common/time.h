// Event time: nanoseconds since the Unix epoch, UTC. Detectors never read a
// clock; times come from log lines and ticks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qw {

using Nanos = int64_t;
inline constexpr Nanos kNoTime = INT64_MIN;
inline constexpr Nanos kSecond = 1'000'000'000;
inline constexpr Nanos kMillisecond = 1'000'000;

// Days since 1970-01-01 of a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);

// Parses RFC 3339 / ISO 8601 "YYYY-MM-DDTHH:MM:SS[.frac][Z|+hh:mm]" (a space
// may stand for the T; no zone means `default_offset_seconds`). Returns
// kNoTime when `s` does not start with such a stamp. `consumed` (optional)
// receives the number of bytes used.
Nanos ParseRfc3339(std::string_view s, size_t* consumed = nullptr,
                   int32_t default_offset_seconds = 0);

// Parses `s` with a strftime-like layout: %Y %m %d %e %H %M %S %f %b %z and
// literal characters. Fields the layout lacks: year from `default_year`,
// zone from `default_offset_seconds`. kNoTime on mismatch.
Nanos ParseLayout(std::string_view s, std::string_view layout, int32_t default_year,
                  int32_t default_offset_seconds, size_t* consumed = nullptr);

// "2021-05-05T12:03:00.156Z" (milliseconds, UTC).
std::string FormatRfc3339Millis(Nanos t);
void AppendRfc3339Millis(std::string& out, Nanos t);

// The UTC calendar year of `t`.
int32_t YearOf(Nanos t);

// Parses durations such as "60s", "5m", "1h30m", "250ms". false on error.
bool ParseDuration(std::string_view s, Nanos* out);
std::string FormatDuration(Nanos d);

// The clocks: the wall clock (nanoseconds since the Unix epoch) and a
// steady one (for intervals and deadlines; its epoch is arbitrary).
Nanos WallNow();
Nanos SteadyNow();

}  // namespace qw
