// Detector: node state and chain aggregation. Turns signals (with event
// times) and ticks into events. Never reads a clock.
//
// Threading: a Detector is owned by one thread; every method must be called
// from it. Times passed in must not decrease (callers clamp to a watermark).
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "common/signal.h"
#include "common/summary.h"
#include "detect/node_state.h"
#include "detect/thresholds.h"

namespace qw::detect {

// Sees what the events alone do not tell (the postmortem report): every
// height a node reaches and the lines behind each event about a node.
// Called on the detector's thread; must not call back into the detector.
class DetectorObserver {
 public:
  virtual ~DetectorObserver() = default;
  // Node `n` reached `height` at `at`; its chain's head is `head` then.
  virtual void OnHeight(int n, const NodeSpec& node, const ChainSpec& chain, Nanos at,
                        int64_t height, int64_t head) = 0;
  // Event `e` about node `n` is decided; `evidence`: the node's latest
  // significant lines, oldest first.
  virtual void OnNodeEvent(int n, const ChainSpec& chain, const Event& e,
                           const std::vector<std::string>& evidence) = 0;
};

class Detector {
 public:
  Detector(std::vector<ChainSpec> chains, EventOutput* out);

  // Adds a chain (live mode finds chains as streams appear); returns its index.
  int AddChain(ChainSpec spec);
  // Index of the chain named `name`, or -1.
  int FindChain(const std::string& name) const;

  // Adds a node; returns its index. REQUIRES: spec.chain is a chain index.
  int AddNode(NodeSpec spec);
  // Moves node `n` to another chain (spec.chain), with that spec. Used when
  // a remote signer's stream made its pod's node before the node's own
  // stream named the chain.
  void MoveNode(int n, NodeSpec spec);
  void AttachStream(int node);
  // A stream of the node ended (file finished or removed); the node retires
  // with its last stream.
  void DetachStream(int node, Nanos now);
  // The workload a pod name belongs to: the name without the suffixes
  // Kubernetes generates for the pods of a Deployment (`-<hash>-<5>`), a
  // ReplicaSet, DaemonSet or Job (`-<5>`); "" when it has none (a
  // StatefulSet's `val-0`, a file name). Pods of one workload may replace
  // one another (docs/DETECTION.md).
  static std::string Workload(std::string_view pod);

  // Fires every timer due at or before `now`, each at its own deadline.
  void OnTick(Nanos now);
  // One matched record of `node`. `line` is the record text (for evidence).
  void OnSignal(int node, Nanos now, const Signal& s, std::string_view line);

  void CountLines(int node, uint64_t read, uint64_t matched, uint64_t rejected);

  // Operator control (`quorumwatch bans ...`). A node reference is a pod
  // name, "namespace/pod", or a node key "chain|namespace/pod".
  // Hold: no ban for matching nodes until released (a due ban is reported
  // held, rail operator_hold). Holds persist in the state, also for nodes
  // not seen yet. Release re-decides a ban held for the node.
  void SetHold(const std::string& ref, bool hold, Nanos now);
  const std::set<std::string>& holds() const { return holds_; }
  // Unbans every banned node matching `ref` now (an `unban` decision with
  // detail.operator). A node still out of consensus starts a new ban
  // period. Returns the number of nodes unbanned.
  int OperatorUnban(const std::string& ref, Nanos now);
  // True when node `n` matches `ref`.
  bool NodeMatches(int n, const std::string& ref) const;

  // Closes open durations at `end` (for the summary).
  void Finish(Nanos end);
  // The summary reports from `at` on (replay --since): counts and durations
  // before it are left out, a stall under way at `at` counts whole. State is
  // not touched: decisions stay those of the whole input.
  void StartWindow(Nanos at);
  void SetObserver(DetectorObserver* o) { observer_ = o; }
  std::vector<NodeSummary> Summary() const;

