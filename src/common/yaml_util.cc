#include "common/yaml_util.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace qw::yamlutil {

std::string Where(const std::string& path, const YAML::Node& node) {
  int line = node.Mark().line >= 0 ? node.Mark().line + 1 : 1;
  return path + ":" + std::to_string(line) + ": ";
}

Result<YAML::Node> LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(path + ": cannot open: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadText(path, ss.str());
}

Result<YAML::Node> LoadText(const std::string& name, const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Fail(name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<void> CheckKeys(const std::string& path, const YAML::Node& map,
                       std::initializer_list<std::string_view> allowed) {
  if (!map.IsMap()) return Fail(Where(path, map) + "expected a map");
  for (const auto& kv : map) {
    // `? [a, b]` makes a key that is a list: refused, not thrown.
    if (!kv.first.IsScalar()) return Fail(Where(path, kv.first) + "a key must be a plain name");
    auto key = kv.first.as<std::string>();
    bool ok = false;
    for (auto a : allowed) ok = ok || a == key;
    if (!ok) {
      std::string list;
      for (auto a : allowed) {
        if (!list.empty()) list += ", ";
        list += a;
      }
      return Fail(Where(path, kv.first) + "unknown key '" + key + "' (known: " + list + ")");
    }
  }
  return {};
}

Result<void> GetDuration(const std::string& path, const YAML::Node& map, const char* key,
                         Nanos* out, bool allow_zero) {
  const auto& v = map[key];
  if (!v) return {};
  Nanos d = 0;
  if (!v.IsScalar() || !ParseDuration(v.Scalar(), &d) || d < 0 || (d == 0 && !allow_zero)) {
    return Fail(Where(path, v) + "'" + key + "' must be a " +
                (allow_zero ? "duration such as 0s, 5s, 1m" : "positive duration such as 60s, 5m, 1h") +
                ", not '" + (v.IsScalar() ? v.Scalar() : std::string("<not a scalar>")) + "'");
  }
  *out = d;
  return {};
}

Result<void> GetInt(const std::string& path, const YAML::Node& map, const char* key, int64_t min,
                    int64_t max, int64_t* out) {
  const auto& v = map[key];
  if (!v) return {};
  int64_t x = 0;
  const std::string s = v.IsScalar() ? v.Scalar() : "";
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || x < min || x > max) {
    return Fail(Where(path, v) + "'" + key + "' must be a whole number from " +
                std::to_string(min) + " to " + std::to_string(max) + ", not '" + s + "'");
  }
  *out = x;
  return {};
}

Result<void> GetBool(const std::string& path, const YAML::Node& map, const char* key, bool* out) {
  const auto& v = map[key];
  if (!v) return {};
  const std::string s = v.IsScalar() ? v.Scalar() : "";
  if (s == "true") {
    *out = true;
  } else if (s == "false") {
    *out = false;
  } else {
    return Fail(Where(path, v) + "'" + key + "' must be true or false, not '" + s + "'");
  }
  return {};
}

Result<void> GetString(const std::string& path, const YAML::Node& map, const char* key,
                       std::string* out) {
  const auto& v = map[key];
  if (!v) return {};
  if (!v.IsScalar()) return Fail(Where(path, v) + "'" + key + "' must be a string");
  *out = v.Scalar();
  return {};
}

}  // namespace qw::yamlutil
