#include "pipeline/kafka_input.h"

#include <algorithm>
#include <charconv>

#include "common/time.h"
#include "detect/state_codec.h"
#include "pipeline/kafka_forward.h"
#include "pipeline/ordering.h"

namespace qw::pipeline {
namespace {

// "2021-05-05T12:03:00.156789012Z": the envelope's time to the nanosecond,
// as a CRI line has it.
void AppendCriTime(std::string& out, Nanos t) {
  AppendRfc3339Millis(out, t);
  out.pop_back();  // 'Z'
  Nanos sub = t % kMillisecond;
  if (sub < 0) sub += kMillisecond;
  char digits[7];
  for (int i = 5; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + sub % 10);
    sub /= 10;
  }
  out.append(digits, 6);
  out.push_back('Z');
}

// Records of all partitions waiting in the ordering, over which those
// partitions stop fetching (resumed below half of it).
constexpr size_t kPendingBudget = 32u << 20;

}  // namespace

KafkaInput::KafkaInput(const KafkaSourceOptions& opt,
                       std::unique_ptr<source::KafkaConsumer> consumer, record::RecordStage* stage,
                       Ordering* ordering, uint32_t* next_id, Metrics* metrics,
                       std::function<void(const std::string&)> log)
    : opt_(opt), consumer_(std::move(consumer)), stage_(stage), ordering_(ordering),
      next_id_(next_id), metrics_(metrics), log_(std::move(log)), decoder_(opt.fields),
      counters_(metrics != nullptr ? ComponentCounters::For(metrics, "source", "kafka")
                                   : ComponentCounters::Detached()) {}

KafkaInput::~KafkaInput() = default;

void KafkaInput::SetForwarder(std::unique_ptr<KafkaForwarder> f) { forwarder_ = std::move(f); }

bool KafkaInput::more() const {
  return consumer_->more() || (forwarder_ != nullptr && forwarder_->more());
}

std::vector<int> KafkaInput::wait_fds() const {
  std::vector<int> fds{consumer_->wait_fd()};
  if (forwarder_ != nullptr) fds.push_back(forwarder_->wait_fd());
  return fds;
}

uint64_t KafkaInput::poison() const {
  return poison_ + (forwarder_ != nullptr ? forwarder_->poison() : 0);
}

void KafkaInput::Close() {
  if (forwarder_ != nullptr) forwarder_->Close();
  consumer_->Close();
}

size_t KafkaInput::Poll(size_t max_records) {
  // repartition: the input first (what it hands on is read back below,
  // once the brokers have it).
  if (forwarder_ != nullptr) forwarder_->Poll(max_records);
  const size_t n = consumer_->Poll(this, max_records);
  UpdateGates();
  if (!stream_tp_.empty()) CheckChains();
  return n;
}

void KafkaInput::CheckChains() {
  for (auto it = stream_tp_.begin(); it != stream_tp_.end();) {
    const std::string chain = stage_->chain(it->first);
    if (chain.empty()) {  // family not decided yet
      ++it;
      continue;
    }
    auto [first, added] = chain_tp_.emplace(chain, it->second);
    if (!added && first->second != it->second && split_reported_.insert(chain).second) {
      log_("kafka: chain " + chain + " arrives on more than one partition (" +
           TopicPartitionName(first->second) + " and " + TopicPartitionName(it->second) +
           "): its records are not keyed by chain; with several instances in the group its "
           "nodes are judged apart and it can look halted or stalled (docs/KAFKA.md, "
           "\"Producers\")");
    }
    // On one partition so far, but keyed by something finer than the chain
    // (the pod, say): the partitions its nodes hash to may go to other
    // members, which this one cannot see.
    if (auto k = stream_key_.find(it->first); k != stream_key_.end()) {
      auto [known, fresh] = chain_key_.emplace(chain, k->second);
      if (!fresh && known->second != k->second && split_reported_.insert(chain).second) {
        log_("kafka: chain " + chain + "'s records carry more than one key (\"" + known->second +
             "\" and \"" + k->second + "\"): they are not keyed by chain; with several " +
             "instances in the group its nodes can arrive on partitions other members hold, be "
             "judged apart and look halted or stalled (docs/KAFKA.md, \"Producers\")");
      }
      stream_key_.erase(k);
    }
    it = stream_tp_.erase(it);
  }
}

