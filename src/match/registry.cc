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
  std::vector<int> hits(files_.size(), 0);
  for (std::string_view s : samples) {
    for (size_t i = 0; i < detectors_.size(); ++i) {
      if (detectors_[i]->FirstRule(s) >= 0 ||
          detectors_[i]->MessageTime(s, 2000, 0) != kNoTime) {
        ++hits[i];
      }
    }
  }
  Detection d;
  int best = -1, best_hits = 0, ties = 0;
  for (size_t i = 0; i < hits.size(); ++i) {
    if (hits[i] > best_hits) {
      best = static_cast<int>(i);
      best_hits = hits[i];
      ties = 0;
    } else if (hits[i] == best_hits && best_hits > 0) {
      ++ties;
    }
  }
  if (best < 0) {
    d.reason = "no family's rules or timestamps match its first " +
               std::to_string(samples.size()) + " records";
  } else if (ties > 0) {
    std::string names;
    for (size_t i = 0; i < hits.size(); ++i) {
      if (hits[i] == best_hits) names += (names.empty() ? "" : ", ") + files_[i]->family;
    }
    d.reason = "ambiguous: " + names + " match equally (" + std::to_string(best_hits) + " of " +
               std::to_string(samples.size()) + " records); name the chain";
  } else {
    d.family = best;
  }
  return d;
}

}  // namespace qw::match
