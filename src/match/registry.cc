#include "match/registry.h"

#include <algorithm>
#include <filesystem>

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

Registry::Detection Registry::Detect(const std::vector<std::string_view>& samples) {
  // Rule hits decide; timestamp layouts only break ties (generic stamps such
  // as RFC 3339 or syslog prefixes are shared by several families).
  std::vector<int> rules(files_.size(), 0), stamps(files_.size(), 0);
  for (std::string_view s : samples) {
    for (size_t i = 0; i < detectors_.size(); ++i) {
      if (detectors_[i]->FirstRule(s) >= 0) ++rules[i];
      if (detectors_[i]->MessageTime(s, 2000, 0) != kNoTime) ++stamps[i];
    }
  }
  auto score = [&](size_t i) { return std::make_pair(rules[i], stamps[i]); };
  Detection d;
  int best = -1;
  for (size_t i = 0; i < files_.size(); ++i) {
    if (rules[i] == 0 && stamps[i] == 0) continue;
    if (best < 0 || score(i) > score(static_cast<size_t>(best))) best = static_cast<int>(i);
  }
  if (best < 0) {
    d.reason = "no family's rules or timestamps match its first " +
               std::to_string(samples.size()) + " records";
    return d;
  }
  std::string names;
  int ties = 0;
  for (size_t i = 0; i < files_.size(); ++i) {
    if (score(i) == score(static_cast<size_t>(best))) {
      ++ties;
      names += (names.empty() ? "" : ", ") + files_[i]->family;
    }
  }
  if (ties > 1) {
    d.reason = "ambiguous: " + names + " match equally (" + std::to_string(rules[static_cast<size_t>(best)]) +
               " rule hits, " + std::to_string(stamps[static_cast<size_t>(best)]) + " stamps in " +
               std::to_string(samples.size()) + " records); name the chain";
    return d;
  }
  d.family = best;
  d.rule_hits = rules[static_cast<size_t>(best)];
  return d;
}

}  // namespace qw::match
