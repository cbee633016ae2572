#include "record/collector.h"

#include <re2/re2.h>

#include <array>
#include <memory>

namespace qw::record {
namespace {

// Each regex is anchored and captures the stamp (group 1, may be empty);
// the match's end is where the node's line begins. Program names start
// with a lower-case letter and host names with a letter or digit, so a
// node's own `Mar 22 12:09:44.815 - section: ` (Octez) or
// `... ThreadName ERROR: ` is not taken for a syslog prefix; the
// fractional seconds journald prints have six digits (Octez and tmkms
// print three).
struct Pattern {
  CollectorKind kind;
  const char* regex;
  bool iso;  // stamp is RFC 3339; else `%b %e %H:%M:%S[.%f]`
};

constexpr std::array<Pattern, 6> kPatterns = {{
    {CollectorKind::kSyslog,
     R"(^(?:<\d{1,3}>)?([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d{6})?) +(?:[A-Za-z0-9][\w.-]* +)?[a-z][\w.@-]*(?:\[\d+\])?: )",
     false},
    {CollectorKind::kIsoSyslog,
     R"(^(?:<\d{1,3}>)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) +(?:[A-Za-z0-9][\w.-]* +)?[a-z][\w.@-]*(?:\[\d+\])?: )",
     true},
    {CollectorKind::kRfc5424,
     R"(^<\d{1,3}>1 (\S+) \S+ \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?:\x{FEFF})?)", true},
    {CollectorKind::kCompose, R"(^()[A-Za-z0-9][\w.-]* +\| )", true},
    {CollectorKind::kKubectl, R"(^()\[pod/[^/\]\s]+/[^\]\s]+\] )", true},
    {CollectorKind::kCloud,
     R"(^(?:[DIWEC]|DEFAULT|DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL|ALERT|EMERGENCY) +(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) +)",
     true},
}};

struct Compiled {
  std::array<std::unique_ptr<RE2>, kPatterns.size()> re;
  Compiled() {
    RE2::Options opt;
    opt.set_log_errors(false);
    for (size_t i = 0; i < kPatterns.size(); ++i) re[i] = std::make_unique<RE2>(kPatterns[i].regex, opt);
  }
};

const Compiled& Patterns() {
  static const Compiled compiled;  // RE2 is safe to share across threads
  return compiled;
}

// Cheap first-byte screen: no prefix starts otherwise.
bool MayStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '<' ||
         c == '[';
}

}  // namespace

Unwrapped Unwrap(std::string_view line, CollectorKind kind, bool any, int32_t year,
                 int32_t offset_seconds) {
  Unwrapped u;
  u.message = line;
  if (line.empty() || !MayStart(line[0]) || (kind == CollectorKind::kNone && !any)) return u;
  const Compiled& c = Patterns();
  for (size_t i = 0; i < kPatterns.size(); ++i) {
    if (kind != CollectorKind::kNone && kPatterns[i].kind != kind) continue;
    re2::StringPiece text(line.data(), line.size());
    re2::StringPiece groups[2];
    if (!c.re[i]->Match(text, 0, text.size(), RE2::ANCHOR_START, groups, 2)) continue;
    const re2::StringPiece whole = groups[0];
    const re2::StringPiece stamp = groups[1];
    const size_t used = whole.size();
    if (used >= line.size()) continue;  // nothing after the prefix: not one
    u.kind = kPatterns[i].kind;
    u.message = line.substr(used);
    if (!stamp.empty()) {
      std::string_view st(stamp.data(), stamp.size());
      if (kPatterns[i].iso) {
        u.time = ParseRfc3339(st, nullptr, offset_seconds);
      } else {
        u.time = ParseLayout(st, st.size() > 15 ? "%b %e %H:%M:%S.%f" : "%b %e %H:%M:%S", year,
                             offset_seconds);
      }
    }
    return u;
  }
  return u;
}

const char* CollectorName(CollectorKind kind) {
  switch (kind) {
    case CollectorKind::kSyslog:
      return "syslog";
    case CollectorKind::kIsoSyslog:
      return "syslog-iso";
    case CollectorKind::kRfc5424:
      return "rfc5424";
    case CollectorKind::kCompose:
      return "docker-compose";
    case CollectorKind::kKubectl:
      return "kubectl";
    case CollectorKind::kCloud:
      return "cloud-console";
    default:
      return "none";
  }
}

}  // namespace qw::record
