// FamilyMatcher: one family's rules compiled for matching. Not thread-safe:
// every matcher thread builds its own (RE2 objects share a DFA cache under
// a mutex, so sharing them would serialise the threads).
#pragma once

#include <re2/re2.h>
#include <re2/set.h>

#include <memory>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/signal.h"
#include "match/hs_prefilter.h"
#include "match/pattern_file.h"

namespace qw::match {

class FamilyMatcher {
 public:
  // `prefilter`: the family's Vectorscan database (shared between threads;
  // see Registry::Prefilter), or nullptr to prefilter with RE2::Set.
  [[nodiscard]] static Result<std::unique_ptr<FamilyMatcher>> Create(
      const PatternFile& pf, std::shared_ptr<const HsDatabase> prefilter = nullptr);

  // Matches one record. On a hit fills *out (views into `line`) with the
  // first matching rule's signal and fields and returns true.
  bool Match(std::string_view line, Signal* out);

  // Matches many records of one buffer: record i is buf[starts[i],
  // starts[i] + lengths[i]), records in increasing order and separated by
  // '\n' (starts never decrease); only records with active[i] != 0 are
  // matched. Fills out[i] for
  // each (kind kNone on a miss) and returns the number of hits. With the
  // Vectorscan prefilter the whole buffer is scanned once and RE2 confirms
  // the candidates; the results equal Match() on each record.
  size_t MatchRecords(std::string_view buf, const uint32_t* starts, const uint32_t* lengths,
                      const uint8_t* active, size_t n, Signal* out);

  // Which prefilter runs: "hyperscan" or "vectorscan" (libhs, as built),
  // or "re2-set".
  const char* prefilter_name() const { return hs_ ? HsDatabase::Engine() : "re2-set"; }
  bool has_prefilter() const { return hs_ != nullptr; }
  // Why Vectorscan is not used ("" when it is).
  const std::string& prefilter_note() const { return hs_note_; }
  // Turns the Vectorscan prefilter off (tests compare both paths).
  void DisableVectorscan() { hs_.reset(); }

  // Like Match but returns the index of the first matching rule (-1 none)
  // without extracting fields. Used by auto-detection.
  int FirstRule(std::string_view line);

  // Where a stream's stamps were found last: lines of one stream put them
  // at the same place, so the next line is first parsed right there (no
  // regex), accepted when the layout parses the same length between the same
  // delimiting bytes. Per stream; starts empty.
  struct TimeHint {
    int spec = -1;
    uint32_t offset = 0, length = 0;
    char before = 0, after = 0;
  };
  // The message's own timestamp, or kNoTime. `hint` is optional.
  Nanos MessageTime(std::string_view line, int32_t default_year, int32_t offset_seconds,
                    TimeHint* hint = nullptr) const;

  // True when the line carries one of the family's fingerprints (logger
  // or module names): evidence for family detection, never a signal.
  bool HasFingerprint(std::string_view line) const;

  // True when the physical line continues the previous record.
  bool IsContinuation(std::string_view line) const;
  bool HasContinuation() const { return continuation_ != nullptr; }

  // Times the prefilter failed: RE2::Set's DFA out of memory, or a
  // Vectorscan scan error. Each fell back to matching rule by rule, so no
  // match was lost; callers report the count.
  uint64_t prefilter_failures() const { return dfa_oom_; }

  const PatternFile& patterns() const { return *pf_; }

 private:
  struct CompiledRule {
    std::unique_ptr<RE2> re;
    int groups = 0;                             // capturing groups in re
    std::vector<std::pair<Field, int>> named;   // field <- group index
    bool needs_confirm = false;                 // has captures to extract
  };
  struct CompiledTimestamp {
    std::unique_ptr<RE2> re;
    int ts_group = 0;
    std::string layout;
  };

  explicit FamilyMatcher(const PatternFile& pf);
  int FirstHit(std::string_view line);
  // Confirms that `rule` matches `line` and fills *out from it.
  bool Confirm(int rule, std::string_view line, Signal* out);
  void Fill(int rule, std::string_view line, bool have_submatch, Signal* out);

  const PatternFile* pf_;
  RE2::Set set_;
  std::vector<CompiledRule> rules_;
  std::vector<CompiledTimestamp> timestamps_;
  std::unique_ptr<RE2::Set> timestamp_set_;  // any stamp at all? (no captures, DFA only)
  std::unique_ptr<RE2> continuation_;  // the family's continuation rules as one alternation
  std::unique_ptr<RE2> fingerprint_;   // the family's fingerprints as one alternation
  // Scratch reused across calls: no allocation per line once warmed up.
  std::vector<int> hits_;
  std::vector<re2::StringPiece> submatch_;
  uint64_t dfa_oom_ = 0;
  std::unique_ptr<HsPrefilter> hs_;
  std::string hs_note_;
  std::vector<uint64_t> masks_;
};

// Signals of `buf`'s records (split at '\n') matched with `a` and with `b`
// (the same family, one with the libhs prefilter, one without): "" when
// they agree, else what differs (record and both signals). Used by the
// start-up self-check and the differential fuzz target.
std::string CompareMatchers(FamilyMatcher& a, FamilyMatcher& b, std::string_view buf);

// Runs every test line of `pf` through the libhs prefilter `db` and
// through RE2 alone, alone and next to each other, at the start and end of
// a buffer and at every offset modulo 64: "" when every signal agrees,
// else the first disagreement.
std::string PrefilterSelfCheck(const PatternFile& pf, std::shared_ptr<const HsDatabase> db);

// Finds `key`'s value in a logfmt (key=value, key="quoted") or JSON
// ("key":value, "key":"value") record. Returns false when absent. The value
// is raw: quotes stripped, escapes kept.
bool FindKeyValue(std::string_view line, std::string_view key, std::string_view* value);

}  // namespace qw::match
