// KafkaInput: a `type: kafka` source in live mode. Records a consumer group
// member receives (source/kafka_consumer.h) are unwrapped from their
// envelope (record/envelope.h: Fluent Bit, Vector, raw) and become streams
// of the one record stage, exactly as if the container's log file were
// tailed: one stream per partition and container (namespace, pod,
// container), fed as CRI lines (the envelope's time, stdout, F, the
// message), so framing, continuation lines, families, placement, ordering
// and detection are those of files and of replay (docs/KAFKA.md).
//
// Offsets: a stream's positions are bytes fed to the record stage; the
// input remembers which record ended where. From the positions a checkpoint
// holds (what the detector has handled), Committable() says, per partition,
// the offset below which every record is handled or was skipped — what the
// consumer may store once that checkpoint is durable (at-least-once).
//
// repartition: true: the consumer reads the by-chain topic a KafkaForwarder
// (pipeline/kafka_forward.h) fills; its records carry where they were read
// (one stream per input partition and container, repeats dropped) and its
// marks open and close a gate per input partition.
//
// Threading: everything but Committable() and Store() runs on the reading
// thread; those two run on the detector's (one lock between).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "pipeline/checkpoint.h"
#include "record/envelope.h"
#include "record/record_stage.h"
#include "source/kafka_consumer.h"

namespace qw::pipeline {

class Ordering;

struct KafkaSourceOptions {
  source::KafkaOptions consumer;
  record::EnvelopeFormat format = record::EnvelopeFormat::kAuto;
  record::EnvelopeFields fields;
  size_t max_line_bytes = 1 << 20;
  // The changelog (state handoff between the group's members; empty: none).
  std::string state_topic;
  // repartition: true: the consumer reads this topic (records re-keyed by
  // chain, with marks), fed by `forwarder` (pipeline/kafka_forward.h).
  std::string by_chain_topic;
};

class KafkaForwarder;

class KafkaInput : public source::KafkaHandler {
 public:
  // `next_id`: the stream ids of all sources (shared with the files').
  KafkaInput(const KafkaSourceOptions& opt, std::unique_ptr<source::KafkaConsumer> consumer,
             record::RecordStage* stage, Ordering* ordering, uint32_t* next_id, Metrics* metrics,
             std::function<void(const std::string&)> log);
  ~KafkaInput() override;
  // repartition: true: reads the input and hands it on to the by-chain topic
  // this input reads; polled with it (made by the caller, it needs the stage).
  void SetForwarder(std::unique_ptr<KafkaForwarder> f);

