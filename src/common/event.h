// Event: what the detectors report; the one type that crosses into the sinks.
// Its JSON form is the output contract (README.md, "Events (one JSON object
// per line)"; what triggers each kind: docs/DETECTION.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/time.h"

namespace qw {

enum class EventKind : uint8_t {
  kBackInConsensus,
  kBan,
  kChainHalted,
  kChainResumed,
  kConsensusFailure,
  kDoubleSignRisk,
  kMissedPrecommit,
  kNodeRecovered,
  kNodeStalled,
  kNodeSynced,
  kNodeSyncing,
  kOutOfConsensus,
  kUnban,
  kUpgradeHalt,
  kNodeReplaced,  // added later: kept last so the older values stay
};
std::string_view EventKindName(EventKind k);

enum class Severity : uint8_t { kInfo, kWarning, kCritical };
std::string_view SeverityName(Severity s);

struct Event {
  Nanos time = 0;
  EventKind kind = EventKind::kNodeStalled;
  Severity severity = Severity::kInfo;
  std::string chain;
  std::string node;       // "" for chain-level events
  std::string namespace_; // "" when unknown (then absent from JSON)
  int64_t height = -1;    // -1: absent
  std::string id;
  // detail object: key -> already-encoded JSON value, in output order.
  std::vector<std::pair<std::string, std::string>> detail;

  void AddDetail(std::string key, std::string json_value) {
    detail.emplace_back(std::move(key), std::move(json_value));
  }
  void AddDetailString(std::string key, std::string_view value);
  void AddDetailInt(std::string key, int64_t value);
};

// Output order: (time, chain, node, kind name), then height, then id.
bool EventLess(const Event& a, const Event& b);

// Stable id: 16 hex digits of SHA-256 over "chain|node|kind|key".
std::string MakeEventId(std::string_view chain, std::string_view node, EventKind kind,
                        int64_t key);
// The same with a kind label of its own (e.g. "ban/held"), for a second
// decision about one period that must not share the first one's id.
std::string MakeEventId(std::string_view chain, std::string_view node, std::string_view label,
                        int64_t key);

// One JSON line (without newline) in the contract's field order. Written by
// hand, not with nlohmann like the documents: it runs once per event written
// and is 6-30x faster (benchmarks/micro_json.cc; benchmarks/RESULTS.md,
// "Event line: hand-written or nlohmann").
void AppendEventJson(std::string& out, const Event& e);

// Receives events as they are decided (the detector emits them), in no
// particular order within one instant; the sinks' EventOrderer restores the
// output order.
class EventOutput {
 public:
  virtual ~EventOutput() = default;
  virtual void Emit(Event e) = 0;
};

}  // namespace qw
