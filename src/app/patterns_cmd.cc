#include "app/patterns_cmd.h"

#include <cstdio>

#include "app/config.h"
#include "app/topology.h"
#include "common/log.h"
#include "match/matcher.h"
#include "match/registry.h"

namespace qw::app {
namespace {

std::string FieldValue(const Signal& s, Field f) {
  auto num = [](int64_t v) { return v < 0 ? std::string() : std::to_string(v); };
  switch (f) {
    case Field::kHeight:
      return num(s.height);
    case Field::kRound:
      return num(s.round);
    case Field::kType:
      return std::string(s.type_raw);
    case Field::kValidator:
      return std::string(s.validator);
    case Field::kBlockId:
      return std::string(s.block_id);
    case Field::kReason:
      return std::string(s.reason);
    case Field::kName:
      return std::string(s.name);
    case Field::kTargetHeight:
      return num(s.target_height);
    case Field::kCount:
      return num(s.count);
    default:
      return "";
  }
}

}  // namespace

int TestPatternFile(const match::PatternFile& pf, std::vector<std::string>* problems) {
  auto m = match::FamilyMatcher::Create(pf);
  if (!m) {
    problems->push_back(m.error().message);
    return 0;
  }
  int run = 0;
  auto where = [&](int line) { return pf.path + ":" + std::to_string(line) + ": "; };
  for (size_t ri = 0; ri < pf.rules.size(); ++ri) {
    const match::Rule& rule = pf.rules[ri];
    for (const match::RuleTest& t : rule.tests) {
      ++run;
      Signal s;
      if (!(*m)->Match(t.line, &s)) {
        problems->push_back(where(t.file_line) + "rule '" + rule.name +
                            "': its test line matches no rule: " + t.line);
        continue;
      }
      if (s.rule != ri) {
        problems->push_back(where(t.file_line) + "rule '" + rule.name +
                            "': its test line is taken by the earlier rule '" +
                            pf.rules[s.rule].name + "'");
        continue;
      }
      // Every field the rule extracted must be expected, with its value.
      for (int fi = 0; fi < kFieldCount; ++fi) {
        Field f = static_cast<Field>(fi);
        if (f == Field::kStep) continue;
        std::string got = FieldValue(s, f);
        const std::string* want = nullptr;
        for (const auto& [k, v] : t.want) {
          if (k == FieldName(f)) want = &v;
        }
        if (f == Field::kReason && want == nullptr && !rule.reason.empty()) continue;
        if (want == nullptr && !got.empty()) {
          problems->push_back(where(t.file_line) + "rule '" + rule.name + "': extracted " +
                              std::string(FieldName(f)) + "=" + got + " but the test does not expect it");
        } else if (want != nullptr && got != *want) {
          problems->push_back(where(t.file_line) + "rule '" + rule.name + "': " +
                              std::string(FieldName(f)) + " is '" + got + "', want '" + *want + "'");
        }
      }
    }
  }
  for (const match::RuleTest& t : pf.non_matching) {
    ++run;
    Signal s;
    if ((*m)->Match(t.line, &s)) {
      problems->push_back(where(t.file_line) + "non_matching line is taken by rule '" +
                          pf.rules[s.rule].name + "': " + t.line);
    }
  }
  // Each fingerprint is seen on at least one of the family's own test lines.
  for (const match::Fingerprint& f : pf.fingerprints) {
    RE2 re(f.regex);
    bool seen = false;
    for (const auto& rule : pf.rules) {
      for (const auto& t : rule.tests) seen = seen || RE2::PartialMatch(t.line, re);
    }
    for (const auto& t : pf.non_matching) seen = seen || RE2::PartialMatch(t.line, re);
    ++run;
    if (!seen) {
      problems->push_back(where(f.line) + "fingerprint '" + f.regex +
                          "' is on none of the family's test lines");
    }
  }
  return run;
}

int CheckFingerprints(const std::vector<const match::PatternFile*>& files,
                      std::vector<std::string>* problems) {
  // A fingerprint is evidence for its family only: no line another
  // family's rules are tested on may carry it.
  int run = 0;
  for (const match::PatternFile* pf : files) {
    for (const match::Fingerprint& f : pf->fingerprints) {
      RE2 re(f.regex);
      for (const match::PatternFile* other : files) {
        if (other == pf) continue;
        auto check = [&](const match::RuleTest& t) {
          ++run;
          if (RE2::PartialMatch(t.line, re)) {
            problems->push_back(pf->path + ":" + std::to_string(f.line) + ": fingerprint '" +
                                f.regex + "' is on a line of " + other->family + " (" +
                                other->path + ":" + std::to_string(t.file_line) + ")");
          }
        };
        // Only the lines its rules match: another family's non_matching
        // lines are often foreign lines on purpose (near-misses).
        for (const auto& rule : other->rules) {
          for (const auto& t : rule.tests) check(t);
        }
      }
    }
  }
  return run;
}

int RunPatternsTest(const std::vector<std::string>& files, const std::string& patterns_dir) {
  std::unique_ptr<match::Registry> reg;
  if (!files.empty()) {
    std::vector<std::string> problems;
    std::vector<match::PatternFile> loaded;
    int status = 0;
    for (const auto& f : files) {
      auto pf = match::LoadPatternFile(f);
      if (!pf) {
        std::fprintf(stderr, "FAIL %s\n", pf.error().message.c_str());
        status = 1;
        continue;
      }
      problems.clear();
      int n = TestPatternFile(*pf, &problems);
      for (const auto& p : problems) std::fprintf(stderr, "FAIL %s\n", p.c_str());
      std::printf("%s %s: %zu rules, %d test lines\n", problems.empty() ? "ok  " : "FAIL",
                  f.c_str(), pf->rules.size(), n);
      if (!problems.empty()) status = 1;
      loaded.push_back(std::move(*pf));
    }
    std::vector<const match::PatternFile*> all;
    for (const auto& pf : loaded) all.push_back(&pf);
    problems.clear();
    CheckFingerprints(all, &problems);
    for (const auto& p : problems) std::fprintf(stderr, "FAIL %s\n", p.c_str());
    if (!problems.empty()) status = 1;
    return status;
  }
  auto r = LoadRegistry(patterns_dir);
  if (!r) {
    std::fprintf(stderr, "FAIL %s\n", r.error().message.c_str());
    return 1;
  }
  int status = 0;
  for (size_t i = 0; i < (*r)->size(); ++i) {
    const auto& pf = (*r)->file(i);
    std::vector<std::string> problems;
    int n = TestPatternFile(pf, &problems);
    for (const auto& p : problems) std::fprintf(stderr, "FAIL %s\n", p.c_str());
    std::printf("%s %s: %zu rules, %d test lines\n", problems.empty() ? "ok  " : "FAIL",
                pf.path.c_str(), pf.rules.size(), n);
    if (!problems.empty()) status = 1;
  }
  std::vector<const match::PatternFile*> all;
  for (size_t i = 0; i < (*r)->size(); ++i) all.push_back(&(*r)->file(i));
  std::vector<std::string> problems;
  CheckFingerprints(all, &problems);
  for (const auto& p : problems) std::fprintf(stderr, "FAIL %s\n", p.c_str());
  if (!problems.empty()) status = 1;
  return status;
}

}  // namespace qw::app

