// The pattern files compiled into the binary (generated at build time from
// patterns/*.yaml by tools/embed_patterns.py).
#pragma once

#include <cstddef>
#include <string_view>

namespace qw::match {

struct EmbeddedPattern {
  const char* name;       // file name, e.g. "cometbft.yaml"
  std::string_view text;  // file contents
};

extern const EmbeddedPattern kEmbeddedPatterns[];
extern const size_t kEmbeddedPatternCount;

}  // namespace qw::match
