// Status: a snapshot of the detector's node and chain state plus
// quorumwatch's own health, handed to the sinks about once a second (and
// after every batch that produced events). Level-triggered sinks (alerts,
// metrics gauges) derive everything from it, so a restart that restores the
// detector's state restores what they report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/time.h"

namespace qw::sink {

struct NodeStatus {
  std::string chain, family, namespace_, node;
  bool signer = false;
  bool retired = false;        // its last stream ended (file removed)
  int64_t height = -1;         // last committed height, -1 unknown
  Nanos last_advance = kNoTime;
  bool in_consensus = false;   // has a height, not out of consensus, not syncing, not retired
  bool syncing = false;
  bool stalled = false;
  Nanos stalled_since = kNoTime;
  bool out_of_consensus = false;
  Nanos out_of_consensus_since = kNoTime;
  std::string out_of_consensus_reason;
  bool consensus_failure = false;
  Nanos consensus_failure_at = kNoTime;
  int64_t consensus_failure_height = -1;
  int missed_in_window = 0;    // misses among the last missed_window judged heights
  int missed_window = 0, missed_max = 0;
  int64_t missed_total = 0;
  bool double_sign = false;    // the latest double-sign risk (critical or warning)
  Nanos double_sign_at = kNoTime;
  bool double_sign_critical = false;
  std::string double_sign_reason;
  int64_t double_sign_height = -1;
  bool banned = false;
  Nanos banned_at = kNoTime;
  bool ban_held = false;       // a ban was due, held by a rail or an operator hold
  std::string ban_held_rail;
  Nanos period_start = kNoTime;  // open out-of-consensus period (ban timer)
  std::string validator;
  bool operator_hold = false;  // `quorumwatch bans hold`
};

struct ChainStatus {
  std::string name, family;
  int64_t head = -1;
  bool halted = false;
  int64_t halt_height = -1;
  Nanos halted_at = kNoTime;
};

// Set by the reading side, read by the sinks.
struct HealthStatus {
  bool caught_up = false;        // every file read to its end once since start
  bool input_outage = false;     // no line from any stream for input_outage_after
  Nanos last_input = kNoTime;    // wall time of the last line read
  uint64_t bytes_behind = 0;     // unread bytes over all files
  uint64_t files_behind = 0;
  uint64_t lines_cut = 0;        // since start (over max_line_bytes)
  uint64_t lines_rejected = 0;   // since start (undecodable)
  uint64_t event_write_errors = 0;  // since start: events the jsonl sinks failed to write
  std::string prefilter = "re2-set";  // hyperscan, vectorscan or re2-set (as built)
  int prefilter_fallbacks = 0;        // families whose prefilter failed its self-check
  uint64_t ban_outbox_pending = 0;     // decisions written, not yet acknowledged
  Nanos ban_outbox_oldest = kNoTime;   // decided_at of the oldest undelivered one
  // Checkpoints (live mode): failed writes since start, whether the last
  // attempt failed (and why), and the wall time of the last one written.
  uint64_t checkpoint_errors = 0;
  bool checkpoint_failing = false;
  std::string checkpoint_error;
  Nanos last_checkpoint = kNoTime;
};

struct Status {
  Nanos now = 0;              // wall clock when taken
  Nanos detector_time = kNoTime;  // the detector's event-time clock
  std::vector<NodeStatus> nodes;
  std::vector<ChainStatus> chains;
  HealthStatus health;
};

}  // namespace qw::sink
