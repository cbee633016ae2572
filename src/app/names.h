// Node names from log file names (DESIGN.md, "Words").
#pragma once

#include <string>

namespace qw::app {

struct StreamName {
  std::string pod;        // node name
  std::string namespace_; // "" without Kubernetes names
  std::string container;  // "" without Kubernetes names
  bool kubernetes = false;
};

// "<pod>_<namespace>_<container>-<64 hex>.log[.zst]" -> pod, namespace,
// container; any other name -> the base name without extensions.
StreamName NameFromPath(const std::string& path);

}  // namespace qw::app