void KafkaInput::UpdateGates() {
  const Nanos now = SteadyNow();
  // Back-pressure: the records of all partitions waiting in the ordering
  // (for a partition that is behind) are bounded. Over the budget, every
  // partition with records waiting stops fetching; the ones with none (the
  // ones the ordering waits for) go on. Under half of it, all resume.
  size_t total = 0;
  for (auto& [tp, p] : partitions_) {
    p.pending = 0;
    for (uint32_t id : p.streams) p.pending += stage_->output(id)->pending_bytes();
    total += p.pending;
  }
  for (auto& [tp, p] : partitions_) {
    if (!p.paused && total > kPendingBudget && p.pending > 0) {
      p.paused = true;
      consumer_->Pause(tp, true);
    } else if (p.paused && total < kPendingBudget / 2) {
      p.paused = false;
      consumer_->Pause(tp, false);
    }
  }
  for (const auto& l : consumer_->Lag()) {
    auto it = partitions_.find(l.tp);
    if (it == partitions_.end()) continue;
    Partition& p = it->second;
    // A paused partition's gate stands open: it has records waiting, so it
    // cannot be what the ordering waits for.
    // A partition whose leader cannot be reached is not at its end, whatever
    // the last high watermark heard: its nodes' records may be waiting there,
    // and judging the others' time without them would see them silent
    // (stalled, the chain halted) for as long as the broker is down.
    const bool at_end = l.at_end() || p.paused;
    if (l.leader_down != p.leader_down) {
      p.leader_down = l.leader_down;
      log_("kafka: " + TopicPartitionName(l.tp) +
           (l.leader_down ? ": its leader broker cannot be reached: the merge on event time waits "
                            "for it (nothing is judged past its last record)"
                          : ": its leader broker is reachable again"));
    }
    if (at_end) {
      // Every record there is now was fed: a complete record at a
      // stream's end goes on (as for a file read to its end).
      stage_->AtEnd(p.gate, now);
      for (uint32_t id : p.streams) stage_->AtEnd(id, now);
    } else {
      stage_->Behind(p.gate);
    }
    // repartition: an input partition whose forwarder is behind (or has not
    // been heard of lately: dead, or its partition not yet taken up) holds
    // the merge as a partition of this member that is behind would. A
    // paused partition holds nothing (its marks may be what it has not read).
    const Nanos wall = WallNow();
    for (auto o = p.origins.begin(); o != p.origins.end();) {
      const Nanos silent = o->second.heard == kNoTime ? 0 : wall - o->second.heard;
      if (silent > 600 * kSecond) {
        // Not heard of for so long that it is no longer read (a topic taken
        // out of the subscription): it stops holding anything.
        log_("kafka: " + TopicPartitionName(l.tp) + ": no mark from the forwarder of " + o->first +
             " for 10 minutes: no longer waited for");
        stage_->Close(o->second.gate, /*gone=*/false);
        o = p.origins.erase(o);
        ++changes_;
        continue;
      }
      if (p.paused || (o->second.end && silent < kForwardMarkStale)) {
        stage_->AtEnd(o->second.gate, now);
        o->second.waiting_since = kNoTime;
      } else {
        stage_->Behind(o->second.gate);
        // Said when it has held the merge for 10 s, then every minute.
        if (o->second.waiting_since == kNoTime) o->second.waiting_since = now;
        if (now - o->second.waiting_since >= 10 * kSecond &&
            (o->second.told == kNoTime || now - o->second.told >= 60 * kSecond)) {
          o->second.told = now;
          log_("kafka: " + TopicPartitionName(l.tp) + ": waiting for input partition " + o->first +
               " to be handed on (its forwarder's last mark: " +
               (o->second.end ? "end, " : "behind or none, ") + std::to_string(silent / kSecond) +
               " s ago): nothing is judged past it meanwhile");
        }
      }
      ++o;
    }
    if (at_end != p.at_end) {
      p.at_end = at_end;
      ++changes_;
    }
  }
}

