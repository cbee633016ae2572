// Thresholds that drive a node's decisions, resolved from the family's
// defaults, then the chain's configuration, then the node's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/time.h"

namespace qw::detect {

enum class Tristate : uint8_t { kAuto, kTrue, kFalse };

struct Thresholds {
  Nanos stall_after = 60 * kSecond;
  int64_t max_lag = 5;
  int missed_window = 100;
  int missed_max = 5;
  Nanos ban_after = 30 * 60 * kSecond;
  Nanos stable_after = 5 * 60 * kSecond;
  Nanos unban_after = 10 * 60 * kSecond;
  // A newer pod of the same workload that starts while a pod is silent is
  // its replacement when the older pods are decided within this long.
  Nanos replace_window = 5 * 60 * kSecond;
  bool auto_unban = true;
  int max_bans = 1;
  Tristate require_healthy_peer = Tristate::kAuto;  // auto: true with 2+ visible nodes
  bool ban_on_double_sign = false;
  bool derive_misses = true;  // the family's (patterns: defaults.derive_misses)
};

struct ChainSpec {
  std::string name;
  std::string family;
  Thresholds thresholds;
  std::vector<std::vector<std::string>> signer_groups;  // node (pod) names per group
};

struct NodeSpec {
  std::string name;        // pod or file name
  std::string namespace_;  // "" when unknown
  int chain = -1;          // index into the detector's chains
  bool signer = false;     // configured signer
  std::string validator_address;
  Thresholds thresholds;   // chain thresholds with node overrides applied
};

}  // namespace qw::detect
