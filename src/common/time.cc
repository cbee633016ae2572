#include "common/time.h"

#include <array>
#include <chrono>
#include <cstdio>

namespace qw {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// Parses up to 9 fraction digits at pos; returns nanoseconds, advances pos
// past all digits.
int64_t Fraction(std::string_view s, size_t* pos) {
  int64_t ns = 0;
  int n = 0;
  while (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9') {
    if (n < 9) {
      ns = ns * 10 + (s[*pos] - '0');
      ++n;
    }
    ++*pos;
  }
  while (n < 9) {
    ns *= 10;
    ++n;
  }
  return ns;
}

// Parses "Z", "+hh:mm", "+hhmm", "-hh:mm" at pos. Returns false if none.
bool Zone(std::string_view s, size_t* pos, int32_t* offset) {
  if (*pos >= s.size()) return false;
  char c = s[*pos];
  if (c == 'Z' || c == 'z') {
    *offset = 0;
    ++*pos;
    return true;
  }
  if (c != '+' && c != '-') return false;
  int64_t hh, mm;
  size_t p = *pos + 1;
  if (!Digits(s, p, 2, &hh)) return false;
  p += 2;
  if (p < s.size() && s[p] == ':') ++p;
  if (!Digits(s, p, 2, &mm)) return false;
  p += 2;
  *offset = static_cast<int32_t>((hh * 3600 + mm * 60) * (c == '-' ? -1 : 1));
  *pos = p;
  return true;
}

bool ValidDate(int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t sec) {
  return mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && sec <= 60;
}

Nanos Compose(int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t sec, int64_t frac,
              int32_t offset) {
  // Nanoseconds since the epoch fit int64 for years 1678 to 2261 only: a
  // stamp outside is no stamp (the multiplication would overflow).
  if (y < 1678 || y > 2261) return kNoTime;
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset;
  int64_t out = 0;
  if (__builtin_mul_overflow(secs, kSecond, &out) || __builtin_add_overflow(out, frac, &out) ||
      out == kNoTime) {
    return kNoTime;
  }
  return out;
}

constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

namespace {
// Floor division into seconds, the sub-second rest, days and the second of
// the day; no negation, so every value (kNoTime too) is defined.
void SplitTime(Nanos t, int64_t* secs, int64_t* rem, int64_t* days, int64_t* sod) {
  *secs = t / kSecond;
  *rem = t % kSecond;
  if (*rem < 0) {
    *rem += kSecond;
    --*secs;
  }
  *days = *secs / 86400;
  *sod = *secs % 86400;
  if (*sod < 0) {
    *sod += 86400;
    --*days;
  }
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}
}  // namespace

Nanos ParseRfc3339(std::string_view s, size_t* consumed, int32_t default_offset_seconds) {
  int64_t y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec) || !ValidDate(mo, d, h, mi, sec)) {
    return kNoTime;
  }
  size_t pos = 19;
  int64_t frac = 0;
  if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
    ++pos;
    frac = Fraction(s, &pos);
  }
  int32_t offset = default_offset_seconds;
  Zone(s, &pos, &offset);
  if (consumed) *consumed = pos;
  return Compose(y, mo, d, h, mi, sec, frac, offset);
}

