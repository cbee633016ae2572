// `quorumwatch replay`: captured logs through the pipeline, on event time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "app/config.h"
#include "detect/thresholds.h"
#include "match/registry.h"

namespace qw::app {

struct ReplayArgs {
  std::string chain = "auto";
  int threads = 0;  // 0: one per core, at most 4
  std::string format = "text";
  std::string events_path;
  std::string summary_path;
  std::string config_path;
  std::string node_name;
  std::string patterns_dir;
  bool stats = false;  // print pipeline figures on stderr
  std::vector<std::string> files;
};

// The pattern files: `dir` when given, else the ones built in.
[[nodiscard]] Result<std::unique_ptr<match::Registry>> LoadRegistry(const std::string& dir);

// A chain's spec: the family's default thresholds, then the chain's
// configuration (which also fixes the family when the chain is configured).
detect::ChainSpec ChainSpecFor(const Config& config, const match::Registry& registry,
                               const std::string& name, int family);

// The chain a stream of `family` joins when nothing names one: the family's
// only configured chain, else `fallback`.
std::string DefaultChain(const Config& config, const match::Registry& registry, int family,
                         const std::string& fallback);

// Returns the process exit status (0 done, 1 bad input or configuration).
int RunReplay(const ReplayArgs& args);

}  // namespace qw::app
