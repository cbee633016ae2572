// Vectorscan (Hyperscan API) prefiltering of a family's rules.
//
// HsDatabase: the rules compiled once, in prefilter mode; immutable and
// shared by every thread. HsPrefilter: one thread's scanner over it (its own
// scratch space). A scan covers a whole buffer of newline-separated records
// and reports, per record, the rules that may match; RE2 confirms every
// candidate, so RE2 stays the single source of truth and prefilter
// approximations never change a result.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "match/pattern_file.h"

namespace qw::match {

class HsDatabase {
 public:
  // nullptr (with *why set) when Vectorscan is not built in or a rule does
  // not compile for it; callers then use RE2::Set.
  static std::shared_ptr<const HsDatabase> Compile(const PatternFile& pf, std::string* why);
  ~HsDatabase();
  size_t words() const { return words_; }  // 64-bit mask words per record
  void* raw() const { return db_; }

  // True when quorumwatch was built with libhs (Hyperscan or Vectorscan).
  static bool Available();
  // "hyperscan", "vectorscan" (the libhs built against), or "re2-set".
  static const char* Engine();

 private:
  HsDatabase() = default;
  void* db_ = nullptr;  // hs_database_t*
  size_t words_ = 1;
};

class HsPrefilter {
 public:
  // nullptr when scratch space cannot be allocated.
  static std::unique_ptr<HsPrefilter> Create(std::shared_ptr<const HsDatabase> db);
  ~HsPrefilter();

  // Scans `buf`; for record i (starting at starts[i], starts not
  // decreasing, records separated by '\n') sets bit r of
  // masks[i * words() + r / 64] when rule r may match it. masks must be
  // zeroed by the caller. false on a scan error.
  bool Scan(std::string_view buf, const uint32_t* starts, size_t n, uint64_t* masks);
  size_t words() const { return db_->words(); }

 private:
  HsPrefilter() = default;
  std::shared_ptr<const HsDatabase> db_;
  void* scratch_ = nullptr;  // hs_scratch_t*, owned
};

}  // namespace qw::match
