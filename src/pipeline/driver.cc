#include "pipeline/driver.h"

#include <algorithm>
#include <set>

#include "detect/state_codec.h"

namespace qw::pipeline {

Driver::Driver(const Topology& topology, const match::Registry& registry,
               std::vector<sink::EventSink*> sinks)
    : topology_(topology), registry_(registry), orderer_(std::move(sinks)),
      detector_({}, &orderer_) {}

int Driver::EnsureChain(const std::string& name, int family) {
  int c = detector_.FindChain(name);
  if (c >= 0) return c;
  detect::ChainSpec spec = topology_.Chain(name, family);
  chain_family_[name] = spec.family;
  return detector_.AddChain(std::move(spec));
}

// The node moves to `chain` with its history, its configuration
// (thresholds, signer) taken again for the new chain.
void Driver::MoveNodeTo(int node, int chain, NodeKey from, const NodeKey& to) {
  detect::NodeSpec spec = detector_.node(node).spec;
  spec.chain = chain;
  spec.thresholds = detector_.chain(chain).spec.thresholds;
  topology_.Node(&spec);
  detector_.MoveNode(node, std::move(spec));
  nodes_.erase(from);
  nodes_.emplace(to, node);
  signer_only_[node] = false;
}

int Driver::NewNode(int chain, const record::StreamName& name) {
  detect::NodeSpec spec;
  spec.name = name.pod;
  spec.namespace_ = name.namespace_;
  spec.chain = chain;
  spec.thresholds = detector_.chain(chain).spec.thresholds;
  topology_.Node(&spec);
  int node = detector_.AddNode(std::move(spec));
  nodes_.emplace(std::make_tuple(detector_.chain(chain).spec.name, name.namespace_, name.pod), node);
  return node;
}

// A daemon stream makes or joins the node of its pod on its chain. A
// signer stream (tmkms, Horcrux) joins its pod's node on whatever chain;
// when there is none yet, it makes one on its own chain, which the pod's
// daemon stream later moves to the daemon's chain.
void Driver::Place(Stream& s, const record::StreamInfo& info) {
  s.info = info;
  s.placed = true;
  const int chain = EnsureChain(info.chain, info.family);
  const std::string& ns = info.name.namespace_;
  const std::string& pod = info.name.pod;
  int node = -1;
  if (info.signer) {
    for (const auto& [key, idx] : nodes_) {
      if (std::get<1>(key) != ns || std::get<2>(key) != pod) continue;
      if (node < 0 || !signer_only_[idx]) node = idx;
    }
    if (node < 0) {
      node = NewNode(chain, info.name);
      signer_only_[node] = true;
    }
  } else {
    const auto key = std::make_tuple(info.chain, ns, pod);
    auto it = nodes_.find(key);
    if (it != nodes_.end()) {
      node = it->second;
    } else {
      for (auto other = nodes_.begin(); other != nodes_.end(); ++other) {
        if (std::get<1>(other->first) != ns || std::get<2>(other->first) != pod ||
            !signer_only_[other->second]) {
          continue;
        }
        node = other->second;
        MoveNodeTo(node, chain, other->first, key);
        break;
      }
      if (node < 0) node = NewNode(chain, info.name);
    }
  }
  s.node = node;
  detector_.AttachStream(node);
  ReleaseHeldDetach(info.name, /*all=*/false);
  if (s.lines_read > 0 || s.lines_rejected > 0) {
    detector_.CountLines(node, s.lines_read, 0, s.lines_rejected);
    s.lines_read = s.lines_rejected = 0;
  }
}

bool Driver::HasUnplacedSuccessor(uint32_t ended, const record::StreamName& name) const {
  for (const auto& [id, o] : streams_) {
    if (id != ended && !o.placed && o.info.name.namespace_ == name.namespace_ &&
        o.info.name.pod == name.pod && o.info.name.container == name.container) {
      return true;
    }
  }
  return false;
}

void Driver::ReleaseHeldDetach(const record::StreamName& name, bool all) {
  for (auto it = held_detach_.begin(); it != held_detach_.end();) {
    if (it->name.namespace_ == name.namespace_ && it->name.pod == name.pod &&
        it->name.container == name.container) {
      detector_.DetachStream(it->node, time_ == kNoTime ? 0 : time_);
      it = held_detach_.erase(it);
      if (!all) return;
    } else {
      ++it;
    }
  }
}

void Driver::Replace(Stream& s, const record::StreamInfo& info) {
  if (info.chain == s.info.chain && info.family == s.info.family && info.signer == s.info.signer) {
    return;
  }
  const int old = s.node;
  const int chain = EnsureChain(info.chain, info.family);
  const auto key = std::make_tuple(info.chain, info.name.namespace_, info.name.pod);
  const auto old_key =
      std::make_tuple(s.info.chain, s.info.name.namespace_, s.info.name.pod);
  if (old >= 0 && detector_.node(old).open_streams == 1 && nodes_.count(key) == 0 && !info.signer) {
    // The node was this stream's alone: it moves, history and all.
    MoveNodeTo(old, chain, old_key, key);
    s.info = info;
    return;
  }
  // Shared with other streams: this one leaves it and joins (or makes)
  // its pod's node on the new chain.
  if (old >= 0) detector_.DetachStream(old, time_ == kNoTime ? 0 : time_);
  s.node = -1;
  Place(s, info);
}

// Lines read belong to the stream's node; until the stream is placed they
// wait with it.
void Driver::Progress(Stream& s, const StreamProgress& p) {
  s.position = p.position;
  s.lines_read += p.lines_read;
  s.lines_rejected += p.lines_rejected;
  if (s.node >= 0 && (s.lines_read > 0 || s.lines_rejected > 0)) {
    detector_.CountLines(s.node, s.lines_read, 0, s.lines_rejected);
    s.lines_read = s.lines_rejected = 0;
  }
}

void Driver::Consume(const Batch& b) {
  for (size_t i = 0; i < b.records.size(); ++i) {
    const Record& r = b.records[i];
    switch (r.kind) {
      case RecordKind::kLine: {
        // A fallback time (no stamp: the file's modification time) orders
        // the record but moves no clock: a stamp-less file copied today
        // must not make a day of silence of every other node.
        const bool stamped = (r.flags & record::kEntryFallbackTime) == 0;
        const Nanos now =
            time_ == kNoTime || (stamped && r.time > time_) ? r.time : time_;
        if (until_ != kNoTime && now >= until_) {
          past_until_ = true;
          break;
        }
        if (since_ != kNoTime && !window_started_ && now >= since_) StartWindowBefore(now);
        time_ = now;
        detector_.OnTick(now);
        // Records come in runs of one stream: the last one looked up is
        // usually the one.
        if (last_ == nullptr || last_id_ != r.stream) {
          auto it = streams_.find(r.stream);
          if (it == streams_.end()) break;
          last_ = &it->second;
          last_id_ = r.stream;
        }
        Stream& s = *last_;
        if (stamped && (s.latest == kNoTime || r.time > s.latest)) s.latest = r.time;
        const Signal& sig = b.signals[i];
        if (s.node >= 0 && sig.kind != SignalKind::kNone) {
          detector_.CountLines(s.node, 0, 1, 0);
          detector_.OnSignal(s.node, now, sig, b.text(r));
        }
        break;
      }
      case RecordKind::kOpen: {
        auto known = streams_.find(r.stream);
        if (known != streams_.end()) {
          // Truncated in place: the file as it is now, read from 0.
          known->second.info.identity = b.infos[r.offset].identity;
          known->second.info.start_offset = b.infos[r.offset].start_offset;
          known->second.position = b.infos[r.offset].start_offset;
          break;
        }
        Stream s;
        s.info = b.infos[r.offset];
        const FileIdentity& id = s.info.identity;
        not_reopened_.erase(std::remove_if(not_reopened_.begin(), not_reopened_.end(),
                                           [&id](const SavedStream& o) {
                                             return o.identity.dev == id.dev && o.identity.ino == id.ino;
                                           }),
                            not_reopened_.end());
        s.position = s.info.start_offset;
        streams_[r.stream] = std::move(s);
        break;
      }
      case RecordKind::kStart: {
        Stream& s = streams_[r.stream];
        if (!s.placed) {
          Place(s, b.infos[r.offset]);
        } else {
          Replace(s, b.infos[r.offset]);
        }
        break;
      }
      case RecordKind::kPosition: {
        Stream& s = streams_[r.stream];
        Progress(s, b.progress[r.offset]);
        break;
      }
      case RecordKind::kEnd: {
        auto it = streams_.find(r.stream);
        if (it == streams_.end()) break;
        Stream& s = it->second;
        Progress(s, b.progress[r.offset]);
        Nanos now = time_ == kNoTime ? (s.latest == kNoTime ? 0 : s.latest) : time_;
        time_ = now;
        detector_.OnTick(now);
        // A file gone (rotated away, removed) leaves its node; the end of a
        // replayed file is only the end of what was captured: the node
        // stays, and the other streams' times judge it as live mode would.
        if (s.node >= 0 && (r.flags & record::kEntryGone) != 0) {
          if (HasUnplacedSuccessor(r.stream, s.info.name)) {
            held_detach_.push_back(HeldDetach{s.info.name, s.node});
          } else {
            detector_.DetachStream(s.node, now);
          }
        } else if (!s.placed && !HasUnplacedSuccessor(r.stream, s.info.name)) {
          // A successor that ended before it was placed: nothing takes over.
          ReleaseHeldDetach(s.info.name, /*all=*/true);
        }
        streams_.erase(it);
        last_ = nullptr;
        break;
      }
    }
  }
  if (b.all_idle) {
    // Every file there is has been opened and read: a stream of the
    // checkpoint not reopened by now is gone.
    not_reopened_.clear();
    // Nothing read so far can come before what is decided: it all goes.
    orderer_.ReleaseAll();
  } else if (time_ != kNoTime) {
    orderer_.Release(time_);
  }
}

void Driver::StartWindowBefore(Nanos now) {
  // What was due before the window is decided before its figures start.
  const Nanos at = time_ == kNoTime ? since_ : std::max(time_, std::min(since_, now));
  detector_.OnTick(at);
  detector_.StartWindow(at);
  window_started_ = true;
}

void Driver::Finish() {
  if (past_until_) time_ = until_;
  if (since_ != kNoTime && !window_started_ && time_ != kNoTime) StartWindowBefore(time_);
  if (time_ != kNoTime) detector_.OnTick(time_);
  detector_.Finish(time_);
  orderer_.ReleaseAll();
}

sink::Status Driver::BuildStatus(Nanos wall) const {
  sink::Status st;
  st.now = wall;
  st.detector_time = time_;
  for (size_t c = 0; c < detector_.chain_count(); ++c) {
    const detect::ChainState& ch = detector_.chain(static_cast<int>(c));
    if (ch.nodes.empty()) continue;  // a signer's chain whose node moved on
    sink::ChainStatus cs;
    cs.name = ch.spec.name;
    cs.family = ch.spec.family;
    cs.head = ch.head;
    cs.halted = ch.halted;
    cs.halt_height = ch.halt_height;
    cs.halted_at = ch.halted_at;
    st.chains.push_back(std::move(cs));
  }
  for (size_t i = 0; i < detector_.node_count(); ++i) {
    const detect::NodeState& n = detector_.node(static_cast<int>(i));
    const detect::ChainState& ch = detector_.chain(n.spec.chain);
    sink::NodeStatus ns;
    ns.chain = ch.spec.name;
    ns.family = ch.spec.family;
    ns.namespace_ = n.spec.namespace_;
    ns.node = n.spec.name;
    ns.signer = n.signer || n.spec.signer;
    ns.retired = n.retired;
    ns.height = n.last_height;
    ns.last_advance = n.last_advance;
    ns.syncing = n.syncing;
    ns.in_consensus = !n.retired && !n.ooc && !n.syncing && n.last_height >= 0;
    ns.stalled = n.stalled && !ch.halted;
    if (ns.stalled && n.stall_base != kNoTime) {
      ns.stalled_since = n.stall_base + n.spec.thresholds.stall_after;
    }
    ns.out_of_consensus = n.ooc;
    ns.out_of_consensus_since = n.ooc_since;
    ns.out_of_consensus_reason = n.ooc_reason;
    ns.consensus_failure = n.failed;
    ns.consensus_failure_at = n.failed_at;
    ns.consensus_failure_height = n.failed_height;
    ns.missed_in_window = n.missed_in_window;
    ns.missed_window = n.spec.thresholds.missed_window;
    ns.missed_max = n.spec.thresholds.missed_max;
    ns.missed_total = n.missed_total;
    ns.double_sign_at = n.double_sign_at;
    ns.double_sign = n.double_sign_at != kNoTime;
    ns.double_sign_critical = n.double_sign_critical;
    ns.double_sign_reason = n.double_sign_reason;
    ns.double_sign_height = n.last_double_sign_height;
    ns.banned = n.banned;
    ns.banned_at = n.banned_at;
    ns.ban_held = n.ban_held && !n.banned && n.period_open;
    ns.ban_held_rail = n.ban_held_rail;
    ns.period_start = n.period_open ? n.period_start : kNoTime;
    ns.validator = n.validator.empty() ? n.spec.validator_address : n.validator;
    for (const auto& ref : detector_.holds()) {
      ns.operator_hold = ns.operator_hold || detector_.NodeMatches(static_cast<int>(i), ref);
    }
    st.nodes.push_back(std::move(ns));
  }
  return st;
}

void Driver::Save(Checkpoint* cp) const {
  for (const auto& [name, family] : chain_family_) cp->chains.emplace_back(name, family);
  for (const auto& [id, s] : streams_) {
    SavedStream saved;
    saved.path = s.info.path;
    saved.identity = s.info.identity;
    saved.offset = s.position;
    if (s.placed && s.info.family >= 0) {
      saved.family = registry_.file(static_cast<size_t>(s.info.family)).family;
    }
    saved.last_time = s.latest;
    cp->streams.push_back(std::move(saved));
  }
  for (const auto& s : not_reopened_) cp->streams.push_back(s);
  cp->pending = orderer_.pending();
}

void Driver::Restore(const Checkpoint& cp) {
  for (const auto& [name, family] : cp.chains) EnsureChain(name, registry_.Find(family));
  // Until this run has opened them, the streams of the checkpoint go into
  // every checkpoint as they were: a stop or reload before the first scan
  // must not forget where a file was (the next start would read it again
  // from its beginning and decide its events again).
  not_reopened_ = cp.streams;
  for (const auto& e : cp.pending) orderer_.Emit(e);
}

std::vector<std::pair<std::string, std::string>> Driver::StreamChains() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [id, s] : streams_) {
    if (s.placed && s.node >= 0) {
      out.emplace_back(s.info.path, detector_.chain(detector_.node(s.node).spec.chain).spec.name);
    }
  }
  return out;
}