int KafkaInput::StatePartitions(const source::TopicPartition& tp) {
  if (state_partitions_ > tp.second) return state_partitions_;
  // Asked again at most every 30 s (an assignment of many partitions asks
  // once).
  const Nanos now = SteadyNow();
  if (state_checked_ != kNoTime && now - state_checked_ < 30 * kSecond) return state_partitions_;
  state_checked_ = now;
  constexpr Nanos kTimeout = 10 * kSecond;
  // Made when missing: as many partitions as the input topic (or as this
  // one needs).
  auto n = consumer_->EnsureTopic(
      opt_.state_topic,
      [&] {
        auto in = consumer_->Partitions(tp.first, kTimeout);
        return std::max(in ? *in : 0, tp.second + 1);
      },
      /*compacted=*/true, kTimeout);
  if (!n) {
    log_(n.error().message);
    return 0;
  }
  state_partitions_ = *n;
  return state_partitions_;
}

int64_t KafkaInput::Restore(const source::TopicPartition& tp,
                            std::vector<std::pair<std::string, int64_t>>* origins) {
  if (StatePartitions(tp) <= tp.second) {
    if (no_state_reported_ != state_partitions_) {
      no_state_reported_ = state_partitions_;
      log_("kafka: " + TopicPartitionName(tp) + ": the state topic " + opt_.state_topic + " has " +
           std::to_string(state_partitions_) + " partition(s), none numbered " +
           std::to_string(tp.second) + ": the state of the chains of input partitions numbered " +
           std::to_string(state_partitions_) + " and up is not kept there (a member that takes " +
           "such a partition over starts them afresh); give the state topic as many " +
           "partitions as the input topics have");
    }
    return -1;
  }
  // Partition n of the changelog holds the chains of partition n of every
  // input topic: each value names the partition it reflects.
  Result<std::map<std::string, std::string>> values = Fail("");
  if (auto it = prefetched_.find(tp.second); it != prefetched_.end()) {
    values = it->second;  // (kept: input partitions of other topics share its number)
  }
  for (int attempt = 0; !values && attempt < 3; ++attempt) {
    values = consumer_->ReadChangelog(opt_.state_topic, tp.second, 10 * kSecond);
  }
  if (!values) {
    log_("kafka: " + TopicPartitionName(tp) + ": the state of its chains could not be read (" +
         values.error().message + "): it starts from this instance's checkpoint or the group's "
         "offset, with the state this instance has of them");
    return -1;
  }
  int64_t from = -1;
  std::string names;
  size_t n = 0;
  std::vector<std::pair<int64_t, std::vector<std::pair<std::string, int64_t>>>> seen;
  for (auto& [chain, text] : *values) {
    auto cp = DecodeCheckpoint(text);
    if (!cp) {
      log_("kafka: " + opt_.state_topic + "/" + std::to_string(tp.second) + ": the state of " +
           chain + " is damaged (" + cp.error().message + "): skipped");
      continue;
    }
    bool mine = false;
    for (const auto& o : cp->kafka_offsets) {
      if (o.topic == tp.first && o.partition == tp.second) {
        mine = true;
        from = std::max(from, o.offset);
        seen.emplace_back(o.offset, o.origins);
      }
    }
    if (!mine) continue;
    names += (n++ ? ", " : "") + chain;
    // The offset it reflects names the partition for Driver::Merge.
    cp->kafka_offsets.erase(
        std::remove_if(cp->kafka_offsets.begin(), cp->kafka_offsets.end(),
                       [&](const KafkaOffset& o) { return o.topic != tp.first || o.partition != tp.second; }),
        cp->kafka_offsets.end());
    restores_.push_back(std::move(*cp));
  }
  // Reading resumes at the greatest of the offsets: the origins of the
  // values written there say what was read before it.
  std::map<std::string, int64_t> last;
  for (const auto& [offset, list] : seen) {
    if (offset != from) continue;
    for (const auto& [name, at] : list) {
      auto [it, added] = last.emplace(name, at);
      if (!added) it->second = std::max(it->second, at);
    }
  }
  origins->assign(last.begin(), last.end());
  log_("kafka: " + TopicPartitionName(tp) + ": " +
       (n == 0 ? std::string("no state in ") + opt_.state_topic
               : "restored the state of " + std::to_string(n) + " chain(s) (" + names + ") from " +
                     opt_.state_topic + ", resuming at offset " + std::to_string(from)));
  return from;
}

