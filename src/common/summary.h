// NodeSummary: one node's figures at the end of a replay (the detector fills
// it, the sinks print it). The --summary JSON array is described in
// README.md, "Summary (--summary FILE)".
#pragma once

#include <cstdint>
#include <string>

namespace qw {

struct NodeSummary {
  std::string node, namespace_, chain, family;
  bool signer = false;
  int64_t first_height = -1, last_height = -1, commits = 0;
  int64_t missed_precommits = -1;  // -1: not a signer (null)
  double longest_stall_seconds = 0;
  double seconds_out_of_consensus = 0;
  int bans = 0;
  uint64_t lines_read = 0, lines_matched = 0, lines_rejected = 0;
  std::string status;
};

}  // namespace qw