  // Reads what is waiting (at most `max_records`); false when nothing was.
  size_t Poll(size_t max_records);
  bool more() const;
  std::vector<int> wait_fds() const;
  uint64_t changes() const { return changes_; }
  // Updates the per-partition lag gauges; returns the records behind in
  // all, or -1 while it is not known (no partition assigned yet, or one
  // whose position or high watermark has not been heard of).
  int64_t UpdateLag();
  // Per assigned partition, its lag as of the last UpdateLag (-1: not known).
  const std::map<source::TopicPartition, int64_t>& lags() const { return lags_; }
  uint64_t poison() const;
  // A checkpoint's offsets: a partition of this source assigned and not
  // read before the next checkpoint keeps its offset there.
  void SetStartOffsets(const std::vector<KafkaOffset>& offsets) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& o : offsets) {
      start_[{o.topic, o.partition}] = o.offset;
      if (!o.origins.empty()) start_origins_[{o.topic, o.partition}] = {o.offset, o.origins};
    }
  }

  // Detector thread: the offsets every partition may be committed at,
  // given the streams' handled positions in `handled` (a checkpoint's).
  std::map<source::TopicPartition, int64_t> Committable(const std::vector<SavedStream>& handled);
  // Detector thread, with an offset of Committable's (no smaller than the
  // last asked for the partition): KafkaOffset::origins for it.
  std::vector<std::pair<std::string, int64_t>> OriginsBefore(const source::TopicPartition& tp,
                                                             int64_t offset);
  // Detector thread, once the checkpoint holding them is durable.
  void Store(const std::map<source::TopicPartition, int64_t>& offsets) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [tp, off] : offsets) start_[tp] = off;
    }
    consumer_->Store(offsets);
  }
  void Close();

  // Reading thread, after Poll: the chains' states the changelog handed
  // over with partitions assigned since the last call, to be merged into
  // the detector (Driver::Merge) before any record read after them.
  std::vector<Checkpoint> TakeRestores() { return std::move(restores_); }
  // Detector thread, before the checkpoint `cp` is made durable: writes to
  // the changelog, for every partition in `offsets` (Committable's), the
  // state of each chain with a stream on it (`stream_chains`: stream path,
  // chain; Driver::StreamChains) with that offset. Fails when the brokers
  // did not take them all: the offsets must not be stored then.
  // It waits for the brokers at most 1 s (the detector waits meanwhile), and
  // not at all while an earlier write is still unacknowledged (a changelog
  // leader that is down costs one wait, not one per checkpoint); with
  // `handoff` (a revoke, the last checkpoint) up to 10 s.
  [[nodiscard]] Result<void> WriteState(
      const Checkpoint& cp, const std::map<source::TopicPartition, int64_t>& offsets,
      const std::vector<std::pair<std::string, std::string>>& stream_chains, bool handoff);

  // KafkaHandler (reading thread, inside Poll).
  void BeforeAssign(const std::vector<source::TopicPartition>& parts) override;
  void AfterAssign() override { prefetched_.clear(); }
  int64_t OnAssigned(const source::TopicPartition& tp) override;
  void BeforeRevoke(const std::vector<source::TopicPartition>& parts) override;
  void OnRevoked(const source::TopicPartition& tp) override;
  // Called before partitions are revoked (reading thread): hands on what
  // was read and returns once a checkpoint (the changelog, the offsets
  // stored) reflects what the detector has handled of them.
  void SetFlush(std::function<void()> flush) { flush_ = std::move(flush); }
  void OnRecord(const source::KafkaRecord& r) override;

 private:
  struct Partition {
    record::EnvelopeFormat format = record::EnvelopeFormat::kAuto;  // decided by the first record
    uint64_t poison = 0;
    std::atomic<int64_t>* lag = nullptr;
    // A record-less stream of the record stage that is "read to its end"
    // only while the partition is (its position at the high watermark):
    // until then it holds every other stream back, as a file with unread
    // bytes does, so a partition that is behind (a backlog after a start,
    // a slow fetch) cannot be overtaken in time by the others.
    uint32_t gate = 0;
    bool at_end = false;
    bool paused = false;  // back-pressure: its streams' records wait in the ordering
    size_t pending = 0;   // bytes of its records waiting in the ordering
    bool leader_down = false;
    std::vector<uint32_t> streams;
    // repartition: the input partitions ("<topic>/<p>") whose records come
    // here, each with a record-less stream like `gate` that is at its end
    // only while its forwarder's last mark, a recent one, says "end".
    struct Origin {
      uint32_t gate = 0;
      bool end = false;
      record::EnvelopeFormat format = record::EnvelopeFormat::kAuto;  // its records'
      Nanos heard = kNoTime;  // the last mark's time (its producer's clock)
      Nanos waiting_since = kNoTime, told = kNoTime;  // steady clock: holding the merge
      // The last input offset read from it: a record handed on again (its
      // forwarder stopped before committing it) is dropped. Forgotten with
      // the partition at a revoke: reading starts again at the state's
      // offset, maybe before what was read here.
      int64_t last_read = -1;
      // Its entry of origin_reads_ (a map node: stable until the partition
      // is revoked, when both go). Touched under mu_ only.
      std::deque<std::pair<int64_t, int64_t>>* reads = nullptr;
    };
    std::map<std::string, Origin, std::less<>> origins;
  };
  // A forwarder's mark (repartition).
  void OnMark(const source::TopicPartition& tp, Partition& p, const source::KafkaRecord& r);
  Partition::Origin& OriginOf(const source::TopicPartition& tp, Partition& p, std::string_view name);
  std::unique_ptr<KafkaForwarder> forwarder_;
  std::map<std::string, int> input_partitions_;  // repartition: input topic -> partitions
  uint64_t repeats_ = 0;
  void UpdateGates();
  // The changelog's value for each of the partition's chains, queued for
  // the detector; the offset they reflect (-1: none).
  // The origins' last input offsets before it (KafkaOffset::origins) in
  // `origins`.
  int64_t Restore(const source::TopicPartition& tp, std::vector<std::pair<std::string, int64_t>>* origins);
  // The changelog partitions of the partitions being assigned, read at once
  // by BeforeAssign (by partition number), taken by Restore; dropped by
  // AfterAssign.
  std::map<int32_t, source::KafkaConsumer::ChangelogValues> prefetched_;
  // Partitions of the changelog (created when missing); 0 when unknown.
  int StatePartitions(const source::TopicPartition& tp);
  std::function<void()> flush_;
  std::map<source::TopicPartition, int64_t> lags_;
  std::atomic<int> state_partitions_{0};  // read by WriteState (detector thread)
  std::vector<Checkpoint> restores_;
  Nanos state_checked_ = kNoTime;   // when the state topic's partitions were last asked
  int no_state_reported_ = -1;      // the partition count last reported too small
  // Records keyed by something finer than the chain: a chain whose nodes
  // arrive on more than one partition is reported once (in a group of
  // several instances its nodes would be judged apart).
  void CheckChains();
  std::unordered_map<uint32_t, source::TopicPartition> stream_tp_;  // streams not yet checked
  std::map<std::string, source::TopicPartition> chain_tp_;  // chain -> its first partition
  // Keyed input in an envelope (raw records are keyed by node): the record
  // key of each stream not yet checked, and of each chain's first stream.
  std::unordered_map<uint32_t, std::string> stream_key_;
  std::map<std::string, std::string> chain_key_;
  std::set<std::string> split_reported_;
  // Shared with the detector thread under mu_.
  struct Mapped {
    source::TopicPartition tp;
    uint64_t fed = 0;                               // bytes fed so far
    std::deque<std::pair<uint64_t, int64_t>> ends;  // (byte position after a record, its offset)
  };
  uint32_t StreamFor(const source::TopicPartition& tp, const record::Envelope& e,
                     std::string_view key, std::string_view origin);

  KafkaSourceOptions opt_;
  std::unique_ptr<source::KafkaConsumer> consumer_;
  record::RecordStage* stage_;
  Ordering* ordering_;
  uint32_t* next_id_;
  Metrics* metrics_;
  std::function<void(const std::string&)> log_;
  record::EnvelopeDecoder decoder_;
  ComponentCounters counters_;
  std::map<source::TopicPartition, Partition> partitions_;
  // Stream key (topic, partition, namespace, pod, container) -> stream id.
  std::map<std::string, uint32_t> stream_ids_;
  std::unordered_map<uint32_t, std::string> paths_;  // stream id -> its path
  std::string line_;
  uint64_t changes_ = 0, poison_ = 0;

  std::mutex mu_;
  std::map<source::TopicPartition, int64_t> start_;  // the last durable offsets
  std::unordered_map<std::string, Mapped> mapped_;  // by stream path
  std::map<source::TopicPartition, int64_t> next_read_;
  // repartition: per by-chain partition and origin, (offset here, input
  // offset) of the records read from it whose offset here may still be
  // committed, after the last one before the committed offset.
  using OriginReads = std::map<std::string, std::deque<std::pair<int64_t, int64_t>>, std::less<>>;
  std::map<source::TopicPartition, OriginReads> origin_reads_;
  // A checkpoint's KafkaOffset::origins, with the offset they go with.
  std::map<source::TopicPartition,
           std::pair<int64_t, std::vector<std::pair<std::string, int64_t>>>>
      start_origins_;
};

}  // namespace qw::pipeline