namespace qw::app {
namespace {

// Regex text as an mtail /.../ literal: '/' must be escaped there.
std::string MtailRegex(const std::string& re) {
  std::string out;
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '\\' && i + 1 < re.size()) {
      out += re[i];
      out += re[++i];
    } else if (re[i] == '/') {
      out += "\\/";
    } else {
      out += re[i];
    }
  }
  return out;
}

// Named groups are captures for quorumwatch only: peers get plain groups
// (mtail would turn them into variables; duplicate names confuse both).
std::string StripGroupNames(const std::string& re) {
  std::string out;
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '\\' && i + 1 < re.size()) {
      out += re[i];
      out += re[++i];
      continue;
    }
    if (re.compare(i, 3, "(?P") == 0 && i + 3 < re.size() && re[i + 3] == '<') {
      size_t close = re.find('>', i);
      if (close != std::string::npos) {
        out += "(";
        i = close;
        continue;
      }
    }
    out += re[i];
  }
  return out;
}

}  // namespace

std::string MtailProgram(const match::PatternFile& pf) {
  std::string out = "# Generated by `quorumwatch patterns export --format mtail` from " + pf.path +
                    ".\n# One counter per rule; quorumwatch_lines_matched counts each line once.\n"
                    "# The combined regex is longer than mtail's default limit: run mtail with\n"
                    "# --max_regexp_length 1000000.\n";
  out += "counter quorumwatch_lines_matched\n";
  for (const auto& r : pf.rules) out.append("counter rule_").append(r.name).append("\n");
  out.append("\n");
  std::string any;
  for (const auto& r : pf.rules) {
    if (!any.empty()) any.append("|");
    any.append("(?:").append(StripGroupNames(r.regex)).append(")");
  }
  out.append("/").append(MtailRegex(any)).append("/ {\n  quorumwatch_lines_matched++\n}\n");
  for (const auto& r : pf.rules) {
    out.append("/").append(MtailRegex(StripGroupNames(r.regex)));
    out.append("/ {\n  rule_").append(r.name).append("++\n}\n");
  }
  return out;
}

int RunPatternsExport(const std::string& chain, const std::string& format,
                      const std::string& patterns_dir, const std::string& config_path) {
  auto reg = LoadRegistry(patterns_dir);
  if (!reg) {
    LogLine(reg.error().message);
    return 1;
  }
  std::string family = chain;
  if (!config_path.empty()) {
    auto c = LoadConfig(config_path);
    if (!c) {
      LogLine(c.error().message);
      return 1;
    }
    if (const ChainConfig* cc = c->FindChain(chain)) family = cc->family;
  }
  int f = (*reg)->Find(family);
  if (f < 0) {
    LogLine("no family or configured chain named '" + chain + "'");
    return 1;
  }
  const auto& pf = (*reg)->file(static_cast<size_t>(f));
  std::string out;
  if (format == "mtail") {
    out = MtailProgram(pf);
  } else {
    for (const auto& r : pf.rules) out += StripGroupNames(r.regex) + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace qw::app