  // State access for the codec (state_codec.h) and checkpoints.
  // REQUIRES: the detector's thread.
  NodeState& mutable_node(int i) { return nodes_[static_cast<size_t>(i)]; }
  ChainState& mutable_chain(int i) { return chains_[static_cast<size_t>(i)]; }
  size_t chain_count() const { return chains_.size(); }
  // "chain|namespace/pod" (or "chain|pod"): a node's identity in saved state.
  static std::string NodeKey(const std::string& chain, const std::string& namespace_,
                             const std::string& pod);
  // The parts of a NodeKey; false when `key` is not one (no '|', or an
  // empty chain or pod).
  struct NodeKeyParts {
    std::string chain, namespace_, pod;
  };
  static bool SplitNodeKey(std::string_view key, NodeKeyParts* out);
  // A restored node state whose node is not added yet: AddNode takes it
  // (keeping the new spec) when a node with that key is added.
  void AddRestoredNode(std::string key, NodeState state);
  // Restored states still waiting for their node (kept in checkpoints).
  const std::map<std::string, NodeState>& restored_nodes() const { return restored_; }
  // After restoring state: timers are recomputed on the next tick.
  void AfterRestore() { next_check_ = kNoTime; }

  size_t node_count() const { return nodes_.size(); }
  const NodeState& node(int i) const { return nodes_[static_cast<size_t>(i)]; }
  const ChainState& chain(int i) const { return chains_[static_cast<size_t>(i)]; }

 private:
  enum class Timer { kNone, kStall, kPeriodEnd, kBan, kUnban, kHeldBan, kReplace };

  NodeState& N(int i) { return nodes_[static_cast<size_t>(i)]; }
  ChainState& C(int i) { return chains_[static_cast<size_t>(i)]; }
  Nanos NextDeadline(int n, Timer* which) const;
  void Fire(int n, Timer which, Nanos at);

  Event MakeEvent(int n, EventKind kind, Severity sev, Nanos at, int64_t height, int64_t id_key);
  Event MakeChainEvent(int chain, EventKind kind, Severity sev, Nanos at, int64_t height,
                       int64_t id_key);
  void Emit(Event e);

  void OnAdvance(int n, Nanos now, int64_t height);
  void OnVote(int n, Nanos now, const Signal& s);
  void JudgeHeight(int n, Nanos now, int64_t h);
  // `inferred`: the line named no height (h is the node's next): the
  // event's id then also names the time, so repeated lines of one height
  // (EOS's "Not producing block" per block of a round) stay distinct.
  void RecordMissed(int n, Nanos now, int64_t h, std::string_view kind, bool inferred = false);
  // Retires node n (its last stream ended, or it was replaced).
  void Retire(int n, Nanos now);
  // The node signalled at `now`: first and last seen; a replaced node that
  // signals again was not gone and comes back.
  void NoteSeen(int n, Nanos now);
  // An open successor's decision time: when every older pod of its
  // workload is silent, at the latest its first signal + the window.
  Nanos ReplaceDeadline(int n) const;
  // Decides which older pod (if any) successor n replaced.
  void DecideReplacement(int n, Nanos at);
  bool OlderSibling(int n, int v) const;
  void StallDue(int n, Nanos at);
  void ResolvePendingStalls(int chain, Nanos now);
  void StallNode(int n, Nanos at);
  void HaltChain(int chain, Nanos at, int64_t height, std::string_view reason,
                 std::string_view name);
  void UpdateConsensus(int n, Nanos now, std::string_view reason);
  void CheckLag(int chain, Nanos now);
  void DoubleSign(int n, Nanos now, int64_t height, Severity sev, std::string_view reason,
                  std::vector<std::pair<std::string, std::string>> extra);
  void DecideBan(int n, Nanos at, std::string_view reason);
  void Unban(int n, Nanos at, bool by_operator = false);
  bool OnHold(int n) const;
  void AddEvidence(int n, Nanos now, std::string_view line);
  std::vector<std::string> Evidence(int n) const;
  bool RequireHealthyPeer(int n) const;
  int VisibleNodes(int chain) const;
  bool SameSignerGroup(int chain, int a, int b) const;

  std::vector<ChainState> chains_;
  std::vector<NodeState> nodes_;
  std::map<std::string, NodeState> restored_;  // by NodeKey, until AddNode
  std::set<std::string> holds_;                // operator holds (node references)
  EventOutput* out_;
  Nanos next_check_ = kNoTime;  // lower bound of the earliest pending timer
  DetectorObserver* observer_ = nullptr;
  // StartWindow: each node's figures at the window's start (by node index;
  // nodes added later start from zero), and its longest gap since.
  struct WindowBase {
    int64_t height = -1, commits = 0, missed = 0;
    Nanos ooc = 0, longest_gap = 0;
    int bans = 0;
    uint64_t lines_read = 0, lines_matched = 0, lines_rejected = 0;
  };
  Nanos window_start_ = kNoTime;
  std::vector<WindowBase> window_;
};

}  // namespace qw::detect