Nanos ParseLayout(std::string_view s, std::string_view layout, int32_t default_year,
                  int32_t default_offset_seconds, size_t* consumed) {
  int64_t y = default_year, mo = 1, d = 1, h = 0, mi = 0, sec = 0, frac = 0;
  int32_t offset = default_offset_seconds;
  size_t p = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    char c = layout[i];
    if (c != '%' || i + 1 == layout.size()) {
      if (p >= s.size() || s[p] != c) return kNoTime;
      ++p;
      continue;
    }
    char dir = layout[++i];
    switch (dir) {
      case 'Y':
        if (!Digits(s, p, 4, &y)) return kNoTime;
        p += 4;
        break;
      case 'm':
      case 'd':
      case 'H':
      case 'M':
      case 'S': {
        int64_t v;
        if (!Digits(s, p, 2, &v)) return kNoTime;
        p += 2;
        (dir == 'm' ? mo : dir == 'd' ? d : dir == 'H' ? h : dir == 'M' ? mi : sec) = v;
        break;
      }
      case 'e': {  // day, space padded or one digit
        if (p < s.size() && s[p] == ' ') ++p;
        int64_t v;
        if (Digits(s, p, 2, &v)) {
          p += 2;
        } else if (Digits(s, p, 1, &v)) {
          p += 1;
        } else {
          return kNoTime;
        }
        d = v;
        break;
      }
      case 'f': {
        size_t start = p;
        frac = Fraction(s, &p);
        if (p == start) return kNoTime;
        break;
      }
      case 'b': {
        if (p + 3 > s.size()) return kNoTime;
        int found = -1;
        for (int k = 0; k < 12; ++k) {
          if (s.compare(p, 3, kMonths[k]) == 0) found = k;
        }
        if (found < 0) return kNoTime;
        mo = found + 1;
        p += 3;
        break;
      }
      case 'z':
        if (!Zone(s, &p, &offset)) return kNoTime;
        break;
      case '%':
        if (p >= s.size() || s[p] != '%') return kNoTime;
        ++p;
        break;
      default:
        return kNoTime;
    }
  }
  if (!ValidDate(mo, d, h, mi, sec)) return kNoTime;
  if (consumed != nullptr) *consumed = p;
  return Compose(y, mo, d, h, mi, sec, frac, offset);
}

void AppendRfc3339Millis(std::string& out, Nanos t) {
  int64_t secs, rem, days, sod;
  SplitTime(t, &secs, &rem, &days, &sod);
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  // Nanoseconds since 1970 in 64 bits span the years 1677-2262: always four
  // digits. Digit by digit: this runs once per Kafka record (snprintf was
  // ~4 % of a record's CPU there).
  char b[25] = "0000-00-00T00:00:00.000Z";
  auto put = [&b](int at, int64_t v, int width) {
    for (int i = at + width - 1; i >= at; --i, v /= 10) b[i] = static_cast<char>('0' + v % 10);
  };
  put(0, y, 4);
  put(5, m, 2);
  put(8, d, 2);
  put(11, sod / 3600, 2);
  put(14, sod / 60 % 60, 2);
  put(17, sod % 60, 2);
  put(20, rem / kMillisecond, 3);
  out.append(b, 24);
}

std::string FormatRfc3339Millis(Nanos t) {
  std::string s;
  AppendRfc3339Millis(s, t);
  return s;
}

int32_t YearOf(Nanos t) {
  int64_t secs, rem, days, sod;
  SplitTime(t, &secs, &rem, &days, &sod);
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  return static_cast<int32_t>(y);
}

bool ParseDuration(std::string_view s, Nanos* out) {
  if (s.empty()) return false;
  Nanos total = 0;
  size_t p = 0;
  while (p < s.size()) {
    size_t start = p;
    int64_t v = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      v = v * 10 + (s[p] - '0');
      if (v > 1'000'000'000) return false;
      ++p;
    }
    if (p == start) return false;
    Nanos unit;
    if (s.compare(p, 2, "ms") == 0) {
      unit = kMillisecond;
      p += 2;
    } else if (p < s.size() && s[p] == 's') {
      unit = kSecond;
      ++p;
    } else if (p < s.size() && s[p] == 'm') {
      unit = 60 * kSecond;
      ++p;
    } else if (p < s.size() && s[p] == 'h') {
      unit = 3600 * kSecond;
      ++p;
    } else if (p < s.size() && s[p] == 'd') {
      unit = 86400 * kSecond;
      ++p;
    } else {
      return false;
    }
    Nanos part = 0;
    if (__builtin_mul_overflow(v, unit, &part) || __builtin_add_overflow(total, part, &total)) {
      return false;  // beyond what nanoseconds in 64 bits hold (~292 years)
    }
  }
  *out = total;
  return true;
}

std::string FormatDuration(Nanos d) {
  int64_t s = d / kSecond;
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  }
  return buf;
}

Nanos WallNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Nanos SteadyNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace qw
