// Ban sink: delivers ban and unban decisions to the ban controller, at
// least once, through a durable outbox in state_dir (sink/ban_outbox.h;
// the rules: docs/BAN-OUTBOX.md, the body and the receiver's side:
// README.md, "Ban controller").
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

#include "common/result.h"
#include "sink/ban_outbox.h"
#include "sink/event_sink.h"
#include "sink/sink_config.h"

namespace qw::sink {

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

// hex(HMAC-SHA256(secret, body)): the X-Quorumwatch-Signature value after
// "sha256=".
std::string SignBody(const std::string& secret, const std::string& body);

}  // namespace qw::sink
