#include "match/pattern_file.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "common/yaml_util.h"

namespace qw::match {

std::optional<Field> FieldOfGroup(std::string_view group) {
  if (auto f = FieldFromName(group)) return f;
  // "<field>_<n>": the same field captured in another alternative.
  size_t us = group.rfind('_');
  if (us == std::string_view::npos || us + 1 == group.size()) return std::nullopt;
  for (size_t i = us + 1; i < group.size(); ++i) {
    if (group[i] < '0' || group[i] > '9') return std::nullopt;
  }
  return FieldFromName(group.substr(0, us));
}
namespace {

using yamlutil::Where;

Result<std::vector<RuleTest>> LoadTests(const std::string& path, const YAML::Node& node) {
  std::vector<RuleTest> tests;
  if (!node) return tests;
  if (!node.IsSequence()) return Fail(Where(path, node) + "tests must be a list");
  for (const auto& t : node) {
    if (auto r = yamlutil::CheckKeys(path, t, {"line", "source", "want"}); !r) {
      return tl::unexpected(r.error());
    }
    RuleTest test;
    test.file_line = static_cast<int>(t.Mark().line) + 1;
    if (!t["line"] || !t["line"].IsScalar()) {
      return Fail(Where(path, t) + "a test needs a 'line'");
    }
    test.line = t["line"].as<std::string>();
    if (!t["source"] || !t["source"].IsScalar() || t["source"].as<std::string>().empty()) {
      return Fail(Where(path, t) + "a test needs a 'source' saying where the line comes from");
    }
    test.source = t["source"].as<std::string>();
    if (const auto& w = t["want"]) {
      if (!w.IsMap()) return Fail(Where(path, w) + "'want' must be a map of field: value");
      for (const auto& kv : w) {
        auto name = kv.first.as<std::string>();
        if (!FieldFromName(name)) {
          return Fail(Where(path, kv.first) + "unknown field '" + name + "'");
        }
        test.want.emplace_back(name, kv.second.as<std::string>());
      }
    }
    tests.push_back(std::move(test));
  }
  return tests;
}

Result<Rule> LoadRule(const std::string& path, const YAML::Node& r) {
  if (auto c = yamlutil::CheckKeys(path, r, {"name", "signal", "regex", "fields", "reason", "tests"});
      !c) {
    return tl::unexpected(c.error());
  }
  Rule rule;
  rule.file_line = static_cast<int>(r.Mark().line) + 1;
  if (!r["name"] || !r["name"].IsScalar()) return Fail(Where(path, r) + "a rule needs a 'name'");
  rule.name = r["name"].as<std::string>();
  if (!r["signal"]) return Fail(Where(path, r) + "rule '" + rule.name + "' needs a 'signal'");
  auto sig = SignalFromName(r["signal"].as<std::string>());
  if (!sig) {
    return Fail(Where(path, r["signal"]) + "unknown signal '" + r["signal"].as<std::string>() +
                "'");
  }
  rule.signal = *sig;
  if (!r["regex"] || !r["regex"].IsScalar()) {
    return Fail(Where(path, r) + "rule '" + rule.name + "' needs a 'regex'");
  }
  rule.regex = r["regex"].as<std::string>();
  RE2::Options opt;
  opt.set_log_errors(false);
  RE2 re(rule.regex, opt);
  if (!re.ok()) {
    return Fail(Where(path, r["regex"]) + "rule '" + rule.name + "': bad regex: " + re.error());
  }
  for (const auto& [group, index] : re.NamedCapturingGroups()) {
    (void)index;
    if (!FieldOfGroup(group)) {
      return Fail(Where(path, r["regex"]) + "rule '" + rule.name + "': named group '" + group +
                  "' is not a field");
    }
  }
  if (const auto& f = r["fields"]) {
    if (!f.IsMap()) return Fail(Where(path, f) + "'fields' must be a map of field: key");
    for (const auto& kv : f) {
      auto name = kv.first.as<std::string>();
      auto field = FieldFromName(name);
      if (!field) return Fail(Where(path, kv.first) + "unknown field '" + name + "'");
      rule.key_fields.push_back({*field, kv.second.as<std::string>()});
    }
  }
  if (r["reason"]) rule.reason = r["reason"].as<std::string>();
  auto tests = LoadTests(path, r["tests"]);
  if (!tests) return tl::unexpected(tests.error());
  rule.tests = std::move(*tests);
  if (rule.tests.empty()) {
    return Fail(Where(path, r) + "rule '" + rule.name + "' has no tests");
  }
  return rule;
}

Result<FamilyDefaults> LoadDefaults(const std::string& path, const YAML::Node& d) {
  FamilyDefaults out;
  if (!d) return out;
  if (auto c = yamlutil::CheckKeys(path, d, {"block_time", "stall_after", "max_lag", "missed", "derive_misses"});
      !c) {
    return tl::unexpected(c.error());
  }
  if (auto r = yamlutil::GetDuration(path, d, "block_time", &out.block_time); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = yamlutil::GetDuration(path, d, "stall_after", &out.stall_after); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = yamlutil::GetInt(path, d, "max_lag", 0, 1'000'000, &out.max_lag); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = yamlutil::GetBool(path, d, "derive_misses", &out.derive_misses); !r) {
    return tl::unexpected(r.error());
  }
  if (const auto& m = d["missed"]) {
    if (auto c = yamlutil::CheckKeys(path, m, {"window", "max"}); !c) return tl::unexpected(c.error());
    int64_t w = out.missed_window, mx = out.missed_max;
    if (auto r = yamlutil::GetInt(path, m, "window", 1, 100000, &w); !r) {
      return tl::unexpected(r.error());
    }
    if (auto r = yamlutil::GetInt(path, m, "max", 0, 100000, &mx); !r) {
      return tl::unexpected(r.error());
    }
    out.missed_window = static_cast<int>(w);
    out.missed_max = static_cast<int>(mx);
  }
  return out;
}

}  // namespace

Result<PatternFile> LoadPatternNode(const std::string& path, const YAML::Node& y);

Result<PatternFile> LoadPatternFile(const std::string& path) {
  auto root = yamlutil::LoadFile(path);
  if (!root) return tl::unexpected(root.error());
  // A conversion the loader's shape checks missed is still a refusal with
  // file and line, never an exception.
  try {
    return LoadPatternNode(path, *root);
  } catch (const YAML::Exception& e) {
    return Fail(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<PatternFile> LoadPatternText(const std::string& path, const std::string& text) {
  auto root = yamlutil::LoadText(path, text);
  if (!root) return tl::unexpected(root.error());
  // A conversion the loader's shape checks missed is still a refusal with
  // file and line, never an exception.
  try {
    return LoadPatternNode(path, *root);
  } catch (const YAML::Exception& e) {
    return Fail(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<PatternFile> LoadPatternNode(const std::string& path, const YAML::Node& y) {
  if (!y.IsMap()) return Fail(path + ":1: a pattern file is a map");
  if (auto c = yamlutil::CheckKeys(path, y,
                                   {"family", "aliases", "role", "defaults", "timestamps",
                                    "fingerprints", "continuation", "rules", "non_matching"});
      !c) {
    return tl::unexpected(c.error());
  }
  PatternFile pf;
  pf.path = path;
  if (!y["family"] || !y["family"].IsScalar()) return Fail(path + ":1: 'family' is required");
  pf.family = y["family"].as<std::string>();
  if (const auto& a = y["aliases"]) {
    if (!a.IsSequence()) return Fail(Where(path, a) + "'aliases' must be a list");
    for (const auto& s : a) pf.aliases.push_back(s.as<std::string>());
  }
  if (const auto& role = y["role"]) {
    auto v = role.as<std::string>();
    if (v != "node" && v != "signer") {
      return Fail(Where(path, role) + "role must be 'node' or 'signer', not '" + v + "'");
    }
    pf.signer_role = v == "signer";
  }
  auto defaults = LoadDefaults(path, y["defaults"]);
  if (!defaults) return tl::unexpected(defaults.error());
  pf.defaults = *defaults;
  RE2::Options opt;
  opt.set_log_errors(false);
  if (const auto& ts = y["timestamps"]) {
    if (!ts.IsSequence()) return Fail(Where(path, ts) + "'timestamps' must be a list");
    for (const auto& t : ts) {
      if (auto c = yamlutil::CheckKeys(path, t, {"regex", "layout"}); !c) {
        return tl::unexpected(c.error());
      }
      TimestampSpec spec;
      spec.line = static_cast<int>(t.Mark().line) + 1;
      if (!t["regex"] || !t["layout"]) {
        return Fail(Where(path, t) + "a timestamp needs 'regex' and 'layout'");
      }
      spec.regex = t["regex"].as<std::string>();
      spec.layout = t["layout"].as<std::string>();
      RE2 re(spec.regex, opt);
      if (!re.ok()) return Fail(Where(path, t["regex"]) + "bad timestamp regex: " + re.error());
      if (!re.NamedCapturingGroups().count("ts")) {
        return Fail(Where(path, t["regex"]) + "timestamp regex needs a group (?P<ts>...)");
      }
      pf.timestamps.push_back(std::move(spec));
    }
  }
  if (const auto& fps = y["fingerprints"]) {
    if (!fps.IsSequence()) return Fail(Where(path, fps) + "'fingerprints' must be a list");
    for (const auto& f : fps) {
      if (auto c = yamlutil::CheckKeys(path, f, {"regex", "source"}); !c) {
        return tl::unexpected(c.error());
      }
      if (!f["regex"] || !f["regex"].IsScalar() || !f["source"] || !f["source"].IsScalar() ||
          f["source"].as<std::string>().empty()) {
        return Fail(Where(path, f) + "a fingerprint needs 'regex' and 'source'");
      }
      Fingerprint fp;
      fp.line = static_cast<int>(f.Mark().line) + 1;
      fp.regex = f["regex"].as<std::string>();
      fp.source = f["source"].as<std::string>();
      RE2 re(fp.regex, opt);
      if (!re.ok()) return Fail(Where(path, f["regex"]) + "bad fingerprint regex: " + re.error());
      pf.fingerprints.push_back(std::move(fp));
    }
  }
  if (const auto& c = y["continuation"]) {
    if (!c.IsSequence()) return Fail(Where(path, c) + "'continuation' must be a list");
    for (const auto& s : c) {
      auto rx = s.as<std::string>();
      RE2 re(rx, opt);
      if (!re.ok()) return Fail(Where(path, s) + "bad continuation regex: " + re.error());
      pf.continuation.push_back(rx);
    }
  }
  const auto& rules = y["rules"];
  if (!rules || !rules.IsSequence() || rules.size() == 0) {
    return Fail(path + ":1: 'rules' must be a non-empty list");
  }
  std::set<std::string> names;
  for (const auto& r : rules) {
    auto rule = LoadRule(path, r);
    if (!rule) return tl::unexpected(rule.error());
    if (!names.insert(rule->name).second) {
      return Fail(Where(path, r) + "duplicate rule name '" + rule->name + "'");
    }
    pf.rules.push_back(std::move(*rule));
  }
  if (pf.rules.size() > 60000) return Fail(path + ":1: too many rules");
  auto nm = LoadTests(path, y["non_matching"]);
  if (!nm) return tl::unexpected(nm.error());
  pf.non_matching = std::move(*nm);
  return pf;
}

}  // namespace qw::match
