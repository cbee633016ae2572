// About 950 lines on purpose: the detector is one state machine over node
// and chain state (docs/DETECTION.md); its rules call each other (an
// advance judges lag, halts, misses and ban periods), so they stay in one
// translation unit, in the order of DETECTION.md's sections.
#include "detect/detector.h"

#include <algorithm>
#include <cctype>

#include "common/json.h"

namespace qw::detect {
namespace {

int64_t Ms(Nanos t) { return t / kMillisecond; }

constexpr int64_t kMaxJudgedGap = 16;

std::string ValidatorKey(std::string_view v) {
  std::string k;
  for (char c : v) {
    if (k.size() == 12) break;
    k.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return k;
}

// A nil vote's block id, as each software logs it: empty, `<nil>` (tmkms
// 0.6.3+), `(none)` (tmkms 0.6.0), `nil`, or all zeros (CometBFT's Vote
// string `000000000000`, WAL replay `:0:000000000000`). All become "".
std::string_view NormalBlockId(std::string_view id) {
  if (id == "<nil>" || id == "(none)" || id == "nil" || id == "none" || id == "{<nil>}") return {};
  for (char c : id) {
    if (c != '0' && c != ':') return id;
  }
  return {};
}

bool SameBlockId(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    // One side may be a shortened hash (CometBFT logs 6 bytes).
    size_t n = std::min(a.size(), b.size());
    if (n == 0) return a.empty() && b.empty();
    a = a.substr(0, n);
    b = b.substr(0, n);
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string Seconds(Nanos d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(d) / kSecond);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

Detector::Detector(std::vector<ChainSpec> chains, EventOutput* out) : out_(out) {
  for (auto& spec : chains) {
    ChainState c;
    c.spec = std::move(spec);
    chains_.push_back(std::move(c));
  }
}

int Detector::AddChain(ChainSpec spec) {
  ChainState c;
  c.spec = std::move(spec);
  chains_.push_back(std::move(c));
  return static_cast<int>(chains_.size()) - 1;
}

int Detector::FindChain(const std::string& name) const {
  for (size_t i = 0; i < chains_.size(); ++i) {
    if (chains_[i].spec.name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Detector::NodeKey(const std::string& chain, const std::string& namespace_,
                              const std::string& pod) {
  return chain + "|" + (namespace_.empty() ? pod : namespace_ + "/" + pod);
}

bool Detector::SplitNodeKey(std::string_view key, NodeKeyParts* out) {
  const size_t bar = key.find('|');
  if (bar == std::string_view::npos || bar == 0) return false;
  const std::string_view rest = key.substr(bar + 1);
  const size_t slash = rest.find('/');
  const std::string_view pod = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
  if (pod.empty()) return false;
  out->chain = std::string(key.substr(0, bar));
  out->namespace_ = slash == std::string_view::npos ? "" : std::string(rest.substr(0, slash));
  out->pod = std::string(pod);
  return true;
}

namespace {

// Kubernetes' generated names use these characters only (no vowels, no
// 0/1/3: k8s.io/apimachinery's rand.String and SafeEncodeString).
bool GeneratedPart(std::string_view s, size_t min, size_t max) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s) {
    if (std::string_view("bcdfghjklmnpqrstvwxz2456789").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string Detector::Workload(std::string_view pod) {
  size_t dash = pod.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || !GeneratedPart(pod.substr(dash + 1), 5, 5)) {
    return "";
  }
  std::string_view base = pod.substr(0, dash);
  // A Deployment's ReplicaSet adds its pod-template hash (6 to 10 characters).
  dash = base.rfind('-');
  if (dash != std::string_view::npos && dash > 0 && GeneratedPart(base.substr(dash + 1), 6, 10)) {
    base = base.substr(0, dash);
  }
  return std::string(base);
}

void Detector::AddRestoredNode(std::string key, NodeState state) {
  restored_[std::move(key)] = std::move(state);
}

int Detector::AddNode(NodeSpec spec) {
  NodeState n;
  auto restored = restored_.find(
      NodeKey(C(spec.chain).spec.name, spec.namespace_, spec.name));
  if (restored != restored_.end()) {
    // Saved state of this node (a restart): keep it, under the new spec.
    n = std::move(restored->second);
    restored_.erase(restored);
    n.spec = std::move(spec);
    n.workload = Workload(n.spec.name);
    n.open_streams = 0;
    n.retired = !n.replaced_by.empty();
    if (n.missed_ring.size() != static_cast<size_t>(std::max(1, n.spec.thresholds.missed_window))) {
      n.missed_ring.assign(static_cast<size_t>(std::max(1, n.spec.thresholds.missed_window)), 0);
      n.missed_ring_pos = 0;
      n.missed_in_window = 0;
    }
    int index = static_cast<int>(nodes_.size());
    C(n.spec.chain).nodes.push_back(index);
    nodes_.push_back(std::move(n));
    next_check_ = kNoTime;
    return index;
  }
  n.spec = std::move(spec);
  n.workload = Workload(n.spec.name);
  n.signer = n.spec.signer;
  n.validator = n.spec.validator_address;
  n.own_precommit.fill(-1);
  n.missed_ring.assign(static_cast<size_t>(std::max(1, n.spec.thresholds.missed_window)), 0);
  int index = static_cast<int>(nodes_.size());
  C(n.spec.chain).nodes.push_back(index);
  nodes_.push_back(std::move(n));
  return index;
}

void Detector::MoveNode(int n, NodeSpec spec) {
  NodeState& node = N(n);
  auto& old = C(node.spec.chain).nodes;
  old.erase(std::remove(old.begin(), old.end(), n), old.end());
  C(spec.chain).nodes.push_back(n);
  node.signer = node.signer || spec.signer;
  if (node.validator.empty()) node.validator = spec.validator_address;
  if (node.missed_ring.size() != static_cast<size_t>(std::max(1, spec.thresholds.missed_window))) {
    node.missed_ring.assign(static_cast<size_t>(std::max(1, spec.thresholds.missed_window)), 0);
    node.missed_ring_pos = 0;
    node.missed_in_window = 0;
  }
  node.spec = std::move(spec);
  node.workload = Workload(node.spec.name);
  next_check_ = kNoTime;
}

void Detector::AttachStream(int n) {
  N(n).open_streams++;
  N(n).retired = !N(n).replaced_by.empty();  // a replaced pod stays retired until it signals
}

void Detector::DetachStream(int n, Nanos now) {
  NodeState& node = N(n);
  if (node.open_streams > 0) node.open_streams--;
  if (node.open_streams > 0 || node.retired) return;
  Retire(n, now);
}

void Detector::Retire(int n, Nanos now) {
  NodeState& node = N(n);
  node.retired = true;
  node.stall_pending = false;
  if (node.ooc) {
    node.ooc_total += now - node.ooc_since;
    node.ooc = false;
  }
  // The head is the highest height among the nodes still visible.
  ChainState& chain = C(node.spec.chain);
  int64_t head = -1;
  for (int v : chain.nodes) {
    if (!N(v).retired) head = std::max(head, N(v).last_height);
  }
  if (head >= 0) chain.head = head;
  CheckLag(node.spec.chain, now);
  ResolvePendingStalls(node.spec.chain, now);
  next_check_ = kNoTime;
}

// ---------------------------------------------------------------------------
// A pod replaced by a newer one (DETECTION.md): a Deployment's pod comes back
// under a new name, and nothing but the logs says the old one is gone.

bool Detector::OlderSibling(int n, int v) const {
  const NodeState& c = nodes_[static_cast<size_t>(n)];
  const NodeState& p = nodes_[static_cast<size_t>(v)];
  return v != n && !c.workload.empty() && p.workload == c.workload &&
         p.spec.namespace_ == c.spec.namespace_ && p.first_seen != kNoTime &&
         p.first_seen < c.first_seen;
}

void Detector::NoteSeen(int n, Nanos now) {
  NodeState& node = N(n);
  if (node.first_seen == kNoTime) {
    node.first_seen = now;
    ChainState& chain = C(node.spec.chain);
    if (chain.first_seen == kNoTime) {
      chain.first_seen = now;
    } else if (!node.workload.empty() && node.spec.thresholds.replace_window > 0 &&
               now - chain.first_seen >= node.spec.thresholds.stall_after) {
      // Started after the chain was first seen (not one of the pods found
      // running): it may replace an older pod of its workload.
      node.successor_open = true;
      next_check_ = kNoTime;
    }
  }
  // A later last_seen only moves deadlines later: next_check_ stays a lower bound.
  node.last_seen = now;
}

Nanos Detector::ReplaceDeadline(int n) const {
  // Every older pod, retired or not, counts: the deadline then only moves
  // later (as they signal), never into the past.
  const NodeState& c = nodes_[static_cast<size_t>(n)];
  Nanos at = c.first_seen;
  for (int v : chains_[static_cast<size_t>(c.spec.chain)].nodes) {
    if (!OlderSibling(n, v)) continue;
    const NodeState& p = nodes_[static_cast<size_t>(v)];
    at = std::max(at, p.last_seen + p.spec.thresholds.stall_after);
  }
  return std::min(at, c.first_seen + c.spec.thresholds.replace_window);
}

void Detector::DecideReplacement(int n, Nanos at) {
  NodeState& c = N(n);
  c.successor_open = false;
  int best = -1;
  for (int v : C(c.spec.chain).nodes) {
    if (!OlderSibling(n, v)) continue;
    const NodeState& p = N(v);
    if (p.retired) continue;                                       // gone already
    if (at - p.last_seen < p.spec.thresholds.stall_after) continue;  // still logging
    // The one that went silent last is the one replaced.
    if (best < 0 || p.last_seen > N(best).last_seen ||
        (p.last_seen == N(best).last_seen && p.spec.name < N(best).spec.name)) {
      best = v;
    }
  }
  if (best < 0) return;
  NodeState& p = N(best);
  p.replaced_by = c.spec.name;
  Event e = MakeEvent(best, EventKind::kNodeReplaced, Severity::kInfo, at, p.last_height, Ms(at));
  e.AddDetailString("by", c.spec.name);
  e.AddDetail("last_seen", JsonString(FormatRfc3339Millis(p.last_seen)));
  Emit(std::move(e));
  Retire(best, at);
  // Gone: nothing about it is pending. Should it log again, it is judged
  // from there as a node that was not seen for a while.
  p.stalled = false;
  p.lagging = false;
  p.stall_base = kNoTime;
  p.period_open = false;
  p.period_start = kNoTime;
  p.back_since = kNoTime;
  p.ban_held = false;
  p.ban_held_rail.clear();
}

Event Detector::MakeEvent(int n, EventKind kind, Severity sev, Nanos at, int64_t height,
                          int64_t id_key) {
  const NodeState& node = N(n);
  Event e;
  e.time = at;
  e.kind = kind;
  e.severity = sev;
  e.chain = C(node.spec.chain).spec.name;
  e.node = node.spec.name;
  e.namespace_ = node.spec.namespace_;
  e.height = height;
  e.id = MakeEventId(e.chain, e.node, kind, id_key);
  return e;
}

Event Detector::MakeChainEvent(int chain, EventKind kind, Severity sev, Nanos at, int64_t height,
                               int64_t id_key) {
  Event e;
  e.time = at;
  e.kind = kind;
  e.severity = sev;
  e.chain = C(chain).spec.name;
  e.height = height;
  e.id = MakeEventId(e.chain, "", kind, id_key);
  return e;
}

Nanos Detector::NextDeadline(int n, Timer* which) const {
  const NodeState& node = nodes_[static_cast<size_t>(n)];
  *which = Timer::kNone;
  if (node.retired) return kNoTime;
  const Thresholds& t = node.spec.thresholds;
  Nanos best = kNoTime;
  auto consider = [&](Nanos at, Timer w) {
    if (best == kNoTime || at < best) {
      best = at;
      *which = w;
    }
  };
  const ChainState& chain = chains_[static_cast<size_t>(node.spec.chain)];
  if (!node.stalled && !node.stall_pending && node.stall_base != kNoTime && !chain.halted) {
    consider(node.stall_base + t.stall_after, Timer::kStall);
  }
  if (node.successor_open) consider(ReplaceDeadline(n), Timer::kReplace);
  if (node.period_open && !node.banned) {
    if (!node.ooc && node.back_since != kNoTime) {
      consider(node.back_since + t.stable_after, Timer::kPeriodEnd);
    }
    if (!node.ban_held) consider(node.period_start + t.ban_after, Timer::kBan);
  }
  if (node.banned && t.auto_unban && !node.ooc && node.back_since != kNoTime) {
    consider(node.back_since + t.unban_after, Timer::kUnban);
  }
  return best;
}

void Detector::OnTick(Nanos now) {
  while (true) {
    if (next_check_ != kNoTime && now < next_check_) return;
    Nanos best = kNoTime;
    int best_node = -1;
    Timer best_timer = Timer::kNone;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Timer w;
      Nanos d = NextDeadline(static_cast<int>(i), &w);
      if (d != kNoTime && (best == kNoTime || d < best)) {
        best = d;
        best_node = static_cast<int>(i);
        best_timer = w;
      }
    }
    if (best == kNoTime || best > now) {
      // Nothing pending: check again no sooner than the next deadline, or
      // at once after the next change (callers reset next_check_).
      next_check_ = best == kNoTime ? INT64_MAX : best;
      return;
    }
    next_check_ = kNoTime;
    Fire(best_node, best_timer, best);
  }
}

void Detector::Fire(int n, Timer which, Nanos at) {
  NodeState& node = N(n);
  switch (which) {
    case Timer::kStall:
      StallDue(n, at);
      break;
    case Timer::kPeriodEnd:
      node.period_open = false;
      node.period_start = kNoTime;
      node.ban_held = false;
      node.ban_held_rail.clear();
      node.back_since = kNoTime;
      break;
    case Timer::kBan:
      DecideBan(n, at, node.period_reason);
      if (!node.banned && !node.ban_held) node.ban_held = true;  // never re-fire
      break;
    case Timer::kUnban:
      Unban(n, at);
      break;
    case Timer::kReplace:
      DecideReplacement(n, at);
      break;
    default:
      break;
  }
}

void Detector::OnSignal(int n, Nanos now, const Signal& s, std::string_view line) {
  NodeState& node = N(n);
  if (node.retired) {
    if (node.replaced_by.empty()) return;
    // A replaced pod that signals again was not gone: it is judged again.
    node.replaced_by.clear();
    node.retired = false;
    next_check_ = kNoTime;
  }
  NoteSeen(n, now);
  switch (s.kind) {
    case SignalKind::kBlockCommitted:
    case SignalKind::kBlockProduced:
      if (s.height >= 0) {
        if (s.height > node.last_height) {
          AddEvidence(n, now, line);
          OnAdvance(n, now, s.height);
        }
      }
      break;
    case SignalKind::kVoteSigned:
      OnVote(n, now, s);
      break;
    case SignalKind::kVoteMissed:
    case SignalKind::kSlotSkipped: {
      // A miss naming another validator than ours is about someone else.
      if (!s.validator.empty() && !node.validator.empty() &&
          ValidatorKey(s.validator) != ValidatorKey(node.validator)) {
        break;
      }
      AddEvidence(n, now, line);
      if (!node.signer) node.signer = true;
      int64_t h = s.height >= 0 ? s.height : (node.last_height >= 0 ? node.last_height + 1 : -1);
      RecordMissed(n, now, h, s.kind == SignalKind::kSlotSkipped ? "skipped_slot" : "missed_vote",
                   s.height < 0);
      break;
    }
    case SignalKind::kDoubleSignRisk: {
      AddEvidence(n, now, line);
      int64_t h = s.height >= 0 ? s.height : node.last_height + 1;
      std::vector<std::pair<std::string, std::string>> extra;
      extra.emplace_back("line", JsonString(line.substr(0, 1024)));
      DoubleSign(n, now, h, Severity::kCritical, s.reason.empty() ? "double_sign_risk" : s.reason,
                 std::move(extra));
      break;
    }
    case SignalKind::kOthersMisbehaviour: {
      Event e = MakeEvent(n, EventKind::kDoubleSignRisk, Severity::kInfo, now,
                          s.height >= 0 ? s.height : node.last_height, 0);
      // Several validators can misbehave at one height: the id names which.
      e.id = MakeEventId(e.chain, e.node,
                         "double_sign_risk/others/" + std::string(s.validator) + "/" +
                             std::string(s.reason),
                         e.height >= 0 ? e.height : Ms(now));
      e.AddDetailString("reason", "others_misbehaviour");
      if (!s.reason.empty()) e.AddDetailString("kind", s.reason);
      if (!s.validator.empty()) e.AddDetailString("validator", s.validator);
      e.AddDetailString("line", line.substr(0, 1024));
      Emit(std::move(e));
      break;
    }
    case SignalKind::kConsensusFailure: {
      AddEvidence(n, now, line);
      int64_t h = s.height >= 0 ? s.height : (node.last_height >= 0 ? node.last_height + 1 : -1);
      if (!node.failed || node.failed_height != h) {
        node.failed = true;
        node.failed_height = h;
        node.failed_at = now;
        Event e = MakeEvent(n, EventKind::kConsensusFailure, Severity::kCritical, now, h,
                            h >= 0 ? h : Ms(now));
        e.AddDetailString("reason", s.reason.empty() ? "consensus_failure" : s.reason);
        e.AddDetailString("line", line.substr(0, 1024));
        Emit(std::move(e));
        UpdateConsensus(n, now, "consensus_failure");
      }
      break;
    }
    case SignalKind::kUpgradeHalt: {
      AddEvidence(n, now, line);
      int64_t h = s.height;
      if (node.upgrade_height != h || h < 0) {
        node.upgrade_height = h;
        Event e = MakeEvent(n, EventKind::kUpgradeHalt, Severity::kWarning, now, h,
                            h >= 0 ? h : Ms(now));
        if (!s.name.empty()) e.AddDetailString("name", s.name);
        Emit(std::move(e));
      }
      ChainState& chain = C(node.spec.chain);
      if (!chain.halted) {
        // The node stops at the upgrade height (it may have logged
        // "finalizing commit" for it); the chain resumes above it.
        HaltChain(node.spec.chain, now, h >= 0 ? h : node.last_height, "upgrade", s.name);
      }
      break;
    }
    case SignalKind::kSyncing: {
      const Thresholds& t = node.spec.thresholds;
      bool far = s.target_height < 0 || node.last_height < 0 ||
                 s.target_height - std::max(node.last_height, s.height) > t.max_lag;
      if (!node.syncing && far) {
        node.syncing = true;
        node.sync_since = now;
        Event e = MakeEvent(n, EventKind::kNodeSyncing, Severity::kWarning, now,
                            s.target_height >= 0 ? s.target_height : node.last_height, Ms(now));
        if (s.target_height >= 0) e.AddDetailInt("target_height", s.target_height);
        Emit(std::move(e));
        UpdateConsensus(n, now, "syncing");
      }
      break;
    }
    case SignalKind::kSynced:
      if (node.syncing) {
        node.syncing = false;
        Emit(MakeEvent(n, EventKind::kNodeSynced, Severity::kInfo, now, node.last_height,
                       Ms(node.sync_since)));
        UpdateConsensus(n, now, "");
      }
      break;
    default:
      break;
  }
  // A signal can only move this node's timers, or (chain-wide changes)
  // reset next_check_ itself.
  if (next_check_ != kNoTime) {
    Timer w;
    Nanos d = NextDeadline(n, &w);
    if (d != kNoTime && d < next_check_) next_check_ = d;
  }
}

void Detector::OnAdvance(int n, Nanos now, int64_t height) {
  NodeState& node = N(n);
  ChainState& chain = C(node.spec.chain);
  int64_t prev = node.last_height;
  if (node.last_advance != kNoTime) {
    node.longest_gap = std::max(node.longest_gap, now - node.last_advance);
    if (window_start_ != kNoTime && static_cast<size_t>(n) < window_.size()) {
      Nanos& g = window_[static_cast<size_t>(n)].longest_gap;
      g = std::max(g, now - node.last_advance);
    }
  }
  if (node.first_height < 0) node.first_height = height;
  node.last_height = height;
  node.last_advance = now;
  node.commits++;
  if (node.stalled) {
    node.stalled = false;
    Emit(MakeEvent(n, EventKind::kNodeRecovered, Severity::kInfo, now, height, Ms(node.stall_base)));
  }
  node.stall_base = now;
  node.stall_pending = false;
  node.failed = false;
  if (height > chain.head) chain.head = height;
  if (observer_ != nullptr) observer_->OnHeight(n, node.spec, chain.spec, now, height, chain.head);
  if (chain.halted && height > chain.halt_height) {
    chain.halted = false;
    Event e = MakeChainEvent(node.spec.chain, EventKind::kChainResumed, Severity::kInfo, now,
                             height, Ms(chain.halted_at));
    Emit(std::move(e));
    for (int v : chain.nodes) {
      NodeState& o = N(v);
      if (o.stall_base != kNoTime) o.stall_base = std::max(o.stall_base, now);
    }
  }
  if (node.syncing) {
    // Another node shows where the chain is: back within max_lag ends the sync.
    bool others = false;
    for (int v : chain.nodes) {
      if (v != n && !N(v).retired && N(v).last_height >= 0) others = true;
    }
    if (others && chain.head - height <= node.spec.thresholds.max_lag) {
      node.syncing = false;
      Emit(MakeEvent(n, EventKind::kNodeSynced, Severity::kInfo, now, height, Ms(node.sync_since)));
    }
  }
  if (!node.spec.signer && node.first_vote_height < 0 && node.missed_total > 0) {
    // No own votes to judge: explicit misses only; every commit moves the
    // window on, so old misses age out.
    uint8_t& slot = node.missed_ring[static_cast<size_t>(node.missed_ring_pos)];
    node.missed_in_window -= static_cast<int>(slot);
    slot = 0;
    node.missed_ring_pos = (node.missed_ring_pos + 1) % static_cast<int>(node.missed_ring.size());
  }
  if (prev >= 0) {
    // Heights passed over without a commit line were committed by the chain
    // too; a jump larger than kMaxJudgedGap is a sync or a gap in the log,
    // and only the last logged height is judged then.
    int64_t from = height - prev <= kMaxJudgedGap ? prev : height - 1;
    JudgeHeight(n, now, prev);
    for (int64_t h = std::max(from, prev + 1); h < height; ++h) JudgeHeight(n, now, h);
  }
  CheckLag(node.spec.chain, now);
  UpdateConsensus(n, now, "");
  ResolvePendingStalls(node.spec.chain, now);
  next_check_ = kNoTime;
}

void Detector::OnVote(int n, Nanos now, const Signal& s) {
  NodeState& node = N(n);
  if (s.height < 0) return;
  if (node.first_vote_height < 0) node.first_vote_height = s.height;
  node.signer = true;
  if (node.validator.empty() && !s.validator.empty()) node.validator = std::string(s.validator);
  if (s.vote_type == VoteType::kPrecommit) {
    node.own_precommit[static_cast<size_t>(s.height % kVoteRing)] = s.height;
  }
  std::string_view val = !s.validator.empty() ? s.validator : std::string_view(node.validator);
  if (val.empty()) return;
  ChainState& chain = C(node.spec.chain);
  VoteKey key{ValidatorKey(val), s.height, s.round, static_cast<uint8_t>(s.vote_type)};
  auto it = chain.votes.find(key);
  if (it == chain.votes.end()) {
    // Bounded: votes far below the head are forgotten, at most once per
    // head advance (so a large signing set cannot make every vote a scan).
    if (chain.votes.size() >= 4096 && chain.votes_pruned_at != chain.head) {
      chain.votes_pruned_at = chain.head;
      for (auto i = chain.votes.begin(); i != chain.votes.end();) {
        i = i->first.height < chain.head - 100 ? chain.votes.erase(i) : std::next(i);
      }
    }
    chain.votes.emplace(std::move(key), VoteSeen{n, std::string(NormalBlockId(s.block_id))});
    return;
  }
  if (it->second.node == n) return;
  const NodeState& other = N(it->second.node);
  std::vector<std::pair<std::string, std::string>> extra;
  extra.emplace_back("validator", JsonString(val));
  extra.emplace_back("other_node", JsonString(other.spec.name));
  extra.emplace_back("round", std::to_string(s.round));
  extra.emplace_back("type", JsonString(VoteTypeName(s.vote_type)));
  const std::string_view block_id = NormalBlockId(s.block_id);
  extra.emplace_back("block_id", JsonString(block_id.empty() ? "nil" : block_id));
  extra.emplace_back("other_block_id",
                     JsonString(it->second.block_id.empty() ? "nil" : it->second.block_id));
  if (!SameBlockId(block_id, it->second.block_id)) {
    DoubleSign(n, now, s.height, Severity::kCritical, "conflicting_votes", std::move(extra));
  } else if (!SameSignerGroup(node.spec.chain, n, it->second.node)) {
    DoubleSign(n, now, s.height, Severity::kWarning, "dual_active_signer", std::move(extra));
  }
}

void Detector::JudgeHeight(int n, Nanos now, int64_t h) {
  NodeState& node = N(n);
  if (!node.signer || h <= node.last_judged || !node.spec.thresholds.derive_misses) return;
  if (!node.spec.signer && (node.first_vote_height < 0 || h < node.first_vote_height)) return;
  node.last_judged = h;
  bool missed = node.own_precommit[static_cast<size_t>(h % kVoteRing)] != h;
  uint8_t& slot = node.missed_ring[static_cast<size_t>(node.missed_ring_pos)];
  node.missed_in_window += static_cast<int>(missed) - static_cast<int>(slot);
  slot = missed;
  node.missed_ring_pos = (node.missed_ring_pos + 1) % static_cast<int>(node.missed_ring.size());
  if (missed) {
    node.missed_total++;
    RecordMissed(n, now, h, "precommit");
  }
}

void Detector::RecordMissed(int n, Nanos now, int64_t h, std::string_view kind, bool inferred) {
  NodeState& node = N(n);
  if (kind != "precommit") {
    // A chain's own "missed" message: count it in the window here.
    uint8_t& slot = node.missed_ring[static_cast<size_t>(node.missed_ring_pos)];
    node.missed_in_window += 1 - static_cast<int>(slot);
    slot = 1;
    node.missed_ring_pos = (node.missed_ring_pos + 1) % static_cast<int>(node.missed_ring.size());
    node.missed_total++;
  }
  const Thresholds& t = node.spec.thresholds;
  Severity sev = node.missed_in_window > t.missed_max ? Severity::kWarning : Severity::kInfo;
  Event e = MakeEvent(n, EventKind::kMissedPrecommit, sev, now, h, h);
  if (kind != "precommit") {
    // Two duties can be missed at one height (a skipped slot and a vote).
    e.id = inferred ? MakeEventId(e.chain, e.node, "missed_precommit/" + std::string(kind) + "@" +
                                                       std::to_string(h),
                                  Ms(now))
                    : MakeEventId(e.chain, e.node, "missed_precommit/" + std::string(kind), h);
  }
  e.AddDetailString("kind", kind);
  e.AddDetailInt("missed_in_window", node.missed_in_window);
  e.AddDetailInt("window", t.missed_window);
  e.AddDetailInt("max", t.missed_max);
  if (!node.validator.empty()) e.AddDetailString("validator", node.validator);
  Emit(std::move(e));
}

int Detector::VisibleNodes(int chain) const {
  int count = 0;
  for (int v : chains_[static_cast<size_t>(chain)].nodes) {
    const NodeState& o = nodes_[static_cast<size_t>(v)];
    if (!o.retired && o.stall_base != kNoTime) ++count;
  }
  return count;
}

void Detector::StallDue(int n, Nanos at) {
  NodeState& node = N(n);
  const int c = node.spec.chain;
  ChainState& chain = C(c);
  if (chain.halted) return;
  std::vector<int> visible;
  for (int v : chain.nodes) {
    const NodeState& o = N(v);
    if (!o.retired && o.stall_base != kNoTime) visible.push_back(v);
  }
  if (visible.size() >= 2) {
    int64_t minh = INT64_MAX, maxh = -1;
    Nanos mina = INT64_MAX, maxa = INT64_MIN;
    for (int v : visible) {
      minh = std::min(minh, N(v).last_height);
      maxh = std::max(maxh, N(v).last_height);
      mina = std::min(mina, N(v).last_advance);
      maxa = std::max(maxa, N(v).last_advance);
    }
    if (maxh - minh <= 1 && maxa - mina <= node.spec.thresholds.stall_after) {
      bool all_due = true;
      for (int v : visible) {
        const NodeState& o = N(v);
        if (v != n && !o.stalled && !o.stall_pending &&
            o.stall_base + o.spec.thresholds.stall_after > at) {
          all_due = false;
        }
      }
      if (all_due) {
        HaltChain(c, at, maxh, "stalled", "");
      } else {
        node.stall_pending = true;
      }
      return;
    }
  }
  StallNode(n, at);
}

void Detector::ResolvePendingStalls(int chain, Nanos now) {
  for (int v : C(chain).nodes) {
    NodeState& o = N(v);
    if (o.stall_pending && !o.retired) {
      o.stall_pending = false;
      StallDue(v, now);
    }
  }
}

void Detector::StallNode(int n, Nanos at) {
  NodeState& node = N(n);
  node.stalled = true;
  node.stall_pending = false;
  Event e = MakeEvent(n, EventKind::kNodeStalled, Severity::kWarning, at, node.last_height,
                      Ms(node.stall_base));
  e.AddDetailString("stall_after", FormatDuration(node.spec.thresholds.stall_after));
  e.AddDetail("last_commit", JsonString(FormatRfc3339Millis(node.last_advance)));
  Emit(std::move(e));
  UpdateConsensus(n, at, "stalled");
}

void Detector::HaltChain(int c, Nanos at, int64_t height, std::string_view reason,
                         std::string_view name) {
  ChainState& chain = C(c);
  chain.halted = true;
  chain.halt_height = height;
  chain.halted_at = at;
  Event e = MakeChainEvent(c, EventKind::kChainHalted, Severity::kWarning, at, height, Ms(at));
  e.AddDetailString("reason", reason);
  if (!name.empty()) e.AddDetailString("name", name);
  Emit(std::move(e));
  for (int v : chain.nodes) {
    N(v).stall_pending = false;
    UpdateConsensus(v, at, "");
  }
  next_check_ = kNoTime;
}

void Detector::CheckLag(int c, Nanos now) {
  // Checked on every advance of any node of the chain: a node that falls
  // more than max_lag blocks behind is out of consensus before its stall
  // deadline (5 blocks = 30 s on a 6 s chain).
  ChainState& chain = C(c);
  for (int v : chain.nodes) {
    NodeState& o = N(v);
    if (o.retired || o.last_height < 0) continue;
    bool lag = chain.head - o.last_height > o.spec.thresholds.max_lag &&
               !(o.syncing && !o.was_in_consensus);
    if (lag != o.lagging) {
      o.lagging = lag;
      UpdateConsensus(v, now, "lagging");
    }
  }
}

void Detector::UpdateConsensus(int n, Nanos now, std::string_view) {
  NodeState& node = N(n);
  const ChainState& chain = C(node.spec.chain);
  std::string_view reason;
  if (!node.retired) {
    if (node.failed) {
      reason = "consensus_failure";
    } else if (node.stalled && !chain.halted) {
      reason = "stalled";
    } else if (node.lagging) {
      reason = "lagging";
    } else if (node.syncing && node.was_in_consensus && !chain.halted) {
      reason = "syncing";
    }
  }
  bool ooc = !reason.empty();
  if (ooc && !node.ooc) {
    node.ooc = true;
    node.ooc_since = now;
    node.ooc_reason = std::string(reason);
    Event e = MakeEvent(n, EventKind::kOutOfConsensus, Severity::kWarning, now, node.last_height,
                        Ms(now));
    e.AddDetailString("reason", reason);
    Emit(std::move(e));
    if (!node.period_open) {
      node.period_open = true;
      node.period_start = now;
      node.period_reason = std::string(reason);
      node.ban_held = false;
      node.ban_held_rail.clear();
    }
    node.back_since = kNoTime;
    next_check_ = kNoTime;
  } else if (!ooc && node.ooc) {
    node.ooc = false;
    node.ooc_total += now - node.ooc_since;
    Event e = MakeEvent(n, EventKind::kBackInConsensus, Severity::kInfo, now, node.last_height,
                        Ms(node.ooc_since));
    e.AddDetailString("reason", node.ooc_reason);
    e.AddDetailString("out_of_consensus_for", FormatDuration(now - node.ooc_since));
    Emit(std::move(e));
    node.back_since = now;
    next_check_ = kNoTime;
    // A node back in consensus may free a ban held for want of a healthy peer.
    for (int v : chain.nodes) {
      NodeState& o = N(v);
      if (v != n && o.ban_held && !o.banned && o.period_open && o.ooc) {
        DecideBan(v, now, o.period_reason);
      }
    }
  }
  if (!node.ooc && !node.syncing && node.last_height >= 0 && !node.retired) {
    node.was_in_consensus = true;
  }
}

bool Detector::SameSignerGroup(int c, int a, int b) const {
  const auto& na = nodes_[static_cast<size_t>(a)].spec.name;
  const auto& nb = nodes_[static_cast<size_t>(b)].spec.name;
  for (const auto& group : chains_[static_cast<size_t>(c)].spec.signer_groups) {
    bool ha = std::find(group.begin(), group.end(), na) != group.end();
    bool hb = std::find(group.begin(), group.end(), nb) != group.end();
    if (ha && hb) return true;
  }
  return false;
}

void Detector::DoubleSign(int n, Nanos now, int64_t height, Severity sev, std::string_view reason,
                          std::vector<std::pair<std::string, std::string>> extra) {
  NodeState& node = N(n);
  Event e = MakeEvent(n, EventKind::kDoubleSignRisk, sev, now, height, height);
  e.id = MakeEventId(e.chain, e.node, "double_sign_risk/" + std::string(reason), height);
  e.AddDetailString("reason", reason);
  node.double_sign_at = now;
  node.double_sign_critical = sev == Severity::kCritical;
  node.double_sign_reason = std::string(reason);
  for (auto& kv : extra) e.AddDetail(std::move(kv.first), std::move(kv.second));
  if (!node.validator.empty() && std::none_of(e.detail.begin(), e.detail.end(), [](const auto& kv) {
        return kv.first == "validator";
      })) {
    e.AddDetailString("validator", node.validator);
  }
  Emit(std::move(e));
  if (sev == Severity::kCritical && node.spec.thresholds.ban_on_double_sign && !node.banned) {
    if (!node.period_open) {
      node.period_open = true;
      node.period_start = now;
      node.period_reason = "double_sign";
    }
    DecideBan(n, now, "double_sign");
    next_check_ = kNoTime;
  }
}

bool Detector::RequireHealthyPeer(int n) const {
  const NodeState& node = nodes_[static_cast<size_t>(n)];
  switch (node.spec.thresholds.require_healthy_peer) {
    case Tristate::kTrue:
      return true;
    case Tristate::kFalse:
      return false;
    default:
      return VisibleNodes(node.spec.chain) >= 2;
  }
}

void Detector::DecideBan(int n, Nanos at, std::string_view reason) {
  NodeState& node = N(n);
  if (node.banned) return;
  const ChainState& chain = C(node.spec.chain);
  const Thresholds& t = node.spec.thresholds;
  int banned = 0;
  bool healthy_peer = false;
  for (int v : chain.nodes) {
    const NodeState& o = N(v);
    if (o.banned) ++banned;
    if (v != n && !o.retired && !o.ooc && !o.banned && o.last_height >= 0) healthy_peer = true;
  }
  std::string_view rail;
  if (OnHold(n)) {
    rail = "operator_hold";
  } else if (banned >= t.max_bans) {
    rail = "max_bans";
  } else if (RequireHealthyPeer(n) && !healthy_peer) {
    rail = "require_healthy_peer";
  }
  if (!rail.empty()) {
    node.ban_held_rail = std::string(rail);
    if (!node.ban_held) {
      node.ban_held = true;
      Event e = MakeEvent(n, EventKind::kBan, Severity::kCritical, at, node.last_height, 0);
      e.id = MakeEventId(e.chain, e.node, "ban/held", Ms(node.period_start));
      e.AddDetail("held", "true");
      e.AddDetailString("rail", rail);
      e.AddDetailString("reason", reason);
      e.AddDetail("since", JsonString(FormatRfc3339Millis(node.period_start)));
      Emit(std::move(e));
    }
    return;
  }
  node.banned = true;
  node.ban_held = false;
  node.ban_held_rail.clear();
  node.banned_at = at;
  node.bans++;
  Event e = MakeEvent(n, EventKind::kBan, Severity::kCritical, at, node.last_height,
                      Ms(node.period_start));
  e.AddDetailString("reason", reason);
  e.AddDetail("since", JsonString(FormatRfc3339Millis(node.period_start)));
  e.AddDetail("out_of_consensus_seconds", Seconds(at - node.period_start));
  if (!node.validator.empty()) e.AddDetailString("validator", node.validator);
  std::string ev = "[";
  for (const auto& line : Evidence(n)) {
    if (ev.size() > 1) ev.push_back(',');
    AppendJsonString(ev, line);
  }
  ev.push_back(']');
  e.AddDetail("evidence", ev);
  Emit(std::move(e));
}

void Detector::Unban(int n, Nanos at, bool by_operator) {
  NodeState& node = N(n);
  node.banned = false;
  Event e = MakeEvent(n, EventKind::kUnban, Severity::kInfo, at, node.last_height,
                      Ms(node.period_start));
  e.AddDetail("since", JsonString(FormatRfc3339Millis(node.period_start)));
  e.AddDetail("banned_at", JsonString(FormatRfc3339Millis(node.banned_at)));
  if (by_operator) {
    e.AddDetail("operator", "true");
    if (!node.validator.empty()) e.AddDetailString("validator", node.validator);
  }
  Emit(std::move(e));
  node.period_open = false;
  node.period_start = kNoTime;
  node.ban_held = false;
  node.ban_held_rail.clear();
  node.back_since = kNoTime;
  if (by_operator && node.ooc) {
    // Still out of consensus: the ban timer starts again from now.
    node.period_open = true;
    node.period_start = at;
    node.period_reason = node.ooc_reason;
  }
  const ChainState& chain = C(node.spec.chain);
  for (int v : chain.nodes) {
    NodeState& o = N(v);
    if (v != n && o.ban_held && !o.banned && o.period_open) DecideBan(v, at, o.period_reason);
  }
  next_check_ = kNoTime;
}

bool Detector::NodeMatches(int n, const std::string& ref) const {
  const NodeState& node = nodes_[static_cast<size_t>(n)];
  if (ref == node.spec.name) return true;
  if (!node.spec.namespace_.empty() && ref == node.spec.namespace_ + "/" + node.spec.name) {
    return true;
  }
  return ref == NodeKey(chains_[static_cast<size_t>(node.spec.chain)].spec.name,
                        node.spec.namespace_, node.spec.name);
}

bool Detector::OnHold(int n) const {
  for (const auto& ref : holds_) {
    if (NodeMatches(n, ref)) return true;
  }
  return false;
}

void Detector::SetHold(const std::string& ref, bool hold, Nanos now) {
  if (hold) {
    holds_.insert(ref);
    return;
  }
  if (holds_.erase(ref) == 0) return;
  // Released: a ban held back for this node is decided again now.
  for (size_t i = 0; i < nodes_.size(); ++i) {
    int n = static_cast<int>(i);
    NodeState& node = N(n);
    if (!NodeMatches(n, ref) || node.retired || OnHold(n)) continue;
    if (node.ban_held && !node.banned && node.period_open && node.ooc) {
      // Still held (by a rail) keeps its one held report.
      DecideBan(n, now, node.period_reason);
    }
  }
  next_check_ = kNoTime;
}

int Detector::OperatorUnban(const std::string& ref, Nanos now) {
  int count = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    int n = static_cast<int>(i);
    if (!NodeMatches(n, ref) || !N(n).banned) continue;
    Unban(n, now, true);
    ++count;
  }
  return count;
}

void Detector::AddEvidence(int n, Nanos now, std::string_view line) {
  NodeState& node = N(n);
  std::string& slot = node.evidence[static_cast<size_t>(node.evidence_next)];
  slot.clear();
  AppendRfc3339Millis(slot, now);
  slot.push_back(' ');
  slot.append(line.substr(0, 512));
  node.evidence_next = (node.evidence_next + 1) % kEvidenceLines;
}

std::vector<std::string> Detector::Evidence(int n) const {
  const NodeState& node = nodes_[static_cast<size_t>(n)];
  std::vector<std::string> out;
  for (int i = 0; i < kEvidenceLines; ++i) {
    const auto& s = node.evidence[static_cast<size_t>((node.evidence_next + i) % kEvidenceLines)];
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

void Detector::CountLines(int n, uint64_t read, uint64_t matched, uint64_t rejected) {
  NodeState& node = N(n);
  node.lines_read += read;
  node.lines_matched += matched;
  node.lines_rejected += rejected;
}

void Detector::Emit(Event e) {
  if (observer_ != nullptr && !e.node.empty()) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const NodeSpec& spec = nodes_[i].spec;
      if (spec.name == e.node && spec.namespace_ == e.namespace_ &&
          chains_[static_cast<size_t>(spec.chain)].spec.name == e.chain) {
        observer_->OnNodeEvent(static_cast<int>(i), chains_[static_cast<size_t>(spec.chain)].spec,
                               e, Evidence(static_cast<int>(i)));
        break;
      }
    }
  }
  out_->Emit(std::move(e));
}

void Detector::StartWindow(Nanos at) {
  window_start_ = at;
  window_.assign(nodes_.size(), WindowBase{});
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeState& node = nodes_[i];
    WindowBase& b = window_[i];
    b.height = node.last_height;
    b.commits = node.commits;
    b.missed = node.missed_total;
    b.ooc = node.ooc_total + (node.ooc ? std::max<Nanos>(0, at - node.ooc_since) : 0);
    b.bans = node.bans;
    b.lines_read = node.lines_read;
    b.lines_matched = node.lines_matched;
    b.lines_rejected = node.lines_rejected;
  }
}

void Detector::Finish(Nanos end) {
  for (auto& node : nodes_) {
    if (node.ooc && end != kNoTime) {
      node.ooc_total += std::max<Nanos>(0, end - node.ooc_since);
      node.ooc_since = end;
    }
  }
}

std::vector<NodeSummary> Detector::Summary() const {
  std::vector<NodeSummary> out;
  for (const auto& node : nodes_) {
    NodeSummary s;
    s.node = node.spec.name;
    s.namespace_ = node.spec.namespace_;
    s.chain = chains_[static_cast<size_t>(node.spec.chain)].spec.name;
    s.family = chains_[static_cast<size_t>(node.spec.chain)].spec.family;
    s.signer = node.signer;
    s.first_height = node.first_height;
    s.last_height = node.last_height;
    s.commits = node.commits;
    s.missed_precommits = node.signer ? node.missed_total : -1;
    s.longest_stall_seconds = static_cast<double>(node.longest_gap) / kSecond;
    s.seconds_out_of_consensus = static_cast<double>(node.ooc_total) / kSecond;
    s.bans = node.bans;
    s.lines_read = node.lines_read;
    s.lines_matched = node.lines_matched;
    s.lines_rejected = node.lines_rejected;
    // Nodes first seen after the window's start count whole.
    if (const size_t i = static_cast<size_t>(&node - nodes_.data());
        window_start_ != kNoTime && i < window_.size()) {
      const WindowBase& b = window_[i];
      if (b.height >= 0) s.first_height = b.height;
      s.commits -= b.commits;
      if (node.signer) s.missed_precommits -= b.missed;
      s.longest_stall_seconds = static_cast<double>(b.longest_gap) / kSecond;
      s.seconds_out_of_consensus = static_cast<double>(node.ooc_total - b.ooc) / kSecond;
      s.bans -= b.bans;
      s.lines_read -= b.lines_read;
      s.lines_matched -= b.lines_matched;
      s.lines_rejected -= b.lines_rejected;
    }
    if (!node.replaced_by.empty()) {
      s.status = "replaced";  // gone: a newer pod of its workload took its place
    } else if (node.banned) {
      s.status = "banned";
    } else if (node.ooc) {
      s.status = "out_of_consensus";
    } else if (node.syncing) {
      s.status = "syncing";
    } else if (node.signer && node.missed_in_window > node.spec.thresholds.missed_max) {
      s.status = "degraded";
    } else if (node.last_height < 0) {
      s.status = "unknown";
    } else {
      s.status = "in_consensus";
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const NodeSummary& a, const NodeSummary& b) {
    return std::tie(a.chain, a.namespace_, a.node) < std::tie(b.chain, b.namespace_, b.node);
  });
  return out;
}

}  // namespace qw::detect
