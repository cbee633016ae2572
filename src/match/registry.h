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

  // The family's Vectorscan database, compiled on first use and shared by
  // every thread; nullptr without Vectorscan or when a rule does not compile
  // for it (prefilter_note says why). Thread-safe.
  std::shared_ptr<const HsDatabase> Prefilter(size_t i) const;
  std::string prefilter_note(size_t i) const;

  // Index of the family whose name or alias is `name`, or -1.
  int Find(std::string_view name) const;

  struct Detection {
    int family = -1;     // -1: unknown or ambiguous
    int rule_hits = 0;   // samples the winner's rules matched (0: its stamps alone won)
    std::string reason;  // why, for the operator, when family is -1
  };
  // Picks the family whose rules match the most of `samples` (first records
  // of a stream). Ties and no hits at all are reported, not guessed.
  // REQUIRES: one thread at a time.
  Detection Detect(const std::vector<std::string_view>& samples);

 private:
  Result<void> Add(PatternFile pf);
  std::vector<std::unique_ptr<PatternFile>> files_;
  std::vector<std::unique_ptr<FamilyMatcher>> detectors_;
  mutable std::mutex prefilter_mu_;
  // Guarded by prefilter_mu_:
  mutable std::vector<std::shared_ptr<const HsDatabase>> prefilters_;
  mutable std::vector<std::string> prefilter_notes_;
  mutable std::vector<bool> prefilter_tried_;
};

}  // namespace qw::match
