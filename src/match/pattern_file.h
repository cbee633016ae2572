// A family's pattern file (patterns/<family>.yaml), loaded and validated.
// Loading refuses a bad file with "file:line: reason"; the loaded value is
// plain data, compiled per thread by FamilyMatcher.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/signal.h"
#include "common/time.h"

namespace qw::match {

struct FamilyDefaults {
  Nanos block_time = 6 * kSecond;
  Nanos stall_after = 60 * kSecond;
  int64_t max_lag = 5;
  int missed_window = 100;
  int missed_max = 5;
  // false: the family's vote lines are recorded (dual signers) but no
  // height is judged missed for want of one: the logs do not say which
  // heights were our duty (Tezos attestation slots, Algorand sortition).
  bool derive_misses = true;
};

struct TimestampSpec {
  std::string regex;   // RE2 with a named group `ts`
  std::string layout;  // ParseLayout layout, or "rfc3339"
  int line = 0;
};

// Evidence that a line is this family's (a logger or module name, a
// source file): used by family detection only, never a signal.
struct Fingerprint {
  std::string regex;
  std::string source;
  int line = 0;
};

struct FieldFromKey {
  Field field;
  std::string key;  // logfmt key=value or JSON "key":value
};

struct RuleTest {
  std::string line;
  std::string source;
  std::vector<std::pair<std::string, std::string>> want;  // field name -> value
  int file_line = 0;
};

struct Rule {
  std::string name;
  SignalKind signal = SignalKind::kNone;
  std::string regex;
  std::vector<FieldFromKey> key_fields;
  std::string reason;  // constant reason when the regex captures none
  std::vector<RuleTest> tests;
  int file_line = 0;
};

struct PatternFile {
  std::string path;
  std::string family;
  std::vector<std::string> aliases;
  bool signer_role = false;  // role: signer (tmkms, Horcrux): attaches to its pod's node
  FamilyDefaults defaults;
  std::vector<TimestampSpec> timestamps;
  std::vector<Fingerprint> fingerprints;
  std::vector<std::string> continuation;
  std::vector<Rule> rules;
  std::vector<RuleTest> non_matching;
};

// The field a regex group fills: its name, or "<field>_<n>" for the same
// field in another alternative of one regex.
std::optional<Field> FieldOfGroup(std::string_view group);

// Loads and validates one pattern file: keys, signal and field names, that
// every regex compiles in RE2 and its named groups are known fields.
[[nodiscard]] Result<PatternFile> LoadPatternFile(const std::string& path);
// The same from text already read; errors name `path`.
[[nodiscard]] Result<PatternFile> LoadPatternText(const std::string& path, const std::string& text);

}  // namespace qw::match