Result<void> KafkaInput::WriteState(
    const Checkpoint& cp, const std::map<source::TopicPartition, int64_t>& offsets,
    const std::vector<std::pair<std::string, std::string>>& stream_chains, bool handoff) {
  if (opt_.state_topic.empty()) return {};
  // Chains by the partition their streams come from ("kafka:<topic>/<p>/...").
  // A chain split over several partitions (reported: not keyed by chain)
  // goes to the first of them only: one value per chain.
  std::map<std::string, source::TopicPartition> first;
  for (const auto& [tp, off] : offsets) {
    (void)off;
    const std::string prefix = KafkaStreamPrefix(tp.first, tp.second);
    for (const auto& [path, chain] : stream_chains) {
      if (path.compare(0, prefix.size(), prefix) == 0) first.emplace(chain, tp);
    }
  }
  std::map<source::TopicPartition, std::set<std::string>> chains;
  for (const auto& [chain, tp] : first) chains[tp].insert(chain);
  std::map<std::string, std::string> family;
  for (const auto& [name, f] : cp.chains) family[name] = f;
  std::vector<source::KafkaConsumer::ChangelogRecord> out;
  for (const auto& [tp, names] : chains) {
    if (tp.second >= state_partitions_) continue;  // no room: logged at assignment
    const auto origins = OriginsBefore(tp, offsets.at(tp));
    for (const auto& chain : names) {
      Checkpoint v;
      v.written = cp.written;
      v.chains.emplace_back(chain, family[chain]);
      for (const auto& e : cp.pending) {
        if (e.chain == chain) v.pending.push_back(e);
      }
      v.kafka_offsets.push_back(KafkaOffset{tp.first, tp.second, offsets.at(tp), origins});
      v.detector = detect::ChainStateJson(cp.detector, chain);
      out.push_back({tp.second, chain, EncodeCheckpoint(v)});
    }
  }
  return consumer_->WriteChangelog(opt_.state_topic, out, handoff ? 10 * kSecond : kSecond,
                                   /*if_earlier_done=*/!handoff);
}

void KafkaInput::BeforeAssign(const std::vector<source::TopicPartition>& parts) {
  // The changelog partitions of all of them in one read: a member given
  // many partitions at once (a takeover) waits for one read, not one per
  // partition. Restore reads a partition missing here by itself.
  prefetched_.clear();
  if (opt_.state_topic.empty() || parts.empty()) return;
  std::set<int32_t> numbers;
  for (const auto& tp : parts) {
    if (tp.second < StatePartitions(tp)) numbers.insert(tp.second);
  }
  if (numbers.size() < 2) return;
  auto all = consumer_->ReadChangelogs(opt_.state_topic, {numbers.begin(), numbers.end()},
                                       30 * kSecond);
  if (!all) {
    log_("kafka: reading the state of " + std::to_string(numbers.size()) + " partitions at once " +
         "failed (" + all.error().message + "): read one by one");
    return;
  }
  prefetched_ = std::move(*all);
}

int64_t KafkaInput::OnAssigned(const source::TopicPartition& tp) {
  // Before anything of the partition is read: its chains' states, merged
  // into the detector ahead of its records (TakeRestores).
  std::vector<std::pair<std::string, int64_t>> origins;
  const int64_t from = opt_.state_topic.empty() ? -1 : Restore(tp, &origins);
  Partition& p = partitions_[tp];
  p.format = opt_.format;
  int64_t origins_at = from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto s = start_.find(tp);
    if (s != start_.end()) next_read_.emplace(tp, s->second);
    if (from < 0 && s != start_.end()) {
      // This instance's checkpoint, when its offset is where reading starts.
      if (auto o = start_origins_.find(tp); o != start_origins_.end() && o->second.first == s->second) {
        origins = o->second.second;
        origins_at = s->second;
      }
    }
  }
  p.gate = (*next_id_)++;
  record::Origin o;
  o.path = "kafka:" + TopicPartitionName(tp);
  o.name.pod = o.path;
  o.format = record::LogFormat::kCri;
  o.gate = true;
  stage_->Open(p.gate, o);
  ordering_->Add(p.gate);
  if (forwarder_ != nullptr) {
    // repartition: every partition of the input topics holds the merge
    // until a mark says it was handed on to its end, not only those heard
    // of so far (else records of one not yet taken up by any forwarder
    // could be overtaken). Topics by pattern are known by their marks only.
    for (const auto& topic : opt_.consumer.topics) {
      int& n = input_partitions_[topic];
      if (n == 0) {
        auto m = consumer_->Partitions(topic, 10 * kSecond);
        if (m) n = *m;
      }
      for (int i = 0; i < n; ++i) OriginOf(tp, p, topic + "/" + std::to_string(i));
    }
  }
  for (const auto& [name, at] : origins) {
    // What was read from each origin before the offset reading resumes at:
    // a record handed on again after it is dropped here too.
    Partition::Origin& o = OriginOf(tp, p, name);
    o.last_read = std::max(o.last_read, at);
    std::lock_guard<std::mutex> lock(mu_);
    o.reads->assign(1, {origins_at - 1, at});
  }
  if (metrics_ != nullptr && p.lag == nullptr) {
    p.lag = metrics_->Gauge("quorumwatch_kafka_consumer_lag",
                            {{"topic", tp.first}, {"partition", std::to_string(tp.second)}},
                            "Records of the partition not read yet (high watermark - position).");
  }
  ++changes_;
  if (from >= 0) {
    std::lock_guard<std::mutex> lock(mu_);
    next_read_[tp] = from;
  }
  return from;
}

