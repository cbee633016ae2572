// Registry: every family's pattern file, by family name and alias, and
// auto-detection of a stream's family from its first records. Built once
// at start; read-only afterwards (safe to share across threads).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "match/matcher.h"
#include "match/pattern_file.h"

namespace qw::match {

class Registry {
 public:
  // The pattern files built into the binary (patterns/*.yaml at build time).
  [[nodiscard]] static Result<std::unique_ptr<Registry>> LoadEmbedded();
  // Every *.yaml file in `dir` (overrides the built-in set).
  [[nodiscard]] static Result<std::unique_ptr<Registry>> LoadDir(const std::string& dir);
  // The given files.
  [[nodiscard]] static Result<std::unique_ptr<Registry>> LoadFiles(
      const std::vector<std::string>& paths);

  size_t size() const { return files_.size(); }
  const PatternFile& file(size_t i) const { return *files_[i]; }

  // The family's libhs (Hyperscan or Vectorscan) database, compiled and
  // self-checked on first use and shared by every thread; nullptr without
  // libhs, when a rule does not compile for it, or when it disagrees with
  // RE2 on the family's test lines (prefilter_note says why). Thread-safe.
  std::shared_ptr<const HsDatabase> Prefilter(size_t i) const;
  std::string prefilter_note(size_t i) const;
  // Families whose prefilter failed its start-up self-check (they use
  // RE2::Set); each was reported on stderr. Thread-safe.
  int prefilter_fallbacks() const {
    std::lock_guard<std::mutex> lock(prefilter_mu_);
    return prefilter_fallbacks_;
  }

  // Index of the family whose name or alias is `name`, or -1.
  int Find(std::string_view name) const;

  // What a stream's records say about each family: records its rules
  // match, records that carry one of its fingerprints (logger and module
  // names), records with one of its timestamp layouts.
  struct Evidence {
    int rules = 0;
    int fingerprints = 0;
    int stamps = 0;
    int weight() const { return rules + fingerprints; }
  };
  using Tally = std::vector<Evidence>;  // by family index

  // Adds what `record` says to `tally` (sized to size() on first use).
  // `stamps`: also try the timestamp layouts (costlier; detection only).
  // REQUIRES: one thread at a time.
  void Observe(std::string_view record, Tally* tally, bool stamps = true);
  // Families whose rules match `record`, in registry order.
  // REQUIRES: one thread at a time.
  std::vector<int> RuleHits(std::string_view record);

  struct Detection {
    int family = -1;     // the best; -1: no evidence at all
    bool clear = false;  // the best alone, on rule hits or fingerprints
    std::vector<int> candidates;  // tied at the top (family among them)
    int rule_hits = 0;   // records the best's rules matched
    std::string reason;  // for the operator, when not clear
  };
  // Ranks the families by weight (rule hits plus fingerprints), then
  // fingerprints, then stamps. `records`: how many were observed.
  Detection Rank(const Tally& tally, size_t records) const;
  // Observe every sample, then Rank.
  // REQUIRES: one thread at a time.
  Detection Detect(const std::vector<std::string_view>& samples);
  // "a, b, c": the families' names.
  std::string Names(const std::vector<int>& families) const;

 private:
  Result<void> Add(PatternFile pf);
  std::vector<std::unique_ptr<PatternFile>> files_;
  std::vector<std::unique_ptr<FamilyMatcher>> detectors_;
  mutable std::mutex prefilter_mu_;
  // Guarded by prefilter_mu_:
  mutable std::vector<std::shared_ptr<const HsDatabase>> prefilters_;
  mutable std::vector<std::string> prefilter_notes_;
  mutable std::vector<bool> prefilter_tried_;
  mutable int prefilter_fallbacks_ = 0;
};

}  // namespace qw::match
