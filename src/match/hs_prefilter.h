// HsPrefilter: a Vectorscan (Hyperscan API) database compiled from a
// family's rules in prefilter mode. It scans a whole buffer of
// newline-separated records at once and reports, per record, the rules that
// may match; RE2 confirms every candidate, so RE2 stays the single source of
// truth and prefilter approximations never change a result.
//
// Threading: the database is immutable; the scratch space is per object, so
// each matcher thread owns its own HsPrefilter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "match/pattern_file.h"

namespace qw::match {

class HsPrefilter {
 public:
  // nullptr (with *why set) when Vectorscan is not built in or a rule does
  // not compile for it; callers then use RE2::Set.
  static std::unique_ptr<HsPrefilter> Create(const PatternFile& pf, std::string* why);
  ~HsPrefilter();

  // Scans `buf`; for record i (starting at starts[i], records in increasing
  // order, separated by '\n') sets bit r of masks[i * words() + r / 64] when
  // rule r may match it. masks must be zeroed by the caller. false on a
  // scan error (then the caller matches rule by rule).
  bool Scan(std::string_view buf, const uint32_t* starts, size_t n, uint64_t* masks);
  size_t words() const { return words_; }

  // True when quorumwatch was built with Vectorscan.
  static bool Available();

 private:
  HsPrefilter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t words_ = 1;
};

}  // namespace qw::match