void KafkaInput::BeforeRevoke(const std::vector<source::TopicPartition>& parts) {
  // Flush, write the state, store the offsets (the consumer commits them
  // next): the member that takes a partition over resumes where this one
  // stopped, with its chains' state as it is now. Records held back in
  // the merge (waiting for another partition) are not handled yet: the
  // next member reads them again.
  if (flush_ && !parts.empty()) flush_();
}

void KafkaInput::OnRevoked(const source::TopicPartition& tp) {
  // Its streams end here, as gone: their nodes retire in this instance, so
  // they are not judged silent by the time of the partitions still read
  // here; the member that holds the partition now judges them, with the
  // state the changelog hands it. What was read of them and not judged by
  // the flush before the revoke (held in the merge for another partition)
  // is dropped, not judged here: the state written at the flush does not
  // reflect it, so the next holder reads it again; judged here too, it
  // would move this member's nodes past the state it handed on, and a
  // partition given back to this member would be judged twice (a second
  // out_of_consensus for a node already banned).
  // Without a changelog (state_topic: none) nothing would hand their state
  // back: the nodes stay and what was read is judged (as one member alone
  // in its group wants).
  const bool gone = !opt_.state_topic.empty();
  const std::string prefix = TopicPartitionName(tp) + "\x1f";
  for (auto it = stream_ids_.lower_bound(prefix);
       it != stream_ids_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    if (gone) {
      stage_->Abandon(it->second);
    } else {
      stage_->Close(it->second, /*gone=*/false);
    }
    paths_.erase(it->second);
    stream_tp_.erase(it->second);
    stream_key_.erase(it->second);
    it = stream_ids_.erase(it);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = mapped_.begin(); it != mapped_.end();) {
      it = it->second.tp == tp ? mapped_.erase(it) : std::next(it);
    }
    next_read_.erase(tp);
    origin_reads_.erase(tp);
  }
  if (auto it = partitions_.find(tp); it != partitions_.end()) {
    if (it->second.lag != nullptr) it->second.lag->store(0, std::memory_order_relaxed);
    stage_->Close(it->second.gate, /*gone=*/false);
    for (auto& [name, o] : it->second.origins) stage_->Close(o.gate, /*gone=*/false);
    partitions_.erase(it);
  }
  ++changes_;
}

