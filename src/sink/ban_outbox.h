// Ban decisions and the outbox that keeps them until the ban controller
// acknowledges them: the decision body (README.md, "Ban controller"), the
// records of state_dir/ban-outbox-<name>.jsonl, loading, appending and
// compaction (docs/BAN-OUTBOX.md). Delivery is the ban sink's
// (sink/ban_sink.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/time.h"

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

// The body of `d` (its `body` field ignored): one JSON object, keys in the
// documented order, no whitespace, no trailing newline.
std::string DecisionBody(const BanDecision& d);

// "<namespace>/<node>", or "<node>" without a namespace.
std::string BanNodeName(const BanDecision& d);

// One decision as the outbox holds it.
struct OutboxEntry {
  std::string sink;  // outbox name (one per ban sink)
  BanDecision decision;
  bool acknowledged = false;
  int attempts = 0;
  std::string last_error;
};

struct OutboxItem {
  OutboxEntry entry;
  Nanos decided_at = kNoTime;  // entry.decision.decided_at, parsed
  Nanos acked_at = kNoTime;
};

// The decisions an outbox file's text holds, as Open reads them; `bad`
// (optional) receives the number of unreadable lines (exposed for the fuzz
// target).
std::vector<OutboxItem> ParseOutboxText(std::string_view data, const std::string& sink_name,
                                        size_t* bad = nullptr);

// One ban sink's outbox file. Not thread-safe: the owner serialises every
// call (the ban sink holds its mutex). Items keep outbox order; only
// Compact (from Open, RecordAck and RecordFailure) removes any, so an
// index stays valid between calls of a single thread that alone records
// acknowledgements and failures.
class Outbox {
 public:
  // `log` receives operator-facing lines; `clock` dates acknowledgements'
  // expiry at compaction.
  Outbox(std::string state_dir, std::string name, const Clock* clock,
         std::function<void(const std::string&)> log);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }

  // Reads what the file holds, if it exists, and opens it for appending.
  // Unreadable lines (a record cut short by a crash, a disk fault) are
  // skipped and reported; the file as found is kept as <path>.damaged,
  // decisions only the previous generation (<path>.prev, the file before
  // the last compaction) holds are taken back, and the file is rewritten.
  [[nodiscard]] Result<void> Open();
  void Close();

  // True when a decision with this idempotency key is held (pending or
  // acknowledged).
  bool Has(const std::string& key) const { return keys_.count(key) > 0; }
  // Appends a decision, fsynced (the file and, when it is created, the
  // folder). False (errno says why) when it is not durable; it is held in
  // memory and delivered either way.
  bool Add(OutboxItem item);
  // A failed delivery attempt of items()[i]: counted, its error kept (not
  // fsynced: losing it loses nothing). Returns the attempts so far.
  int RecordFailure(size_t i, const std::string& error);
  // The acknowledgement of items()[i] at `at`, fsynced. False (errno) when
  // it is not durable: the decision may be delivered again after a crash.
  bool RecordAck(size_t i, Nanos at);

  const std::vector<OutboxItem>& items() const { return items_; }
  uint64_t pending() const;
  Nanos oldest_pending() const;

 private:
  bool Append(const std::string& record, bool sync);
  void Compact(bool keep_previous = true);
  void MaybeCompact();
  bool Replaced() const;

  std::string state_dir_, name_, path_;
  const Clock* clock_;
  std::function<void(const std::string&)> log_;
  std::vector<OutboxItem> items_;
  std::unordered_set<std::string> keys_;  // idempotency keys of items_
  int fd_ = -1;                           // O_APPEND; -1 until the file exists
  size_t file_records_ = 0;               // records in the file now
};

// Every outbox in state_dir (for `quorumwatch bans list`).
[[nodiscard]] Result<std::vector<OutboxEntry>> ReadOutboxes(const std::string& state_dir);

}  // namespace qw::sink
