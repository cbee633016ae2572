// Driver: the detector side of the pipeline, the same for replay, live
// tailing and Kafka. Takes batches in order, keeps the streams'
// placement (which node of which chain) and resume positions, moves the
// detector's time with the records (the watermark), feeds it the signals,
// and releases the decided events in output order to the sinks
// (docs/PIPELINE.md, "Ordering and time").
//
// Threading: owned by the pipeline's consumer thread (Stages); every method
// but the constructor is called from it, or after it has stopped.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/event.h"
#include "detect/detector.h"
#include "match/registry.h"
#include "pipeline/batch.h"
#include "pipeline/checkpoint.h"
#include "sink/event_sink.h"
#include "sink/status.h"

namespace qw::pipeline {

// What the configuration says about chains and nodes (app/ builds it).
class Topology {
 public:
  virtual ~Topology() = default;
  // The chain `name` whose streams are of `family` (registry index, -1
  // unknown): the family's defaults, then the chain's configuration.
  virtual detect::ChainSpec Chain(const std::string& name, int family) const = 0;
  // Completes a new node's spec (name, namespace_, chain and the chain's
  // thresholds are set): configured signer, validator address, overrides.
  virtual void Node(detect::NodeSpec* spec) const = 0;
};

class Driver {
 public:
  Driver(const Topology& topology, const match::Registry& registry,
         std::vector<sink::EventSink*> sinks);

  // One batch, in Dispatch order: its records (stream events, signals,
  // positions), then the events decided before the watermark go out; all
  // of them when the batch says every stream is idle.
  void Consume(const Batch& b);
  // Replay's end: timers stop at the last record (or at the window's end
  // when records went past it); everything decided goes.
  void Finish();
  // Replay --since/--until (kNoTime: open). Lines at or after `until` are
  // not looked at (timers stop there); the detector's summary starts at
  // `since`. Which events are reported is the sinks' business.
  void SetWindow(Nanos since, Nanos until) {
    since_ = since;
    until_ = until;
  }

  // The watermark: the detector's time (kNoTime before any record).
  Nanos time() const { return time_; }
  detect::Detector& detector() { return detector_; }
  const detect::Detector& detector() const { return detector_; }
  sink::EventOrderer& orderer() { return orderer_; }
  uint64_t events() const { return orderer_.written(); }

  // Node and chain state for level-triggered sinks. Health is the caller's.
  sink::Status BuildStatus(Nanos wall) const;

  // What a checkpoint holds of this side: chains, streams (identity,
  // position, family) and the events decided but not yet written. The
  // detector state is added by the caller (EncodeState).
  void Save(Checkpoint* cp) const;
  // Restores chains and pending events (before the detector state).
  void Restore(const Checkpoint& cp);
  // A chain's state handed over by another instance (the Kafka service's
  // changelog: a checkpoint of that chain alone, without streams): its
  // chains, its events decided and not yet written (those pending here
  // already are not repeated), then its detector state, merged into the
  // running one (other chains and nodes are left as they are). Its nodes
  // are live from then on, whether their pods have logged here yet or not.
  // On failure (a damaged state) nothing of the detector state is applied
  // (its nodes are there, as new ones).
  [[nodiscard]] Result<void> Merge(const Checkpoint& cp);
  // (path, chain) of every stream placed on a node.
  std::vector<std::pair<std::string, std::string>> StreamChains() const;

 private:
  struct Stream {
    record::StreamInfo info;
    bool placed = false;
    int node = -1;
    uint64_t position = 0;
    Nanos latest = kNoTime;  // latest record time
    uint64_t lines_read = 0, lines_rejected = 0;  // not yet counted for a node
  };
  void Progress(Stream& s, const StreamProgress& p);
  // A rotated file's stream that ends while its successor (same name, a new
  // file) is open but not yet placed (its family still being decided): the
  // node keeps the stream it had until the successor takes over, else it
  // would look gone for a moment and lose its state (an open ban period,
  // out of consensus) without a word.
  struct HeldDetach {
    record::StreamName name;
    int node;
  };
  std::vector<HeldDetach> held_detach_;
  bool HasUnplacedSuccessor(uint32_t ended, const record::StreamName& name) const;
  void ReleaseHeldDetach(const record::StreamName& name, bool all);
  int EnsureChain(const std::string& name, int family);
  // (chain, namespace, pod)
  using NodeKey = std::tuple<std::string, std::string, std::string>;
  void Place(Stream& s, const record::StreamInfo& info);
  void MoveNodeTo(int node, int chain, NodeKey from, const NodeKey& to);
  // The stream's family was decided again (record::RecordStage): it moves
  // to the node of its pod on the new chain.
  void Replace(Stream& s, const record::StreamInfo& info);
  int NewNode(int chain, const record::StreamName& name);

  const Topology& topology_;
  const match::Registry& registry_;

 public:
  const match::Registry& registry() const { return registry_; }

 private:
  sink::EventOrderer orderer_;
  detect::Detector detector_;
  Nanos time_ = kNoTime;
  Nanos since_ = kNoTime, until_ = kNoTime;
  bool window_started_ = false, past_until_ = false;
  void StartWindowBefore(Nanos now);
  std::map<uint32_t, Stream> streams_;
  Stream* last_ = nullptr;  // the stream of the last record (a cache)
  uint32_t last_id_ = 0;
  // Nodes by (chain, namespace, pod); nodes a signer stream made before
  // its pod's daemon stream was placed (they move to the daemon's chain).
  std::vector<SavedStream> not_reopened_;  // of the restored checkpoint, not opened yet
  std::map<NodeKey, int> nodes_;
  std::map<int, bool> signer_only_;
  std::map<std::string, std::string> chain_family_;  // chain name -> family name
};

}  // namespace qw::pipeline