uint32_t KafkaInput::StreamFor(const source::TopicPartition& tp, const record::Envelope& e,
                               std::string_view key, std::string_view origin) {
  // repartition: a container's records handed on from several input
  // partitions are one stream per input partition, each in its order; the
  // merge on event time puts them together.
  std::string k = TopicPartitionName(tp);
  k += '\x1f';
  k += origin;
  k += '\x1f';
  k += e.namespace_;
  k += '\x1f';
  k += e.pod;
  k += '\x1f';
  k += e.container;
  auto it = stream_ids_.find(k);
  if (it != stream_ids_.end()) return it->second;
  const uint32_t id = (*next_id_)++;
  record::Origin o;
  // Not a file: the path names where the stream comes from, for messages
  // and checkpoints.
  o.path = KafkaStreamPrefix(tp.first, tp.second) + std::string(e.namespace_) + "/" + std::string(e.pod) +
           "/" + std::string(e.container);
  if (!origin.empty()) o.path += "@" + std::string(origin);
  o.name.pod = std::string(e.pod.empty() ? key : e.pod);
  o.name.namespace_ = std::string(e.namespace_);
  o.name.container = std::string(e.container);
  o.name.kubernetes = !e.namespace_.empty() || !e.container.empty();
  if (o.name.pod.empty()) o.name.pod = TopicPartitionName(tp);
  o.format = record::LogFormat::kCri;
  o.max_line_bytes = opt_.max_line_bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Mapped& m = mapped_[o.path];
    m.tp = tp;
    m.fed = 0;
    m.ends.clear();
  }
  stage_->Open(id, o);
  ordering_->Add(id);
  partitions_[tp].streams.push_back(id);
  stream_tp_.emplace(id, tp);
  if (origin.empty() && e.format != record::EnvelopeFormat::kRaw) stream_key_.emplace(id, key);
  stream_ids_.emplace(std::move(k), id);
  paths_[id] = o.path;  // the checkpoint names streams by path
  return id;
}

KafkaInput::Partition::Origin& KafkaInput::OriginOf(const source::TopicPartition& tp, Partition& p,
                                                    std::string_view name) {
  auto it = p.origins.find(name);
  if (it != p.origins.end()) return it->second;
  Partition::Origin& o = p.origins[std::string(name)];
  o.format = opt_.format;
  {
    std::lock_guard<std::mutex> lock(mu_);
    o.reads = &origin_reads_[tp][std::string(name)];
  }
  // Not heard of: behind (and, never heard of for 10 minutes, let go).
  o.heard = WallNow() - kForwardMarkStale;
  o.gate = (*next_id_)++;
  record::Origin g;
  g.path = "kafka:" + TopicPartitionName(tp) + "@" + std::string(name);
  g.name.pod = g.path;
  g.format = record::LogFormat::kCri;
  g.gate = true;
  stage_->Open(o.gate, g);
  ordering_->Add(o.gate);
  stage_->Behind(o.gate);
  ++changes_;
  return o;
}

void KafkaInput::OnMark(const source::TopicPartition& tp, Partition& p,
                        const source::KafkaRecord& r) {
  if (r.mark == "gone") {
    // Its forwarder let it go: the next one's marks will say where it is.
    // (Not heard of for 10 minutes, it stops being waited for.)
    if (auto it = p.origins.find(r.from); it != p.origins.end()) {
      it->second.end = false;
      it->second.heard = r.timestamp != kNoTime ? r.timestamp : WallNow();
    }
    return;
  }
  Partition::Origin& o = OriginOf(tp, p, r.from);
  o.end = r.mark == "end";
  o.heard = r.timestamp != kNoTime ? r.timestamp : WallNow();
}

