#include "match/registry.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "common/log.h"
#include "match/embedded_patterns.h"

namespace qw::match {

Result<void> Registry::Add(PatternFile pf) {
  for (const auto& f : files_) {
    auto clash = [&](const std::string& n) {
      if (n == f->family) return true;
      return std::find(f->aliases.begin(), f->aliases.end(), n) != f->aliases.end();
    };
    if (clash(pf.family)) return Fail(pf.path + ": family '" + pf.family + "' defined twice");
    for (const auto& a : pf.aliases) {
      if (clash(a)) return Fail(pf.path + ": alias '" + a + "' already names another family");
    }
  }
  auto owned = std::make_unique<PatternFile>(std::move(pf));
  auto m = FamilyMatcher::Create(*owned);
  if (!m) return tl::unexpected(m.error());
  files_.push_back(std::move(owned));
  detectors_.push_back(std::move(*m));
  return {};
}

Result<std::unique_ptr<Registry>> Registry::LoadEmbedded() {
  auto reg = std::unique_ptr<Registry>(new Registry());
  for (size_t i = 0; i < kEmbeddedPatternCount; ++i) {
    auto pf = LoadPatternText(std::string("patterns/") + kEmbeddedPatterns[i].name,
                              std::string(kEmbeddedPatterns[i].text));
    if (!pf) return tl::unexpected(pf.error());
    if (auto r = reg->Add(std::move(*pf)); !r) return tl::unexpected(r.error());
  }
  return reg;
}

Result<std::unique_ptr<Registry>> Registry::LoadDir(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".yaml") paths.push_back(entry.path().string());
  }
  if (ec) return Fail(dir + ": cannot read pattern folder: " + ec.message());
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) return Fail(dir + ": no *.yaml pattern files");
  return LoadFiles(paths);
}

Result<std::unique_ptr<Registry>> Registry::LoadFiles(const std::vector<std::string>& paths) {
  auto reg = std::unique_ptr<Registry>(new Registry());
  for (const auto& p : paths) {
    auto pf = LoadPatternFile(p);
    if (!pf) return tl::unexpected(pf.error());
    if (auto r = reg->Add(std::move(*pf)); !r) return tl::unexpected(r.error());
  }
  return reg;
}

std::shared_ptr<const HsDatabase> Registry::Prefilter(size_t i) const {
  std::lock_guard<std::mutex> lock(prefilter_mu_);
  if (prefilters_.size() < files_.size()) {
    prefilters_.resize(files_.size());
    prefilter_notes_.resize(files_.size());
    prefilter_tried_.resize(files_.size());
  }
  if (!prefilter_tried_[i]) {
    prefilter_tried_[i] = true;
    prefilters_[i] = HsDatabase::Compile(*files_[i], &prefilter_notes_[i]);
    if (prefilters_[i]) {
      // Before first use: the prefilter must give exactly what RE2 gives on
      // every test line, wherever it sits in a buffer; else RE2::Set.
      const std::string d = PrefilterSelfCheck(*files_[i], prefilters_[i]);
      if (!d.empty()) {
        prefilters_[i].reset();
        prefilter_notes_[i] = std::string("self-check failed, RE2::Set instead: ") + d;
        ++prefilter_fallbacks_;
        LogLine(files_[i]->family + ": the " + std::string(HsDatabase::Engine()) +
                " prefilter disagrees with RE2 (" + d +
                "); this family is prefiltered with RE2::Set instead (slower, never wrong)");
      }
    }
  }
  return prefilters_[i];
}

std::string Registry::prefilter_note(size_t i) const {
  std::lock_guard<std::mutex> lock(prefilter_mu_);
  return i < prefilter_notes_.size() ? prefilter_notes_[i] : "";
}

int Registry::Find(std::string_view name) const {
  for (size_t i = 0; i < files_.size(); ++i) {
    const auto& f = *files_[i];
    if (f.family == name) return static_cast<int>(i);
    for (const auto& a : f.aliases) {
      if (a == name) return static_cast<int>(i);
    }
  }
  return -1;
}

void Registry::Observe(std::string_view record, Tally* tally, bool stamps) {
  tally->resize(files_.size());
  for (size_t i = 0; i < detectors_.size(); ++i) {
    Evidence& e = (*tally)[i];
    if (detectors_[i]->FirstRule(record) >= 0) ++e.rules;
    if (detectors_[i]->HasFingerprint(record)) ++e.fingerprints;
    if (stamps && detectors_[i]->MessageTime(record, 2000, 0) != kNoTime) ++e.stamps;
  }
}

std::vector<int> Registry::RuleHits(std::string_view record) {
  std::vector<int> out;
  for (size_t i = 0; i < detectors_.size(); ++i) {
    if (detectors_[i]->FirstRule(record) >= 0) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::string Registry::Names(const std::vector<int>& families) const {
  std::string names;
  for (int f : families) {
    if (!names.empty()) names += ", ";
    names += files_[static_cast<size_t>(f)]->family;
  }
  return names;
}

Registry::Detection Registry::Rank(const Tally& tally, size_t records) const {
  // Rule hits and fingerprints are evidence; timestamp layouts only break
  // ties (generic stamps such as RFC 3339 or syslog's are shared by several
  // families).
  auto key = [&](size_t i) {
    const Evidence& e = tally[i];
    return std::make_tuple(e.weight(), e.fingerprints, e.stamps);
  };
  Detection d;
  int best = -1;
  for (size_t i = 0; i < tally.size(); ++i) {
    const Evidence& e = tally[i];
    if (e.weight() == 0 && e.stamps == 0) continue;
    if (best < 0 || key(i) > key(static_cast<size_t>(best))) best = static_cast<int>(i);
  }
  if (best < 0) {
    d.reason = "no family's rules, fingerprints or timestamps match its first " +
               std::to_string(records) + " records";
    return d;
  }
  for (size_t i = 0; i < tally.size(); ++i) {
    if (key(i) == key(static_cast<size_t>(best))) d.candidates.push_back(static_cast<int>(i));
  }
  const Evidence& e = tally[static_cast<size_t>(best)];
  d.family = d.candidates.front();  // registry order among equals
  d.rule_hits = tally[static_cast<size_t>(d.family)].rules;
  d.clear = d.candidates.size() == 1 && e.weight() > 0;
  if (d.candidates.size() > 1) {
    d.reason = "ambiguous: " + Names(d.candidates) + " match equally (" +
               std::to_string(e.rules) + " rule hits, " + std::to_string(e.fingerprints) +
               " fingerprints, " + std::to_string(e.stamps) + " stamps in " +
               std::to_string(records) + " records)";
  } else if (e.weight() == 0) {
    d.reason = "only " + files_[static_cast<size_t>(best)]->family +
               "'s timestamps match its first " + std::to_string(records) +
               " records (no rule, no fingerprint)";
  }
  return d;
}

Registry::Detection Registry::Detect(const std::vector<std::string_view>& samples) {
  Tally tally;
  tally.resize(files_.size());
  for (std::string_view s : samples) Observe(s, &tally);
  return Rank(tally, samples.size());
}

}  // namespace qw::match
