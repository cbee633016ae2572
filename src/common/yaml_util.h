// Helpers for strict YAML reading: every error names file:line and reason,
// and unknown keys are errors.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/time.h"

namespace qw::yamlutil {

// "path:line: " for the node (1-based line).
std::string Where(const std::string& path, const YAML::Node& node);

// Parses the whole file; a syntax error becomes "path:line: reason".
Result<YAML::Node> LoadFile(const std::string& path);
// Parses `text`; errors are reported against `name`.
Result<YAML::Node> LoadText(const std::string& name, const std::string& text);

// Fails on a key of `map` that is not in `allowed` (and if `map` is not a map).
Result<void> CheckKeys(const std::string& path, const YAML::Node& map,
                       std::initializer_list<std::string_view> allowed);

// Each reads map[key] when present (leaving *out unchanged otherwise) and
// fails with file:line when the value is of the wrong type or range.
// Durations must be positive, or not negative with allow_zero.
Result<void> GetDuration(const std::string& path, const YAML::Node& map, const char* key,
                         Nanos* out, bool allow_zero = false);
Result<void> GetInt(const std::string& path, const YAML::Node& map, const char* key, int64_t min,
                    int64_t max, int64_t* out);
Result<void> GetBool(const std::string& path, const YAML::Node& map, const char* key, bool* out);
Result<void> GetString(const std::string& path, const YAML::Node& map, const char* key,
                       std::string* out);

}  // namespace qw::yamlutil