void KafkaInput::OnRecord(const source::KafkaRecord& r) {
  ++changes_;
  const source::TopicPartition tp{std::string(r.topic), r.partition};
  Partition& p = partitions_[tp];
  if (!r.mark.empty()) {  // repartition: a forwarder's mark, not a record
    OnMark(tp, p, r);
    std::lock_guard<std::mutex> lock(mu_);
    next_read_[tp] = r.offset + 1;
    return;
  }
  counters_.received->fetch_add(1, std::memory_order_relaxed);
  std::string_view origin, key = r.key;
  record::EnvelopeFormat* format = &p.format;
  std::deque<std::pair<int64_t, int64_t>>* read_from = nullptr;  // repartition: its origin's reads
  int64_t read_at = -1;
  if (!r.from.empty()) {
    // repartition: "<topic>/<partition>/<offset>" it was read at, there.
    const size_t slash = r.from.rfind('/');
    origin = r.from.substr(0, slash == std::string_view::npos ? 0 : slash);
    int64_t at = -1;
    if (slash != std::string_view::npos) {
      std::from_chars(r.from.data() + slash + 1, r.from.data() + r.from.size(), at);
    }
    Partition::Origin& from = OriginOf(tp, p, origin);
    // Each input partition's records keep their own format (auto).
    format = &from.format;
    if (at >= 0) {
      if (at <= from.last_read) {
        // Handed on twice (its forwarder stopped before committing it).
        ++repeats_;
        if (repeats_ <= 3 || (repeats_ & (repeats_ - 1)) == 0) {
          log_("kafka: " + TopicPartitionName(tp) + " offset " + std::to_string(r.offset) + ": " +
               std::string(r.from) + " was handed on before: dropped, " +
               std::to_string(repeats_) + " so far");
        }
        std::lock_guard<std::mutex> lock(mu_);
        next_read_[tp] = r.offset + 1;
        return;
      }
      from.last_read = at;
      read_from = from.reads;  // noted below, under the record's one lock
      read_at = at;
    }
    key = r.from_key;
  }
  record::Envelope e;
  std::string why;
  const bool ok = decoder_.DecodeSticky(format, r.value, key, &e, &why);
  if (!ok) {
    // Counted and skipped; its offset moves on with the partition's.
    CountPoison(tp, r.offset, why, &p.poison, &poison_, counters_, log_);
    std::lock_guard<std::mutex> lock(mu_);
    if (read_from != nullptr) read_from->emplace_back(r.offset, read_at);
    next_read_[tp] = r.offset + 1;
    return;
  }
  const uint32_t id = StreamFor(tp, e, key, origin);
  const Nanos t = e.time != kNoTime ? e.time : r.timestamp != kNoTime ? r.timestamp : WallNow();
  // One CRI line per line of the message (a multi-line message is several
  // lines, as the runtime would have written them).
  line_.clear();
  std::string_view msg = e.message;
  while (true) {
    const size_t nl = msg.find('\n');
    AppendCriTime(line_, t);
    line_ += " stdout F ";
    line_.append(msg.substr(0, nl));
    line_ += '\n';
    if (nl == std::string_view::npos) break;
    msg.remove_prefix(nl + 1);
  }
  stage_->Feed(id, line_, t);
  counters_.processed->fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  if (read_from != nullptr) read_from->emplace_back(r.offset, read_at);
  Mapped& m = mapped_[paths_[id]];
  m.fed += line_.size();
  m.ends.emplace_back(m.fed, r.offset);
  next_read_[tp] = r.offset + 1;
}

std::map<source::TopicPartition, int64_t> KafkaInput::Committable(
    const std::vector<SavedStream>& handled) {
  std::unordered_map<std::string_view, uint64_t> pos;
  for (const auto& s : handled) pos[s.path] = s.offset;
  std::lock_guard<std::mutex> lock(mu_);
  std::map<source::TopicPartition, int64_t> out = next_read_;
  for (auto& [path, m] : mapped_) {
    // A stream the detector has not heard of yet: nothing of it is handled.
    auto it = pos.find(path);
    const uint64_t at = it == pos.end() ? 0 : it->second;
    while (!m.ends.empty() && m.ends.front().first <= at) m.ends.pop_front();
    if (m.ends.empty()) continue;
    auto o = out.find(m.tp);
    if (o != out.end()) o->second = std::min(o->second, m.ends.front().second);
  }
  return out;
}

std::vector<std::pair<std::string, int64_t>> KafkaInput::OriginsBefore(
    const source::TopicPartition& tp, int64_t offset) {
  std::vector<std::pair<std::string, int64_t>> out;
  std::lock_guard<std::mutex> lock(mu_);
  auto reads = origin_reads_.find(tp);
  if (reads == origin_reads_.end()) return out;
  for (auto& [name, d] : reads->second) {
    // Only the last read before `offset` is needed, now and later.
    while (d.size() >= 2 && d[1].first < offset) d.pop_front();
    if (!d.empty() && d.front().first < offset) out.emplace_back(name, d.front().second);
  }
  return out;
}

int64_t KafkaInput::UpdateLag() {
  int64_t total = 0;
  bool known = !partitions_.empty();
  lags_.clear();
  for (const auto& l : consumer_->Lag()) {
    auto it = partitions_.find(l.tp);
    if (it == partitions_.end()) continue;
    const int64_t lag = l.lag();
    lags_[l.tp] = lag;
    if (lag < 0) {
      known = false;
      continue;
    }
    if (it->second.lag != nullptr) it->second.lag->store(lag, std::memory_order_relaxed);
    total += lag;
  }
  if (forwarder_ != nullptr) {
    // repartition: the input partitions' records not handed on yet.
    for (const auto& [tp, lag] : forwarder_->Lags()) {
      lags_[tp] = lag;
      if (lag < 0) known = false;
      else total += lag;
    }
  }
  return known ? total : -1;
}

}  // namespace qw::pipeline