Result<void> Driver::Merge(const Checkpoint& cp) {
  for (const auto& [name, family] : cp.chains) EnsureChain(name, registry_.Find(family));
  std::set<std::string> pending;
  for (const auto& e : orderer_.pending()) pending.insert(e.id);
  for (const auto& e : cp.pending) {
    if (pending.count(e.id) == 0) orderer_.Emit(e);
  }
  // Streams of the partition the state reflects that are still here are
  // this member's from before the partition was revoked (a rebalance that
  // gave it back): the state is as of the offset it resumes at, so what of
  // them has not been judged yet is read again, on new streams. They leave
  // their nodes quietly now, their remaining lines ignored; else their end,
  // coming after this state, would retire the nodes and close open
  // periods (an out-of-consensus period, its ban timer) the state keeps.
  for (const auto& o : cp.kafka_offsets) {
    const std::string prefix = KafkaStreamPrefix(o.topic, o.partition);
    for (auto& [id, s] : streams_) {
      if (s.node < 0 || s.info.path.compare(0, prefix.size(), prefix) != 0) continue;
      detect::NodeState& n = detector_.mutable_node(s.node);
      if (n.open_streams > 0) --n.open_streams;
      s.node = -1;
    }
  }
  last_ = nullptr;
  if (cp.detector.is_null()) return {};
  // Every node of the state is live here from now on, as it was where the
  // state was written (a Kafka pod's node lives while its partition is
  // held), whether or not its pod has logged here yet: a pod that logs
  // nothing more (hung) is judged silent by the others' time and banned
  // on time, not when (if ever) it logs again; and its votes stay.
  if (const auto nodes = cp.detector.find("nodes");
      nodes != cp.detector.end() && nodes->is_object()) {
    detect::Detector::NodeKeyParts key;
    for (const auto& item : nodes->items()) {
      if (!detect::Detector::SplitNodeKey(item.key(), &key)) continue;
      const auto chain = std::find_if(cp.chains.begin(), cp.chains.end(),
                                      [&](const auto& c) { return c.first == key.chain; });
      if (chain == cp.chains.end()) continue;
      auto it = nodes_.find(std::make_tuple(key.chain, key.namespace_, key.pod));
      int node = 0;
      if (it != nodes_.end()) {
        node = it->second;
      } else {
        record::StreamName pod;
        pod.namespace_ = key.namespace_;
        pod.pod = key.pod;
        node = NewNode(EnsureChain(key.chain, registry_.Find(chain->second)), pod);
      }
      detector_.mutable_node(node).retired = false;
    }
  }
  return detect::DecodeStateJson(cp.detector, &detector_);
}

}  // namespace qw::pipeline
