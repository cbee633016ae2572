// Per-node and per-chain detector state. Plain data, so it can be
// checkpointed (live mode) and shipped (Kafka changelog) later. Owned by the
// one thread that runs the Detector.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/time.h"
#include "detect/thresholds.h"

namespace qw::detect {

inline constexpr int kVoteRing = 256;
inline constexpr int kEvidenceLines = 6;

struct NodeState {
  NodeSpec spec;

  // Streams feeding the node; the node retires when the last one ends.
  int open_streams = 0;
  bool retired = false;

  // Replacement (docs/DETECTION.md "A pod replaced by a newer one").
  std::string workload;         // the pod name without its generated suffixes; "" if none
  Nanos first_seen = kNoTime;   // time of the node's first signal
  Nanos last_seen = kNoTime;    // time of its latest signal
  bool successor_open = false;  // a newer pod whose predecessor is not decided yet
  std::string replaced_by;      // the pod that replaced this one (retired while set)

  // Heights.
  int64_t first_height = -1;
  int64_t last_height = -1;
  Nanos last_advance = kNoTime;  // time of the last height advance
  Nanos stall_base = kNoTime;    // stall clock start (last advance, or a chain resume)
  int64_t commits = 0;
  Nanos longest_gap = 0;

  // Conditions.
  bool stalled = false;
  bool stall_pending = false;  // at its deadline, waiting on a chain-halt decision
  bool failed = false;         // consensus failure until the next advance
  int64_t failed_height = -1;
  Nanos failed_at = kNoTime;
  bool syncing = false;
  Nanos sync_since = kNoTime;
  bool lagging = false;
  bool was_in_consensus = false;
  int64_t upgrade_height = -1;  // last upgrade halt logged

  // Out of consensus and the ban period.
  bool ooc = false;
  Nanos ooc_since = kNoTime;
  std::string ooc_reason;
  Nanos ooc_total = 0;
  bool period_open = false;
  Nanos period_start = kNoTime;
  std::string period_reason;
  Nanos back_since = kNoTime;  // back in consensus since (while the period is open)
  bool banned = false;
  bool ban_held = false;
  std::string ban_held_rail;   // max_bans | require_healthy_peer | operator_hold
  Nanos banned_at = kNoTime;
  int bans = 0;

  // Votes (signer detection and missed precommits).
  bool signer = false;  // configured or learned
  std::string validator;
  int64_t first_vote_height = -1;
  std::array<int64_t, kVoteRing> own_precommit{};  // height stored at height % ring
  int64_t last_judged = -1;
  std::vector<uint8_t> missed_ring;  // 1 = missed, size missed_window
  int missed_ring_pos = 0;
  int missed_in_window = 0;
  int64_t missed_total = 0;
  int64_t last_double_sign_height = -1;
  // The latest double-sign risk about this node (critical or warning).
  Nanos double_sign_at = kNoTime;
  bool double_sign_critical = false;
  std::string double_sign_reason;

  // Last significant lines, for ban evidence.
  std::array<std::string, kEvidenceLines> evidence;
  int evidence_next = 0;

  // Counters.
  uint64_t lines_read = 0;
  uint64_t lines_matched = 0;
  uint64_t lines_rejected = 0;
};

struct VoteKey {
  std::string validator;  // upper-case, first 12 hex digits
  int64_t height;
  int64_t round;
  uint8_t type;
  bool operator==(const VoteKey& o) const {
    return height == o.height && round == o.round && type == o.type && validator == o.validator;
  }
};
struct VoteKeyHash {
  size_t operator()(const VoteKey& k) const {
    return std::hash<std::string>()(k.validator) ^ (std::hash<int64_t>()(k.height) * 31) ^
           (static_cast<size_t>(k.round) << 8) ^ k.type;
  }
};
struct VoteSeen {
  int node;
  std::string block_id;
};

struct ChainState {
  ChainSpec spec;
  std::vector<int> nodes;
  int64_t head = -1;
  Nanos first_seen = kNoTime;  // the first signal of any of its nodes
  bool halted = false;
  int64_t halt_height = -1;
  Nanos halted_at = kNoTime;
  std::unordered_map<VoteKey, VoteSeen, VoteKeyHash> votes;
  int64_t votes_pruned_at = -1;  // head at the last pruning
};

}  // namespace qw::detect
