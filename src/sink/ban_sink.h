// Ban sink: delivers ban and unban decisions to the ban controller, at
// least once, through a durable outbox in state_dir.
//
// A `ban` event (not a held one: detail.held) or an `unban` event becomes a
// decision. It is appended to the outbox file and fsynced before Write
// returns, then a delivery thread delivers it (webhook POST or exec) until
// acknowledged (2xx / exit status 0), retrying with backoff, and records the
// acknowledgement. A decision whose idempotency key is already in the outbox
// (pending or acknowledged) is not added again: lines read twice after a
// crash decide again with the same key. Pending decisions survive restarts.
// `dry_run` logs what would be delivered and writes nothing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "sink/event_sink.h"
#include "sink/sink_config.h"

namespace qw::sink {

struct BanDecision {
  std::string action;           // ban | unban
  std::string id;               // the event's id
  std::string idempotency_key;  // derived from action, node and period start
  std::string chain, namespace_, node, validator, reason;
  std::string since;            // RFC 3339: start of the out-of-consensus period
  std::string decided_at;       // RFC 3339: event time of the decision
  int64_t height = -1;
  std::vector<std::string> evidence;
  bool operator_request = false;  // from `quorumwatch bans unban`
  std::string body;             // the JSON body delivered (and signed)
};

// One decision as the outbox holds it.
struct OutboxEntry {
  std::string sink;  // outbox name (one per ban sink)
  BanDecision decision;
  bool acknowledged = false;
  int attempts = 0;
  std::string last_error;
};

class BanSink : public EventSink {
 public:
  // Reads the secret (file or environment; never logged), opens the outbox
  // and starts delivering what it holds. Refuses a bad configuration.
  [[nodiscard]] static Result<std::unique_ptr<BanSink>> Create(const SinkConfig& config,
                                                               const SinkContext& ctx);
  ~BanSink() override;

  void Write(const Event& e) override;
  void Close() override;

  // Decisions written and not yet acknowledged; decided_at of the oldest
  // (kNoTime when none). Thread-safe.
  uint64_t pending() const;
  Nanos oldest_pending() const;

 private:
  struct Impl;
  explicit BanSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Every outbox in state_dir (for `quorumwatch bans list`).
[[nodiscard]] Result<std::vector<OutboxEntry>> ReadOutboxes(const std::string& state_dir);

// hex(HMAC-SHA256(secret, body)): the X-Quorumwatch-Signature value after
// "sha256=".
std::string SignBody(const std::string& secret, const std::string& body);

}  // namespace qw::sink
