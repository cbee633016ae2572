#include "pipeline/kafka_forward.h"

#include <algorithm>

namespace qw::pipeline {
namespace {

// A stable hash of the chain key (FNV-1a): every member of the group puts
// a chain in the same partition.
uint32_t KeyHash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

constexpr int kSlotShift = 40;  // tag = slot << 40 | offset (0: a mark)

}  // namespace

std::string TopicPartitionName(const source::TopicPartition& tp) {
  return tp.first + "/" + std::to_string(tp.second);
}

void CountPoison(const source::TopicPartition& tp, int64_t offset, const std::string& why,
                 uint64_t* count, uint64_t* total, const ComponentCounters& counters,
                 const std::function<void(const std::string&)>& log) {
  const uint64_t n = ++*count;
  ++*total;
  counters.dropped->fetch_add(1, std::memory_order_relaxed);
  if (n <= 3 || (n & (n - 1)) == 0) {
    log("kafka: " + TopicPartitionName(tp) + " offset " + std::to_string(offset) +
        ": skipped a record (" + why + "), " + std::to_string(n) + " so far in this partition");
  }
}

KafkaForwarder::KafkaForwarder(std::string by_chain_topic, record::EnvelopeFormat format,
                               const record::EnvelopeFields& fields,
                               std::unique_ptr<source::KafkaConsumer> consumer,
                               const record::RecordStage* stage, Metrics* metrics,
                               std::function<void(const std::string&)> log)
    : topic_(std::move(by_chain_topic)), format_(format), consumer_(std::move(consumer)),
      stage_(stage), log_(std::move(log)), decoder_(fields),
      counters_(metrics != nullptr ? ComponentCounters::For(metrics, "source", "kafka-forward")
                                   : ComponentCounters::Detached()) {}

int KafkaForwarder::Partitions() {
  const Nanos now = SteadyNow();
  if (partitions_ > 0 && now - partitions_asked_ < 30 * kSecond) return partitions_;
  if (partitions_ == 0 && partitions_asked_ != kNoTime && now - partitions_asked_ < 5 * kSecond) {
    return 0;
  }
  partitions_asked_ = now;
  constexpr Nanos kTimeout = 10 * kSecond;
  // Made when missing: as many partitions as the input topics have.
  auto n = consumer_->EnsureTopic(
      topic_,
      [&] {
        int want = 1;
        for (const auto& [tp, in] : inputs_) {
          if (auto m = consumer_->Partitions(tp.first, kTimeout); m) want = std::max(want, *m);
        }
        return want;
      },
      /*compacted=*/false, kTimeout);
  if (!n) {
    log_(n.error().message);
    return partitions_;
  }
  if (*n == 0 && !missing_logged_) {
    log_("kafka: the by-chain topic " + topic_ + " does not exist: nothing is handed on (or " +
         "read) until it does; create it with as many partitions as the input topics have " +
         "(docs/KAFKA.md, \"Repartition\")");
  }
  missing_logged_ = *n == 0;
  partitions_ = *n;
  return partitions_;
}

size_t KafkaForwarder::Poll(size_t max_records) {
  // Nothing is read while there is nowhere to hand it on.
  if (Partitions() == 0) return 0;
  const size_t n = consumer_->Poll(this, max_records);
  Acknowledge();
  for (const auto& l : consumer_->Lag()) {
    auto it = inputs_.find(l.tp);
    if (it == inputs_.end()) continue;
    if (l.leader_down != it->second.leader_down) {
      it->second.leader_down = l.leader_down;
      if (l.leader_down) {
        // Marked at once, not at the next round: whatever is handed on from
        // the other partitions from now on comes after this mark.
        Mark(l.tp, "behind");
        it->second.reached_end = false;
      }
      log_("kafka: " + TopicPartitionName(l.tp) +
           (l.leader_down ? ": its leader broker cannot be reached: marked behind, the readers of " +
                                topic_ + " wait for it (nothing is judged past its last record)"
                          : std::string(": its leader broker is reachable again")));
    }
    if (l.at_end()) it->second.reached_end = true;
  }
  const Nanos now = SteadyNow();
  if (marked_ == kNoTime || now - marked_ >= kForwardMarkEvery) {
    marked_ = now;
    for (auto& [tp, in] : inputs_) {
      Mark(tp, in.reached_end ? "end" : "behind");
      in.reached_end = false;
    }
  }
  return n;
}

void KafkaForwarder::Mark(const source::TopicPartition& tp, std::string_view state) {
  const int n = partitions_;
  name_ = TopicPartitionName(tp);
  for (int32_t q = 0; q < n; ++q) {
    auto r = consumer_->Send(topic_, q, {}, {}, {{"qw-from", name_}, {"qw-mark", state}}, 0);
    if (!r) log_(r.error().message);
  }
}

void KafkaForwarder::Acknowledge() {
  const auto delivered = consumer_->Delivered();
  if (delivered.empty()) return;
  std::set<source::TopicPartition> touched;
  for (const auto& d : delivered) {
    const uint64_t slot = d.tag >> kSlotShift;
    if (slot == 0 || slot > slots_.size()) continue;  // a mark
    const source::TopicPartition& tp = slots_[slot - 1];
    auto it = inputs_.find(tp);
    if (it == inputs_.end()) continue;  // revoked since
    const int64_t offset = static_cast<int64_t>(d.tag & ((uint64_t{1} << kSlotShift) - 1));
    if (d.failed) {
      // Refused for good (too large for the brokers, not allowed): counted
      // and logged, its offset goes on (retrying cannot help).
      ++refused_;
      counters_.dropped->fetch_add(1, std::memory_order_relaxed);
      if (refused_ <= 3 || (refused_ & (refused_ - 1)) == 0) {
        log_("kafka: " + TopicPartitionName(tp) + " offset " + std::to_string(offset) +
             ": the brokers refused its copy for " + topic_ + " (" + d.error + "), " +
             std::to_string(refused_) + " so far");
      }
    }
    it->second.unsent.erase(offset);
    touched.insert(tp);
  }
  std::map<source::TopicPartition, int64_t> store;
  for (const auto& tp : touched) {
    const Input& in = inputs_.at(tp);
    if (in.next < 0) continue;
    store[tp] = in.unsent.empty() ? in.next : *in.unsent.begin();
  }
  consumer_->Store(store);
}

std::map<source::TopicPartition, int64_t> KafkaForwarder::Lags() const {
  std::map<source::TopicPartition, int64_t> out;
  for (const auto& l : consumer_->Lag()) {
    if (inputs_.count(l.tp) != 0) out[l.tp] = l.lag();
  }
  return out;
}

void KafkaForwarder::Close() {
  if (size_t left = consumer_->FlushSends(30 * kSecond); left > 0) {
    log_("kafka: " + std::to_string(left) + " record(s) not taken by the brokers for " + topic_ +
         " at exit: their offsets are not committed, they are handed on again at the next start");
  }
  Acknowledge();
  consumer_->Close();
}

int64_t KafkaForwarder::OnAssigned(const source::TopicPartition& tp) {
  Input& in = inputs_[tp];
  if (in.slot == 0) {
    auto it = std::find(slots_.begin(), slots_.end(), tp);
    if (it == slots_.end()) it = slots_.insert(slots_.end(), tp);
    in.slot = static_cast<uint32_t>(it - slots_.begin()) + 1;
  }
  in.format = format_;
  return -1;  // the group's committed offset
}

void KafkaForwarder::BeforeRevoke(const std::vector<source::TopicPartition>& parts) {
  (void)parts;
  // What was read goes to the brokers before the offsets are committed
  // (right after this): the next member starts where this one stopped.
  if (size_t left = consumer_->FlushSends(30 * kSecond); left > 0) {
    log_("kafka: " + std::to_string(left) + " record(s) not taken by the brokers for " + topic_ +
         " before a rebalance: the member taking their partitions hands them on again");
  }
  Acknowledge();
}

void KafkaForwarder::OnRevoked(const source::TopicPartition& tp) {
  // The readers stop waiting for it from this member; the next holder's
  // marks take over.
  if (partitions_ > 0) Mark(tp, "gone");
  inputs_.erase(tp);
}

void KafkaForwarder::OnRecord(const source::KafkaRecord& r) {
  counters_.received->fetch_add(1, std::memory_order_relaxed);
  const source::TopicPartition tp{std::string(r.topic), r.partition};
  Input& in = inputs_[tp];
  in.next = r.offset + 1;
  record::Envelope e;
  std::string why;
  if (!decoder_.DecodeSticky(&in.format, r.value, r.key, &e, &why)) {
    // Counted and skipped, as the reader of a keyed topic would.
    CountPoison(tp, r.offset, why, &in.poison, &poison_, counters_, log_);
    if (in.unsent.empty()) consumer_->Store({{tp, in.next}});
    return;
  }
  record::StreamName name;
  name.pod = std::string(e.pod.empty() ? r.key : e.pod);
  name.namespace_ = std::string(e.namespace_);
  name.container = std::string(e.container);
  name.kubernetes = !e.namespace_.empty() || !e.container.empty();
  std::string names = name.namespace_ + '\x1f' + name.pod + '\x1f' + name.container;
  auto k = keys_.find(names);
  if (k == keys_.end()) {
    if (keys_.size() > 100000) keys_.clear();  // bounded: pods come and go
    k = keys_.emplace(std::move(names), stage_->ChainKey(name)).first;
  }
  const std::string& key = k->second;
  const int32_t q = static_cast<int32_t>(KeyHash(key) % static_cast<uint32_t>(partitions_));
  from_ = TopicPartitionName(tp) + "/" + std::to_string(r.offset);
  const uint64_t tag = (uint64_t{in.slot} << kSlotShift) | static_cast<uint64_t>(r.offset);
  in.unsent.insert(r.offset);
  auto sent = consumer_->Send(topic_, q, key, r.value, {{"qw-from", from_}, {"qw-key", r.key}}, tag);
  if (!sent) {
    // Not queued (not a matter of waiting): counted, logged, offset moves on.
    in.unsent.erase(r.offset);
    ++refused_;
    counters_.dropped->fetch_add(1, std::memory_order_relaxed);
    log_(sent.error().message);
    return;
  }
  counters_.processed->fetch_add(1, std::memory_order_relaxed);
}

}  // namespace qw::pipeline
